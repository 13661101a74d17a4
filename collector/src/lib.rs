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
//! [`queue`] (bounded; scraping waits when it is full) drained by a
//! [`remote_write`] sender; [`metrics`] holds the collector's own metrics.

pub mod config;
mod error;
pub mod metrics;
pub mod queue;
pub mod remote_write;
pub mod scrape;
pub mod targets;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use fleetwatch_model::Labels;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::{
    CollectorConfig, GlobalConfig, PromDuration, QueueConfig, RemoteWriteConfig, Scheme,
    ScrapeConfig, StaticConfig,
};
pub use error::CollectorError;

use metrics::CollectorMetrics;
use queue::{MemoryQueue, SampleQueue};
use remote_write::RemoteWriter;
use scrape::{Scraper, Sink};
use targets::Target;

/// How long [`Collector::run`] keeps shipping queued samples after shutdown.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long scrape loops get to stop after shutdown before they are aborted.
const SCRAPE_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// State shared with the HTTP handlers of [`Collector::metrics_router`].
#[derive(Debug)]
struct Shared {
    metrics: Arc<CollectorMetrics>,
    ready: AtomicBool,
}

/// One remote-write endpoint: its writer and its queue.
#[derive(Debug)]
struct Endpoint {
    writer: RemoteWriter,
    queue: Arc<MemoryQueue>,
    metrics: Arc<metrics::EndpointMetrics>,
}

/// A configured collector, ready to [`run`](Collector::run).
#[derive(Debug)]
pub struct Collector {
    targets: Vec<Target>,
    external: Labels,
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    shared: Arc<Shared>,
    flush_timeout: Duration,
}

impl Collector {
    /// Validates `config` and prepares targets, queues and HTTP clients.
    /// Nothing runs until [`Collector::run`].
    pub fn new(config: CollectorConfig) -> Result<Self, CollectorError> {
        config.validate()?;
        let targets = targets::targets_from_config(&config)?;
        let external = Labels::from_pairs(
            config
                .global
                .external_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let client = reqwest::Client::builder()
            .user_agent(remote_write::USER_AGENT)
            .build()
            .map_err(|e| CollectorError::HttpClient {
                purpose: "scraping and remote write".to_string(),
                reason: e.to_string(),
            })?;
        let metrics = Arc::new(CollectorMetrics::new(
            config.scrape_configs.iter().map(|s| s.job_name.as_str()),
            config.remote_write.iter().map(|r| r.url.as_str()),
        ));
        let endpoints = config
            .remote_write
            .iter()
            .map(|rw| {
                let ep_metrics = metrics.endpoint(&rw.url);
                Ok(Endpoint {
                    writer: RemoteWriter::new(rw, client.clone(), Arc::clone(&ep_metrics))?,
                    queue: Arc::new(MemoryQueue::new(rw.queue_config.capacity)),
                    metrics: ep_metrics,
                })
            })
            .collect::<Result<Vec<_>, CollectorError>>()?;
        if endpoints.is_empty() {
            tracing::warn!("no remote_write configured; scraped samples are discarded");
        }
        Ok(Self {
            targets,
            external,
            client,
            endpoints,
            shared: Arc::new(Shared {
                metrics,
                ready: AtomicBool::new(false),
            }),
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        })
    }

    /// Changes how long [`Collector::run`] keeps shipping after shutdown
    /// (default [`DEFAULT_FLUSH_TIMEOUT`]).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The targets this collector scrapes.
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
        let (stop_tx, stop_rx) = watch::channel(false);
        let (drain_tx, drain_rx) = watch::channel(false);

        let mut senders = JoinSet::new();
        for ep in &self.endpoints {
            senders.spawn(remote_write::run_sender(
                ep.writer.clone(),
                Arc::clone(&ep.queue),
                drain_rx.clone(),
            ));
        }
        let mut scrapers = JoinSet::new();
        for target in &self.targets {
            let scraper = Scraper::new(
                target.clone(),
                self.client.clone(),
                self.external.clone(),
                Arc::clone(&self.shared.metrics),
            );
            let sinks = self
                .endpoints
                .iter()
                .map(|ep| Sink {
                    queue: Arc::clone(&ep.queue),
                    metrics: Arc::clone(&ep.metrics),
                })
                .collect();
            scrapers.spawn(scrape::run_scrape_loop(scraper, sinks, stop_rx.clone()));
        }
        self.shared.ready.store(true, Ordering::Relaxed);
        tracing::info!(
            targets = self.targets.len(),
            endpoints = self.endpoints.len(),
            "collector started"
        );

        shutdown.await;
        self.shared.ready.store(false, Ordering::Relaxed);
        tracing::info!("collector stopping; flushing queued samples");

        let _ = stop_tx.send(true);
        let mut failure = None;
        if tokio::time::timeout(
            SCRAPE_STOP_TIMEOUT,
            join_all(&mut scrapers, "scrape", &mut failure),
        )
        .await
        .is_err()
        {
            scrapers.abort_all();
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
            let pending: usize = self.endpoints.iter().map(|e| e.queue.len()).sum();
            tracing::warn!(
                pending,
                timeout_ms = self.flush_timeout.as_millis() as u64,
                "flush timed out; queued samples were not shipped"
            );
        }
        tracing::info!("collector stopped");
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A router serving the collector's own metrics on `GET /metrics` (text
    /// exposition format), `GET /-/healthy` (always 200) and `GET /-/ready`
    /// (200 while [`Collector::run`] is running, else 503).
    pub fn metrics_router(&self) -> axum::Router {
        axum::Router::new()
            .route("/metrics", get(serve_metrics))
            .route(
                "/-/healthy",
                get(|| async { "fleetwatch collector is healthy.\n" }),
            )
            .route("/-/ready", get(serve_ready))
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
