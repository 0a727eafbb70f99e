//! Frame building: Ethernet (optionally 802.1Q-tagged), IPv4 and IPv6 headers, TCP, UDP and ICMP
//! headers, and the Internet checksum. Headers are appended to a byte vector; checksums are filled
//! in once the payload is in place.

/// IP protocol numbers used by the generator.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits.
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// PSH.
pub const PSH: u8 = 0x08;
/// ACK.
pub const ACK: u8 = 0x10;

/// IPv4 "don't fragment" flag in the flags/offset field.
pub const DONT_FRAGMENT: u16 = 0x4000;
/// IPv4 "more fragments" flag in the flags/offset field.
pub const MORE_FRAGMENTS: u16 = 0x2000;

/// Length of an Ethernet header without a VLAN tag.
pub const ETHERNET_LEN: usize = 14;
/// Length of an IPv4 header without options.
pub const IPV4_LEN: usize = 20;
/// Length of an IPv6 header.
pub const IPV6_LEN: usize = 40;
/// Length of a UDP header.
pub const UDP_LEN: usize = 8;

/// An IP address of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Addr {
    /// `v6` if `want_v6`, else `v4`: one host's address in the family a conversation uses.
    pub fn of_family(want_v6: bool, v4: [u8; 4], v6: [u8; 16]) -> Addr {
        if want_v6 {
            Addr::V6(v6)
        } else {
            Addr::V4(v4)
        }
    }

    /// The EtherType that carries this family.
    pub fn ethertype(&self) -> u16 {
        match self {
            Addr::V4(_) => 0x0800,
            Addr::V6(_) => 0x86dd,
        }
    }

    /// Length of this family's IP header.
    pub fn header_len(&self) -> usize {
        match self {
            Addr::V4(_) => IPV4_LEN,
            Addr::V6(_) => IPV6_LEN,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Addr::V4(a) => a,
            Addr::V6(a) => a,
        }
    }
}

/// Appends an Ethernet header, with an 802.1Q tag when `vlan` is set.
pub fn ethernet(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    if let Some(id) = vlan {
        out.extend_from_slice(&0x8100u16.to_be_bytes());
        out.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// The fields of an IP header that vary between packets.
#[derive(Debug, Clone, Copy)]
pub struct IpFields {
    pub proto: u8,
    pub ttl: u8,
    /// IPv4 identification (ignored for IPv6).
    pub id: u16,
    /// IPv4 flags and fragment offset in 8-byte units (ignored for IPv6).
    pub frag: u16,
}

/// Appends an IP header for a payload of `payload_len` bytes and returns the checksum sum of the
/// pseudo-header for the transport checksum.
pub fn ip(out: &mut Vec<u8>, src: &Addr, dst: &Addr, f: IpFields, payload_len: usize) -> u64 {
    match (src, dst) {
        (Addr::V4(s), Addr::V4(d)) => {
            let at = out.len();
            let total = (IPV4_LEN + payload_len) as u16;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&f.id.to_be_bytes());
            out.extend_from_slice(&f.frag.to_be_bytes());
            out.extend_from_slice(&[f.ttl, f.proto, 0, 0]);
            out.extend_from_slice(s);
            out.extend_from_slice(d);
            let c = checksum(sum(&out[at..], 0));
            out[at + 10..at + 12].copy_from_slice(&c.to_be_bytes());
        }
        _ => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
            out.extend_from_slice(&[f.proto, f.ttl]);
            out.extend_from_slice(src.bytes());
            out.extend_from_slice(dst.bytes());
        }
    }
    pseudo_sum(src, dst, f.proto, payload_len)
}

/// The checksum sum of the pseudo-header of a transport segment of `len` bytes.
pub fn pseudo_sum(src: &Addr, dst: &Addr, proto: u8, len: usize) -> u64 {
    sum(src.bytes(), sum(dst.bytes(), 0)) + proto as u64 + len as u64
}

/// The fields of a TCP header.
#[derive(Debug, Clone, Copy)]
pub struct TcpFields<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Options, a multiple of 4 bytes long.
    pub options: &'a [u8],
}

/// Appends a TCP header with a zero checksum (see [`finish_checksum`]).
pub fn tcp(out: &mut Vec<u8>, t: &TcpFields) {
    let offset = ((20 + t.options.len()) / 4) as u8;
    out.extend_from_slice(&t.sport.to_be_bytes());
    out.extend_from_slice(&t.dport.to_be_bytes());
    out.extend_from_slice(&t.seq.to_be_bytes());
    out.extend_from_slice(&t.ack.to_be_bytes());
    out.extend_from_slice(&[offset << 4, t.flags]);
    out.extend_from_slice(&t.window.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(t.options);
}

/// Appends a UDP header for `payload_len` bytes with a zero checksum.
pub fn udp(out: &mut Vec<u8>, sport: u16, dport: u16, payload_len: usize) {
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(&((UDP_LEN + payload_len) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
}

/// Appends a UDP header, `payload` and the checksum, given the pseudo-header sum (from [`ip`] or
/// [`pseudo_sum`]).
pub fn udp_datagram(out: &mut Vec<u8>, sport: u16, dport: u16, payload: &[u8], pseudo: u64) {
    let l4 = out.len();
    udp(out, sport, dport, payload.len());
    out.extend_from_slice(payload);
    finish_checksum(out, l4, pseudo, Checksum::Udp);
}

/// Appends an ICMP header (type, code, zero checksum, and the 4 type-specific bytes).
pub fn icmp(out: &mut Vec<u8>, typ: u8, code: u8, rest: u32) {
    out.extend_from_slice(&[typ, code, 0, 0]);
    out.extend_from_slice(&rest.to_be_bytes());
}

/// Where the checksum sits in a transport header.
#[derive(Debug, Clone, Copy)]
pub enum Checksum {
    /// TCP: offset 16, over the pseudo-header.
    Tcp,
    /// UDP: offset 6, over the pseudo-header; zero is sent as 0xffff.
    Udp,
    /// ICMPv4: offset 2, no pseudo-header.
    Icmp,
}

/// Fills in the checksum of the transport segment that starts at `l4` and runs to the end of
/// `out`, given the pseudo-header sum returned by [`ip`].
pub fn finish_checksum(out: &mut [u8], l4: usize, pseudo: u64, kind: Checksum) {
    let (at, initial) = match kind {
        Checksum::Tcp => (16, pseudo),
        Checksum::Udp => (6, pseudo),
        Checksum::Icmp => (2, 0),
    };
    let mut c = checksum(sum(&out[l4..], initial));
    if c == 0 && matches!(kind, Checksum::Udp) {
        c = 0xffff;
    }
    out[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Adds `data` to a running Internet-checksum sum (32-bit big-endian words; an odd tail byte is
/// padded with zero). Parts summed separately must have even lengths, except the last.
#[inline]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        acc += u32::from_be_bytes(last) as u64;
    }
    acc
}

/// The Internet checksum (ones' complement of the folded sum).
pub fn checksum(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's example: the 16-bit words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(sum(&data, 0)), !0xddf2);
        // An odd length pads the last byte on the right.
        assert_eq!(checksum(sum(&[0x12], 0)), !0x1200);
    }

    #[test]
    fn ipv4_header_checksums_to_zero() {
        let mut out = Vec::new();
        let f = IpFields {
            proto: PROTO_UDP,
            ttl: 64,
            id: 0x1c46,
            frag: DONT_FRAGMENT,
        };
        ip(
            &mut out,
            &Addr::V4([172, 16, 10, 99]),
            &Addr::V4([172, 16, 10, 12]),
            f,
            10,
        );
        assert_eq!(out.len(), IPV4_LEN);
        assert_eq!(checksum(sum(&out, 0)), 0);
    }
}
