//! `shardcap run`: catalog the inputs, merge them by packet time, shard by flow, write the streams.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::{AuthMode, LinkMismatch, LinkType, RunArgs, StatsFormat};
use crate::cluster::{
    self,
    lease::{LeaseCheck, Progress as PartProgress},
};
use crate::control::metrics::{self, Published};
use crate::control::pacing::Pacer;
use crate::control::progress::Progress;
use crate::control::redis::intake::RedisIntake;
use crate::control::redis::roots::Roots;
use crate::control::report;
use crate::control::signals::Signals;
use crate::control::stats::{RunStats, Snapshot, State};
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};
use crate::ids::supervise::Outcome;
use crate::ids::{self, accounting, Consumers};
use crate::input::catalog::{self, Entry, Rejected};
use crate::input::discover::{self, Candidate};
use crate::input::intake::{Arrivals, Gate, Intake, StaticIntake};
use crate::input::retention::{LogGate, Policy, Retention};
use crate::input::screen::{Screen, Screened};
use crate::input::span::{Placed, SpanCache};
use crate::input::watch::{WatchConfig, WatchIntake};
use crate::input::FileEnd;
use crate::merge::{Merge, MergeHooks, MergeStats, OpenInput, Order};
use crate::reorder::Reorder;
use crate::select::{SelectConfig, Selector, Side};
use crate::shipping;
use crate::sink::fence::Fence;
use crate::sink::output::Output;
use crate::sink::spool::SpoolConfig;
use crate::sink::writer::{file_buffer_size, Brake, ShardCounters, ShardWriter};
use crate::sink::{OutputOptions, OutputSpec};
use crate::state::journal::Reason;
use crate::state::StateKeeper;
use shardcap_capture::format::StreamHeader;
use shardcap_capture::stream::thread_read_bytes;
use shardcap_capture::{Anomalies, Packet, Verbatim};
use shardcap_flow::link::LINKTYPE_ETHERNET;
use shardcap_flow::reframe::{self, Reframe};
use shardcap_flow::{Direct, FlowConfig, FlowStats, Sharder};
use shardcap_ship::{stats::ShipSnapshot, ShipHandle};

/// Packets between two looks at the clock (stats interval, progress, new arrivals).
const TICK_PACKETS: u32 = 1 << 16;
/// How long an idle dispatcher waits for its intake before looking at signals again.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long an idle dispatcher waits at a time for the whole-file reads of held files.
const SCREEN_WAIT: Duration = Duration::from_millis(100);

/// Runs the dispatcher; returns the exit code.
pub fn run(args: RunArgs) -> Result<i32> {
    run_with(args, None)
}

/// What a cluster node gives the run of one partition in place of its own: signals installed
/// once for the node, the metrics server, the catalog as intake, and the lease.
pub struct Given {
    pub signals: Signals,
    pub metrics: Option<Arc<Published>>,
    pub intake: Box<dyn Intake>,
    pub lease: LeaseCheck,
}

/// Runs a cluster node (`--cluster`): each partition it claims runs as `run --partition K/M
/// --state STATE/part-K` would, with `{partition}` in `--log-dir` (required there; default
/// `logs/part-{partition}`) and `--stats-file` expanded.
pub fn run_cluster(args: RunArgs) -> Result<i32> {
    let cfg = args.cluster_config()?;
    if !args.inputs.is_empty() || !args.watch.is_empty() || args.auth == AuthMode::Redis {
        return Err(Error::usage(
            "with --cluster the files come from the job's catalog: omit INPUT, --watch and \
             --auth redis, and add files with `shardcap ctl enqueue --cluster URL --job NAME`",
        ));
    }
    let mut args = args;
    match &args.log_dir {
        // A node runs partitions one after another, and a takeover continues a partition's logs.
        Some(d) if !d.to_string_lossy().contains("{partition}") => {
            return Err(Error::usage(format!(
                "--log-dir {} with --cluster: put {{partition}} in it (e.g. \
                 /shared/logs/part-{{partition}}), one log directory a partition",
                d.display()
            )))
        }
        None if args.ids.is_some() || args.exec.is_some() => {
            args.log_dir = Some(PathBuf::from(ids::DEFAULT_LOG_DIR).join("part-{partition}"));
        }
        _ => {}
    }
    let signals = Signals::install()?;
    let metrics = serve_metrics(&args)?;
    cluster::run_node(&cfg, &signals, |a| {
        let mut part = args.clone();
        part.partition = a.partition;
        part.state = Some(a.state);
        let k = a.partition.index.to_string();
        let expand = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut() {
                *path = path.to_string_lossy().replace("{partition}", &k).into();
            }
        };
        expand(&mut part.log_dir);
        expand(&mut part.stats_file);
        run_with(
            part,
            Some(Given {
                signals: signals.clone(),
                metrics: metrics.clone(),
                intake: a.intake,
                lease: a.lease,
            }),
        )
    })
}

/// Starts the metrics endpoint of `--metrics-listen` (none without it).
fn serve_metrics(args: &RunArgs) -> Result<Option<Arc<Published>>> {
    let Some(addr) = &args.metrics_listen else {
        return Ok(None);
    };
    let published = Published::for_run();
    metrics::serve(addr, published.clone())?;
    Ok(Some(published))
}

/// Runs the dispatcher, with what a cluster node gives it.
fn run_with(mut args: RunArgs, given: Option<Given>) -> Result<i32> {
    shardcap_capture::buffer::set_memory_limit(
        usize::try_from(args.buffer_memory).unwrap_or(usize::MAX),
    );
    let shards = args.shards as usize;
    let output = args
        .output
        .clone()
        .or_else(|| ids::IdsConfig::from(&args).default_output());
    let output = output.ok_or_else(|| {
        Error::usage(
            "no -o given: say where shards go (fifo:, file:, dir:, stdout) or start --ids/--exec",
        )
    })?;
    let spec = OutputSpec::parse(&output, shards, args.partition)?;
    args.output = Some(output.clone());
    let (select, spans) = selection(&args)?;
    if args.log_dir.is_none() && (args.ids.is_some() || args.exec.is_some()) {
        args.log_dir = Some(ids::DEFAULT_LOG_DIR.into());
    }
    let (signals, metrics, given_intake, lease) = match given {
        Some(g) => (g.signals, g.metrics, Some(g.intake), Some(g.lease)),
        None => (Signals::install()?, serve_metrics(&args)?, None, None),
    };
    // The journal first: a replay sets the interrupted run's logs aside before anything starts,
    // and a completed run starts no consumer.
    let mut state_config = crate::state::StateConfig::from(&args);
    // A partition's lease keeps other nodes off its journal.
    state_config.exclusive = lease.is_none();
    let state = (args.state.as_deref())
        .map(|d| StateKeeper::open(d, state_config, &spec))
        .transpose()?;
    let complete = state.as_ref().is_some_and(StateKeeper::is_complete);
    let consumers = if complete {
        Consumers::none()
    } else {
        let mut cfg = ids::IdsConfig::from(&args);
        cfg.replay = state.as_ref().is_some_and(StateKeeper::replaying);
        ids::plan(&cfg, &spec)?
    };
    spec.validate(shards)?;
    // The shipper may wait for its server: check the inputs first, unless continuous mode needs
    // the shipper's watermark to build its intake.
    let (shipper, intake) = match given_intake {
        Some(intake) => (shipping::start_for_run(&args)?, intake),
        None if args.watch.is_empty() => {
            let intake = intake_for(&args, &signals, None)?;
            (shipping::start_for_run(&args)?, intake)
        }
        None => {
            let shipper = shipping::start_for_run(&args)?;
            let intake = intake_for(&args, &signals, shipper.as_ref())?;
            (shipper, intake)
        }
    };
    if let Some(s) = state.as_ref().filter(|_| complete) {
        if lease.is_some() {
            // A partition completed before its node could record it.
            return shipping::finish_for_run(shipper, Ok(EXIT_OK));
        }
        let done = discover::expand(&args.inputs).and_then(|c| s.completed_run(&c));
        return shipping::finish_for_run(shipper, done);
    }
    let replays = state.is_some() && args.replays_on_restart();
    let mut dispatcher = Dispatcher::new(args, spec, intake, signals, state, consumers);
    dispatcher.ctx.ship = shipper.as_ref().map(ShipHandle::latest);
    if replays {
        dispatcher.ctx.ship_halter = shipper.as_ref().map(ShipHandle::halter);
    }
    dispatcher.ctx.stats.select = select.as_ref().map(Selector::stats);
    dispatcher.select = select;
    dispatcher.spans = spans;
    dispatcher.ctx.metrics = metrics;
    dispatcher.lease = lease;
    let code = dispatcher.run();
    shipping::finish_for_run(shipper, code)
}

/// The selection of `--since`/`--until`, `--filter` and `--dedup` (none without them), and with
/// `--since` the cache of files' last packet times. A filter that does not compile is a usage
/// error, before anything is opened.
fn selection(args: &RunArgs) -> Result<(Option<Selector>, Option<SpanCache>)> {
    let cfg = SelectConfig {
        range: args.range.range()?,
        filter: args.filter.clone(),
        dedup: args.dedup.filter(|d| !d.is_zero()),
    };
    let select = Selector::new(&cfg).map_err(Error::usage)?;
    let spans = if cfg.range.since > 0 {
        let file = args.range.cache_path(args.state.as_deref());
        let cache = SpanCache::open(file.as_deref()).map_err(|e| {
            Error::usage(format!(
                "--catalog-cache {}: {e}",
                file.unwrap_or_default().display()
            ))
        })?;
        Some(cache)
    } else {
        None
    };
    Ok((select, spans))
}

/// Where the run's files come from: the command line, watched spool directories, or a Redis queue.
/// With a shipper, streamed spool files wait for their logs to be acknowledged before retention.
fn intake_for(
    args: &RunArgs,
    signals: &Signals,
    shipper: Option<&ShipHandle>,
) -> Result<Box<dyn Intake>> {
    check_partitioned_intake(args)?;
    if args.auth == AuthMode::Redis {
        if !args.inputs.is_empty() || !args.watch.is_empty() {
            return Err(Error::usage(
                "with --auth redis the files come from the Redis queue: omit INPUT and --watch, and \
                 queue them with `shardcap ctl enqueue` (or an importer script)",
            ));
        }
        return Ok(Box::new(RedisIntake::connect(
            &(&args.redis).into(),
            args.redis_mode,
            args.order,
            args.redis_window,
            args.announce_all,
            Roots::new(&args.allow_root)?,
            signals,
        )?));
    }
    if !args.allow_root.is_empty() {
        return Err(Error::usage(
            "--allow-root limits the files taken from a Redis queue: use it with --auth redis",
        ));
    }
    match (args.inputs.is_empty(), args.watch.is_empty()) {
        (true, true) => Err(Error::usage(
            "no INPUT given: name capture files, directories, globs or @LIST files, or --watch DIR \
             (or take them from a Redis queue with --auth redis)",
        )),
        (false, false) => Err(Error::usage(
            "give either INPUTs or --watch directories, not both",
        )),
        (false, true) => Ok(Box::new(StaticIntake::new(discover::expand(&args.inputs)?))),
        (true, false) => {
            let cfg = WatchConfig {
                dirs: args.watch.clone(),
                settle: args.settle,
                ignore: args.ignore.clone(),
                horizon: args.horizon,
                min_free: args.min_free,
            };
            let mut retention =
                Retention::new(args.retention.clone(), args.retain_age, args.retain_size)?;
            if let Some(s) = shipper {
                retention = retention.with_gate(LogGate {
                    watermark: s.watermark(),
                    lag: args.retain_lag,
                });
            }
            Ok(Box::new(WatchIntake::new(cfg, retention)?))
        }
    }
}

/// Every partition must read every input: refuses intakes that hand a file to one node (a Redis
/// queue) or remove files that other nodes may still need (retention other than keep).
fn check_partitioned_intake(args: &RunArgs) -> Result<()> {
    if args.partition.is_whole() {
        return Ok(());
    }
    if args.auth == AuthMode::Redis {
        return Err(Error::usage(format!(
            "--partition {} with --auth redis: a Redis queue hands each file to one node, but \
             every partition must read every input",
            args.partition
        )));
    }
    let removes = !matches!(args.retention, Policy::Keep)
        || args.retain_age.is_some()
        || args.retain_size.is_some();
    if !args.watch.is_empty() && removes {
        return Err(Error::usage(format!(
            "--partition {}: --retention, --retain-age and --retain-size would remove files other \
             partitions still read; keep them, and clean the spool once every partition is done",
            args.partition
        )));
    }
    Ok(())
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
    /// Files with packets the stream could not carry (reported once each).
    late_link_files: HashSet<u64>,
    last_report: Instant,
    /// The stages' figures as of the last [`Ctx::service`], for stats while the merge waits for
    /// an authorization.
    seen: Seen,
    /// Sequence number of the next cataloged file.
    next_seq: u64,
    /// The journal (`--state`).
    state: Option<StateKeeper>,
    progress: Progress,
    pacer: Option<Pacer>,
    /// The shards' consumer processes (none without --ids/--exec).
    consumers: Consumers,
    /// The log shipper's latest figures (`--ship`).
    ship: Option<Arc<Mutex<ShipSnapshot>>>,
    /// With a shipper and IDS instances that a restart replays into: stops the shipper when the
    /// run is stopped, before the instances reach the end of their streams (what they log then,
    /// flows cut short, is not shipped; the replay produces their records whole).
    ship_halter: Option<shardcap_ship::Halter>,
    /// What `--metrics-listen` serves.
    metrics: Option<Arc<Published>>,
    /// Files reported only once the consumers have read their last byte (Redis, given order).
    report_when_read: bool,
    /// Files finished and not reported yet, waiting for the consumers to read them.
    unread: Vec<(Entry, FileEnd)>,
    /// Files held for a whole-file read off this thread (duplicate check, `--since`), and the
    /// files cataloged so far, to read a duplicate once.
    screen: Screen,
}

/// Figures of the merge, the flow stage and the shard outputs, kept for stats shown while waiting.
#[derive(Default)]
struct Seen {
    merge: MergeStats,
    flow: FlowStats,
    shards: Vec<(String, ShardCounters)>,
    in_flight: u64,
}

/// Everything a run holds.
struct Dispatcher {
    ctx: Ctx,
    merge: Merge,
    /// `--since`/`--until`, `--filter`, `--dedup`.
    select: Option<Selector>,
    /// With `--since`: files' last packet times.
    spans: Option<SpanCache>,
    sharder: Sharder,
    reorder: Option<Reorder>,
    writers: Vec<ShardWriter>,
    /// Outputs opened before the stream header was known (their readers attached), with whether
    /// each resumes a journaled output.
    opened: Vec<(Box<dyn Output>, bool)>,
    /// Packets were written since the merge last ran dry.
    idle_flush_due: bool,
    /// The partition's lease (`--cluster`): its fence guards every write, and it is confirmed in
    /// Redis before each checkpoint.
    lease: Option<LeaseCheck>,
}

impl Dispatcher {
    fn new(
        args: RunArgs,
        spec: OutputSpec,
        intake: Box<dyn Intake>,
        signals: Signals,
        state: Option<StateKeeper>,
        consumers: Consumers,
    ) -> Self {
        let merge = Merge::new(args.order, args.max_open);
        let sharder = Sharder::partitioned(
            FlowConfig {
                hash: args.hash,
                tunnel: args.tunnel,
            },
            args.shards as usize,
            args.partition,
        );
        if !args.partition.is_whole() {
            log::info!(
                "partition {}: global shards {} to {} of {}",
                args.partition,
                args.partition.global(0, args.shards as usize),
                args.partition
                    .global(args.shards as usize - 1, args.shards as usize),
                args.shards as usize * args.partition.count as usize
            );
        }
        let window = args.reorder_window.as_nanos() as u64;
        let reorder = (window > 0).then(|| Reorder::new(window, args.reorder_buffer as usize));
        let report_when_read =
            args.auth == AuthMode::Redis && args.order == Order::Given && state.is_none();
        Dispatcher {
            ctx: Ctx {
                progress: Progress::new(args.progress, args.stats_interval),
                pacer: Pacer::new(args.max_pps),
                ship: None,
                ship_halter: None,
                metrics: None,
                args,
                spec,
                intake,
                signals,
                stats: RunStats::new(),
                header: None,
                incomplete: 0,
                late_link_files: HashSet::new(),
                last_report: Instant::now(),
                seen: Seen::default(),
                next_seq: 0,
                state,
                consumers,
                report_when_read,
                unread: Vec::new(),
                screen: Screen::default(),
            },
            merge,
            select: None,
            spans: None,
            sharder,
            reorder,
            writers: Vec::new(),
            opened: Vec::new(),
            idle_flush_due: false,
            lease: None,
        }
    }

    fn run(mut self) -> Result<i32> {
        let stopped = match self.stream() {
            Ok(stopped) => stopped,
            Err(e) => {
                // The instances' records at the end of a broken stream (cut flows) are not
                // shipped: a restart (or a node taking the partition over) streams it again.
                if let Some(h) = &self.ctx.ship_halter {
                    h.halt();
                }
                return Err(self.ctx.consumers.explain(e));
            }
        };
        if !self.opened.is_empty() {
            // Stopped before the first file: the readers get a complete, empty stream.
            self.open_outputs()?;
        }
        self.checkpoint(if stopped { Reason::Stop } else { Reason::End })
            .map_err(|e| self.ctx.consumers.explain(e))?;
        let Dispatcher {
            mut ctx,
            merge,
            sharder,
            writers,
            select,
            ..
        } = self;
        ctx.stats.select = select.as_ref().map(Selector::stats);
        let io_err = |e: io::Error| Error::runtime(e.to_string());
        ctx.stats.state = if stopped {
            State::Stopping
        } else {
            State::Done
        };
        let snapshot = ctx.snapshot(&merge, &sharder, &writers);
        if let Some(h) = ctx.ship_halter.as_ref().filter(|_| stopped) {
            h.halt();
            log::warn!(
                "shipping stopped with the run: a restart on the same --state replays the stream \
                 into fresh IDS instances and ships their records"
            );
        }
        let mut sent = Vec::with_capacity(writers.len());
        for w in writers {
            let counters = w.finish().map_err(|e| ctx.consumers.explain(io_err(e)))?;
            sent.push(counters.packets);
        }
        for (entry, end) in std::mem::take(&mut ctx.unread) {
            ctx.report_finished(&entry, &end);
        }
        let outcomes = ctx.consumers.finish()?;
        let unaccounted = accounting::reconcile(&outcomes, &sent);
        if let Some(s) = ctx.state.as_mut().filter(|_| !stopped) {
            s.done()?;
        }
        ctx.intake.close(stopped)?;
        ctx.publish(&snapshot);
        ctx.write_stats_file(&snapshot)?;
        ctx.progress.update(&snapshot);
        ctx.progress.finish();
        if log::max_level() >= log::LevelFilter::Warn {
            // The run's summary, on stderr unless -q.
            eprintln!(
                "{}",
                summary(&snapshot, ctx.incomplete, &outcomes, unaccounted)
            );
        }
        if stopped {
            log::warn!(
                "stopped by signal after {} packets; outputs are complete pcap streams",
                snapshot.packets
            );
        }
        if ctx.stats.dropped_linktype > 0 {
            log::warn!(
                "{} packets had another link type than the stream and were dropped",
                ctx.stats.dropped_linktype
            );
        }
        Ok(
            if ctx.incomplete > 0 || ctx.consumers.lost_packets > 0 || unaccounted > 0 {
                EXIT_SKIPPED
            } else {
                EXIT_OK
            },
        )
    }

    /// Streams until the intake is closed and every file is done, or a stop signal. Returns whether
    /// it was stopped.
    fn stream(&mut self) -> Result<bool> {
        self.ctx.stats.state = State::Running;
        self.open_early()?;
        loop {
            // Idle, with files held for their reads: look again soon.
            let idle_wait = match self.ctx.screen.is_empty() {
                true => IDLE_WAIT,
                false => SCREEN_WAIT,
            };
            let wait = self.merge.is_idle().then_some(idle_wait);
            let closed = if wait.is_none() && self.ctx.intake.batched() {
                false
            } else {
                self.look(wait)?
            };
            if closed && self.merge.is_idle() {
                if self.ctx.screen.is_empty() {
                    self.open_outputs()?;
                    return Ok(false);
                }
                // Nothing else comes: wait for the held files' reads.
                self.screened(Some(SCREEN_WAIT))?;
            }
            if self.pump()? {
                return Ok(true);
            }
            if self.merge.is_idle() && (self.idle_flush_due || !self.ctx.unread.is_empty()) {
                // Nothing more to read for now: let consumers see (and read) every packet, then
                // report the files they have read.
                self.idle_flush_due = false;
                if self.sync_outputs()? {
                    return Ok(true);
                }
                for (entry, end) in std::mem::take(&mut self.ctx.unread) {
                    self.ctx.report_finished(&entry, &end);
                }
            }
            if self.merge.is_idle() {
                if self
                    .ctx
                    .service(&mut self.merge, &self.sharder, &mut self.writers)?
                {
                    return Ok(true);
                }
                self.checkpoint_if_due()?;
            }
        }
    }

    /// The hot loop: packets from the merge to the shards until the merge runs dry or a stop.
    fn pump(&mut self) -> Result<bool> {
        let Some(header) = self.ctx.header else {
            return Ok(false);
        };
        let io_err = |e: io::Error| Error::runtime(e.to_string());
        let mut tick = self.ctx.tick();
        while let Some(slot) = self.merge.next(&mut self.ctx)? {
            self.idle_flush_due = true;
            if self.ctx.consumers.resume_due() {
                let (spec, stop) = (&self.ctx.spec, &self.ctx.signals.stop);
                self.ctx
                    .consumers
                    .resume(&mut self.writers, spec, header, stop)?;
            }
            let (pkt, verbatim) = self.merge.record(slot);
            if self.select.as_mut().is_some_and(|s| !s.keep(&pkt)) {
                // Left out by the selection (counted there).
            } else if pkt.linktype == header.linktype || self.ctx.converts(&pkt) {
                let (sharder, writers, normalised) = (
                    &mut self.sharder,
                    &mut self.writers,
                    &mut self.ctx.stats.normalised_linktype,
                );
                match &mut self.reorder {
                    None => deliver(
                        &pkt,
                        verbatim.as_ref(),
                        header.linktype,
                        sharder,
                        writers,
                        normalised,
                    ),
                    Some(r) => r.push(&pkt, |p| {
                        deliver(p, None, header.linktype, sharder, writers, normalised)
                    }),
                }
                .map_err(io_err)?;
            } else {
                self.ctx
                    .unwritable(self.merge.input(slot), pkt.linktype, header.linktype);
            }
            tick -= 1;
            if tick == 0 || self.ctx.signals.attention.load(Ordering::Relaxed) {
                tick = self.ctx.tick();
                self.note_reorder();
                if self
                    .ctx
                    .service(&mut self.merge, &self.sharder, &mut self.writers)?
                {
                    return Ok(true);
                }
                self.checkpoint_if_due()?;
                // The shards wait meanwhile: how long is kept (`longest_intake_ms`).
                let looked = Instant::now();
                if !self.ctx.intake.batched() {
                    // (A batched intake's next batch waits until this one is streamed.)
                    self.look(None)?;
                }
                let stats = &mut self.ctx.stats;
                stats.longest_intake = stats.longest_intake.max(looked.elapsed());
            }
        }
        Ok(false)
    }

    /// Writes out every held packet and waits until each output has it (a FIFO: until its reader
    /// has read it), serving signals meanwhile. Returns true when the run must stop.
    fn sync_outputs(&mut self) -> Result<bool> {
        self.flush_held()?;
        let acks: Vec<Receiver<io::Result<()>>> = (self.writers.iter_mut())
            .map(ShardWriter::request_sync)
            .collect::<io::Result<_>>()
            .map_err(|e| Error::runtime(e.to_string()))?;
        for (k, ack) in acks.iter().enumerate() {
            loop {
                match ack.recv_timeout(IDLE_WAIT / 5) {
                    Ok(r) => break r.map_err(Error::shard(k))?,
                    Err(RecvTimeoutError::Timeout) => {
                        let (merge, sharder, writers) =
                            (&mut self.merge, &self.sharder, &mut self.writers);
                        if self.ctx.service(merge, sharder, writers)? {
                            return Ok(true);
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(Error::runtime(format!("shard {k}: output closed")))
                    }
                }
            }
        }
        Ok(false)
    }

    /// Copies the reorder window's and the selection's counters into the run's stats (between
    /// packets).
    fn note_reorder(&mut self) {
        if let Some(r) = &self.reorder {
            self.ctx.stats.reorder = r.stats;
        }
        if let Some(s) = &self.select {
            self.ctx.stats.select = Some(s.stats());
        }
    }

    /// Writes out every packet still held by the reorder window and the flow stage.
    fn flush_held(&mut self) -> Result<()> {
        let linktype = self.ctx.header.map_or(0, |h| h.linktype);
        let (sharder, writers, normalised) = (
            &mut self.sharder,
            &mut self.writers,
            &mut self.ctx.stats.normalised_linktype,
        );
        if let Some(r) = &mut self.reorder {
            r.flush(|p| deliver(p, None, linktype, sharder, writers, normalised))
                .map_err(|e| Error::runtime(e.to_string()))?;
            self.ctx.stats.reorder = r.stats;
        }
        sharder
            .drain(|k, p| put(&mut writers[k], p, linktype, normalised))
            .map_err(|e| Error::runtime(e.to_string()))
    }

    /// With `--state`, a checkpoint when one is due.
    fn checkpoint_if_due(&mut self) -> Result<()> {
        match &self.ctx.state {
            Some(s) if s.due(&self.writers) => self.checkpoint(Reason::Interval),
            _ => Ok(()),
        }
    }

    /// Writes out held packets and, with `--state`, flushes every shard and records a checkpoint;
    /// the intake then hears of the files it committed as finished.
    fn checkpoint(&mut self, reason: Reason) -> Result<()> {
        self.flush_held()?;
        let Some(state) = &mut self.ctx.state else {
            return Ok(());
        };
        if let Some(lease) = &mut self.lease {
            let s = &self.ctx.stats;
            lease.confirm(&PartProgress {
                files_done: s.files_done,
                bytes_done: s.input_bytes_done,
                packets: shard_counters(&self.writers)
                    .iter()
                    .map(|(_, c)| c.packets)
                    .sum(),
                idle: self.merge.is_idle(),
            })?;
        }
        let header = self.ctx.header;
        for (entry, end) in state.checkpoint(reason, &self.merge, &mut self.writers, header)? {
            self.ctx.report_finished(&entry, &end);
        }
        Ok(())
    }

    /// One look at the intake: new files admitted, and held files whose reads came back entered
    /// (never waiting for those reads). Returns whether the intake is closed. What it read on this
    /// thread is counted (`intake_bytes_read`).
    fn look(&mut self, wait: Option<Duration>) -> Result<bool> {
        let before = thread_read_bytes();
        let arrivals = self.ctx.intake.poll(wait, &self.ctx.signals)?;
        let closed = matches!(arrivals, Arrivals::Closed);
        if let Arrivals::Files(c) = arrivals {
            self.admit(&c)?;
        }
        self.screened(None)?;
        self.ctx.stats.intake_bytes_read += thread_read_bytes() - before;
        Ok(closed)
    }

    /// Catalogs new files and hands them to the merge; the first files fix the stream header.
    /// A file whose admission needs a whole-file read (`--since`, a duplicate check) is held
    /// until that read, off this thread, comes back ([`Dispatcher::screened`]), while the others
    /// go on; a batched intake's batch waits for those reads before any of it is streamed, so
    /// its stream does not depend on their timing.
    fn admit(&mut self, candidates: &[Candidate]) -> Result<()> {
        let (entries, rejected) = build_catalog(candidates, self.ctx.next_seq);
        self.ctx.next_seq += candidates.len() as u64;
        self.ctx.stats.files_skipped += rejected.len() as u64;
        self.ctx.incomplete += rejected.len() as u64;
        for why in &rejected {
            self.ctx.intake.rejected(why)?;
        }
        let entries = match &mut self.ctx.state {
            Some(s) => {
                let (kept, dropped) = s.admit(entries);
                for (e, end) in &dropped {
                    // Damaged when streamed: the run still ends with exit 3 for it.
                    self.ctx.incomplete += u64::from(matches!(end, FileEnd::Damaged(_)));
                    self.ctx.report_finished(e, end);
                }
                kept
            }
            None => entries,
        };
        let batch = self.ctx.intake.batched();
        let mut entries = self.in_range(entries);
        if batch {
            entries = self.await_held(entries);
        }
        let mut entries = self.ctx.drop_duplicates(entries);
        if batch {
            entries = self.await_held(entries);
        }
        self.enter(entries)
    }

    /// Held files whose reads came back since the last look (with `wait`, waiting up to that
    /// long for one): finished (outside the time range, duplicates) or entered.
    fn screened(&mut self, wait: Option<Duration>) -> Result<()> {
        let ready = self.take_screened(wait);
        if ready.is_empty() {
            return Ok(());
        }
        self.enter(ready)
    }

    /// With a batch, waits until no file of it is held, then returns `entries` with the files
    /// let through by the reads (not checked further), in their order. A stop ends the wait
    /// (what is held is not streamed).
    fn await_held(&mut self, mut entries: Vec<Entry>) -> Vec<Entry> {
        while !self.ctx.screen.is_empty() && !self.ctx.signals.stop.load(Ordering::SeqCst) {
            let Screened { spans, verdicts } = self.ctx.screen.take(Some(SCREEN_WAIT));
            entries.extend(self.spans_read(spans));
            entries.extend(self.ctx.decided(verdicts));
        }
        entries.sort_by_key(|e| e.seq);
        entries
    }

    /// The held files whose reads came back (waiting up to `wait` for one), finished or let
    /// through: a file let through by its time range then has its duplicate check.
    fn take_screened(&mut self, wait: Option<Duration>) -> Vec<Entry> {
        let Screened { spans, verdicts } = self.ctx.screen.take(wait);
        let mut ready = Vec::new();
        if !spans.is_empty() {
            let read = self.spans_read(spans);
            ready = self.ctx.drop_duplicates(read);
        }
        ready.extend(self.ctx.decided(verdicts));
        ready.sort_by_key(|e| e.seq);
        ready
    }

    /// Hands cataloged, screened entries to the merge; the first fix the stream header.
    fn enter(&mut self, entries: Vec<Entry>) -> Result<()> {
        if let Some(sel) = &mut self.select {
            let linktypes = entries
                .iter()
                .flat_map(|e| e.info.linktypes.iter().copied());
            if let Err(e) = sel.prepare(linktypes) {
                if self.ctx.header.is_none() {
                    // Nothing was written yet.
                    return Err(Error::usage(e));
                }
                log::warn!("{e}; packets of that link type match nothing");
            }
        }
        if self.ctx.header.is_none() {
            self.ctx.header = match self.ctx.state.as_ref().and_then(StateKeeper::header) {
                Some(h) => Some(h),
                None if !entries.is_empty() => {
                    let args = &self.ctx.args;
                    Some(stream_header(&entries, args.link_type, args.link_mismatch)?)
                }
                None => None,
            };
        }
        let header = self.ctx.header;
        let normalise = header.is_some_and(|h| normalises(h.linktype, self.ctx.args.link_type));
        let mut admitted = Vec::with_capacity(entries.len());
        for e in entries {
            // Normalising, packets that do not convert are dropped and reported when met.
            let other = match header {
                Some(h) if !normalise => e.info.linktypes.iter().find(|&&lt| lt != h.linktype),
                _ => None,
            };
            match other {
                Some(lt) if self.ctx.args.link_mismatch == LinkMismatch::Error => {
                    // A file of the run that ends before it starts: counted, journaled, reported.
                    let why = format!(
                        "link type {lt} differs from the stream's {} (see --link-type, --link-mismatch)",
                        header.map_or(0, |h| h.linktype)
                    );
                    self.ctx.stats.files_total += 1;
                    self.ctx.stats.input_bytes_total += e.size;
                    self.ctx.finished(&e, 0, FileEnd::Skipped(why));
                }
                _ => admitted.push(e),
            }
        }
        self.ctx.stats.files_total += admitted.len() as u64;
        self.ctx.stats.input_bytes_total += admitted.iter().map(|e| e.size).sum::<u64>();
        self.merge.add(admitted);
        if self.ctx.header.is_none() {
            // Nothing readable yet: the first capture fixes the header.
            return Ok(());
        }
        self.open_outputs()
    }

    /// With `--since`/`--until`: the entries with packets in the range. A file wholly outside is
    /// finished without being read past its first packet and counted. With `--since`, the last
    /// packet time of a file starting before it comes from the catalog cache or the intake (a
    /// watched file's range); otherwise the file is held and read to its end off this thread
    /// ([`Dispatcher::spans_read`] takes it up then).
    fn in_range(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        let Some(range) = self.select.as_ref().map(Selector::range) else {
            return entries;
        };
        if range.is_all() {
            return entries;
        }
        let spans = self.spans.get_or_insert_with(SpanCache::default);
        let mut kept = Vec::with_capacity(entries.len());
        let mut outside = Vec::new();
        for e in entries {
            match spans.place(&range, &e, self.ctx.intake.last_ts(&e.path)) {
                Placed::Known(None) => kept.push(e),
                Placed::Known(Some(side)) => outside.push((e, side)),
                Placed::Unread => self.ctx.screen.read_span(e),
            }
        }
        self.left_out(outside);
        kept
    }

    /// Files held for their last packet time, read now: those wholly before the range are
    /// finished, the others returned.
    fn spans_read(&mut self, read: Vec<(Entry, Option<u64>)>) -> Vec<Entry> {
        let Some(range) = self.select.as_ref().map(Selector::range) else {
            return read.into_iter().map(|(e, _)| e).collect();
        };
        let spans = self.spans.get_or_insert_with(SpanCache::default);
        let mut kept = Vec::with_capacity(read.len());
        let mut outside = Vec::new();
        for (e, last) in read {
            spans.learned(&e, last);
            match e.first_ts.and_then(|first| range.outside(first, || last)) {
                None => kept.push(e),
                Some(side) => outside.push((e, side)),
            }
        }
        self.left_out(outside);
        kept
    }

    /// Finishes files wholly outside the time range (counted, not read), and saves what the
    /// catalog cache learned.
    fn left_out(&mut self, outside: Vec<(Entry, Side)>) {
        for (e, side) in outside {
            let side = if side == Side::Before {
                "before"
            } else {
                "after"
            };
            log::debug!(
                "{}: wholly {side} the time range; not read",
                e.path.display()
            );
            if let Some(sel) = &mut self.select {
                sel.stats.files_outside_range += 1;
            }
            self.ctx.stats.files_total += 1;
            self.ctx.stats.input_bytes_total += e.size;
            self.ctx.finished(&e, 0, FileEnd::Complete);
        }
        if let Some(spans) = &mut self.spans {
            spans.save_or_warn();
            log::info!(
                "last packet times: {} from the catalog cache, {} read to their end, {} from \
                 the intake",
                spans.hits,
                spans.scans,
                spans.told
            );
        }
        self.ctx.stats.select = self.select.as_ref().map(Selector::stats);
    }

    /// With `--auth redis`, outputs read by consumers started elsewhere (a FIFO's reader) are
    /// opened before any file is taken from the queue, as pcapdj opens its FIFO first: a queue
    /// filled after the dispatcher started is read, and no file is taken before there is a reader.
    fn open_early(&mut self) -> Result<()> {
        let args = &self.ctx.args;
        let own_consumers = args.ids.is_some() || args.exec.is_some();
        if args.auth != AuthMode::Redis || own_consumers || self.ctx.spec.needs_header() {
            return Ok(());
        }
        log::info!("waiting for every output's reader before taking files from the Redis queue");
        // The header is written later, once the first capture fixes it.
        let header = StreamHeader {
            linktype: 1,
            nanos: false,
            snaplen: 262_144,
        };
        match self.open_raw(header) {
            Ok(outs) => self.opened = outs,
            // A stop before every reader came: the run ends STOPPED, having taken nothing.
            Err(e) if self.ctx.signals.stop.load(Ordering::SeqCst) => log::info!("{e}"),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Opens every shard's output (a journaled output is resumed); FIFOs wait for their reader.
    fn open_raw(&mut self, header: StreamHeader) -> Result<Vec<(Box<dyn Output>, bool)>> {
        self.ctx.consumers.start(&self.ctx.signals.attention)?;
        let args = &self.ctx.args;
        let shards = args.shards as usize;
        let options = OutputOptions {
            spool: SpoolConfig {
                segment_size: args.segment_size,
                segment_age: args.segment_age,
                backlog: args.spool_backlog as usize,
            },
            pipe_size: args.pipe_size as usize,
            file_io: args.file_io,
            file_buffer: file_buffer_size(shards),
        };
        let (spec, stop, state) = (&self.ctx.spec, &self.ctx.signals.stop, &self.ctx.state);
        if self.ctx.consumers.any() {
            // Each output opens (and its consumer starts) when its shard's first packet comes.
            let spec = spec.clone();
            let outs = self
                .ctx
                .consumers
                .open_outputs(shards, stop, move |k, stop| {
                    spec.open(k, header, &options, stop)
                });
            return Ok(outs.into_iter().map(|o| (o, false)).collect());
        }
        let mut outs = Vec::with_capacity(shards);
        for k in 0..shards {
            outs.push(
                match state
                    .as_ref()
                    .map(|s| s.resume_output(k, &options))
                    .transpose()?
                {
                    Some(Some(out)) => (out, true),
                    _ => (spec.open(k, header, &options, stop)?, false),
                },
            );
        }
        Ok(outs)
    }

    /// Starts every shard's writer once the header is known (or at the end, for an empty run), on
    /// the outputs opened early or opened now. SIGUSR1 holds them (see [`Brake`]).
    fn open_outputs(&mut self) -> Result<()> {
        if !self.writers.is_empty() {
            return Ok(());
        }
        let header = *self.ctx.header.get_or_insert(StreamHeader {
            linktype: 1,
            nanos: false,
            snaplen: 262_144,
        });
        let outs = match std::mem::take(&mut self.opened) {
            o if o.is_empty() => self.open_raw(header)?,
            o => o,
        };
        let brake = Brake {
            flag: self.ctx.signals.brake.clone(),
            chunk: self.ctx.args.pipe_size as usize,
            fence: self
                .lease
                .as_ref()
                .map_or_else(Fence::open, LeaseCheck::fence),
            file_buffer: file_buffer_size(outs.len()),
        };
        for (k, (out, resumed)) in outs.into_iter().enumerate() {
            let w = ShardWriter::start_braked(out, header, !resumed, brake.clone())
                .map_err(Error::shard(k))?;
            self.writers.push(w);
        }
        Ok(())
    }
}

/// The line a finished run ends with: what went where, what was skipped, and how the consumers
/// ended.
fn summary(snap: &Snapshot, incomplete: u64, outcomes: &[Outcome], unaccounted: usize) -> String {
    let mut line = format!(
        "shardcap: {} packets ({} bytes) from {} files to {} shards in {:.1}s",
        snap.packets,
        snap.cap_lengths,
        snap.files_done,
        snap.shards.len(),
        snap.uptime_s
    );
    if snap.flow.partition_skipped > 0 {
        line += &format!(
            "; {} packets of other partitions skipped",
            snap.flow.partition_skipped
        );
    }
    if incomplete > 0 {
        line += &format!("; {incomplete} files skipped or damaged (see above)");
    }
    if let Some(s) = &snap.select {
        let parts: Vec<String> = [
            (s.files_outside_range, "files outside the time range"),
            (s.packets_before_range, "packets before the range"),
            (s.packets_after_range, "packets after the range"),
            (s.packets_filtered, "packets not matching the filter"),
            (s.packets_duplicate, "duplicate packets"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !parts.is_empty() {
            line += &format!("; left out: {}", parts.join(", "));
        }
    }
    if snap.files_duplicate > 0 {
        line += &format!(
            "; {} duplicate files read once (see above)",
            snap.files_duplicate
        );
    }
    if !outcomes.is_empty() {
        let idle = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::NotStarted))
            .count();
        line += &format!(
            "; {} IDS instances finished, {idle} shards without packets started none",
            outcomes.len() - idle
        );
        if unaccounted > 0 {
            line += &format!("; {unaccounted} instances report other packet counts (see above)");
        }
    }
    line
}

/// Input bytes read of the files open in the merge (for progress and ETA).
fn in_flight_bytes(merge: &Merge) -> u64 {
    merge
        .open_inputs()
        .map(|i| i.capture.record_offset().min(i.entry.size))
        .sum()
}

/// Each shard output's name and counters.
fn shard_counters(writers: &[ShardWriter]) -> Vec<(String, ShardCounters)> {
    writers
        .iter()
        .map(|w| (w.name().to_string(), w.counters))
        .collect()
}

/// Sends one packet to its shard (its flow key from the packet as captured). `verbatim` is its
/// record as read, when it may be written from there.
#[inline(always)]
fn deliver(
    pkt: &Packet,
    verbatim: Option<&Verbatim>,
    linktype: u32,
    sharder: &mut Sharder,
    writers: &mut [ShardWriter],
    normalised: &mut u64,
) -> io::Result<()> {
    // The common case writes in line; the general path takes the same writing as a callback.
    match sharder.direct(pkt) {
        Direct::Shard(k) => match verbatim {
            Some(v) if pkt.linktype == linktype => writers[k].write_verbatim(pkt, v),
            _ => put(&mut writers[k], pkt, linktype, normalised),
        },
        Direct::Elsewhere => Ok(()),
        Direct::General => sharder.route_general(pkt, &mut |k, p| {
            put(&mut writers[k], p, linktype, normalised)
        }),
    }
}

/// Writes one packet to a shard of link type `linktype`, as an Ethernet frame when it has another.
#[inline(always)]
fn put(w: &mut ShardWriter, p: &Packet, linktype: u32, normalised: &mut u64) -> io::Result<()> {
    if p.linktype == linktype {
        w.write(p)
    } else {
        put_reframed(w, p, normalised)
    }
}

#[inline(never)]
fn put_reframed(w: &mut ShardWriter, p: &Packet, normalised: &mut u64) -> io::Result<()> {
    // The hot loop passes on only packets that convert (`Ctx::converts`).
    let Some(r) = Reframe::ethernet(p.linktype, p.data) else {
        return Ok(());
    };
    *normalised += 1;
    w.write_reframed(p, &r)
}

/// Whether a stream of `linktype` takes other link types as Ethernet frames under `mode`.
fn normalises(linktype: u32, mode: LinkType) -> bool {
    linktype == LINKTYPE_ETHERNET && mode != LinkType::Keep
}

/// Probes every candidate; logs and returns what cannot be read.
fn build_catalog(candidates: &[Candidate], first_seq: u64) -> (Vec<Entry>, Vec<Rejected>) {
    let mut entries = Vec::with_capacity(candidates.len());
    let mut rejected = Vec::new();
    for (i, cand) in candidates.iter().enumerate() {
        match catalog::probe(first_seq + i as u64, cand) {
            Ok(e) => entries.push(e),
            Err(why @ Rejected::NotCapture { explicit: true, .. }) => {
                log::warn!(
                    "{}: byte 0: not a pcap or pcapng capture (by content); skipped",
                    cand.path.display()
                );
                rejected.push(why);
            }
            Err(Rejected::NotCapture {
                path,
                explicit: false,
            }) => {
                log::debug!("{}: not a capture; ignored", path.display());
            }
            Err(why @ Rejected::Unreadable { .. }) => {
                if let Rejected::Unreadable { path, error } = &why {
                    log::warn!(
                        "{}: {error}; skipped (check the file, then rerun it alone)",
                        path.display()
                    );
                }
                rejected.push(why);
            }
        }
    }
    (entries, rejected)
}

/// The one header every shard stream carries: the inputs' link type (Ethernet when they differ
/// and `mode` is auto, always with ethernet) and the finest precision.
fn stream_header(
    entries: &[Entry],
    mode: LinkType,
    mismatch: LinkMismatch,
) -> Result<StreamHeader> {
    let all = || {
        entries
            .iter()
            .flat_map(|e| e.info.linktypes.iter().map(move |&lt| (lt, e)))
    };
    let first = all().next();
    let mixed = all().any(|(lt, _)| Some(lt) != first.map(|(f, _)| f));
    let linktype = match (mode, first) {
        (LinkType::Keep, Some((lt, _))) => lt,
        (LinkType::Auto, Some((lt, _))) if !mixed => lt,
        _ => LINKTYPE_ETHERNET,
    };
    // Normalising, a packet that does not convert is dropped and reported when met: an
    // interface of another link type may well carry none.
    let normalise = normalises(linktype, mode);
    let refused = all().find(|&(lt, _)| lt != linktype).filter(|_| !normalise);
    if let (Some((lt, e)), Some((first, f)), LinkMismatch::Error) = (refused, first, mismatch) {
        let other = if f.seq == e.seq {
            "its first interface".to_string()
        } else {
            f.path.display().to_string()
        };
        return Err(Error::usage(format!(
            "{} has link type {lt} but {other} has {first}; one stream carries one link type (use \
             --link-type ethernet or --link-mismatch drop, or run them separately)",
            e.path.display(),
        )));
    }
    let snaplen = entries.iter().map(|e| e.info.snaplen).max().unwrap_or(0);
    // A converted packet may grow by an Ethernet header.
    let grow = if normalise && all().any(|(lt, _)| lt != linktype) {
        reframe::ETHERNET_HEADER_LEN as u32
    } else {
        0
    };
    Ok(StreamHeader {
        linktype,
        nanos: entries.iter().any(|e| e.info.nanos),
        snaplen: snaplen.saturating_add(grow).max(262_144),
    })
}

impl MergeHooks for Ctx {
    fn opening(&mut self, entry: &Entry) -> Result<bool> {
        log::debug!("{}: opening", entry.path.display());
        self.consumers.at_file_boundary();
        let mut waited = false;
        while self.intake.authorize(entry, &self.signals)? == Gate::NotYet {
            if self.signals.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            if !waited {
                // A controller may hold the next authorization until it hears of the files
                // finished before: tell it now rather than at the next checkpoint.
                let early = self.state.as_mut().map(StateKeeper::report_early);
                for (done, end) in early.unwrap_or_default() {
                    self.report_finished(&done, &end);
                }
            }
            waited = true;
            self.stats.state = State::Waiting;
            if self.signals.suspended() && !self.signals.stop.load(Ordering::SeqCst) {
                // Held here too: the authorization is taken only once resumed.
                self.hold(&|ctx| ctx.waiting_snapshot(entry))?;
            }
            self.serve_waiting(entry)?;
        }
        if waited {
            self.stats.state = State::Running;
        }
        self.stats.files_opened += 1;
        Ok(true)
    }

    fn resume_offset(&mut self, entry: &Entry) -> Option<u64> {
        self.state.as_mut()?.resume_offset(entry)
    }

    fn irregular(&mut self, entry: &Entry, found: &Anomalies) {
        self.incomplete += 1;
        for line in found.lines() {
            log::warn!(
                "{}: {line}; read on and kept the packets (check the file)",
                entry.path.display()
            );
        }
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
            FileEnd::Skipped(why) if self.signals.stop.load(Ordering::SeqCst) => {
                log::info!(
                    "{}: not started ({why}); left for the next run",
                    entry.path.display()
                );
            }
            FileEnd::Skipped(why) => {
                self.stats.files_skipped += 1;
                self.incomplete += 1;
                log::warn!("{}: skipped: {why}", entry.path.display());
            }
            FileEnd::Duplicate(_) => {}
        }
        match &mut self.state {
            // The intake hears of it once a checkpoint has committed it.
            Some(s) => s.finished(entry, packets, end),
            None if self.report_when_read => self.unread.push((entry.clone(), end)),
            None => self.report_finished(entry, &end),
        }
    }
}

impl Ctx {
    /// The files of `entries` that collide with no file cataloged before; the others are held
    /// for their duplicate check ([`Ctx::decided`] takes them up then).
    fn drop_duplicates(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        entries
            .into_iter()
            .filter_map(|e| self.screen.check_duplicate(e))
            .collect()
    }

    /// Checked files: each with the same packets as a file cataloged before is finished at once,
    /// as a duplicate of that file; the others are returned.
    fn decided(&mut self, verdicts: Vec<(Entry, Option<PathBuf>)>) -> Vec<Entry> {
        let mut kept = Vec::with_capacity(verdicts.len());
        for (e, original) in verdicts {
            let Some(original) = original else {
                kept.push(e);
                continue;
            };
            log::warn!(
                "{}: the same packets as {}; read once",
                e.path.display(),
                original.display()
            );
            self.stats.files_duplicate += 1;
            self.stats.files_total += 1;
            self.stats.input_bytes_total += e.size;
            self.finished(&e, 0, FileEnd::Duplicate(original));
        }
        kept
    }

    /// Whether a packet of another link type than the stream's is written as an Ethernet frame.
    #[cold]
    fn converts(&self, pkt: &Packet) -> bool {
        let stream = self.header.map_or(0, |h| h.linktype);
        normalises(stream, self.args.link_type)
            && Reframe::ethernet(pkt.linktype, pkt.data).is_some()
    }

    /// A packet the stream cannot carry: its link type was declared after the file's first packet
    /// (so the catalog could not refuse the file), or it does not convert to Ethernet. It is
    /// dropped and counted; unless `--link-mismatch drop`, the file is reported and the run ends
    /// with exit 3.
    #[cold]
    fn unwritable(&mut self, input: &OpenInput, linktype: u32, stream: u32) {
        self.stats.dropped_linktype += 1;
        if self.args.link_mismatch == LinkMismatch::Error
            && self.late_link_files.insert(input.entry.seq)
        {
            self.incomplete += 1;
            let what = if normalises(stream, self.args.link_type) {
                "whose payload cannot be written as an Ethernet frame".to_string()
            } else {
                format!("declared after the first packet, but the stream carries {stream}")
            };
            log::warn!(
                "{}: byte {}: packet on link type {linktype}, {}; dropped such packets (use \
                 --link-mismatch drop, or run the file separately)",
                input.entry.path.display(),
                input.capture.record_offset(),
                what
            );
        }
    }

    /// Tells the intake that the run is finished with `entry`.
    fn report_finished(&mut self, entry: &Entry, end: &FileEnd) {
        if let Err(e) = self.intake.finished(entry, end) {
            log::error!(
                "{}: could not record the end of the file: {e}",
                entry.path.display()
            );
        }
    }

    /// Packets between two calls of [`Ctx::service`] from the hot loop.
    fn tick(&self) -> u32 {
        self.pacer
            .as_ref()
            .map_or(TICK_PACKETS, |p| p.tick(TICK_PACKETS))
    }

    /// Handles pending signals and periodic work (stats file, progress, pacing); returns true when
    /// the run must stop.
    fn service(
        &mut self,
        merge: &mut Merge,
        sharder: &Sharder,
        writers: &mut [ShardWriter],
    ) -> Result<bool> {
        self.signals.attention.store(false, Ordering::SeqCst);
        self.seen = Seen {
            merge: merge.stats,
            flow: sharder.stats(),
            shards: shard_counters(writers),
            in_flight: in_flight_bytes(merge),
        };
        self.consumers.check()?;
        if self.signals.stats.swap(false, Ordering::SeqCst) {
            self.report(merge, sharder, writers)?;
        }
        if self.signals.suspended() && !self.signals.stop.load(Ordering::SeqCst) {
            self.hold(&|ctx| ctx.snapshot(merge, sharder, writers))?;
        }
        let snapshot = self.snapshot(merge, sharder, writers);
        self.publish(&snapshot);
        if let Some(p) = &mut self.pacer {
            p.wait(snapshot.packets, self.stats.suspended);
        }
        self.progress.update(&snapshot);
        if self.last_report.elapsed() >= self.args.stats_interval {
            self.last_report = Instant::now();
            self.write_stats_file(&snapshot)?;
        }
        Ok(self.signals.stop.load(Ordering::SeqCst))
    }

    /// SIGUSR1: holds the stream where it is until SIGUSR1 comes again or a stop signal. Inputs
    /// and outputs stay open; the shard writers stopped handing data over when the signal came
    /// (their brake), and what they hold stays queued. `snapshot` gives the figures for stats.
    fn hold(&mut self, snapshot: &dyn Fn(&Self) -> Snapshot) -> Result<()> {
        let before = self.stats.state;
        self.stats.state = State::Suspended;
        self.stats.suspensions = self.signals.suspensions();
        self.info_line("[INFO] Suspending pcapdj")?;
        self.write_stats_file(&snapshot(self))?;
        log::warn!("suspended (SIGUSR1 again resumes)");
        let mut tick = Instant::now();
        while self.signals.suspended() && !self.signals.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            self.stats.suspended += tick.elapsed();
            tick = Instant::now();
            if self.signals.stats.swap(false, Ordering::SeqCst) {
                let snap = snapshot(self);
                self.print(&snap)?;
                self.write_stats_file(&snap)?;
            }
            if self.last_report.elapsed() >= self.args.stats_interval {
                self.last_report = Instant::now();
                self.write_stats_file(&snapshot(self))?;
            }
            if self.metrics.is_some() {
                self.publish(&snapshot(self));
            }
        }
        self.stats.state = before;
        self.info_line("[INFO] Resuming pcapdj")?;
        log::warn!("resumed");
        Ok(())
    }

    /// With `--stats-format pcapdj`, one of pcapdj's `[INFO]` lines where its stats go.
    fn info_line(&self, line: &str) -> Result<()> {
        if self.args.stats_format != StatsFormat::Pcapdj {
            return Ok(());
        }
        let write = |out: &mut dyn io::Write| writeln!(out, "{line}").and_then(|_| out.flush());
        if self.spec.is_stdout() {
            write(&mut io::stderr().lock())?;
        } else {
            write(&mut io::stdout().lock())?;
        }
        Ok(())
    }

    /// SIGUSR2: stats lines and the stats file.
    fn report(&self, merge: &Merge, sharder: &Sharder, writers: &[ShardWriter]) -> Result<()> {
        let snapshot = self.snapshot(merge, sharder, writers);
        self.print(&snapshot)?;
        self.write_stats_file(&snapshot)
    }

    /// Hands `snap` to the metrics server, if one runs.
    fn publish(&self, snap: &Snapshot) {
        if let Some(m) = &self.metrics {
            m.run(snap, self.intake.reachable());
        }
    }

    /// Stats and the stats file while the merge waits for `entry`'s authorization.
    fn serve_waiting(&mut self, entry: &Entry) -> Result<()> {
        if self.metrics.is_some() {
            self.publish(&self.waiting_snapshot(entry));
        }
        if self.signals.stats.swap(false, Ordering::SeqCst) {
            self.print(&self.waiting_snapshot(entry))?;
        }
        if self.last_report.elapsed() >= self.args.stats_interval {
            self.last_report = Instant::now();
            self.write_stats_file(&self.waiting_snapshot(entry))?;
        }
        Ok(())
    }

    /// The figures while the merge waits for `entry`'s authorization (those of the last
    /// [`Ctx::service`]: the merge is not at hand inside it).
    fn waiting_snapshot(&self, entry: &Entry) -> Snapshot {
        let current = Some(entry.path.display().to_string());
        let seen = &self.seen;
        let snap =
            self.stats
                .snapshot(current, seen.in_flight, seen.merge, seen.flow, &seen.shards);
        self.signalled(snap)
    }

    fn snapshot(&self, merge: &Merge, sharder: &Sharder, writers: &[ShardWriter]) -> Snapshot {
        let current = merge
            .open_inputs()
            .next()
            .map(|i| i.entry.path.display().to_string());
        let snap = self.stats.snapshot(
            current,
            in_flight_bytes(merge),
            merge.stats,
            sharder.stats(),
            &shard_counters(writers),
        );
        self.signalled(snap)
    }

    /// A snapshot with the shipper's figures, and the suspension as the signals state it: from
    /// the moment SIGUSR1 is taken, before the dispatcher reaches its next look at them.
    fn signalled(&self, mut snap: Snapshot) -> Snapshot {
        snap.ship = self.ship_figures();
        snap.suspensions = self.signals.suspensions();
        if self.signals.suspended() && !self.signals.stop.load(Ordering::SeqCst) {
            snap.state = State::Suspended;
        }
        snap
    }

    /// The shipper's latest figures, if it runs.
    fn ship_figures(&self) -> Option<ShipSnapshot> {
        let latest = self.ship.as_ref()?;
        Some(latest.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn print(&self, snap: &Snapshot) -> Result<()> {
        let pcapdj = self.args.stats_format == StatsFormat::Pcapdj;
        let write = |out: &mut dyn io::Write| {
            if pcapdj {
                snap.write_pcapdj_lines(out)
            } else {
                snap.write_lines(out)
            }
        };
        if self.spec.is_stdout() {
            write(&mut io::stderr().lock())?;
        } else {
            write(&mut io::stdout().lock())?;
        }
        Ok(())
    }

    fn write_stats_file(&self, snap: &Snapshot) -> Result<()> {
        let Some(path) = &self.args.stats_file else {
            return Ok(());
        };
        report::write_json_atomic(path, snap)
    }
}

#[cfg(test)]
mod tests;
