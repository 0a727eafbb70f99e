//! Flow integrity over every capture of the corpus: packets are read with the tests' own reader
//! (the pcap-file crate, independent of shardcap's), routed through `Sharder` for every hash
//! mode, both tunnel modes and 4 and 7 shards, and checked against a small header extraction
//! written here, not the code under test:
//! - every packet leaves exactly once, byte-identical (data, caplen, len, timestamp, link type),
//!   and each shard receives its packets in arrival order (held fragments included);
//! - both directions of every plain Ethernet IPv4/IPv6 TCP/UDP flow share a shard;
//! - every fragment of an IPv4/IPv6 datagram sits on the shard of its first fragment;
//! - ICMP/ICMPv6 errors sit with the flow they quote where that flow is in the file.
//!
//! Files shardcap cannot read are skipped. The fragment property is also checked end to end
//! through the `shardcap run` binary, with corpus fragments in capture order and reversed.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{
    corpus, corpus_dir, read_capture, read_shards, same_packets, shardcap, write_pcap, Rec,
};
use shardcap_capture::capture::Capture;
use shardcap_capture::Packet;
use shardcap_flow::decode::decode;
use shardcap_flow::{FlowConfig, HashMode, Sharder, TunnelMode};

const MODES: [HashMode; 3] = [HashMode::Two, HashMode::Four, HashMode::Five];
const TUNNEL_PORTS: [u16; 4] = [4789, 6081, 2152, 3544];

/// A packet with the link type of its interface, as the independent reader saw it.
type Pkt = (u32, Rec);

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every file of the corpus that shardcap opens and reads a first record of.
fn captures() -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(&corpus_dir(), &mut all);
    all.sort();
    all.into_iter()
        .filter(|p| match Capture::open(p) {
            Ok(Some((mut c, _, _))) => c.advance().is_ok(),
            _ => false,
        })
        .collect()
}

/// Routes `pkts` through a sharder; returns the shard of each input packet, after checking
/// that every packet came out exactly once and unchanged, and each shard in arrival order.
fn route_all(pkts: &[Pkt], cfg: FlowConfig, shards: usize) -> Vec<usize> {
    // Identical packets are interchangeable: each emitted copy takes the next unassigned one.
    let mut by_content: HashMap<&Pkt, (Vec<usize>, usize)> = HashMap::new();
    for (i, p) in pkts.iter().enumerate() {
        by_content.entry(p).or_default().0.push(i);
    }
    let mut shard = vec![usize::MAX; pkts.len()];
    let mut last_on = vec![None; shards];
    let mut emit = |k: usize, p: &Packet| {
        assert!(k < shards, "shard {k} of {shards}");
        let rec = Rec {
            ts_ns: p.ts_ns,
            len: p.len,
            data: p.data.to_vec(),
        };
        let (list, next) = by_content
            .get_mut(&(p.linktype, rec))
            .expect("emitted a packet that was never routed, or changed it");
        assert!(*next < list.len(), "packet {} emitted twice", list[0]);
        let i = list[*next];
        assert!(
            last_on[k] < Some(i),
            "shard {k}: packet {i} overtook {:?}",
            last_on[k]
        );
        last_on[k] = Some(i);
        shard[i] = k;
        *next += 1;
        Ok(())
    };
    let mut sharder = Sharder::new(cfg, shards);
    for (linktype, r) in pkts {
        let pkt = Packet {
            ts_ns: r.ts_ns,
            len: r.len,
            linktype: *linktype,
            data: &r.data,
        };
        sharder.route(&pkt, &mut emit).unwrap();
    }
    sharder.drain(&mut emit).unwrap();
    let lost = shard.iter().filter(|&&s| s == usize::MAX).count();
    assert_eq!(lost, 0, "{lost} packets never emitted");
    shard
}

// ---- independent header extraction (plain encapsulations only) ----

type Endpoint = ([u8; 16], u16);

/// Endpoints and protocol of a TCP or UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Flow {
    a: Endpoint,
    b: Endpoint,
    proto: u8,
}

impl Flow {
    /// The flow as the hash mode names it, the same for both directions.
    fn key(&self, mode: HashMode) -> (Endpoint, Endpoint, u8) {
        let (lo, hi) = if self.a <= self.b {
            (self.a, self.b)
        } else {
            (self.b, self.a)
        };
        match mode {
            HashMode::Two if lo.0 <= hi.0 => ((lo.0, 0), (hi.0, 0), 0),
            HashMode::Two => ((hi.0, 0), (lo.0, 0), 0),
            HashMode::Four => (lo, hi, 0),
            HashMode::Five => (lo, hi, self.proto),
        }
    }

    fn is_tunnel(&self) -> bool {
        self.proto == 17 && (TUNNEL_PORTS.contains(&self.a.1) || TUNNEL_PORTS.contains(&self.b.1))
    }
}

fn be16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(off..off + 2)?.try_into().ok()?))
}

fn v4(d: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[12..].copy_from_slice(d);
    a
}

/// The IP header of an untagged Ethernet frame.
fn plain_ethernet(linktype: u32, d: &[u8]) -> Option<&[u8]> {
    if linktype != 1 || !matches!(be16(d, 12)?, 0x0800 | 0x86dd) {
        return None;
    }
    d.get(14..)
}

/// TCP/UDP endpoints of an IPv4 header (not a later fragment) or an IPv6 header without
/// extension headers.
fn ip_flow(ip: &[u8]) -> Option<Flow> {
    let (src, dst, proto, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            if be16(ip, 6)? & 0x1fff != 0 {
                return None;
            }
            (
                v4(ip.get(12..16)?),
                v4(ip.get(16..20)?),
                *ip.get(9)?,
                ip.get(ihl..)?,
            )
        }
        6 => (
            ip.get(8..24)?.try_into().ok()?,
            ip.get(24..40)?.try_into().ok()?,
            *ip.get(6)?,
            ip.get(40..)?,
        ),
        _ => return None,
    };
    if proto != 6 && proto != 17 {
        return None;
    }
    Some(Flow {
        a: (src, be16(l4, 0)?),
        b: (dst, be16(l4, 2)?),
        proto,
    })
}

/// The flow an ICMP (types 3, 4, 5, 11, 12) or ICMPv6 (types 1-4) error quotes.
fn icmp_quote(ip: &[u8]) -> Option<Flow> {
    let (l4, v6) = match ip.first()? >> 4 {
        4 if ip.get(9) == Some(&1) => (ip.get((ip[0] & 0x0f) as usize * 4..)?, false),
        6 if ip.get(6) == Some(&58) => (ip.get(40..)?, true),
        _ => return None,
    };
    let kind = *l4.first()?;
    let error = if v6 {
        (1..=4).contains(&kind)
    } else {
        matches!(kind, 3 | 4 | 5 | 11 | 12)
    };
    if error {
        ip_flow(l4.get(8..)?)
    } else {
        None
    }
}

/// What names a datagram: addresses, identification (and protocol for IPv4).
type Datagram = ([u8; 16], [u8; 16], u32, u8);

/// The datagram a fragment belongs to and whether it is the first fragment.
fn fragment(linktype: u32, d: &[u8]) -> Option<(Datagram, bool)> {
    let ip = match linktype {
        1 => {
            let mut off = 12;
            while matches!(be16(d, off)?, 0x8100 | 0x88a8) {
                off += 4;
            }
            d.get(off + 2..)?
        }
        9 => d.get(if d.starts_with(&[0xff, 0x03]) { 4 } else { 2 }..)?,
        12 | 14 | 101 | 228 | 229 => d,
        _ => return None,
    };
    match ip.first()? >> 4 {
        4 => {
            let flags = be16(ip, 6)?;
            let offset = flags & 0x1fff;
            (flags & 0x2000 != 0 || offset != 0).then_some(())?;
            let id = be16(ip, 4)? as u32;
            Some((
                (v4(ip.get(12..16)?), v4(ip.get(16..20)?), id, ip[9]),
                offset == 0,
            ))
        }
        6 => {
            let (mut next, mut off) = (*ip.get(6)?, 40);
            while matches!(next, 0 | 43 | 60) {
                next = *ip.get(off)?;
                off += (*ip.get(off + 1)? as usize + 1) * 8;
            }
            if next != 44 {
                return None;
            }
            let field = be16(ip, off + 2)?;
            let id = u32::from_be_bytes(ip.get(off + 4..off + 8)?.try_into().ok()?);
            let (src, dst) = (ip.get(8..24)?, ip.get(24..40)?);
            (field >> 3 != 0 || field & 1 != 0).then_some(())?;
            Some((
                (src.try_into().ok()?, dst.try_into().ok()?, id, 0),
                field >> 3 == 0,
            ))
        }
        _ => None,
    }
}

/// Groups fragments into datagrams in capture order: a first fragment opens a new datagram
/// when the current one of its name already has one (identification reused); other fragments
/// join the current one. Returns the groups of packet indexes.
fn datagrams(pkts: &[Pkt]) -> Vec<Vec<usize>> {
    let mut current: HashMap<Datagram, (usize, bool)> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, (linktype, r)) in pkts.iter().enumerate() {
        let Some((name, first)) = fragment(*linktype, &r.data) else {
            continue;
        };
        match current.get_mut(&name) {
            Some((g, has_first)) if !(first && *has_first) => {
                groups[*g].push(i);
                *has_first |= first;
            }
            _ => {
                current.insert(name, (groups.len(), first));
                groups.push(vec![i]);
            }
        }
    }
    groups
}

/// What the checks covered, so that a test that checked nothing fails.
#[derive(Debug, Default)]
struct Coverage {
    files: usize,
    packets: usize,
    two_way_flows: usize,
    datagrams: usize,
    reordered_datagrams: usize,
    icmp_errors: usize,
}

/// Checks the flow, fragment and ICMP properties of one routing of `pkts`.
fn check(name: &str, pkts: &[Pkt], shard: &[usize], cfg: FlowConfig, cov: &mut Coverage) {
    let FlowConfig { hash: mode, tunnel } = cfg;
    let what = format!("{name} {mode:?} {tunnel:?}");
    let mut flows: HashMap<_, (usize, Flow, bool)> = HashMap::new();
    for (i, (linktype, r)) in pkts.iter().enumerate() {
        let Some(flow) = plain_ethernet(*linktype, &r.data).and_then(ip_flow) else {
            continue;
        };
        if tunnel == TunnelMode::Inner && flow.is_tunnel() {
            continue;
        }
        let e = flows
            .entry(flow.key(mode))
            .or_insert((shard[i], flow, false));
        assert_eq!(
            e.0, shard[i],
            "{what}: packet {i} of flow {flow:?} left its flow's shard"
        );
        if e.1.a != flow.a && !e.2 {
            e.2 = true;
            cov.two_way_flows += 1;
        }
    }
    for g in datagrams(pkts) {
        let s = shard[g[0]];
        let moved: Vec<_> = g.iter().filter(|&&i| shard[i] != s).collect();
        assert!(
            moved.is_empty(),
            "{what}: datagram {g:?} split across shards"
        );
        cov.datagrams += 1;
        let (linktype, r) = &pkts[g[0]];
        cov.reordered_datagrams +=
            fragment(*linktype, &r.data).is_some_and(|(_, first)| !first) as usize;
    }
    for (i, (linktype, r)) in pkts.iter().enumerate() {
        let Some(quoted) = plain_ethernet(*linktype, &r.data).and_then(icmp_quote) else {
            continue;
        };
        if let Some((s, ..)) = flows.get(&quoted.key(mode)) {
            assert_eq!(
                *s, shard[i],
                "{what}: ICMP error {i} away from the flow it quotes"
            );
            cov.icmp_errors += 1;
        }
    }
}

#[test]
fn every_corpus_capture_keeps_flows_fragments_and_icmp_errors_together() {
    let mut cov = Coverage::default();
    for path in captures() {
        let pkts = read_capture(&path).packets;
        if pkts.is_empty() {
            continue;
        }
        let name = path
            .strip_prefix(corpus_dir())
            .unwrap()
            .display()
            .to_string();
        cov.files += 1;
        cov.packets += pkts.len();
        for tunnel in [TunnelMode::Outer, TunnelMode::Inner] {
            for hash in MODES {
                for n in [4, 7] {
                    let cfg = FlowConfig { hash, tunnel };
                    let shard = route_all(&pkts, cfg, n);
                    check(&format!("{name} n={n}"), &pkts, &shard, cfg, &mut cov);
                }
            }
        }
    }
    eprintln!("{cov:?}");
    // Each figure counts once per routing (12 routings per file).
    assert!(cov.files >= 60, "{cov:?}");
    assert!(cov.two_way_flows >= 12 * 1000, "{cov:?}");
    assert!(cov.datagrams >= 12 * 20, "{cov:?}");
    assert!(cov.reordered_datagrams >= 12, "{cov:?}");
    assert!(cov.icmp_errors >= 12 * 3, "{cov:?}");
}

/// The fast path (plain TCP/UDP hashed straight from the headers) gives, for every corpus packet
/// it takes, the hash of the general decoder, and only for packets the general decoder routes by
/// that hash alone (no fragment, ICMP error or non-IP frame).
#[test]
fn fast_path_hashes_every_corpus_packet_as_the_general_decoder() {
    let (mut packets, mut fast) = (0usize, 0usize);
    for path in captures() {
        for (linktype, r) in read_capture(&path).packets {
            packets += 1;
            let d = decode(linktype, &r.data, TunnelMode::Outer);
            let mut taken = false;
            for hash in MODES {
                if let Some(h) = shardcap_flow::fast::hash(linktype, &r.data, hash) {
                    assert_eq!(h, d.key.hash(hash), "{}: {hash:?}", path.display());
                    assert!(
                        d.fragment.is_none() && !d.non_ip && !d.icmp_error,
                        "{}: fast path for {d:?}",
                        path.display()
                    );
                    taken = true;
                }
            }
            fast += taken as usize;
        }
    }
    eprintln!("{fast} of {packets} corpus packets on the fast path");
    assert!(
        packets > 100_000 && fast * 2 > packets,
        "{fast} of {packets}"
    );
    assert!(fast < packets);
}

#[test]
fn tcp_connections_spread_evenly_over_shards() {
    let pkts = read_capture(&corpus("zeek/echo-connections-82k-packets.pcap")).packets;
    for hash in [HashMode::Four, HashMode::Five] {
        let cfg = FlowConfig {
            hash,
            tunnel: TunnelMode::Outer,
        };
        let n = 4;
        let shard = route_all(&pkts, cfg, n);
        let mut packets = vec![0usize; n];
        let mut conns: Vec<HashMap<_, ()>> = vec![HashMap::new(); n];
        for (i, (linktype, r)) in pkts.iter().enumerate() {
            packets[shard[i]] += 1;
            if let Some(f) = plain_ethernet(*linktype, &r.data).and_then(ip_flow) {
                conns[shard[i]].insert(f.key(hash), ());
            }
        }
        let conns: Vec<usize> = conns.iter().map(|c| c.len()).collect();
        assert!(conns.iter().sum::<usize>() >= 500, "{conns:?}");
        for counts in [&packets, &conns] {
            let mean = counts.iter().sum::<usize>() / n;
            assert!(
                counts.iter().all(|&c| 2 * c >= mean),
                "{hash:?}: {counts:?} (mean {mean})"
            );
        }
    }
}

/// Runs `shardcap run -n 4` over `input`, reads the shard files back and checks conservation
/// and that fragments sit with their first fragment.
fn run_binary(input: &Path, order: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("file:{}/s-{{shard}}.pcap", dir.path().display());
    let run = shardcap([
        "run",
        "-q",
        "-n",
        "4",
        "--order",
        order,
        "-o",
        &pattern,
        input.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}: {}", input.display(), run.stderr);
    let pkts = read_capture(input).packets;
    let shards = read_shards(dir.path(), "s", 4).unwrap();
    let got = shards.iter().flat_map(|s| s.packets.clone()).collect();
    same_packets(pkts.iter().map(|p| p.1.clone()).collect(), got).unwrap();
    // Identical packets are interchangeable: each output copy takes the next input one.
    let mut by_content: HashMap<&Rec, Vec<usize>> = HashMap::new();
    for (i, (_, r)) in pkts.iter().enumerate().rev() {
        by_content.entry(r).or_default().push(i);
    }
    let mut shard = vec![usize::MAX; pkts.len()];
    for (k, s) in shards.iter().enumerate() {
        for r in &s.packets {
            shard[by_content.get_mut(r).and_then(|l| l.pop()).unwrap()] = k;
        }
    }
    let groups = datagrams(&pkts);
    assert!(!groups.is_empty());
    for g in groups {
        assert!(
            g.iter().all(|&i| shard[i] == shard[g[0]]),
            "{}: {g:?}",
            input.display()
        );
    }
}

#[test]
fn shardcap_run_keeps_fragments_with_their_first() {
    for f in [
        "pcapplusplus/ipv4-fragments-http-request.pcap",
        "pcapplusplus/ipv6-fragments.pcap",
        "zeek/ipv6-fragmented-dns.pcap",
        "suricata-verify/ipv6-dos-with-ext-headers-6/denial6-6.pcap",
    ] {
        run_binary(&corpus(f), "time");
    }
    // The same datagrams with their fragments in reverse order: the later ones must wait.
    let dir = tempfile::tempdir().unwrap();
    for (f, name) in [
        ("pcapplusplus/ipv4-fragments-http-request.pcap", "v4.pcap"),
        ("pcapplusplus/ipv6-fragments.pcap", "v6.pcap"),
    ] {
        let mut pkts = read_capture(&corpus(f)).packets;
        pkts.reverse();
        let path = dir.path().join(name);
        let recs: Vec<Rec> = pkts.iter().map(|p| p.1.clone()).collect();
        write_pcap(&path, pkts[0].0, false, &recs);
        run_binary(&path, "given");
    }
}
