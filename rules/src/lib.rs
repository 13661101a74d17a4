//! fleetwatch-rules (in progress).
