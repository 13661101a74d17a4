//! The fleetwatch hub's HTTP server: the remote-write endpoint, the
//! Prometheus query API Grafana reads, health and self-metrics.
//!
//! Handlers are thin: they parse parameters, hand the work to storage or
//! the query engine on a blocking thread, and render Prometheus's JSON
//! shapes. Errors map to HTTP status in one place ([`error::ApiError`]).

pub mod api;
pub mod config;
pub mod error;
pub mod hub;
pub mod metadata;
pub mod metrics;
pub mod params;

pub use config::HubConfig;
pub use error::HubError;
pub use hub::Hub;
