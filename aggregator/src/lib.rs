//! fleetwatch-aggregator (in progress).
