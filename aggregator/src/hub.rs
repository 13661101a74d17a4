//! The hub: opens storage, builds the router, serves until shut down.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use fleetwatch_query::EngineOptions;
use fleetwatch_storage::block::ValueEncoding;
use fleetwatch_storage::{Db, DbOptions};
use tokio::net::TcpListener;

use crate::api;
use crate::config::BlockValueEncoding;
use crate::metadata::MetadataStore;
use crate::metrics::HubMetrics;
use crate::{HubConfig, HubError};

/// Shared state of every handler.
pub struct AppState {
    /// The metrics store (head and blocks).
    pub db: Arc<Db>,
    /// Query engine options (per-query timeouts derive from these).
    pub engine: EngineOptions,
    /// The HTTP layer's counters.
    pub metrics: HubMetrics,
    /// Metric metadata received with remote writes.
    pub metadata: MetadataStore,
    /// The configuration in force.
    pub config: HubConfig,
    /// True once storage is open and serving.
    pub ready: AtomicBool,
    /// The log store (Loki push and LogQL).
    pub logs: Arc<fleetwatch_storage::logs::LogStore>,
    /// Rule evaluation (none without `rule_files`).
    pub rules: Option<Arc<fleetwatch_rules::RuleManager>>,
}

/// A running hub's handle.
pub struct Hub {
    state: Arc<AppState>,
    rule_setup: Option<rules::RuleSetup>,
}

impl Hub {
    /// Opens storage under `config.data_dir` (replaying the WAL, opening
    /// the blocks).
    pub async fn open(config: HubConfig) -> Result<Self, HubError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let mut db_opts = DbOptions::new(&config.data_dir);
        if let Some(w) = config.storage.out_of_order_window {
            db_opts.out_of_order_window_ms = w;
        }
        if let Some(r) = config.storage.block_range {
            db_opts.block_range_ms = r.max(1000);
            db_opts.compaction.max_block_range_ms = db_opts
                .compaction
                .max_block_range_ms
                .max(db_opts.block_range_ms * 3);
        }
        db_opts.layout.values = match config.storage.block_value_encoding {
            BlockValueEncoding::Plain => ValueEncoding::Plain,
            BlockValueEncoding::Decimal => ValueEncoding::Decimal,
            BlockValueEncoding::ByteStreamSplit => ValueEncoding::ByteStreamSplit,
        };
        db_opts.layout.zstd_level = config.storage.block_zstd_level;
        db_opts.retention_ms = config.storage.retention;
        db_opts.retention_bytes = config.storage.retention_size_bytes;
        let db = Arc::new(Db::open(db_opts).await?);
        let defaults = EngineOptions::default();
        let engine = EngineOptions {
            lookback_delta_ms: config
                .query
                .lookback_delta
                .unwrap_or(defaults.lookback_delta_ms),
            max_samples: config.query.max_samples,
            timeout: config
                .query
                .timeout
                .map(|ms| Duration::from_millis(ms.max(0) as u64))
                .unwrap_or(defaults.timeout),
        };
        let metadata = MetadataStore::open(&config.data_dir);
        let logs = Arc::new(api::loki::open_store(&config)?);
        let rule_setup = rules::setup(&config, &engine)?;
        Ok(Self {
            state: Arc::new(AppState {
                db,
                engine,
                metrics: HubMetrics::default(),
                metadata,
                config,
                ready: AtomicBool::new(true),
                logs,
                rules: rule_setup.as_ref().map(|r| Arc::clone(&r.manager)),
            }),
            rule_setup,
        })
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Starts rule evaluation and the notifiers; returns their tasks.
    fn start_rules(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(setup) = &self.rule_setup else {
            return Vec::new();
        };
        let mut tasks = Vec::new();
        if let Some(am) = &setup.alertmanager {
            tasks.push(am.spawn());
        }
        for w in &setup.webhooks {
            tasks.push(w.spawn());
        }
        let db = Arc::clone(&self.state.db);
        setup.manager.start(
            db.clone() as Arc<dyn fleetwatch_storage::Queryable>,
            Arc::new(rules::HeadAppender(db)),
        );
        tasks
    }

    /// The router with every endpoint.
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` resolves, then stops storage
    /// after in-flight requests have finished.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HubError> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %self.state.config.data_dir.display(), "hub listening");
        let maintenance = tokio::spawn(maintenance_loop(Arc::clone(&self.state)));
        let rule_tasks = self.start_rules();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        maintenance.abort();
        for t in rule_tasks {
            t.abort();
        }
        if let Some(rules) = &self.state.rules {
            rules.stop();
        }
        self.state.ready.store(false, Ordering::Relaxed);
        persist_metadata(&self.state).await;
        let db = Arc::clone(&self.state.db);
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
        let logs = Arc::clone(&self.state.logs);
        let _ = tokio::task::spawn_blocking(move || logs.close()).await;
        tracing::info!("hub stopped");
        Ok(())
    }
}

/// How often the store is maintained (head cut, compaction, retention).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

async fn maintenance_loop(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let db = Arc::clone(&state.db);
        let handle = tokio::runtime::Handle::current();
        let result =
            tokio::task::spawn_blocking(move || handle.block_on(db.maintain(api::now_ms()))).await;
        match result {
            Ok(Ok(report)) => {
                if !report.blocks_deleted.is_empty() {
                    tracing::info!(deleted = ?report.blocks_deleted, "retention deleted blocks");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "storage maintenance failed"),
            Err(e) => tracing::error!(error = %e, "storage maintenance task failed"),
        }
        persist_metadata(&state).await;
    }
}

/// Saves metric metadata if it changed since the last save.
async fn persist_metadata(state: &Arc<AppState>) {
    let state = Arc::clone(state);
    match tokio::task::spawn_blocking(move || state.metadata.persist()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "saving metric metadata failed"),
        Err(e) => tracing::warn!(error = %e, "saving metric metadata failed"),
    }
}

/// Builds the router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    // Bodies are size-checked by the handlers themselves (the write path
    // against its own limit, before decompressing).
    let body_limit = state.config.limits.max_write_body_bytes.saturating_add(1);
    Router::new()
        .route("/api/v1/write", post(api::write::remote_write))
        .route("/api/v1/read", post(api::read::remote_read))
        .route(
            "/federate",
            get(api::federate::federate).post(api::federate::federate),
        )
        .route(
            "/api/v1/query",
            get(api::query::instant).post(api::query::instant),
        )
        .route(
            "/api/v1/query_range",
            get(api::query::range).post(api::query::range),
        )
        .route(
            "/api/v1/series",
            get(api::meta::series).post(api::meta::series),
        )
        .route(
            "/api/v1/labels",
            get(api::meta::labels).post(api::meta::labels),
        )
        .route("/api/v1/label/{name}/values", get(api::meta::label_values))
        .route("/api/v1/metadata", get(api::meta::metadata))
        .route(
            "/api/v1/query_exemplars",
            get(api::meta::exemplars).post(api::meta::exemplars),
        )
        .route("/api/v1/rules", get(api::rules::rules))
        .route("/api/v1/alerts", get(api::rules::alerts))
        .route("/api/v1/status/buildinfo", get(api::meta::buildinfo))
        .route("/api/v1/status/flags", get(api::meta::flags))
        .route("/api/v1/admin/tsdb/flush", post(api::admin::flush))
        .route("/-/healthy", get(api::health::healthy))
        .route("/-/ready", get(api::health::ready))
        .route("/-/reload", post(api::rules::reload))
        .merge(api::loki::routes())
        .route("/metrics", get(api::health::metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

mod rules;
pub use rules::reload_rules;

#[cfg(test)]
mod tests;
