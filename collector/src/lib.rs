//! fleetwatch-collector (in progress).
