//! pcapdj's authorization handshake. The dispatcher announces a file by RPUSH to NEXT; a controller
//! pops it and authorizes it in AUTH, either as a member of a set (SADD, current pcapdj) or as the
//! string value of the key (SET, older pcapdj and its published controller example); the dispatcher
//! consumes the authorization (SREM, or DEL while the string still names the file) and reads the file.

use redis::{Connection, RedisResult};

/// Removes an authorization in either form, atomically; a no-op when it is already gone.
const CONSUME: &str = r"
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'set' then return redis.call('SREM', KEYS[1], ARGV[1]) end
if t == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Announces `name` as the next file to read: RPUSH to NEXT.
pub fn announce(con: &mut Connection, next: &str, name: &[u8]) -> RedisResult<()> {
    redis::cmd("RPUSH").arg(next).arg(name).exec(con)
}

/// True when `name` is authorized, in either form. Reads only, so it can be retried freely.
pub fn is_authorized(con: &mut Connection, auth: &str, name: &[u8]) -> RedisResult<bool> {
    let kind: String = redis::cmd("TYPE").arg(auth).query(con)?;
    match kind.as_str() {
        "set" => redis::cmd("SISMEMBER").arg(auth).arg(name).query(con),
        "string" => {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(auth).query(con)?;
            Ok(v.as_deref() == Some(name))
        }
        _ => Ok(false),
    }
}

/// Consumes the authorization of `name` (idempotent: retrying after a lost reply is harmless).
pub fn consume(con: &mut Connection, auth: &str, name: &[u8]) -> RedisResult<()> {
    redis::cmd("EVAL")
        .arg(CONSUME)
        .arg(1)
        .arg(auth)
        .arg(name)
        .exec(con)
}

/// The controller's side: authorizes `name` (SADD, as current pcapdj expects).
pub fn grant(con: &mut Connection, auth: &str, name: &[u8]) -> RedisResult<()> {
    redis::cmd("SADD").arg(auth).arg(name).exec(con)
}

/// Names authorized and not yet consumed, in either form.
pub fn granted(con: &mut Connection, auth: &str) -> RedisResult<Vec<Vec<u8>>> {
    let kind: String = redis::cmd("TYPE").arg(auth).query(con)?;
    match kind.as_str() {
        "set" => redis::cmd("SMEMBERS").arg(auth).query(con),
        "string" => Ok(redis::cmd("GET")
            .arg(auth)
            .query::<Option<Vec<u8>>>(con)?
            .into_iter()
            .collect()),
        _ => Ok(Vec::new()),
    }
}
