//! VM log lines, written like Kubernetes pod logs:
//! `<log_dir>/<namespace>_virt-launcher-<vm>_<uid>/compute/0.log`, one
//! CRI-format line each (`<RFC3339Nano> stdout F <message>`), the message
//! being virt-launcher's JSON log record.
//!
//! Events are queued while the simulation steps (the queue is bounded; when
//! it is full, new events are dropped and counted) and at most
//! [`LINES_PER_RENDER`] are written per render, outside the state lock.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::fleet::Vm;

/// At most this many lines are written per render.
pub(crate) const LINES_PER_RENDER: usize = 256;

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Error => "error",
        }
    }
}

/// One formatted line and the file it goes to, relative to the log dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub path: String,
    pub text: String,
}

/// Events waiting to be written.
#[derive(Debug)]
pub(crate) struct LogQueue {
    pending: VecDeque<LogLine>,
    cap: usize,
    dropped: u64,
    seq: u64,
}

impl LogQueue {
    /// A queue holding at most `cap` lines.
    pub fn new(cap: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
            seq: 0,
        }
    }

    /// Queues one virt-launcher record for `vm` at `ts_ms`.
    pub fn push(&mut self, vm: &Vm, ts_ms: i64, level: Level, pos: &str, msg: &str) {
        if self.pending.len() >= self.cap {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::debug!(
                    dropped = self.dropped,
                    "simulator log queue full, dropping lines"
                );
            }
            return;
        }
        // Sub-millisecond sequence so lines of one millisecond stay ordered.
        self.seq = self.seq.wrapping_add(1);
        let ts_ns = i128::from(ts_ms) * 1_000_000 + i128::from(self.seq % 1000) * 1000;
        let mut text = String::with_capacity(320);
        text.push_str(&rfc3339(ts_ns, 9));
        text.push_str(" stdout F {\"component\":\"virt-launcher\",\"kind\":\"VirtualMachineInstance\",\"level\":\"");
        text.push_str(level.as_str());
        text.push_str("\",\"msg\":\"");
        json_escape_into(&mut text, msg);
        text.push_str("\",\"name\":\"");
        json_escape_into(&mut text, &vm.name);
        text.push_str("\",\"namespace\":\"");
        json_escape_into(&mut text, vm.namespace);
        text.push_str("\",\"pos\":\"");
        json_escape_into(&mut text, pos);
        text.push_str("\",\"timestamp\":\"");
        text.push_str(&rfc3339(ts_ns, 6));
        text.push_str("\",\"uid\":\"");
        text.push_str(&vm.uid);
        text.push_str("\"}\n");
        self.pending.push_back(LogLine {
            path: pod_log_path(vm),
            text,
        });
    }

    /// Takes up to `max` lines, oldest first.
    pub fn take(&mut self, max: usize) -> Vec<LogLine> {
        let n = max.min(self.pending.len());
        self.pending.drain(..n).collect()
    }

    /// Lines waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

/// `<namespace>_<pod>_<uid>/compute/0.log`: the kubelet's layout under
/// `/var/log/pods`, for the VM's virt-launcher pod and its `compute` container.
pub(crate) fn pod_log_path(vm: &Vm) -> String {
    format!("{}_{}_{}/compute/0.log", vm.namespace, vm.pod, vm.uid)
}

/// Appends `lines` to their files under `dir`, creating directories as needed.
pub(crate) fn write_lines(dir: &Path, lines: &[LogLine]) -> std::io::Result<()> {
    let mut by_file: BTreeMap<&str, String> = BTreeMap::new();
    for l in lines {
        by_file
            .entry(l.path.as_str())
            .or_default()
            .push_str(&l.text);
    }
    for (rel, text) in by_file {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(text.as_bytes())?;
    }
    Ok(())
}

/// Formats nanoseconds since the epoch as RFC 3339 in UTC with `digits`
/// fractional digits (9 is the kubelet's RFC3339Nano, fixed width).
pub(crate) fn rfc3339(ts_ns: i128, digits: u32) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let nanos = ts_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if digits > 0 {
        let digits = digits.min(9);
        let frac = nanos / 10i128.pow(9 - digits);
        let _ = write!(out, ".{frac:0width$}", width = digits as usize);
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0, 9), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T12:34:56.789Z
        let ms: i128 = 1_709_210_096_789;
        assert_eq!(rfc3339(ms * 1_000_000, 9), "2024-02-29T12:34:56.789000000Z");
        assert_eq!(
            rfc3339(ms * 1_000_000 + 1234, 6),
            "2024-02-29T12:34:56.789001Z"
        );
        assert_eq!(rfc3339(-1_000_000_000, 0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_escape_into(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001");
    }
}
