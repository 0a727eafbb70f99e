//! The flow stage: decodes each packet to a symmetric flow key and deals it to a shard, keeping IP
//! fragments with their first fragment and ICMP errors with the flow they quote.

pub mod arp;
pub mod decode;
pub mod fast;
pub mod fragments;
pub mod hash;
pub mod hold;
pub mod ip;
pub mod key;
pub mod link;
pub mod reframe;
pub mod tunnel;
pub mod wire;

#[cfg(test)]
pub(crate) mod frames;
#[cfg(test)]
mod known_answers;

use std::io;

use decode::Decoded;
use fragments::Fragments;
use shardcap_capture::Packet;

/// Which header fields make a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashMode {
    /// Address pair.
    Two,
    /// Address pair and port pair.
    Four,
    /// Address pair, port pair and protocol.
    Five,
}

impl HashMode {
    /// Stable name, written to journals: never change one (a restart compares them).
    pub fn as_str(self) -> &'static str {
        match self {
            HashMode::Two => "2-tuple",
            HashMode::Four => "4-tuple",
            HashMode::Five => "5-tuple",
        }
    }
}

/// Which header keys a tunnelled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelMode {
    /// The outer header (the IDS decapsulates).
    Outer,
    /// The innermost decodable header.
    Inner,
}

impl TunnelMode {
    /// Stable name, written to journals: never change one (a restart compares them).
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelMode::Outer => "outer",
            TunnelMode::Inner => "inner",
        }
    }
}

/// Flow-keying options.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    pub hash: HashMode,
    pub tunnel: TunnelMode,
}

/// One node's part of the flow-hash space: partition `index` of `count`. The space holds
/// `count` x N buckets (N shards a node); the node keeps the global shards
/// `index * N .. (index + 1) * N`, so that the partitions together write what one run with
/// `count * N` shards writes. Since shards are the high bits of the hash, partition `index` is
/// also the hash's bucket among `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

impl Partition {
    /// The whole space: one node.
    pub const WHOLE: Partition = Partition { index: 0, count: 1 };

    /// Partition `index` of `count`, if `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Self> {
        (index < count).then_some(Partition { index, count })
    }

    /// True for the whole space (no partitioning).
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// The global shard of local shard `k` of `shards` a node.
    pub fn global(self, k: usize, shards: usize) -> usize {
        self.index as usize * shards + k
    }

    /// Stable name `K/M`, written to journals: never change it (a restart compares them).
    pub fn as_string(self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

impl Default for Partition {
    /// The whole space.
    fn default() -> Self {
        Partition::WHOLE
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Counters of the flow stage (all zero with one shard and one partition: nothing is decoded then).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct FlowStats {
    /// Packets keyed by their MAC pair, ARP's address pair, or nothing, for want of an IP layer.
    pub non_ip: u64,
    /// ICMP and ICMPv6 errors keyed by the header they quote.
    pub icmp_errors: u64,
    /// Packets keyed by a header inside a tunnel (`--tunnel inner`).
    pub tunnelled: u64,
    /// IP fragments (first and later ones).
    pub fragments: u64,
    /// Fragments held because they arrived before their first fragment.
    pub frag_held: u64,
    /// Packets queued behind a held fragment, so that every shard stays in arrival order.
    pub delayed: u64,
    /// Held fragments whose first fragment did not come in time (packet-time expiry, full hold
    /// buffer, end of run): routed by their address pair instead.
    pub frag_unmatched: u64,
    /// Fragment-table entries evicted while still in use (more concurrent datagrams than fit).
    pub frag_evicted: u64,
    /// Packets routed to another partition's shards (`--partition`): hashed, not copied.
    pub partition_skipped: u64,
}

impl FlowStats {
    fn count(&mut self, d: &Decoded) {
        self.non_ip += d.non_ip as u64;
        self.icmp_errors += d.icmp_error as u64;
        self.tunnelled += d.tunnelled as u64;
    }
}

/// Where [`Sharder::direct`] puts a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direct {
    /// This node's shard `k`.
    Shard(usize),
    /// Another partition's shard (counted, not emitted).
    Elsewhere,
    /// Left to [`Sharder::route_general`].
    General,
}

/// Assigns packets to shards.
pub struct Sharder {
    cfg: FlowConfig,
    /// Shards over every partition: the flow stage decides among these.
    shards: usize,
    /// This node's shards: global shards `base .. base + local`.
    base: usize,
    local: usize,
    stats: FlowStats,
    /// Packets of other partitions (kept apart from `stats`, which the fragment table borrows).
    skipped: u64,
    fragments: Fragments,
}

impl Sharder {
    /// A sharder over `shards` outputs.
    pub fn new(cfg: FlowConfig, shards: usize) -> Self {
        Self::partitioned(cfg, shards, Partition::WHOLE)
    }

    /// A sharder over `shards` outputs of `partition`: it decides among the `shards` x
    /// `partition.count` global shards as one node with all of them would, and emits only its
    /// own, numbered `0..shards`.
    pub fn partitioned(cfg: FlowConfig, shards: usize, partition: Partition) -> Self {
        let local = shards.max(1);
        let count = (partition.count as usize).max(1);
        let shards = local * count;
        Sharder {
            cfg,
            shards,
            base: partition.global(0, local),
            local,
            stats: FlowStats::default(),
            skipped: 0,
            fragments: Fragments::new(shards),
        }
    }

    /// Routes one packet: calls `emit(shard, packet)` for it and for any held packets this
    /// releases, in arrival order. A fragment that comes before its first fragment waits for it,
    /// and packets after it wait behind it (bounded by [`hold::HOLD_BYTES`] and
    /// [`fragments::FRAGMENT_TTL_NS`] of packet time). Packets of other partitions are counted,
    /// not emitted.
    #[inline(always)]
    pub fn route<F>(&mut self, pkt: &Packet, mut emit: F) -> io::Result<()>
    where
        F: FnMut(usize, &Packet) -> io::Result<()>,
    {
        match self.direct(pkt) {
            Direct::Shard(k) => emit(k, pkt),
            Direct::Elsewhere => Ok(()),
            Direct::General => self.route_general(pkt, &mut emit),
        }
    }

    /// The common case, decided in line: a plain TCP/UDP packet (the fast path) while no
    /// fragment is held, or any packet with one shard. [`Direct::General`] leaves the packet to
    /// [`Sharder::route_general`]. [`Sharder::route`] is the two together; a caller that writes
    /// the packet itself after `direct` keeps its writing code in line on the common path.
    #[inline(always)]
    pub fn direct(&mut self, pkt: &Packet) -> Direct {
        if self.shards == 1 {
            return Direct::Shard(0);
        }
        if self.cfg.tunnel == TunnelMode::Inner || self.fragments.holding() {
            return Direct::General;
        }
        let Some(h) = fast::hash(pkt.linktype, pkt.data, self.cfg.hash) else {
            return Direct::General;
        };
        let g = hash::shard_of(h, self.shards);
        match g.checked_sub(self.base).filter(|&k| k < self.local) {
            Some(k) => Direct::Shard(k),
            None => {
                self.skipped += 1;
                Direct::Elsewhere
            }
        }
    }

    /// Routes a packet [`Sharder::direct`] left to the general path, as [`Sharder::route`] does.
    #[inline(never)]
    pub fn route_general(
        &mut self,
        pkt: &Packet,
        emit: &mut dyn FnMut(usize, &Packet) -> io::Result<()>,
    ) -> io::Result<()> {
        let d = decode::decode(pkt.linktype, pkt.data, self.cfg.tunnel);
        self.stats.count(&d);
        let shard = hash::shard_of(d.key.hash(self.cfg.hash), self.shards);
        let (base, local, skipped) = (self.base, self.local, &mut self.skipped);
        let mut own = |g: usize, p: &Packet| own(g, p, base, local, skipped, emit);
        if d.fragment.is_none() && !self.fragments.holding() {
            return own(shard, pkt);
        }
        self.fragments
            .route(d.fragment.as_ref(), shard, pkt, &mut self.stats, &mut own)
    }

    /// Releases whatever is still held at the end of the run.
    pub fn drain<F>(&mut self, mut emit: F) -> io::Result<()>
    where
        F: FnMut(usize, &Packet) -> io::Result<()>,
    {
        let (base, local, skipped) = (self.base, self.local, &mut self.skipped);
        let mut own = |g: usize, p: &Packet| own(g, p, base, local, skipped, &mut emit);
        self.fragments.drain(&mut self.stats, &mut own)
    }

    /// Counters so far.
    pub fn stats(&self) -> FlowStats {
        FlowStats {
            partition_skipped: self.skipped,
            ..self.stats
        }
    }
}

/// Emits global shard `g` as local shard `g - base` when it is one of the `local` shards from
/// `base`; else counts it in `skipped`.
#[inline(always)]
fn own<F>(
    g: usize,
    p: &Packet,
    base: usize,
    local: usize,
    skipped: &mut u64,
    emit: &mut F,
) -> io::Result<()>
where
    F: FnMut(usize, &Packet) -> io::Result<()> + ?Sized,
{
    match g.checked_sub(base).filter(|&k| k < local) {
        Some(k) => emit(k, p),
        None => {
            *skipped += 1;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frames::*;
    use super::ip::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
    use super::link::LINKTYPE_ETHERNET;
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// (shard, bytes, timestamp) of every emitted packet.
    type Out = Vec<(usize, Vec<u8>, u64)>;

    fn sharder(hash: HashMode, shards: usize) -> Sharder {
        let tunnel = TunnelMode::Outer;
        Sharder::new(FlowConfig { hash, tunnel }, shards)
    }

    fn pkt(data: &[u8], ts_ns: u64) -> Packet<'_> {
        Packet {
            ts_ns,
            len: data.len() as u32,
            linktype: LINKTYPE_ETHERNET,
            data,
        }
    }

    /// An emit callback that records into `out`.
    fn record(out: &mut Out) -> impl FnMut(usize, &Packet) -> io::Result<()> + '_ {
        |k, p| {
            out.push((k, p.data.to_vec(), p.ts_ns));
            Ok(())
        }
    }

    fn feed(s: &mut Sharder, frames: &[(Vec<u8>, u64)], out: &mut Out) {
        for (f, ts) in frames {
            s.route(&pkt(f, *ts), record(out)).unwrap();
        }
    }

    fn drain(s: &mut Sharder, out: &mut Out) {
        s.drain(record(out)).unwrap();
    }

    fn shard_of_frame(s: &mut Sharder, f: &[u8]) -> usize {
        let mut out = Out::new();
        feed(s, &[(f.to_vec(), 0)], &mut out);
        out[0].0
    }

    /// The shard of the address pair (A4, B4).
    fn address_pair_shard(shards: usize) -> usize {
        let mut s = sharder(HashMode::Two, shards);
        shard_of_frame(&mut s, &eth(0x0800, &ipv4(B4, A4, 253, b"")))
    }

    /// A UDP flow whose 5-tuple shard differs from its address pair's shard, with its fragments
    /// (first, middle, last) and an unfragmented packet of the flow.
    fn fragmented_udp(shards: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let pair = address_pair_shard(shards);
        let mut s = sharder(HashMode::Five, shards);
        for port in 1000.. {
            let whole = eth(0x0800, &ipv4(A4, B4, PROTO_UDP, &udp(port, 53, &[7; 16])));
            if shard_of_frame(&mut s, &whole) == pair {
                continue;
            }
            let first = ipv4_frag(A4, B4, PROTO_UDP, 42, 0, true, &udp(port, 53, &[1; 8]));
            let mid = ipv4_frag(A4, B4, PROTO_UDP, 42, 2, true, &[2; 16]);
            let last = ipv4_frag(A4, B4, PROTO_UDP, 42, 4, false, &[3; 5]);
            let frags = [first, mid, last].map(|p| eth(0x0800, &p)).to_vec();
            return (frags, whole);
        }
        unreachable!()
    }

    #[test]
    fn one_shard_skips_decoding() {
        let mut s = sharder(HashMode::Five, 1);
        let mut out = Out::new();
        let (frags, _) = fragmented_udp(4);
        let reversed: Vec<_> = frags.iter().rev().map(|f| (f.clone(), 1)).collect();
        feed(&mut s, &reversed, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| o.0 == 0));
        assert_eq!(s.stats().fragments, 0);
    }

    #[test]
    fn fragments_in_order_follow_the_first() {
        for shards in [4, 7] {
            let (frags, whole) = fragmented_udp(shards);
            let mut s = sharder(HashMode::Five, shards);
            let flow = shard_of_frame(&mut s, &whole);
            let mut out = Out::new();
            feed(
                &mut s,
                &frags.iter().map(|f| (f.clone(), 5)).collect::<Vec<_>>(),
                &mut out,
            );
            assert_eq!(out.len(), 3);
            assert!(out.iter().all(|o| o.0 == flow), "{out:?}");
            assert_eq!(s.stats().frag_held, 0);
            assert_eq!(s.stats().fragments, 3);
        }
    }

    #[test]
    fn reversed_fragments_wait_for_the_first() {
        for shards in [4, 7] {
            let (frags, whole) = fragmented_udp(shards);
            let mut s = sharder(HashMode::Five, shards);
            let flow = shard_of_frame(&mut s, &whole);
            let mut out = Out::new();
            let input = [(frags[2].clone(), 10), (frags[1].clone(), 11)];
            feed(&mut s, &input, &mut out);
            assert!(out.is_empty(), "held until the first fragment");
            feed(&mut s, &[(frags[0].clone(), 12)], &mut out);
            let want = vec![
                (flow, frags[2].clone(), 10),
                (flow, frags[1].clone(), 11),
                (flow, frags[0].clone(), 12),
            ];
            assert_eq!(out, want);
            assert_eq!(s.stats().frag_held, 2);
            assert_eq!(s.stats().frag_unmatched, 0);
            drain(&mut s, &mut out);
            assert_eq!(out.len(), 3);
        }
    }

    #[test]
    fn ipv6_fragments_reversed_and_interleaved_with_another_datagram() {
        let l4 = udp(5000, 53, &[0; 8]);
        let first = |id| {
            eth(
                0x86dd,
                &ipv6_ext(A6, B6, &[ext(0, 0), frag6(id, 0, true)], PROTO_UDP, &l4),
            )
        };
        let last = |id| {
            eth(
                0x86dd,
                &ipv6_ext(
                    A6,
                    B6,
                    &[ext(0, 0), frag6(id, 2, false)],
                    PROTO_UDP,
                    &[9; 8],
                ),
            )
        };
        let whole = eth(0x86dd, &ipv6(B6, A6, PROTO_UDP, &udp(53, 5000, b"")));
        for mode in [HashMode::Two, HashMode::Four, HashMode::Five] {
            let mut s = sharder(mode, 7);
            let flow = shard_of_frame(&mut s, &whole);
            let mut out = Out::new();
            let input = [(last(1), 1), (last(2), 2), (first(2), 3), (first(1), 4)];
            feed(&mut s, &input, &mut out);
            let order: Vec<_> = out.iter().map(|o| o.2).collect();
            assert_eq!(order, vec![1, 2, 3, 4], "arrival order is kept");
            assert!(out.iter().all(|o| o.0 == flow));
        }
    }

    #[test]
    fn orphan_fragments_go_by_address_pair_at_the_end() {
        let (frags, _) = fragmented_udp(4);
        let pair = address_pair_shard(4);
        let mut s = sharder(HashMode::Five, 4);
        let mut out = Out::new();
        feed(
            &mut s,
            &[(frags[1].clone(), 1), (frags[2].clone(), 2)],
            &mut out,
        );
        assert!(out.is_empty());
        drain(&mut s, &mut out);
        assert_eq!(
            out,
            vec![(pair, frags[1].clone(), 1), (pair, frags[2].clone(), 2)]
        );
        assert_eq!(s.stats().frag_unmatched, 2);
        // A later fragment of the given-up datagram follows it.
        feed(&mut s, &[(frags[2].clone(), 3)], &mut out);
        assert_eq!(out[2].0, pair);
    }

    #[test]
    fn held_fragments_expire_by_packet_time() {
        let (frags, whole) = fragmented_udp(4);
        let pair = address_pair_shard(4);
        let mut s = sharder(HashMode::Five, 4);
        let flow = shard_of_frame(&mut s, &whole);
        let mut out = Out::new();
        feed(&mut s, &[(frags[2].clone(), 100 * SEC)], &mut out);
        feed(&mut s, &[(whole.clone(), 129 * SEC)], &mut out);
        assert!(
            out.is_empty(),
            "still within 30 s: the later packet queues behind"
        );
        feed(&mut s, &[(whole.clone(), 131 * SEC)], &mut out);
        let want = vec![
            (pair, frags[2].clone(), 100 * SEC),
            (flow, whole.clone(), 129 * SEC),
            (flow, whole.clone(), 131 * SEC),
        ];
        assert_eq!(out, want);
        assert_eq!(s.stats().frag_unmatched, 1);
        assert_eq!(s.stats().delayed, 1);
    }

    #[test]
    fn packets_behind_a_held_fragment_keep_their_order_on_every_shard() {
        let (frags, _) = fragmented_udp(7);
        let mut s = sharder(HashMode::Five, 7);
        let mut input = vec![(frags[2].clone(), 0)];
        for i in 1..200u16 {
            let f = eth(0x0800, &ipv4(C4, D4, PROTO_TCP, &tcp(i, 80)));
            input.push((f, i as u64));
        }
        input.push((frags[0].clone(), 200));
        input.push((frags[1].clone(), 201));
        let mut out = Out::new();
        feed(&mut s, &input[..200], &mut out);
        assert!(out.is_empty());
        feed(&mut s, &input[200..], &mut out);
        let order: Vec<_> = out.iter().map(|o| o.2).collect();
        assert_eq!(order, (0..=201).collect::<Vec<_>>());
        assert!(out[0].0 == out[200].0 && out[200].0 == out[201].0);
        assert_eq!(s.stats().delayed, 199);
        assert_eq!(s.stats().frag_unmatched, 0);
        let used: std::collections::BTreeSet<_> = out.iter().map(|o| o.0).collect();
        assert!(used.len() > 3, "{used:?}");
    }

    #[test]
    fn traffic_behind_an_orphan_fragment_is_bounded() {
        let (frags, _) = fragmented_udp(4);
        let mut s = sharder(HashMode::Five, 4);
        let mut out = Out::new();
        feed(&mut s, &[(frags[2].clone(), 0)], &mut out);
        let payload = vec![0u8; 1000];
        let n = 2 * hold::HOLD_BYTES / 1000;
        for i in 1..=n {
            let f = eth(
                0x0800,
                &ipv4(C4, D4, PROTO_UDP, &udp(i as u16, 53, &payload)),
            );
            feed(&mut s, &[(f, i as u64)], &mut out);
        }
        let queued = n + 1 - out.len();
        assert!(queued * 1000 <= hold::HOLD_BYTES, "{queued} queued");
        assert!(out.iter().enumerate().all(|(i, o)| o.2 == i as u64));
        assert_eq!(s.stats().frag_unmatched, 1);
        drain(&mut s, &mut out);
        assert_eq!(out.len(), n + 1);
    }

    #[test]
    fn jump_back_in_time_does_not_expire_held_fragments() {
        let (frags, whole) = fragmented_udp(7);
        let mut s = sharder(HashMode::Five, 7);
        let flow = shard_of_frame(&mut s, &whole);
        let other = eth(
            0x0800,
            &ipv4_frag(C4, D4, PROTO_UDP, 9, 0, true, &udp(1, 2, b"")),
        );
        let mut out = Out::new();
        let input = [
            (other, 1000 * SEC),
            (frags[2].clone(), 10 * SEC),
            (frags[0].clone(), 10 * SEC),
        ];
        feed(&mut s, &input, &mut out);
        assert_eq!(out.len(), 3);
        out.remove(0);
        assert!(out.iter().all(|o| o.0 == flow), "{out:?}");
        assert_eq!(s.stats().frag_unmatched, 0);
    }

    #[test]
    fn hold_buffer_is_bounded() {
        let mut s = sharder(HashMode::Five, 4);
        let mut out = Out::new();
        let payload = vec![0u8; 1400];
        let n = 2 * hold::HOLD_BYTES / 1400;
        for i in 0..n {
            let f = eth(
                0x0800,
                &ipv4_frag(A4, B4, PROTO_UDP, i as u16, 8, true, &payload),
            );
            feed(&mut s, &[(f, i as u64)], &mut out);
        }
        let held = n - out.len();
        assert!(held * 1400 <= hold::HOLD_BYTES, "{held} held");
        assert!(held * (1400 + 14 + 20 + hold::ENTRY_OVERHEAD) > hold::HOLD_BYTES / 2);
        // The oldest went first, in order.
        assert!(out.iter().enumerate().all(|(i, o)| o.2 == i as u64));
        drain(&mut s, &mut out);
        assert_eq!(out.len(), n);
        assert_eq!(s.stats().frag_unmatched, n as u64);
    }

    #[test]
    fn icmp_errors_land_with_the_flow_they_quote() {
        for shards in [4, 7] {
            for mode in [HashMode::Two, HashMode::Four, HashMode::Five] {
                let mut s = sharder(mode, shards);
                for port in 1000..1050 {
                    let req = ipv4(A4, B4, PROTO_TCP, &tcp(port, 80));
                    let reply = eth(0x0800, &ipv4(B4, A4, PROTO_TCP, &tcp(80, port)));
                    let err = eth(0x0800, &ipv4(C4, A4, PROTO_ICMP, &icmp(3, &req[..28])));
                    assert_eq!(shard_of_frame(&mut s, &err), shard_of_frame(&mut s, &reply));
                    let req6 = ipv6(A6, B6, PROTO_UDP, &udp(port, 53, b"q"));
                    let reply6 = eth(0x86dd, &ipv6(B6, A6, PROTO_UDP, &udp(53, port, b"a")));
                    let err6 = eth(0x86dd, &ipv6(C6, A6, PROTO_ICMPV6, &icmp(3, &req6)));
                    assert_eq!(
                        shard_of_frame(&mut s, &err6),
                        shard_of_frame(&mut s, &reply6)
                    );
                }
                assert_eq!(s.stats().icmp_errors, 100);
            }
        }
    }

    #[test]
    fn flows_spread_evenly() {
        let mut next = random(0x9e37_79b9_7f4a_7c15u64);
        for shards in [4, 7] {
            let mut s = sharder(HashMode::Five, shards);
            let mut random = vec![0usize; shards];
            let mut ports = vec![0usize; shards];
            let n = 7000;
            for i in 0..n {
                let r = next();
                let (a, b) = ((r as u32).to_be_bytes(), ((r >> 32) as u32).to_be_bytes());
                let f = eth(0x0800, &ipv4(a, b, PROTO_TCP, &tcp(next() as u16, 443)));
                random[shard_of_frame(&mut s, &f)] += 1;
                // One client, one server, consecutive source ports.
                let f = eth(
                    0x0800,
                    &ipv4(A4, B4, PROTO_TCP, &tcp(30000 + i as u16, 443)),
                );
                ports[shard_of_frame(&mut s, &f)] += 1;
            }
            let mean = n / shards;
            for counts in [&random, &ports] {
                assert!(
                    counts.iter().all(|&c| c.abs_diff(mean) * 10 < mean),
                    "{counts:?}"
                );
            }
        }
    }

    /// Every partition of M emits, in its own numbering, exactly the packets a sharder over all
    /// M x N shards sends to that partition's shards, in the same order: fragments (also held
    /// ones) and ICMP errors follow their flow across partitions as they do across shards.
    #[test]
    fn partitions_together_equal_one_sharder_over_every_shard() {
        let (frags, whole) = fragmented_udp(6);
        let mut input = vec![(frags[2].clone(), 1), (frags[1].clone(), 2)];
        for port in 1000..1100u16 {
            let req = ipv4(A4, B4, PROTO_TCP, &tcp(port, 80));
            input.push((eth(0x0800, &req), 10 + port as u64));
            let err = eth(0x0800, &ipv4(C4, A4, PROTO_ICMP, &icmp(3, &req[..28])));
            input.push((err, 10 + port as u64));
            let f = eth(0x0800, &ipv4(C4, D4, PROTO_UDP, &udp(port, 53, b"q")));
            input.push((f, 10 + port as u64));
        }
        input.push((frags[0].clone(), 2000));
        input.push((whole, 2001));
        for (m, n) in [(1, 6), (2, 3), (3, 2), (6, 1), (4, 1)] {
            let mut all = sharder(HashMode::Five, m * n);
            let mut want = Out::new();
            feed(&mut all, &input, &mut want);
            drain(&mut all, &mut want);
            assert_eq!(want.len(), input.len());
            let mut union = Out::new();
            let mut skipped = 0;
            for k in 0..m as u32 {
                let cfg = FlowConfig {
                    hash: HashMode::Five,
                    tunnel: TunnelMode::Outer,
                };
                let part = Partition::new(k, m as u32).unwrap();
                let mut s = Sharder::partitioned(cfg, n, part);
                let mut out = Out::new();
                feed(&mut s, &input, &mut out);
                drain(&mut s, &mut out);
                assert!(out.iter().all(|o| o.0 < n), "local numbers");
                let mine: Out = (want.iter())
                    .filter(|o| o.0 / n == k as usize)
                    .map(|o| (o.0 % n, o.1.clone(), o.2))
                    .collect();
                assert_eq!(out, mine, "partition {part} of {m}x{n}");
                assert_eq!(
                    s.stats().partition_skipped,
                    (input.len() - out.len()) as u64
                );
                skipped += s.stats().partition_skipped;
                union.extend(out);
            }
            assert_eq!(union.len(), input.len());
            assert_eq!(skipped, ((m - 1) * input.len()) as u64);
            if m > 1 {
                assert!((0..m).all(|k| want.iter().any(|o| o.0 / n == k)), "{m}x{n}");
            }
        }
    }

    #[test]
    fn partition_bounds() {
        assert!(Partition::new(2, 3).is_some());
        assert!(Partition::new(3, 3).is_none());
        assert_eq!(Partition::new(2, 3).unwrap().global(1, 4), 9);
        assert!(Partition::WHOLE.is_whole());
    }

    /// Journals compare these names across restarts: they must never change.
    #[test]
    fn stable_names() {
        assert_eq!(HashMode::Two.as_str(), "2-tuple");
        assert_eq!(HashMode::Four.as_str(), "4-tuple");
        assert_eq!(HashMode::Five.as_str(), "5-tuple");
        assert_eq!(TunnelMode::Outer.as_str(), "outer");
        assert_eq!(TunnelMode::Inner.as_str(), "inner");
        assert_eq!(Partition::new(2, 3).unwrap().as_string(), "2/3");
    }
}
