//! The fleetwatch collector: one per application cluster. It scrapes
//! Prometheus-format targets on their intervals, labels every series with
//! its target labels and the collector's external labels (which always
//! win, so the hub can tell clusters apart), writes staleness markers and
//! the synthetic `up`/`scrape_*` series, and ships everything to the hub
//! over Prometheus remote write 1.0, retrying until the hub takes it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fleetwatch_collector::CollectorError> {
//! use fleetwatch_collector::{Collector, CollectorConfig};
//! let config = CollectorConfig::load(std::path::Path::new("collector.yml"))?;
//! let collector = Collector::new(config)?;
//! let _router = collector.metrics_router(); // serve it on the listen address
//! collector.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! Pipeline: [`targets`] expands the config into targets; a [`scrape`] loop
//! per target fetches, parses and labels; each remote-write endpoint has a
//! [`queue`] (on disk under the data directory, or in memory without one)
//! read by [`shards`], which batch and send through a [`remote_write`]
//! writer; [`metrics`] holds the collector's own metrics.

pub mod config;
pub mod discovery;
mod error;
pub mod http_client;
pub mod kubernetes_sd;
pub mod logs;
pub mod metrics;
pub mod queue;
pub mod relabel;
pub mod remote_write;
pub mod scrape;
pub mod shards;
pub mod status;
mod supervisor;
pub mod targets;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use fleetwatch_model::Labels;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub use config::{
    ByteSize, CollectorConfig, GlobalConfig, PromDuration, QueueConfig, RemoteWriteConfig, Scheme,
    ScrapeConfig, StaticConfig, StorageConfig,
};
pub use error::CollectorError;

use http_client::HttpClient;
use metrics::CollectorMetrics;
use queue::{Backlog, DiskOptions, DiskQueue, MemoryQueue};
use remote_write::RemoteWriter;
use targets::Target;

/// How long [`Collector::run`] keeps shipping queued samples after shutdown.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long scrape loops get to stop after shutdown before they are aborted.
const SCRAPE_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How often `file_sd_configs` files are checked for changes.
const FILE_SD_POLL: Duration = Duration::from_secs(2);

/// How long a reload request waits for the running collector.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A reload request: the answer goes back on the channel.
type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// The targets shown by `/api/v1/targets`.
#[derive(Debug, Default)]
struct TargetView {
    active: Vec<(Target, Arc<status::TargetStatus>)>,
    dropped: Vec<targets::DroppedTarget>,
}

/// State shared with the HTTP handlers of [`Collector::metrics_router`].
#[derive(Debug)]
struct Shared {
    metrics: Arc<CollectorMetrics>,
    ready: AtomicBool,
    targets: RwLock<TargetView>,
    reload: ReloadHandle,
}

/// Asks a running collector to re-read its config file (what SIGHUP and
/// `POST /-/reload` do). Scrape settings, targets and external labels
/// change in place; queued data is never dropped.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<ReloadRequest>,
}

impl ReloadHandle {
    /// Reloads and waits for the outcome (an error says why nothing changed).
    pub async fn reload(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .await
            .map_err(|_| "the collector is not running".to_string())?;
        match tokio::time::timeout(RELOAD_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the collector stopped during the reload".to_string()),
            Err(_) => Err("the reload timed out".to_string()),
        }
    }
}

/// One remote-write endpoint: its writer, its queue and its write relabeling.
#[derive(Debug)]
struct Endpoint {
    writer: RemoteWriter,
    relabel: Arc<relabel::Relabeler>,
    queue: Arc<Backlog>,
    metrics: Arc<metrics::EndpointMetrics>,
}

/// A configured collector, ready to [`run`](Collector::run).
#[derive(Debug)]
pub struct Collector {
    config: CollectorConfig,
    config_path: Option<PathBuf>,
    reload_rx: mpsc::Receiver<ReloadRequest>,
    targets: Vec<Target>,
    external: Labels,
    client: HttpClient,
    clients: Arc<HashMap<String, HttpClient>>,
    endpoints: Vec<Endpoint>,
    shared: Arc<Shared>,
    flush_timeout: Duration,
    logs: Option<logs::LogShipper>,
}

impl Collector {
    /// Validates `config` and prepares targets, queues and HTTP clients.
    /// Queues are on disk under `storage.path` when the config sets it,
    /// else in memory. Nothing runs until [`Collector::run`].
    pub fn new(config: CollectorConfig) -> Result<Self, CollectorError> {
        let dir = config.storage.path.clone();
        Self::open(config, dir.as_deref())
    }

    /// Like [`Collector::new`], with the queues on disk under
    /// `<data_dir>/queue/<endpoint name>` (recovering what a previous run
    /// left there); `None` keeps them in memory.
    pub fn open(config: CollectorConfig, data_dir: Option<&Path>) -> Result<Self, CollectorError> {
        config.validate()?;
        let (targets, dropped) = targets::discover(&config)?;
        let external = Labels::from_pairs(
            config
                .global
                .external_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let client = HttpClient::new(&config::HttpClientConfig::default()).map_err(|e| {
            CollectorError::HttpClient {
                purpose: "scraping".to_string(),
                reason: e.to_string(),
            }
        })?;
        let clients = Arc::new(http_client::scrape_clients(&config)?);
        let metrics = Arc::new(CollectorMetrics::new(
            config.scrape_configs.iter().map(|s| s.job_name.as_str()),
            config.remote_write.iter().map(|r| r.url.as_str()),
        ));
        let per_endpoint_budget =
            config.storage.max_bytes.0 / (config.remote_write.len().max(1) as u64);
        let endpoints = config
            .remote_write
            .iter()
            .enumerate()
            .map(|(i, rw)| {
                let rw_client = HttpClient::new(&rw.http_client_config()).map_err(|e| {
                    CollectorError::invalid(format!("remote_write[{i}].{}", e.key()), e.to_string())
                })?;
                let ep_metrics = metrics.endpoint(&rw.url);
                let queue = match data_dir {
                    Some(dir) => Backlog::Disk(Arc::new(DiskQueue::open(
                        &dir.join("queue").join(rw.queue_name()),
                        DiskOptions::with_budget(per_endpoint_budget),
                        Arc::clone(&ep_metrics),
                    )?)),
                    None => Backlog::Memory(MemoryQueue::new(rw.queue_config.capacity)),
                };
                let relabel =
                    relabel::Relabeler::new(&rw.write_relabel_configs).map_err(|(i, e)| {
                        CollectorError::invalid(
                            format!("remote_write[{}].write_relabel_configs[{i}]", rw.url),
                            e.to_string(),
                        )
                    })?;
                Ok(Endpoint {
                    relabel: Arc::new(relabel),
                    writer: RemoteWriter::new(rw, rw_client, Arc::clone(&ep_metrics))?,
                    queue: Arc::new(queue),
                    metrics: ep_metrics,
                })
            })
            .collect::<Result<Vec<_>, CollectorError>>()?;
        if endpoints.is_empty() {
            tracing::warn!("no remote_write configured; scraped samples are discarded");
        }
        let logs = match &config.logs {
            Some(cfg) => Some(logs::LogShipper::open(
                cfg,
                &logs::LogShipper::dir(cfg, data_dir)?,
                &config.global.external_labels,
                HttpClient::new(&cfg.http_client_config()).map_err(|e| {
                    CollectorError::invalid(format!("logs.{}", e.key()), e.to_string())
                })?,
                Arc::clone(&metrics.logs),
            )?),
            None => None,
        };
        let (reload_tx, reload_rx) = mpsc::channel(4);
        Ok(Self {
            config,
            config_path: None,
            reload_rx,
            targets,
            external,
            client,
            clients,
            endpoints,
            shared: Arc::new(Shared {
                metrics,
                ready: AtomicBool::new(false),
                targets: RwLock::new(TargetView {
                    active: Vec::new(),
                    dropped,
                }),
                reload: ReloadHandle { tx: reload_tx },
            }),
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            logs,
        })
    }

    /// Changes how long [`Collector::run`] keeps shipping after shutdown
    /// (default [`DEFAULT_FLUSH_TIMEOUT`]).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The file the config came from: [`ReloadHandle::reload`] re-reads it.
    pub fn with_config_path(mut self, path: PathBuf) -> Self {
        self.config_path = Some(path);
        self
    }

    /// A handle to reload the config of this collector once it runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.shared.reload.clone()
    }

    /// The statically configured targets this collector starts with
    /// (`file_sd_configs` targets are found once it runs).
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Runs scraping and shipping until `shutdown` resolves; then stops
    /// scraping, flushes what is queued (waiting at most the flush timeout,
    /// 5 s by default) and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), CollectorError> {
        let (drain_tx, drain_rx) = watch::channel(false);

        let mut senders = JoinSet::new();
        for ep in &self.endpoints {
            senders.spawn(shards::run_endpoint(
                ep.writer.clone(),
                Arc::clone(&ep.queue),
                drain_rx.clone(),
            ));
        }
        let logs = self
            .logs
            .map(|l| tokio::spawn(l.run(drain_rx.clone(), self.flush_timeout)));
        let ctx = supervisor::ScrapeContext {
            client: self.client.clone(),
            clients: Arc::clone(&self.clients),
            external: self.external.clone(),
            metrics: Arc::clone(&self.shared.metrics),
            sinks: self
                .endpoints
                .iter()
                .map(|ep| {
                    (
                        Arc::clone(&ep.queue),
                        Arc::clone(&ep.relabel),
                        Arc::clone(&ep.metrics),
                    )
                })
                .collect(),
        };
        let mut live = Live {
            config: self.config.clone(),
            config_path: self.config_path.clone(),
            ctx,
            file_sd: discovery::FileSd::default(),
            kubernetes_sd: kubernetes_sd::KubernetesSd::default(),
            set: supervisor::ScrapeSet::default(),
            shared: Arc::clone(&self.shared),
        };
        live.file_sd.refresh(&live.config);
        live.kubernetes_sd.sync(&live.config);
        live.rediscover(false);
        let kubernetes_changed = live.kubernetes_sd.notifier();
        self.shared.ready.store(true, Ordering::Relaxed);
        tracing::info!(
            targets = live.set.targets().len(),
            endpoints = self.endpoints.len(),
            "collector started"
        );

        let mut reload_rx = self.reload_rx;
        let mut poll = tokio::time::interval(FILE_SD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        // Bounded by `shutdown`.
        loop {
            let watches_files = live
                .config
                .scrape_configs
                .iter()
                .any(|s| !s.file_sd_configs.is_empty());
            tokio::select! {
                _ = &mut shutdown => break,
                _ = poll.tick(), if watches_files => {
                    if live.file_sd.refresh(&live.config) {
                        live.rediscover(false);
                    }
                }
                _ = kubernetes_changed.notified() => live.rediscover(false),
                Some(reply) = reload_rx.recv() => {
                    let outcome = live.reload();
                    match &outcome {
                        Ok(()) => tracing::info!("config reloaded"),
                        Err(e) => tracing::error!(error = %e, "config reload failed"),
                    }
                    let _ = reply.send(outcome);
                }
            }
        }
        self.shared.ready.store(false, Ordering::Relaxed);
        tracing::info!("collector stopping; flushing queued samples");
        live.kubernetes_sd.stop();

        let mut failure = None;
        if let Some(reason) = live.set.stop_all(SCRAPE_STOP_TIMEOUT).await {
            failure = Some(CollectorError::Task {
                task: "scrape".to_string(),
                reason,
            });
        }

        let _ = drain_tx.send(true);
        if tokio::time::timeout(
            self.flush_timeout,
            join_all(&mut senders, "remote write", &mut failure),
        )
        .await
        .is_err()
        {
            senders.abort_all();
            let pending: u64 = self
                .endpoints
                .iter()
                .map(|e| e.queue.unread_samples())
                .sum();
            let on_disk = self
                .endpoints
                .iter()
                .all(|e| matches!(*e.queue, Backlog::Disk(_)));
            tracing::warn!(
                pending,
                on_disk,
                timeout_ms = self.flush_timeout.as_millis() as u64,
                "flush timed out; queued samples were not shipped (on disk they are sent after a restart)"
            );
        }
        if let Some(task) = logs {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "log shipping task failed");
            }
        }
        tracing::info!("collector stopped");
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A router serving the collector's own metrics on `GET /metrics` (text
    /// exposition format), `GET /-/healthy` (always 200), `GET /-/ready`
    /// (200 while [`Collector::run`] is running, else 503) and
    /// `GET /api/v1/targets` (Prometheus's JSON; `state` and `scrapePool`
    /// parameters) and `POST /-/reload` (re-reads the config file).
    pub fn metrics_router(&self) -> axum::Router {
        axum::Router::new()
            .route("/metrics", get(serve_metrics))
            .route(
                "/-/healthy",
                get(|| async { "fleetwatch collector is healthy.\n" }),
            )
            .route("/-/ready", get(serve_ready))
            .route("/api/v1/targets", get(serve_targets))
            .route("/-/reload", axum::routing::post(serve_reload))
            .with_state(Arc::clone(&self.shared))
    }
}

async fn join_all(set: &mut JoinSet<()>, task: &str, failure: &mut Option<CollectorError>) {
    while let Some(res) = set.join_next().await {
        if let Err(e) = res {
            if e.is_panic() {
                tracing::error!(task, error = %e, "collector task panicked");
                failure.get_or_insert(CollectorError::Task {
                    task: task.to_string(),
                    reason: e.to_string(),
                });
            }
        }
    }
}

async fn serve_metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            fleetwatch_model::exposition::TEXT_CONTENT_TYPE,
        )],
        shared.metrics.render(),
    )
}

async fn serve_targets(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    let view = shared
        .targets
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let data = status::targets_data(
        &view.active,
        &view.dropped,
        params.get("state").map(String::as_str),
        params.get("scrapePool").map(String::as_str),
    );
    axum::Json(serde_json::json!({"status": "success", "data": data}))
}

async fn serve_reload(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.reload.reload().await {
        Ok(()) => (StatusCode::OK, "config reloaded\n".to_string()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
    }
}

/// What [`Collector::run`] changes while it runs.
struct Live {
    config: CollectorConfig,
    config_path: Option<PathBuf>,
    ctx: supervisor::ScrapeContext,
    file_sd: discovery::FileSd,
    kubernetes_sd: kubernetes_sd::KubernetesSd,
    set: supervisor::ScrapeSet,
    shared: Arc<Shared>,
}

impl Live {
    /// Recomputes the targets and brings the scrape loops in line.
    fn rediscover(&mut self, restart_all: bool) {
        let (targets, dropped) = match targets::discover_sd(
            &self.config,
            &self.file_sd,
            &self.kubernetes_sd,
        ) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "target discovery failed; keeping the current targets");
                return;
            }
        };
        let active = self.set.sync(targets, restart_all, &self.ctx);
        let mut view = self
            .shared
            .targets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *view = TargetView { active, dropped };
    }

    /// Re-reads the config file and applies it. `remote_write` and
    /// `storage` cannot change without a restart: such a reload is refused
    /// and nothing changes.
    fn reload(&mut self) -> Result<(), String> {
        let path = self
            .config_path
            .clone()
            .ok_or_else(|| "the collector was not started from a config file".to_string())?;
        let new = CollectorConfig::load(&path).map_err(|e| e.to_string())?;
        new.validate().map_err(|e| e.to_string())?;
        let clients = http_client::scrape_clients(&new).map_err(|e| e.to_string())?;
        if new.remote_write != self.config.remote_write
            || new.storage != self.config.storage
            || new.logs != self.config.logs
        {
            return Err(
                "remote_write, storage and logs changes need a restart (queued data stays on disk); nothing was changed"
                    .to_string(),
            );
        }
        let external = Labels::from_pairs(
            new.global
                .external_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let restart_all = external != self.ctx.external;
        self.ctx.external = external;
        self.ctx.clients = Arc::new(clients);
        self.config = new;
        self.file_sd.refresh(&self.config);
        self.kubernetes_sd.sync(&self.config);
        self.rediscover(restart_all);
        Ok(())
    }
}

async fn serve_ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "fleetwatch collector is ready.\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "fleetwatch collector is not ready.\n",
        )
    }
}
