//! Link layers down to the network layer: Ethernet with VLAN tags and MPLS labels at any depth,
//! PPPoE, PPP, Linux cooked captures (SLL, SLL2), BSD null/loopback and raw IP link types.

use super::wire::{be16, be32, bytes, rest, u8_at};

/// What a link layer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An IPv4 header starts here.
    Ipv4(&'a [u8]),
    /// An IPv6 header starts here.
    Ipv6(&'a [u8]),
    /// An ARP packet (its header starts here).
    Arp(&'a [u8]),
    /// No IP layer: an Ethernet frame known by its (destination, source) MAC pair.
    Mac([u8; 6], [u8; 6]),
    /// Nothing decodable (unknown link type, non-IP without MAC pair, truncated).
    Opaque,
}

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_PPP: u32 = 9;
pub const LINKTYPE_RAW_OLD_12: u32 = 12;
pub const LINKTYPE_RAW_OLD_14: u32 = 14;
pub const LINKTYPE_PPP_HDLC: u32 = 50;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;
pub(crate) const ETHERTYPE_VLAN: u16 = 0x8100;
pub(crate) const ETHERTYPE_QINQ: u16 = 0x88a8;
pub(crate) const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
pub const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// Transparent Ethernet bridging (an Ethernet frame follows; GRE and Geneve protocol type).
pub const ETHERTYPE_TEB: u16 = 0x6558;

pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;
pub const PPP_MPLS: u16 = 0x0281;

/// Decodes the link layer of `linktype` (upper FCS bits of a pcap header are ignored).
pub fn link(linktype: u32, d: &[u8]) -> Payload<'_> {
    match linktype & 0xffff {
        LINKTYPE_ETHERNET => ethernet(d),
        LINKTYPE_NULL | LINKTYPE_LOOP => null(d),
        LINKTYPE_RAW | LINKTYPE_RAW_OLD_12 | LINKTYPE_RAW_OLD_14 => raw(d),
        LINKTYPE_IPV4 => Payload::Ipv4(d),
        LINKTYPE_IPV6 => Payload::Ipv6(d),
        LINKTYPE_LINUX_SLL => cooked(d, 14, 16),
        LINKTYPE_LINUX_SLL2 => cooked(d, 0, 20),
        LINKTYPE_PPP | LINKTYPE_PPP_HDLC => ppp(d),
        _ => Payload::Opaque,
    }
}

/// An Ethernet frame: MAC pair, then the ethertype chain.
pub fn ethernet(d: &[u8]) -> Payload<'_> {
    chain(d, 0, None)
}

/// The ethertype chain of a frame whose ethertype `et` sits just before offset `off` (GRE,
/// Geneve and cooked captures name their payload by ethertype).
pub fn ethertype(d: &[u8], off: usize, et: u16) -> Payload<'_> {
    chain(d, off, Some(et))
}

/// A raw IP packet: the version nibble tells IPv4 from IPv6.
pub fn raw(d: &[u8]) -> Payload<'_> {
    match u8_at(d, 0).map(|b| b >> 4) {
        Some(4) => Payload::Ipv4(d),
        Some(6) => Payload::Ipv6(d),
        _ => Payload::Opaque,
    }
}

/// A PPP frame, with or without HDLC address/control bytes and protocol-field compression.
pub fn ppp(d: &[u8]) -> Payload<'_> {
    match ppp_protocol(d) {
        Some((proto, off)) => ppp_payload(d, off, proto),
        None => Payload::Opaque,
    }
}

/// A PPP frame's protocol number and the offset of its payload.
pub fn ppp_protocol(d: &[u8]) -> Option<(u16, usize)> {
    let off = if d.starts_with(&[0xff, 0x03]) { 2 } else { 0 };
    let first = u8_at(d, off)?;
    if first & 1 == 1 {
        Some((first as u16, off + 1))
    } else {
        Some((be16(d, off)?, off + 2))
    }
}

fn ppp_payload(d: &[u8], off: usize, proto: u16) -> Payload<'_> {
    let Some(body) = rest(d, off) else {
        return Payload::Opaque;
    };
    match proto {
        PPP_IPV4 => Payload::Ipv4(body),
        PPP_IPV6 => Payload::Ipv6(body),
        PPP_MPLS => ethertype(d, off, ETHERTYPE_MPLS),
        _ => Payload::Opaque,
    }
}

/// BSD null/loopback: a 4-byte address family in either byte order.
fn null(d: &[u8]) -> Payload<'_> {
    let (Some(fam), Some(body)) = (bytes::<4>(d, 0), rest(d, 4)) else {
        return Payload::Opaque;
    };
    let le = u32::from_le_bytes(fam);
    let family = if le > 0xffff { le.swap_bytes() } else { le };
    match family {
        2 => Payload::Ipv4(body),
        24 | 28 | 30 => Payload::Ipv6(body),
        _ => Payload::Opaque,
    }
}

/// Linux cooked capture: protocol (an ethertype) at `proto_at`, payload at `len`.
fn cooked(d: &[u8], proto_at: usize, len: usize) -> Payload<'_> {
    match be16(d, proto_at) {
        Some(et) if d.len() >= len => ethertype(d, len, et),
        _ => Payload::Opaque,
    }
}

/// Walks VLAN tags, MPLS labels (with an Ethernet pseudowire inside) and PPPoE to the IP
/// header. `et` is the ethertype of what starts at `off`; `None` means an Ethernet header does.
fn chain(d: &[u8], mut off: usize, et: Option<u16>) -> Payload<'_> {
    // Offset of the innermost Ethernet header, whose MAC pair keys a non-IP frame.
    let mut mac = None;
    let mut et = match et {
        Some(et) => et,
        None => match be16(d, off + 12) {
            Some(et) => {
                mac = Some(off);
                off += 14;
                et
            }
            None => return Payload::Opaque,
        },
    };
    let non_ip = |mac: Option<usize>| match mac.and_then(|m| Some((bytes(d, m)?, bytes(d, m + 6)?)))
    {
        Some((a, b)) => Payload::Mac(a, b),
        None => Payload::Opaque,
    };
    loop {
        match et {
            ETHERTYPE_IPV4 => return rest(d, off).map_or(Payload::Opaque, Payload::Ipv4),
            ETHERTYPE_IPV6 => return rest(d, off).map_or(Payload::Opaque, Payload::Ipv6),
            ETHERTYPE_ARP => return rest(d, off).map_or(non_ip(mac), Payload::Arp),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => match be16(d, off + 2) {
                Some(next) => {
                    et = next;
                    off += 4;
                }
                None => return non_ip(mac),
            },
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                let Some(bottom) = mpls_bottom(d, off) else {
                    return non_ip(mac);
                };
                off = bottom;
                match u8_at(d, off).map(|b| b >> 4) {
                    Some(4) => return Payload::Ipv4(&d[off..]),
                    Some(6) => return Payload::Ipv6(&d[off..]),
                    // Pseudowire control word, then an Ethernet frame.
                    Some(0) => match be16(d, off + 4 + 12) {
                        Some(next) => {
                            mac = Some(off + 4);
                            et = next;
                            off += 4 + 14;
                        }
                        None => return non_ip(mac),
                    },
                    _ => return non_ip(mac),
                }
            }
            ETHERTYPE_PPPOE_SESSION => {
                return match be16(d, off + 6).map(|proto| ppp_payload(d, off + 8, proto)) {
                    Some(Payload::Opaque) | None => non_ip(mac),
                    Some(p) => p,
                };
            }
            ETHERTYPE_TEB => match be16(d, off + 12) {
                Some(next) => {
                    mac = Some(off);
                    et = next;
                    off += 14;
                }
                None => return non_ip(mac),
            },
            _ => return non_ip(mac),
        }
    }
}

/// The offset after the label with the bottom-of-stack bit, starting at `off`.
fn mpls_bottom(d: &[u8], mut off: usize) -> Option<usize> {
    loop {
        let label = be32(d, off)?;
        off += 4;
        if label & 0x100 != 0 {
            return Some(off);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::*;

    fn ip_of(p: Payload<'_>) -> Option<&[u8]> {
        match p {
            Payload::Ipv4(d) | Payload::Ipv6(d) => Some(d),
            _ => None,
        }
    }

    #[test]
    fn ethernet_with_three_vlan_tags() {
        let ip = ipv4(A4, B4, 17, &udp(1, 2, b"x"));
        let f = eth_tagged(&[0x88a8, 0x8100, 0x8100], ETHERTYPE_IPV4, &ip);
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Ipv4(&ip));
        let f = eth_tagged(&[0x9100], ETHERTYPE_IPV6, &ip);
        assert_eq!(ip_of(link(LINKTYPE_ETHERNET, &f)), Some(&ip[..]));
    }

    #[test]
    fn mpls_stack_guesses_ip_version_and_opens_pseudowire() {
        let ip4 = ipv4(A4, B4, 6, &tcp(1, 2));
        let ip6 = ipv6(A6, B6, 17, &udp(1, 2, b""));
        let labels = [0x0001_0000u32, 0x0002_0100];
        let f = eth(0x8847, &[mpls(&labels), ip4.clone()].concat());
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Ipv4(&ip4));
        let f = eth(0x8848, &[mpls(&labels), ip6.clone()].concat());
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Ipv6(&ip6));
        // Pseudowire: control word, then an Ethernet frame with a VLAN tag.
        let inner = eth_tagged(&[0x8100], ETHERTYPE_IPV4, &ip4);
        let f = eth(0x8847, &[mpls(&labels), vec![0; 4], inner].concat());
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Ipv4(&ip4));
        // MPLS inside a VLAN tag.
        let f = eth_tagged(&[0x8100], 0x8847, &[mpls(&labels), ip4.clone()].concat());
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Ipv4(&ip4));
    }

    #[test]
    fn pppoe_session_carries_ipv4_and_ipv6() {
        let ip4 = ipv4(A4, B4, 6, &tcp(1, 2));
        let ip6 = ipv6(A6, B6, 6, &tcp(1, 2));
        let f = eth_tagged(&[0x8100, 0x8100], 0x8864, &pppoe(0x0021, &ip4));
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Ipv4(&ip4));
        let f = eth(0x8864, &pppoe(0x0057, &ip6));
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Ipv6(&ip6));
        let f = eth(0x8864, &pppoe(0xc021, &ip6));
        assert!(matches!(link(LINKTYPE_ETHERNET, &f), Payload::Mac(..)));
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = ipv4(A4, B4, 6, &tcp(1, 2));
        assert_eq!(
            link(LINKTYPE_LINUX_SLL, &sll(0x0800, &ip)),
            Payload::Ipv4(&ip)
        );
        assert_eq!(
            link(LINKTYPE_LINUX_SLL2, &sll2(0x0800, &ip)),
            Payload::Ipv4(&ip)
        );
        let ip6 = ipv6(A6, B6, 6, &tcp(1, 2));
        assert_eq!(
            link(LINKTYPE_LINUX_SLL2, &sll2(0x86dd, &ip6)),
            Payload::Ipv6(&ip6)
        );
        assert_eq!(
            link(LINKTYPE_LINUX_SLL, &sll(0x0806, &ip)),
            Payload::Arp(&ip)
        );
        assert_eq!(link(LINKTYPE_LINUX_SLL, &sll(0x88cc, &ip)), Payload::Opaque);
    }

    #[test]
    fn null_and_loop_in_both_byte_orders() {
        let ip4 = ipv4(A4, B4, 6, &tcp(1, 2));
        let ip6 = ipv6(A6, B6, 6, &tcp(1, 2));
        for lt in [LINKTYPE_NULL, LINKTYPE_LOOP] {
            for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
                let f = [&fam[..], &ip4].concat();
                assert_eq!(link(lt, &f), Payload::Ipv4(&ip4));
            }
            for v in [24u32, 28, 30] {
                for fam in [v.to_le_bytes(), v.to_be_bytes()] {
                    let f = [&fam[..], &ip6].concat();
                    assert_eq!(link(lt, &f), Payload::Ipv6(&ip6));
                }
            }
            assert_eq!(link(lt, &[7, 0, 0, 0, 0x45]), Payload::Opaque);
        }
    }

    #[test]
    fn raw_ip_link_types_and_fcs_bits() {
        let ip4 = ipv4(A4, B4, 6, &tcp(1, 2));
        let ip6 = ipv6(A6, B6, 6, &tcp(1, 2));
        for lt in [LINKTYPE_RAW, LINKTYPE_RAW_OLD_12, LINKTYPE_RAW_OLD_14] {
            assert_eq!(link(lt, &ip4), Payload::Ipv4(&ip4));
            assert_eq!(link(lt, &ip6), Payload::Ipv6(&ip6));
        }
        assert_eq!(link(LINKTYPE_IPV4, &ip4), Payload::Ipv4(&ip4));
        assert_eq!(link(LINKTYPE_IPV6, &ip6), Payload::Ipv6(&ip6));
        let f = eth(0x0800, &ip4);
        assert_eq!(
            link(0x1000_0000 | LINKTYPE_ETHERNET, &f),
            Payload::Ipv4(&ip4)
        );
    }

    #[test]
    fn ppp_with_and_without_hdlc_header() {
        let ip4 = ipv4(A4, B4, 6, &tcp(1, 2));
        for head in [&[0xff, 0x03, 0x00, 0x21][..], &[0x00, 0x21], &[0x21]] {
            let f = [head, &ip4].concat();
            assert_eq!(link(LINKTYPE_PPP, &f), Payload::Ipv4(&ip4), "{head:?}");
            assert_eq!(link(LINKTYPE_PPP_HDLC, &f), Payload::Ipv4(&ip4));
        }
    }

    #[test]
    fn non_ip_ethernet_is_known_by_mac_pair() {
        let f = eth(0x88cc, &[0; 28]);
        assert_eq!(link(LINKTYPE_ETHERNET, &f), Payload::Mac(MAC_B, MAC_A));
        let arp = eth(0x0806, &[0; 28]);
        assert_eq!(link(LINKTYPE_ETHERNET, &arp), Payload::Arp(&[0; 28]));
        assert_eq!(link(LINKTYPE_ETHERNET, &f[..10]), Payload::Opaque);
        assert_eq!(link(147, &f), Payload::Opaque);
    }
}
