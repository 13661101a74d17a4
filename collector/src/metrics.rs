//! The collector's own metrics, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleetwatch_model::exposition::{write_help_line, write_sample_line, write_type_line};
use fleetwatch_model::Labels;

/// Upper bounds of the remote-write request duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one scrape job.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Scrapes attempted.
    pub scrapes: AtomicU64,
    /// Scrapes that failed.
    pub scrapes_failed: AtomicU64,
    /// Samples scraped (before staleness markers and synthetic series).
    pub samples_scraped: AtomicU64,
    /// Sample lines skipped because they could not be parsed or labelled.
    pub samples_invalid: AtomicU64,
    /// Scrapes failed by `sample_limit`.
    pub scrapes_sample_limit: AtomicU64,
    /// Scrapes failed by `label_limit` or a label length limit.
    pub scrapes_label_limits: AtomicU64,
    /// Scrapes failed by `body_size_limit`.
    pub scrapes_body_size_limit: AtomicU64,
    /// Scrapes failed because the body could not be parsed.
    pub scrapes_parse_failed: AtomicU64,
}

/// Counters of one remote-write endpoint.
#[derive(Debug)]
pub struct EndpointMetrics {
    /// Samples acknowledged by the endpoint.
    pub samples_sent: AtomicU64,
    /// Batches and samples dropped because the endpoint rejected them for
    /// good, by reason (`http_400`, ...).
    failed: Mutex<BTreeMap<String, FailedCount>>,
    /// Samples the disk queue dropped (oldest first) to stay in its budget.
    pub queue_dropped_disk_budget: AtomicU64,
    /// Samples lost to a corrupt queue record.
    pub queue_dropped_corrupt: AtomicU64,
    /// Samples that could not be written to the queue (I/O error).
    pub queue_dropped_io: AtomicU64,
    /// Bytes of queue segments on disk.
    pub queue_bytes: AtomicU64,
    /// Shards sending to the endpoint now.
    pub shards: AtomicU64,
    /// Samples re-sent after a retryable failure (counted per attempt).
    pub samples_retried: AtomicU64,
    /// Samples queued or in flight.
    pub samples_pending: AtomicI64,
    /// Unix time in milliseconds of the last successful send (0 = never).
    pub last_send_success_ms: AtomicI64,
    /// Request duration histogram: cumulative bucket counts are computed on
    /// render; these are per-bucket counts (the last is +Inf).
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_sum_micros: AtomicU64,
    duration_count: AtomicU64,
}

impl Default for EndpointMetrics {
    fn default() -> Self {
        Self {
            samples_sent: AtomicU64::new(0),
            failed: Mutex::new(BTreeMap::new()),
            queue_dropped_disk_budget: AtomicU64::new(0),
            queue_dropped_corrupt: AtomicU64::new(0),
            queue_dropped_io: AtomicU64::new(0),
            queue_bytes: AtomicU64::new(0),
            shards: AtomicU64::new(0),
            samples_retried: AtomicU64::new(0),
            samples_pending: AtomicI64::new(0),
            last_send_success_ms: AtomicI64::new(0),
            duration_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_sum_micros: AtomicU64::new(0),
            duration_count: AtomicU64::new(0),
        }
    }
}

/// Batches and samples dropped for one reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FailedCount {
    /// Batches dropped.
    pub batches: u64,
    /// Samples in them.
    pub samples: u64,
}

impl EndpointMetrics {
    /// Counts one batch of `samples` dropped for `reason` (e.g. `http_400`).
    pub fn record_failure(&self, reason: &str, samples: u64) {
        let mut f = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let c = f.entry(reason.to_string()).or_default();
        c.batches += 1;
        c.samples += samples;
    }

    /// The dropped batches and samples by reason.
    pub fn failures(&self) -> BTreeMap<String, FailedCount> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the duration of one request.
    pub fn observe_request(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let idx = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.duration_buckets[idx].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// All of the collector's own metrics.
#[derive(Debug, Default)]
pub struct CollectorMetrics {
    jobs: Mutex<BTreeMap<String, Arc<JobMetrics>>>,
    endpoints: BTreeMap<String, Arc<EndpointMetrics>>,
    /// External labels that replaced a different value on a series.
    pub external_label_overrides: AtomicU64,
    /// Samples dropped because a queue was full (the in-memory queue waits
    /// instead, so this stays 0 unless a queue cannot wait).
    pub samples_dropped_queue_full: AtomicU64,
    /// The log pipeline's counters (`logs` section).
    pub logs: Arc<crate::logs::LogMetrics>,
}

impl CollectorMetrics {
    /// Metrics for the given job names and remote-write URLs.
    pub fn new<'a>(
        jobs: impl IntoIterator<Item = &'a str>,
        urls: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self {
            jobs: Mutex::new(
                jobs.into_iter()
                    .map(|j| (j.to_string(), Arc::new(JobMetrics::default())))
                    .collect(),
            ),
            endpoints: urls
                .into_iter()
                .map(|u| (u.to_string(), Arc::new(EndpointMetrics::default())))
                .collect(),
            ..Self::default()
        }
    }

    /// The counters of `job`, registering a job seen for the first time
    /// (after a config reload).
    pub fn job(&self, job: &str) -> Arc<JobMetrics> {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(jobs.entry(job.to_string()).or_default())
    }

    /// The counters of the endpoint `url` (a fresh, unregistered set for an
    /// unknown URL).
    pub fn endpoint(&self, url: &str) -> Arc<EndpointMetrics> {
        self.endpoints.get(url).cloned().unwrap_or_default()
    }

    /// Renders every metric in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let jobs: Vec<(String, Arc<JobMetrics>)> = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let job_counter =
            |out: &mut String, name: &str, help: &str, get: &dyn Fn(&JobMetrics) -> u64| {
                write_help_line(out, name, help);
                write_type_line(out, name, "counter");
                for (job, m) in &jobs {
                    let l = Labels::from_pairs([("__name__", name), ("job", job.as_str())]);
                    write_sample_line(out, &l, get(m) as f64, None);
                }
            };
        job_counter(
            &mut out,
            "fleetwatch_collector_scrapes_total",
            "Scrapes attempted, per job.",
            &|m| m.scrapes.load(Ordering::Relaxed),
        );
        job_counter(
            &mut out,
            "fleetwatch_collector_scrapes_failed_total",
            "Scrapes that failed, per job.",
            &|m| m.scrapes_failed.load(Ordering::Relaxed),
        );
        job_counter(
            &mut out,
            "fleetwatch_collector_samples_scraped_total",
            "Samples scraped from targets, per job.",
            &|m| m.samples_scraped.load(Ordering::Relaxed),
        );
        job_counter(
            &mut out,
            "fleetwatch_collector_samples_invalid_total",
            "Exposed samples skipped because they could not be parsed or had invalid labels, per job.",
            &|m| m.samples_invalid.load(Ordering::Relaxed),
        );
        job_counter(
            &mut out,
            "fleetwatch_collector_scrapes_exceeded_sample_limit_total",
            "Scrapes that failed because they had more samples than sample_limit, per job.",
            &|m| m.scrapes_sample_limit.load(Ordering::Relaxed),
        );
        job_counter(
            &mut out,
            "fleetwatch_collector_scrapes_exceeded_label_limits_total",
            "Scrapes that failed because a series broke label_limit, label_name_length_limit or label_value_length_limit, per job.",
            &|m| m.scrapes_label_limits.load(Ordering::Relaxed),
        );
        job_counter(
            &mut out,
            "fleetwatch_collector_scrapes_exceeded_body_size_limit_total",
            "Scrapes that failed because the body was larger than body_size_limit, per job.",
            &|m| m.scrapes_body_size_limit.load(Ordering::Relaxed),
        );
        job_counter(
            &mut out,
            "fleetwatch_collector_scrapes_parse_failed_total",
            "Scrapes that failed because the body was not valid exposition text, per job.",
            &|m| m.scrapes_parse_failed.load(Ordering::Relaxed),
        );

        let ep_metric = |out: &mut String,
                         name: &str,
                         kind: &str,
                         help: &str,
                         get: &dyn Fn(&EndpointMetrics) -> f64| {
            write_help_line(out, name, help);
            write_type_line(out, name, kind);
            for (url, m) in &self.endpoints {
                let l = Labels::from_pairs([("__name__", name), ("url", url.as_str())]);
                write_sample_line(out, &l, get(m), None);
            }
        };
        ep_metric(
            &mut out,
            "fleetwatch_collector_samples_sent_total",
            "counter",
            "Samples acknowledged by the remote-write endpoint.",
            &|m| m.samples_sent.load(Ordering::Relaxed) as f64,
        );
        ep_metric(
            &mut out,
            "fleetwatch_collector_samples_retried_total",
            "counter",
            "Samples re-sent after a retryable failure (5xx, 429, network), per attempt.",
            &|m| m.samples_retried.load(Ordering::Relaxed) as f64,
        );
        ep_metric(
            &mut out,
            "fleetwatch_collector_samples_pending",
            "gauge",
            "Samples queued or in flight to the remote-write endpoint.",
            &|m| m.samples_pending.load(Ordering::Relaxed).max(0) as f64,
        );
        ep_metric(
            &mut out,
            "fleetwatch_collector_last_send_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful remote-write request (0 = never).",
            &|m| m.last_send_success_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        );

        ep_metric(
            &mut out,
            "fleetwatch_collector_queue_bytes",
            "gauge",
            "Bytes of the endpoint's disk queue.",
            &|m| m.queue_bytes.load(Ordering::Relaxed) as f64,
        );
        ep_metric(
            &mut out,
            "fleetwatch_collector_remote_write_shards",
            "gauge",
            "Shards sending to the remote-write endpoint.",
            &|m| m.shards.load(Ordering::Relaxed) as f64,
        );
        self.render_failures(&mut out);

        let name = "fleetwatch_collector_queue_dropped_samples_total";
        write_help_line(
            &mut out,
            name,
            "Samples the queue dropped before sending: disk_budget (oldest data first), corrupt, io_error.",
        );
        write_type_line(&mut out, name, "counter");
        for (url, m) in &self.endpoints {
            for (reason, v) in [
                ("corrupt", &m.queue_dropped_corrupt),
                ("disk_budget", &m.queue_dropped_disk_budget),
                ("io_error", &m.queue_dropped_io),
            ] {
                let l = Labels::from_pairs([
                    ("__name__", name),
                    ("reason", reason),
                    ("url", url.as_str()),
                ]);
                write_sample_line(&mut out, &l, v.load(Ordering::Relaxed) as f64, None);
            }
        }

        let name = "fleetwatch_collector_samples_dropped_total";
        write_help_line(&mut out, name, "Samples dropped before shipping.");
        write_type_line(&mut out, name, "counter");
        let l = Labels::from_pairs([("__name__", name), ("reason", "queue_full")]);
        write_sample_line(
            &mut out,
            &l,
            self.samples_dropped_queue_full.load(Ordering::Relaxed) as f64,
            None,
        );

        let name = "fleetwatch_collector_external_label_overrides_total";
        write_help_line(
            &mut out,
            name,
            "External labels that replaced a different value already on a series.",
        );
        write_type_line(&mut out, name, "counter");
        let l = Labels::from_pairs([("__name__", name)]);
        write_sample_line(
            &mut out,
            &l,
            self.external_label_overrides.load(Ordering::Relaxed) as f64,
            None,
        );

        self.render_durations(&mut out);
        self.logs.render(&mut out);
        out
    }

    fn render_failures(&self, out: &mut String) {
        let failures: Vec<(&String, BTreeMap<String, FailedCount>)> = self
            .endpoints
            .iter()
            .map(|(url, m)| (url, m.failures()))
            .collect();
        for (name, help, get) in [
            (
                "fleetwatch_collector_samples_failed_total",
                "Samples dropped because the endpoint rejected them for good, by reason (http_<status>).",
                (|c: &FailedCount| c.samples) as fn(&FailedCount) -> u64,
            ),
            (
                "fleetwatch_collector_batches_failed_total",
                "Batches dropped because the endpoint rejected them for good, by reason (http_<status>).",
                |c: &FailedCount| c.batches,
            ),
        ] {
            write_help_line(out, name, help);
            write_type_line(out, name, "counter");
            for (url, by_reason) in &failures {
                for (reason, c) in by_reason {
                    let l = Labels::from_pairs([
                        ("__name__", name),
                        ("reason", reason.as_str()),
                        ("url", url.as_str()),
                    ]);
                    write_sample_line(out, &l, get(c) as f64, None);
                }
            }
        }
    }

    fn render_durations(&self, out: &mut String) {
        let name = "fleetwatch_collector_remote_write_request_duration_seconds";
        write_help_line(
            out,
            name,
            "Duration of remote-write requests, whatever their outcome.",
        );
        write_type_line(out, name, "histogram");
        let bucket = format!("{name}_bucket");
        for (url, m) in &self.endpoints {
            let mut cumulative = 0u64;
            for (i, counter) in m.duration_buckets.iter().enumerate() {
                cumulative += counter.load(Ordering::Relaxed);
                let le = DURATION_BUCKETS.get(i).map_or_else(
                    || "+Inf".to_string(),
                    |b| crate::scrape::format_openmetrics_float(*b),
                );
                let l = Labels::from_pairs([
                    ("__name__", bucket.as_str()),
                    ("le", &le),
                    ("url", url.as_str()),
                ]);
                write_sample_line(out, &l, cumulative as f64, None);
            }
            let sum = m.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let l = Labels::from_pairs([
                ("__name__", format!("{name}_sum").as_str()),
                ("url", url.as_str()),
            ]);
            write_sample_line(out, &l, sum, None);
            let l = Labels::from_pairs([
                ("__name__", format!("{name}_count").as_str()),
                ("url", url.as_str()),
            ]);
            write_sample_line(
                out,
                &l,
                m.duration_count.load(Ordering::Relaxed) as f64,
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_exposition() {
        let m = CollectorMetrics::new(["node"], ["http://hub/api/v1/write"]);
        m.job("node").scrapes.fetch_add(3, Ordering::Relaxed);
        let ep = m.endpoint("http://hub/api/v1/write");
        ep.samples_sent.fetch_add(10, Ordering::Relaxed);
        ep.observe_request(Duration::from_millis(30));
        m.external_label_overrides.fetch_add(2, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains("fleetwatch_collector_scrapes_total{job=\"node\"} 3\n"),
            "{text}"
        );
        assert!(text.contains(
            "fleetwatch_collector_samples_sent_total{url=\"http://hub/api/v1/write\"} 10\n"
        ));
        assert!(text.contains("fleetwatch_collector_external_label_overrides_total 2\n"));
        assert!(
            text.contains("fleetwatch_collector_samples_dropped_total{reason=\"queue_full\"} 0\n")
        );
        assert!(text.contains(
            "fleetwatch_collector_remote_write_request_duration_seconds_bucket{le=\"0.025\",url=\"http://hub/api/v1/write\"} 0\n"
        ));
        assert!(text.contains(
            "fleetwatch_collector_remote_write_request_duration_seconds_bucket{le=\"0.05\",url=\"http://hub/api/v1/write\"} 1\n"
        ));
        assert!(text.contains("fleetwatch_collector_remote_write_request_duration_seconds_count{url=\"http://hub/api/v1/write\"} 1\n"));
        // The output parses as exposition text.
        let parsed = crate::scrape::parse_exposition(&text, crate::scrape::Format::Text)
            .expect("valid exposition text");
        assert!(parsed.samples.len() > 10);
    }
}
