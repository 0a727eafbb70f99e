//! Flow integrity over every capture of the corpus (../shared/corpus): packets are read with the
//! pcap-file crate (a reader independent of shardcap's), routed through `Sharder` for every hash
//! mode, both tunnel modes and 4 and 7 shards, and checked against a small header extraction
//! written here, not the code under test:
//! - every packet leaves exactly once, byte-identical (data, caplen, len, timestamp, link type);
//! - both directions of every plain Ethernet IPv4/IPv6 TCP/UDP flow share a shard;
//! - every fragment of an IPv4/IPv6 datagram sits on the shard of its first fragment;
//! - ICMP/ICMPv6 errors sit with the flow they quote where that flow is in the file.
//!
//! Files shardcap cannot read (including pcapng until its reader exists) are skipped. The same
//! fragment property is then checked end to end through the `shardcap run` binary.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use shardcap::flow::{FlowConfig, HashMode, Sharder, TunnelMode};
use shardcap::input::capture::Capture;
use shardcap::input::Packet;

const MODES: [HashMode; 3] = [HashMode::Two, HashMode::Four, HashMode::Five];
const TUNNEL_PORTS: [u16; 4] = [4789, 6081, 2152, 3544];

/// One packet as the independent reader saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Rec {
    ts_ns: u64,
    len: u32,
    linktype: u32,
    data: Vec<u8>,
}

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.is_dir(),
        "the test corpus is missing at {}",
        dir.display()
    );
    dir
}

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
    walk(&corpus(), &mut all);
    all.sort();
    all.into_iter()
        .filter(|p| match Capture::open(p) {
            Ok(Some((mut c, _, _))) => c.advance().is_ok(),
            _ => false,
        })
        .collect()
}

/// The packets of a capture as pcap-file reads them, up to the first damage.
fn read(path: &Path) -> Vec<Rec> {
    let mut file = BufReader::new(File::open(path).unwrap());
    let is_ng = file
        .fill_buf()
        .is_ok_and(|b| b.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]));
    let mut out = Vec::new();
    if is_ng {
        let Ok(mut r) = PcapNgReader::new(file) else {
            return out;
        };
        while let Some(Ok(block)) = r.next_block() {
            let block = block.into_owned();
            let (iface, ts, len, data) = match block {
                Block::EnhancedPacket(p) => (p.interface_id, p.timestamp, p.original_len, p.data),
                Block::SimplePacket(p) => (0, Default::default(), p.original_len, p.data),
                _ => continue,
            };
            let Some(idb) = r.interfaces().get(iface as usize) else {
                break;
            };
            out.push(Rec {
                ts_ns: ts.as_nanos() as u64,
                len,
                linktype: u32::from(idb.linktype),
                data: data.into_owned(),
            });
        }
    } else {
        let Ok(mut r) = PcapReader::new(file) else {
            return out;
        };
        let linktype = u32::from(r.header().datalink);
        while let Some(Ok(p)) = r.next_packet() {
            out.push(Rec {
                ts_ns: p.timestamp.as_nanos() as u64,
                len: p.orig_len,
                linktype,
                data: p.data.into_owned(),
            });
        }
    }
    out
}

/// Routes `recs` through a sharder; returns the shard of each input packet, after checking
/// that every packet came out exactly once and unchanged.
fn route_all(recs: &[Rec], cfg: FlowConfig, shards: usize) -> Vec<usize> {
    // Identical packets are interchangeable: each emitted copy takes the next unassigned one.
    let mut by_content: HashMap<&Rec, (Vec<usize>, usize)> = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        by_content.entry(r).or_default().0.push(i);
    }
    let mut shard = vec![usize::MAX; recs.len()];
    let mut emit = |k: usize, p: &Packet| {
        assert!(k < shards, "shard {k} of {shards}");
        let rec = Rec {
            ts_ns: p.ts_ns,
            len: p.len,
            linktype: p.linktype,
            data: p.data.to_vec(),
        };
        let (list, next) = by_content
            .get_mut(&rec)
            .expect("emitted a packet that was never routed, or changed it");
        assert!(*next < list.len(), "packet emitted twice: {rec:?}");
        shard[list[*next]] = k;
        *next += 1;
        Ok(())
    };
    let mut sharder = Sharder::new(cfg, shards);
    for r in recs {
        let pkt = Packet {
            ts_ns: r.ts_ns,
            len: r.len,
            linktype: r.linktype,
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
fn datagrams(recs: &[Rec]) -> Vec<Vec<usize>> {
    let mut current: HashMap<Datagram, (usize, bool)> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let Some((name, first)) = fragment(r.linktype, &r.data) else {
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

/// Checks the flow, fragment and ICMP properties of one routing of `recs`.
fn check(name: &str, recs: &[Rec], shard: &[usize], cfg: FlowConfig, cov: &mut Coverage) {
    let FlowConfig { hash: mode, tunnel } = cfg;
    let what = format!("{name} {mode:?} {tunnel:?}");
    let mut flows: HashMap<_, (usize, Flow, bool)> = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        let Some(flow) = plain_ethernet(r.linktype, &r.data).and_then(ip_flow) else {
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
    for g in datagrams(recs) {
        let s = shard[g[0]];
        let moved: Vec<_> = g.iter().filter(|&&i| shard[i] != s).collect();
        assert!(
            moved.is_empty(),
            "{what}: datagram {g:?} split across shards"
        );
        cov.datagrams += 1;
        cov.reordered_datagrams += fragment(recs[g[0]].linktype, &recs[g[0]].data)
            .is_some_and(|(_, first)| !first) as usize;
    }
    for (i, r) in recs.iter().enumerate() {
        let Some(quoted) = plain_ethernet(r.linktype, &r.data).and_then(icmp_quote) else {
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
        let recs = read(&path);
        if recs.is_empty() {
            continue;
        }
        let name = path.strip_prefix(corpus()).unwrap().display().to_string();
        cov.files += 1;
        cov.packets += recs.len();
        for tunnel in [TunnelMode::Outer, TunnelMode::Inner] {
            for hash in MODES {
                for n in [4, 7] {
                    let cfg = FlowConfig { hash, tunnel };
                    let shard = route_all(&recs, cfg, n);
                    check(&format!("{name} n={n}"), &recs, &shard, cfg, &mut cov);
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

#[test]
fn tcp_connections_spread_evenly_over_shards() {
    let recs = read(&corpus().join("zeek/echo-connections-82k-packets.pcap"));
    for hash in [HashMode::Four, HashMode::Five] {
        let cfg = FlowConfig {
            hash,
            tunnel: TunnelMode::Outer,
        };
        let n = 4;
        let shard = route_all(&recs, cfg, n);
        let mut packets = vec![0usize; n];
        let mut conns: Vec<HashMap<_, ()>> = vec![HashMap::new(); n];
        for (i, r) in recs.iter().enumerate() {
            packets[shard[i]] += 1;
            if let Some(f) = plain_ethernet(r.linktype, &r.data).and_then(ip_flow) {
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

/// Writes `recs` as a microsecond pcap of link type `linktype`.
fn write_pcap(path: &Path, linktype: u32, recs: &[Rec]) {
    let header = pcap_file::pcap::PcapHeader {
        datalink: linktype.into(),
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
    for r in recs {
        let ts = std::time::Duration::from_nanos(r.ts_ns);
        w.write_packet(&PcapPacket::new(ts, r.len, &r.data))
            .unwrap();
    }
}

/// Runs `shardcap run -n 4` over `input`, reads the shard files back with pcap-file and checks
/// conservation and that fragments sit with their first fragment.
fn run_binary(input: &Path, order: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("file:{}/s-{{shard}}.pcap", dir.path().display());
    let status = Command::new(env!("CARGO_BIN_EXE_shardcap"))
        .args(["run", "-q", "-n", "4", "--order", order, "-o", &pattern])
        .arg(input)
        .status()
        .unwrap();
    assert!(status.success(), "{}: {status}", input.display());
    let recs = read(input);
    let mut by_content: HashMap<&Rec, Vec<usize>> = HashMap::new();
    for (i, r) in recs.iter().enumerate().rev() {
        by_content.entry(r).or_default().push(i);
    }
    let mut shard = vec![usize::MAX; recs.len()];
    for k in 0..4 {
        for r in read(&dir.path().join(format!("s-{k}.pcap"))) {
            let i = by_content
                .get_mut(&r)
                .and_then(|l| l.pop())
                .unwrap_or_else(|| panic!("shard {k}: unexpected or duplicated {r:?}"));
            shard[i] = k;
        }
    }
    assert!(
        shard.iter().all(|&s| s < 4),
        "{}: packets lost",
        input.display()
    );
    let groups = datagrams(&recs);
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
        run_binary(&corpus().join(f), "time");
    }
    // The same datagrams with their fragments in reverse order: the later ones must wait.
    let dir = tempfile::tempdir().unwrap();
    for (f, name) in [
        ("pcapplusplus/ipv4-fragments-http-request.pcap", "v4.pcap"),
        ("pcapplusplus/ipv6-fragments.pcap", "v6.pcap"),
    ] {
        let mut recs = read(&corpus().join(f));
        recs.reverse();
        let path = dir.path().join(name);
        write_pcap(&path, recs[0].linktype, &recs);
        run_binary(&path, "given");
    }
}
