//! The hub's own metrics, served on `/metrics` in the text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use fleetwatch_storage::Db;

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct HubMetrics {
    /// Remote-write requests accepted.
    pub write_requests_ok: AtomicU64,
    /// Samples received in accepted remote-write requests.
    pub write_samples_received: AtomicU64,
    /// Remote-write requests rejected, by reason.
    pub write_rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Queries answered, by endpoint and outcome.
    pub queries: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Loki push counters.
    pub logs: crate::api::loki::LogMetrics,
}

impl HubMetrics {
    /// Counts a rejected write under `reason`.
    pub fn count_rejected(&self, reason: &'static str) {
        if let Ok(mut m) = self.write_rejected.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Counts a query on `endpoint` with `outcome` (`success` or an error type).
    pub fn count_query(&self, endpoint: &'static str, outcome: &'static str) {
        if let Ok(mut m) = self.queries.lock() {
            *m.entry((endpoint, outcome)).or_default() += 1;
        }
    }

    /// Renders every metric, the head's and the blocks' included.
    pub fn render(&self, db: &Db) -> String {
        let mut out = String::with_capacity(4096);
        let head = db.head();
        let h = head.stats();
        let b = db.blocks().stats();
        let blocks = db.blocks().blocks();
        let c = |v: &AtomicU64| v.load(Ordering::Relaxed) as f64;

        write_family(
            &mut out,
            "counter",
            &[
                (
                    "fleetwatch_remote_write_requests_total",
                    "Remote-write requests accepted.",
                    c(&self.write_requests_ok),
                ),
                (
                    "fleetwatch_remote_write_samples_received_total",
                    "Samples in accepted remote-write requests.",
                    c(&self.write_samples_received),
                ),
            ],
        );
        let _ = writeln!(out, "# HELP fleetwatch_remote_write_requests_rejected_total Remote-write requests rejected, by reason.\n# TYPE fleetwatch_remote_write_requests_rejected_total counter");
        if let Ok(m) = self.write_rejected.lock() {
            for (reason, v) in m.iter() {
                let _ = writeln!(
                    out,
                    "fleetwatch_remote_write_requests_rejected_total{{reason=\"{reason}\"}} {v}"
                );
            }
        }
        let _ = writeln!(out, "# HELP fleetwatch_queries_total Queries answered, by endpoint and outcome.\n# TYPE fleetwatch_queries_total counter");
        if let Ok(m) = self.queries.lock() {
            for ((endpoint, outcome), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "fleetwatch_queries_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {v}"
                );
            }
        }
        write_family(
            &mut out,
            "counter",
            &[
                (
                    "fleetwatch_head_samples_appended_total",
                    "Samples stored in the head.",
                    c(&h.samples_appended),
                ),
                (
                    "fleetwatch_head_duplicate_samples_total",
                    "Identical duplicate samples ignored.",
                    c(&h.duplicates_ignored),
                ),
                (
                    "fleetwatch_head_requests_rejected_total",
                    "Append requests rejected as bad data.",
                    c(&h.requests_rejected),
                ),
                (
                    "fleetwatch_head_series_created_total",
                    "Series created in the head.",
                    c(&h.series_created),
                ),
            ],
        );
        write_family(
            &mut out,
            "gauge",
            &[
                (
                    "fleetwatch_head_series",
                    "Series in the head.",
                    head.num_series() as f64,
                ),
                (
                    "fleetwatch_head_samples",
                    "Samples held in memory.",
                    head.num_samples() as f64,
                ),
            ],
        );
        write_family(
            &mut out,
            "counter",
            &[
                (
                    "fleetwatch_wal_fsyncs_total",
                    "WAL fsyncs.",
                    c(&h.wal_fsyncs),
                ),
                (
                    "fleetwatch_wal_fsynced_requests_total",
                    "Append requests covered by WAL fsyncs (group commit).",
                    c(&h.wal_fsynced_requests),
                ),
                (
                    "fleetwatch_wal_bytes_written_total",
                    "Bytes written to the WAL.",
                    c(&h.wal_bytes),
                ),
                (
                    "fleetwatch_wal_failures_total",
                    "WAL write or fsync failures.",
                    c(&h.wal_failures),
                ),
            ],
        );
        write_family(
            &mut out,
            "gauge",
            &[
                (
                    "fleetwatch_wal_replay_records",
                    "Records replayed from the WAL at start.",
                    c(&h.wal_replayed_records),
                ),
                (
                    "fleetwatch_wal_replay_duration_seconds",
                    "Time the WAL replay took at start.",
                    c(&h.wal_replay_micros) / 1e6,
                ),
                (
                    "fleetwatch_wal_truncated_bytes",
                    "Bytes cut off torn or corrupt WAL tails at start.",
                    c(&h.wal_truncated_bytes),
                ),
                (
                    "fleetwatch_wal_corrupt_segments",
                    "WAL segments found with a torn or corrupt tail at start.",
                    c(&h.wal_corrupt_segments),
                ),
                (
                    "fleetwatch_head_sample_bytes",
                    "Bytes the head's in-memory samples take (encoded chunks and open buffers).",
                    head.sample_memory_bytes() as f64,
                ),
                ("fleetwatch_blocks", "Blocks on disk.", blocks.len() as f64),
                (
                    "fleetwatch_blocks_bytes",
                    "Bytes of blocks on disk.",
                    db.blocks().total_bytes() as f64,
                ),
                (
                    "fleetwatch_blocks_samples",
                    "Samples in blocks.",
                    blocks.iter().map(|m| m.num_samples as f64).sum(),
                ),
            ],
        );
        write_family(
            &mut out,
            "counter",
            &[
                (
                    "fleetwatch_blocks_written_total",
                    "Blocks written (head cuts and compactions).",
                    c(&b.blocks_written),
                ),
                (
                    "fleetwatch_compactions_total",
                    "Compactions completed.",
                    c(&b.compactions),
                ),
                (
                    "fleetwatch_blocks_retention_deleted_total",
                    "Blocks deleted by retention.",
                    c(&b.blocks_retention_deleted),
                ),
            ],
        );
        write_family(
            &mut out,
            "gauge",
            &[
                (
                    "fleetwatch_blocks_corrupt_skipped",
                    "Blocks skipped at start because a file was missing, truncated or corrupt.",
                    c(&b.blocks_corrupt_skipped),
                ),
                (
                    "fleetwatch_blocks_incomplete_removed",
                    "Incomplete blocks removed at start.",
                    c(&b.blocks_incomplete_removed),
                ),
            ],
        );
        write_family(
            &mut out,
            "counter",
            &[
                (
                    "fleetwatch_block_selects_total",
                    "Block selects served.",
                    c(&b.selects),
                ),
                (
                    "fleetwatch_block_bytes_read_total",
                    "Bytes read from block sample files.",
                    c(&b.bytes_read),
                ),
                (
                    "fleetwatch_block_row_groups_read_total",
                    "Row groups decoded by selects.",
                    c(&b.row_groups_read),
                ),
                (
                    "fleetwatch_block_row_groups_skipped_total",
                    "Row groups skipped by statistics.",
                    c(&b.row_groups_skipped),
                ),
                (
                    "fleetwatch_block_pages_read_total",
                    "Pages read by selects.",
                    c(&b.pages_read),
                ),
                (
                    "fleetwatch_block_pages_skipped_total",
                    "Pages skipped thanks to the page index.",
                    c(&b.pages_skipped),
                ),
            ],
        );
        self.logs.render(&mut out);
        process_metrics(&mut out);
        out
    }
}

/// Appends unlabelled metrics of one `kind` (`counter` or `gauge`), each
/// with its HELP and TYPE lines.
fn write_family(out: &mut String, kind: &str, metrics: &[(&str, &str, f64)]) {
    for (name, help, v) in metrics {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

/// Appends `process_resident_memory_bytes` and `process_cpu_seconds_total`
/// read from `/proc/self` where available.
pub fn process_metrics(out: &mut String) {
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        if let Some(rss_pages) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
        {
            let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}", rss_pages * 4096);
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            // Index 11 and 12 here are utime and stime (field 3 is at index 0).
            let secs = (ticks(11) + ticks(12)) as f64 / 100.0;
            let _ = writeln!(out, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {secs}");
        }
    }
}
