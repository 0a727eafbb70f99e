//! Supervision of the shard consumers: each started when its shard gets its first packet (a shard
//! without packets starts none) and waited for until ready, a death while streaming noticed (the run fails naming the shard, its exit status and its log), or,
//! with `--ids-restart`, the consumer restarted and its shard resumed at the next file boundary with
//! a fresh header; at the end every consumer waited for until it has written its logs.

use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::Signal;
use nix::sys::time::TimeVal;
use signal_hook::consts::SIGCHLD;
use signal_hook::SigId;

use super::consumer::{Consumer, ConsumerSpec, Ending, Exit, Readiness};
use super::guarded::{GuardedOutput, Losses};
use super::zeek_cluster::ZeekCluster;
use crate::error::{Error, Result};
use crate::sink::deferred::DeferredOutput;
use crate::sink::fifo::FifoOutput;
use crate::sink::output::Output;
use crate::sink::writer::ShardWriter;
use crate::sink::OutputSpec;
use shardcap_capture::format::StreamHeader;

/// How long consumers get to finish after their input ended, before SIGTERM.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a consumer gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(10);
/// Restarts of one shard's consumer before the run gives up.
pub const MAX_RESTARTS: u32 = 5;
/// How often waits look at the consumers.
const POLL: Duration = Duration::from_millis(20);

/// One shard's consumer and its history.
struct Slot {
    spec: ConsumerSpec,
    consumer: Option<Consumer>,
    restarts: u32,
    /// With `--ids-restart`: what the shard's guarded output dropped.
    losses: Option<Arc<Losses>>,
    /// Its consumer died; a restart is due at the next file boundary.
    down: bool,
}

/// A slot is shared with its shard's writer thread, which starts the consumer when the shard's
/// first packet comes.
type SharedSlot = Arc<Mutex<Slot>>;

/// The slot, whatever a panicking holder left (its fields stay consistent between statements).
fn lock(slot: &SharedSlot) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// The consumers of a run (none without `--ids`/`--exec`).
pub struct Consumers {
    slots: Vec<SharedSlot>,
    restart: bool,
    /// Set on SIGCHLD: some child ended.
    exited: Arc<AtomicBool>,
    sigchld: Vec<SigId>,
    /// A shard waits for the next file boundary to resume.
    resume_due: bool,
    /// Packets dropped because their consumer had died.
    pub lost_packets: u64,
    /// A consumer's end was already reported as the run's error.
    reported: bool,
    /// With `--ids zeek-cluster`: the manager, logger and proxy, started first and stopped last.
    cluster: Option<ZeekCluster>,
}

/// How one shard's consumer ended the run, for the summary and the packet accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The shard got no packet, so no consumer was started.
    NotStarted,
    /// The consumer finished; it reports having seen this many packets (when it tells).
    Finished(Option<u64>),
}

impl Consumers {
    /// Consumers from their specs, one a shard in shard order.
    pub fn new(specs: Vec<ConsumerSpec>, restart: bool) -> Self {
        let slots = specs
            .into_iter()
            .map(|spec| {
                Arc::new(Mutex::new(Slot {
                    spec,
                    consumer: None,
                    restarts: 0,
                    losses: None,
                    down: false,
                }))
            })
            .collect();
        Consumers {
            slots,
            restart,
            exited: Arc::new(AtomicBool::new(false)),
            sigchld: Vec::new(),
            resume_due: false,
            lost_packets: 0,
            reported: false,
            cluster: None,
        }
    }

    /// The same consumers as the workers of `cluster`.
    pub fn with_cluster(mut self, cluster: Option<ZeekCluster>) -> Self {
        self.cluster = cluster;
        self
    }

    /// No consumers: every call is a no-op.
    pub fn none() -> Self {
        Self::new(Vec::new(), false)
    }

    /// True when the run has consumers.
    pub fn any(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Watches for consumers ending (once): an end then also raises `attention`, so the
    /// dispatcher looks at the consumers without delay; starts a Zeek cluster's manager, logger
    /// and proxy. The consumers themselves start when their shard's first packet comes (see
    /// [`Consumers::open_outputs`]).
    pub fn start(&mut self, attention: &Arc<AtomicBool>) -> Result<()> {
        if self.slots.is_empty() || !self.sigchld.is_empty() {
            return Ok(());
        }
        if let Some(c) = self.cluster.as_mut() {
            c.start()?;
        }
        for flag in [&self.exited, attention] {
            let id = signal_hook::flag::register(SIGCHLD, flag.clone())
                .map_err(|e| Error::runtime(format!("cannot watch consumers (SIGCHLD): {e}")))?;
            self.sigchld.push(id);
        }
        Ok(())
    }

    /// The shard outputs, each opened only when its shard's first packet comes: then, on the
    /// shard's writer thread, its consumer is started, the output opened with `open(k, stop)` (a
    /// consumer that ends before its FIFO is open cuts the wait short, and the error names it),
    /// and a consumer with another readiness check (a control socket) waited for. A shard that
    /// never gets a packet starts no consumer. With `--ids-restart` the outputs are guarded so
    /// that a consumer's death does not fail the run.
    pub fn open_outputs(
        &mut self,
        shards: usize,
        stop: &Arc<AtomicBool>,
        open: impl Fn(usize, &AtomicBool) -> Result<Box<dyn Output>> + Send + Sync + 'static,
    ) -> Vec<Box<dyn Output>> {
        let open = Arc::new(open);
        let mut outs = Vec::with_capacity(shards);
        for (k, slot) in self.slots.iter().enumerate().take(shards) {
            let (slot_for_open, stop, open) = (slot.clone(), stop.clone(), open.clone());
            let opener = Box::new(move || {
                start_and_open(&slot_for_open, &stop, |abort| open(k, abort))
                    .map_err(|e| io::Error::other(e.to_string()))
            });
            let mut out: Box<dyn Output> =
                Box::new(DeferredOutput::new(format!("shard {k}"), opener));
            if self.restart {
                let (guarded, losses) = GuardedOutput::new(out);
                lock(slot).losses = Some(losses);
                out = Box::new(guarded);
            }
            outs.push(out);
        }
        outs
    }

    /// Looks at the consumers (cheap unless one ended): a consumer that ended while streaming fails
    /// the run, or, with `--ids-restart`, is restarted now (spool input: its segments wait for it)
    /// or at the next file boundary (FIFO input: its packets are dropped until then).
    pub fn check(&mut self) -> Result<()> {
        if !self.exited.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        if !self.restart {
            return self.fail_on_death("while streaming");
        }
        for slot in &self.slots {
            let mut guard = lock(slot);
            let slot = &mut *guard;
            let Some(c) = slot.consumer.as_mut() else {
                continue;
            };
            let Some(exit) = c.try_wait()? else { continue };
            if slot.restarts >= MAX_RESTARTS {
                return Err(Error::runtime(format!(
                    "{}; it was restarted {MAX_RESTARTS} times already, giving up",
                    c.describe_exit(exit, "while streaming")
                )));
            }
            log::warn!("{}", c.describe_exit(exit, "while streaming"));
            slot.consumer = None;
            if slot.spec.ready == Readiness::OpenedFifo {
                log::warn!(
                    "shard {}: dropping its packets until the next input file begins, then \
                     restarting {}",
                    slot.spec.shard,
                    slot.spec.name
                );
                // Nothing more reaches the FIFO: what a restarted reader gets starts with a header.
                if let Some(losses) = &slot.losses {
                    losses.gone.store(true, Ordering::SeqCst);
                }
                slot.down = true;
            } else {
                restart(slot)?;
            }
        }
        Ok(())
    }

    /// Called when the merge opens an input file: a shard whose consumer died resumes here.
    pub fn at_file_boundary(&mut self) {
        self.resume_due = self.slots.iter().any(|s| lock(s).down);
    }

    /// True when a shard is to resume before the next packet (checked once a packet: inlined).
    #[inline(always)]
    pub fn resume_due(&self) -> bool {
        self.resume_due
    }

    /// At a file boundary: restarts the consumers that died (FIFO-fed ones: a spool reader is
    /// restarted at once) and resumes their shards on their FIFOs with a fresh stream header;
    /// reports the packets each lost.
    pub fn resume(
        &mut self,
        writers: &mut [ShardWriter],
        spec: &OutputSpec,
        header: StreamHeader,
        stop: &AtomicBool,
    ) -> Result<()> {
        self.resume_due = false;
        for (k, writer) in writers.iter_mut().enumerate().take(self.slots.len()) {
            if !lock(&self.slots[k]).down {
                continue;
            }
            // Every buffer queued for the dead consumer is dropped, and so is what it left unread
            // in the pipe; then the restarted consumer reads a fresh stream.
            writer.flush().map_err(Error::shard(k))?;
            let fifo = spec.path(k).expect("a consumer fed through a FIFO");
            let unread = discard_unread(&fifo)?;
            restart(&mut lock(&self.slots[k]))?;
            let opened = watching(&self.slots[k..=k], stop, |stop| {
                FifoOutput::open(&fifo, stop).map_err(|e| {
                    Error::runtime(format!("shard {k}: cannot open {}: {e}", fifo.display()))
                })
            });
            self.fail_on_death("before it opened its input")?;
            let (out, losses) = GuardedOutput::new(Box::new(opened?));
            let mut fresh =
                ShardWriter::start(Box::new(out), header, true).map_err(Error::shard(k))?;
            fresh.counters = writer.counters;
            let old = std::mem::replace(writer, fresh);
            old.finish().map_err(Error::shard(k))?;
            let mut slot = lock(&self.slots[k]);
            let old_losses = slot.losses.replace(losses).expect("guarded output");
            let lost = old_losses.packets.load(Ordering::SeqCst);
            self.lost_packets += lost;
            slot.down = false;
            log::warn!(
                "shard {k}: resumed at a file boundary with a fresh header; {lost} packets ({} bytes) \
                 were dropped after its consumer died, besides {unread} bytes it left unread in its \
                 FIFO and what it had read but not processed",
                old_losses.bytes.load(Ordering::SeqCst)
            );
        }
        Ok(())
    }

    /// Turns a streaming failure into the story of the consumer that caused it, if one ended.
    pub fn explain(&mut self, err: Error) -> Error {
        if self.reported {
            return err;
        }
        let until = Instant::now() + Duration::from_secs(2);
        while !self.slots.is_empty() && Instant::now() < until {
            if let Err(e) = self.fail_on_death("while streaming") {
                return Error::runtime(format!("{e}\n  (the stream failed: {err})"));
            }
            thread::sleep(POLL);
        }
        err
    }

    /// After every stream has been closed: waits for each consumer to finish its logs and exit
    /// (a spool reader that never ends by itself gets SIGTERM once it has taken every segment);
    /// SIGTERM, then SIGKILL, for one that takes longer than [`FINISH_TIMEOUT`]. Fails if a
    /// consumer did not exit cleanly, or if a shard was still without its consumer. Returns each
    /// shard's outcome.
    pub fn finish(&mut self) -> Result<Vec<Outcome>> {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let mut first_err = None;
        let mut outcomes = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let mut slot = lock(slot);
            let Some(mut c) = slot.consumer.take() else {
                if slot.down {
                    let lost = slot
                        .losses
                        .as_ref()
                        .map_or(0, |l| l.packets.load(Ordering::SeqCst));
                    self.lost_packets += lost;
                    first_err.get_or_insert(Error::runtime(format!(
                        "shard {}: its consumer died and no later input file came to resume at; \
                         {lost} packets were dropped",
                        slot.spec.shard
                    )));
                    outcomes.push(Outcome::Finished(None));
                } else {
                    log::info!(
                        "shard {}: no packets, so no {} was started",
                        slot.spec.shard,
                        slot.spec.name
                    );
                    outcomes.push(Outcome::NotStarted);
                }
                continue;
            };
            if let Err(e) = finish_one(&mut c, deadline) {
                log::error!("{e}");
                first_err.get_or_insert(e);
            }
            // Counts of an instance that was restarted cover only its last run.
            let seen = match slot.restarts {
                0 => slot.spec.packets_seen(),
                _ => None,
            };
            outcomes.push(Outcome::Finished(seen));
        }
        if let Some(c) = self.cluster.as_mut() {
            if let Err(e) = c.stop() {
                first_err.get_or_insert(e);
            }
        }
        self.unwatch();
        if !self.slots.is_empty() {
            log::info!(
                "CPU time: shardcap {:.2}s, its consumers {:.2}s",
                cpu_seconds(UsageWho::RUSAGE_SELF),
                cpu_seconds(UsageWho::RUSAGE_CHILDREN)
            );
        }
        first_err.map_or(Ok(outcomes), Err)
    }

    /// The first consumer that has ended, as an error.
    fn fail_on_death(&mut self, when: &str) -> Result<()> {
        for slot in &self.slots {
            if let Some(c) = lock(slot).consumer.as_mut() {
                if let Some(exit) = c.try_wait()? {
                    self.reported = true;
                    return Err(Error::runtime(c.describe_exit(exit, when)));
                }
            }
        }
        Ok(())
    }

    fn unwatch(&mut self) {
        for id in self.sigchld.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl Drop for Consumers {
    /// A run that failed or was interrupted ends whatever consumers are left: SIGTERM to all, then
    /// SIGKILL to those still there after [`TERM_GRACE`].
    fn drop(&mut self) {
        let mut slots: Vec<MutexGuard<'_, Slot>> = self.slots.iter().map(lock).collect();
        let mut left: Vec<&mut Consumer> = slots
            .iter_mut()
            .filter_map(|s| s.consumer.as_mut())
            .filter_map(|c| matches!(c.try_wait(), Ok(None)).then_some(c))
            .collect();
        for c in &mut left {
            log::warn!(
                "shard {}: ending {} (pid {})",
                c.spec().shard,
                c.spec().name,
                c.pid()
            );
            let _ = c.signal(Signal::SIGTERM);
        }
        let until = Instant::now() + TERM_GRACE;
        for c in &mut left {
            let _ = c.wait_for(until.saturating_duration_since(Instant::now()));
            let _ = c.terminate(Duration::ZERO);
        }
        drop(slots);
        self.unwatch();
    }
}

/// On a shard's writer thread, at its first packet: starts the shard's consumer, opens the output
/// with `open` while watching it (its death, or a stop, cuts a FIFO's wait for its reader short),
/// and waits until a consumer with a control socket accepts connections.
fn start_and_open(
    slot: &SharedSlot,
    stop: &AtomicBool,
    open: impl FnOnce(&AtomicBool) -> Result<Box<dyn Output>>,
) -> Result<Box<dyn Output>> {
    let ready = {
        let mut s = lock(slot);
        if s.consumer.is_none() {
            s.consumer = Some(spawn(&s.spec)?);
        }
        s.spec.ready.clone()
    };
    let out = watching(std::slice::from_ref(slot), stop, open).map_err(|e| {
        // A wait cut short by the consumer's end: the end is the story.
        match lock(slot).consumer.as_mut().map(|c| (c.try_wait(), c)) {
            Some((Ok(Some(exit)), c)) => {
                Error::runtime(c.describe_exit(exit, "before it opened its input"))
            }
            _ => e,
        }
    })?;
    if let Readiness::Socket(path) = &ready {
        wait_for_socket(slot, path, stop)?;
    }
    Ok(out)
}

fn spawn(spec: &ConsumerSpec) -> Result<Consumer> {
    Consumer::spawn(spec.clone()).map_err(|e| {
        Error::runtime(format!(
            "shard {}: cannot start {}: {e}",
            spec.shard, spec.name
        ))
    })
}

/// Restarts a dead consumer; its earlier logs move to `run-N/` inside its log directory first, so
/// the new instance neither overwrites nor trips over them (pid file, socket).
fn restart(slot: &mut Slot) -> Result<()> {
    slot.restarts += 1;
    let dir = &slot.spec.log_dir;
    let keep = dir.join(format!("run-{}", slot.restarts));
    let moved = fs::create_dir_all(&keep).and_then(|_| {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                fs::rename(entry.path(), keep.join(entry.file_name()))?;
            }
        }
        Ok(())
    });
    moved.map_err(|e| {
        Error::runtime(format!(
            "shard {}: cannot keep the dead consumer's logs in {}: {e}",
            slot.spec.shard,
            keep.display()
        ))
    })?;
    log::warn!(
        "shard {}: restarting {} (restart {}); the dead one's logs are in {}",
        slot.spec.shard,
        slot.spec.name,
        slot.restarts,
        keep.display()
    );
    slot.consumer = Some(spawn(&slot.spec)?);
    Ok(())
}

/// Reads and drops whatever a dead reader left in the FIFO `path`; returns how many bytes.
fn discard_unread(path: &Path) -> Result<u64> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(Error::file(path, "cannot open"))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut dropped = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(dropped),
            Ok(n) => dropped += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(dropped),
            Err(e) => return Err(Error::file(path, "cannot read")(e)),
        }
    }
}

/// Runs `f` with a stop flag that is raised when `stop` is, or when one of the consumers ends.
fn watching<T>(slots: &[SharedSlot], stop: &AtomicBool, f: impl FnOnce(&AtomicBool) -> T) -> T {
    if slots.is_empty() {
        return f(stop);
    }
    let abort = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let died = slots.iter().any(|slot| {
                    lock(slot)
                        .consumer
                        .as_mut()
                        .is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
                });
                if died || stop.load(Ordering::SeqCst) {
                    abort.store(true, Ordering::SeqCst);
                    return;
                }
                thread::sleep(POLL);
            }
        });
        let r = f(&abort);
        done.store(true, Ordering::SeqCst);
        r
    })
}

/// Waits until `path` accepts a connection (the slot's consumer is ready), or it ends, or a stop.
fn wait_for_socket(slot: &SharedSlot, path: &Path, stop: &AtomicBool) -> Result<()> {
    let started = Instant::now();
    let mut told = false;
    let (shard, name) = {
        let s = lock(slot);
        (s.spec.shard, s.spec.name.clone())
    };
    while UnixStream::connect(path).is_err() {
        if let Some(c) = lock(slot).consumer.as_mut() {
            if let Some(exit) = c.try_wait()? {
                return Err(Error::runtime(c.describe_exit(exit, "while starting")));
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !told && started.elapsed() > Duration::from_secs(5) {
            log::info!(
                "shard {shard}: waiting for {name} to open {}",
                path.display()
            );
            told = true;
        }
        thread::sleep(POLL);
    }
    log::debug!("shard {shard}: {name} is ready");
    Ok(())
}

/// Waits for one consumer to end after its input ended.
fn finish_one(c: &mut Consumer, deadline: Instant) -> Result<()> {
    let shard = c.spec().shard;
    let mut asked_to_stop = false;
    if let Ending::TermWhenDrained(dir) = c.spec().ending.clone() {
        while c.try_wait()?.is_none() && !is_drained(&dir) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        if c.try_wait()?.is_none() && is_drained(&dir) {
            c.signal(Signal::SIGTERM)?;
            asked_to_stop = true;
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let exit: Exit = match c.wait_for(left)? {
        Some(e) => e,
        None => {
            let e = c.terminate(TERM_GRACE)?;
            return Err(Error::runtime(format!(
                "{}; it had not ended {}s after its input ended",
                c.describe_exit(e, "when shardcap stopped it"),
                FINISH_TIMEOUT.as_secs()
            )));
        }
    };
    let clean = exit.success() || (asked_to_stop && exit.0.code().is_none());
    if !clean {
        return Err(Error::runtime(
            c.describe_exit(exit, "after its input ended"),
        ));
    }
    if let Some(report) = c.spec().failure_marker.as_deref().and_then(read_marker) {
        return Err(Error::runtime(format!(
            "shard {shard}: {} (pid {}) ended ({exit}) but found its input damaged: {report}",
            c.spec().name,
            c.pid()
        )));
    }
    log::info!(
        "shard {shard}: {} (pid {}) finished ({exit})",
        c.spec().name,
        c.pid()
    );
    Ok(())
}

/// What a consumer wrote to its failure marker, if the marker exists.
fn read_marker(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(format!("{} ({})", text.trim(), path.display()))
}

/// User and system CPU seconds of this process (`RUSAGE_SELF`) or of its ended children.
fn cpu_seconds(who: UsageWho) -> f64 {
    let Ok(ru) = getrusage(who) else {
        return 0.0;
    };
    let secs = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(ru.user_time()) + secs(ru.system_time())
}

/// True when a spool directory holds no segment (the reader took them all).
fn is_drained(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::consumer::{Ending, PacketReport};
    use crate::sink::output::testing::Recorder;

    fn spec(dir: &Path, shard: usize, script: &str, ending: Ending) -> ConsumerSpec {
        ConsumerSpec {
            shard,
            name: "test".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            cwd: None,
            log_dir: dir.join(format!("shard-{shard}")),
            ready: Readiness::Started,
            ending,
            report: PacketReport::Silent,
            failure_marker: None,
        }
    }

    /// Starts `cs` and returns its outputs, each opened as a [`Recorder`].
    fn outputs(cs: &mut Consumers, shards: usize) -> Vec<Box<dyn Output>> {
        cs.start(&Arc::new(AtomicBool::new(false))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        cs.open_outputs(shards, &stop, |_, _| Ok(Recorder::boxed()))
    }

    #[test]
    fn a_consumer_starts_with_its_first_record_and_an_idle_shard_starts_none() {
        let dir = tempfile::tempdir().unwrap();
        let mark = |k: usize| dir.path().join(format!("started-{k}"));
        let specs = (0..2)
            .map(|k| {
                let script = format!("touch {}", mark(k).display());
                spec(dir.path(), k, &script, Ending::AtEndOfInput)
            })
            .collect();
        let mut cs = Consumers::new(specs, false);
        let mut outs = outputs(&mut cs, 2);
        for out in &mut outs {
            out.write_header(&StreamHeader {
                linktype: 1,
                nanos: false,
                snaplen: 65535,
            })
            .unwrap();
            out.sync().unwrap();
        }
        assert!(!mark(0).exists() && !mark(1).exists());
        outs[1].write_all(b"a record").unwrap();
        for out in outs {
            out.finish().unwrap();
        }
        let outcomes = cs.finish().unwrap();
        assert_eq!(outcomes, [Outcome::NotStarted, Outcome::Finished(None)]);
        assert!(!mark(0).exists() && mark(1).exists());
    }

    #[test]
    fn a_death_while_streaming_names_the_shard_status_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let attention = Arc::new(AtomicBool::new(false));
        let mut cs = Consumers::new(
            vec![
                spec(dir.path(), 0, "sleep 30", Ending::AtEndOfInput),
                spec(
                    dir.path(),
                    1,
                    "echo 'bad things' >&2; exit 4",
                    Ending::AtEndOfInput,
                ),
            ],
            false,
        );
        cs.start(&attention).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut outs = cs.open_outputs(2, &stop, |_, _| Ok(Recorder::boxed()));
        for out in &mut outs {
            out.write_all(b"a record").unwrap();
        }
        let t = Instant::now();
        let err = loop {
            match cs.check() {
                Err(e) => break e,
                Ok(()) => {
                    assert!(t.elapsed() < Duration::from_secs(20), "death not noticed");
                    thread::sleep(POLL)
                }
            }
        };
        assert!(attention.load(Ordering::SeqCst), "SIGCHLD raises attention");
        let msg = err.to_string();
        assert!(msg.starts_with("shard 1: test (pid "), "{msg}");
        assert!(msg.contains("while streaming with exit status 4"), "{msg}");
        assert!(msg.contains("bad things"), "{msg}");
        // Dropping the set ends the consumer still running.
        drop(cs);
    }

    #[test]
    fn a_drained_spool_reader_is_stopped_and_its_sigterm_exit_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        fs::create_dir(&spool).unwrap();
        fs::write(spool.join("000000000001.pcap"), b"x").unwrap();
        // A reader that consumes the segment, then waits forever like Suricata's continuous mode.
        let script = format!("rm {}/*.pcap; exec sleep 60", spool.display());
        let mut cs = Consumers::new(
            vec![spec(dir.path(), 0, &script, Ending::TermWhenDrained(spool))],
            false,
        );
        outputs(&mut cs, 1)[0].write_all(b"a record").unwrap();
        cs.finish().unwrap();
    }

    #[test]
    fn a_failing_exit_at_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cs = Consumers::new(
            vec![spec(dir.path(), 0, "exit 3", Ending::AtEndOfInput)],
            false,
        );
        outputs(&mut cs, 1)[0].write_all(b"a record").unwrap();
        let msg = cs.finish().unwrap_err().to_string();
        assert!(
            msg.contains("shard 0") && msg.contains("after its input ended with exit status 3"),
            "{msg}"
        );
    }

    #[test]
    fn a_failure_marker_fails_a_clean_exit() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("shard-0.error");
        let script = format!("echo 'segment 3 cut' > {}", marker.display());
        let mut s = spec(dir.path(), 0, &script, Ending::AtEndOfInput);
        s.failure_marker = Some(marker);
        let mut cs = Consumers::new(vec![s], false);
        outputs(&mut cs, 1)[0].write_all(b"a record").unwrap();
        let msg = cs.finish().unwrap_err().to_string();
        assert!(
            msg.contains("shard 0") && msg.contains("input damaged: segment 3 cut"),
            "{msg}"
        );
    }

    #[test]
    fn a_consumer_dying_before_it_opens_its_fifo_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            0,
            "echo 'no config' >&2; exit 1",
            Ending::AtEndOfInput,
        );
        s.ready = Readiness::OpenedFifo;
        let mut cs = Consumers::new(vec![s], false);
        cs.start(&Arc::new(AtomicBool::new(false))).unwrap();
        let fifo = dir.path().join("shard-0.pipe");
        let stop = Arc::new(AtomicBool::new(false));
        let mut outs = cs.open_outputs(1, &stop, move |_, stop| {
            FifoOutput::open(&fifo, stop)
                .map(|o| Box::new(o) as Box<dyn Output>)
                .map_err(|e| Error::runtime(e.to_string()))
        });
        let err = outs[0].write_all(b"a record").unwrap_err().to_string();
        assert!(
            err.contains("before it opened its input with exit status 1"),
            "{err}"
        );
        assert!(err.contains("no config"), "{err}");
    }
}
