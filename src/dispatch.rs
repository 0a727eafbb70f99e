//! `shardcap run`: catalog the inputs, merge them by packet time, shard by flow, write the streams.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cli::{LinkMismatch, RunArgs};
use crate::control::signals::Signals;
use crate::control::stats::{RunStats, Snapshot, State};
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};
use crate::flow::{FlowConfig, Sharder};
use crate::input::catalog::{self, Entry, Rejected};
use crate::input::discover::{self, Candidate};
use crate::input::intake::{Arrivals, Intake, StaticIntake};
use crate::merge::{FileEnd, Merge, MergeHooks};
use crate::sink::format::StreamHeader;
use crate::sink::spool::SpoolConfig;
use crate::sink::writer::ShardWriter;
use crate::sink::OutputSpec;

/// Packets between two looks at the clock (stats interval, progress, new arrivals).
const TICK_PACKETS: u32 = 1 << 16;
/// How long an idle dispatcher waits for its intake before looking at signals again.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Runs the dispatcher; returns the exit code.
pub fn run(args: RunArgs) -> Result<i32> {
    let shards = args.shards as usize;
    let spec = OutputSpec::parse(&args.output, shards)?;
    if args.inputs.is_empty() {
        return Err(Error::usage(
            "no INPUT given: name capture files, directories, globs or @LIST files",
        ));
    }
    let candidates = discover::expand(&args.inputs)?;
    spec.validate(shards)?;
    let intake = Box::new(StaticIntake::new(candidates));
    let signals = Signals::install()?;
    Dispatcher::new(args, spec, intake, signals).run()
}

/// The run's state outside the merge and the outputs; the merge calls back into it.
struct Ctx {
    args: RunArgs,
    spec: OutputSpec,
    intake: Box<dyn Intake>,
    signals: Signals,
    stats: RunStats,
    header: Option<StreamHeader>,
    /// Files damaged or skipped: the run ends with exit 3.
    incomplete: u64,
    last_report: Instant,
}

/// Everything a run holds.
struct Dispatcher {
    ctx: Ctx,
    merge: Merge,
    sharder: Sharder,
    writers: Vec<ShardWriter>,
}

impl Dispatcher {
    fn new(args: RunArgs, spec: OutputSpec, intake: Box<dyn Intake>, signals: Signals) -> Self {
        let merge = Merge::new(args.order, args.max_open);
        let sharder = Sharder::new(
            FlowConfig {
                hash: args.hash,
                tunnel: args.tunnel,
            },
            args.shards as usize,
        );
        Dispatcher {
            ctx: Ctx {
                args,
                spec,
                intake,
                signals,
                stats: RunStats::new(),
                header: None,
                incomplete: 0,
                last_report: Instant::now(),
            },
            merge,
            sharder,
            writers: Vec::new(),
        }
    }

    fn run(mut self) -> Result<i32> {
        let stopped = self.stream()?;
        let Dispatcher {
            mut ctx,
            merge,
            mut sharder,
            mut writers,
        } = self;
        let io_err = |e: io::Error| Error::runtime(e.to_string());
        sharder.drain(|k, p| writers[k].write(p)).map_err(io_err)?;
        ctx.stats.state = if stopped {
            State::Stopping
        } else {
            State::Done
        };
        let snapshot = ctx.snapshot(&merge, &sharder, &writers);
        for w in writers {
            w.finish().map_err(io_err)?;
        }
        ctx.intake.close(stopped)?;
        ctx.write_stats_file(&snapshot)?;
        log::info!(
            "done: {} packets from {} files to {} shards in {:.1}s",
            snapshot.packets,
            snapshot.files_done,
            ctx.args.shards,
            snapshot.uptime_s
        );
        if stopped {
            log::warn!(
                "stopped by signal after {} packets; outputs are complete pcap streams",
                snapshot.packets
            );
        }
        if ctx.stats.dropped_linktype > 0 {
            log::warn!(
                "{} packets had another link type and were dropped (--link-mismatch drop)",
                ctx.stats.dropped_linktype
            );
        }
        Ok(if ctx.incomplete > 0 {
            EXIT_SKIPPED
        } else {
            EXIT_OK
        })
    }

    /// Streams until the intake is closed and every file is done, or a stop signal. Returns whether
    /// it was stopped.
    fn stream(&mut self) -> Result<bool> {
        self.ctx.stats.state = State::Running;
        loop {
            let wait = self.merge.is_idle().then_some(IDLE_WAIT);
            match self.ctx.intake.poll(wait, &self.ctx.signals)? {
                Arrivals::Files(c) => self.admit(&c)?,
                Arrivals::Nothing => {}
                Arrivals::Closed if self.merge.is_idle() => {
                    self.open_outputs()?;
                    return Ok(false);
                }
                Arrivals::Closed => {}
            }
            if self.pump()? {
                return Ok(true);
            }
            if self.merge.is_idle()
                && self
                    .ctx
                    .service(&mut self.merge, &self.sharder, &mut self.writers)?
            {
                return Ok(true);
            }
        }
    }

    /// The hot loop: packets from the merge to the shards until the merge runs dry or a stop.
    fn pump(&mut self) -> Result<bool> {
        let Some(header) = self.ctx.header else {
            return Ok(false);
        };
        let io_err = |e: io::Error| Error::runtime(e.to_string());
        let mut tick = TICK_PACKETS;
        while let Some(slot) = self.merge.next(&mut self.ctx)? {
            let pkt = self.merge.packet(slot);
            if pkt.linktype == header.linktype {
                let writers = &mut self.writers;
                self.sharder
                    .route(&pkt, |k, p| writers[k].write(p))
                    .map_err(io_err)?;
            } else {
                self.ctx.stats.dropped_linktype += 1;
            }
            tick -= 1;
            if tick == 0 || self.ctx.signals.attention.load(Ordering::Relaxed) {
                tick = TICK_PACKETS;
                if self
                    .ctx
                    .service(&mut self.merge, &self.sharder, &mut self.writers)?
                {
                    return Ok(true);
                }
                if let Arrivals::Files(c) = self.ctx.intake.poll(None, &self.ctx.signals)? {
                    self.admit(&c)?;
                }
            }
        }
        Ok(false)
    }

    /// Catalogs new files and hands them to the merge; the first files fix the stream header.
    fn admit(&mut self, candidates: &[Candidate]) -> Result<()> {
        let first_seq = self.ctx.stats.files_total + self.ctx.stats.files_skipped;
        let (entries, rejected) = build_catalog(candidates, first_seq);
        self.ctx.stats.files_skipped += rejected;
        self.ctx.incomplete += rejected;
        if self.ctx.header.is_none() && !entries.is_empty() {
            self.ctx.header = Some(stream_header(&entries, self.ctx.args.link_mismatch)?);
        }
        let header = self.ctx.header;
        let mut admitted = Vec::with_capacity(entries.len());
        for e in entries {
            let other = e
                .info
                .linktypes
                .iter()
                .find(|&&lt| Some(lt) != header.map(|h| h.linktype));
            match other {
                Some(lt) if self.ctx.args.link_mismatch == LinkMismatch::Error => {
                    log::warn!(
                        "{}: link type {lt} differs from the stream's {}; skipped (see --link-mismatch)",
                        e.path.display(),
                        header.map_or(0, |h| h.linktype)
                    );
                    self.ctx.stats.files_skipped += 1;
                    self.ctx.incomplete += 1;
                    self.ctx
                        .intake
                        .finished(&e, &FileEnd::Skipped("link type differs".into()))?;
                }
                _ => admitted.push(e),
            }
        }
        self.ctx.stats.files_total += admitted.len() as u64;
        self.ctx.stats.input_bytes_total += admitted.iter().map(|e| e.size).sum::<u64>();
        self.merge.add(admitted);
        self.open_outputs()
    }

    /// Opens every shard output once the header is known (or at the end, for an empty run).
    fn open_outputs(&mut self) -> Result<()> {
        if !self.writers.is_empty() {
            return Ok(());
        }
        let header = *self.ctx.header.get_or_insert(StreamHeader {
            linktype: 1,
            nanos: false,
            snaplen: 262_144,
        });
        let args = &self.ctx.args;
        let spool = SpoolConfig {
            segment_size: args.segment_size,
            segment_age: args.segment_age,
            backlog: args.spool_backlog as usize,
        };
        for k in 0..self.ctx.args.shards as usize {
            let out = self
                .ctx
                .spec
                .open(k, header, spool, &self.ctx.signals.stop)?;
            let w = ShardWriter::start(out, header, true)
                .map_err(|e| Error::runtime(format!("shard {k}: {e}")))?;
            self.writers.push(w);
        }
        Ok(())
    }
}

/// Probes every candidate; logs and counts what cannot be read.
fn build_catalog(candidates: &[Candidate], first_seq: u64) -> (Vec<Entry>, u64) {
    let mut entries = Vec::with_capacity(candidates.len());
    let mut rejected = 0;
    for (i, cand) in candidates.iter().enumerate() {
        match catalog::probe(first_seq + i as u64, cand) {
            Ok(e) => entries.push(e),
            Err(Rejected::NotCapture {
                path,
                explicit: true,
            }) => {
                log::warn!(
                    "{}: byte 0: not a pcap or pcapng capture (by content); skipped",
                    path.display()
                );
                rejected += 1;
            }
            Err(Rejected::NotCapture {
                path,
                explicit: false,
            }) => {
                log::debug!("{}: not a capture; ignored", path.display());
            }
            Err(Rejected::Unreadable { path, error }) => {
                log::warn!(
                    "{}: {error}; skipped (check the file, then rerun it alone)",
                    path.display()
                );
                rejected += 1;
            }
        }
    }
    (entries, rejected)
}

/// The one header every shard stream carries: the inputs' link type and the finest precision.
fn stream_header(entries: &[Entry], mismatch: LinkMismatch) -> Result<StreamHeader> {
    let mut linktype: Option<(u32, &Entry)> = None;
    for e in entries {
        for &lt in &e.info.linktypes {
            match linktype {
                None => linktype = Some((lt, e)),
                Some((first, f)) if first != lt && mismatch == LinkMismatch::Error => {
                    return Err(Error::usage(format!(
                        "{} has link type {lt} but {} has {first}; one stream carries one link type \
                         (use --link-mismatch drop, or run them separately)",
                        e.path.display(),
                        f.path.display()
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(StreamHeader {
        linktype: linktype.map_or(1, |(lt, _)| lt),
        nanos: entries.iter().any(|e| e.info.nanos),
        snaplen: entries
            .iter()
            .map(|e| e.info.snaplen)
            .max()
            .unwrap_or(0)
            .max(262_144),
    })
}

impl MergeHooks for Ctx {
    fn opening(&mut self, entry: &Entry) -> Result<bool> {
        log::debug!("{}: opening", entry.path.display());
        self.intake.authorize(entry, &self.signals)
    }

    fn finished(&mut self, entry: &Entry, packets: u64, end: FileEnd) {
        self.stats.files_done += 1;
        self.stats.input_bytes_done += entry.size;
        match &end {
            FileEnd::Complete => log::debug!("{}: done, {packets} packets", entry.path.display()),
            FileEnd::Damaged(e) => {
                self.incomplete += 1;
                log::warn!(
                    "{}: {e}; kept the {packets} packets before it (repair or truncate the file to read the rest)",
                    entry.path.display()
                );
            }
            FileEnd::Skipped(why) => {
                self.stats.files_skipped += 1;
                self.incomplete += 1;
                log::warn!("{}: skipped: {why}", entry.path.display());
            }
        }
        if let Err(e) = self.intake.finished(entry, &end) {
            log::error!(
                "{}: could not record the end of the file: {e}",
                entry.path.display()
            );
        }
    }
}

impl Ctx {
    /// Handles pending signals and periodic work; returns true when the run must stop.
    fn service(
        &mut self,
        merge: &mut Merge,
        sharder: &Sharder,
        writers: &mut [ShardWriter],
    ) -> Result<bool> {
        self.signals.attention.store(false, Ordering::SeqCst);
        if self.signals.stats.swap(false, Ordering::SeqCst) {
            self.print(&self.snapshot(merge, sharder, writers))?;
        }
        if self.signals.suspended() {
            self.stats.state = State::Suspended;
            self.stats.suspensions += 1;
            for w in writers.iter_mut() {
                w.flush().map_err(|e| Error::runtime(e.to_string()))?;
            }
            log::warn!("suspended (SIGUSR1 again resumes)");
            while self.signals.suspended() && !self.signals.stop.load(Ordering::SeqCst) {
                if self.signals.stats.swap(false, Ordering::SeqCst) {
                    self.print(&self.snapshot(merge, sharder, writers))?;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.stats.state = State::Running;
            log::warn!("resumed");
        }
        if self.last_report.elapsed() >= self.args.stats_interval {
            self.last_report = Instant::now();
            self.write_stats_file(&self.snapshot(merge, sharder, writers))?;
        }
        Ok(self.signals.stop.load(Ordering::SeqCst))
    }

    fn snapshot(&self, merge: &Merge, sharder: &Sharder, writers: &[ShardWriter]) -> Snapshot {
        let current = merge
            .open_inputs()
            .next()
            .map(|i| i.entry.path.display().to_string());
        let shards: Vec<_> = writers
            .iter()
            .map(|w| (w.name().to_string(), w.counters))
            .collect();
        self.stats
            .snapshot(current, merge.stats, sharder.stats(), &shards)
    }

    fn print(&self, snap: &Snapshot) -> Result<()> {
        if self.spec.is_stdout() {
            snap.write_lines(&mut io::stderr().lock())?;
        } else {
            snap.write_lines(&mut io::stdout().lock())?;
        }
        Ok(())
    }

    fn write_stats_file(&self, snap: &Snapshot) -> Result<()> {
        let Some(path) = &self.args.stats_file else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(snap).map_err(|e| Error::runtime(e.to_string()))?;
        std::fs::write(&tmp, json)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| {
                Error::runtime(format!("{}: cannot write stats file: {e}", path.display()))
            })
    }
}
