//! A conversation between two endpoints: its flow (addresses, ports, VLAN), the script of steps it
//! will send (built in advance by the TCP or datagram models), and the frame each step becomes.

use super::content::{BodyKind, Pools};
use super::packet::{self, Addr, Checksum, IpFields, TcpFields};

/// Which end sends a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Server = 1,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// One end of a conversation as the sensor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// The MAC the sensor sees for this end (the gateway's for remote hosts).
    pub mac: [u8; 6],
    pub ip: Addr,
    pub port: u16,
    /// TTL of its packets as they pass the sensor.
    pub ttl: u8,
}

/// A byte range of the conversation's own bytes or of a TCP direction's stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

/// What one step sends.
#[derive(Debug, Clone, Copy)]
pub enum What {
    /// A TCP segment carrying `data` of the sender's stream.
    Tcp {
        flags: u8,
        seq: u32,
        ack: u32,
        data: Span,
    },
    /// A UDP datagram with `data` (conversation bytes) as payload.
    Udp { data: Span },
    /// An ICMPv4 message with `data` (conversation bytes) after its 8-byte header.
    Icmp {
        typ: u8,
        code: u8,
        rest: u32,
        data: Span,
    },
    /// An IPv4 datagram whose transport bytes were built in advance (`data`, conversation bytes):
    /// a whole datagram (`frag` 0) or one fragment of a larger one.
    Datagram {
        proto: u8,
        id: u16,
        /// Flags and offset field (offset in 8-byte units, MF bit).
        frag: u16,
        data: Span,
    },
}

/// A packet at a time.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub t: u64,
    pub side: Side,
    pub what: What,
}

/// Where a piece of a TCP stream comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Own(u32),
    Pool(BodyKind, u32),
}

/// A run of a TCP direction's byte stream.
#[derive(Debug, Clone, Copy)]
struct Piece {
    at: u32,
    len: u32,
    src: Source,
}

/// TCP option bytes of a SYN: MSS 1460, SACK permitted, timestamps, window scale 7.
const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7,
];
/// Offset of the timestamp value in [`SYN_OPTIONS`].
const SYN_TSVAL: usize = 8;
/// TCP option bytes of other segments: NOP, NOP, timestamps.
const TS_OPTIONS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
/// Length of a TCP header with timestamps.
pub const TCP_HEADER_LEN: usize = 20 + TS_OPTIONS.len();

/// A scripted conversation.
#[derive(Debug)]
pub struct Conversation {
    pub ends: [Endpoint; 2],
    pub vlan: Option<u16>,
    steps: Vec<Step>,
    next: usize,
    /// Bytes owned by the conversation (messages, quoted datagrams).
    own: Vec<u8>,
    streams: [Vec<Piece>; 2],
    stream_len: [u32; 2],
    ip_id: [u16; 2],
    ts_base: [u32; 2],
    last_tsval: [u32; 2],
    windows: [u16; 2],
    /// Approximate bytes on the wire of the whole script.
    pub wire_bytes: u64,
}

impl Default for Conversation {
    fn default() -> Self {
        let end = Endpoint {
            mac: [0; 6],
            ip: Addr::V4([0; 4]),
            port: 0,
            ttl: 64,
        };
        Conversation {
            ends: [end; 2],
            vlan: None,
            steps: Vec::new(),
            next: 0,
            own: Vec::new(),
            streams: [Vec::new(), Vec::new()],
            stream_len: [0; 2],
            ip_id: [0; 2],
            ts_base: [0; 2],
            last_tsval: [0; 2],
            windows: [0; 2],
            wire_bytes: 0,
        }
    }
}

impl Conversation {
    /// Starts a new script between `client` and `server`, reusing this value's allocations.
    /// `ids` seeds the IPv4 identification counters and TCP timestamp clocks.
    pub fn reset(&mut self, client: Endpoint, server: Endpoint, vlan: Option<u16>, ids: u64) {
        self.ends = [client, server];
        self.vlan = vlan;
        self.steps.clear();
        self.next = 0;
        self.own.clear();
        self.streams[0].clear();
        self.streams[1].clear();
        self.stream_len = [0; 2];
        self.ip_id = [ids as u16, (ids >> 16) as u16];
        self.ts_base = [(ids >> 32) as u32 & 0x7fff_ffff, (ids >> 3) as u32];
        self.last_tsval = [0; 2];
        self.windows = [502, 509];
        self.wire_bytes = 0;
    }

    /// Appends a step; call [`Conversation::sort_steps`] once the script is complete.
    pub fn push(&mut self, t: u64, side: Side, what: What) {
        let ip = self.ends[0].ip.header_len() + packet::ETHERNET_LEN;
        self.wire_bytes += (ip
            + match what {
                What::Tcp { data, .. } => TCP_HEADER_LEN + data.len as usize,
                What::Udp { data } => packet::UDP_LEN + data.len as usize,
                What::Icmp { data, .. } => 8 + data.len as usize,
                What::Datagram { data, .. } => data.len as usize,
            }) as u64;
        self.steps.push(Step { t, side, what });
    }

    /// Puts the script in time order (stable: steps at the same time keep their order).
    pub fn sort_steps(&mut self) {
        self.steps.sort_by_key(|s| s.t);
    }

    /// Appends bytes the conversation owns; returns where they are.
    pub fn own(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> Span {
        let start = self.own.len();
        f(&mut self.own);
        Span {
            start: start as u32,
            len: (self.own.len() - start) as u32,
        }
    }

    /// The bytes of an owned span.
    pub fn owned(&self, s: Span) -> &[u8] {
        &self.own[s.start as usize..(s.start + s.len) as usize]
    }

    /// Appends owned bytes to `side`'s TCP stream; returns their range in the stream.
    pub fn stream_own(&mut self, side: Side, f: impl FnOnce(&mut Vec<u8>)) -> Span {
        let s = self.own(f);
        self.add_piece(side, s.len, Source::Own(s.start))
    }

    /// Appends `len` bytes of a body pool to `side`'s TCP stream; returns their range.
    pub fn stream_pool(&mut self, side: Side, kind: BodyKind, start: u32, len: u32) -> Span {
        self.add_piece(side, len, Source::Pool(kind, start))
    }

    fn add_piece(&mut self, side: Side, len: u32, src: Source) -> Span {
        let at = self.stream_len[side as usize];
        if len > 0 {
            self.streams[side as usize].push(Piece { at, len, src });
            self.stream_len[side as usize] += len;
        }
        Span { start: at, len }
    }

    /// Time of the next step, if any is left.
    #[inline]
    pub fn next_time(&self) -> Option<u64> {
        self.steps.get(self.next).map(|s| s.t)
    }

    /// Builds the next step's Ethernet frame into `out` (cleared first); returns its time.
    pub fn emit(&mut self, pools: &Pools, out: &mut Vec<u8>) -> u64 {
        let Step { t, side, what } = self.steps[self.next];
        self.next += 1;
        let s = side as usize;
        let (src, dst) = (self.ends[s], self.ends[1 - s]);
        out.clear();
        packet::ethernet(out, dst.mac, src.mac, self.vlan, src.ip.ethertype());
        let id = self.ip_id[s];
        self.ip_id[s] = id.wrapping_add(1);
        let fields = |proto, frag| IpFields {
            proto,
            ttl: src.ttl,
            id,
            frag,
        };
        match what {
            What::Tcp {
                flags,
                seq,
                ack,
                data,
            } => {
                let tsval = self.ts_base[s].wrapping_add((t / 1_000_000) as u32);
                let tsecr = if flags & packet::ACK != 0 {
                    self.last_tsval[1 - s]
                } else {
                    0
                };
                self.last_tsval[s] = tsval;
                // Resets carry no options and a zero window, as Linux sends them.
                let mut syn_opts = SYN_OPTIONS;
                let mut ts_opts = TS_OPTIONS;
                let (options, at, window): (&mut [u8], usize, u16) = if flags & packet::RST != 0 {
                    (&mut [], 0, 0)
                } else if flags & packet::SYN != 0 {
                    (&mut syn_opts, SYN_TSVAL, [64240, 65160][s])
                } else {
                    (&mut ts_opts, 4, self.windows[s])
                };
                if !options.is_empty() {
                    options[at..at + 4].copy_from_slice(&tsval.to_be_bytes());
                    options[at + 4..at + 8].copy_from_slice(&tsecr.to_be_bytes());
                }
                let len = 20 + options.len() + data.len as usize;
                let pseudo = packet::ip(
                    out,
                    &src.ip,
                    &dst.ip,
                    fields(packet::PROTO_TCP, packet::DONT_FRAGMENT),
                    len,
                );
                let l4 = out.len();
                packet::tcp(
                    out,
                    &TcpFields {
                        sport: src.port,
                        dport: dst.port,
                        seq,
                        ack,
                        flags,
                        window,
                        options,
                    },
                );
                self.copy_stream(side, data, pools, out);
                packet::finish_checksum(out, l4, pseudo, Checksum::Tcp);
            }
            What::Udp { data } => {
                let len = packet::UDP_LEN + data.len as usize;
                let pseudo = packet::ip(out, &src.ip, &dst.ip, fields(packet::PROTO_UDP, 0), len);
                packet::udp_datagram(out, src.port, dst.port, self.owned(data), pseudo);
            }
            What::Icmp {
                typ,
                code,
                rest,
                data,
            } => {
                let len = 8 + data.len as usize;
                packet::ip(out, &src.ip, &dst.ip, fields(packet::PROTO_ICMP, 0), len);
                let l4 = out.len();
                packet::icmp(out, typ, code, rest);
                out.extend_from_slice(self.owned(data));
                packet::finish_checksum(out, l4, 0, Checksum::Icmp);
            }
            What::Datagram {
                proto,
                id,
                frag,
                data,
            } => {
                let f = IpFields {
                    id,
                    ..fields(proto, frag)
                };
                packet::ip(out, &src.ip, &dst.ip, f, data.len as usize);
                out.extend_from_slice(self.owned(data));
            }
        }
        t
    }

    fn copy_stream(&self, side: Side, span: Span, pools: &Pools, out: &mut Vec<u8>) {
        let pieces = &self.streams[side as usize];
        let end = span.start + span.len;
        let mut at = span.start;
        let mut i = pieces.partition_point(|p| p.at + p.len <= at);
        while at < end {
            let p = pieces[i];
            let off = at - p.at;
            let n = (p.len - off).min(end - at);
            match p.src {
                Source::Own(start) => {
                    let from = (start + off) as usize;
                    out.extend_from_slice(&self.own[from..from + n as usize]);
                }
                Source::Pool(kind, start) => pools.copy(kind, start + off, n, out),
            }
            at += n;
            i += 1;
        }
    }
}
