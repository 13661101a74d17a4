//! HTTP handlers, one module per area.

pub mod admin;
pub mod federate;
pub mod health;
pub mod loki;
pub mod meta;
pub mod query;
pub mod read;
pub mod render;
pub mod rules;
pub mod write;
pub mod write_v2;

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
