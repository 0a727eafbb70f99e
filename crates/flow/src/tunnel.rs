//! Tunnels opened with `--tunnel inner`: IP-in-IP (4in4, 6in4, 4in6, 6in6), GRE (with ERSPAN
//! I/II/III, transparent Ethernet bridging, PPTP's enhanced GRE), VXLAN, Geneve, GTP-U, Teredo.

use super::ip::{Ip, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_UDP};
use super::link::{self, Payload};
use super::wire::{be16, rest, u8_at};

pub const PORT_VXLAN: u16 = 4789;
pub const PORT_GENEVE: u16 = 6081;
pub const PORT_GTP_U: u16 = 2152;
pub const PORT_TEREDO: u16 = 3544;

const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_ACK: u16 = 0x0080;
const GRE_PPP: u16 = 0x880b;
const GRE_ERSPAN_1_2: u16 = 0x88be;
const GRE_ERSPAN_3: u16 = 0x22eb;

/// What the tunnel packet `ip` carries; `None` when it is no tunnel this module opens.
pub fn inner<'a>(ip: &Ip<'a>) -> Option<Payload<'a>> {
    if ip.is_later_fragment() {
        return None;
    }
    match ip.proto {
        PROTO_IPIP => Some(Payload::Ipv4(ip.payload)),
        PROTO_IPV6 => Some(Payload::Ipv6(ip.payload)),
        PROTO_GRE => gre(ip.payload),
        PROTO_UDP => udp(ip.payload),
        _ => None,
    }
}

/// GRE version 0 (RFC 2784/2890) and version 1 (PPTP, RFC 2637). Source routing is not opened.
fn gre(d: &[u8]) -> Option<Payload<'_>> {
    let flags = be16(d, 0)?;
    let proto = be16(d, 2)?;
    let has = |bit: u16| (flags & bit != 0) as usize;
    let off = match flags & 7 {
        0 if has(GRE_ROUTING) == 0 => {
            4 + 4 * (has(GRE_CHECKSUM) + has(GRE_KEY) + has(GRE_SEQUENCE))
        }
        1 if proto == GRE_PPP => 8 + 4 * (has(GRE_SEQUENCE) + has(GRE_ACK)),
        _ => return None,
    };
    let body = rest(d, off)?;
    Some(match proto {
        GRE_PPP => link::ppp(body),
        // ERSPAN type II has a sequence number and an 8-byte header; type I has neither.
        GRE_ERSPAN_1_2 if has(GRE_SEQUENCE) == 1 => link::ethernet(rest(body, 8)?),
        GRE_ERSPAN_1_2 => link::ethernet(body),
        // ERSPAN type III: 12 bytes, and 8 more when the O bit announces a platform subheader.
        GRE_ERSPAN_3 => {
            let sub = (u8_at(body, 11)? & 1) as usize * 8;
            link::ethernet(rest(body, 12 + sub)?)
        }
        et => link::ethertype(d, off, et),
    })
}

/// UDP tunnels, recognised by port (the destination port first) and a plausible header.
fn udp(d: &[u8]) -> Option<Payload<'_>> {
    let (src, dst) = (be16(d, 0)?, be16(d, 2)?);
    let body = rest(d, 8)?;
    let port = if opener(dst).is_some() { dst } else { src };
    opener(port)?(body)
}

type Opener = for<'a> fn(&'a [u8]) -> Option<Payload<'a>>;

/// The decoder of the UDP tunnel on `port`.
fn opener(port: u16) -> Option<Opener> {
    match port {
        PORT_VXLAN => Some(vxlan),
        PORT_GENEVE => Some(geneve),
        PORT_GTP_U => Some(gtp_u),
        PORT_TEREDO => Some(teredo),
        _ => None,
    }
}

/// VXLAN (RFC 7348): 8-byte header with the I flag, then Ethernet.
fn vxlan(d: &[u8]) -> Option<Payload<'_>> {
    if u8_at(d, 0)? & 0x08 == 0 {
        return None;
    }
    Some(link::ethernet(rest(d, 8)?))
}

/// Geneve (RFC 8926): version 0, options, then what the protocol type names.
fn geneve(d: &[u8]) -> Option<Payload<'_>> {
    let b0 = u8_at(d, 0)?;
    if b0 >> 6 != 0 {
        return None;
    }
    let off = 8 + (b0 & 0x3f) as usize * 4;
    let et = be16(d, 2)?;
    rest(d, off)?;
    Some(link::ethertype(d, off, et))
}

/// GTP-U (3GPP TS 29.281) G-PDU: version 1 header, optional fields and extension headers, IP.
fn gtp_u(d: &[u8]) -> Option<Payload<'_>> {
    let flags = u8_at(d, 0)?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || u8_at(d, 1)? != 0xff {
        return None;
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        off = 12;
        if flags & 0x04 != 0 {
            let mut next = u8_at(d, 11)?;
            while next != 0 {
                let len = u8_at(d, off)? as usize * 4;
                if len == 0 {
                    return None;
                }
                off += len;
                next = u8_at(d, off - 1)?;
            }
        }
    }
    Some(link::raw(rest(d, off)?))
}

/// Teredo (RFC 4380): optional authentication and origin indications, then IPv6.
fn teredo(d: &[u8]) -> Option<Payload<'_>> {
    let mut off = 0;
    if be16(d, 0)? == 1 {
        off = 13 + u8_at(d, 2)? as usize + u8_at(d, 3)? as usize;
    }
    if be16(d, off)? == 0 {
        off += 8;
    }
    let body = rest(d, off)?;
    (u8_at(body, 0)? >> 4 == 6 && body.len() >= 40).then_some(Payload::Ipv6(body))
}

#[cfg(test)]
mod tests {
    use super::{inner, PORT_GENEVE, PORT_GTP_U, PORT_TEREDO, PORT_VXLAN};
    use crate::frames::*;
    use crate::ip::{ipv4 as parse4, Ip, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_TCP, PROTO_UDP};
    use crate::link::{self, Payload};

    fn open(outer: &[u8]) -> Option<Payload<'_>> {
        inner(&Ip::of(link::raw(outer))?)
    }

    #[test]
    fn ip_in_ip_all_four_ways() {
        let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
        let i6 = ipv6(C6, D6, PROTO_TCP, &tcp(1, 2));
        assert_eq!(
            open(&ipv4(A4, B4, PROTO_IPIP, &i4)),
            Some(Payload::Ipv4(&i4))
        );
        assert_eq!(
            open(&ipv4(A4, B4, PROTO_IPV6, &i6)),
            Some(Payload::Ipv6(&i6))
        );
        assert_eq!(
            open(&ipv6(A6, B6, PROTO_IPIP, &i4)),
            Some(Payload::Ipv4(&i4))
        );
        assert_eq!(
            open(&ipv6(A6, B6, PROTO_IPV6, &i6)),
            Some(Payload::Ipv6(&i6))
        );
    }

    #[test]
    fn gre_variants() {
        let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
        let framed = eth(0x0800, &i4);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (gre(0, 0x0800, &[], &i4), "plain"),
            (
                gre(0xb000, 0x0800, &[0; 12], &i4),
                "checksum, key, sequence",
            ),
            (
                gre(0, 0x6558, &[], &framed),
                "transparent ethernet bridging",
            ),
            (gre(0, 0x88be, &[], &framed), "erspan I"),
            (
                gre(0x1000, 0x88be, &[0; 4], &[&[0x10; 8][..], &framed].concat()),
                "erspan II",
            ),
            (
                gre(0, 0x22eb, &[], &[&[0x20; 11][..], &[0], &framed].concat()),
                "erspan III",
            ),
            (
                gre(
                    0,
                    0x22eb,
                    &[],
                    &[&[0x20; 11][..], &[1], &[0; 8], &framed].concat(),
                ),
                "erspan III with subheader",
            ),
            (
                gre(
                    0x3081,
                    0x880b,
                    &[0; 12],
                    &[&[0xff, 0x03, 0x00, 0x21][..], &i4].concat(),
                ),
                "pptp",
            ),
        ];
        for (g, what) in cases {
            let outer = ipv4(A4, B4, PROTO_GRE, &g);
            assert_eq!(open(&outer), Some(Payload::Ipv4(&i4)), "{what}");
        }
        let routed = ipv4(A4, B4, PROTO_GRE, &gre(0x4000, 0x0800, &[0; 4], &i4));
        assert_eq!(open(&routed), None);
    }

    #[test]
    fn udp_tunnels() {
        let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
        let i6 = ipv6(C6, D6, PROTO_TCP, &tcp(1, 2));
        let framed = eth(0x0800, &i4);
        let vx = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &framed].concat();
        let gen = [&[0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2, 3, 4][..], &framed].concat();
        let gtp = [&[0x32, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0][..], &i4].concat();
        let gtp_ext = [
            &[0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 0, 0][..],
            &i6,
        ]
        .concat();
        let ter = [&[0, 0, 1, 2, 3, 4, 5, 6][..], &i6].concat();
        let cases: Vec<(u16, Vec<u8>, Payload<'_>)> = vec![
            (PORT_VXLAN, vx, Payload::Ipv4(&i4)),
            (PORT_GENEVE, gen, Payload::Ipv4(&i4)),
            (PORT_GTP_U, gtp, Payload::Ipv4(&i4)),
            (PORT_GTP_U, gtp_ext, Payload::Ipv6(&i6)),
            (PORT_TEREDO, ter, Payload::Ipv6(&i6)),
            (PORT_TEREDO, i6.clone(), Payload::Ipv6(&i6)),
        ];
        for (port, body, want) in cases {
            let outer = ipv4(A4, B4, PROTO_UDP, &udp(50000, port, &body));
            assert_eq!(open(&outer), Some(want), "port {port}");
            let reply = ipv4(B4, A4, PROTO_UDP, &udp(port, 50000, &body));
            assert_eq!(open(&reply), Some(want), "port {port} reversed");
        }
        let not_vxlan = ipv4(A4, B4, PROTO_UDP, &udp(1, PORT_VXLAN, &[0; 30]));
        assert_eq!(open(&not_vxlan), None);
        let other = ipv4(A4, B4, PROTO_UDP, &udp(1, 53, &[0; 30]));
        assert_eq!(open(&other), None);
    }

    #[test]
    fn later_fragment_is_not_opened() {
        let f = ipv4_frag(
            A4,
            B4,
            PROTO_IPIP,
            1,
            10,
            false,
            &ipv4(C4, D4, 6, &tcp(1, 2)),
        );
        assert!(parse4(&f).is_some());
        assert_eq!(open(&f), None);
    }
}
