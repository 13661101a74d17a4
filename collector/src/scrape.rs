//! Scraping one target: fetch, parse, label, staleness, synthetic series;
//! and the per-target loop that feeds the remote-write queues.

mod labels;
mod parse;
mod staleness;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetwatch_model::{Labels, Sample, STALE_NAN};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

pub use labels::{LabelMerger, Merged};
pub use parse::{format_openmetrics_float, parse_exposition, Parsed, ParsedSample};
pub use staleness::{StalenessTracker, Transition};

use crate::metrics::{CollectorMetrics, EndpointMetrics, JobMetrics};
use crate::queue::{QueuedSample, SampleQueue};
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
    client: reqwest::Client,
    external: Labels,
    tracker: StalenessTracker,
    synthetic: Vec<Arc<Labels>>,
    job_metrics: Arc<JobMetrics>,
    metrics: Arc<CollectorMetrics>,
}

impl Scraper {
    /// A scraper for `target`; `external` are the collector's external labels.
    pub fn new(
        target: Target,
        client: reqwest::Client,
        external: Labels,
        metrics: Arc<CollectorMetrics>,
    ) -> Self {
        let merger = LabelMerger {
            target: &target.labels,
            external: &external,
            honor_labels: target.honor_labels,
        };
        let synthetic = SYNTHETIC
            .iter()
            .map(|n| Arc::new(merger.synthetic(n)))
            .collect();
        let job_metrics = metrics.job(&target.job);
        Self {
            target,
            client,
            external,
            tracker: StalenessTracker::new(),
            synthetic,
            job_metrics,
            metrics,
        }
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
                };
                let mut seen: HashSet<Arc<Labels>> = HashSet::with_capacity(scraped);
                let mut tracked: HashSet<Arc<Labels>> = HashSet::with_capacity(scraped);
                let mut overrides = 0;
                for p in parsed.samples {
                    let merged = match merger.merge(&p.name, &p.labels) {
                        Ok(m) => m,
                        Err(e) => {
                            invalid += 1;
                            tracing::debug!(job = %self.target.job, instance = %self.target.address, metric = %p.name, error = %e, "dropping sample with invalid labels");
                            continue;
                        }
                    };
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
pub(crate) struct Sink<Q> {
    pub(crate) queue: Arc<Q>,
    pub(crate) metrics: Arc<EndpointMetrics>,
}

/// Scrapes `scraper`'s target on its interval, starting at its offset,
/// and pushes every scrape into each sink (waiting while a queue is full)
/// until `stop` turns true.
pub(crate) async fn run_scrape_loop<Q: SampleQueue>(
    mut scraper: Scraper,
    sinks: Vec<Sink<Q>>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = scraper.target().interval;
    let delay = scraper.target().start_delay(SystemTime::now());
    let mut ticker = tokio::time::interval_at(Instant::now() + delay, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tracing::debug!(job = %scraper.target().job, instance = %scraper.target().address, delay_ms = delay.as_millis() as u64, "scrape loop started");
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticker.tick() => {}
        }
        let samples = tokio::select! {
            biased;
            _ = stop.changed() => break,
            s = scraper.scrape_once() => s,
        };
        for sink in &sinks {
            let n = samples.len() as i64;
            sink.metrics.samples_pending.fetch_add(n, Ordering::Relaxed);
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                _ = sink.queue.push(samples.clone()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
