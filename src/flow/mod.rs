//! Flow keys: header decoding to a symmetric flow hash, and the shard each packet goes to.

pub mod decode;
pub mod hash;

use std::io;

use crate::input::Packet;

/// Which header fields make a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashMode {
    /// Address pair.
    #[value(name = "2-tuple")]
    Two,
    /// Address pair and port pair.
    #[value(name = "4-tuple")]
    Four,
    /// Address pair, port pair and protocol.
    #[value(name = "5-tuple")]
    Five,
}

/// Which header keys a tunnelled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TunnelMode {
    /// The outer header (the IDS decapsulates).
    Outer,
    /// The innermost decodable header.
    Inner,
}

/// Flow-keying options.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    pub hash: HashMode,
    pub tunnel: TunnelMode,
}

/// Counters of the flow stage.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct FlowStats {
    /// Packets keyed by their MAC pair (no IP layer found).
    pub non_ip: u64,
}

/// Assigns packets to shards.
pub struct Sharder {
    cfg: FlowConfig,
    shards: usize,
    stats: FlowStats,
}

impl Sharder {
    /// A sharder over `shards` outputs.
    pub fn new(cfg: FlowConfig, shards: usize) -> Self {
        Sharder {
            cfg,
            shards: shards.max(1),
            stats: FlowStats::default(),
        }
    }

    /// Routes one packet: calls `emit(shard, packet)` for it and for any held packets it releases.
    #[inline(always)]
    pub fn route<F>(&mut self, pkt: &Packet, mut emit: F) -> io::Result<()>
    where
        F: FnMut(usize, &Packet) -> io::Result<()>,
    {
        if self.shards == 1 {
            return emit(0, pkt);
        }
        let key = decode::flow_key(pkt.linktype, pkt.data, self.cfg);
        if key.is_non_ip() {
            self.stats.non_ip += 1;
        }
        emit(hash::shard_of(key.hash(self.cfg.hash), self.shards), pkt)
    }

    /// Releases whatever is still held at the end of the run.
    pub fn drain<F>(&mut self, _emit: F) -> io::Result<()>
    where
        F: FnMut(usize, &Packet) -> io::Result<()>,
    {
        Ok(())
    }

    /// Counters so far.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }
}
