//! The hold queue: fragments that arrived before their first fragment wait here, and every packet
//! that comes after them queues behind, so that what leaves keeps the arrival order (each shard
//! stays in time order). Copies are bounded in bytes (entry overhead included) and made only while
//! something waits.

use std::collections::VecDeque;
use std::io;

use shardcap_capture::Packet;

/// Bytes the queue may hold, counting [`ENTRY_OVERHEAD`] per entry.
pub const HOLD_BYTES: usize = 4 << 20;

/// What an entry costs beside its packet bytes (bookkeeping and allocator).
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<Held>() + 16;

/// Sequence number meaning "no next entry".
const END: u64 = u64::MAX;

/// One queued packet.
struct Held {
    data: Vec<u8>,
    ts_ns: u64,
    len: u32,
    linktype: u32,
    /// Where it goes; `None` while it waits for its datagram's first fragment.
    shard: Option<u32>,
    /// Sequence number of the next waiting entry of the same datagram, or [`END`].
    next: u64,
    /// Which fragment-table slot a waiting entry's datagram sits in.
    slot: u32,
}

/// Queued packets in arrival order; entry `i` of the queue has sequence number `base + i`.
#[derive(Default)]
pub struct Hold {
    queue: VecDeque<Held>,
    base: u64,
    bytes: usize,
}

/// A datagram's chain of waiting entries, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub head: u64,
    pub tail: u64,
}

impl Hold {
    /// True when nothing is queued.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True when a packet of `len` bytes fits within [`HOLD_BYTES`].
    pub fn fits(&self, len: usize) -> bool {
        self.bytes + len + ENTRY_OVERHEAD <= HOLD_BYTES
    }

    /// The front entry if it waits: its timestamp, its datagram's table slot and its sequence
    /// number (it heads its datagram's chain). After [`Hold::flush`] the front always waits.
    pub fn oldest(&self) -> Option<(u64, usize, u64)> {
        self.queue
            .front()
            .filter(|h| h.shard.is_none())
            .map(|h| (h.ts_ns, h.slot as usize, self.base))
    }

    /// Copies in a fragment that waits for its first fragment, appended to its datagram's
    /// `chain` (or starting one), and returns the chain.
    pub fn wait(&mut self, pkt: &Packet, slot: usize, chain: Option<Chain>) -> Chain {
        let seq = self.push(pkt, None, slot);
        match chain {
            Some(c) => {
                if let Some(tail) = self.entry(c.tail) {
                    tail.next = seq;
                }
                Chain {
                    head: c.head,
                    tail: seq,
                }
            }
            None => Chain {
                head: seq,
                tail: seq,
            },
        }
    }

    /// Copies in a packet bound for `shard` that must not overtake the waiting ones.
    pub fn queue(&mut self, pkt: &Packet, shard: usize) {
        self.push(pkt, Some(shard as u32), 0);
    }

    fn push(&mut self, pkt: &Packet, shard: Option<u32>, slot: usize) -> u64 {
        let seq = self.base + self.queue.len() as u64;
        self.bytes += pkt.data.len() + ENTRY_OVERHEAD;
        self.queue.push_back(Held {
            data: pkt.data.to_vec(),
            ts_ns: pkt.ts_ns,
            len: pkt.len,
            linktype: pkt.linktype,
            shard,
            next: END,
            slot: slot as u32,
        });
        seq
    }

    /// Sends the chain starting at `head` to `shard` (once what is ahead of it has left).
    /// Returns how many packets the chain holds.
    pub fn resolve(&mut self, head: u64, shard: usize) -> u64 {
        let mut seq = head;
        let mut n = 0;
        while let Some(h) = self.entry(seq) {
            h.shard = Some(shard as u32);
            seq = h.next;
            n += 1;
        }
        n
    }

    /// Emits the entries at the front whose shard is known, with their original bytes and
    /// timestamps, up to the first that still waits.
    pub fn flush<E>(&mut self, emit: &mut E) -> io::Result<()>
    where
        E: FnMut(usize, &Packet) -> io::Result<()>,
    {
        while let Some(shard) = self.queue.front().and_then(|h| h.shard) {
            let Some(h) = self.queue.pop_front() else {
                break;
            };
            self.base += 1;
            self.bytes -= h.data.len() + ENTRY_OVERHEAD;
            let pkt = Packet {
                ts_ns: h.ts_ns,
                len: h.len,
                linktype: h.linktype,
                data: &h.data,
            };
            emit(shard as usize, &pkt)?;
        }
        Ok(())
    }

    /// The waiting entry with sequence number `seq`.
    fn entry(&mut self, seq: u64) -> Option<&mut Held> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.queue.get_mut(i).filter(|h| h.shard.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(data: &[u8], ts_ns: u64) -> Packet<'_> {
        Packet {
            ts_ns,
            len: data.len() as u32 + 100,
            linktype: 1,
            data,
        }
    }

    #[test]
    fn queue_leaves_in_arrival_order_once_the_front_is_resolved() {
        let mut h = Hold::default();
        let a = h.wait(&pkt(b"a1", 1), 7, None);
        h.queue(&pkt(b"x", 2), 5);
        let b = h.wait(&pkt(b"b1", 3), 9, None);
        let a = h.wait(&pkt(b"a2", 4), 7, Some(a));
        assert_eq!(h.oldest(), Some((1, 7, 0)));
        let mut out = Vec::new();
        let mut emit = |k: usize, p: &Packet| {
            out.push((k, p.data.to_vec(), p.ts_ns, p.len));
            Ok(())
        };
        assert_eq!(h.resolve(b.head, 1), 1);
        h.flush(&mut emit).unwrap();
        assert_eq!(h.oldest(), Some((1, 7, 0)), "b waits behind a");
        assert_eq!(h.resolve(a.head, 3), 2);
        h.flush(&mut emit).unwrap();
        assert!(h.is_empty());
        assert_eq!(h.bytes, 0);
        assert_eq!(
            out,
            vec![
                (3, b"a1".to_vec(), 1, 102),
                (5, b"x".to_vec(), 2, 101),
                (1, b"b1".to_vec(), 3, 102),
                (3, b"a2".to_vec(), 4, 102),
            ]
        );
    }

    #[test]
    fn resolved_chain_is_not_resolved_twice() {
        let mut h = Hold::default();
        let a = h.wait(&pkt(b"x", 1), 0, None);
        assert_eq!(h.resolve(a.head, 0), 1);
        assert_eq!(h.resolve(a.head, 2), 0);
        let mut n = 0;
        h.flush(&mut |k: usize, _: &Packet| {
            assert_eq!(k, 0);
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn budget_counts_entry_overhead() {
        let h = Hold::default();
        assert!(h.fits(HOLD_BYTES - ENTRY_OVERHEAD));
        assert!(!h.fits(HOLD_BYTES - ENTRY_OVERHEAD + 1));
    }
}
