//! Joining CRI/Docker partial lines: parts of one stream are appended until
//! a part that ends the line; a line longer than `max` bytes is cut there
//! (the rest of its parts are skipped) and reported as cut.

use std::collections::BTreeMap;

use super::checkpoint::Pending;
use super::format::Entry;
pub(crate) use crate::remote_write::truncate as cut_at;

/// A whole line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Timestamp of its first part.
    pub ts_ns: i64,
    /// The text (at most `max` bytes).
    pub text: String,
    /// True when the line was longer than `max` and was cut.
    pub cut: bool,
}

/// Adds one parsed entry; returns the line it completes, if any.
pub fn push(pending: &mut BTreeMap<String, Pending>, e: Entry, max: usize) -> Option<Line> {
    if !e.partial && !pending.contains_key(&e.stream) {
        let cut = e.text.len() > max;
        let text = if cut {
            cut_at(&e.text, max).to_string()
        } else {
            e.text
        };
        return Some(Line {
            ts_ns: e.ts_ns,
            text,
            cut,
        });
    }
    let p = pending.entry(e.stream.clone()).or_insert_with(|| Pending {
        ts_ns: e.ts_ns,
        text: String::new(),
        cut: false,
    });
    if !p.cut {
        let room = max - p.text.len();
        let part = cut_at(&e.text, room);
        p.text.push_str(part);
        p.cut = part.len() < e.text.len();
    }
    if e.partial {
        return None;
    }
    let p = pending.remove(&e.stream)?;
    Some(Line {
        ts_ns: p.ts_ns,
        text: p.text,
        cut: p.cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64, stream: &str, partial: bool, text: &str) -> Entry {
        Entry {
            ts_ns: ts,
            stream: stream.to_string(),
            partial,
            text: text.to_string(),
        }
    }

    #[test]
    fn joins_partials_per_stream() {
        let mut p = BTreeMap::new();
        assert_eq!(push(&mut p, entry(1, "stdout", true, "hel"), 100), None);
        // A whole stderr line in between does not disturb stdout's parts.
        assert_eq!(
            push(&mut p, entry(2, "stderr", false, "err"), 100),
            Some(Line {
                ts_ns: 2,
                text: "err".into(),
                cut: false
            })
        );
        assert_eq!(push(&mut p, entry(3, "stdout", true, "lo "), 100), None);
        assert_eq!(
            push(&mut p, entry(4, "stdout", false, "world"), 100),
            Some(Line {
                ts_ns: 1,
                text: "hello world".into(),
                cut: false
            })
        );
        assert!(p.is_empty());
    }

    #[test]
    fn cuts_long_lines_and_skips_their_rest() {
        let mut p = BTreeMap::new();
        assert_eq!(push(&mut p, entry(1, "stdout", true, "abcdef"), 8), None);
        assert_eq!(push(&mut p, entry(2, "stdout", true, "ghijkl"), 8), None);
        assert_eq!(p["stdout"].text.len(), 8);
        assert_eq!(
            push(&mut p, entry(3, "stdout", false, "mno"), 8),
            Some(Line {
                ts_ns: 1,
                text: "abcdefgh".into(),
                cut: true
            })
        );
        let whole = push(&mut p, entry(4, "stdout", false, "ééééé"), 5).expect("line");
        assert_eq!(whole.text, "éé");
        assert!(whole.cut);
    }
}
