//! A bulk request in the making: the NDJSON body, where each item sits in it, and how far each file
//! has been consumed once this batch (and every one before it) is acknowledged.

use std::time::{Duration, Instant};

/// When a batch is sent.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Body size (uncompressed).
    pub bytes: usize,
    /// Items.
    pub docs: usize,
    /// Longest wait from the first item to sending.
    pub wait: Duration,
}

/// One record in a batch.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// The file it comes from (the shipper's slot number) and that file's generation.
    pub slot: u32,
    pub generation: u32,
    /// Byte offset of the record in its file.
    pub offset: u64,
    /// Where its action line starts in the body.
    pub start: usize,
    /// Where its document starts.
    pub doc: usize,
    /// Just past its document's newline.
    pub end: usize,
}

/// How far a file is consumed: every line before `offset` is in this batch or an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frontier {
    pub slot: u32,
    pub generation: u32,
    pub offset: u64,
    /// The newest record time (ns since the epoch) among this file's records in this batch.
    pub newest_ns: u64,
}

/// A batch of bulk items, numbered in the order it was filled.
#[derive(Debug)]
pub struct Batch {
    pub seq: u64,
    pub body: Vec<u8>,
    pub items: Vec<Item>,
    pub frontiers: Vec<Frontier>,
    /// When the first item went in.
    pub opened: Option<Instant>,
}

impl Batch {
    /// An empty batch with sequence number `seq`.
    pub fn new(seq: u64) -> Self {
        Batch {
            seq,
            body: Vec::new(),
            items: Vec::new(),
            frontiers: Vec::new(),
            opened: None,
        }
    }

    /// Records an item that the encoder just appended to the body (from `start`).
    pub fn push(&mut self, slot: u32, generation: u32, offset: u64, start: usize, doc: usize) {
        self.opened.get_or_insert_with(Instant::now);
        self.items.push(Item {
            slot,
            generation,
            offset,
            start,
            doc,
            end: self.body.len(),
        });
    }

    /// Moves a file's frontier forward past a record of time `ts_ns` (0: none).
    pub fn advance(&mut self, slot: u32, generation: u32, offset: u64, ts_ns: u64) {
        match self.frontiers.iter_mut().rev().find(|f| f.slot == slot) {
            Some(f) if f.generation == generation => {
                f.offset = f.offset.max(offset);
                f.newest_ns = f.newest_ns.max(ts_ns);
            }
            _ => self.frontiers.push(Frontier {
                slot,
                generation,
                offset,
                newest_ns: ts_ns,
            }),
        }
    }

    /// True when it must be sent now.
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.items.len() >= limits.docs || self.body.len() >= limits.bytes
    }

    /// True when its first item has waited long enough.
    pub fn is_due(&self, limits: &BatchLimits) -> bool {
        self.opened.is_some_and(|t| t.elapsed() >= limits.wait)
    }

    /// True when it carries neither items nor progress.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.frontiers.is_empty()
    }

    /// The body of a request holding only the items at `indices`.
    pub fn sub_body(&self, indices: &[usize]) -> Vec<u8> {
        let mut body = Vec::with_capacity(
            indices
                .iter()
                .map(|&i| self.items[i].end - self.items[i].start)
                .sum(),
        );
        for &i in indices {
            let it = &self.items[i];
            body.extend_from_slice(&self.body[it.start..it.end]);
        }
        body
    }

    /// The action line of item `i`, without its newline.
    pub fn action(&self, i: usize) -> &[u8] {
        let it = &self.items[i];
        &self.body[it.start..it.doc - 1]
    }

    /// The document of item `i`, without its newline.
    pub fn document(&self, i: usize) -> &[u8] {
        let it = &self.items[i];
        &self.body[it.doc..it.end - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_frontiers_and_sub_bodies() {
        let mut b = Batch::new(0);
        assert!(b.is_empty());
        for (k, off) in [(0u8, 0u64), (1, 10)] {
            let start = b.body.len();
            b.body
                .extend_from_slice(format!("{{\"create\":{{\"_id\":\"{k}\"}}}}\n").as_bytes());
            let doc = b.body.len();
            b.body
                .extend_from_slice(format!("{{\"n\":{k}}}\n").as_bytes());
            b.push(3, 0, off, start, doc);
            b.advance(3, 0, off + 10, 100 - off);
        }
        assert_eq!(
            b.frontiers,
            vec![Frontier {
                slot: 3,
                generation: 0,
                offset: 20,
                newest_ns: 100
            }]
        );
        b.advance(3, 1, 5, 0);
        assert_eq!(
            b.frontiers.len(),
            2,
            "a new generation starts its own frontier"
        );
        assert_eq!(b.document(1), br#"{"n":1}"#);
        assert_eq!(b.action(0), br#"{"create":{"_id":"0"}}"#);
        assert_eq!(
            b.sub_body(&[1]),
            b"{\"create\":{\"_id\":\"1\"}}\n{\"n\":1}\n"
        );
        let limits = BatchLimits {
            bytes: 1 << 20,
            docs: 2,
            wait: Duration::from_secs(60),
        };
        assert!(b.is_full(&limits));
        assert!(!b.is_due(&limits));
    }
}
