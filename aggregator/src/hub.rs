//! The hub: opens storage, builds the router, serves until shut down.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use fleetwatch_query::EngineOptions;
use fleetwatch_storage::{Head, HeadOptions};
use tokio::net::TcpListener;

use crate::api;
use crate::metrics::HubMetrics;
use crate::{HubConfig, HubError};

/// Shared state of every handler.
pub struct AppState {
    /// The metrics head.
    pub head: Arc<Head>,
    /// Query engine options (per-query timeouts derive from these).
    pub engine: EngineOptions,
    /// The HTTP layer's counters.
    pub metrics: HubMetrics,
    /// The configuration in force.
    pub config: HubConfig,
    /// True once storage is open and serving.
    pub ready: AtomicBool,
}

/// A running hub's handle.
pub struct Hub {
    state: Arc<AppState>,
}

impl Hub {
    /// Opens storage under `config.data_dir` (replaying the WAL).
    pub fn open(config: HubConfig) -> Result<Self, HubError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let mut head_opts = HeadOptions::new(config.data_dir.join("wal"));
        if let Some(w) = config.storage.out_of_order_window {
            head_opts.out_of_order_window_ms = w;
        }
        let head = Arc::new(Head::open(head_opts)?);
        let defaults = EngineOptions::default();
        let engine = EngineOptions {
            lookback_delta_ms: config.query.lookback_delta.unwrap_or(defaults.lookback_delta_ms),
            max_samples: config.query.max_samples,
            timeout: config
                .query
                .timeout
                .map(|ms| Duration::from_millis(ms.max(0) as u64))
                .unwrap_or(defaults.timeout),
        };
        Ok(Self {
            state: Arc::new(AppState {
                head,
                engine,
                metrics: HubMetrics::default(),
                config,
                ready: AtomicBool::new(true),
            }),
        })
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// The router with every endpoint.
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` resolves, then stops storage
    /// after in-flight requests have finished.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), HubError> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %self.state.config.data_dir.display(), "hub listening");
        let retention = tokio::spawn(retention_loop(Arc::clone(&self.state)));
        axum::serve(listener, self.router()).with_graceful_shutdown(shutdown).await?;
        retention.abort();
        self.state.ready.store(false, Ordering::Relaxed);
        let head = Arc::clone(&self.state.head);
        let _ = tokio::task::spawn_blocking(move || head.close()).await;
        tracing::info!("hub stopped");
        Ok(())
    }
}

async fn retention_loop(state: Arc<AppState>) {
    let Some(retention) = state.config.storage.retention else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let min = api::now_ms() - retention;
        let head = Arc::clone(&state.head);
        if let Ok(dropped) = tokio::task::spawn_blocking(move || head.truncate_before(min)).await {
            if dropped > 0 {
                tracing::info!(dropped, "retention dropped samples");
            }
        }
    }
}

/// Builds the router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    // Bodies are size-checked by the handlers themselves (the write path
    // against its own limit, before decompressing).
    let body_limit = state.config.limits.max_write_body_bytes.saturating_add(1);
    Router::new()
        .route("/api/v1/write", post(api::write::remote_write))
        .route("/api/v1/query", get(api::query::instant).post(api::query::instant))
        .route("/api/v1/query_range", get(api::query::range).post(api::query::range))
        .route("/api/v1/series", get(api::meta::series).post(api::meta::series))
        .route("/api/v1/labels", get(api::meta::labels).post(api::meta::labels))
        .route("/api/v1/label/{name}/values", get(api::meta::label_values))
        .route("/api/v1/metadata", get(api::meta::metadata))
        .route("/api/v1/query_exemplars", get(api::meta::exemplars).post(api::meta::exemplars))
        .route("/api/v1/status/buildinfo", get(api::meta::buildinfo))
        .route("/api/v1/status/flags", get(api::meta::flags))
        .route("/-/healthy", get(api::health::healthy))
        .route("/-/ready", get(api::health::ready))
        .route("/metrics", get(api::health::metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

#[cfg(test)]
mod tests;
