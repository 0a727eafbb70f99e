//! Files from a Redis queue, each read only once a controller has authorized it (pcapdj's protocol).
//!
//! `--order given` is pcapdj: one file at a time, taken when the previous one is done. `--order time`
//! takes every queued file and hands them to the merge in batches: a batch opens at the start, or
//! when a file is taken while none is open, and is handed over `--redis-window` later with whatever
//! was queued meanwhile, so files queued within the window of each other are merged by packet time.
//! Either way the run ends once the queue is empty and every file taken is done, as pcapdj's does.
//!
//! Waiting for an authorization polls AUTH every 100 ms (pcapdj's interval): keyspace notifications
//! are off by default in Redis and pcapdj controllers do not publish anything.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::failed::FailedFile;
use super::gate;
use super::keys::Keys;
use super::link::{self, Link};
use super::queue::Queue;
use super::{RedisConfig, RedisMode};
use crate::control::signals::Signals;
use crate::error::Result;
use crate::input::catalog::{Entry, Rejected};
use crate::input::discover::Candidate;
use crate::input::intake::{Arrivals, Gate, Intake};
use crate::input::FileEnd;
use crate::merge::Order;

/// Most files taken in one round trip.
const TAKE_BATCH: usize = 10_000;

/// How far a file handed to the merge has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// In the merge, not reached yet.
    Handed,
    /// Announced in NEXT, waiting for its authorization.
    Announced,
    /// Authorized and being streamed.
    Streaming,
}

/// A file handed to the merge: when it was taken (to give files back in order) and how far it got.
#[derive(Debug, Clone, Copy)]
struct Job {
    taken: u64,
    stage: Stage,
}

/// The Redis queue and authorization gate as an [`Intake`].
pub struct RedisIntake {
    link: Link,
    queue: Queue,
    order: Order,
    window: Duration,
    signals: Signals,
    /// Files taken and not handed to the merge yet, with their take number.
    held: VecDeque<(u64, Vec<u8>)>,
    /// When the held batch goes to the merge (time order).
    release_at: Option<Instant>,
    /// Files in the merge, by name (a name queued twice has two jobs).
    jobs: HashMap<Vec<u8>, Vec<Job>>,
    taken: u64,
    /// The last take found the queue empty.
    drained: bool,
    /// Files that cannot be read are announced and authorized too, as pcapdj does.
    announce_all: bool,
}

impl RedisIntake {
    /// Connects, marks the dispatcher RUNNING, and in reliable mode takes back the files an
    /// earlier run of this instance left in flight (they come first).
    pub fn connect(
        args: &RedisConfig,
        mode: RedisMode,
        order: Order,
        window: Duration,
        announce_all: bool,
        signals: &Signals,
    ) -> Result<Self> {
        let link = Link::open(args, &signals.stop)?;
        let queue = Queue::new(Keys::new(args), mode);
        let mut intake = RedisIntake {
            link,
            queue,
            order,
            window,
            signals: signals.clone(),
            held: VecDeque::new(),
            release_at: None,
            jobs: HashMap::new(),
            taken: 0,
            drained: false,
            announce_all,
        };
        if order == Order::Time {
            // The first batch opens now: files queued within the window of the start join it.
            intake.release_at = Some(Instant::now() + window);
        }
        let (q, keys) = (&intake.queue, &intake.queue.keys);
        let resumed = intake
            .link
            .retry(Some(&signals.stop), |c| {
                redis::pipe()
                    .cmd("DEL")
                    .arg(&keys.active)
                    .cmd("SET")
                    .arg(&keys.state)
                    .arg("RUNNING")
                    .exec(c)?;
                q.in_flight(c)
            })?
            .unwrap_or_default();
        if !resumed.is_empty() {
            log::warn!(
                "{} files left in {} by an earlier run are taken again first (from their start, or \
                 from the journal's checkpoint with --state)",
                resumed.len(),
                keys.processing
            );
        }
        log::info!(
            "taking files from {} at {} ({} mode), authorization in {}",
            keys.in_queue,
            intake.link.shown(),
            match mode {
                RedisMode::Pcapdj => "pcapdj",
                RedisMode::Reliable => "reliable",
            },
            keys.auth
        );
        intake.hold(resumed);
        Ok(intake)
    }

    fn hold(&mut self, names: Vec<Vec<u8>>) {
        if names.is_empty() {
            return;
        }
        if self.order == Order::Time && self.release_at.is_none() {
            self.release_at = Some(Instant::now() + self.window);
        }
        for n in names {
            self.held.push_back((self.taken, n));
            self.taken += 1;
        }
    }

    /// Takes what the order allows: in given order the next file once the previous is done, in
    /// time order everything queued. Redis trouble leaves the queue as it is (logged by the link).
    fn take(&mut self) -> Result<()> {
        let max = match self.order {
            Order::Given if !self.jobs.is_empty() || !self.held.is_empty() => return Ok(()),
            Order::Given => 1,
            Order::Time => TAKE_BATCH,
        };
        if !self.link.is_due() {
            return Ok(());
        }
        if let Some(names) = self.link.attempt(|c| self.queue.take(c, max))? {
            self.drained = names.len() < max;
            self.hold(names);
        }
        Ok(())
    }

    /// Hands held files to the merge when due: in given order one at a time, in time order the
    /// whole batch once its window has passed.
    fn release(&mut self) -> Option<Vec<Candidate>> {
        let n = match self.order {
            Order::Given if self.jobs.is_empty() => 1,
            Order::Time if self.release_at.is_some_and(|t| Instant::now() >= t) => {
                self.release_at = None;
                self.held.len()
            }
            _ => return None,
        };
        if self.held.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for (taken, name) in self.held.drain(..n) {
            self.jobs.entry(name.clone()).or_default().push(Job {
                taken,
                stage: Stage::Handed,
            });
            out.push(Candidate {
                path: path_of(name),
                explicit: true,
            });
        }
        Some(out)
    }

    /// The job of `name` furthest along (the one the merge is dealing with).
    fn job(&mut self, name: &[u8]) -> Option<&mut Job> {
        self.jobs
            .get_mut(name)
            .and_then(|v| v.iter_mut().max_by_key(|j| j.stage))
    }

    /// Forgets the job of `name` furthest along.
    fn remove_job(&mut self, name: &[u8]) {
        let Some(jobs) = self.jobs.get_mut(name) else {
            return;
        };
        if let Some(i) = (0..jobs.len()).max_by_key(|&i| jobs[i].stage) {
            jobs.swap_remove(i);
        }
        if jobs.is_empty() {
            self.jobs.remove(name);
        }
    }

    /// Records a failure in FAILED.
    fn fail(&mut self, name: &[u8], reason: String, offset: u64) -> Result<()> {
        let json = FailedFile {
            file: String::from_utf8_lossy(name).into_owned(),
            reason,
            offset,
        }
        .to_json();
        log::warn!(
            "{}: recorded in {}",
            String::from_utf8_lossy(name),
            self.queue.keys.failed
        );
        record(&mut self.link, &self.signals, "a failed file", |c| {
            self.queue.failed(c, name, &json)
        })
    }

    /// Sets the STATE key if Redis answers now; it only informs controllers.
    fn show_state(&mut self, state: &str) -> Result<()> {
        let key = &self.queue.keys.state;
        self.link
            .attempt(|c| redis::cmd("SET").arg(key).arg(state).exec(c))
            .map(drop)
    }

    fn stopping(&self) -> bool {
        self.signals.stop.load(Ordering::SeqCst)
    }
}

impl Intake for RedisIntake {
    fn poll(&mut self, wait: Option<Duration>, _signals: &Signals) -> Result<Arrivals> {
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            if self.stopping() {
                return Ok(Arrivals::Nothing);
            }
            self.take()?;
            if let Some(files) = self.release() {
                return Ok(Arrivals::Files(files));
            }
            let idle = self.held.is_empty() && self.jobs.is_empty() && self.release_at.is_none();
            if self.drained && idle {
                return Ok(Arrivals::Closed);
            }
            let now = Instant::now();
            let Some(deadline) = deadline.filter(|&d| d > now) else {
                return Ok(Arrivals::Nothing);
            };
            let mut until = (now + self.link.pause()).min(deadline);
            if let Some(r) = self.release_at {
                until = until.min(r);
            }
            link::pause(until.saturating_duration_since(now), || self.stopping());
        }
    }

    fn authorize(&mut self, entry: &Entry, signals: &Signals) -> Result<Gate> {
        self.gate(&entry.path, signals)
    }

    fn rejected(&mut self, why: &Rejected) -> Result<()> {
        let (path, reason, offset) = match why {
            Rejected::NotCapture { path, .. } => (
                path,
                "not a pcap or pcapng capture (by content)".to_string(),
                0,
            ),
            Rejected::Unreadable { path, error } => (path, error.message.clone(), error.offset),
        };
        let name = name_of(path);
        if self.announce_all {
            let signals = self.signals.clone();
            while self.gate(path, &signals)? == Gate::NotYet {
                if self.stopping() {
                    // Not authorized yet: given back by `close` with the files not started.
                    return Ok(());
                }
            }
        }
        self.remove_job(&name);
        self.fail(&name, reason, offset)
    }

    fn finished(&mut self, entry: &Entry, end: &FileEnd) -> Result<()> {
        let name = name_of(&entry.path);
        let Some(stage) = self.job(&name).map(|j| j.stage) else {
            return Ok(());
        };
        if matches!(end, FileEnd::Skipped(_)) && stage < Stage::Streaming && self.stopping() {
            // Not started: `close` gives it back with the others, in the order they were taken
            // (given back now, it would land behind the files taken after it).
            return Ok(());
        }
        self.remove_job(&name);
        let q = &self.queue;
        match end {
            FileEnd::Complete => record(&mut self.link, &self.signals, "a finished file", |c| {
                q.completed(c, &name)
            }),
            FileEnd::Damaged(e) => self.fail(&name, e.message.clone(), e.offset),
            FileEnd::Skipped(why) => self.fail(&name, why.clone(), 0),
        }
    }

    fn close(&mut self, stopped: bool) -> Result<()> {
        RedisIntake::close(self, stopped)
    }
}

impl RedisIntake {
    /// Announces the file at `path` when it comes first, then looks whether it is authorized.
    fn gate(&mut self, path: &Path, signals: &Signals) -> Result<Gate> {
        let name = name_of(path);
        let Some(stage) = self.job(&name).map(|j| j.stage) else {
            return Ok(Gate::Open);
        };
        let (keys, stop) = (&self.queue.keys, &self.signals.stop);
        if stage == Stage::Handed {
            let announced = self
                .link
                .retry(Some(stop), |c| gate::announce(c, &keys.next, &name))?;
            if announced.is_none() {
                return Ok(Gate::NotYet);
            }
            if let Some(j) = self.job(&name) {
                j.stage = Stage::Announced;
            }
            log::info!(
                "{}: announced in {}, waiting for its authorization in {}",
                path.display(),
                self.queue.keys.next,
                self.queue.keys.auth
            );
            self.show_state("WAITING")?;
        } else {
            link::pause(self.link.pause(), || {
                signals.stop.load(Ordering::SeqCst) || signals.stats.load(Ordering::SeqCst)
            });
        }
        let (q, stop) = (&self.queue, &self.signals.stop);
        if self
            .link
            .attempt(|c| gate::is_authorized(c, &q.keys.auth, &name))?
            != Some(true)
        {
            return Ok(Gate::NotYet);
        }
        let consumed = self.link.retry(Some(stop), |c| {
            gate::consume(c, &q.keys.auth, &name)?;
            q.started(c, &name)
        })?;
        if consumed.is_none() {
            return Ok(Gate::NotYet);
        }
        if let Some(j) = self.job(&name) {
            j.stage = Stage::Streaming;
        }
        log::info!("{}: authorized", path.display());
        self.show_state("RUNNING")?;
        Ok(Gate::Open)
    }

    /// Records the run's end: DONE, or STOPPED with the files not finished given back.
    fn close(&mut self, stopped: bool) -> Result<()> {
        let (q, keys) = (&self.queue, &self.queue.keys);
        if !stopped {
            record(&mut self.link, &self.signals, "the end of the run", |c| {
                redis::pipe()
                    .cmd("SET")
                    .arg(&keys.state)
                    .arg("DONE")
                    .cmd("DEL")
                    .arg(&keys.next)
                    .cmd("DEL")
                    .arg(&keys.active)
                    .exec(c)
            })?;
            log::info!("{} is DONE", keys.state);
            return Ok(());
        }
        let mut left: Vec<(u64, Vec<u8>)> = self.held.drain(..).collect();
        for (name, jobs) in self.jobs.drain() {
            left.extend(jobs.iter().map(|j| (j.taken, name.clone())));
        }
        left.sort();
        let names: Vec<Vec<u8>> = left.into_iter().map(|(_, n)| n).collect();
        record(
            &mut self.link,
            &self.signals,
            "the files not finished",
            |c| {
                let mut p = redis::pipe();
                for n in &names {
                    p.cmd("LREM").arg(&keys.next).arg(0).arg(n);
                }
                p.cmd("SET")
                    .arg(&keys.state)
                    .arg("STOPPED")
                    .cmd("DEL")
                    .arg(&keys.active)
                    .exec(c)?;
                q.give_back(c, &names)
            },
        )?;
        if !names.is_empty() {
            match self.queue.mode {
                RedisMode::Pcapdj => log::warn!(
                    "{} files not finished went back to the head of {} (one partly streamed is \
                     streamed again from its start, or resumed with --state)",
                    names.len(),
                    keys.in_queue
                ),
                RedisMode::Reliable => log::warn!(
                    "{} files not finished stay in {}; the next run of this instance takes them first",
                    names.len(),
                    keys.processing
                ),
            }
        }
        Ok(())
    }
}

/// Retries until Redis answers, even through a stop: results must not be lost (a second stop
/// signal still exits at once).
fn record(
    link: &mut Link,
    signals: &Signals,
    what: &str,
    f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<()>,
) -> Result<()> {
    if signals.stop.load(Ordering::SeqCst) && link.is_down() {
        log::warn!("waiting for Redis to record {what}; a second stop signal exits without it");
    }
    link.retry(None, f).map(drop)
}

/// A queued name as a path (names are bytes; no encoding is assumed).
fn path_of(name: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(name))
}

/// A path as the name it was queued under.
fn name_of(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}
