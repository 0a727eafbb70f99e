//! The common case without the general decoder: TCP or UDP over IPv4 or IPv6 (no extension
//! header), not fragmented, in an Ethernet frame with at most one VLAN tag, hashed straight from
//! the header bytes. The hash is the one the general path gives ([`decode`](super::decode::decode)
//! then [`FlowKey::hash`](super::key::FlowKey::hash)), so the shard assignment does not depend on
//! which path a packet takes; every other packet gets `None` and takes the general path.

use super::hash::{addr_words, words5};
use super::ip::{ipv4_end, PROTO_TCP, PROTO_UDP};
use super::link::{
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD, ETHERTYPE_VLAN,
    LINKTYPE_ETHERNET,
};
use super::HashMode;

/// The flow hash of a plain TCP/UDP packet of link type `linktype` under `mode` (outer headers:
/// the caller takes the general path for `--tunnel inner`); `None` for anything else.
#[inline(always)]
pub fn hash(linktype: u32, d: &[u8], mode: HashMode) -> Option<u64> {
    if linktype & 0xffff != LINKTYPE_ETHERNET {
        return None;
    }
    let (mut et, mut off) = (be16(d, 12)?, 14);
    if matches!(et, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
        (et, off) = (be16(d, 16)?, 18);
    }
    let ip = d.get(off..)?;
    match et {
        ETHERTYPE_IPV4 => v4(ip, mode),
        ETHERTYPE_IPV6 => v6(ip, mode),
        _ => None,
    }
}

#[inline(always)]
fn be16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(off..off + 2)?.try_into().ok()?))
}

/// The source and destination ports at the start of a transport header ending at `end`, zero
/// when it is cut shorter than that (as [`Ip::ports`](super::ip::Ip::ports) does).
#[inline(always)]
fn ports(d: &[u8], at: usize, end: usize) -> (u16, u16) {
    match d.get(at..at + 4) {
        Some(p) if at + 4 <= end => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        _ => (0, 0),
    }
}

/// The word the mode adds to the addresses, from the sorted ports and the protocol.
#[inline(always)]
fn extra(mode: HashMode, p0: u16, p1: u16, proto: u8) -> u64 {
    let ports = (p0 as u64) << 16 | p1 as u64;
    match mode {
        HashMode::Two => 0,
        HashMode::Four => ports,
        HashMode::Five => ports | (proto as u64) << 32,
    }
}

#[inline(always)]
fn v4(d: &[u8], mode: HashMode) -> Option<u64> {
    let h: &[u8; 20] = d.get(..20)?.try_into().ok()?;
    let ihl = (h[0] & 0x0f) as usize * 4;
    let proto = h[9];
    let fragmented = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
    if h[0] >> 4 != 4 || ihl < 20 || d.len() < ihl || fragmented {
        return None;
    }
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let end = ipv4_end(h, ihl, d.len());
    let (sp, dp) = ports(d, ihl, end);
    let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    // IPv4-mapped addresses share their first 12 bytes: (address, port) order is the order of
    // the 4-byte address, then the port.
    let (a, pa, b, pb) = if (src as u64) << 16 | sp as u64 <= (dst as u64) << 16 | dp as u64 {
        (src, sp, dst, dp)
    } else {
        (dst, dp, src, sp)
    };
    // The words of `::ffff:a.b.c.d` read little-endian: 0, then 0xffff << 16 and the address.
    let word = |a: u32| 0xffff_0000 | (a.swap_bytes() as u64) << 32;
    Some(words5([0, word(a), 0, word(b), extra(mode, pa, pb, proto)]))
}

#[inline(always)]
fn v6(d: &[u8], mode: HashMode) -> Option<u64> {
    let h: &[u8; 40] = d.get(..40)?.try_into().ok()?;
    let proto = h[6];
    if h[0] >> 4 != 6 || (proto != PROTO_TCP && proto != PROTO_UDP) {
        return None;
    }
    let end = match u16::from_be_bytes([h[4], h[5]]) as usize {
        // A jumbogram (or TSO): what was captured.
        0 => d.len(),
        n => d.len().min(40 + n),
    };
    let (sp, dp) = ports(d, 40, end);
    let src: [u8; 16] = h[8..24].try_into().ok()?;
    let dst: [u8; 16] = h[24..40].try_into().ok()?;
    let (s, t) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
    let (a, pa, b, pb) = if s < t || (s == t && sp <= dp) {
        (src, sp, dst, dp)
    } else {
        (dst, dp, src, sp)
    };
    let ([a0, a1], [b0, b1]) = (addr_words(&a), addr_words(&b));
    Some(words5([a0, a1, b0, b1, extra(mode, pa, pb, proto)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::frames::*;
    use crate::ip::{PROTO_ICMP, PROTO_SCTP};
    use crate::link::LINKTYPE_RAW;
    use crate::TunnelMode;

    const MODES: [HashMode; 3] = [HashMode::Two, HashMode::Four, HashMode::Five];

    /// The general path's hash, when the general path would route the packet by it alone (no
    /// fragment to track, nothing else counted).
    fn general(linktype: u32, f: &[u8], mode: HashMode) -> (u64, bool) {
        let d = decode(linktype, f, TunnelMode::Outer);
        let plain = d.fragment.is_none() && !d.non_ip && !d.icmp_error && !d.tunnelled;
        (d.key.hash(mode), plain)
    }

    /// Asserts that wherever the fast path answers, the general path gives the same hash and
    /// treats the packet as a plain one; returns whether the fast path answered.
    fn check(linktype: u32, f: &[u8]) -> bool {
        let mut taken = false;
        for mode in MODES {
            if let Some(h) = hash(linktype, f, mode) {
                let (g, plain) = general(linktype, f, mode);
                assert_eq!(h, g, "{mode:?} {f:02x?}");
                assert!(plain, "fast path taken for a special packet: {f:02x?}");
                taken = true;
            }
        }
        taken
    }

    #[test]
    fn plain_tcp_and_udp_take_the_fast_path_with_the_general_hash() {
        let frames = [
            eth(0x0800, &ipv4(A4, B4, PROTO_TCP, &tcp(40000, 80))),
            eth(0x0800, &ipv4(B4, A4, PROTO_TCP, &tcp(80, 40000))),
            // Same address both ends: the ports decide the order.
            eth(0x0800, &ipv4(A4, A4, PROTO_UDP, &udp(53, 5353, b"q"))),
            eth(0x0800, &ipv4(A4, A4, PROTO_UDP, &udp(5353, 53, b"q"))),
            eth(0x86dd, &ipv6(A6, B6, PROTO_UDP, &udp(5353, 53, b"q"))),
            eth(0x86dd, &ipv6(B6, A6, PROTO_TCP, &tcp(443, 1))),
            eth(0x86dd, &ipv6(A6, A6, PROTO_TCP, &tcp(2, 1))),
            eth_tagged(&[0x8100], 0x0800, &ipv4(C4, D4, PROTO_TCP, &tcp(1, 2))),
            eth_tagged(&[0x88a8], 0x86dd, &ipv6(C6, D6, PROTO_UDP, &udp(1, 2, b""))),
            eth_tagged(&[0x9100], 0x0800, &ipv4(C4, D4, PROTO_UDP, &udp(3, 4, b""))),
        ];
        for f in &frames {
            assert!(check(LINKTYPE_ETHERNET, f), "{f:02x?}");
        }
    }

    #[test]
    fn everything_else_takes_the_general_path() {
        let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
        let frames = [
            eth(0x0800, &ipv4(A4, B4, PROTO_ICMP, &icmp(3, &i4[..28]))),
            eth(0x0800, &ipv4(A4, B4, PROTO_SCTP, &tcp(1, 2))),
            eth(
                0x0800,
                &ipv4_frag(A4, B4, PROTO_UDP, 5, 0, true, &udp(1, 2, &[0; 8])),
            ),
            eth(0x0800, &ipv4_frag(A4, B4, PROTO_UDP, 5, 2, false, &[0; 8])),
            eth(
                0x86dd,
                &ipv6_ext(A6, B6, &[ext(0, 0)], PROTO_UDP, &udp(1, 2, b"")),
            ),
            eth(
                0x86dd,
                &ipv6_ext(A6, B6, &[frag6(1, 0, true)], PROTO_UDP, &udp(1, 2, b"")),
            ),
            eth_tagged(&[0x8100, 0x8100], 0x0800, &i4),
            eth(0x8847, &[mpls(&[0x100]), i4.clone()].concat()),
            eth(0x0806, &arp(1, MAC_A, A4, [0; 6], B4)),
            eth(0x88cc, &[0; 28]),
            // An IPv6 header behind the IPv4 ethertype, and a header length under 20.
            eth(0x0800, &ipv6(A6, B6, PROTO_TCP, &tcp(1, 2))),
            {
                let mut f = eth(0x0800, &i4);
                f[14] = 0x44;
                f
            },
        ];
        for f in &frames {
            assert!(!check(LINKTYPE_ETHERNET, f), "{f:02x?}");
        }
        assert!(!check(LINKTYPE_RAW, &i4));
    }

    /// Truncated, cut at every length and corrupted at random: wherever the fast path answers,
    /// it answers as the general path does (ports cut short, lengths that do not fit, flags).
    #[test]
    fn damaged_headers_agree_with_the_general_path() {
        let samples = [
            eth(0x0800, &ipv4(A4, B4, PROTO_TCP, &tcp(40000, 80))),
            eth(0x86dd, &ipv6(A6, B6, PROTO_UDP, &udp(5353, 53, b"q"))),
            eth_tagged(
                &[0x8100],
                0x0800,
                &ipv4(C4, D4, PROTO_UDP, &udp(1, 2, b"xyz")),
            ),
            eth_tagged(&[0x8100], 0x86dd, &ipv6(C6, D6, PROTO_TCP, &tcp(7, 8))),
        ];
        let mut next = random(0x5eed_f00d);
        let mut taken = 0;
        for s in &samples {
            for cut in 0..=s.len() {
                taken += check(LINKTYPE_ETHERNET, &s[..cut]) as usize;
            }
            for _ in 0..20_000 {
                let mut m = s.clone();
                for _ in 0..1 + next() % 3 {
                    // Mostly the headers, where the decisions are.
                    let i = (next() % m.len().min(62) as u64) as usize;
                    m[i] = match next() % 4 {
                        0 => 0,
                        1 => 0xff,
                        _ => next() as u8,
                    };
                }
                let cut = m.len() - (next() % 8) as usize;
                taken += check(LINKTYPE_ETHERNET, &m[..cut]) as usize;
            }
        }
        assert!(taken > 10_000, "the fast path answered {taken} times");
    }

    /// Generated sensor traffic (HTTP, DNS, fragments, ICMP, IPv6, VLAN): the same hash on
    /// either path, and most packets on the fast one.
    #[test]
    fn generated_traffic_agrees_with_the_general_path() {
        let mut t = shardcap_gen::traffic::Traffic::new(7, 0, 1_700_000_000_000_000_000, 1e8);
        let (mut f, mut taken, n) = (Vec::new(), 0, 200_000);
        for _ in 0..n {
            f.clear();
            t.next_frame(&mut f);
            taken += check(LINKTYPE_ETHERNET, &f) as usize;
        }
        assert!(taken * 10 > n * 9, "{taken} of {n} on the fast path");
        assert!(taken < n, "no packet took the general path");
    }
}
