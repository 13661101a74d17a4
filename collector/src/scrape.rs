//! Scraping one target: fetch, parse, label, staleness, synthetic series;
//! and the per-target loop that feeds the remote-write queues.

mod labels;
mod parse;
mod staleness;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetwatch_model::{is_valid_metric_name, Labels, Sample, STALE_NAN};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

pub use labels::{LabelMerger, Merged};
pub use parse::{format_openmetrics_float, parse_exposition, Parsed, ParsedSample};
pub use staleness::{StalenessTracker, Transition};

use crate::http_client::HttpClient;
use crate::metrics::{CollectorMetrics, EndpointMetrics, JobMetrics};
use crate::queue::{Backlog, QueuedSample};
use crate::relabel::Relabeler;
use crate::status::TargetStatus;
use crate::targets::Target;
use crate::CollectorError;

/// The `Accept` header of a scrape: the text format 0.0.4.
pub const SCRAPE_ACCEPT: &str = "text/plain;version=0.0.4";

/// The synthetic series written for every scrape, in this order.
const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Scrapes one target and turns each scrape into samples to ship.
#[derive(Debug)]
pub struct Scraper {
    target: Target,
    client: HttpClient,
    external: Labels,
    tracker: StalenessTracker,
    metric_relabel: Relabeler,
    synthetic: Vec<Arc<Labels>>,
    job_metrics: Arc<JobMetrics>,
    metrics: Arc<CollectorMetrics>,
    status: Arc<TargetStatus>,
}

impl Scraper {
    /// A scraper for `target`, fetching with its job's `client`; `external`
    /// are the collector's external labels.
    pub fn new(
        target: Target,
        client: impl Into<HttpClient>,
        external: Labels,
        metrics: Arc<CollectorMetrics>,
    ) -> Self {
        let merger = LabelMerger {
            target: &target.labels,
            external: &external,
            honor_labels: target.honor_labels,
            honor_external_labels: target.honor_external_labels,
        };
        let synthetic = SYNTHETIC
            .iter()
            .map(|n| Arc::new(merger.synthetic(n)))
            .collect();
        let job_metrics = metrics.job(&target.job);
        // Validated with the config; an error here cannot happen.
        let metric_relabel = Relabeler::new(&target.metric_relabel_configs).unwrap_or_else(|(i, e)| {
            tracing::error!(job = %target.job, rule = i, error = %e, "invalid metric_relabel_configs; ignoring them");
            Relabeler::default()
        });
        Self {
            target,
            client: client.into(),
            external,
            tracker: StalenessTracker::new(),
            metric_relabel,
            synthetic,
            job_metrics,
            metrics,
            status: Arc::new(TargetStatus::default()),
        }
    }

    /// Reports every scrape's outcome to `status` (for `/api/v1/targets`).
    pub fn with_status(mut self, status: Arc<TargetStatus>) -> Self {
        self.status = status;
        self
    }

    /// The target scraped.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Scrapes once now and returns the samples to ship (scraped series,
    /// staleness markers, synthetic series).
    pub async fn scrape_once(&mut self) -> Vec<QueuedSample> {
        let ts_ms = unix_ms(SystemTime::now());
        let started = Instant::now();
        let body = self.fetch().await;
        let took = started.elapsed();
        self.status
            .record(ts_ms, took, body.as_ref().err().map(ToString::to_string));
        self.process(body, ts_ms, took)
    }

    async fn fetch(&self) -> Result<String, CollectorError> {
        let t = &self.target;
        let err = |reason: String| CollectorError::Scrape {
            url: t.url.to_string(),
            reason,
        };
        let resp = self
            .client
            .get(t.url.clone())
            .header(reqwest::header::ACCEPT, SCRAPE_ACCEPT)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                t.timeout.as_secs_f64().to_string(),
            )
            .timeout(t.timeout)
            .send()
            .await
            .map_err(|e| err(describe_reqwest_error(&e, t.timeout)))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(err(format!("server returned http status {status}")));
        }
        resp.text().await.map_err(|e| {
            err(format!(
                "reading body: {}",
                describe_reqwest_error(&e, t.timeout)
            ))
        })
    }

    /// Staleness markers at `ts_ms` for every series this target has
    /// (scraped series without exposed timestamps, and the synthetic
    /// ones), for when the target goes away. Forgets the tracked series.
    pub fn stale_all(&mut self, ts_ms: i64) -> Vec<QueuedSample> {
        let mut out = Vec::new();
        push_stale(&mut out, self.tracker.on_failure(), ts_ms);
        push_stale(&mut out, self.synthetic.clone(), ts_ms);
        out
    }

    /// Turns the outcome of one scrape at `ts_ms`, which took `took`, into
    /// samples. Separate from the HTTP part so it can be tested alone.
    pub fn process(
        &mut self,
        body: Result<String, CollectorError>,
        ts_ms: i64,
        took: Duration,
    ) -> Vec<QueuedSample> {
        self.job_metrics.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        let (up, scraped, accepted, added) = match body {
            Ok(body) => {
                let parsed = parse_exposition(&body);
                let scraped = parsed.samples.len();
                let mut invalid = parsed.skipped_lines;
                let merger = LabelMerger {
                    target: &self.target.labels,
                    external: &self.external,
                    honor_labels: self.target.honor_labels,
                    honor_external_labels: self.target.honor_external_labels,
                };
                let mut seen: HashSet<Arc<Labels>> = HashSet::with_capacity(scraped);
                let mut tracked: HashSet<Arc<Labels>> = HashSet::with_capacity(scraped);
                let mut overrides = 0;
                for p in parsed.samples {
                    let base = match merger.merge_target(&p.name, &p.labels) {
                        Ok(m) => m,
                        Err(e) => {
                            invalid += 1;
                            tracing::debug!(job = %self.target.job, instance = %self.target.address, metric = %p.name, error = %e, "dropping sample with invalid labels");
                            continue;
                        }
                    };
                    let base = if self.metric_relabel.is_empty() {
                        base
                    } else {
                        match self.metric_relabel.process(base) {
                            Some(l) if l.metric_name().is_some_and(is_valid_metric_name) => l,
                            Some(l) => {
                                invalid += 1;
                                tracing::debug!(job = %self.target.job, series = %l, "metric_relabel_configs left no valid metric name; dropping");
                                continue;
                            }
                            None => continue,
                        }
                    };
                    let merged = merger.apply_external(base);
                    overrides += merged.overrides;
                    let labels = Arc::new(merged.labels);
                    if !seen.insert(Arc::clone(&labels)) {
                        invalid += 1;
                        tracing::debug!(job = %self.target.job, instance = %self.target.address, series = %labels, "dropping duplicate series in scrape");
                        continue;
                    }
                    let explicit_ts = self
                        .target
                        .honor_timestamps
                        .then_some(p.timestamp_ms)
                        .flatten();
                    if explicit_ts.is_none() {
                        tracked.insert(Arc::clone(&labels));
                    }
                    out.push(QueuedSample {
                        labels,
                        sample: Sample::new(explicit_ts.unwrap_or(ts_ms), p.value),
                    });
                }
                let accepted = out.len();
                if overrides > 0 {
                    self.metrics
                        .external_label_overrides
                        .fetch_add(overrides, Ordering::Relaxed);
                }
                if invalid > 0 {
                    self.job_metrics
                        .samples_invalid
                        .fetch_add(invalid as u64, Ordering::Relaxed);
                    tracing::warn!(job = %self.target.job, instance = %self.target.address, skipped = invalid, "skipped unparseable or invalid samples");
                }
                self.job_metrics
                    .samples_scraped
                    .fetch_add(scraped as u64, Ordering::Relaxed);
                let transition = self.tracker.on_success(tracked);
                push_stale(&mut out, transition.stale, ts_ms);
                tracing::debug!(job = %self.target.job, instance = %self.target.address, samples = accepted, duration_ms = took.as_millis() as u64, "scrape ok");
                (1.0, scraped, accepted, transition.added)
            }
            Err(e) => {
                self.job_metrics
                    .scrapes_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(job = %self.target.job, instance = %self.target.address, error = %e, "scrape failed");
                let stale = self.tracker.on_failure();
                push_stale(&mut out, stale, ts_ms);
                (0.0, 0, 0, 0)
            }
        };
        let values = [
            up,
            took.as_secs_f64(),
            scraped as f64,
            accepted as f64,
            added as f64,
        ];
        for (labels, v) in self.synthetic.iter().zip(values) {
            out.push(QueuedSample {
                labels: Arc::clone(labels),
                sample: Sample::new(ts_ms, v),
            });
        }
        out
    }
}

fn push_stale(out: &mut Vec<QueuedSample>, stale: Vec<Arc<Labels>>, ts_ms: i64) {
    out.extend(stale.into_iter().map(|labels| QueuedSample {
        labels,
        sample: Sample::new(ts_ms, STALE_NAN),
    }));
}

fn describe_reqwest_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timeout after {}", crate::config::PromDuration(timeout))
    } else {
        // reqwest's Display leaves the cause out; walk the chain.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One sink of scraped samples: a queue and its endpoint's counters.
pub(crate) struct Sink {
    pub(crate) queue: Arc<Backlog>,
    /// The endpoint's `write_relabel_configs`.
    pub(crate) relabel: Arc<Relabeler>,
    pub(crate) metrics: Arc<EndpointMetrics>,
}

/// What a scrape loop is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoopControl {
    /// Keep scraping.
    Run,
    /// Stop (the collector shuts down): nothing more is written.
    Stop,
    /// Stop because the target is gone: its series get staleness markers.
    Remove,
}

/// How long a removed target's staleness markers may wait for a full
/// in-memory queue.
const STALE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes `scraper`'s target on its interval, starting at its offset,
/// and appends every scrape to each sink (waiting while an in-memory queue
/// is full, until a disk queue has it fsynced) until `control` leaves
/// [`LoopControl::Run`]. On [`LoopControl::Remove`] it writes staleness
/// markers for the target's series, as Prometheus does.
pub(crate) async fn run_scrape_loop(
    mut scraper: Scraper,
    sinks: Vec<Sink>,
    mut control: watch::Receiver<LoopControl>,
) {
    let interval = scraper.target().interval;
    let delay = scraper.target().start_delay(SystemTime::now());
    let mut ticker = tokio::time::interval_at(Instant::now() + delay, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tracing::debug!(job = %scraper.target().job, instance = %scraper.target().address, delay_ms = delay.as_millis() as u64, "scrape loop started");
    'scraping: loop {
        if *control.borrow() != LoopControl::Run {
            break;
        }
        tokio::select! {
            biased;
            _ = control.changed() => break,
            _ = ticker.tick() => {}
        }
        let samples = tokio::select! {
            biased;
            _ = control.changed() => break,
            s = scraper.scrape_once() => s,
        };
        for sink in &sinks {
            tokio::select! {
                biased;
                _ = control.changed() => break 'scraping,
                _ = append_to(sink, &samples, &scraper) => {}
            }
        }
    }
    if *control.borrow() == LoopControl::Remove {
        let stale = scraper.stale_all(unix_ms(SystemTime::now()));
        tracing::debug!(job = %scraper.target().job, instance = %scraper.target().address, series = stale.len(), "target removed; writing staleness markers");
        for sink in &sinks {
            if tokio::time::timeout(STALE_WRITE_TIMEOUT, append_to(sink, &stale, &scraper))
                .await
                .is_err()
            {
                tracing::warn!(job = %scraper.target().job, "queue full; staleness markers of a removed target not written");
            }
        }
    }
}

async fn append_to(sink: &Sink, samples: &[QueuedSample], scraper: &Scraper) {
    let samples = write_relabel(&sink.relabel, samples);
    if samples.is_empty() {
        return;
    }
    let n = samples.len();
    if let Err(e) = sink.queue.append(samples, &sink.metrics).await {
        sink.metrics
            .queue_dropped_io
            .fetch_add(n as u64, Ordering::Relaxed);
        tracing::error!(job = %scraper.target().job, instance = %scraper.target().address, samples = n, error = %e, "cannot queue scraped samples; dropping them");
    }
}

/// Applies an endpoint's `write_relabel_configs` to one scrape's samples
/// (relabeling each series once), leaving out dropped series.
pub fn write_relabel(relabel: &Relabeler, samples: &[QueuedSample]) -> Vec<QueuedSample> {
    if relabel.is_empty() {
        return samples.to_vec();
    }
    let mut cache: std::collections::HashMap<&Labels, Option<Arc<Labels>>> =
        std::collections::HashMap::new();
    samples
        .iter()
        .filter_map(|s| {
            let labels = cache
                .entry(&*s.labels)
                .or_insert_with(|| {
                    relabel
                        .process((*s.labels).clone())
                        .filter(|l| l.metric_name().is_some_and(is_valid_metric_name))
                        .map(Arc::new)
                })
                .clone()?;
            Some(QueuedSample {
                labels,
                sample: s.sample,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
