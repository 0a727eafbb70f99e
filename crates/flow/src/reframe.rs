//! Link-layer normalisation: a packet of another link type written as an Ethernet frame, its own
//! link header replaced by a synthesised 14-byte Ethernet header (the rest of the packet, from the
//! network header on, is written as it is).
//!
//! Addresses: Linux cooked captures (SLL, SLL2) carry the sender's link-layer address, which
//! becomes the source. The destination is not captured: it is the broadcast address for packets
//! the kernel saw as broadcast, the IP multicast group's MAC address for multicast, and otherwise
//! [`UNKNOWN_MAC`]. Link types without addresses get [`UNKNOWN_MAC`] for both. An unknown address
//! is therefore the same in both directions of a flow, so no consumer sees a flow's directions
//! disagree on the one address the capture never had.

use shardcap_capture::format::{StreamHeader, RECORD_HEADER_LEN};
use shardcap_capture::Packet;

use crate::link::{self, Payload};
use crate::wire::{be16, bytes, u8_at};

/// Size of the synthesised Ethernet header.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Stand-in for an address the capture does not carry: locally administered, unicast.
pub const UNKNOWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0];
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Linux cooked capture packet types (`sll_pkttype`).
const PACKET_BROADCAST: u16 = 1;
const PACKET_MULTICAST: u16 = 2;
/// `sll_hatype` of netlink captures: the protocol field is a netlink family, not an ethertype.
const ARPHRD_NETLINK: u16 = 824;
/// Protocol fields below this are 802.3 lengths or Linux pseudo-protocols, not ethertypes.
const MIN_ETHERTYPE: u16 = 0x0600;
const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;

/// How one packet becomes an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reframe {
    /// The Ethernet header written in place of the packet's link header.
    pub header: [u8; ETHERNET_HEADER_LEN],
    /// Length of the packet's own link header, which is left out.
    pub skip: usize,
}

/// Link types whose packets can become Ethernet frames (when their payload allows).
fn convertible(linktype: u32) -> bool {
    matches!(
        linktype,
        link::LINKTYPE_LINUX_SLL
            | link::LINKTYPE_LINUX_SLL2
            | link::LINKTYPE_NULL
            | link::LINKTYPE_LOOP
            | link::LINKTYPE_RAW
            | link::LINKTYPE_RAW_OLD_12
            | link::LINKTYPE_RAW_OLD_14
            | link::LINKTYPE_IPV4
            | link::LINKTYPE_IPV6
            | link::LINKTYPE_PPP
            | link::LINKTYPE_PPP_HDLC
    )
}

impl Reframe {
    /// The Ethernet framing of a packet of `linktype`, or `None` when its payload has no
    /// ethertype (non-IP over NULL, RAW, PPP; 802.3 or netlink in a cooked capture; truncated
    /// headers; link types not listed in [`convertible`]).
    pub fn ethernet(linktype: u32, d: &[u8]) -> Option<Reframe> {
        match linktype {
            link::LINKTYPE_LINUX_SLL => {
                let (pkttype, hatype, halen) = (be16(d, 0)?, be16(d, 2)?, be16(d, 4)?);
                let src = bytes::<6>(d, 6).filter(|_| halen == 6);
                cooked(d, be16(d, 14)?, SLL_LEN, hatype, pkttype, src)
            }
            link::LINKTYPE_LINUX_SLL2 => {
                let (hatype, pkttype, halen) = (be16(d, 8)?, u8_at(d, 10)?, u8_at(d, 11)?);
                let src = bytes::<6>(d, 12).filter(|_| halen == 6);
                cooked(d, be16(d, 0)?, SLL2_LEN, hatype, pkttype.into(), src)
            }
            link::LINKTYPE_PPP | link::LINKTYPE_PPP_HDLC => {
                let (proto, skip) = link::ppp_protocol(d)?;
                let ethertype = match proto {
                    link::PPP_IPV4 => link::ETHERTYPE_IPV4,
                    link::PPP_IPV6 => link::ETHERTYPE_IPV6,
                    link::PPP_MPLS => link::ETHERTYPE_MPLS,
                    _ => return None,
                };
                Some(Reframe::new(UNKNOWN_MAC, UNKNOWN_MAC, ethertype, skip))
            }
            lt if convertible(lt) => {
                // NULL, LOOP, RAW and IPV4/IPV6: the link decoder finds the IP header (these
                // link types carry nothing between their header and it).
                let (ethertype, ip) = match link::link(lt, d) {
                    Payload::Ipv4(ip) => (link::ETHERTYPE_IPV4, ip),
                    Payload::Ipv6(ip) => (link::ETHERTYPE_IPV6, ip),
                    _ => return None,
                };
                let skip = d.len() - ip.len();
                Some(Reframe::new(UNKNOWN_MAC, UNKNOWN_MAC, ethertype, skip))
            }
            _ => None,
        }
    }

    fn new(dst: [u8; 6], src: [u8; 6], ethertype: u16, skip: usize) -> Reframe {
        let mut header = [0u8; ETHERNET_HEADER_LEN];
        header[0..6].copy_from_slice(&dst);
        header[6..12].copy_from_slice(&src);
        header[12..14].copy_from_slice(&ethertype.to_be_bytes());
        Reframe { header, skip }
    }

    /// Captured and original length of the frame, from the packet's.
    #[inline]
    pub fn lengths(&self, caplen: usize, len: u32) -> (usize, u32) {
        let grow = |n: u64| (n + ETHERNET_HEADER_LEN as u64).saturating_sub(self.skip as u64);
        (
            grow(caplen as u64) as usize,
            grow(len.into()).min(u32::MAX.into()) as u32,
        )
    }

    /// Appends `pkt` as an Ethernet frame to a stream of `stream`'s format: the record header,
    /// [`Reframe::header`], then the packet after its own link header, each copied once into
    /// `out`. Returns the frame's caplen and len.
    #[inline]
    pub fn append(&self, stream: &StreamHeader, out: &mut Vec<u8>, pkt: &Packet) -> (usize, u32) {
        let body = &pkt.data[self.skip..];
        let (caplen, len) = self.lengths(pkt.data.len(), pkt.len);
        let h = stream.record_header(pkt.ts_ns, caplen, len);
        out.reserve(RECORD_HEADER_LEN + caplen);
        out.extend_from_slice(&h);
        out.extend_from_slice(&self.header);
        out.extend_from_slice(body);
        (caplen, len)
    }
}

/// A Linux cooked capture: the protocol field is the ethertype, the packet type tells the
/// destination's kind.
fn cooked(
    d: &[u8],
    proto: u16,
    skip: usize,
    hatype: u16,
    pkttype: u16,
    src: Option<[u8; 6]>,
) -> Option<Reframe> {
    if d.len() < skip || proto < MIN_ETHERTYPE || hatype == ARPHRD_NETLINK {
        return None;
    }
    let dst = match pkttype {
        PACKET_BROADCAST => BROADCAST_MAC,
        PACKET_MULTICAST => multicast_mac(proto, &d[skip..]).unwrap_or(UNKNOWN_MAC),
        _ => UNKNOWN_MAC,
    };
    Some(Reframe::new(dst, src.unwrap_or(UNKNOWN_MAC), proto, skip))
}

/// The Ethernet address of an IPv4 or IPv6 multicast destination (RFC 1112, RFC 2464).
fn multicast_mac(ethertype: u16, ip: &[u8]) -> Option<[u8; 6]> {
    match ethertype {
        link::ETHERTYPE_IPV4 => {
            let [_, b, c, d] = bytes::<4>(ip, 16)?;
            Some([0x01, 0x00, 0x5e, b & 0x7f, c, d])
        }
        link::ETHERTYPE_IPV6 => {
            let [a, b, c, d] = bytes::<4>(ip, 36)?;
            Some([0x33, 0x33, a, b, c, d])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::*;
    use crate::ip::PROTO_TCP;
    use crate::link::*;

    /// The frame a packet becomes: the synthesised header, then the packet after its link header.
    fn frame(linktype: u32, d: &[u8]) -> Option<Vec<u8>> {
        let r = Reframe::ethernet(linktype, d)?;
        Some([&r.header[..], &d[r.skip..]].concat())
    }

    fn tcp4() -> Vec<u8> {
        ipv4(A4, B4, PROTO_TCP, &tcp(1234, 80))
    }

    fn tcp6() -> Vec<u8> {
        ipv6(A6, B6, PROTO_TCP, &tcp(1234, 80))
    }

    fn eth_from(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        [&dst[..], &src, &ethertype.to_be_bytes(), payload].concat()
    }

    #[test]
    fn sll_keeps_the_source_address_and_the_protocol() {
        let ip = tcp4();
        let want = eth_from(UNKNOWN_MAC, MAC_A, 0x0800, &ip);
        assert_eq!(frame(LINKTYPE_LINUX_SLL, &sll(0x0800, &ip)), Some(want));
        let arp = [7u8; 28];
        let want = eth_from(UNKNOWN_MAC, MAC_A, 0x0806, &arp);
        assert_eq!(frame(LINKTYPE_LINUX_SLL, &sll(0x0806, &arp)), Some(want));
        let r = Reframe::ethernet(LINKTYPE_LINUX_SLL, &sll(0x86dd, &tcp6())).unwrap();
        assert_eq!(r.skip, 16);
        assert_eq!(r.lengths(16 + 60, 200), (14 + 60, 198));
    }

    #[test]
    fn sll_packet_type_names_broadcast_and_multicast_destinations() {
        let mut f = sll(0x0800, &ipv4(A4, [255; 4], 17, &udp(68, 67, b"")));
        f[1] = 1;
        assert_eq!(frame(LINKTYPE_LINUX_SLL, &f).unwrap()[..6], [0xff; 6]);
        let mut f = sll(0x0800, &ipv4(A4, [239, 129, 2, 3], 17, &udp(5, 5, b"")));
        f[1] = 2;
        let group = [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03];
        assert_eq!(frame(LINKTYPE_LINUX_SLL, &f).unwrap()[..6], group);
        let mut dst6 = [0xff; 16];
        dst6[12..].copy_from_slice(&[0, 0, 0, 0xfb]);
        let mut f = sll(0x86dd, &ipv6(A6, dst6, 17, &udp(5353, 5353, b"")));
        f[1] = 2;
        let group = [0x33, 0x33, 0, 0, 0, 0xfb];
        assert_eq!(frame(LINKTYPE_LINUX_SLL, &f).unwrap()[..6], group);
    }

    #[test]
    fn sll_without_a_six_byte_address_or_ethertype() {
        let mut f = sll(0x0800, &tcp4());
        f[5] = 0; // no link-layer address (a tunnel)
        assert_eq!(frame(LINKTYPE_LINUX_SLL, &f).unwrap()[6..12], UNKNOWN_MAC);
        // 802.2 LLC frames, netlink, and a truncated header cannot be Ethernet frames.
        assert_eq!(
            Reframe::ethernet(LINKTYPE_LINUX_SLL, &sll(0x0004, &[0; 8])),
            None
        );
        let mut netlink = sll(0x0010, &[0; 8]);
        netlink[2..4].copy_from_slice(&824u16.to_be_bytes());
        assert_eq!(Reframe::ethernet(LINKTYPE_LINUX_SLL, &netlink), None);
        assert_eq!(
            Reframe::ethernet(LINKTYPE_LINUX_SLL, &sll(0x0800, b"")[..15]),
            None
        );
    }

    #[test]
    fn sll2_keeps_the_source_address_and_the_protocol() {
        let ip = tcp6();
        let want = eth_from(UNKNOWN_MAC, MAC_A, 0x86dd, &ip);
        assert_eq!(frame(LINKTYPE_LINUX_SLL2, &sll2(0x86dd, &ip)), Some(want));
        let mut f = sll2(0x0800, &tcp4());
        f[10] = 1;
        assert_eq!(frame(LINKTYPE_LINUX_SLL2, &f).unwrap()[..6], [0xff; 6]);
        assert_eq!(
            Reframe::ethernet(LINKTYPE_LINUX_SLL2, &sll2(0x0800, b"")[..19]),
            None
        );
    }

    #[test]
    fn null_and_loop_in_either_byte_order() {
        let (v4, v6) = (tcp4(), tcp6());
        for lt in [LINKTYPE_NULL, LINKTYPE_LOOP] {
            for (family, ip, et) in [(2u32, &v4, 0x0800), (24, &v6, 0x86dd), (30, &v6, 0x86dd)] {
                let want = eth_from(UNKNOWN_MAC, UNKNOWN_MAC, et, ip);
                for fam in [family.to_le_bytes(), family.to_be_bytes()] {
                    let f = [&fam[..], ip].concat();
                    assert_eq!(frame(lt, &f).as_ref(), Some(&want), "{lt} {family}");
                    let r = Reframe::ethernet(lt, &f).unwrap();
                    assert_eq!(r.lengths(f.len(), 1000), (ip.len() + 14, 1010));
                }
            }
            let ipx = [&23u32.to_le_bytes()[..], &v4].concat();
            assert_eq!(Reframe::ethernet(lt, &ipx), None);
        }
    }

    #[test]
    fn raw_ip_link_types() {
        let (v4, v6) = (tcp4(), tcp6());
        for lt in [LINKTYPE_RAW, LINKTYPE_RAW_OLD_12, LINKTYPE_RAW_OLD_14] {
            let want = eth_from(UNKNOWN_MAC, UNKNOWN_MAC, 0x0800, &v4);
            assert_eq!(frame(lt, &v4), Some(want));
            let want = eth_from(UNKNOWN_MAC, UNKNOWN_MAC, 0x86dd, &v6);
            assert_eq!(frame(lt, &v6), Some(want));
            assert_eq!(Reframe::ethernet(lt, &[0x50; 20]), None);
            assert_eq!(Reframe::ethernet(lt, b""), None);
        }
        let want = eth_from(UNKNOWN_MAC, UNKNOWN_MAC, 0x0800, &v4);
        assert_eq!(frame(LINKTYPE_IPV4, &v4), Some(want));
        let want = eth_from(UNKNOWN_MAC, UNKNOWN_MAC, 0x86dd, &v6);
        assert_eq!(frame(LINKTYPE_IPV6, &v6), Some(want));
        let r = Reframe::ethernet(LINKTYPE_IPV4, &v4).unwrap();
        assert_eq!((r.skip, r.lengths(40, 40)), (0, (54, 54)));
    }

    #[test]
    fn ppp_and_ppp_hdlc() {
        let (v4, v6) = (tcp4(), tcp6());
        let cases: [(u32, &[u8], &[u8], u16); 5] = [
            (LINKTYPE_PPP, &[0x00, 0x21], &v4, 0x0800),
            (LINKTYPE_PPP, &[0xff, 0x03, 0x00, 0x57], &v6, 0x86dd),
            (LINKTYPE_PPP, &[0x21], &v4, 0x0800),
            (LINKTYPE_PPP_HDLC, &[0xff, 0x03, 0x00, 0x21], &v4, 0x0800),
            (
                LINKTYPE_PPP_HDLC,
                &[0xff, 0x03, 0x02, 0x81],
                &[0, 0, 0x11, 0x40],
                0x8847,
            ),
        ];
        for (lt, head, body, et) in cases {
            let f = [head, body].concat();
            let want = eth_from(UNKNOWN_MAC, UNKNOWN_MAC, et, body);
            assert_eq!(frame(lt, &f), Some(want), "{head:x?}");
        }
        // LCP is not IP.
        let lcp = [&[0xff, 0x03, 0xc0, 0x21][..], &[1, 1, 0, 4]].concat();
        assert_eq!(Reframe::ethernet(LINKTYPE_PPP_HDLC, &lcp), None);
    }

    #[test]
    fn other_link_types_are_not_converted() {
        let v4 = tcp4();
        for lt in [LINKTYPE_ETHERNET, 239, 127, 1000] {
            assert!(!convertible(lt));
            assert_eq!(Reframe::ethernet(lt, &v4), None);
        }
    }
}
