//! Redis as a file queue and an authorization gate, compatible with pcapdj's keys and controllers.
//!
//! A dispatcher takes files from `PREFIX_IN_QUEUE`, announces each in `PREFIX_NEXT`, waits until a
//! controller authorizes it in `PREFIX_AUTH`, streams it and records the result; `shardcap ctl` is
//! the controller's side.

pub mod failed;
pub mod gate;
pub mod intake;
pub mod keys;
pub mod link;
pub mod queue;

use std::path::PathBuf;

/// Where Redis is and how its keys are named.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[:PASSWORD@]HOST[:PORT][/DB]` or `rediss://...`.
    pub url: String,
    /// CA certificate (PEM) of a `rediss://` server.
    pub ca: Option<PathBuf>,
    /// Key prefix (pcapdj's `PCAPDJ`).
    pub prefix: String,
    /// The input queue's name, when not `PREFIX_IN_QUEUE`.
    pub queue: Option<String>,
    /// A dispatcher's own name for its per-instance keys.
    pub instance: Option<String>,
}

/// How files are taken from the Redis queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// As pcapdj: LPOP from the queue; results in PROCESSED (complete) or FAILED.
    Pcapdj,
    /// LMOVE into a processing list while in flight; DONE or FAILED after; resumed after a crash.
    Reliable,
}
