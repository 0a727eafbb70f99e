//! IP fragments: a fixed-size table remembers where each datagram's first fragment went so that
//! later fragments follow it; fragments that arrive before their first wait in the hold queue,
//! and packets after them queue behind so that no shard goes back in time. Time is packet time.
//! Nothing here grows without bound, and nothing is touched unless a packet is a fragment or
//! something waits.

use std::io;

use super::hash::{addr_words, shard_of, words5};
use super::hold::{Chain, Hold};
use super::ip::Ip;
use super::key::FlowKey;
use super::{FlowStats, HashMode};
use shardcap_capture::Packet;

/// Where routed packets go: `emit(shard, packet)`.
pub trait Emit: FnMut(usize, &Packet) -> io::Result<()> {}

impl<F: FnMut(usize, &Packet) -> io::Result<()>> Emit for F {}

/// Entries of the fragment table (allocated at the first fragment of a run).
pub const TABLE_SLOTS: usize = 1 << 16;
/// Entries a datagram may sit in (consecutive slots of the table).
const WAYS: usize = 8;
/// How long a datagram's route is remembered after its last fragment, and how long a fragment
/// may wait for its first, in packet time.
pub const FRAGMENT_TTL_NS: u64 = 30_000_000_000;

/// What names an IP datagram for reassembly: addresses, identification and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Datagram {
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    proto: u8,
}

impl Datagram {
    fn hash(&self) -> u64 {
        let [a0, a1] = addr_words(&self.src);
        let [b0, b1] = addr_words(&self.dst);
        words5([a0, a1, b0, b1, self.id as u64 | (self.proto as u64) << 32])
    }

    /// Where fragments go whose first fragment never came: the address pair's shard.
    fn fallback(&self, shards: usize) -> usize {
        let key = FlowKey::new(self.src, 0, self.dst, 0, 0);
        shard_of(key.hash(HashMode::Two), shards)
    }
}

/// A fragment of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub datagram: Datagram,
    /// Offset 0: routed by its own flow key, the others follow it.
    pub first: bool,
}

impl Fragment {
    /// The fragment `ip` is, if it is one.
    pub fn of(ip: &Ip) -> Option<Self> {
        ip.frag.map(|f| Fragment {
            datagram: Datagram {
                src: ip.src,
                dst: ip.dst,
                id: f.id,
                proto: f.proto,
            },
            first: f.first,
        })
    }
}

/// Where a datagram's fragments go.
#[derive(Debug, Clone, Copy)]
enum Route {
    Free,
    Shard(u32),
    Held(Chain),
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    datagram: Datagram,
    route: Route,
    /// Packet time after which a `Shard` route is forgotten.
    expires: u64,
}

impl Slot {
    const FREE: Slot = Slot {
        datagram: Datagram {
            src: [0; 16],
            dst: [0; 16],
            id: 0,
            proto: 0,
        },
        route: Route::Free,
        expires: 0,
    };

    fn live(&self, now: u64) -> bool {
        match self.route {
            Route::Free => false,
            Route::Shard(_) => self.expires >= now,
            Route::Held(_) => true,
        }
    }
}

/// The fragment table and hold queue of one sharder.
pub struct Fragments {
    slots: Vec<Slot>,
    hold: Hold,
    shards: usize,
    /// Time of the packet in hand. Not the latest time seen: after a jump back in time (merged
    /// or disordered inputs) held fragments must not all look expired.
    now: u64,
}

impl Fragments {
    /// An empty table for `shards` outputs.
    pub fn new(shards: usize) -> Self {
        Fragments {
            slots: Vec::new(),
            hold: Hold::default(),
            shards,
            now: 0,
        }
    }

    /// True while some fragment waits for its first (and later packets queue behind it).
    #[inline(always)]
    pub fn holding(&self) -> bool {
        !self.hold.is_empty()
    }

    /// Routes a packet that is a fragment or arrives while something is held: a first fragment
    /// to `shard` (its flow's), releasing what of its datagram waited; a later fragment to where
    /// its first went, or into the hold queue to wait; anything else to `shard`, behind whatever
    /// is held.
    pub fn route(
        &mut self,
        frag: Option<&Fragment>,
        shard: usize,
        pkt: &Packet,
        stats: &mut FlowStats,
        emit: &mut impl Emit,
    ) -> io::Result<()> {
        self.now = pkt.ts_ns;
        self.expire(stats, emit)?;
        let Some(frag) = frag else {
            return self.pass(shard, pkt, stats, emit);
        };
        stats.fragments += 1;
        let i = self.slot(&frag.datagram, stats, emit)?;
        if frag.first {
            if let Route::Held(chain) = self.slots[i].route {
                self.hold.resolve(chain.head, shard);
                self.hold.flush(emit)?;
            }
            self.set(i, Route::Shard(shard as u32));
            return self.pass(shard, pkt, stats, emit);
        }
        if !matches!(self.slots[i].route, Route::Shard(_)) {
            self.make_room(pkt.data.len(), stats, emit)?;
        }
        let chain = match self.slots[i].route {
            Route::Shard(s) => {
                self.slots[i].expires = self.now.saturating_add(FRAGMENT_TTL_NS);
                return self.pass(s as usize, pkt, stats, emit);
            }
            Route::Held(chain) => Some(chain),
            Route::Free => None,
        };
        if !self.hold.fits(pkt.data.len()) {
            // Larger than the whole queue (which is empty now): it cannot wait.
            stats.frag_unmatched += 1;
            return emit(frag.datagram.fallback(self.shards), pkt);
        }
        stats.frag_held += 1;
        let chain = self.hold.wait(pkt, i, chain);
        self.slots[i].route = Route::Held(chain);
        Ok(())
    }

    /// Emits `pkt` to `shard`, or queues it behind the packets held before it.
    fn pass(
        &mut self,
        shard: usize,
        pkt: &Packet,
        stats: &mut FlowStats,
        emit: &mut impl Emit,
    ) -> io::Result<()> {
        if !self.hold.is_empty() {
            self.make_room(pkt.data.len(), stats, emit)?;
        }
        if self.hold.is_empty() {
            return emit(shard, pkt);
        }
        stats.delayed += 1;
        self.hold.queue(pkt, shard);
        Ok(())
    }

    /// Gives up on waiting fragments older than [`FRAGMENT_TTL_NS`] at the current packet time.
    fn expire(&mut self, stats: &mut FlowStats, emit: &mut impl Emit) -> io::Result<()> {
        while let Some((held_ts, slot, head)) = self.hold.oldest() {
            if held_ts.saturating_add(FRAGMENT_TTL_NS) >= self.now {
                break;
            }
            self.give_up(slot, head, stats, emit)?;
        }
        Ok(())
    }

    /// Gives up on everything still waiting and empties the queue (end of the run).
    pub fn drain(&mut self, stats: &mut FlowStats, emit: &mut impl Emit) -> io::Result<()> {
        while let Some((_, slot, head)) = self.hold.oldest() {
            self.give_up(slot, head, stats, emit)?;
        }
        Ok(())
    }

    /// The slot of `datagram`: its live entry, or a claimed one (free, expired, else evicted).
    fn slot(
        &mut self,
        datagram: &Datagram,
        stats: &mut FlowStats,
        emit: &mut impl Emit,
    ) -> io::Result<usize> {
        if self.slots.is_empty() {
            self.slots = vec![Slot::FREE; TABLE_SLOTS];
        }
        let now = self.now;
        let base = datagram.hash() as usize & (TABLE_SLOTS - 1) & !(WAYS - 1);
        let ways = base..base + WAYS;
        if let Some(i) = ways
            .clone()
            .find(|&i| self.slots[i].live(now) && self.slots[i].datagram == *datagram)
        {
            return Ok(i);
        }
        // Victim: a dead slot, else the route closest to expiry, else the oldest held chain.
        let victim = ways
            .min_by_key(|&i| {
                let s = &self.slots[i];
                match s.route {
                    _ if !s.live(now) => (0, 0),
                    Route::Shard(_) => (1, s.expires),
                    Route::Held(chain) => (2, chain.head),
                    Route::Free => (0, 0),
                }
            })
            .unwrap_or(base);
        if self.slots[victim].live(now) {
            stats.frag_evicted += 1;
            if let Route::Held(chain) = self.slots[victim].route {
                self.give_up(victim, chain.head, stats, emit)?;
            }
        }
        self.slots[victim] = Slot {
            datagram: *datagram,
            ..Slot::FREE
        };
        Ok(victim)
    }

    /// Frees queue space for `len` bytes by giving up on the oldest waiting datagrams.
    fn make_room(
        &mut self,
        len: usize,
        stats: &mut FlowStats,
        emit: &mut impl Emit,
    ) -> io::Result<()> {
        while !self.hold.fits(len) {
            let Some((_, slot, head)) = self.hold.oldest() else {
                break;
            };
            self.give_up(slot, head, stats, emit)?;
        }
        Ok(())
    }

    /// Sends the waiting chain at `head` of slot `i` to its address pair's shard (later fragments
    /// follow), and lets out what it held up.
    fn give_up(
        &mut self,
        i: usize,
        head: u64,
        stats: &mut FlowStats,
        emit: &mut impl Emit,
    ) -> io::Result<()> {
        let shard = self.slots[i].datagram.fallback(self.shards);
        stats.frag_unmatched += self.hold.resolve(head, shard);
        self.set(i, Route::Shard(shard as u32));
        self.hold.flush(emit)
    }

    fn set(&mut self, i: usize, route: Route) {
        self.slots[i].route = route;
        self.slots[i].expires = self.now.saturating_add(FRAGMENT_TTL_NS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(id: u32) -> Datagram {
        Datagram {
            src: [1; 16],
            dst: [2; 16],
            id,
            proto: 17,
        }
    }

    /// Datagrams that all map to the same bucket of the table.
    fn colliding(n: usize) -> Vec<Datagram> {
        let bucket = |d: &Datagram| d.hash() as usize & (TABLE_SLOTS - 1) & !(WAYS - 1);
        let b0 = bucket(&datagram(0));
        (0..)
            .map(datagram)
            .filter(|d| bucket(d) == b0)
            .take(n)
            .collect()
    }

    struct Run {
        f: Fragments,
        stats: FlowStats,
        out: Vec<(usize, u64)>,
    }

    fn run() -> Run {
        Run {
            f: Fragments::new(5),
            stats: FlowStats::default(),
            out: Vec::new(),
        }
    }

    fn send(r: &mut Run, d: Datagram, first: bool, ts: u64) {
        let data = [first as u8; 40];
        let pkt = Packet {
            ts_ns: ts,
            len: 40,
            linktype: 1,
            data: &data,
        };
        let frag = Fragment { datagram: d, first };
        let out = &mut r.out;
        let mut emit = |k: usize, p: &Packet| {
            out.push((k, p.ts_ns));
            Ok(())
        };
        r.f.route(Some(&frag), 3, &pkt, &mut r.stats, &mut emit)
            .unwrap();
    }

    #[test]
    fn full_bucket_evicts_the_route_closest_to_expiry() {
        let ds = colliding(WAYS + 1);
        let mut r = run();
        for (i, d) in ds.iter().enumerate().take(WAYS) {
            send(&mut r, *d, true, i as u64);
        }
        send(&mut r, ds[WAYS], true, 100);
        assert_eq!(r.stats.frag_evicted, 1);
        // The first datagram was forgotten: its later fragment waits (taking the slot of the
        // next route closest to expiry); the others follow.
        send(&mut r, ds[0], false, 101);
        assert!(r.f.holding());
        assert_eq!(r.stats.frag_evicted, 2);
        send(&mut r, ds[2], false, 102);
        r.f.drain(&mut r.stats, &mut |k, p| {
            r.out.push((k, p.ts_ns));
            Ok(())
        })
        .unwrap();
        assert_eq!(r.out[WAYS + 1..], [(ds[0].fallback(5), 101), (3, 102)]);
    }

    #[test]
    fn full_bucket_of_held_chains_gives_up_the_oldest() {
        let ds = colliding(WAYS + 1);
        let mut r = run();
        for (i, d) in ds.iter().enumerate() {
            send(&mut r, *d, false, i as u64);
        }
        assert_eq!(r.stats.frag_evicted, 1);
        assert_eq!(r.out, vec![(ds[0].fallback(5), 0)]);
        r.f.drain(&mut r.stats, &mut |_, _| Ok(())).unwrap();
        assert_eq!(r.stats.frag_unmatched, WAYS as u64 + 1);
        assert!(!r.f.holding());
    }
}
