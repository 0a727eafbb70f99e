//! A job's catalog: a Redis list of batches (one list element a batch, one path a line), read in
//! full by every node and never consumed, and a `sealed` key once no batch will come.
//!
//! Every node must write the same streams whatever the timing, so a batch is handed to the merge
//! only once every earlier batch was streamed: within a batch files are merged by packet time (or
//! in the order given with `--order given`), and batches follow one another.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Script};

use super::JobKeys;
use crate::control::redis::link::{self, Link};
use crate::control::redis::RedisConfig;
use crate::control::signals::Signals;
use crate::error::Result;
use crate::input::discover::Candidate;
use crate::input::intake::{Arrivals, Intake};

/// Between two looks at the catalog while waiting for a batch.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Appends a batch unless the catalog is sealed. ARGV: base, batch. Returns the catalog's length,
/// or -1 when sealed.
const ENQUEUE: &str = r"
if redis.call('EXISTS', ARGV[1] .. ':sealed') == 1 then return -1 end
return redis.call('RPUSH', ARGV[1] .. ':catalog', ARGV[2])
";

/// Appends one batch of paths (absolute, on the shared storage). `Ok(None)`: the catalog is
/// sealed and was left as it is.
pub fn enqueue(c: &mut Connection, keys: &JobKeys, paths: &[String]) -> RedisResult<Option<u64>> {
    let n: i64 = Script::new(ENQUEUE)
        .arg(&keys.base)
        .arg(paths.join("\n"))
        .invoke(c)?;
    Ok(u64::try_from(n).ok())
}

/// Seals the catalog: nodes finish their partitions once they have streamed every batch.
pub fn seal(c: &mut Connection, keys: &JobKeys) -> RedisResult<u64> {
    let (_, n): ((), u64) = redis::pipe()
        .cmd("SET")
        .arg(keys.key("sealed"))
        .arg(1)
        .cmd("LLEN")
        .arg(keys.key("catalog"))
        .query(c)?;
    Ok(n)
}

/// Whether the catalog is sealed, and its batches from `from` on (sealed is read first, so a
/// sealed catalog's batches are all there).
pub fn read(c: &mut Connection, keys: &JobKeys, from: usize) -> RedisResult<(bool, Vec<String>)> {
    redis::pipe()
        .cmd("EXISTS")
        .arg(keys.key("sealed"))
        .cmd("LRANGE")
        .arg(keys.key("catalog"))
        .arg(from)
        .arg(-1)
        .query(c)
}

/// The catalog as a partition's intake.
pub struct CatalogIntake {
    link: Link,
    keys: JobKeys,
    /// Batches read from Redis so far.
    read: usize,
    /// Read and not handed out yet.
    pending: VecDeque<Vec<Candidate>>,
    sealed: bool,
    /// Batches handed out (shared with the lease, for progress).
    taken: Arc<AtomicU64>,
    signals: Signals,
}

impl CatalogIntake {
    /// The catalog of `keys`' job, from its first batch.
    pub fn connect(
        redis: &RedisConfig,
        keys: &JobKeys,
        taken: Arc<AtomicU64>,
        signals: &Signals,
    ) -> Result<Self> {
        Ok(CatalogIntake {
            link: Link::open(redis, &signals.stop)?,
            keys: keys.clone(),
            read: 0,
            pending: VecDeque::new(),
            sealed: false,
            taken,
            signals: signals.clone(),
        })
    }

    /// One look at the catalog (nothing when Redis is away).
    fn look(&mut self) -> Result<()> {
        let (keys, from) = (&self.keys, self.read);
        if let Some((sealed, batches)) = self.link.attempt(|c| read(c, keys, from))? {
            self.read += batches.len();
            self.sealed = sealed;
            self.pending.extend(batches.iter().map(|b| {
                b.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| Candidate {
                        path: PathBuf::from(l),
                        explicit: true,
                    })
                    .collect()
            }));
        }
        Ok(())
    }
}

impl Intake for CatalogIntake {
    fn batched(&self) -> bool {
        true
    }

    fn poll(&mut self, wait: Option<Duration>, _signals: &Signals) -> Result<Arrivals> {
        let until = Instant::now() + wait.unwrap_or_default();
        loop {
            if let Some(batch) = self.pending.pop_front() {
                self.taken.fetch_add(1, Ordering::SeqCst);
                return Ok(Arrivals::Files(batch));
            }
            if self.sealed {
                return Ok(Arrivals::Closed);
            }
            if self.link.is_due() {
                self.look()?;
                if !self.pending.is_empty() || self.sealed {
                    continue;
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Arrivals::Nothing);
            }
            let stop = &self.signals.stop;
            if !link::pause(left.min(LOOK_EVERY), || stop.load(Ordering::SeqCst)) {
                return Ok(Arrivals::Nothing);
            }
        }
    }

    fn reachable(&self) -> Option<bool> {
        Some(!self.link.is_down())
    }
}
