//! Partition leases: claimed with a fencing number, renewed by a thread, checked in Redis before
//! each checkpoint, and released or turned into "done" under the same check.
//!
//! The writers' [`Fence`] opens until the last successful renewal's start plus the lease minus a
//! margin: before Redis could give the partition to another node, this one has stopped writing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Connection, RedisResult, Script};

use super::{ClusterConfig, JobKeys};
use crate::control::redis::link::{self, Link};
use crate::control::signals::Signals;
use crate::error::{Error, Result};
use crate::sink::fence::Fence;

/// Claims the first partition neither done nor leased: a new fence, then the lease.
/// ARGV: base, M, node, lease ms. Returns {K, fence}, or {-1, partitions done}.
const CLAIM: &str = r"
local base, m = ARGV[1], tonumber(ARGV[2])
for k = 0, m - 1 do
  if redis.call('SISMEMBER', base .. ':done', k) == 0
     and redis.call('EXISTS', base .. ':lease:' .. k) == 0 then
    local f = redis.call('INCR', base .. ':fence:' .. k)
    redis.call('SET', base .. ':lease:' .. k, ARGV[3] .. ':' .. f, 'PX', ARGV[4])
    return {k, f}
  end
end
return {-1, redis.call('SCARD', base .. ':done')}
";

/// Lua: keeps the lease on partition K if it is ours, or takes it again when it expired and
/// nobody claimed the partition since (its fence unchanged, e.g. after a Redis outage longer than
/// the lease). ARGV: base, K, NODE:FENCE, lease ms, FENCE. Returns {1, ''} kept, {2, ''} taken
/// again, {0, holder} lost (when the lease is free and its fence moved on: the node of the
/// partition's last checkpoint, and the fence).
const HOLD: &str = r"
local function hold()
  local key = ARGV[1] .. ':lease:' .. ARGV[2]
  local cur = redis.call('GET', key)
  if cur == ARGV[3] then
    redis.call('PEXPIRE', key, ARGV[4])
    return {1, ''}
  end
  if not cur then
    local fkey = ARGV[1] .. ':fence:' .. ARGV[2]
    local f = redis.call('GET', fkey)
    if (not f or f == ARGV[5]) and redis.call('SISMEMBER', ARGV[1] .. ':done', ARGV[2]) == 0 then
      redis.call('SET', fkey, ARGV[5])
      redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
      return {2, ''}
    end
    local last = redis.call('HGET', ARGV[1] .. ':progress:' .. ARGV[2], 'node')
    return {0, (last or '') .. ':' .. (f or '')}
  end
  return {0, cur}
end
";

/// Renews the lease ([`HOLD`]).
const RENEW: &str = "return hold()";

/// Holds the lease ([`HOLD`]) and records progress under it. ARGV: as [`HOLD`], then field,
/// value, ...
const CONFIRM: &str = r"
local held = hold()
if held[1] ~= 0 then
  redis.call('HSET', ARGV[1] .. ':progress:' .. ARGV[2], unpack(ARGV, 6))
end
return held
";

/// Marks the partition done (ARGV[4] = 'done') or only releases it, if the lease is ours.
/// ARGV: base, K, NODE:FENCE, what. Returns {1, ''} or {0, holder}.
const FINISH: &str = r"
local key = ARGV[1] .. ':lease:' .. ARGV[2]
local cur = redis.call('GET', key)
if cur ~= ARGV[3] then return {0, cur or ''} end
if ARGV[4] == 'done' then redis.call('SADD', ARGV[1] .. ':done', ARGV[2]) end
redis.call('DEL', key)
return {1, ''}
";

/// Records the job's shape at its first start, or returns the recorded one.
/// ARGV: base, partitions, shards, hash, tunnel. Returns the recorded values.
const JOB: &str = r"
local key = ARGV[1] .. ':config'
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'partitions', ARGV[2], 'shards', ARGV[3], 'hash', ARGV[4],
    'tunnel', ARGV[5])
end
return redis.call('HMGET', key, 'partitions', 'shards', 'hash', 'tunnel')
";

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    Got {
        partition: u32,
        fence: u64,
    },
    /// Every partition not done is leased by another node.
    NoneFree,
    AllDone,
}

/// One attempt to claim a partition.
pub fn claim(c: &mut Connection, keys: &JobKeys, cfg: &ClusterConfig) -> RedisResult<Claim> {
    let (k, f): (i64, u64) = Script::new(CLAIM)
        .arg(&keys.base)
        .arg(cfg.partitions)
        .arg(&cfg.node)
        .arg(cfg.lease.as_millis() as u64)
        .invoke(c)?;
    Ok(match k {
        k if k >= 0 => Claim::Got {
            partition: k as u32,
            fence: f,
        },
        _ if f >= u64::from(cfg.partitions) => Claim::AllDone,
        _ => Claim::NoneFree,
    })
}

/// The job's shape as given to this node, in the order of [`JOB`]'s fields.
fn shape(cfg: &ClusterConfig) -> [String; 4] {
    [
        cfg.partitions.to_string(),
        cfg.shards.to_string(),
        cfg.hash.as_str().to_string(),
        cfg.tunnel.as_str().to_string(),
    ]
}

/// Records the job's shape at its first start; a node started with another is refused (exit 2).
pub fn check_job(
    link: &mut Link,
    keys: &JobKeys,
    cfg: &ClusterConfig,
    stop: &AtomicBool,
) -> Result<()> {
    let mine = shape(cfg);
    let recorded: Vec<Option<String>> = link
        .retry(Some(stop), |c| {
            let script = Script::new(JOB);
            let mut s = script.prepare_invoke();
            s.arg(&keys.base);
            for v in &mine {
                s.arg(v);
            }
            s.invoke(c)
        })?
        .ok_or_else(|| Error::runtime("stopped while waiting for Redis"))?;
    let names = ["--partitions", "-n", "--hash", "--tunnel"];
    let differ: Vec<String> = (names.iter().zip(&mine).zip(&recorded))
        .filter(|((_, m), r)| r.as_deref() != Some(m.as_str()))
        .map(|((n, m), r)| format!("{n} {} (this node: {m})", r.as_deref().unwrap_or("?")))
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "job {} started with {}; every node of a job must use the job's values",
        cfg.job,
        differ.join(", ")
    )))
}

/// `NODE:FENCE` → the message of a lost lease.
fn lost_message(k: u32, holder: &str, ours: u64) -> String {
    let (node, fence) = holder.rsplit_once(':').unwrap_or((holder, ""));
    let node = if node.is_empty() { "nobody now" } else { node };
    format!("partition {k}: lease lost to {node} (fence {fence} > ours {ours}); stopping without writing")
}

/// What identifies a held lease, shared by its renewer's owner and the dispatcher's checks.
#[derive(Clone)]
struct Held {
    k: u32,
    fence_no: u64,
    /// The lease key's value: `NODE:FENCE`.
    value: String,
    base: String,
    fence: Fence,
    /// Catalog batches streamed by the partition (kept by its intake).
    streamed: Arc<AtomicU64>,
}

/// A lease this node holds, renewed by a thread until released.
pub struct Lease {
    held: Held,
    quit: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

/// Part of the lease within which writes stop before Redis may give the partition away.
fn margin(lease: Duration) -> Duration {
    lease / 5
}

impl Lease {
    /// Starts renewing the lease on partition `k` just claimed with `fence_no`.
    pub fn start(
        cfg: &ClusterConfig,
        keys: &JobKeys,
        k: u32,
        fence_no: u64,
        signals: &Signals,
    ) -> Result<Lease> {
        let claimed_at = Instant::now();
        let fence = Fence::closed(signals.stop.clone());
        // The claim went out before `claimed_at`: the lease runs at least this long.
        fence.extend(claimed_at + cfg.lease - margin(cfg.lease));
        let value = format!("{}:{fence_no}", cfg.node);
        let quit = Arc::new(AtomicBool::new(false));
        let mut link = Link::open(&cfg.redis, &signals.stop)?;
        let renewer = {
            let (fence, quit, value, base) = (
                fence.clone(),
                quit.clone(),
                value.clone(),
                keys.base.clone(),
            );
            let lease = cfg.lease;
            thread::Builder::new()
                .name(format!("lease {k}"))
                .spawn(move || loop {
                    if !link::pause(lease / 3, || quit.load(Ordering::SeqCst)) {
                        return;
                    }
                    let start = Instant::now();
                    let renewed = link.attempt(|c| {
                        Script::new(&format!("{HOLD}{RENEW}"))
                            .arg(&base)
                            .arg(k)
                            .arg(&value)
                            .arg(lease.as_millis() as u64)
                            .arg(fence_no)
                            .invoke::<(u8, String)>(c)
                    });
                    match renewed {
                        Ok(Some((1, _))) => fence.extend(start + lease - margin(lease)),
                        Ok(Some((2, _))) => {
                            log::warn!("partition {k}: lease taken again after it expired (nobody claimed it meanwhile)");
                            fence.extend(start + lease - margin(lease));
                        }
                        Ok(Some((_, holder))) => {
                            fence.revoke(lost_message(k, &holder, fence_no));
                            return;
                        }
                        // Redis away: the fence closes on its own at the deadline.
                        Ok(None) => {}
                        Err(e) => {
                            fence.revoke(format!("partition {k}: lease renewal failed: {e}"));
                            return;
                        }
                    }
                })
                .map_err(|e| Error::runtime(format!("lease thread: {e}")))?
        };
        Ok(Lease {
            held: Held {
                k,
                fence_no,
                value,
                base: keys.base.clone(),
                fence,
                streamed: Arc::new(AtomicU64::new(0)),
            },
            quit,
            renewer: Some(renewer),
        })
    }

    /// The counter of catalog batches the partition has streamed (its intake keeps it).
    pub fn streamed(&self) -> Arc<AtomicU64> {
        self.held.streamed.clone()
    }

    /// What the dispatcher checks: the fence, and the lease in Redis before each checkpoint.
    pub fn check(&self, cfg: &ClusterConfig, signals: &Signals) -> Result<LeaseCheck> {
        Ok(LeaseCheck {
            link: Link::open(&cfg.redis, &signals.stop)?,
            held: self.held.clone(),
            stop: signals.stop.clone(),
            node: cfg.node.clone(),
            lease: cfg.lease,
        })
    }

    /// Why the lease was lost, if it was.
    pub fn lost(&self) -> Option<String> {
        if !self.held.fence.is_lost() {
            return None;
        }
        Some(
            self.held
                .fence
                .pass()
                .err()
                .map_or_else(String::new, |e| e.to_string()),
        )
    }

    fn stop_renewing(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }

    fn end(mut self, link: &mut Link, what: &str, stop: Option<&AtomicBool>) -> Result<()> {
        self.stop_renewing();
        let answer = link.retry(stop, |c| {
            Script::new(FINISH)
                .arg(&self.held.base)
                .arg(self.held.k)
                .arg(&self.held.value)
                .arg(what)
                .invoke::<(u8, String)>(c)
        })?;
        match answer {
            Some((1, _)) | None => Ok(()),
            Some((_, holder)) => Err(Error::runtime(lost_message(
                self.held.k,
                &holder,
                self.held.fence_no,
            ))),
        }
    }

    /// The partition is complete: marks it done and releases the lease, if still ours (waits for
    /// Redis through an outage, until a stop).
    pub fn finish(self, link: &mut Link, stop: &AtomicBool) -> Result<()> {
        self.end(link, "done", Some(stop))
    }

    /// Gives the lease up (one attempt: an unreachable Redis lets it expire).
    pub fn release(self, link: &mut Link) {
        let k = self.held.k;
        let stop = AtomicBool::new(true);
        if let Err(e) = self.end(link, "release", Some(&stop)) {
            log::warn!("partition {k}: {e}");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

/// Figures of a partition recorded at each checkpoint (`ctl status`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    pub files_done: u64,
    pub bytes_done: u64,
    pub packets: u64,
    /// The merge is between batches (every batch handed out was streamed).
    pub idle: bool,
}

/// The dispatcher's side of a lease.
pub struct LeaseCheck {
    link: Link,
    held: Held,
    stop: Arc<AtomicBool>,
    node: String,
    lease: Duration,
}

impl LeaseCheck {
    /// The fence the shard writers pass before each write.
    pub fn fence(&self) -> Fence {
        self.held.fence.clone()
    }

    /// Before a checkpoint: the lease must still be ours in Redis (waits through an outage, until
    /// a stop); records `p` under it. A lease held by another node revokes the fence.
    pub fn confirm(&mut self, p: &Progress) -> Result<()> {
        let taken = self.held.streamed.load(Ordering::SeqCst);
        let batches = taken.saturating_sub(u64::from(!p.idle));
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let fields = [
            ("node", self.node.clone()),
            ("fence", self.held.fence_no.to_string()),
            ("files", p.files_done.to_string()),
            ("bytes", p.bytes_done.to_string()),
            ("packets", p.packets.to_string()),
            ("batches", batches.to_string()),
            ("checkpoint_ms", now_ms.to_string()),
        ];
        let ms = self.lease.as_millis() as u64;
        let answer = self.link.retry(Some(&self.stop), |c| {
            let script = Script::new(&format!("{HOLD}{CONFIRM}"));
            let mut s = script.prepare_invoke();
            s.arg(&self.held.base)
                .arg(self.held.k)
                .arg(&self.held.value)
                .arg(ms)
                .arg(self.held.fence_no);
            for (f, v) in &fields {
                s.arg(*f).arg(v);
            }
            s.invoke::<(u8, String)>(c)
        })?;
        match answer {
            Some((0, holder)) => {
                let why = lost_message(self.held.k, &holder, self.held.fence_no);
                self.held.fence.revoke(why.clone());
                Err(Error::runtime(why))
            }
            Some(_) => Ok(()),
            None => Err(Error::runtime(format!(
                "partition {}: stopped while Redis was away; the checkpoint is not confirmed",
                self.held.k
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_lease_names_the_holder_and_both_fences() {
        assert_eq!(
            lost_message(2, "node-b:7", 5),
            "partition 2: lease lost to node-b (fence 7 > ours 5); stopping without writing"
        );
        assert!(lost_message(1, ":6", 5).contains("lost to nobody now (fence 6"));
    }
}
