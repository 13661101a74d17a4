//! Label sets shared between what a disk queue writes and what it reads
//! back: reading a record would otherwise rebuild every sample's labels as
//! fresh `String`s (a large share of the collector's allocations). The
//! writer remembers, by an xxh3 hash of each sample's encoded labels, a weak
//! reference to the label set it wrote (the scrape cache's); the reader
//! hashes the same bytes and, when that set is still alive and equal byte
//! for byte, reuses it. Anything else (a restart, a set no longer scraped)
//! is decoded as before.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use fleetwatch_model::Labels;

/// Weak references to label sets by the hash of their encoded form.
#[derive(Debug, Default)]
pub struct LabelIntern {
    map: HashMap<u64, Weak<Labels>>,
    /// Insertions since dead entries were last swept.
    inserted: usize,
    /// Entries left by the last sweep.
    swept_len: usize,
}

impl LabelIntern {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers that `labels` were written with encoded-labels hash `hash`.
    pub fn remember(&mut self, hash: u64, labels: &Arc<Labels>) {
        if let Some(w) = self.map.get(&hash) {
            if std::ptr::eq(w.as_ptr(), Arc::as_ptr(labels)) {
                return;
            }
        }
        self.map.insert(hash, Arc::downgrade(labels));
        self.inserted += 1;
        // Sweep dead entries once as many insertions happened as the last
        // sweep left: at most about twice the live sets, amortised O(1).
        if self.inserted >= self.swept_len.max(1024) {
            self.map.retain(|_, w| w.strong_count() > 0);
            self.inserted = 0;
            self.swept_len = self.map.len();
        }
    }

    /// The live label set written with hash `hash`, if any (the caller
    /// checks that it matches).
    pub fn get(&self, hash: u64) -> Option<Arc<Labels>> {
        self.map.get(&hash)?.upgrade()
    }

    /// Entries held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::codec::{decode_payload_interned, encode_record_interned, HEADER_LEN};
    use crate::queue::QueuedSample;
    use fleetwatch_model::Sample;

    fn sample(labels: &Arc<Labels>, v: f64) -> QueuedSample {
        QueuedSample {
            labels: Arc::clone(labels),
            sample: Sample::new(1, v),
        }
    }

    #[test]
    fn reading_back_shares_the_written_label_sets_while_they_live() {
        let a = Arc::new(Labels::from_pairs([("__name__", "a"), ("x", "1")]));
        let b = Arc::new(Labels::from_pairs([("__name__", "b")]));
        let mut intern = LabelIntern::new();
        let frame = encode_record_interned(&[sample(&a, 1.0), sample(&b, 2.0)], Some(&mut intern));
        assert_eq!(intern.len(), 2);
        let got = decode_payload_interned(&frame[HEADER_LEN..], Some(&intern)).unwrap();
        assert!(Arc::ptr_eq(&got[0].labels, &a));
        assert!(Arc::ptr_eq(&got[1].labels, &b));
        assert_eq!((got[0].sample.value, got[1].sample.value), (1.0, 2.0));
        drop(got);
        // Once the writer's set is gone, reading rebuilds an equal one.
        drop(b);
        let got = decode_payload_interned(&frame[HEADER_LEN..], Some(&intern)).unwrap();
        assert!(Arc::ptr_eq(&got[0].labels, &a));
        assert_eq!(got[1].labels.to_string(), "b");
        // Without the table every set is rebuilt.
        let plain = decode_payload_interned(&frame[HEADER_LEN..], None).unwrap();
        assert!(!Arc::ptr_eq(&plain[0].labels, &a));
        assert_eq!(plain[0].labels, a);
    }

    #[test]
    fn a_hash_collision_is_caught_by_comparing_bytes() {
        let a = Arc::new(Labels::from_pairs([("__name__", "a")]));
        let other = Arc::new(Labels::from_pairs([("__name__", "zz")]));
        let mut intern = LabelIntern::new();
        let frame = encode_record_interned(&[sample(&a, 1.0)], Some(&mut intern));
        // Point a's hash at a different set, as a collision would.
        let hash = *intern.map.keys().next().unwrap();
        intern.remember(hash, &other);
        let got = decode_payload_interned(&frame[HEADER_LEN..], Some(&intern)).unwrap();
        assert_eq!(got[0].labels, a);
        assert!(!Arc::ptr_eq(&got[0].labels, &other));
    }

    #[test]
    fn dead_entries_are_swept() {
        let mut intern = LabelIntern::new();
        for i in 0..5000u64 {
            let l = Arc::new(Labels::from_pairs([("__name__", format!("m{i}"))]));
            intern.remember(i, &l);
        }
        assert!(intern.len() <= 1024, "{}", intern.len());
    }
}
