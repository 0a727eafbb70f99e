//! From packet bytes to a flow key: link layer, IP, tunnels (with `--tunnel inner`), and the
//! flow an ICMP error quotes.

use super::arp;
use super::fragments::Fragment;
use super::ip::Ip;
use super::key::FlowKey;
use super::link::{self, Payload};
use super::tunnel;
use super::TunnelMode;

/// Tunnels opened inside one another at most (GTP carrying Teredo is two).
const MAX_TUNNEL_DEPTH: usize = 8;

/// What decoding found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The flow the packet belongs to.
    pub key: FlowKey,
    /// Set when the packet is an IP fragment: the outermost fragmented header names the datagram.
    pub fragment: Option<Fragment>,
    /// No IP layer: keyed by the MAC pair, or by nothing (all such packets share a key).
    pub non_ip: bool,
    /// An ICMP or ICMPv6 error keyed by the header it quotes.
    pub icmp_error: bool,
    /// Keyed by a header inside a tunnel.
    pub tunnelled: bool,
}

/// Decodes a packet of link type `linktype`.
#[inline]
pub fn decode(linktype: u32, data: &[u8], tunnel: TunnelMode) -> Decoded {
    let payload = link::link(linktype, data);
    let Some(mut ip) = Ip::of(payload) else {
        let key = match payload {
            Payload::Arp(arp) => arp::key(arp).unwrap_or_default(),
            Payload::Mac(a, b) => FlowKey::macs(a, b),
            _ => FlowKey::default(),
        };
        return Decoded {
            key,
            fragment: None,
            non_ip: true,
            icmp_error: false,
            tunnelled: false,
        };
    };
    let mut fragment = Fragment::of(&ip);
    let mut tunnelled = false;
    if tunnel == TunnelMode::Inner {
        for _ in 0..MAX_TUNNEL_DEPTH {
            let Some(inner) = tunnel::inner(&ip).and_then(Ip::of) else {
                break;
            };
            ip = inner;
            tunnelled = true;
            fragment = fragment.or_else(|| Fragment::of(&ip));
        }
    }
    let quoted = ip.quoted();
    let keyed = quoted.as_ref().unwrap_or(&ip);
    let (sp, dp) = keyed.ports();
    Decoded {
        key: FlowKey::new(keyed.src, sp, keyed.dst, dp, keyed.proto),
        fragment,
        non_ip: false,
        icmp_error: quoted.is_some(),
        tunnelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::*;
    use crate::ip::{PROTO_GRE, PROTO_ICMP, PROTO_ICMPV6, PROTO_IPV6, PROTO_TCP, PROTO_UDP};
    use crate::link::{LINKTYPE_ETHERNET, LINKTYPE_RAW};
    use crate::tunnel::{PORT_GTP_U, PORT_TEREDO, PORT_VXLAN};
    use crate::HashMode;

    fn key(f: &[u8]) -> FlowKey {
        decode(LINKTYPE_ETHERNET, f, TunnelMode::Outer).key
    }

    fn inner_key(f: &[u8]) -> Decoded {
        decode(LINKTYPE_ETHERNET, f, TunnelMode::Inner)
    }

    #[test]
    fn swapped_directions_give_the_same_key() {
        let fwd = eth(0x0800, &ipv4(A4, B4, PROTO_TCP, &tcp(40000, 80)));
        let rev = eth(0x0800, &ipv4(B4, A4, PROTO_TCP, &tcp(80, 40000)));
        assert_eq!(key(&fwd), key(&rev));
        let fwd = eth_tagged(
            &[0x8100; 3],
            0x86dd,
            &ipv6(A6, B6, PROTO_UDP, &udp(1, 2, b"")),
        );
        let rev = eth_tagged(
            &[0x8100; 3],
            0x86dd,
            &ipv6(B6, A6, PROTO_UDP, &udp(2, 1, b"")),
        );
        assert_eq!(key(&fwd), key(&rev));
        assert_ne!(
            key(&fwd),
            key(&eth(0x86dd, &ipv6(B6, A6, PROTO_UDP, &udp(2, 3, b""))))
        );
    }

    #[test]
    fn icmp_error_is_keyed_like_the_flow_it_quotes() {
        let req = ipv4(A4, B4, PROTO_UDP, &udp(4000, 53, b"query"));
        let reply = eth(0x0800, &ipv4(B4, A4, PROTO_UDP, &udp(53, 4000, b"answer")));
        let err = eth(0x0800, &ipv4(C4, A4, PROTO_ICMP, &icmp(3, &req[..28])));
        let d = decode(LINKTYPE_ETHERNET, &err, TunnelMode::Outer);
        assert!(d.icmp_error);
        assert_eq!(d.key, key(&reply));
        let syn = ipv4(A4, B4, PROTO_TCP, &tcp(4000, 80));
        let err = eth(0x0800, &ipv4(C4, A4, PROTO_ICMP, &icmp(11, &syn[..28])));
        assert_eq!(key(&err), key(&eth(0x0800, &syn)));
        let req6 = ipv6(A6, B6, PROTO_UDP, &udp(4000, 53, b"query"));
        let err6 = eth(0x86dd, &ipv6(C6, A6, PROTO_ICMPV6, &icmp(1, &req6)));
        assert_eq!(key(&err6), key(&eth(0x86dd, &req6)));
    }

    #[test]
    fn arp_request_and_reply_meet_with_the_address_pair() {
        let req = eth(0x0806, &arp(1, MAC_A, A4, [0; 6], B4));
        let mut reply = eth(0x0806, &arp(2, MAC_B, B4, MAC_A, A4));
        reply[..6].copy_from_slice(&MAC_A);
        reply[6..12].copy_from_slice(&MAC_B);
        let d = decode(LINKTYPE_ETHERNET, &req, TunnelMode::Outer);
        assert!(d.non_ip);
        assert_eq!(d.key, key(&reply));
        // Under the address-pair key, ARP goes where the pair's IP traffic goes.
        let ip = eth(0x0800, &ipv4(B4, A4, PROTO_TCP, &tcp(80, 40000)));
        assert_eq!(d.key.hash(HashMode::Two), key(&ip).hash(HashMode::Two));
    }

    #[test]
    fn non_ip_frames_key_by_mac_pair_in_both_directions() {
        let fwd = eth(0x88cc, &[0; 28]);
        let mut rev = fwd.clone();
        rev[..6].copy_from_slice(&MAC_A);
        rev[6..12].copy_from_slice(&MAC_B);
        let d = decode(LINKTYPE_ETHERNET, &fwd, TunnelMode::Outer);
        assert!(d.non_ip);
        assert_eq!(d.key, key(&rev));
        assert_ne!(d.key, FlowKey::default());
        assert_eq!(key(&[1, 2, 3]), FlowKey::default());
    }

    #[test]
    fn fragments_are_named_by_their_datagram() {
        let first = eth(
            0x0800,
            &ipv4_frag(A4, B4, PROTO_UDP, 5, 0, true, &udp(1, 2, &[0; 8])),
        );
        let later = eth(0x0800, &ipv4_frag(A4, B4, PROTO_UDP, 5, 2, false, &[0; 8]));
        let (f, l) = (inner_key(&first), inner_key(&later));
        assert!(f.fragment.unwrap().first && !l.fragment.unwrap().first);
        assert_eq!(f.fragment.unwrap().datagram, l.fragment.unwrap().datagram);
        assert_ne!(f.key, l.key);
    }

    #[test]
    fn outer_mode_keys_tunnels_by_the_outer_header() {
        let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
        let outer = eth(0x0800, &ipv4(A4, B4, PROTO_GRE, &gre(0, 0x0800, &[], &i4)));
        let d = decode(LINKTYPE_ETHERNET, &outer, TunnelMode::Outer);
        assert!(!d.tunnelled);
        assert_eq!(d.key, FlowKey::new(v4(A4), 0, v4(B4), 0, PROTO_GRE));
    }

    #[test]
    fn inner_mode_keys_by_the_innermost_ip_header() {
        let flow = FlowKey::new(v4(C4), 1, v4(D4), 2, PROTO_TCP);
        let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
        let vx = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &eth(0x0800, &i4)].concat();
        let frames = [
            eth(0x0800, &ipv4(A4, B4, PROTO_GRE, &gre(0, 0x0800, &[], &i4))),
            eth(0x86dd, &ipv6(A6, B6, 4, &i4)),
            eth(
                0x0800,
                &ipv4(A4, B4, PROTO_UDP, &udp(50000, PORT_VXLAN, &vx)),
            ),
            // IPv4 in GRE in IPv6 in IPv4.
            eth(
                0x0800,
                &ipv4(
                    A4,
                    B4,
                    PROTO_IPV6,
                    &ipv6(A6, B6, PROTO_GRE, &gre(0, 0x0800, &[], &i4)),
                ),
            ),
        ];
        for f in &frames {
            let d = inner_key(f);
            assert!(d.tunnelled);
            assert_eq!(d.key, flow);
        }
        // Teredo inside GTP-U: the IPv6 inside both.
        let i6 = ipv6(C6, D6, PROTO_UDP, &udp(7, 8, b""));
        let teredo = ipv4(A4, B4, PROTO_UDP, &udp(PORT_TEREDO, 40000, &i6));
        let gtp = [&[0x30, 0xff, 0, 0, 0, 0, 0, 1][..], &teredo].concat();
        let f = eth(
            0x0800,
            &ipv4(C4, D4, PROTO_UDP, &udp(PORT_GTP_U, PORT_GTP_U, &gtp)),
        );
        assert_eq!(inner_key(&f).key, FlowKey::new(C6, 7, D6, 8, PROTO_UDP));
        // A tunnel carrying no IP (ARP over VXLAN) keeps the outer key.
        let arp = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &eth(0x0806, &[0; 28])].concat();
        let f = ipv4(A4, B4, PROTO_UDP, &udp(50000, PORT_VXLAN, &arp));
        let d = decode(LINKTYPE_RAW, &f, TunnelMode::Inner);
        assert!(!d.tunnelled);
        assert_eq!(
            d.key,
            FlowKey::new(v4(A4), 50000, v4(B4), PORT_VXLAN, PROTO_UDP)
        );
    }

    #[test]
    fn truncated_and_random_bytes_do_not_panic() {
        let i4 = ipv4(C4, D4, PROTO_TCP, &tcp(1, 2));
        let vx = [
            &[0x08, 0, 0, 0, 0, 0, 1, 0][..],
            &eth(0x8100, &[&[0, 1, 8, 0][..], &i4].concat()),
        ]
        .concat();
        let samples = [
            eth_tagged(&[0x88a8, 0x8100], 0x8864, &pppoe(0x0021, &i4)),
            eth(
                0x8847,
                &[mpls(&[0x100]), vec![0; 4], eth(0x0800, &i4)].concat(),
            ),
            eth(0x0800, &ipv4(A4, B4, PROTO_UDP, &udp(1, PORT_VXLAN, &vx))),
            eth(
                0x0800,
                &ipv4(
                    A4,
                    B4,
                    PROTO_GRE,
                    &gre(
                        0x3081,
                        0x880b,
                        &[0; 12],
                        &[&[0xff, 3, 0, 0x21][..], &i4].concat(),
                    ),
                ),
            ),
            eth(
                0x86dd,
                &ipv6_ext(
                    A6,
                    B6,
                    &[ext(0, 1), frag6(1, 0, true), ext(60, 0)],
                    PROTO_ICMPV6,
                    &icmp(1, &ipv6(A6, B6, 17, &udp(1, 2, b""))),
                ),
            ),
            sll2(0x0800, &ipv4(A4, B4, PROTO_ICMP, &icmp(3, &i4))),
        ];
        let linktypes = [0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 1000];
        let mut next = random(0x1234_5678_9abc_def0u64);
        for s in &samples {
            for cut in 0..=s.len() {
                for lt in linktypes {
                    for mode in [TunnelMode::Outer, TunnelMode::Inner] {
                        decode(lt, &s[..cut], mode);
                    }
                }
            }
            // Corrupt bytes one at a time, then at random.
            for _ in 0..2000 {
                let mut m = s.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() % m.len() as u64) as usize;
                    m[i] = next() as u8;
                }
                let cut = (next() % (m.len() as u64 + 1)) as usize;
                for lt in linktypes {
                    decode(lt, &m[..cut], TunnelMode::Inner);
                }
            }
        }
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            decode(linktypes[(next() % 13) as usize], &buf, TunnelMode::Inner);
        }
    }
}
