//! fleetwatch-query (in progress).
