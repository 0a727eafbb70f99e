//! Supervision of the shard consumers: all started before streaming and waited for until ready, a
//! death while streaming noticed (the run fails naming the shard, its exit status and its log), or,
//! with `--ids-restart`, the consumer restarted and its shard resumed at the next file boundary with
//! a fresh header; at the end every consumer waited for until it has written its logs.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use signal_hook::consts::SIGCHLD;
use signal_hook::SigId;

use super::consumer::{Consumer, ConsumerSpec, Ending, Exit, Readiness};
use super::guarded::{GuardedOutput, Losses};
use crate::error::{Error, Result};
use crate::sink::fifo::FifoOutput;
use crate::sink::format::StreamHeader;
use crate::sink::output::Output;
use crate::sink::writer::ShardWriter;
use crate::sink::OutputSpec;

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

/// The consumers of a run (none without `--ids`/`--exec`).
pub struct Consumers {
    slots: Vec<Slot>,
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
}

impl Consumers {
    /// Consumers from their specs, one a shard in shard order.
    pub fn new(specs: Vec<ConsumerSpec>, restart: bool) -> Self {
        let slots = specs
            .into_iter()
            .map(|spec| Slot {
                spec,
                consumer: None,
                restarts: 0,
                losses: None,
                down: false,
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
        }
    }

    /// No consumers: every call is a no-op.
    pub fn none() -> Self {
        Self::new(Vec::new(), false)
    }

    /// Starts every consumer (once); a consumer's end then also raises `attention`, so the
    /// dispatcher looks at the consumers without delay.
    pub fn start(&mut self, attention: &Arc<AtomicBool>) -> Result<()> {
        if self.slots.is_empty() || !self.sigchld.is_empty() {
            return Ok(());
        }
        for flag in [&self.exited, attention] {
            let id = signal_hook::flag::register(SIGCHLD, flag.clone())
                .map_err(|e| Error::runtime(format!("cannot watch consumers (SIGCHLD): {e}")))?;
            self.sigchld.push(id);
        }
        for slot in &mut self.slots {
            slot.consumer = Some(spawn(&slot.spec)?);
        }
        Ok(())
    }

    /// Opens the shard outputs with `open(k, stop)` while watching the consumers: a consumer that
    /// ends before its FIFO is open cuts the wait short, and the error names it. Then waits until
    /// every consumer with another readiness check (a control socket) is ready. With
    /// `--ids-restart` the outputs are guarded so that a consumer's death does not fail the run.
    pub fn open_outputs(
        &mut self,
        shards: usize,
        stop: &AtomicBool,
        mut open: impl FnMut(usize, &AtomicBool) -> Result<Box<dyn Output>>,
    ) -> Result<Vec<Box<dyn Output>>> {
        let mut outs = Vec::with_capacity(shards);
        let opened: Result<()> = watching(&mut self.slots, stop, |stop| {
            for k in 0..shards {
                outs.push(open(k, stop)?);
            }
            Ok(())
        });
        self.fail_on_death("before it opened its input")?;
        opened?;
        for slot in &mut self.slots {
            if let Readiness::Socket(path) = &slot.spec.ready {
                let c = slot.consumer.as_mut().expect("started");
                wait_for_socket(c, path, stop)?;
            }
        }
        if self.restart {
            outs = outs
                .into_iter()
                .zip(&mut self.slots)
                .map(|(out, slot)| {
                    let (guarded, losses) = GuardedOutput::new(out);
                    slot.losses = Some(losses);
                    Box::new(guarded) as Box<dyn Output>
                })
                .collect();
        }
        Ok(outs)
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
        for slot in &mut self.slots {
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
        self.resume_due = self.slots.iter().any(|s| s.down);
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
            if !self.slots[k].down {
                continue;
            }
            // Every buffer queued for the dead consumer is dropped, and so is what it left unread
            // in the pipe; then the restarted consumer reads a fresh stream.
            writer
                .flush()
                .map_err(|e| Error::runtime(format!("shard {k}: {e}")))?;
            let fifo = spec.path(k).expect("a consumer fed through a FIFO");
            let unread = discard_unread(&fifo)?;
            let slot = &mut self.slots[k];
            restart(slot)?;
            let opened = watching(std::slice::from_mut(slot), stop, |stop| {
                FifoOutput::open(&fifo, stop).map_err(|e| {
                    Error::runtime(format!("shard {k}: cannot open {}: {e}", fifo.display()))
                })
            });
            self.fail_on_death("before it opened its input")?;
            let (out, losses) = GuardedOutput::new(Box::new(opened?));
            let slot = &mut self.slots[k];
            let mut fresh = ShardWriter::start(Box::new(out), header, true)
                .map_err(|e| Error::runtime(format!("shard {k}: {e}")))?;
            fresh.counters = writer.counters;
            let old = std::mem::replace(writer, fresh);
            old.finish()
                .map_err(|e| Error::runtime(format!("shard {k}: {e}")))?;
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
    /// consumer did not exit cleanly, or if a shard was still without its consumer.
    pub fn finish(&mut self) -> Result<()> {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let mut first_err = None;
        for slot in &mut self.slots {
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
                }
                continue;
            };
            if let Err(e) = finish_one(&mut c, deadline) {
                log::error!("{e}");
                first_err.get_or_insert(e);
            }
        }
        self.unwatch();
        if !self.slots.is_empty() {
            log::info!(
                "CPU time: shardcap {:.2}s, its consumers {:.2}s",
                cpu_seconds(libc::RUSAGE_SELF),
                cpu_seconds(libc::RUSAGE_CHILDREN)
            );
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The first consumer that has ended, as an error.
    fn fail_on_death(&mut self, when: &str) -> Result<()> {
        for slot in &mut self.slots {
            if let Some(c) = slot.consumer.as_mut() {
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
        let mut left: Vec<&mut Consumer> = self
            .slots
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
        self.unwatch();
    }
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
        .map_err(|e| Error::runtime(format!("{}: {e}", path.display())))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut dropped = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(dropped),
            Ok(n) => dropped += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(dropped),
            Err(e) => return Err(Error::runtime(format!("{}: {e}", path.display()))),
        }
    }
}

/// Runs `f` with a stop flag that is raised when `stop` is, or when one of the consumers ends.
fn watching<T>(slots: &mut [Slot], stop: &AtomicBool, f: impl FnOnce(&AtomicBool) -> T) -> T {
    if slots.is_empty() {
        return f(stop);
    }
    let abort = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let died = slots
                    .iter_mut()
                    .filter_map(|s| s.consumer.as_mut())
                    .any(|c| !matches!(c.try_wait(), Ok(None)));
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

/// Waits until `path` accepts a connection (the consumer is ready), or it ends, or a stop.
fn wait_for_socket(c: &mut Consumer, path: &Path, stop: &AtomicBool) -> Result<()> {
    let started = Instant::now();
    let mut told = false;
    while UnixStream::connect(path).is_err() {
        if let Some(exit) = c.try_wait()? {
            return Err(Error::runtime(c.describe_exit(exit, "while starting")));
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !told && started.elapsed() > Duration::from_secs(5) {
            log::info!(
                "shard {}: waiting for {} to open {}",
                c.spec().shard,
                c.spec().name,
                path.display()
            );
            told = true;
        }
        thread::sleep(POLL);
    }
    log::debug!("shard {}: {} is ready", c.spec().shard, c.spec().name);
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
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// True when a spool directory holds no segment (the reader took them all).
fn is_drained(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::consumer::Ending;

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
            failure_marker: None,
        }
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
        cs.start(&Arc::new(AtomicBool::new(false))).unwrap();
        cs.finish().unwrap();
    }

    #[test]
    fn a_failing_exit_at_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cs = Consumers::new(
            vec![spec(dir.path(), 0, "exit 3", Ending::AtEndOfInput)],
            false,
        );
        cs.start(&Arc::new(AtomicBool::new(false))).unwrap();
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
        cs.start(&Arc::new(AtomicBool::new(false))).unwrap();
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
        let stop = AtomicBool::new(false);
        let open = |_, stop: &AtomicBool| {
            FifoOutput::open(&fifo, stop)
                .map(|o| Box::new(o) as Box<dyn Output>)
                .map_err(|e| Error::runtime(e.to_string()))
        };
        let err = cs.open_outputs(1, &stop, open).err().unwrap().to_string();
        assert!(
            err.contains("before it opened its input with exit status 1"),
            "{err}"
        );
        assert!(err.contains("no config"), "{err}");
    }
}
