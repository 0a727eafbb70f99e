//! TCP sessions as scripts: three-way handshake, HTTP/1.1 requests and responses carried over
//! several segments (slow start, delayed ACKs from the client), then a FIN teardown or a reset.
//! Sequence and acknowledgement numbers follow the bytes and flags each side has sent.

use super::content::{self, Resource};
use super::conversation::{Conversation, Side, Span, What};
use super::packet::{ACK, FIN, PSH, RST, SYN};
use super::rng::Rng;

/// Payload bytes of a full segment (MSS 1460 less the timestamp option).
const MSS: u32 = 1448;
const MS: f64 = 1e6;
const SEC: f64 = 1e9;

/// A session being scripted: what each side has sent so far.
struct Session<'a> {
    conv: &'a mut Conversation,
    isn: [u32; 2],
    sent: [u32; 2],
    fin: [bool; 2],
    rtt: u64,
    /// Time to put one full segment on the wire at the server's rate.
    gap: u64,
    /// How long the client takes to acknowledge a segment.
    ack_delay: u64,
}

impl Session<'_> {
    fn seq(&self, side: Side) -> u32 {
        let s = side as usize;
        self.isn[s]
            .wrapping_add(1)
            .wrapping_add(self.sent[s])
            .wrapping_add(self.fin[s] as u32)
    }

    fn segment(&mut self, t: u64, side: Side, flags: u8, data: Span) {
        let (seq, ack) = (self.seq(side), self.seq(side.peer()));
        self.conv.push(
            t,
            side,
            What::Tcp {
                flags,
                seq,
                ack,
                data,
            },
        );
        self.sent[side as usize] += data.len;
    }

    fn fin(&mut self, t: u64, side: Side) {
        self.segment(t, side, FIN | ACK, Span::default());
        self.fin[side as usize] = true;
    }

    /// Sends `span` of `side`'s stream from `t`, in flights that double each round trip, the
    /// client acknowledging every second segment. Returns the time of the last packet.
    fn send(&mut self, side: Side, span: Span, t: u64) -> u64 {
        let gap = match side {
            Side::Server => self.gap,
            Side::Client => 12_000,
        };
        let mut flight = 10u32;
        let mut flight_start = t;
        let mut at = span.start;
        let end = span.start + span.len;
        let mut last = t;
        let mut n = 0u32;
        while at < end {
            for i in 0..flight {
                if at >= end {
                    break;
                }
                let len = MSS.min(end - at);
                let ts = flight_start + i as u64 * gap;
                let flags = if at + len == end { PSH | ACK } else { ACK };
                self.segment(ts, side, flags, Span { start: at, len });
                at += len;
                n += 1;
                last = last.max(ts);
                if side == Side::Server && (n % 2 == 0 || at == end) {
                    let ack_at = (ts + self.ack_delay).max(last);
                    self.segment(ack_at, Side::Client, ACK, Span::default());
                    last = last.max(ack_at);
                }
            }
            flight_start = (flight_start + self.rtt).max(last + gap);
            flight = (flight * 2).min(400);
        }
        last
    }
}

/// Scripts an HTTP/1.1 session from `client` (conversation end 0) to a web server on `host`,
/// starting at `start`.
pub fn http_session(conv: &mut Conversation, rng: &mut Rng, start: u64, host: &str) {
    let rtt = rng.log_uniform(0.4 * MS, 160.0 * MS) as u64;
    let rate = rng.log_uniform(2e6, 120e6); // bytes per second
    let mut s = Session {
        conv,
        isn: [rng.next_u64() as u32, rng.next_u64() as u32],
        sent: [0; 2],
        fin: [false; 2],
        rtt,
        gap: (1514.0 / rate * SEC) as u64,
        ack_delay: rng.range(15_000, 120_000),
    };
    let client_delay = |rng: &mut Rng| rng.range(20_000, 250_000);
    // Handshake (a few connection attempts meet a closed port and are reset).
    let mut t = start;
    let syn = |seq, ack| What::Tcp {
        flags: if ack == 0 { SYN } else { SYN | ACK },
        seq,
        ack,
        data: Span::default(),
    };
    s.conv.push(t, Side::Client, syn(s.isn[0], 0));
    let syn_seq = s.isn[0].wrapping_add(1);
    if rng.chance(0.02) {
        s.conv.push(
            t + rtt,
            Side::Server,
            What::Tcp {
                flags: RST | ACK,
                seq: 0,
                ack: syn_seq,
                data: Span::default(),
            },
        );
        s.conv.sort_steps();
        return;
    }
    t += rtt;
    s.conv.push(t, Side::Server, syn(s.isn[1], syn_seq));
    t += client_delay(rng);
    s.segment(t, Side::Client, ACK, Span::default());
    // Requests and responses on a kept-alive connection.
    let exchanges = 1 + rng.exp(1.8) as u32;
    for k in 0..exchanges.min(12) {
        if k > 0 {
            t += (rng.exp(0.7) * SEC).min(8.0 * SEC) as u64 + client_delay(rng);
        } else {
            t += rng.range(5_000, 400_000);
        }
        let resource = Resource::draw(rng);
        let mut post_len = 0;
        let mut request = s.conv.stream_own(Side::Client, |b| {
            post_len = content::http_request(rng, host, resource, b);
        });
        if post_len > 0 {
            let start = rng.next_u64() as u32;
            request.len += s
                .conv
                .stream_pool(Side::Client, content::BodyKind::Json, start, post_len)
                .len;
        }
        t = s.send(Side::Client, request, t);
        let think = rng.log_uniform(0.1 * MS, 300.0 * MS) as u64;
        if think > 40_000_000 {
            s.segment(t + rtt + 40_000_000, Side::Server, ACK, Span::default());
        }
        t += rtt + think;
        let (kind, wanted) = resource.body(rng);
        let mut body_len = 0;
        let mut response = s.conv.stream_own(Side::Server, |b| {
            body_len = content::http_response(rng, t, resource, wanted, b);
        });
        let start = rng.next_u64() as u32;
        response.len += s.conv.stream_pool(Side::Server, kind, start, body_len).len;
        t = s.send(Side::Server, response, t);
    }
    // Teardown after the keep-alive idle time.
    t += (rng.exp(2.0) * SEC).min(15.0 * SEC) as u64;
    match rng.below(100) {
        0..=79 => {
            s.fin(t, Side::Client);
            s.fin(t + rtt, Side::Server);
            s.segment(
                t + rtt + client_delay(rng),
                Side::Client,
                ACK,
                Span::default(),
            );
        }
        80..=93 => {
            s.fin(t, Side::Server);
            let t2 = t + client_delay(rng);
            s.fin(t2, Side::Client);
            s.segment(t2 + rtt, Side::Server, ACK, Span::default());
        }
        94..=97 => s.segment(t, Side::Server, RST | ACK, Span::default()),
        _ => s.segment(t, Side::Client, RST | ACK, Span::default()),
    }
    s.conv.sort_steps();
}
