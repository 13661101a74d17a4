//! Turning out-of-order batch completions into in-order queue commits.

use std::collections::BTreeMap;

use crate::queue::Position;

/// Tracks, per record handed to the shards, how many samples are still in
/// flight. A record is done when all its samples were sent or dropped for
/// good; the queue may commit up to the end of the longest prefix of done
/// records.
#[derive(Debug, Default)]
pub struct AckTracker {
    next_seq: u64,
    /// seq -> (samples not yet done, end position).
    open: BTreeMap<u64, (u64, Position)>,
}

impl AckTracker {
    /// Registers a record of `samples` samples ending at `end`. Returns its
    /// sequence number, and a position to commit if the record is empty
    /// and completes the prefix.
    pub fn register(&mut self, samples: u64, end: Position) -> (u64, Option<Position>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.open.insert(seq, (samples, end));
        (seq, self.pop_done())
    }

    /// Marks `n` samples of record `seq` done. Returns the position to
    /// commit when the done prefix grew.
    pub fn complete(&mut self, seq: u64, n: u64) -> Option<Position> {
        if let Some((left, _)) = self.open.get_mut(&seq) {
            *left = left.saturating_sub(n);
        }
        self.pop_done()
    }

    fn pop_done(&mut self) -> Option<Position> {
        let mut commit = None;
        while let Some(entry) = self.open.first_entry() {
            if entry.get().0 != 0 {
                break;
            }
            commit = Some(entry.remove().1);
        }
        commit
    }

    /// Records with samples still in flight.
    pub fn in_flight(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(o: u64) -> Position {
        Position {
            segment: 1,
            offset: o,
        }
    }

    #[test]
    fn commits_only_the_done_prefix() {
        let mut t = AckTracker::default();
        let (a, c) = t.register(3, pos(10));
        assert_eq!(c, None);
        let (b, _) = t.register(2, pos(20));
        let (c_seq, _) = t.register(1, pos(30));
        // The newest finishes first: nothing to commit yet.
        assert_eq!(t.complete(c_seq, 1), None);
        assert_eq!(t.complete(a, 2), None);
        assert_eq!(t.complete(b, 2), None);
        // The oldest completes: the whole prefix is done.
        assert_eq!(t.complete(a, 1), Some(pos(30)));
        assert_eq!(t.in_flight(), 0);
        // An empty record commits at once when nothing is before it.
        assert_eq!(t.register(0, pos(40)).1, Some(pos(40)));
    }
}
