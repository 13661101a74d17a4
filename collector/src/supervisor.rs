//! The running scrape loops, kept in step with the discovered targets:
//! after a file_sd change or a config reload, loops of vanished targets
//! stop, new targets get a loop, unchanged targets keep theirs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fleetwatch_model::Labels;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http_client::HttpClient;
use crate::metrics::{CollectorMetrics, EndpointMetrics};
use crate::queue::Backlog;
use crate::relabel::Relabeler;
use crate::scrape::{self, LoopControl, Scraper, Sink};
use crate::status::TargetStatus;
use crate::targets::Target;

/// What every scrape loop needs besides its target.
#[derive(Debug, Clone)]
pub(crate) struct ScrapeContext {
    /// The client of a job missing from `clients` (none, once validated).
    pub(crate) client: HttpClient,
    /// Each job's client, by job name.
    pub(crate) clients: Arc<HashMap<String, HttpClient>>,
    pub(crate) external: Labels,
    pub(crate) metrics: Arc<CollectorMetrics>,
    /// (queue, write relabeling, counters) of each endpoint.
    pub(crate) sinks: Vec<(Arc<Backlog>, Arc<Relabeler>, Arc<EndpointMetrics>)>,
}

#[derive(Debug)]
struct Running {
    target: Target,
    status: Arc<TargetStatus>,
    stop: watch::Sender<LoopControl>,
    task: JoinHandle<()>,
}

/// The scrape loops of one collector.
#[derive(Debug, Default)]
pub(crate) struct ScrapeSet {
    running: Vec<Running>,
}

impl ScrapeSet {
    /// Makes the running loops match `targets`: stops the loops of targets
    /// no longer there (all of them when `restart_all`), starts the missing
    /// ones. Returns the targets with their status, in `targets`' order.
    pub(crate) fn sync(
        &mut self,
        targets: Vec<Target>,
        restart_all: bool,
        ctx: &ScrapeContext,
    ) -> Vec<(Target, Arc<TargetStatus>)> {
        let (keep, stop): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| !restart_all && targets.contains(&r.target));
        for r in &stop {
            let _ = r.stop.send(LoopControl::Remove);
        }
        let (started, stopped) = (targets.len().saturating_sub(keep.len()), stop.len());
        let mut keep: Vec<Option<Running>> = keep.into_iter().map(Some).collect();
        for target in targets {
            let existing = keep
                .iter_mut()
                .find(|r| r.as_ref().is_some_and(|r| r.target == target))
                .and_then(Option::take);
            let running = existing.unwrap_or_else(|| start(target, ctx));
            self.running.push(running);
        }
        if started > 0 || stopped > 0 {
            tracing::info!(
                started,
                stopped,
                targets = self.running.len(),
                "scrape targets updated"
            );
        }
        self.targets()
    }

    /// The running targets with their status.
    pub(crate) fn targets(&self) -> Vec<(Target, Arc<TargetStatus>)> {
        self.running
            .iter()
            .map(|r| (r.target.clone(), Arc::clone(&r.status)))
            .collect()
    }

    /// Stops every loop, waiting at most `timeout` before aborting them.
    /// Returns the panic message of a loop that panicked, if any.
    pub(crate) async fn stop_all(&mut self, timeout: Duration) -> Option<String> {
        let running = std::mem::take(&mut self.running);
        for r in &running {
            let _ = r.stop.send(LoopControl::Stop);
        }
        let mut failure = None;
        let deadline = tokio::time::Instant::now() + timeout;
        for r in running {
            let mut task = r.task;
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Err(e)) if e.is_panic() => {
                    tracing::error!(error = %e, "scrape loop panicked");
                    failure.get_or_insert(e.to_string());
                }
                Ok(_) => {}
                Err(_) => task.abort(),
            }
        }
        failure
    }
}

fn start(target: Target, ctx: &ScrapeContext) -> Running {
    let status = Arc::new(TargetStatus::default());
    let scraper = Scraper::new(
        target.clone(),
        ctx.clients.get(&target.job).unwrap_or(&ctx.client).clone(),
        ctx.external.clone(),
        Arc::clone(&ctx.metrics),
    )
    .with_status(Arc::clone(&status));
    let sinks = ctx
        .sinks
        .iter()
        .map(|(queue, relabel, metrics)| Sink {
            queue: Arc::clone(queue),
            relabel: Arc::clone(relabel),
            metrics: Arc::clone(metrics),
        })
        .collect();
    let (stop, stop_rx) = watch::channel(LoopControl::Run);
    let task = tokio::spawn(scrape::run_scrape_loop(scraper, sinks, stop_rx));
    Running {
        target,
        status,
        stop,
        task,
    }
}
