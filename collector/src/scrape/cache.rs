//! The per-target scrape cache, like Prometheus's: the raw text of each
//! exposed series maps to what the collector made of it last time (its
//! final labels after the target merge, metric relabeling and external
//! labels, or that it was dropped or refused), so labels are built only for
//! series not seen before. It also tracks staleness: each series remembers
//! the scrape (epoch) that last produced it, so a series that vanishes gets
//! a staleness marker without hashing whole label sets every scrape.
//!
//! Entries not seen in a scrape are forgotten after it, so the cache holds
//! what the target exposes now and no more.

use std::collections::HashMap;
use std::sync::Arc;

use fleetwatch_model::Labels;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// What a series' raw text came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A series shipped, in slot `.0` of the cache.
    Series(u32),
    /// Dropped by `metric_relabel_configs`.
    Dropped,
    /// Invalid labels (counted as invalid samples, not shipped).
    Invalid,
    /// Breaks a limit: the scrape fails with this reason.
    Rejected(Arc<str>),
}

/// What [`ScrapeCache::resolve`] is told about a series not seen before.
#[derive(Debug)]
pub enum Resolved {
    /// Shipped with these labels; `overrides` external labels replaced a
    /// value of the series (counted every scrape).
    Series {
        /// The final labels.
        labels: Labels,
        /// External label overrides of this series.
        overrides: u64,
    },
    /// See [`Outcome::Dropped`].
    Dropped,
    /// See [`Outcome::Invalid`].
    Invalid,
    /// See [`Outcome::Rejected`].
    Rejected(String),
}

/// A series produced in the current scrape.
#[derive(Debug)]
pub enum Use {
    /// The series was already produced by this scrape.
    Duplicate,
    /// First time in this scrape.
    Fresh {
        /// Its labels.
        labels: Arc<Labels>,
        /// External label overrides of the series.
        overrides: u64,
        /// Tracked now and not in the previous successful scrape.
        added: bool,
    },
}

#[derive(Debug)]
struct RawEntry {
    outcome: Outcome,
    seen: u64,
}

#[derive(Debug)]
struct Slot {
    /// `None` for a free slot.
    labels: Option<Arc<Labels>>,
    overrides: u64,
    /// The last scrape that produced the series.
    seen: u64,
    /// The last scrape that produced it without an exposed timestamp
    /// (tracked for staleness), and the one before.
    tracked: u64,
    prev_tracked: u64,
}

/// The scrape cache of one target.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    raw: HashMap<Box<str>, RawEntry, Xxh3DefaultBuilder>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_labels: HashMap<Arc<Labels>, u32, Xxh3DefaultBuilder>,
    /// The current scrape; 0 before the first.
    epoch: u64,
    /// The last successful scrape, if the previous scrape succeeded.
    last_success: Option<u64>,
    raw_seen: usize,
    slots_used: usize,
}

impl ScrapeCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.epoch += 1;
        self.raw_seen = 0;
    }

    /// What `raw` came to, if it was seen before; marks it seen.
    pub fn lookup(&mut self, raw: &str) -> Option<Outcome> {
        let e = self.raw.get_mut(raw)?;
        if e.seen != self.epoch {
            e.seen = self.epoch;
            self.raw_seen += 1;
        }
        Some(e.outcome.clone())
    }

    /// Records what `raw`, not seen before, came to.
    pub fn resolve(&mut self, raw: &str, resolved: Resolved) -> Outcome {
        let outcome = match resolved {
            Resolved::Series { labels, overrides } => {
                Outcome::Series(self.intern(labels, overrides))
            }
            Resolved::Dropped => Outcome::Dropped,
            Resolved::Invalid => Outcome::Invalid,
            Resolved::Rejected(reason) => Outcome::Rejected(reason.into()),
        };
        self.raw.insert(
            raw.into(),
            RawEntry {
                outcome: outcome.clone(),
                seen: self.epoch,
            },
        );
        self.raw_seen += 1;
        outcome
    }

    fn intern(&mut self, labels: Labels, overrides: u64) -> u32 {
        if let Some(&id) = self.by_labels.get(&labels) {
            return id;
        }
        let labels = Arc::new(labels);
        let slot = Slot {
            labels: Some(Arc::clone(&labels)),
            overrides,
            seen: 0,
            tracked: 0,
            prev_tracked: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_labels.insert(labels, id);
        id
    }

    /// Marks series `id` produced by this scrape, tracked for staleness
    /// when `track` (no exposed timestamp).
    pub fn use_series(&mut self, id: u32, track: bool) -> Use {
        let epoch = self.epoch;
        let last = self.last_success;
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return Use::Duplicate;
        };
        let Some(labels) = &slot.labels else {
            return Use::Duplicate;
        };
        if slot.seen == epoch {
            return Use::Duplicate;
        }
        slot.seen = epoch;
        self.slots_used += 1;
        let mut added = false;
        if track {
            added = last != Some(slot.tracked);
            slot.prev_tracked = slot.tracked;
            slot.tracked = epoch;
        }
        Use::Fresh {
            labels: Arc::clone(labels),
            overrides: slot.overrides,
            added,
        }
    }

    /// Ends a successful scrape: the series tracked in the previous
    /// successful scrape and not in this one (sorted), for staleness
    /// markers. Forgets what this scrape did not produce.
    pub fn finish_success(&mut self) -> Vec<Arc<Labels>> {
        let stale = self.stale_since_last(true);
        self.last_success = Some(self.epoch);
        self.forget_unseen();
        stale
    }

    /// Ends a failed scrape: every series of the last successful scrape
    /// (sorted), for staleness markers, once. Forgets what this scrape did
    /// not produce.
    pub fn finish_failure(&mut self) -> Vec<Arc<Labels>> {
        let stale = self.stale_since_last(false);
        self.last_success = None;
        self.forget_unseen();
        stale
    }

    /// Every series of the last successful scrape (sorted), for when the
    /// target goes away; they are not reported again.
    pub fn stale_all(&mut self) -> Vec<Arc<Labels>> {
        let stale = self.stale_since_last(false);
        self.last_success = None;
        stale
    }

    /// Series tracked in the last successful scrape; with `only_vanished`,
    /// those the current scrape did not track again.
    fn stale_since_last(&self, only_vanished: bool) -> Vec<Arc<Labels>> {
        let Some(last) = self.last_success else {
            return Vec::new();
        };
        let epoch = self.epoch;
        let mut stale: Vec<Arc<Labels>> = self
            .slots
            .iter()
            .filter_map(|s| {
                let labels = s.labels.as_ref()?;
                let now = s.tracked == epoch && epoch != last;
                let before = s.tracked == last || (now && s.prev_tracked == last);
                (before && !(only_vanished && now)).then(|| Arc::clone(labels))
            })
            .collect();
        stale.sort();
        stale
    }

    fn forget_unseen(&mut self) {
        let epoch = self.epoch;
        if self.raw_seen < self.raw.len() {
            self.raw.retain(|_, e| e.seen == epoch);
        }
        let live = self.slots.len() - self.free.len();
        if self.slots_used < live {
            for (id, s) in self.slots.iter_mut().enumerate() {
                if s.seen != epoch {
                    if let Some(labels) = s.labels.take() {
                        self.by_labels.remove(&labels);
                        self.free.push(u32::try_from(id).unwrap_or(u32::MAX));
                    }
                }
            }
        }
        self.slots_used = 0;
    }

    /// Number of raw series texts cached.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Number of distinct series (final label sets) cached.
    pub fn series(&self) -> usize {
        self.by_labels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(cache: &mut ScrapeCache, raw: &str) -> Outcome {
        match cache.lookup(raw) {
            Some(o) => o,
            None => cache.resolve(
                raw,
                Resolved::Series {
                    labels: Labels::from_pairs([("__name__", raw)]),
                    overrides: 0,
                },
            ),
        }
    }

    /// One scrape of `raws` (all tracked): added count and stale names.
    fn scrape(cache: &mut ScrapeCache, raws: &[&str]) -> (usize, Vec<String>) {
        cache.begin();
        let mut added = 0;
        for raw in raws {
            let Outcome::Series(id) = series(cache, raw) else {
                panic!("not a series")
            };
            if let Use::Fresh { added: a, .. } = cache.use_series(id, true) {
                added += usize::from(a);
            }
        }
        let stale = cache.finish_success();
        (added, names(&stale))
    }

    fn names(v: &[Arc<Labels>]) -> Vec<String> {
        v.iter()
            .map(|l| l.metric_name().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn vanished_series_go_stale_once_and_are_forgotten() {
        let mut c = ScrapeCache::new();
        assert_eq!(scrape(&mut c, &["a", "b", "c"]), (3, vec![]));
        assert_eq!(scrape(&mut c, &["a", "c", "d"]), (1, vec!["b".into()]));
        assert_eq!(c.len(), 3, "b forgotten");
        assert_eq!(c.series(), 3);
        assert_eq!(scrape(&mut c, &["a", "c", "d"]), (0, vec![]));
        assert_eq!(
            scrape(&mut c, &["b"]),
            (1, vec!["a".into(), "c".into(), "d".into()])
        );
    }

    #[test]
    fn failure_marks_the_last_success_stale_once() {
        let mut c = ScrapeCache::new();
        scrape(&mut c, &["a", "b"]);
        // A failed scrape that got as far as tracking `a` again.
        c.begin();
        let Some(Outcome::Series(id)) = c.lookup("a") else {
            panic!("a is cached")
        };
        assert!(matches!(c.use_series(id, true), Use::Fresh { .. }));
        assert_eq!(names(&c.finish_failure()), ["a", "b"]);
        c.begin();
        assert!(c.finish_failure().is_empty(), "markers are written once");
        assert_eq!(scrape(&mut c, &["a"]), (1, vec![]));
        assert_eq!(names(&c.stale_all()), ["a"]);
        assert!(c.stale_all().is_empty());
    }

    #[test]
    fn a_series_twice_in_a_scrape_is_a_duplicate() {
        let mut c = ScrapeCache::new();
        c.begin();
        let a1 = series(&mut c, "a");
        // Another raw text with the same final labels shares the slot.
        let a2 = c.resolve(
            "a{x=\"\"}",
            Resolved::Series {
                labels: Labels::from_pairs([("__name__", "a")]),
                overrides: 0,
            },
        );
        assert_eq!(a1, a2);
        let Outcome::Series(id) = a1 else {
            panic!("a series")
        };
        assert!(matches!(c.use_series(id, true), Use::Fresh { .. }));
        assert!(matches!(c.use_series(id, true), Use::Duplicate));
    }

    #[test]
    fn untracked_series_do_not_go_stale() {
        let mut c = ScrapeCache::new();
        c.begin();
        let Outcome::Series(id) = series(&mut c, "a") else {
            panic!("a series")
        };
        let Use::Fresh { added, .. } = c.use_series(id, false) else {
            panic!("fresh")
        };
        assert!(!added, "series with timestamps are not counted as added");
        assert!(c.finish_success().is_empty());
        assert_eq!(scrape(&mut c, &[]), (0, vec![]));
        assert!(c.is_empty());
    }
}
