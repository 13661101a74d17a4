//! Scraping one target: fetch, parse, label, staleness, synthetic series;
//! and the per-target loop that feeds the remote-write queues.

mod body;
mod cache;
mod labels;
mod limits;
mod parse;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetwatch_model::{is_valid_metric_name, Labels, Sample, STALE_NAN};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

pub use cache::{Outcome, Resolved, ScrapeCache, Use};
pub use labels::{LabelMerger, Merged};
pub use limits::{ScrapeLimits, HARD_MAX_BODY_BYTES};
pub use parse::{
    format_openmetrics_float, parse_exposition, parse_series, Entry, Format, MetricKind,
    ParseError, Parsed, ParsedSample, Parser,
};

use crate::http_client::HttpClient;
use crate::metrics::{CollectorMetrics, EndpointMetrics, JobMetrics};
use crate::queue::{Backlog, QueuedSample};
use crate::relabel::Relabeler;
use crate::status::TargetStatus;
use crate::targets::Target;
use crate::CollectorError;

/// The `Accept` header of a scrape, as Prometheus sends it: OpenMetrics
/// 1.0 preferred, then the text format 0.0.4.
pub const SCRAPE_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

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
    cache: ScrapeCache,
    metric_relabel: Relabeler,
    synthetic: Vec<Arc<Labels>>,
    job_metrics: Arc<JobMetrics>,
    metrics: Arc<CollectorMetrics>,
    status: Arc<TargetStatus>,
}

/// The counts of one scrape.
#[derive(Debug, Default)]
struct Counts {
    scraped: usize,
    accepted: usize,
    added: usize,
    invalid: usize,
    overrides: u64,
}

/// A failed scrape: the error, its kind, the counts so far.
#[derive(Debug)]
struct Failed {
    error: CollectorError,
    kind: Option<FailKind>,
    counts: Counts,
}

/// Why a scrape failed, for the per-job counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    Parse,
    SampleLimit,
    LabelLimits,
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
            cache: ScrapeCache::new(),
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

    /// The target's scrape cache.
    pub fn cache(&self) -> &ScrapeCache {
        &self.cache
    }

    /// Scrapes once now and returns the samples to ship (scraped series,
    /// staleness markers, synthetic series).
    pub async fn scrape_once(&mut self) -> Vec<QueuedSample> {
        let ts_ms = unix_ms(SystemTime::now());
        let started = Instant::now();
        // A fresh buffer per scrape: keeping one per target would hold a
        // body's worth of memory per target between scrapes.
        let mut buf = Vec::new();
        let fetched = self.fetch(&mut buf).await;
        let took = started.elapsed();
        let body = fetched.and_then(|format| match std::str::from_utf8(&buf) {
            Ok(text) => Ok((text, format)),
            Err(e) => Err(self.scrape_error(format!("body is not valid UTF-8: {e}"))),
        });
        self.process_format(body, ts_ms, took)
    }

    fn scrape_error(&self, reason: String) -> CollectorError {
        CollectorError::Scrape {
            url: self.target.url.to_string(),
            reason,
        }
    }

    /// Fetches the body into `buf`; the format it is in.
    async fn fetch(&self, buf: &mut Vec<u8>) -> Result<Format, CollectorError> {
        let t = &self.target;
        let mut resp = self
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
            .map_err(|e| self.scrape_error(describe_reqwest_error(&e, t.timeout)))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(self.scrape_error(format!("server returned http status {status}")));
        }
        let format = Format::from_content_type(
            resp.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let limit = t.limits.max_body_bytes();
        body::read_body(&mut resp, limit, buf)
            .await
            .map_err(|e| match e {
                body::BodyError::TooLarge => {
                    self.job_metrics
                        .scrapes_body_size_limit
                        .fetch_add(1, Ordering::Relaxed);
                    self.scrape_error(format!("body size limit exceeded ({limit} bytes)"))
                }
                body::BodyError::Read(e) => self.scrape_error(format!(
                    "reading body: {}",
                    describe_reqwest_error(&e, t.timeout)
                )),
            })?;
        Ok(format)
    }

    /// Staleness markers at `ts_ms` for every series this target has
    /// (scraped series without exposed timestamps, and the synthetic
    /// ones), for when the target goes away. Forgets the tracked series.
    pub fn stale_all(&mut self, ts_ms: i64) -> Vec<QueuedSample> {
        let mut out = Vec::new();
        push_stale(&mut out, self.cache.stale_all(), ts_ms);
        push_stale(&mut out, self.synthetic.clone(), ts_ms);
        out
    }

    /// Turns the outcome of one scrape at `ts_ms`, which took `took`, into
    /// samples, reading a body in the text format. Separate from the HTTP
    /// part so it can be tested alone.
    pub fn process(
        &mut self,
        body: Result<String, CollectorError>,
        ts_ms: i64,
        took: Duration,
    ) -> Vec<QueuedSample> {
        match body {
            Ok(text) => self.process_format(Ok((&text, Format::Text)), ts_ms, took),
            Err(e) => self.process_format(Err(e), ts_ms, took),
        }
    }

    /// Like [`Self::process`], for a body in the given format.
    pub fn process_format(
        &mut self,
        body: Result<(&str, Format), CollectorError>,
        ts_ms: i64,
        took: Duration,
    ) -> Vec<QueuedSample> {
        self.job_metrics.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        self.cache.begin();
        let result = match body {
            Ok((text, format)) => self.ingest(text, format, ts_ms, &mut out),
            Err(e) => Err(Box::new(Failed {
                error: e,
                kind: None,
                counts: Counts::default(),
            })),
        };
        let (up, scraped, accepted, added) = match result {
            Ok(c) => {
                if c.overrides > 0 {
                    self.metrics
                        .external_label_overrides
                        .fetch_add(c.overrides, Ordering::Relaxed);
                }
                if c.invalid > 0 {
                    self.job_metrics
                        .samples_invalid
                        .fetch_add(c.invalid as u64, Ordering::Relaxed);
                    tracing::warn!(job = %self.target.job, instance = %self.target.address, skipped = c.invalid, "skipped invalid or duplicate samples");
                }
                self.job_metrics
                    .samples_scraped
                    .fetch_add(c.scraped as u64, Ordering::Relaxed);
                push_stale(&mut out, self.cache.finish_success(), ts_ms);
                self.status.record(ts_ms, took, None);
                tracing::debug!(job = %self.target.job, instance = %self.target.address, samples = c.accepted, duration_ms = took.as_millis() as u64, "scrape ok");
                (1.0, c.scraped, c.accepted, c.added)
            }
            Err(failed) => {
                let Failed {
                    error: e,
                    kind,
                    counts: c,
                } = *failed;
                out.clear();
                self.job_metrics
                    .scrapes_failed
                    .fetch_add(1, Ordering::Relaxed);
                let counter = match kind {
                    Some(FailKind::Parse) => Some(&self.job_metrics.scrapes_parse_failed),
                    Some(FailKind::SampleLimit) => Some(&self.job_metrics.scrapes_sample_limit),
                    Some(FailKind::LabelLimits) => Some(&self.job_metrics.scrapes_label_limits),
                    None => None,
                };
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(job = %self.target.job, instance = %self.target.address, error = %e, "scrape failed");
                self.status.record(ts_ms, took, Some(e.to_string()));
                push_stale(&mut out, self.cache.finish_failure(), ts_ms);
                (0.0, c.scraped, c.accepted, 0)
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

    /// Reads a body into `out` through the scrape cache. On failure, the
    /// error, its kind and the counts so far.
    fn ingest(
        &mut self,
        body: &str,
        format: Format,
        ts_ms: i64,
        out: &mut Vec<QueuedSample>,
    ) -> Result<Counts, Box<Failed>> {
        let mut c = Counts::default();
        let mut parser = Parser::new(body, format);
        while let Some(entry) = parser.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let err = self.scrape_error(format!("parsing the body: {e}"));
                    return Err(Box::new(Failed {
                        error: err,
                        kind: Some(FailKind::Parse),
                        counts: c,
                    }));
                }
            };
            c.scraped += 1;
            let outcome = match self.cache.lookup(entry.series) {
                Some(o) => o,
                None => match self.resolve(entry.series, entry.kind) {
                    Ok(r) => self.cache.resolve(entry.series, r),
                    Err(reason) => {
                        let err = self.scrape_error(format!(
                            "parsing the body: line {}: {reason}",
                            parser.line()
                        ));
                        return Err(Box::new(Failed {
                            error: err,
                            kind: Some(FailKind::Parse),
                            counts: c,
                        }));
                    }
                },
            };
            match outcome {
                Outcome::Series(id) => {
                    let explicit_ts = self
                        .target
                        .honor_timestamps
                        .then_some(entry.timestamp_ms)
                        .flatten();
                    match self.cache.use_series(id, explicit_ts.is_none()) {
                        Use::Duplicate => {
                            c.invalid += 1;
                            tracing::debug!(job = %self.target.job, instance = %self.target.address, series = %entry.series, "dropping duplicate series in scrape");
                        }
                        Use::Fresh {
                            labels,
                            overrides,
                            added,
                        } => {
                            c.overrides += overrides;
                            c.added += usize::from(added);
                            out.push(QueuedSample {
                                labels,
                                sample: Sample::new(explicit_ts.unwrap_or(ts_ms), entry.value),
                            });
                        }
                    }
                }
                Outcome::Dropped => {}
                Outcome::Invalid => c.invalid += 1,
                Outcome::Rejected(reason) => {
                    let err = self.scrape_error(reason.to_string());
                    return Err(Box::new(Failed {
                        error: err,
                        kind: Some(FailKind::LabelLimits),
                        counts: c,
                    }));
                }
            }
        }
        c.accepted = out.len();
        let limit = self.target.limits.sample_limit;
        if limit > 0 && c.accepted as u64 > limit {
            let err = self.scrape_error(format!(
                "sample_limit exceeded (samples: {}, limit: {limit})",
                c.accepted
            ));
            return Err(Box::new(Failed {
                error: err,
                kind: Some(FailKind::SampleLimit),
                counts: c,
            }));
        }
        Ok(c)
    }

    /// What a series not in the cache comes to: parsed, merged with the
    /// target labels, metric-relabeled, checked against the label limits
    /// and given the external labels. `Err` when its text is malformed.
    fn resolve(&self, series: &str, kind: MetricKind) -> Result<Resolved, String> {
        let (name, scraped) = parse_series(series, kind)?;
        let merger = LabelMerger {
            target: &self.target.labels,
            external: &self.external,
            honor_labels: self.target.honor_labels,
            honor_external_labels: self.target.honor_external_labels,
        };
        let base = match merger.merge_target(name, &scraped) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(job = %self.target.job, instance = %self.target.address, metric = %name, error = %e, "dropping sample with invalid labels");
                return Ok(Resolved::Invalid);
            }
        };
        let base = if self.metric_relabel.is_empty() {
            base
        } else {
            match self.metric_relabel.process(base) {
                Some(l) if l.metric_name().is_some_and(is_valid_metric_name) => l,
                Some(l) => {
                    tracing::debug!(job = %self.target.job, series = %l, "metric_relabel_configs left no valid metric name; dropping");
                    return Ok(Resolved::Invalid);
                }
                None => return Ok(Resolved::Dropped),
            }
        };
        if let Err(reason) = self.target.limits.check_labels(&base) {
            return Ok(Resolved::Rejected(reason));
        }
        let merged = merger.apply_external(base);
        Ok(Resolved::Series {
            labels: merged.labels,
            overrides: merged.overrides,
        })
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
