//! A Redis connection that survives Redis trouble: a call that meets a dropped connection, a refused
//! one, a timeout or a server still loading its data reconnects and retries with backoff, logging
//! once when Redis goes away and once when it is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Connection, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, RedisResult,
};

use super::RedisConfig;
use crate::error::{Error, Result};

/// First pause after a failure; doubled at each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Connection set-up limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply slower than this counts as a lost connection (a peer gone without a reset).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pauses are cut into slices this long to notice a stop.
const SLICE: Duration = Duration::from_millis(20);

/// Where connections come from: one server, or the master that Sentinels name.
enum Target {
    Direct(Client),
    Sentinel(Box<SentinelClient>),
}

/// A connection to one Redis server, reopened as needed (with Sentinel: to the master of the
/// moment, asked of the Sentinels at each reconnection).
pub struct Link {
    client: Target,
    con: Option<Connection>,
    /// The URL without its password, for messages.
    shown: String,
    down_since: Option<Instant>,
    /// When the last attempt failed.
    failed_at: Option<Instant>,
    backoff: Duration,
    /// Redis has answered once: from then on refused credentials are an outage, not a usage error.
    answered: bool,
}

impl Link {
    /// Connects and checks the server answers. A bad URL or refused credentials are usage errors
    /// (exit 2); an unreachable server is waited for, with backoff, until `stop` is set.
    pub fn open(args: &RedisConfig, stop: &AtomicBool) -> Result<Link> {
        let mut link = Link::new(args)?;
        match link.retry(Some(stop), ping)? {
            Some(_) => Ok(link),
            None => Err(Error::runtime(format!(
                "stopped while waiting for Redis at {}",
                link.shown
            ))),
        }
    }

    /// Like [`Link::open`], but an unreachable server is a runtime error (exit 1) at once.
    pub fn open_now(args: &RedisConfig) -> Result<Link> {
        let mut link = Link::new(args)?;
        match link.connection().and_then(ping) {
            Ok(_) => {
                link.answered = true;
                Ok(link)
            }
            Err(e) if is_auth_refusal(&e) => Err(Error::usage(format!(
                "Redis at {}: {}",
                link.shown,
                describe(&e)
            ))),
            Err(e) => Err(Error::runtime(format!(
                "Redis at {}: {e}; start it or check --redis",
                link.shown
            ))),
        }
    }

    fn new(args: &RedisConfig) -> Result<Link> {
        let shown = redact(&args.url);
        let bad = |e: RedisError| Error::usage(format!("--redis {shown}: {e}"));
        if let Some(rest) = args.url.strip_prefix(SENTINEL_SCHEME) {
            let client = sentinel_client(rest, args.password.as_deref())
                .map_err(|e| Error::usage(format!("{shown}: {e}")))?;
            return Ok(Link::with(Target::Sentinel(Box::new(client)), shown));
        }
        let mut info = args.url.as_str().into_connection_info().map_err(bad)?;
        if let Some(password) = &args.password {
            info.redis.password = Some(password.clone());
        }
        let client = match &args.ca {
            None => Client::open(info).map_err(bad)?,
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|e| {
                    Error::usage(format!("--redis-ca {}: cannot read: {e}", ca.display()))
                })?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                Client::build_with_tls(info, certs).map_err(bad)?
            }
        };
        Ok(Link::with(Target::Direct(client), shown))
    }

    fn with(client: Target, shown: String) -> Link {
        Link {
            client,
            con: None,
            shown,
            down_since: None,
            failed_at: None,
            backoff: MIN_BACKOFF,
            answered: false,
        }
    }

    /// The server's URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// True while Redis is unreachable.
    pub fn is_down(&self) -> bool {
        self.down_since.is_some()
    }

    /// False while Redis is down and the backoff since the last failed attempt has not passed:
    /// callers that must not stall (the streaming loop) skip their attempt then.
    pub fn is_due(&self) -> bool {
        self.failed_at.is_none_or(|t| t.elapsed() >= self.backoff)
    }

    /// How long to pause before the next attempt (short while Redis answers).
    pub fn pause(&self) -> Duration {
        if self.is_down() {
            self.backoff
        } else {
            MIN_BACKOFF
        }
    }

    /// One attempt. `Ok(None)`: Redis is unreachable or busy now (logged once per outage); try
    /// again later. A command error (wrong key type, bad script) is a runtime error; credentials
    /// refused before Redis ever answered are a usage error.
    pub fn attempt<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<Option<T>> {
        let result = match self.connection() {
            Ok(con) => f(con),
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => {
                if let Some(since) = self.down_since.take() {
                    log::warn!(
                        "Redis at {} is back after {:.1}s; carrying on",
                        self.shown,
                        since.elapsed().as_secs_f64()
                    );
                }
                self.backoff = MIN_BACKOFF;
                self.failed_at = None;
                self.answered = true;
                Ok(Some(v))
            }
            Err(e) if is_auth_refusal(&e) && !self.answered => Err(Error::usage(format!(
                "Redis at {}: {}",
                self.shown,
                describe(&e)
            ))),
            Err(e) if is_transient(&e) => {
                self.con = None;
                self.failed_at = Some(Instant::now());
                if self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                    log::warn!(
                        "Redis at {} is unreachable ({}); every file stays where it is while \
                         shardcap retries with backoff (up to {}s)",
                        self.shown,
                        describe(&e),
                        MAX_BACKOFF.as_secs()
                    );
                } else {
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
                Ok(None)
            }
            Err(e) => Err(Error::runtime(format!(
                "Redis at {}: {} (check the keys' types and the server)",
                self.shown,
                describe(&e)
            ))),
        }
    }

    /// Attempts until Redis answers. `Ok(None)`: `stop` was set before it did.
    pub fn retry<T>(
        &mut self,
        stop: Option<&AtomicBool>,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<Option<T>> {
        loop {
            if let Some(v) = self.attempt(&mut f)? {
                return Ok(Some(v));
            }
            if !pause(self.backoff, || {
                stop.is_some_and(|s| s.load(Ordering::SeqCst))
            }) {
                return Ok(None);
            }
        }
    }

    fn connection(&mut self) -> RedisResult<&mut Connection> {
        if self.con.is_none() {
            let con = match &mut self.client {
                Target::Direct(c) => c.get_connection_with_timeout(CONNECT_TIMEOUT)?,
                Target::Sentinel(s) => s.get_connection()?,
            };
            con.set_read_timeout(Some(REPLY_TIMEOUT))?;
            con.set_write_timeout(Some(REPLY_TIMEOUT))?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("just connected"))
    }
}

/// The scheme of a Redis reached through Sentinel:
/// `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]`.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// A client of the master named in a Sentinel URL (after its scheme); `password` (or the URL's)
/// is the master's.
fn sentinel_client(
    rest: &str,
    password: Option<&str>,
) -> std::result::Result<SentinelClient, String> {
    let (auth, rest) = match rest.split_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let url_password = auth.and_then(|a| a.split_once(':')).map(|(_, p)| p);
    let (hosts, path) = rest
        .split_once('/')
        .ok_or("no master name: redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]")?;
    let (master, db) = match path.split_once('/') {
        Some((m, db)) => (
            m,
            Some(
                db.parse::<i64>()
                    .map_err(|_| format!("bad database {db:?}"))?,
            ),
        ),
        None => (path, None),
    };
    if master.is_empty() {
        return Err("no master name after the Sentinel addresses".into());
    }
    let mut sentinels = Vec::new();
    for h in hosts.split(',') {
        let (host, port) = match h.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse().map_err(|_| format!("bad port in {h:?}"))?,
            ),
            None => (h, 26379),
        };
        sentinels.push(ConnectionAddr::Tcp(host.to_string(), port));
    }
    let mut b =
        SentinelClientBuilder::new(sentinels, master.to_string(), SentinelServerType::Master)
            .map_err(|e| e.to_string())?;
    if let Some(p) = password.or(url_password) {
        b = b.set_client_to_redis_password(p.to_string());
    }
    if let Some(db) = db {
        b = b.set_client_to_redis_db(db);
    }
    b.build().map_err(|e| e.to_string())
}

fn ping(con: &mut Connection) -> RedisResult<String> {
    redis::cmd("PING").query(con)
}

/// Sleeps `d` in slices; returns false as soon as `interrupted()` says so.
pub fn pause(d: Duration, interrupted: impl Fn() -> bool) -> bool {
    let until = Instant::now() + d;
    loop {
        if interrupted() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        thread::sleep(SLICE.min(until - now));
    }
}

/// Errors that pass: the connection, a timeout, a server loading or failing over, and refused
/// credentials (a password being changed). Wrong key types and script errors do not pass.
fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::MasterDown
                | ErrorKind::ClusterDown
                | ErrorKind::ReadOnly
        )
        || is_auth_refusal(e)
}

/// The server refused the credentials (or asks for some).
fn is_auth_refusal(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// An error with a hint where the hint is clear.
fn describe(e: &RedisError) -> String {
    if is_auth_refusal(e) {
        format!("{e}: authentication failed; check the Redis password (--redis URL, SHARDCAP_REDIS_PASSWORD or --redis-password-file)")
    } else {
        e.to_string()
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let host_start = rest.find('/').unwrap_or(rest.len());
    match rest[..host_start].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{masked}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        assert!(sentinel_client("127.0.0.1:26379,10.0.0.2/main/2", Some("pw")).is_ok());
        assert!(sentinel_client(":pw@s1:26379/main", None).is_ok());
        let Err(no_master) = sentinel_client("s1:26379", None) else {
            panic!("a URL without a master name was taken")
        };
        assert!(no_master.contains("no master name"), "{no_master}");
        assert!(sentinel_client("s1:x/main", None).is_err());
        assert!(sentinel_client("s1/main/db", None).is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("rediss://u:pw@h"), "rediss://u:***@h");
        assert_eq!(redact("redis://pw@h"), "redis://***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
