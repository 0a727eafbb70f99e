//! `--dedup WINDOW`: drops a packet identical to one kept within WINDOW of packet time before it.
//!
//! Identical means equal from the network header on, once what differs between two sensors
//! seeing the same packet is set aside: the link header (MACs, VLAN tags, MPLS labels, cooked
//! headers), the IPv4 TTL and header checksum, the IPv6 hop limit, and link padding after the IP
//! datagram. Packets without a network layer shardcap decodes are never dropped.
//!
//! Each kept packet leaves a 64-bit fingerprint in a ring ordered by packet time, indexed by an
//! open-addressing table; both have a fixed capacity sized from the window when the run starts,
//! so nothing is allocated per packet. Memory: 24 bytes for each packet the window can hold.

use std::time::Duration;

use shardcap_capture::Packet;
use shardcap_flow::link::{self, Payload};

/// Packet rate the window is sized for: above what one merge streams, so the window does not
/// fill before its time in practice (when it does, the oldest fingerprints leave early and are
/// counted).
pub const SIZED_FOR_PPS: u64 = 32_000_000;
/// Fewest and most fingerprints the window holds.
const MIN_CAPACITY: usize = 1 << 12;
const MAX_CAPACITY: usize = 1 << 25;

/// The duplicate window.
pub struct Dedup {
    window: u64,
    /// Ring of kept packets' times and fingerprints, oldest at `tail`.
    ts: Vec<u64>,
    fp: Vec<u64>,
    tail: usize,
    len: usize,
    /// Open-addressing table (linear probing, twice the ring's size) of ring positions plus one;
    /// 0 is a free slot.
    table: Vec<u32>,
    /// Fingerprints that left the ring early because it was full.
    pub evicted_early: u64,
}

impl Dedup {
    /// A window of `window` packet time, with room for [`SIZED_FOR_PPS`] packets a second.
    pub fn new(window: Duration) -> Self {
        let want = (window.as_nanos() * u128::from(SIZED_FOR_PPS) / 1_000_000_000) as usize;
        Self::with_capacity(window, want)
    }

    /// A window with room for `capacity` packets (rounded to a power of two within bounds).
    pub fn with_capacity(window: Duration, capacity: usize) -> Self {
        let cap = capacity
            .clamp(MIN_CAPACITY, MAX_CAPACITY)
            .next_power_of_two();
        Dedup {
            window: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            // Zeroed allocations: pages are touched only as the window fills.
            ts: vec![0; cap],
            fp: vec![0; cap],
            tail: 0,
            len: 0,
            table: vec![0; cap * 2],
            evicted_early: 0,
        }
    }

    /// Bytes the window takes at most.
    pub fn bytes(&self) -> usize {
        self.ts.len() * 16 + self.table.len() * 4
    }

    /// True when `pkt` duplicates a packet kept within the window before it; otherwise `pkt` is
    /// kept and remembered.
    #[inline]
    pub fn seen(&mut self, pkt: &Packet) -> bool {
        let Some(fp) = fingerprint(pkt.linktype, pkt.data) else {
            return false;
        };
        self.expire(pkt.ts_ns);
        if self.find(fp) {
            return true;
        }
        if self.len == self.ts.len() {
            self.evicted_early += 1;
            self.pop();
        }
        let mask = self.ts.len() - 1;
        let pos = (self.tail + self.len) & mask;
        self.ts[pos] = pkt.ts_ns;
        self.fp[pos] = fp;
        self.len += 1;
        let tmask = self.table.len() - 1;
        let mut slot = fp as usize & tmask;
        while self.table[slot] != 0 {
            slot = (slot + 1) & tmask;
        }
        self.table[slot] = pos as u32 + 1;
        false
    }

    /// Forgets the packets more than the window before `now`.
    #[inline]
    fn expire(&mut self, now: u64) {
        while self.len > 0 && now.saturating_sub(self.ts[self.tail]) > self.window {
            self.pop();
        }
    }

    fn find(&self, fp: u64) -> bool {
        let tmask = self.table.len() - 1;
        let mut slot = fp as usize & tmask;
        loop {
            match self.table[slot] {
                0 => return false,
                p if self.fp[p as usize - 1] == fp => return true,
                _ => slot = (slot + 1) & tmask,
            }
        }
    }

    /// Removes the oldest packet from the ring and its slot from the table (backward-shift
    /// deletion keeps every probe chain unbroken).
    fn pop(&mut self) {
        let pos = self.tail;
        let tmask = self.table.len() - 1;
        let mut hole = self.fp[pos] as usize & tmask;
        while self.table[hole] as usize != pos + 1 {
            hole = (hole + 1) & tmask;
        }
        let mut j = hole;
        loop {
            j = (j + 1) & tmask;
            let p = self.table[j];
            if p == 0 {
                break;
            }
            let home = self.fp[p as usize - 1] as usize & tmask;
            // The entry at j may move back into the hole unless its home lies cyclically in
            // (hole, j].
            let stays = if hole < j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.table[hole] = p;
                hole = j;
            }
        }
        self.table[hole] = 0;
        self.tail = (self.tail + 1) & (self.ts.len() - 1);
        self.len -= 1;
    }
}

/// The fingerprint of a packet's network layer on, with what two sensors see differently set
/// aside; `None` when it has no network layer shardcap decodes.
#[inline]
pub fn fingerprint(linktype: u32, data: &[u8]) -> Option<u64> {
    match link::link(linktype, data) {
        Payload::Ipv4(ip) if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let end = if total >= 20 {
                total.min(ip.len())
            } else {
                ip.len()
            };
            let head_len = ihl.clamp(20, 60).min(end.max(20));
            let mut head = [0u8; 60];
            head[..head_len].copy_from_slice(&ip[..head_len]);
            head[8] = 0; // TTL
            head[10] = 0; // header checksum
            head[11] = 0;
            let h = hash(&head[..head_len], 4);
            Some(hash(ip.get(head_len..end).unwrap_or_default(), h))
        }
        Payload::Ipv6(ip) if ip.len() >= 40 => {
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            // A payload length of 0 is a jumbogram's: everything captured counts.
            let end = if payload == 0 {
                ip.len()
            } else {
                (40 + payload).min(ip.len())
            };
            let mut head = [0u8; 40];
            head.copy_from_slice(&ip[..40]);
            head[7] = 0; // hop limit
            let h = hash(&head, 6);
            Some(hash(&ip[40..end], h))
        }
        Payload::Arp(arp) if arp.len() >= 8 => {
            let end = (8 + 2 * (usize::from(arp[4]) + usize::from(arp[5]))).min(arp.len());
            Some(hash(&arp[..end], 0x0806))
        }
        _ => None,
    }
}

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;

/// 128-bit multiply, folded.
#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// A fast 64-bit hash of `d` (16 bytes a step, wyhash's mixing), chained from `seed`.
#[inline]
fn hash(d: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ P0;
    let mut blocks = d.chunks_exact(16);
    for b in &mut blocks {
        let lo = u64::from_le_bytes(b[..8].try_into().unwrap());
        let hi = u64::from_le_bytes(b[8..].try_into().unwrap());
        h = mum(lo ^ P1, hi ^ h);
    }
    let rest = blocks.remainder();
    let mut last = [0u8; 16];
    last[..rest.len()].copy_from_slice(rest);
    let lo = u64::from_le_bytes(last[..8].try_into().unwrap());
    let hi = u64::from_le_bytes(last[8..].try_into().unwrap());
    h = mum(lo ^ P1, hi ^ h ^ P2);
    mum(h ^ P2, d.len() as u64 ^ P1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardcap_flow::link::LINKTYPE_ETHERNET;

    /// An Ethernet frame (with an optional VLAN tag) carrying IPv4/UDP with `ttl`, padded to 60
    /// bytes as a short frame is.
    fn frame(vlan: Option<u16>, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, vlan.map_or(2, |v| v as u8)];
        if let Some(v) = vlan {
            f.extend([0x81, 0x00]);
            f.extend(v.to_be_bytes());
        }
        f.extend([0x08, 0x00]);
        let total = (28 + payload.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend(total.to_be_bytes());
        ip.extend([0, 7, 0, 0, ttl, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let mut sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend(ip);
        f.extend([0, 1, 0, 2, 0, 8 + payload.len() as u8, 0, 0]);
        f.extend(payload);
        f.resize(f.len().max(60), 0xee);
        f
    }

    fn pkt(ts_ns: u64, data: &[u8]) -> Packet<'_> {
        Packet {
            ts_ns,
            len: data.len() as u32,
            linktype: LINKTYPE_ETHERNET,
            data,
        }
    }

    #[test]
    fn two_sensors_copies_are_one_packet() {
        let a = frame(Some(100), 64, b"hi");
        let b = frame(Some(200), 63, b"hi");
        let c = frame(None, 64, b"hi");
        let fa = fingerprint(LINKTYPE_ETHERNET, &a);
        assert!(fa.is_some());
        assert_eq!(fa, fingerprint(LINKTYPE_ETHERNET, &b));
        assert_eq!(fa, fingerprint(LINKTYPE_ETHERNET, &c));
        let d = frame(Some(100), 64, b"ho");
        assert_ne!(fa, fingerprint(LINKTYPE_ETHERNET, &d));
        assert_eq!(fingerprint(LINKTYPE_ETHERNET, &[0u8; 14]), None);
    }

    #[test]
    fn duplicates_count_within_the_window_only() {
        let ms = 1_000_000;
        let mut d = Dedup::new(Duration::from_millis(5));
        let (a, b) = (frame(Some(100), 64, b"x"), frame(Some(200), 63, b"x"));
        assert!(!d.seen(&pkt(0, &a)));
        assert!(d.seen(&pkt(5 * ms, &b)), "5ms later is within the window");
        assert!(!d.seen(&pkt(10 * ms + 1, &b)), "past the window it is new");
        assert!(d.seen(&pkt(11 * ms, &a)));
    }

    #[test]
    fn a_full_window_evicts_its_oldest_and_keeps_its_table_whole() {
        let mut d = Dedup::with_capacity(Duration::from_secs(1000), 0);
        let cap = MIN_CAPACITY as u64;
        let frames: Vec<Vec<u8>> = (0..cap * 3)
            .map(|i| frame(None, 64, &i.to_be_bytes()))
            .collect();
        for (i, f) in frames.iter().enumerate() {
            assert!(!d.seen(&pkt(i as u64, f)), "{i}");
        }
        assert_eq!(d.evicted_early, cap * 2);
        // The newest `cap` are all still found, the older ones are not.
        for (i, f) in frames.iter().enumerate().skip(cap as usize * 2) {
            assert!(d.find(fingerprint(LINKTYPE_ETHERNET, f).unwrap()), "{i}");
        }
        for f in frames.iter().take(cap as usize * 2) {
            assert!(!d.find(fingerprint(LINKTYPE_ETHERNET, f).unwrap()));
        }
        assert_eq!(d.bytes(), MIN_CAPACITY * 24);
    }
}
