//! Hand-built frames for the flow stage's tests.

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
pub const A4: [u8; 4] = [10, 0, 0, 1];
pub const B4: [u8; 4] = [192, 168, 1, 2];
pub const C4: [u8; 4] = [172, 16, 0, 3];
pub const D4: [u8; 4] = [172, 16, 9, 4];
pub const A6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa];
pub const B6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb];
pub const C6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc];
pub const D6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xd];

/// An IPv4 address as the flow key holds it.
pub fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

/// Ethernet from MAC_A to MAC_B.
pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    eth_tagged(&[], ethertype, payload)
}

/// Ethernet with VLAN tags (TPIDs given, outermost first).
pub fn eth_tagged(tpids: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = [MAC_B, MAC_A].concat();
    for (i, tpid) in tpids.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP packet for IPv4 over Ethernet: `op` 1 request, 2 reply.
pub fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0, 1, 0x08, 0, 6, 4];
    f.extend_from_slice(&op.to_be_bytes());
    for part in [&sha[..], &spa, &tha, &tpa] {
        f.extend_from_slice(part);
    }
    f
}

/// MPLS label stack entries as given (the bottom-of-stack bit is 0x100).
pub fn mpls(entries: &[u32]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.to_be_bytes()).collect()
}

/// A PPPoE session header and PPP protocol.
pub fn pppoe(proto: u16, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + 2) as u16;
    let mut f = vec![0x11, 0x00, 0x00, 0x01];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Linux cooked capture v1.
pub fn sll(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6];
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Linux cooked capture v2.
pub fn sll2(proto: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = proto.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (not fragmented).
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_frag(src, dst, proto, 1, 0, false, payload)
}

/// An IPv4 fragment at `offset` (in 8-byte units).
pub fn ipv4_frag(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    offset: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let flags = offset | if more { 0x2000 } else { 0 };
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet without extension headers.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_ext(src, dst, &[], next, payload)
}

/// An IPv6 packet with extension headers `(type, bytes)`; next-header fields are filled in.
pub fn ipv6_ext(
    src: [u8; 16],
    dst: [u8; 16],
    exts: &[(u8, Vec<u8>)],
    proto: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, h)) in exts.iter().enumerate() {
        let mut h = h.clone();
        h[0] = exts.get(i + 1).map_or(proto, |e| e.0);
        body.extend_from_slice(&h);
    }
    body.extend_from_slice(payload);
    let next = exts.first().map_or(proto, |e| e.0);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&body);
    p
}

/// An options-style extension header of `(units + 1) * 8` bytes, padded with PadN.
pub fn ext(kind: u8, units: u8) -> (u8, Vec<u8>) {
    let len = (units as usize + 1) * 8;
    let mut h = vec![0, units, 1, (len - 4) as u8];
    h.resize(len, 0);
    (kind, h)
}

/// An authentication header with a 4-byte ICV.
pub fn ah() -> (u8, Vec<u8>) {
    (
        51,
        vec![0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd],
    )
}

/// An IPv6 fragment header at `offset` (in 8-byte units).
pub fn frag6(id: u32, offset: u16, more: bool) -> (u8, Vec<u8>) {
    let field = offset << 3 | more as u16;
    let mut h = vec![0, 0];
    h.extend_from_slice(&field.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    (44, h)
}

/// A TCP header without options.
pub fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut h = sport.to_be_bytes().to_vec();
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    h
}

/// A UDP datagram.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = sport.to_be_bytes().to_vec();
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

/// An ICMP or ICMPv6 message of type `kind` carrying `body` after its 8-byte header.
pub fn icmp(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(body);
    h
}

/// A GRE header: flags/version word, protocol type, optional fields, payload.
pub fn gre(flags: u16, proto: u16, optional: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut h = flags.to_be_bytes().to_vec();
    h.extend_from_slice(&proto.to_be_bytes());
    h.extend_from_slice(optional);
    h.extend_from_slice(payload);
    h
}

/// A deterministic pseudo-random sequence for fuzz-style tests (the generator's PRNG).
pub fn random(seed: u64) -> impl FnMut() -> u64 {
    let mut rng = shardcap_gen::rng::Rng::new(seed);
    move || rng.next_u64()
}
