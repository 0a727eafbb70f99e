//! Datagram conversations as scripts: DNS lookups over UDP (some lost and retried, some answered
//! with a large TXT record that arrives as IPv4 fragments), ICMP echo, and UDP probes of closed
//! ports answered by ICMP port-unreachable errors that quote the probe.

use super::content::{self, Answer, QType};
use super::conversation::{Conversation, Side, Span, What};
use super::packet::{self, IpFields, MORE_FRAGMENTS, PROTO_UDP};
use super::rng::Rng;

const MS: f64 = 1e6;
/// Payload bytes of a full IPv4 fragment on a 1500-byte MTU.
const FRAGMENT_PAYLOAD: usize = 1480;

/// What a DNS server answers with.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    pub name: &'a str,
    pub v4: [u8; 4],
    pub v6: [u8; 16],
}

/// Scripts a DNS lookup of `lookup.name` starting at `start`.
pub fn dns(conv: &mut Conversation, rng: &mut Rng, start: u64, lookup: Lookup) {
    let id = rng.next_u64() as u16;
    let qtype = if rng.chance(0.3) {
        QType::Aaaa
    } else {
        QType::A
    };
    let query = conv.own(|b| content::dns_query(id, lookup.name, qtype, 1232, b));
    let mut t = start;
    conv.push(t, Side::Client, What::Udp { data: query });
    if rng.chance(0.04) {
        // Lost: the resolver retries after its timeout.
        t += 1_000_000_000;
        conv.push(t, Side::Client, What::Udp { data: query });
    }
    let answers: &[Answer] = match (rng.below(100), qtype) {
        (0..=3, _) => &[],
        (_, QType::Aaaa) => &[Answer::Aaaa(lookup.v6)],
        _ => &[Answer::A(lookup.v4)],
    };
    let response = conv.own(|b| content::dns_response(id, lookup.name, qtype, answers, b));
    t += rng.log_uniform(0.2 * MS, 90.0 * MS) as u64;
    conv.push(t, Side::Server, What::Udp { data: response });
}

/// Scripts a TXT lookup whose large answer arrives as IPv4 fragments (sometimes last fragment
/// first, as some stacks send them). Both ends must be IPv4.
pub fn fragmented_dns(conv: &mut Conversation, rng: &mut Rng, start: u64, name: &str) {
    let id = rng.next_u64() as u16;
    let query = conv.own(|b| content::dns_query(id, name, QType::Txt, 4096, b));
    conv.push(start, Side::Client, What::Udp { data: query });
    let mut text = vec![0u8; rng.range(1800, 4200) as usize];
    for c in text.iter_mut() {
        *c = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
            [rng.below(64) as usize];
    }
    let strings = text.len().div_ceil(250);
    let (server, client) = (conv.ends[1], conv.ends[0]);
    let datagram = conv.own(|b| {
        let mut payload = Vec::new();
        content::dns_response(
            id,
            name,
            QType::Txt,
            &[Answer::Txt {
                text: &text,
                strings,
            }],
            &mut payload,
        );
        let len = packet::UDP_LEN + payload.len();
        let pseudo = packet::pseudo_sum(&server.ip, &client.ip, PROTO_UDP, len);
        packet::udp_datagram(b, server.port, client.port, &payload, pseudo);
    });
    let ip_id = rng.next_u64() as u16;
    let mut t = start + rng.log_uniform(1.0 * MS, 120.0 * MS) as u64;
    let count = (datagram.len as usize).div_ceil(FRAGMENT_PAYLOAD);
    let reversed = rng.chance(0.25);
    for i in 0..count {
        let k = if reversed { count - 1 - i } else { i };
        let off = k * FRAGMENT_PAYLOAD;
        let len = FRAGMENT_PAYLOAD.min(datagram.len as usize - off);
        let more = if k + 1 < count { MORE_FRAGMENTS } else { 0 };
        conv.push(
            t,
            Side::Server,
            What::Datagram {
                proto: PROTO_UDP,
                id: ip_id,
                frag: more | (off / 8) as u16,
                data: Span {
                    start: datagram.start + off as u32,
                    len: len as u32,
                },
            },
        );
        t += rng.range(2_000, 40_000);
    }
}

/// Scripts `ping -c N`: echo requests a second apart, most answered after a round trip.
pub fn ping(conv: &mut Conversation, rng: &mut Rng, start: u64) {
    let id = rng.next_u64() as u16;
    let rtt = rng.log_uniform(0.3 * MS, 150.0 * MS) as u64;
    for seq in 1..=rng.range(1, 6) as u16 {
        let t = start + (seq as u64 - 1) * 1_000_000_000 + rng.below(300_000);
        // Linux ping: a struct timeval, then the bytes 0x10.. up to 56 bytes.
        let data = conv.own(|b| {
            let secs = t / 1_000_000_000;
            b.extend_from_slice(&secs.to_le_bytes());
            b.extend_from_slice(&(t / 1000 % 1_000_000).to_le_bytes());
            b.extend(0x10u8..0x38);
        });
        let rest = (id as u32) << 16 | seq as u32;
        let echo = |typ| What::Icmp {
            typ,
            code: 0,
            rest,
            data,
        };
        conv.push(t, Side::Client, echo(8));
        if rng.chance(0.95) {
            conv.push(t + rtt, Side::Server, echo(0));
        }
    }
    conv.sort_steps();
}

/// Scripts a UDP probe of a closed port and the ICMP port-unreachable error that quotes it. Both
/// ends must be IPv4.
pub fn port_unreachable(conv: &mut Conversation, rng: &mut Rng, start: u64) {
    let (client, server) = (conv.ends[0], conv.ends[1]);
    let mut payload = vec![0u8; rng.range(16, 120) as usize];
    rng.fill(&mut payload);
    let udp = conv.own(|b| {
        let len = packet::UDP_LEN + payload.len();
        let pseudo = packet::pseudo_sum(&client.ip, &server.ip, PROTO_UDP, len);
        packet::udp_datagram(b, client.port, server.port, &payload, pseudo);
    });
    let id = rng.next_u64() as u16;
    conv.push(
        start,
        Side::Client,
        What::Datagram {
            proto: PROTO_UDP,
            id,
            frag: 0,
            data: udp,
        },
    );
    // The error quotes the probe as the server received it (TTL lowered on the way).
    let initial = [64u8, 128, 255]
        .into_iter()
        .find(|&i| i >= server.ttl)
        .unwrap_or(255);
    let hops = (initial - server.ttl).max(1);
    let udp_bytes = conv.owned(udp).to_vec();
    let quote = conv.own(|b| {
        let f = IpFields {
            proto: PROTO_UDP,
            ttl: client.ttl.saturating_sub(hops),
            id,
            frag: 0,
        };
        packet::ip(b, &client.ip, &server.ip, f, udp_bytes.len());
        b.extend_from_slice(&udp_bytes);
    });
    let t = start + rng.log_uniform(0.3 * MS, 100.0 * MS) as u64;
    conv.push(
        t,
        Side::Server,
        What::Icmp {
            typ: 3,
            code: 3,
            rest: 0,
            data: quote,
        },
    );
}
