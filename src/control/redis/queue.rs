//! Where each file is: queued, taken (in reliable mode: in the processing list), being streamed
//! (ACTIVE), then processed, done or failed. One function a transition, each one Redis round trip.

use redis::{Connection, RedisResult};

use super::keys::Keys;
use super::RedisMode;

/// pcapdj take of more than one file: up to ARGV[1] plain `LPOP key` (no count: Redis 5 has none).
const TAKE_PCAPDJ: &str = r"
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LPOP', KEYS[1])
  if not v then break end
  out[#out + 1] = v
end
return out";

/// Reliable take: up to ARGV[1] files moved, one LMOVE each, from the queue to the processing list.
const TAKE_RELIABLE: &str = r"
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not v then break end
  out[#out + 1] = v
end
return out";

/// Reliable result: the file leaves the processing list and, if it was there, its record is
/// appended to the result list (so a retry after a lost reply records nothing twice).
const FINISH_RELIABLE: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then redis.call('RPUSH', KEYS[2], ARGV[2]) end
redis.call('SREM', KEYS[3], ARGV[1])
return 0";

/// Every failed record's file back to the end of the queue, one atomic move each.
const REQUEUE_FAILED: &str = r"
local n = 0
while true do
  local e = redis.call('LPOP', KEYS[1])
  if not e then return n end
  local ok, d = pcall(cjson.decode, e)
  local f = e
  if ok and type(d) == 'table' and type(d.file) == 'string' then f = d.file end
  redis.call('RPUSH', KEYS[2], f)
  n = n + 1
end";

/// The file queue of one dispatcher instance, in pcapdj or reliable mode.
#[derive(Debug, Clone)]
pub struct Queue {
    pub keys: Keys,
    pub mode: RedisMode,
}

impl Queue {
    /// A queue over `keys`.
    pub fn new(keys: Keys, mode: RedisMode) -> Self {
        Queue { keys, mode }
    }

    /// Takes up to `max` files from the head of the queue: plain LPOP, one at a time as pcapdj
    /// does (so Redis 5 serves it), or LMOVE to the processing list (reliable, Redis 6.2).
    pub fn take(&self, con: &mut Connection, max: usize) -> RedisResult<Vec<Vec<u8>>> {
        let script = match self.mode {
            RedisMode::Pcapdj if max == 1 => {
                return Ok(redis::cmd("LPOP")
                    .arg(&self.keys.in_queue)
                    .query::<Option<Vec<u8>>>(con)?
                    .into_iter()
                    .collect())
            }
            RedisMode::Pcapdj => TAKE_PCAPDJ,
            RedisMode::Reliable => TAKE_RELIABLE,
        };
        redis::cmd("EVAL")
            .arg(script)
            .arg(2)
            .arg(&self.keys.in_queue)
            .arg(&self.keys.processing)
            .arg(max)
            .query(con)
    }

    /// Files a previous run of this instance left in flight (reliable mode; none in pcapdj mode).
    pub fn in_flight(&self, con: &mut Connection) -> RedisResult<Vec<Vec<u8>>> {
        match self.mode {
            RedisMode::Pcapdj => Ok(Vec::new()),
            RedisMode::Reliable => redis::cmd("LRANGE")
                .arg(&self.keys.processing)
                .arg(0)
                .arg(-1)
                .query(con),
        }
    }

    /// `name` was authorized and is being streamed.
    pub fn started(&self, con: &mut Connection, name: &[u8]) -> RedisResult<()> {
        redis::cmd("SADD")
            .arg(&self.keys.active)
            .arg(name)
            .exec(con)
    }

    /// `name` was streamed completely: PROCESSED (pcapdj) or DONE (reliable).
    pub fn completed(&self, con: &mut Connection, name: &[u8]) -> RedisResult<()> {
        match self.mode {
            RedisMode::Pcapdj => self.record(con, &self.keys.processed, name, name),
            RedisMode::Reliable => self.record(con, &self.keys.done, name, name),
        }
    }

    /// `name` could not be streamed (completely): its JSON record goes to FAILED.
    pub fn failed(&self, con: &mut Connection, name: &[u8], record: &str) -> RedisResult<()> {
        self.record(con, &self.keys.failed, name, record.as_bytes())
    }

    fn record(
        &self,
        con: &mut Connection,
        list: &str,
        name: &[u8],
        value: &[u8],
    ) -> RedisResult<()> {
        match self.mode {
            RedisMode::Pcapdj => redis::pipe()
                .atomic()
                .cmd("RPUSH")
                .arg(list)
                .arg(value)
                .cmd("SREM")
                .arg(&self.keys.active)
                .arg(name)
                .exec(con),
            RedisMode::Reliable => redis::cmd("EVAL")
                .arg(FINISH_RELIABLE)
                .arg(3)
                .arg(&self.keys.processing)
                .arg(list)
                .arg(&self.keys.active)
                .arg(name)
                .arg(value)
                .exec(con),
        }
    }

    /// Puts files taken but not finished back at the head of the queue, in their order (pcapdj
    /// mode; in reliable mode they stay in the processing list for the next run).
    pub fn give_back(&self, con: &mut Connection, names: &[Vec<u8>]) -> RedisResult<()> {
        if names.is_empty() || self.mode == RedisMode::Reliable {
            return Ok(());
        }
        let mut cmd = redis::cmd("LPUSH");
        cmd.arg(&self.keys.in_queue);
        for n in names.iter().rev() {
            cmd.arg(n);
        }
        cmd.exec(con)
    }

    /// Appends files to the queue (importer side).
    pub fn enqueue(&self, con: &mut Connection, names: &[Vec<u8>]) -> RedisResult<()> {
        for chunk in names.chunks(1000) {
            redis::cmd("RPUSH")
                .arg(&self.keys.in_queue)
                .arg(chunk)
                .exec(con)?;
        }
        Ok(())
    }

    /// Moves every failed file back to the end of the queue; returns how many.
    pub fn requeue_failed(&self, con: &mut Connection) -> RedisResult<u64> {
        redis::cmd("EVAL")
            .arg(REQUEUE_FAILED)
            .arg(2)
            .arg(&self.keys.failed)
            .arg(&self.keys.in_queue)
            .query(con)
    }
}
