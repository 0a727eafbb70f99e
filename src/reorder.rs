//! The reorder window: repairs small timestamp disorder inside inputs by holding packets for a
//! bounded span of packet time (and a bounded number of bytes) and releasing them in timestamp order.
//!
//! Off by default (`--reorder-window 0`): the merge then hands packets straight to the shards,
//! zero-copy. When on, each packet is copied once into a chunked arena; a chunk is reused as soon as
//! every packet in it was released, so memory stays within `--reorder-buffer`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use shardcap_capture::Packet;

/// Size of one arena chunk; a packet never spans chunks.
const CHUNK: usize = 1 << 20;

/// A held packet: where its bytes are and what its record header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    ts_ns: u64,
    seq: u64,
    chunk: u32,
    offset: u32,
    caplen: u32,
    len: u32,
    linktype: u32,
    /// Arrived older than the newest packet before it.
    late: bool,
}

/// Counters of the reorder stage.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ReorderStats {
    /// Packets that arrived older than a packet before them and were put back in order.
    pub repaired: u64,
    /// Packets that arrived too late to be put in order (older than what was already released).
    pub too_late: u64,
    /// Packets released early because the buffer was full.
    pub forced: u64,
}

/// Holds packets for up to `window` ns of packet time and releases them sorted by timestamp.
pub struct Reorder {
    window: u64,
    max_chunks: usize,
    chunks: Vec<Box<[u8]>>,
    /// Live packets in each chunk.
    live: Vec<u32>,
    free: Vec<u32>,
    current: u32,
    fill: usize,
    heap: BinaryHeap<Reverse<Held>>,
    seq: u64,
    newest: u64,
    last_released: u64,
    /// Counters for stats.
    pub stats: ReorderStats,
}

impl Reorder {
    /// A window of `window_ns` of packet time holding at most `max_bytes` of packets.
    pub fn new(window_ns: u64, max_bytes: usize) -> Self {
        Reorder {
            window: window_ns,
            max_chunks: (max_bytes / CHUNK).max(2),
            chunks: vec![vec![0u8; CHUNK].into_boxed_slice()],
            live: vec![0],
            free: Vec::new(),
            current: 0,
            fill: 0,
            heap: BinaryHeap::new(),
            seq: 0,
            newest: 0,
            last_released: 0,
            stats: ReorderStats::default(),
        }
    }

    /// Takes a packet, then releases (through `emit`) every packet that is due.
    pub fn push<E, F>(&mut self, pkt: &Packet, mut emit: F) -> Result<(), E>
    where
        F: FnMut(&Packet) -> Result<(), E>,
    {
        let need = pkt.data.len();
        if need > CHUNK {
            return self.pass_oversized(pkt, &mut emit);
        }
        while self.fill + need > CHUNK && !self.next_chunk() {
            self.release_one(&mut emit)?;
            self.stats.forced += 1;
        }
        let c = self.current as usize;
        self.chunks[c][self.fill..self.fill + need].copy_from_slice(pkt.data);
        self.heap.push(Reverse(Held {
            ts_ns: pkt.ts_ns,
            seq: self.seq,
            chunk: self.current,
            offset: self.fill as u32,
            caplen: need as u32,
            len: pkt.len,
            linktype: pkt.linktype,
            late: pkt.ts_ns < self.newest,
        }));
        self.live[c] += 1;
        self.fill += need;
        self.seq += 1;
        self.newest = self.newest.max(pkt.ts_ns);
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.ts_ns.saturating_add(self.window) > self.newest {
                break;
            }
            self.release_one(&mut emit)?;
        }
        Ok(())
    }

    /// Releases everything held, in timestamp order (end of run, checkpoint).
    pub fn flush<E, F>(&mut self, mut emit: F) -> Result<(), E>
    where
        F: FnMut(&Packet) -> Result<(), E>,
    {
        while !self.heap.is_empty() {
            self.release_one(&mut emit)?;
        }
        Ok(())
    }

    /// A packet larger than a chunk cannot be held: it goes out at once, after the held packets
    /// that are not later than it.
    #[cold]
    fn pass_oversized<E, F>(&mut self, pkt: &Packet, emit: &mut F) -> Result<(), E>
    where
        F: FnMut(&Packet) -> Result<(), E>,
    {
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(top)| top.ts_ns <= pkt.ts_ns)
        {
            self.release_one(emit)?;
        }
        if pkt.ts_ns < self.last_released {
            self.stats.too_late += 1;
        } else if pkt.ts_ns < self.newest {
            self.stats.repaired += 1;
        }
        self.last_released = pkt.ts_ns.max(self.last_released);
        self.newest = pkt.ts_ns.max(self.newest);
        emit(pkt)
    }

    /// Moves to a fresh chunk if one is free or may be allocated; false when the buffer is full.
    fn next_chunk(&mut self) -> bool {
        let old = self.current as usize;
        let next = match self.free.pop() {
            Some(c) => c,
            None if self.chunks.len() < self.max_chunks => {
                self.chunks.push(vec![0u8; CHUNK].into_boxed_slice());
                self.live.push(0);
                (self.chunks.len() - 1) as u32
            }
            None => return false,
        };
        self.current = next;
        self.fill = 0;
        if self.live[old] == 0 {
            self.free.push(old as u32);
        }
        true
    }

    fn release_one<E, F>(&mut self, emit: &mut F) -> Result<(), E>
    where
        F: FnMut(&Packet) -> Result<(), E>,
    {
        let Some(Reverse(h)) = self.heap.pop() else {
            return Ok(());
        };
        if h.ts_ns < self.last_released {
            self.stats.too_late += 1;
        } else if h.late {
            self.stats.repaired += 1;
        }
        self.last_released = self.last_released.max(h.ts_ns);
        let c = h.chunk as usize;
        let start = h.offset as usize;
        let pkt = Packet {
            ts_ns: h.ts_ns,
            len: h.len,
            linktype: h.linktype,
            data: &self.chunks[c][start..start + h.caplen as usize],
        };
        let result = emit(&pkt);
        self.live[c] -= 1;
        if self.live[c] == 0 {
            if h.chunk == self.current {
                self.fill = 0;
            } else {
                self.free.push(h.chunk);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        window: u64,
        max_bytes: usize,
        input: &[(u64, u8, usize)],
    ) -> (Vec<(u64, u8)>, ReorderStats) {
        let mut r = Reorder::new(window, max_bytes);
        let mut out = Vec::new();
        let mut take = |p: &Packet| -> Result<(), ()> {
            assert!(p.data.iter().all(|&b| b == p.data[0]), "bytes intact");
            out.push((p.ts_ns, p.data[0]));
            Ok(())
        };
        for &(ts, tag, size) in input {
            let data = vec![tag; size];
            r.push(
                &Packet {
                    ts_ns: ts,
                    len: size as u32,
                    linktype: 1,
                    data: &data,
                },
                &mut take,
            )
            .unwrap();
        }
        r.flush(&mut take).unwrap();
        (out, r.stats)
    }

    #[test]
    fn repairs_disorder_within_the_window() {
        let input = [
            (10, 1, 60),
            (30, 2, 60),
            (20, 3, 60),
            (40, 4, 60),
            (35, 5, 60),
            (100, 6, 60),
        ];
        let (out, stats) = run(15, 4 << 20, &input);
        let ts: Vec<u64> = out.iter().map(|o| o.0).collect();
        assert_eq!(ts, [10, 20, 30, 35, 40, 100]);
        assert_eq!(stats.too_late, 0);
        assert_eq!(
            stats.repaired, 2,
            "20 and 35 arrived late and were put in order"
        );
    }

    #[test]
    fn counts_what_is_beyond_the_window() {
        let input = [(10, 1, 60), (100, 2, 60), (200, 3, 60), (20, 4, 60)];
        let (out, stats) = run(5, 4 << 20, &input);
        assert_eq!(out.len(), 4);
        assert_eq!(stats.too_late, 1);
    }

    #[test]
    fn bounded_memory_forces_release_and_loses_nothing() {
        // 3000 packets of 2 KiB (6 MiB) through a 2 MiB buffer with a huge window.
        let input: Vec<(u64, u8, usize)> =
            (0..3000u64).map(|i| (i, (i % 251) as u8, 2048)).collect();
        let (out, stats) = run(u64::MAX / 2, 2 << 20, &input);
        assert_eq!(out.len(), 3000);
        assert!(stats.forced > 0);
        let tags: Vec<u8> = out.iter().map(|o| o.1).collect();
        let want: Vec<u8> = input.iter().map(|i| i.1).collect();
        assert_eq!(tags, want);
    }

    #[test]
    fn a_packet_larger_than_a_chunk_passes_in_order() {
        let big = CHUNK + 1;
        let input = [(10, 1, 60), (30, 2, 60), (20, 3, big), (40, 4, 60)];
        let (out, stats) = run(100, 4 << 20, &input);
        assert_eq!(out, [(10, 1), (20, 3), (30, 2), (40, 4)]);
        assert_eq!(stats.repaired, 1);
    }
}
