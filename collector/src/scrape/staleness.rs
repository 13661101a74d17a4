//! Staleness tracking for one target: which series the last successful
//! scrape produced, so that series which vanish (or all of them, when a
//! scrape fails) get a staleness marker.

use std::collections::HashSet;
use std::sync::Arc;

use fleetwatch_model::Labels;

/// The series of a target's previous successful scrape.
#[derive(Debug, Default)]
pub struct StalenessTracker {
    previous: HashSet<Arc<Labels>>,
}

/// What changed between two scrapes.
#[derive(Debug, Default, PartialEq)]
pub struct Transition {
    /// Series present before and absent now: they get a staleness marker.
    pub stale: Vec<Arc<Labels>>,
    /// Series present now and absent before (`scrape_series_added`).
    pub added: usize,
}

impl StalenessTracker {
    /// A tracker with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the series of a successful scrape. Series that carried an
    /// exposed timestamp should not be passed (Prometheus does not track
    /// their staleness).
    pub fn on_success(&mut self, current: HashSet<Arc<Labels>>) -> Transition {
        let added = current
            .iter()
            .filter(|l| !self.previous.contains(*l))
            .count();
        let mut stale: Vec<Arc<Labels>> = self
            .previous
            .iter()
            .filter(|l| !current.contains(*l))
            .cloned()
            .collect();
        stale.sort();
        self.previous = current;
        Transition { stale, added }
    }

    /// Records a failed scrape: every previous series becomes stale.
    pub fn on_failure(&mut self) -> Vec<Arc<Labels>> {
        let mut stale: Vec<Arc<Labels>> = self.previous.drain().collect();
        stale.sort();
        stale
    }

    /// Number of series tracked.
    pub fn len(&self) -> usize {
        self.previous.len()
    }

    /// True when no series are tracked.
    pub fn is_empty(&self) -> bool {
        self.previous.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> HashSet<Arc<Labels>> {
        names
            .iter()
            .map(|n| Arc::new(Labels::from_pairs([("__name__", *n)])))
            .collect()
    }

    fn names(v: &[Arc<Labels>]) -> Vec<String> {
        v.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn vanished_series_become_stale() {
        let mut t = StalenessTracker::new();
        let first = t.on_success(set(&["a", "b", "c"]));
        assert!(first.stale.is_empty());
        assert_eq!(first.added, 3);
        let second = t.on_success(set(&["a", "c", "d"]));
        assert_eq!(names(&second.stale), ["b"]);
        assert_eq!(second.added, 1);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn failure_marks_everything_stale_once() {
        let mut t = StalenessTracker::new();
        t.on_success(set(&["a", "b"]));
        assert_eq!(names(&t.on_failure()), ["a", "b"]);
        assert!(t.on_failure().is_empty(), "markers are written once");
        let back = t.on_success(set(&["a"]));
        assert!(back.stale.is_empty());
        assert_eq!(back.added, 1);
    }
}
