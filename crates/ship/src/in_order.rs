//! Acknowledgement in batch order: the senders answer batches in any order, but a file's checkpoint
//! may only pass a batch once every earlier batch is acknowledged, and only within the file's
//! current generation (a truncation starts a new one).

use std::collections::BTreeMap;

use crate::batch::Frontier;

/// Items numbered 0, 1, 2… handed out in that order, whatever order they arrive in: batches come
/// back from the senders in any order, but a file's checkpoint may only pass a batch once every
/// earlier batch is acknowledged.
#[derive(Debug)]
pub struct InOrder<T> {
    next: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> InOrder<T> {
    /// Item `seq` arrived.
    pub fn arrive(&mut self, seq: u64, item: T) {
        self.waiting.insert(seq, item);
    }

    /// The next item in order, once it has arrived (then the one after it is next).
    pub fn pop(&mut self) -> Option<T> {
        let item = self.waiting.remove(&self.next)?;
        self.next += 1;
        Some(item)
    }

    /// Items that arrived but wait for an earlier one.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// The bytes a batch's frontier acknowledges in a file acknowledged up to `acked` in its
/// generation `generation`: none when the frontier belongs to an earlier generation (the file was
/// truncated since) or does not pass `acked`.
pub fn newly_acknowledged(acked: u64, generation: u32, f: &Frontier) -> Option<u64> {
    (f.generation == generation && f.offset > acked).then(|| f.offset - acked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_acknowledged_in_order_whatever_order_they_arrive_in() {
        let mut q = InOrder::default();
        assert_eq!(q.pop(), None);
        q.arrive(2, "c");
        q.arrive(1, "b");
        assert_eq!(q.pop(), None, "batch 0 is still out");
        assert_eq!(q.waiting(), 2);
        q.arrive(0, "a");
        assert_eq!(q.pop(), Some("a"));
        assert_eq!(q.pop(), Some("b"));
        assert_eq!(q.pop(), Some("c"));
        assert_eq!(q.pop(), None);
        q.arrive(4, "e");
        assert_eq!(q.pop(), None, "a gap holds everything after it");
        q.arrive(3, "d");
        assert_eq!((q.pop(), q.pop(), q.waiting()), (Some("d"), Some("e"), 0));
    }

    #[test]
    fn a_stale_or_older_frontier_acknowledges_nothing() {
        let f = |generation, offset| Frontier {
            slot: 0,
            generation,
            offset,
            newest_ns: 0,
        };
        assert_eq!(newly_acknowledged(100, 0, &f(0, 250)), Some(150));
        assert_eq!(newly_acknowledged(100, 0, &f(0, 100)), None, "nothing new");
        assert_eq!(
            newly_acknowledged(100, 0, &f(0, 50)),
            None,
            "never backwards"
        );
        assert_eq!(
            newly_acknowledged(0, 1, &f(0, 250)),
            None,
            "a batch read before a truncation"
        );
        assert_eq!(newly_acknowledged(0, 1, &f(1, 10)), Some(10));
    }
}
