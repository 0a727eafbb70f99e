//! `shardcap ctl`: the controller's side of the Redis queue. Enqueue captures in packet-time order,
//! authorize the files a dispatcher announces (once, or continuously while conditions hold), show
//! the queue and the dispatcher's state, and requeue failed files.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{AuthorizeArgs, CtlAction, CtlArgs, RangeArgs};
use crate::cluster::status as cluster_status;
use crate::cluster::{catalog as job_catalog, JobKeys};
use crate::control::redis::failed::FailedFile;
use crate::control::redis::gate;
use crate::control::redis::keys::Keys;
use crate::control::redis::link::{self, Link};
use crate::control::redis::queue::Queue;
use crate::control::redis::{RedisConfig, RedisMode};
use crate::control::signals::Signals;
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};
use crate::input::catalog::{self, Rejected};
use crate::input::discover;
use crate::input::span::SpanCache;

/// How long one blocking wait for an announcement lasts before conditions are looked at again
/// (whole seconds: Redis before 6.0 takes no fractional BLPOP timeout).
const ANNOUNCE_WAIT_S: u64 = 1;

/// Runs `shardcap ctl`; returns the exit code.
pub fn run(args: CtlArgs) -> Result<i32> {
    if let Some((redis, job)) = args.cluster() {
        return cluster(&redis, &job, args.action);
    }
    let redis = RedisConfig::from(&args.redis);
    let keys = Keys::new(&redis);
    match args.action {
        CtlAction::Enqueue { seal: true, .. } => Err(Error::usage(
            "--seal closes a dynamic-mode job's catalog: give --cluster URL --job NAME",
        )),
        CtlAction::Enqueue { paths, range, .. } => {
            enqueue(&mut Link::open_now(&redis)?, keys, &paths, &range)
        }
        CtlAction::Seal => Err(Error::usage(
            "ctl seal closes a dynamic-mode job's catalog: give --cluster URL --job NAME",
        )),
        CtlAction::Authorize(a) => {
            let signals = Signals::install()?;
            authorize(&mut Link::open_now(&redis)?, &keys, &a, &signals)
        }
        CtlAction::Status { json } => {
            let mut link = Link::open_now(&redis)?;
            let status = Status::read(&mut link, &keys)?;
            if json {
                println!("{}", serde_json::to_string(&status).expect("serialisable"));
            } else {
                status.print();
            }
            Ok(EXIT_OK)
        }
        CtlAction::RequeueFailed => {
            let mut link = Link::open_now(&redis)?;
            let queue = Queue::new(keys, RedisMode::Pcapdj);
            let n = once(&mut link, |c| queue.requeue_failed(c))?;
            println!(
                "requeued {n} failed files at the end of {}",
                queue.keys.in_queue
            );
            Ok(EXIT_OK)
        }
    }
}

/// `ctl --cluster URL --job NAME`: a dynamic-mode job's catalog and status.
fn cluster(redis: &RedisConfig, job: &str, action: CtlAction) -> Result<i32> {
    let keys = JobKeys::new(&redis.prefix, job);
    let mut link = Link::open_now(redis)?;
    match action {
        CtlAction::Enqueue { paths, range, seal } => {
            let (names, skipped) = captures(&paths, &range, false)?;
            let names: Vec<String> = (names.iter())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            if names.is_empty() {
                return Err(Error::usage(
                    "no capture among the paths given; nothing cataloged",
                ));
            }
            if let Some(bad) = names.iter().find(|n| n.contains('\n')) {
                return Err(Error::usage(format!(
                    "{bad:?}: a line break in a path cannot be cataloged"
                )));
            }
            match once(&mut link, |c| job_catalog::enqueue(c, &keys, &names))? {
                Some(n) => println!(
                    "cataloged {} files as batch {} of job {job}",
                    names.len(),
                    n - 1
                ),
                None => {
                    return Err(Error::usage(format!(
                        "job {job}: the catalog is sealed; nothing added"
                    )))
                }
            }
            if seal {
                let n = once(&mut link, |c| job_catalog::seal(c, &keys))?;
                println!("sealed the catalog of job {job} at {n} batches");
            }
            Ok(if skipped > 0 { EXIT_SKIPPED } else { EXIT_OK })
        }
        CtlAction::Seal => {
            let n = once(&mut link, |c| job_catalog::seal(c, &keys))?;
            println!("sealed the catalog of job {job} at {n} batches");
            Ok(EXIT_OK)
        }
        CtlAction::Status { json } => {
            let status = once(&mut link, |c| cluster_status::read(c, &keys, job))?;
            if json {
                println!("{}", serde_json::to_string(&status).expect("serialisable"));
            } else {
                status.print();
            }
            Ok(EXIT_OK)
        }
        CtlAction::Authorize(_) | CtlAction::RequeueFailed => Err(Error::usage(
            "with --cluster, ctl takes enqueue, seal and status",
        )),
    }
}

/// One call: Redis trouble is an error (the link already said what it is).
fn once<T>(
    link: &mut Link,
    f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
) -> Result<T> {
    link.attempt(f)?.ok_or_else(|| {
        Error::runtime(format!(
            "Redis at {} stopped answering; nothing was changed by the failed call",
            link.shown()
        ))
    })
}

/// The captures among `paths` (expanded as run's INPUTs) with packets in the range, as absolute
/// paths: by first packet time when `sorted`, else in the order expanded; and how many named
/// files were not captures or unreadable.
fn captures(paths: &[String], range: &RangeArgs, sorted: bool) -> Result<(Vec<Vec<u8>>, u64)> {
    let window = range.range()?;
    let mut spans = SpanCache::open(range.catalog_cache.as_deref())
        .map_err(|e| Error::usage(format!("--catalog-cache: {e}")))?;
    let candidates = discover::expand(paths)?;
    let mut entries = Vec::with_capacity(candidates.len());
    let mut skipped = 0;
    for (i, cand) in candidates.iter().enumerate() {
        match catalog::probe(i as u64, cand) {
            Ok(e) => entries.push(e),
            Err(Rejected::NotCapture {
                explicit: false, ..
            }) => {}
            Err(Rejected::NotCapture { path, .. }) => {
                log::warn!(
                    "{}: byte 0: not a pcap or pcapng capture (by content); not queued",
                    path.display()
                );
                skipped += 1;
            }
            Err(Rejected::Unreadable { path, error }) => {
                log::warn!("{}: {error}; not queued", path.display());
                skipped += 1;
            }
        }
    }
    let listed = entries.len();
    entries.retain(|e| spans.outside(&window, e).is_none());
    spans.save_or_warn();
    if entries.len() < listed {
        println!(
            "{} files wholly outside the time range not queued",
            listed - entries.len()
        );
    }
    if sorted {
        entries.sort_by_key(|e| (e.first_ts.unwrap_or(0), e.seq));
    }
    let mut names = Vec::with_capacity(entries.len());
    for e in &entries {
        let abs = std::path::absolute(&e.path)
            .map_err(|err| Error::usage(format!("{}: {err}", e.path.display())))?;
        names.push(abs.as_os_str().as_bytes().to_vec());
    }
    Ok((names, skipped))
}

/// Queues captures ordered by first packet time (files without packets first), as absolute paths;
/// with `--since`/`--until`, only those with packets in the range.
fn enqueue(link: &mut Link, keys: Keys, paths: &[String], range: &RangeArgs) -> Result<i32> {
    let (names, skipped) = captures(paths, range, true)?;
    let queue = Queue::new(keys, RedisMode::Pcapdj);
    once(link, |c| queue.enqueue(c, &names))?;
    println!(
        "queued {} files in {} (by first packet time)",
        names.len(),
        queue.keys.in_queue
    );
    Ok(if skipped > 0 { EXIT_SKIPPED } else { EXIT_OK })
}

/// Authorizes the next announced file once conditions hold; with `--watch`, every next file.
fn authorize(link: &mut Link, keys: &Keys, a: &AuthorizeArgs, signals: &Signals) -> Result<i32> {
    let stop = &signals.stop;
    let deadline = a.timeout.map(|t| Instant::now() + t);
    let mut holding: Option<String> = None;
    // A DONE left by an earlier run does not count: the dispatcher must be seen at work first.
    let mut seen_working = false;
    while !stop.load(Ordering::SeqCst) {
        if let Some(why) = link
            .retry(Some(stop), |c| hold_reason(c, keys, a))?
            .flatten()
        {
            if holding.as_deref() != Some(why.as_str()) {
                log::warn!("holding authorizations: {why}");
            }
            holding = Some(why);
            link::pause(Duration::from_secs(1), || stop.load(Ordering::SeqCst));
            continue;
        }
        if holding.take().is_some() {
            log::warn!("conditions hold again; authorizing");
        }
        let popped = link.retry(Some(stop), |c| {
            redis::cmd("BLPOP")
                .arg(&keys.next)
                .arg(ANNOUNCE_WAIT_S)
                .query::<Option<(String, Vec<u8>)>>(c)
        })?;
        match popped {
            None => break,
            Some(Some((_, name))) => {
                link.retry(None, |c| gate::grant(c, &keys.auth, &name))?;
                println!("authorized {}", OsStr::from_bytes(&name).to_string_lossy());
                seen_working = true;
                if !a.watch {
                    return Ok(EXIT_OK);
                }
            }
            Some(None) => {
                if a.until_done {
                    let state = link.retry(Some(stop), |c| {
                        redis::cmd("GET")
                            .arg(&keys.state)
                            .query::<Option<String>>(c)
                    })?;
                    let done = state.flatten().as_deref() == Some("DONE");
                    if done && seen_working {
                        println!("{} is DONE", keys.state);
                        return Ok(EXIT_OK);
                    }
                    seen_working |= !done;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::runtime(format!(
                        "no file was announced in {} within --timeout",
                        keys.next
                    )));
                }
            }
        }
    }
    if a.watch {
        Ok(EXIT_OK)
    } else {
        Err(Error::runtime("stopped before any file was authorized"))
    }
}

/// Why authorizations must wait now, if they must: too little free disk, or too many files
/// authorized and not finished (still in AUTH, or being streamed).
fn hold_reason(
    con: &mut redis::Connection,
    keys: &Keys,
    a: &AuthorizeArgs,
) -> redis::RedisResult<Option<String>> {
    if let (Some(min), Some(path)) = (a.min_free_disk, &a.path) {
        match nix::sys::statvfs::statvfs(path) {
            Ok(vfs) => {
                let free = vfs.blocks_available().saturating_mul(vfs.fragment_size());
                if free < min {
                    return Ok(Some(format!(
                        "{} free on {}, below --min-free-disk {}",
                        gib(free),
                        path.display(),
                        gib(min)
                    )));
                }
            }
            Err(e) => {
                return Ok(Some(format!(
                    "cannot read free space of {}: {e}",
                    path.display()
                )))
            }
        }
    }
    if let Some(k) = a.max_in_flight {
        let streaming: u64 = redis::cmd("SCARD").arg(&keys.active).query(con)?;
        let in_flight = streaming + gate::granted(con, &keys.auth)?.len() as u64;
        if in_flight >= k {
            return Ok(Some(format!(
                "{in_flight} files authorized and not finished, --max-in-flight {k}"
            )));
        }
    }
    Ok(None)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// What `ctl status` shows.
#[derive(Debug, Serialize)]
struct Status {
    redis: String,
    /// The dispatcher's STATE (RUNNING, WAITING, STOPPED, DONE), if set.
    state: Option<String>,
    /// Files waiting in the queue.
    queued: u64,
    /// Files announced and waiting for authorization.
    next: Vec<String>,
    /// Authorizations not consumed yet.
    authorized: Vec<String>,
    /// Files being streamed.
    streaming: Vec<String>,
    /// Reliable mode: files taken and not finished.
    processing: Vec<String>,
    processed: u64,
    done: u64,
    failed: Vec<FailedFile>,
}

impl Status {
    fn read(link: &mut Link, keys: &Keys) -> Result<Status> {
        type Reply = (
            Option<String>,
            u64,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            u64,
            u64,
            Vec<String>,
        );
        let (state, queued, next, streaming, processing, processed, done, failed) =
            once(link, |c| {
                redis::pipe()
                    .atomic()
                    .get(&keys.state)
                    .llen(&keys.in_queue)
                    .lrange(&keys.next, 0, -1)
                    .smembers(&keys.active)
                    .lrange(&keys.processing, 0, -1)
                    .llen(&keys.processed)
                    .llen(&keys.done)
                    .lrange(&keys.failed, 0, -1)
                    .query::<Reply>(c)
            })?;
        let authorized = once(link, |c| gate::granted(c, &keys.auth))?;
        let text = |v: Vec<Vec<u8>>| -> Vec<String> {
            v.iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect()
        };
        Ok(Status {
            redis: link.shown().to_string(),
            state,
            queued,
            next: text(next),
            authorized: text(authorized),
            streaming: text(streaming),
            processing: text(processing),
            processed,
            done,
            failed: failed.iter().map(|f| FailedFile::parse(f)).collect(),
        })
    }

    fn print(&self) {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        println!("redis       {}", self.redis);
        println!("state       {}", self.state.as_deref().unwrap_or("-"));
        println!("queued      {}", self.queued);
        println!("next        {}", list(&self.next));
        println!("authorized  {}", list(&self.authorized));
        println!("streaming   {}", list(&self.streaming));
        println!("processing  {}", list(&self.processing));
        println!("processed   {}", self.processed);
        println!("done        {}", self.done);
        println!("failed      {}", self.failed.len());
        for f in &self.failed {
            println!("  {}: byte {}: {}", f.file, f.offset, f.reason);
        }
    }
}
