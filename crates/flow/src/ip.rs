//! IPv4 and IPv6 headers (IPv6 extension headers included), transport ports, and the header an
//! ICMP or ICMPv6 error quotes.

use super::link::Payload;
use super::wire::{be16, be32, bytes, rest, u8_at};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_DCCP: u8 = 33;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_UDPLITE: u8 = 136;

const EXT_HOPOPTS: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AH: u8 = 51;
const EXT_DSTOPTS: u8 = 60;
const EXT_MOBILITY: u8 = 135;
const EXT_HIP: u8 = 139;
const EXT_SHIM6: u8 = 140;

/// Destination option carrying a mobile node's home address.
const OPT_HOME_ADDRESS: u8 = 0xc9;

/// A decoded IP header. Addresses are 16 bytes; IPv4 ones are IPv4-mapped (`::ffff:a.b.c.d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip<'a> {
    /// Source address (a mobile node's home address where a destination option names it).
    pub src: [u8; 16],
    /// Destination address (the final one where a routing header has segments left).
    pub dst: [u8; 16],
    /// The upper-layer protocol (IPv6: after the extension headers; ESP and no-next stop there).
    pub proto: u8,
    /// What follows the headers, cut to the length the header announces.
    pub payload: &'a [u8],
    /// Set when this is a fragment of a larger datagram.
    pub frag: Option<Frag>,
}

/// Where a fragment sits in its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frag {
    /// The datagram's identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// Offset 0: this fragment carries the transport header.
    pub first: bool,
    /// The protocol the fragment names (IPv6: the fragment header's next header), the same in
    /// every fragment of the datagram.
    pub proto: u8,
}

impl<'a> Ip<'a> {
    /// Decodes the IP header a link layer points at.
    pub fn of(p: Payload<'a>) -> Option<Self> {
        match p {
            Payload::Ipv4(d) => ipv4(d),
            Payload::Ipv6(d) => ipv6(d),
            Payload::Arp(..) | Payload::Mac(..) | Payload::Opaque => None,
        }
    }

    /// True for a fragment other than the first: its payload is datagram data, not headers.
    #[inline(always)]
    pub fn is_later_fragment(&self) -> bool {
        matches!(self.frag, Some(Frag { first: false, .. }))
    }

    /// Source and destination ports of TCP, UDP, SCTP, UDP-Lite and DCCP; zero otherwise.
    pub fn ports(&self) -> (u16, u16) {
        if self.is_later_fragment() {
            return (0, 0);
        }
        match self.proto {
            PROTO_TCP | PROTO_UDP | PROTO_SCTP | PROTO_UDPLITE | PROTO_DCCP => {
                match bytes::<4>(self.payload, 0) {
                    Some([s0, s1, d0, d1]) => {
                        (u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]))
                    }
                    None => (0, 0),
                }
            }
            _ => (0, 0),
        }
    }

    /// The header an ICMP error (types 3, 4, 5, 11, 12) or ICMPv6 error (types 1-4) quotes.
    pub fn quoted(&self) -> Option<Ip<'a>> {
        if !matches!(self.proto, PROTO_ICMP | PROTO_ICMPV6) || self.is_later_fragment() {
            return None;
        }
        let kind = u8_at(self.payload, 0)?;
        let inner = rest(self.payload, 8)?;
        match self.proto {
            PROTO_ICMP if matches!(kind, 3 | 4 | 5 | 11 | 12) => ipv4(inner),
            PROTO_ICMPV6 if (1..=4).contains(&kind) => ipv6(inner),
            _ => None,
        }
    }
}

/// An IPv4 address as IPv4-mapped IPv6.
pub(super) fn mapped(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

/// Where an IPv4 datagram with header length `ihl` ends among `captured` bytes: at its total
/// length when that is plausible (padding after it is not payload), else at what was captured.
#[inline(always)]
pub fn ipv4_end(h: &[u8], ihl: usize, captured: usize) -> usize {
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if (ihl..=captured).contains(&total) {
        total
    } else {
        captured
    }
}

/// Decodes an IPv4 header. A total length that does not fit (TSO/GSO packets carry 0; a quoted
/// header is cut short) leaves the payload at what was captured.
pub fn ipv4(d: &[u8]) -> Option<Ip<'_>> {
    let h = d.get(..20)?;
    let ihl = (h[0] & 0x0f) as usize * 4;
    if h[0] >> 4 != 4 || ihl < 20 || d.len() < ihl {
        return None;
    }
    let end = ipv4_end(h, ihl, d.len());
    let flags = u16::from_be_bytes([h[6], h[7]]);
    let offset = flags & 0x1fff;
    let proto = h[9];
    let frag = (flags & 0x2000 != 0 || offset != 0).then_some(Frag {
        id: u16::from_be_bytes([h[4], h[5]]) as u32,
        first: offset == 0,
        proto,
    });
    Some(Ip {
        src: mapped([h[12], h[13], h[14], h[15]]),
        dst: mapped([h[16], h[17], h[18], h[19]]),
        proto,
        payload: &d[ihl..end],
        frag,
    })
}

/// Decodes an IPv6 header and walks its extension headers (hop-by-hop, routing, destination
/// options, fragment, AH, mobility, HIP, shim6). A truncated chain stops at the header it cuts.
pub fn ipv6(d: &[u8]) -> Option<Ip<'_>> {
    let h = d.get(..40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let announced = u16::from_be_bytes([h[4], h[5]]) as usize;
    let mut ip = Ip {
        src: bytes(h, 8)?,
        dst: bytes(h, 24)?,
        proto: h[6],
        payload: &[],
        frag: None,
    };
    // Payload length 0 is a jumbogram (or TSO): take what was captured.
    let d = match announced {
        0 => d,
        n => &d[..d.len().min(40 + n)],
    };
    let mut off = 40;
    loop {
        let len = match ip.proto {
            EXT_HOPOPTS | EXT_ROUTING | EXT_DSTOPTS | EXT_MOBILITY | EXT_HIP | EXT_SHIM6 => {
                u8_at(d, off + 1).map(|l| (l as usize + 1) * 8)
            }
            EXT_FRAGMENT => Some(8),
            EXT_AH => u8_at(d, off + 1).map(|l| (l as usize + 2) * 4),
            _ => break,
        };
        let Some(h) = len.and_then(|len| d.get(off..off + len)) else {
            break;
        };
        let mut later = false;
        // Headers after a fragment header sit in the first fragment only: they must not change
        // the addresses that name the datagram.
        let unfragmented = ip.frag.is_none();
        match ip.proto {
            EXT_ROUTING if unfragmented => ip.dst = final_destination(h).unwrap_or(ip.dst),
            EXT_DSTOPTS if unfragmented => ip.src = home_address(h).unwrap_or(ip.src),
            EXT_FRAGMENT => {
                let field = be16(h, 2)?;
                let offset = field >> 3;
                if offset != 0 || field & 1 != 0 {
                    later = offset != 0;
                    // Nested fragment headers: the outermost one names the datagram.
                    ip.frag = ip.frag.or(Some(Frag {
                        id: be32(h, 4)?,
                        first: !later,
                        proto: h[0],
                    }));
                }
            }
            _ => {}
        }
        ip.proto = h[0];
        off += h.len();
        if later {
            break;
        }
    }
    ip.payload = d.get(off..).unwrap_or_default();
    Some(ip)
}

/// The last address of a routing header with segments left: type 0 (the address list), type 2
/// (mobile IPv6 home address) and type 4 (segment routing, whose list starts with the last).
fn final_destination(h: &[u8]) -> Option<[u8; 16]> {
    if u8_at(h, 3)? == 0 {
        return None;
    }
    match u8_at(h, 2)? {
        0 => {
            let n = u8_at(h, 1)? as usize / 2;
            bytes(h, 8 + 16 * n.checked_sub(1)?)
        }
        2 | 4 => bytes(h, 8),
        _ => None,
    }
}

/// The home address option of a destination options header.
fn home_address(h: &[u8]) -> Option<[u8; 16]> {
    let mut off = 2;
    while let Some(kind) = u8_at(h, off) {
        if kind == 0 {
            off += 1;
            continue;
        }
        let len = u8_at(h, off + 1)? as usize;
        if kind == OPT_HOME_ADDRESS && len == 16 {
            return bytes(h, off + 2);
        }
        off += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{
        mapped, Frag, EXT_DSTOPTS, EXT_HOPOPTS, EXT_MOBILITY, EXT_ROUTING, OPT_HOME_ADDRESS,
        PROTO_DCCP, PROTO_GRE, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
        PROTO_UDPLITE,
    };
    use crate::frames::*;

    #[test]
    fn ipv4_header_ports_and_padding() {
        let mut p = ipv4(A4, B4, PROTO_TCP, &tcp(1234, 80));
        let len = p.len();
        p.extend_from_slice(&[0; 6]); // Ethernet padding
        let ip = super::ipv4(&p).unwrap();
        assert_eq!(ip.src, mapped(A4));
        assert_eq!(ip.dst, mapped(B4));
        assert_eq!(ip.proto, PROTO_TCP);
        assert_eq!(ip.payload.len(), len - 20);
        assert_eq!(ip.ports(), (1234, 80));
        assert_eq!(ip.frag, None);
        for proto in [PROTO_UDP, PROTO_SCTP, PROTO_UDPLITE, PROTO_DCCP] {
            let p = ipv4(A4, B4, proto, &udp(7, 9, b""));
            assert_eq!(super::ipv4(&p).unwrap().ports(), (7, 9));
        }
        let p = ipv4(A4, B4, PROTO_GRE, &udp(7, 9, b""));
        assert_eq!(super::ipv4(&p).unwrap().ports(), (0, 0));
    }

    #[test]
    fn ipv4_fragments_first_and_later() {
        let first = ipv4_frag(A4, B4, PROTO_UDP, 77, 0, true, &udp(53, 1000, &[0; 16]));
        let ip = super::ipv4(&first).unwrap();
        assert_eq!(
            ip.frag,
            Some(Frag {
                id: 77,
                first: true,
                proto: PROTO_UDP
            })
        );
        assert_eq!(ip.ports(), (53, 1000));
        let later = ipv4_frag(A4, B4, PROTO_UDP, 77, 3, false, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let ip = super::ipv4(&later).unwrap();
        assert_eq!(
            ip.frag,
            Some(Frag {
                id: 77,
                first: false,
                proto: PROTO_UDP
            })
        );
        assert_eq!(ip.ports(), (0, 0));
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let l4 = udp(5353, 53, b"q");
        let exts = [
            ext(EXT_HOPOPTS, 0),
            ext(EXT_DSTOPTS, 1),
            ext(EXT_ROUTING, 0),
            ah(),
            ext(EXT_MOBILITY, 0),
        ];
        let p = ipv6_ext(A6, B6, &exts, PROTO_UDP, &l4);
        let ip = super::ipv6(&p).unwrap();
        assert_eq!(ip.proto, PROTO_UDP);
        assert_eq!(ip.ports(), (5353, 53));
        assert_eq!(ip.payload, &l4[..]);
        assert_eq!(ip.frag, None);
    }

    #[test]
    fn ipv6_stops_at_esp_and_no_next_header() {
        let p = ipv6_ext(A6, B6, &[ext(EXT_HOPOPTS, 0)], 50, &[0; 16]);
        let ip = super::ipv6(&p).unwrap();
        assert_eq!((ip.proto, ip.ports()), (50, (0, 0)));
        let p = ipv6(A6, B6, 59, &[]);
        assert_eq!(super::ipv6(&p).unwrap().proto, 59);
    }

    #[test]
    fn ipv6_fragment_header() {
        let l4 = udp(1, 2, &[0; 8]);
        let p = ipv6_ext(
            A6,
            B6,
            &[ext(EXT_HOPOPTS, 0), frag6(9, 0, true)],
            PROTO_UDP,
            &l4,
        );
        let ip = super::ipv6(&p).unwrap();
        assert_eq!(
            ip.frag,
            Some(Frag {
                id: 9,
                first: true,
                proto: PROTO_UDP
            })
        );
        assert_eq!(ip.ports(), (1, 2));
        // A later fragment: what follows is data even if it looks like a header.
        let p = ipv6_ext(A6, B6, &[frag6(9, 2, false)], EXT_HOPOPTS, &l4);
        let ip = super::ipv6(&p).unwrap();
        assert_eq!(
            ip.frag,
            Some(Frag {
                id: 9,
                first: false,
                proto: EXT_HOPOPTS
            })
        );
        assert_eq!(ip.proto, EXT_HOPOPTS);
        assert_eq!(ip.payload, &l4[..]);
        // Offset 0 without more fragments (an atomic fragment) is a whole datagram.
        let p = ipv6_ext(A6, B6, &[frag6(9, 0, false)], PROTO_UDP, &l4);
        let ip = super::ipv6(&p).unwrap();
        assert_eq!((ip.frag, ip.ports()), (None, (1, 2)));
    }

    #[test]
    fn ipv6_routing_header_names_the_final_destination() {
        let c6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc];
        let mut rh = vec![0, 4, 0, 2, 0, 0, 0, 0];
        rh.extend_from_slice(&B6);
        rh.extend_from_slice(&c6);
        let p = ipv6_ext(
            A6,
            B6,
            &[(EXT_ROUTING, rh.clone())],
            PROTO_UDP,
            &udp(1, 2, b""),
        );
        assert_eq!(super::ipv6(&p).unwrap().dst, c6);
        rh[3] = 0; // no segments left: the destination is already final
        let p = ipv6_ext(A6, B6, &[(EXT_ROUTING, rh)], PROTO_UDP, &udp(1, 2, b""));
        assert_eq!(super::ipv6(&p).unwrap().dst, B6);
        // A home address option names the mobile node.
        let mut dopt = vec![0, 2, 1, 2, 0, 0, OPT_HOME_ADDRESS, 16];
        dopt.extend_from_slice(&c6);
        let p = ipv6_ext(A6, B6, &[(EXT_DSTOPTS, dopt)], PROTO_UDP, &udp(1, 2, b""));
        assert_eq!(super::ipv6(&p).unwrap().src, c6);
    }

    #[test]
    fn truncated_extension_chain_stops_without_ports() {
        let p = ipv6_ext(A6, B6, &[ext(EXT_HOPOPTS, 2)], PROTO_UDP, &udp(1, 2, b""));
        let ip = super::ipv6(&p[..50]).unwrap();
        assert_eq!((ip.proto, ip.ports()), (EXT_HOPOPTS, (0, 0)));
        assert_eq!(super::ipv6(&p[..39]), None);
    }

    #[test]
    fn icmp_errors_quote_udp_and_tcp() {
        let orig = ipv4(A4, B4, PROTO_UDP, &udp(4000, 53, b"query"));
        let err = ipv4(C4, A4, PROTO_ICMP, &icmp(3, &orig[..28]));
        let q = super::ipv4(&err).unwrap().quoted().unwrap();
        assert_eq!((q.src, q.dst, q.proto), (mapped(A4), mapped(B4), PROTO_UDP));
        assert_eq!(q.ports(), (4000, 53));
        let orig = ipv4(A4, B4, PROTO_TCP, &tcp(4000, 80));
        let err = ipv4(C4, A4, PROTO_ICMP, &icmp(11, &orig[..28]));
        assert_eq!(
            super::ipv4(&err).unwrap().quoted().unwrap().ports(),
            (4000, 80)
        );
        // Echo request/reply quote nothing.
        let echo = ipv4(A4, B4, PROTO_ICMP, &icmp(8, &orig[..28]));
        assert_eq!(super::ipv4(&echo).unwrap().quoted(), None);
    }

    #[test]
    fn icmpv6_error_quotes_ipv6_with_extension_headers() {
        let orig = ipv6_ext(
            A6,
            B6,
            &[ext(EXT_HOPOPTS, 0)],
            PROTO_UDP,
            &udp(4000, 53, b"q"),
        );
        let err = ipv6(C6, A6, PROTO_ICMPV6, &icmp(1, &orig));
        let q = super::ipv6(&err).unwrap().quoted().unwrap();
        assert_eq!(
            (q.src, q.dst, q.proto, q.ports()),
            (A6, B6, PROTO_UDP, (4000, 53))
        );
        let ns = ipv6(C6, A6, PROTO_ICMPV6, &icmp(135, &orig));
        assert_eq!(super::ipv6(&ns).unwrap().quoted(), None);
    }
}
