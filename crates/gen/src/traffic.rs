//! The traffic model of one sensor: a LAN of clients behind a gateway talking to web sites and a
//! resolver. Conversations arrive as a Poisson process at the rate that fills the requested capture
//! size over the requested duration; their scripted packets are interleaved in time order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::content::Pools;
use super::conversation::{Conversation, Endpoint};
use super::datagram::{self, Lookup};
use super::packet::Addr;
use super::rng::Rng;
use super::tcp;

const CLIENTS: usize = 320;
/// Clients from this index on sit on a tagged VLAN.
const FIRST_VLAN_CLIENT: usize = 310;
const VLAN: u16 = 20;
const SITES: usize = 240;
/// Expected wire bytes of a conversation before any has been scripted.
const PRIOR_BYTES: f64 = 40_000.0;

/// A web site: its name and addresses.
struct Site {
    name: String,
    v4: [u8; 4],
    v6: [u8; 16],
    /// TTL of its packets at the sensor.
    ttl: u8,
}

/// A host on the sensor's LAN.
struct Client {
    mac: [u8; 6],
    v4: [u8; 4],
    v6: [u8; 16],
}

/// The packets one sensor sees, in time order.
pub struct Traffic {
    rng: Rng,
    pools: Pools,
    sites: Vec<Site>,
    clients: Vec<Client>,
    gateway: [u8; 6],
    resolver: Client,
    convs: Vec<Conversation>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    next_arrival: u64,
    /// Target wire bytes per nanosecond.
    rate: f64,
    scripted_bytes: f64,
    scripted: f64,
}

impl Traffic {
    /// The traffic of sensor number `sensor` from `start_ns`, at `bytes_per_sec` on average.
    pub fn new(seed: u64, sensor: u8, start_ns: u64, bytes_per_sec: f64) -> Self {
        let mut rng = Rng::new(seed).fork(sensor as u64 + 1);
        let pools = Pools::new(&mut rng);
        let net = sensor.wrapping_add(1);
        let lan = |i: usize| Client {
            mac: [0x02, 0x00, 0x0a, net, (i >> 8) as u8, i as u8],
            v4: [10, net, (i / 250) as u8, (i % 250 + 2) as u8],
            v6: [
                0xfd,
                0,
                0,
                net,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                (i >> 8) as u8,
                (i & 0xff) as u8,
            ],
        };
        let clients = (0..CLIENTS).map(lan).collect();
        let mut resolver = lan(51);
        resolver.v4[3] = 53;
        resolver.v6[15] = 0x53;
        let words = [
            "example", "shop", "news", "cloud", "video", "search", "social", "bank", "mail",
        ];
        let subs = ["www", "api", "cdn", "static", "img", "app"];
        let tlds = ["com", "net", "org", "io"];
        let sites = (0..SITES)
            .map(|i| {
                let prefix: &[u8] = [&[192, 0, 2][..], &[198, 51, 100], &[203, 0, 113]][i % 3];
                Site {
                    name: format!(
                        "{}.{}{}.{}",
                        rng.pick(&subs),
                        rng.pick(&words),
                        i,
                        rng.pick(&tlds)
                    ),
                    v4: [prefix[0], prefix[1], prefix[2], (i / 3 + 1) as u8],
                    v6: [
                        0x20, 0x01, 0x0d, 0xb8, 0, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
                    ],
                    ttl: *rng.pick(&[64u8, 128, 255]) - rng.range(6, 24) as u8,
                }
            })
            .collect();
        Traffic {
            rng,
            pools,
            sites,
            clients,
            gateway: [0x00, 0x1b, 0x21, 0x3c, sensor, 0x01],
            resolver,
            convs: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            next_arrival: start_ns,
            rate: bytes_per_sec / 1e9,
            scripted_bytes: 0.0,
            scripted: 0.0,
        }
    }

    /// Builds the next frame into `out`; returns its timestamp (ns since the epoch).
    pub fn next_frame(&mut self, out: &mut Vec<u8>) -> u64 {
        while !matches!(self.heap.peek(), Some(&Reverse((t, _))) if t < self.next_arrival) {
            self.arrive();
        }
        let mut top = self.heap.peek_mut().expect("a conversation is scheduled");
        let i = top.0 .1;
        let conv = &mut self.convs[i as usize];
        let t = conv.emit(&self.pools, out);
        match conv.next_time() {
            Some(next) => top.0 .0 = next,
            None => {
                std::collections::binary_heap::PeekMut::pop(top);
                self.free.push(i);
            }
        }
        t
    }

    /// Starts the conversation that arrives now and draws the next arrival time.
    fn arrive(&mut self) {
        let t = self.next_arrival;
        let i = self.free.pop().unwrap_or_else(|| {
            self.convs.push(Conversation::default());
            (self.convs.len() - 1) as u32
        });
        let rng = &mut self.rng;
        let conv = &mut self.convs[i as usize];
        let c = rng.below(self.clients.len() as u64) as usize;
        let client = &self.clients[c];
        let vlan = (c >= FIRST_VLAN_CLIENT).then_some(VLAN);
        let site = &self.sites[rng.below(self.sites.len() as u64) as usize];
        let v6 = rng.chance(0.15);
        let ephemeral = rng.range(32768, 60999) as u16;
        let local = |v6: bool, port| Endpoint {
            mac: client.mac,
            ip: Addr::of_family(v6, client.v4, client.v6),
            port,
            ttl: 64,
        };
        let remote = |v6: bool, port| Endpoint {
            mac: self.gateway,
            ip: Addr::of_family(v6, site.v4, site.v6),
            port,
            ttl: site.ttl,
        };
        let resolver = |v6: bool| Endpoint {
            mac: self.resolver.mac,
            ip: Addr::of_family(v6, self.resolver.v4, self.resolver.v6),
            port: 53,
            ttl: 64,
        };
        let ids = rng.next_u64();
        match rng.below(100) {
            0..=49 => {
                let port = if rng.chance(0.9) { 80 } else { 8080 };
                conv.reset(local(v6, ephemeral), remote(v6, port), vlan, ids);
                tcp::http_session(conv, rng, t, &site.name);
            }
            50..=87 => {
                conv.reset(local(v6, ephemeral), resolver(v6), vlan, ids);
                let lookup = Lookup {
                    name: &site.name,
                    v4: site.v4,
                    v6: site.v6,
                };
                datagram::dns(conv, rng, t, lookup);
            }
            88..=92 => {
                conv.reset(local(false, 0), remote(false, 0), vlan, ids);
                datagram::ping(conv, rng, t);
            }
            93..=96 => {
                let port = *rng.pick(&[161u16, 123, 514, 5060, 1900, 33434]);
                conv.reset(local(false, ephemeral), remote(false, port), vlan, ids);
                datagram::port_unreachable(conv, rng, t);
            }
            _ => {
                conv.reset(local(false, ephemeral), resolver(false), vlan, ids);
                datagram::fragmented_dns(conv, rng, t, &format!("_keys.{}", site.name));
            }
        }
        self.scripted_bytes += conv.wire_bytes as f64;
        self.scripted += 1.0;
        let first = conv.next_time().expect("a script has steps");
        self.heap.push(Reverse((first, i)));
        let mean_bytes = (self.scripted_bytes + 5.0 * PRIOR_BYTES) / (self.scripted + 5.0);
        self.next_arrival = t + self.rng.exp(mean_bytes / self.rate).max(1.0) as u64;
    }
}
