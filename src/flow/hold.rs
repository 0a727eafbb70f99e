//! The early-fragment hold buffer: copies of fragments that arrived before their first fragment,
//! in arrival order, chained per datagram, bounded in bytes (entry overhead included).

use std::collections::VecDeque;
use std::io;

use crate::input::Packet;

/// Bytes the buffer may hold, counting [`ENTRY_OVERHEAD`] per entry.
pub const HOLD_BYTES: usize = 4 << 20;

/// What an entry costs beside its packet bytes (bookkeeping and allocator).
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<Held>() + 16;

/// Sequence number meaning "no next entry".
const END: u64 = u64::MAX;

/// One held packet.
struct Held {
    data: Vec<u8>,
    ts_ns: u64,
    len: u32,
    linktype: u32,
    /// Sequence number of the next entry of the same datagram, or [`END`].
    next: u64,
    /// Which fragment-table slot the datagram sits in.
    slot: u32,
    /// False once released (the entry waits to leave the front of the queue).
    live: bool,
}

/// Held packets; entry `i` of the queue has sequence number `base + i`.
#[derive(Default)]
pub struct Hold {
    queue: VecDeque<Held>,
    base: u64,
    bytes: usize,
}

/// A datagram's chain of held packets, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub head: u64,
    pub tail: u64,
}

impl Hold {
    /// True when nothing is held.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True when a packet of `len` bytes fits within [`HOLD_BYTES`].
    pub fn fits(&self, len: usize) -> bool {
        self.bytes + len + ENTRY_OVERHEAD <= HOLD_BYTES
    }

    /// The oldest held packet: its timestamp, its datagram's table slot, and its sequence number
    /// (it heads its datagram's chain).
    pub fn oldest(&self) -> Option<(u64, usize, u64)> {
        self.queue
            .front()
            .map(|h| (h.ts_ns, h.slot as usize, self.base))
    }

    /// Copies `pkt` in, appended to `chain` (or starting one), and returns the chain.
    pub fn hold(&mut self, pkt: &Packet, slot: usize, chain: Option<Chain>) -> Chain {
        let seq = self.base + self.queue.len() as u64;
        self.bytes += pkt.data.len() + ENTRY_OVERHEAD;
        self.queue.push_back(Held {
            data: pkt.data.to_vec(),
            ts_ns: pkt.ts_ns,
            len: pkt.len,
            linktype: pkt.linktype,
            next: END,
            slot: slot as u32,
            live: true,
        });
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

    /// Emits every packet of the chain starting at `head` to `shard`, with its original bytes and
    /// timestamp, and frees it. Returns how many were released.
    pub fn release<E>(&mut self, head: u64, shard: usize, emit: &mut E) -> io::Result<u64>
    where
        E: FnMut(usize, &Packet) -> io::Result<()>,
    {
        let mut seq = head;
        let mut n = 0;
        while let Some(h) = self.entry(seq) {
            seq = h.next;
            h.live = false;
            let data = std::mem::take(&mut h.data);
            let pkt = Packet {
                ts_ns: h.ts_ns,
                len: h.len,
                linktype: h.linktype,
                data: &data,
            };
            self.bytes -= pkt.data.len();
            n += 1;
            emit(shard, &pkt)?;
        }
        while self.queue.front().is_some_and(|h| !h.live) {
            self.queue.pop_front();
            self.base += 1;
            self.bytes -= ENTRY_OVERHEAD;
        }
        Ok(n)
    }

    /// The live entry with sequence number `seq`.
    fn entry(&mut self, seq: u64) -> Option<&mut Held> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.queue.get_mut(i).filter(|h| h.live)
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
    fn chains_release_in_arrival_order_and_free_their_bytes() {
        let mut h = Hold::default();
        let a = h.hold(&pkt(b"a1", 1), 7, None);
        let b = h.hold(&pkt(b"b1", 2), 9, None);
        let a = h.hold(&pkt(b"a2", 3), 7, Some(a));
        assert_eq!(h.oldest(), Some((1, 7, 0)));
        let mut out = Vec::new();
        let mut emit = |k: usize, p: &Packet| {
            out.push((k, p.data.to_vec(), p.ts_ns, p.len));
            Ok(())
        };
        assert_eq!(h.release(a.head, 3, &mut emit).unwrap(), 2);
        assert_eq!(h.oldest(), Some((2, 9, 1)));
        assert_eq!(h.release(b.head, 1, &mut emit).unwrap(), 1);
        assert!(h.is_empty());
        assert_eq!(h.bytes, 0);
        assert_eq!(
            out,
            vec![
                (3, b"a1".to_vec(), 1, 102),
                (3, b"a2".to_vec(), 3, 102),
                (1, b"b1".to_vec(), 2, 102)
            ]
        );
    }

    #[test]
    fn released_chain_is_not_released_twice() {
        let mut h = Hold::default();
        let a = h.hold(&pkt(b"x", 1), 0, None);
        let mut n = 0;
        let mut emit = |_: usize, _: &Packet| {
            n += 1;
            Ok(())
        };
        h.release(a.head, 0, &mut emit).unwrap();
        assert_eq!(h.release(a.head, 0, &mut emit).unwrap(), 0);
        assert_eq!(n, 1);
    }

    #[test]
    fn budget_counts_entry_overhead() {
        let h = Hold::default();
        assert!(h.fits(HOLD_BYTES - ENTRY_OVERHEAD));
        assert!(!h.fits(HOLD_BYTES - ENTRY_OVERHEAD + 1));
    }
}
