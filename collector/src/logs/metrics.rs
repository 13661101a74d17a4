//! The log pipeline's counters, rendered into the collector's `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use fleetwatch_model::exposition::{write_help_line, write_sample_line, write_type_line};
use fleetwatch_model::Labels;

/// Counters of log tailing and shipping.
#[derive(Debug, Default)]
pub struct LogMetrics {
    /// Lines read from files (after joining partial lines).
    pub lines_read: AtomicU64,
    /// Bytes read from files.
    pub bytes_read: AtomicU64,
    /// Lines the hub acknowledged.
    pub lines_sent: AtomicU64,
    /// Lines that could not be parsed in the file's format (shipped as
    /// they are).
    pub lines_malformed: AtomicU64,
    /// Lines dropped by the `include`/`exclude` filters.
    pub dropped_filter: AtomicU64,
    /// Lines cut at `max_line_bytes` (shipped cut).
    pub dropped_too_long: AtomicU64,
    /// Lines of queued batches dropped to stay in the disk budget.
    pub dropped_disk_budget: AtomicU64,
    /// Lines of queued batches found corrupt.
    pub dropped_corrupt: AtomicU64,
    /// Files being tailed.
    pub files_watched: AtomicU64,
    /// Rotations noticed (renamed or truncated files).
    pub rotations: AtomicU64,
    /// Bytes of the log queue on disk.
    pub queue_bytes: AtomicU64,
    /// Push attempts that failed and were retried.
    pub push_retries: AtomicU64,
    /// Damaged checkpoints found at start.
    pub checkpoint_errors: AtomicU64,
    /// Lines the hub rejected for good, by reason (`http_<status>`).
    failed: Mutex<BTreeMap<String, u64>>,
}

impl LogMetrics {
    /// Counts `lines` rejected for `reason`.
    pub fn record_failure(&self, reason: &str, lines: u64) {
        *self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason.to_string())
            .or_default() += lines;
    }

    /// Lines rejected for good, by reason.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Appends the metrics in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let one = |out: &mut String, name: &str, kind: &str, help: &str, v: f64| {
            write_help_line(out, name, help);
            write_type_line(out, name, kind);
            write_sample_line(out, &Labels::from_pairs([("__name__", name)]), v, None);
        };
        let p = "fleetwatch_collector_log_";
        for (name, kind, help, v) in [
            (
                "lines_read_total",
                "counter",
                "Log lines read from files (partial lines joined).",
                &self.lines_read,
            ),
            (
                "bytes_read_total",
                "counter",
                "Bytes read from log files.",
                &self.bytes_read,
            ),
            (
                "lines_sent_total",
                "counter",
                "Log lines acknowledged by the Loki endpoint.",
                &self.lines_sent,
            ),
            (
                "lines_malformed_total",
                "counter",
                "Log lines not in the file's format (CRI/Docker), shipped as they are.",
                &self.lines_malformed,
            ),
            (
                "files_watched",
                "gauge",
                "Log files being tailed.",
                &self.files_watched,
            ),
            (
                "rotations_total",
                "counter",
                "Log file rotations noticed (rename or truncation).",
                &self.rotations,
            ),
            (
                "queue_bytes",
                "gauge",
                "Bytes of the log queue on disk.",
                &self.queue_bytes,
            ),
            (
                "push_retries_total",
                "counter",
                "Log pushes that failed and were retried (5xx, 429, network).",
                &self.push_retries,
            ),
            (
                "checkpoint_errors_total",
                "counter",
                "Damaged log checkpoints found at start (files re-read from the beginning).",
                &self.checkpoint_errors,
            ),
        ] {
            one(out, &format!("{p}{name}"), kind, help, get(v));
        }
        let name = format!("{p}lines_dropped_total");
        write_help_line(
            out,
            &name,
            "Log lines dropped or cut before shipping: filter, too_long (cut at max_line_bytes), disk_budget (oldest queued first), corrupt.",
        );
        write_type_line(out, &name, "counter");
        for (reason, v) in [
            ("corrupt", &self.dropped_corrupt),
            ("disk_budget", &self.dropped_disk_budget),
            ("filter", &self.dropped_filter),
            ("too_long", &self.dropped_too_long),
        ] {
            let l = Labels::from_pairs([("__name__", name.as_str()), ("reason", reason)]);
            write_sample_line(out, &l, get(v), None);
        }
        let name = format!("{p}lines_failed_total");
        write_help_line(
            out,
            &name,
            "Log lines the Loki endpoint rejected for good, by reason (http_<status>).",
        );
        write_type_line(out, &name, "counter");
        for (reason, n) in self.failures() {
            let l = Labels::from_pairs([("__name__", name.as_str()), ("reason", reason.as_str())]);
            write_sample_line(out, &l, n as f64, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_text() {
        let m = LogMetrics::default();
        m.lines_read.fetch_add(3, Ordering::Relaxed);
        m.dropped_filter.fetch_add(1, Ordering::Relaxed);
        m.record_failure("http_400", 2);
        m.record_failure("http_400", 5);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("fleetwatch_collector_log_lines_read_total 3\n"),
            "{out}"
        );
        assert!(out.contains("fleetwatch_collector_log_lines_dropped_total{reason=\"filter\"} 1\n"));
        assert!(
            out.contains("fleetwatch_collector_log_lines_failed_total{reason=\"http_400\"} 7\n")
        );
        let parsed = crate::scrape::parse_exposition(&out, crate::scrape::Format::Text);
        assert!(parsed.is_ok(), "{out}: {:?}", parsed.err());
    }
}
