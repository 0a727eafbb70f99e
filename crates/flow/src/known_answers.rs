//! Known answers that pin shard assignment: the hash of fixed packets in each mode, and the shard
//! each gets for several shard counts. Flows must keep their shard across versions (restarts with
//! `--state`, several dispatchers, partitions over machines); a change here is a deliberate,
//! documented format break.

use super::decode::decode;
use super::frames::*;
use super::hash::shard_of;
use super::ip::{PROTO_GRE, PROTO_TCP, PROTO_UDP};
use super::link::LINKTYPE_ETHERNET;
use super::tunnel::PORT_VXLAN;
use super::{FlowConfig, HashMode, Sharder, TunnelMode};
use shardcap_capture::Packet;

/// The packets: TCP over IPv4, UDP over IPv6, GRE, VXLAN, ARP, a non-IP frame.
fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
    let vx = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &eth(0x0800, &i4)].concat();
    vec![
        (
            "tcp4",
            eth(0x0800, &ipv4(A4, B4, PROTO_TCP, &tcp(40000, 80))),
        ),
        (
            "udp6",
            eth(0x86dd, &ipv6(A6, B6, PROTO_UDP, &udp(5353, 53, b"q"))),
        ),
        (
            "gre",
            eth(0x0800, &ipv4(A4, B4, PROTO_GRE, &gre(0, 0x0800, &[], &i4))),
        ),
        (
            "vxlan",
            eth(
                0x0800,
                &ipv4(A4, B4, PROTO_UDP, &udp(50000, PORT_VXLAN, &vx)),
            ),
        ),
        ("arp", eth(0x0806, &arp(1, MAC_A, A4, [0; 6], B4))),
        ("lldp", eth(0x88cc, &[0; 28])),
    ]
}

const MODES: [(HashMode, &str); 3] = [
    (HashMode::Two, "2-tuple"),
    (HashMode::Four, "4-tuple"),
    (HashMode::Five, "5-tuple"),
];

/// `name mode tunnel hash shard/2 shard/4 shard/7` for every packet, mode and tunnel mode.
fn table() -> Vec<String> {
    let mut rows = Vec::new();
    for (name, frame) in packets() {
        for (mode, mode_name) in MODES {
            for (tunnel, tunnel_name) in
                [(TunnelMode::Outer, "outer"), (TunnelMode::Inner, "inner")]
            {
                let h = decode(LINKTYPE_ETHERNET, &frame, tunnel).key.hash(mode);
                let shards = [2, 4, 7].map(|n| shard_of(h, n).to_string()).join(" ");
                rows.push(format!(
                    "{name} {mode_name} {tunnel_name} {h:016x} {shards}"
                ));
            }
        }
    }
    rows
}

#[test]
fn shard_assignment_is_pinned() {
    let got = table();
    let want: Vec<&str> = KNOWN
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        got, want,
        "shard assignment changed: this re-shards every flow after an upgrade"
    );
}

/// The sharder, which takes the fast path for plain TCP/UDP, deals every packet to the pinned
/// shard.
#[test]
fn sharder_follows_the_pinned_table() {
    let want: Vec<&str> = KNOWN.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut rows = want.iter();
    for (name, frame) in packets() {
        for (hash, _) in MODES {
            for tunnel in [TunnelMode::Outer, TunnelMode::Inner] {
                let row = rows.next().expect("a row for every case");
                let shards: Vec<String> = [2, 4, 7]
                    .map(|n| {
                        let mut got = None;
                        let pkt = Packet {
                            ts_ns: 0,
                            len: frame.len() as u32,
                            linktype: LINKTYPE_ETHERNET,
                            data: &frame,
                        };
                        Sharder::new(FlowConfig { hash, tunnel }, n)
                            .route(&pkt, |k, _| {
                                got = Some(k);
                                Ok(())
                            })
                            .unwrap();
                        got.expect("routed").to_string()
                    })
                    .to_vec();
                let pinned: Vec<&str> = row.split(' ').skip(4).collect();
                assert_eq!(shards, pinned, "{name}: {row}");
            }
        }
    }
}

const KNOWN: &str = "
tcp4 2-tuple outer 7a10736190c28a70 0 1 3
tcp4 2-tuple inner 7a10736190c28a70 0 1 3
tcp4 4-tuple outer 7c3691b2439531aa 0 1 3
tcp4 4-tuple inner 7c3691b2439531aa 0 1 3
tcp4 5-tuple outer f77b83dcbf59f327 1 3 6
tcp4 5-tuple inner f77b83dcbf59f327 1 3 6
udp6 2-tuple outer 15f2acb7ff7f9633 0 0 0
udp6 2-tuple inner 15f2acb7ff7f9633 0 0 0
udp6 4-tuple outer b832f5e3902185a9 1 2 5
udp6 4-tuple inner b832f5e3902185a9 1 2 5
udp6 5-tuple outer cdb4ffb6f13b107d 1 3 5
udp6 5-tuple inner cdb4ffb6f13b107d 1 3 5
gre 2-tuple outer 7a10736190c28a70 0 1 3
gre 2-tuple inner c55697cc0acf1f45 1 3 5
gre 4-tuple outer 7a10736190c28a70 0 1 3
gre 4-tuple inner e09e61c07e5e6377 1 3 6
gre 5-tuple outer d31c003be6d80159 1 3 5
gre 5-tuple inner d8bb4ea7c0f54900 1 3 5
vxlan 2-tuple outer 7a10736190c28a70 0 1 3
vxlan 2-tuple inner c55697cc0acf1f45 1 3 5
vxlan 4-tuple outer 5a31466ad4c8786f 0 1 2
vxlan 4-tuple inner e09e61c07e5e6377 1 3 6
vxlan 5-tuple outer c24b7c7f8938a32e 1 3 5
vxlan 5-tuple inner d8bb4ea7c0f54900 1 3 5
arp 2-tuple outer 7a10736190c28a70 0 1 3
arp 2-tuple inner 7a10736190c28a70 0 1 3
arp 4-tuple outer 7a10736190c28a70 0 1 3
arp 4-tuple inner 7a10736190c28a70 0 1 3
arp 5-tuple outer 7a10736190c28a70 0 1 3
arp 5-tuple inner 7a10736190c28a70 0 1 3
lldp 2-tuple outer 059f4d0895b0103d 0 0 0
lldp 2-tuple inner 059f4d0895b0103d 0 0 0
lldp 4-tuple outer 059f4d0895b0103d 0 0 0
lldp 4-tuple inner 059f4d0895b0103d 0 0 0
lldp 5-tuple outer 059f4d0895b0103d 0 0 0
lldp 5-tuple inner 059f4d0895b0103d 0 0 0
";
