//! The shipping loop: walks the log directories, reads every file's new complete lines into bulk
//! batches, hands full (or due) batches to the senders, and applies their answers strictly in batch
//! order, so a file's checkpoint only ever moves past records that are all acknowledged, whatever
//! order the requests in flight complete in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, RetryPolicy};
use crate::batch::Batch;
use crate::checkpoint::{CheckpointStore, FileState};
use crate::client::{EsClient, Failure};
use crate::config::{Control, ShipConfig, Target};
use crate::content_id::{content_hash, content_key};
use crate::deadletter::{DeadLetter, Entry, Reason};
use crate::document::{Encoded, Encoder};
use crate::error::{Error, Result};
use crate::handle::ShipHandle;
use crate::identity::{file_key, DocId, FileId, Fingerprint};
use crate::in_order::{newly_acknowledged, InOrder};
use crate::logformat::in_shard_dir;
use crate::ndjson_out::NdjsonOut;
use crate::sender::{Delivered, Interrupted, Outcome, Senders, Transport};
use crate::stats::{Clock, ShipCounters, ShipSnapshot};
use crate::tail::{Identified, Registration, Tailed};
use crate::templates;
use crate::watch;
use crate::watermark::Watermark;

/// First read size per file and pass; grows for longer lines up to `MAX_LINE`.
const CHUNK: usize = 1 << 20;
/// Longest line shipped; a longer one is dead-lettered (its first KiB) and skipped.
const MAX_LINE: usize = 64 << 20;
/// Least time between two checkpoint writes (they are fsync'd).
const SAVE_INTERVAL: Duration = Duration::from_millis(200);
/// Longest idle wait between two looks at the files.
const POLL: Duration = Duration::from_millis(100);
/// Most log files held open at once; beyond it, caught-up files are closed and the others wait.
const MAX_OPEN: usize = 256;

/// What a shipper did.
#[derive(Debug, Clone, Copy)]
pub struct ShipSummary {
    pub counters: ShipCounters,
    /// Stopped by a signal before everything was shipped.
    pub stopped: bool,
}

/// What one look at a file gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Nothing,
    Progress,
    NotALog,
}

/// A running shipper.
pub struct Shipper {
    cfg: ShipConfig,
    roots: Vec<PathBuf>,
    files: BTreeMap<u32, Tailed>,
    by_id: HashMap<FileId, u32>,
    ignored: HashSet<FileId>,
    next_slot: u32,
    store: Option<CheckpointStore>,
    state_dir_id: Option<FileId>,
    dlq: DeadLetter,
    encoder: Encoder,
    senders: Senders,
    ndjson: Option<Arc<NdjsonOut>>,
    batch: Batch,
    spare: Vec<u8>,
    next_seq: u64,
    arrived: InOrder<Delivered>,
    in_flight: usize,
    /// A batch ended without an answer: nothing after it may be acknowledged.
    blocked: bool,
    fatal: Option<String>,
    ctl: Control,
    counters: ShipCounters,
    clock: Clock,
    buf: Vec<u8>,
    scanned_once: bool,
    last_scan: Option<Instant>,
    last_save: Instant,
    last_report: Instant,
    /// The latest snapshot, for a dispatcher that runs this shipper (`run --ship`).
    published: Option<Arc<Mutex<ShipSnapshot>>>,
    /// How far the acknowledged records reach in time, per shard.
    marks: Watermark,
    state_label: &'static str,
}

/// A run id: the start time and 16 random bits (`20240301T120000Z-3f2a`).
fn generate_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = Vec::new();
    crate::timestamp::UtcTime {
        secs: now.as_secs() as i64,
        nanos: 0,
    }
    .write_rfc3339(&mut t);
    let compact: String = String::from_utf8_lossy(&t[..19])
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let salt = shardcap_flow::hash::mix64(now.as_nanos() as u64 ^ u64::from(std::process::id()));
    format!("{compact}Z-{:04x}", salt & 0xffff)
}

/// Retries `f` while it fails for now (the server is starting, or down); other failures are
/// configuration errors (exit 2).
fn at_start<T>(
    what: &str,
    stop: &AtomicBool,
    policy: RetryPolicy,
    mut f: impl FnMut() -> std::result::Result<T, Failure>,
) -> Result<T> {
    let mut backoff = Backoff::new(policy, 0);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(Failure::Retry(why)) => {
                log::warn!("{what}: {why}; retrying");
                if !backoff.sleep(stop) {
                    return Err(Error::runtime(format!("{what}: stopped while waiting ({why})")));
                }
            }
            Err(Failure::Auth(why)) => {
                return Err(Error::usage(format!(
                    "{what}: {why} (check --es-user/--es-password, the URL's credentials or --es-api-key)"
                )))
            }
            Err(e) => return Err(Error::usage(format!("{what}: {e}"))),
        }
    }
}

impl Shipper {
    /// Connects (waiting for the server while it refuses connections), installs the templates,
    /// opens the state directory. Every failure here is a configuration error (exit 2), except a
    /// stop while waiting. `ctl` steers it from then on.
    pub fn new(cfg: ShipConfig, roots: Vec<PathBuf>, ctl: Control) -> Result<Self> {
        let stop = &ctl.stop;
        cfg.naming.validate()?;
        if cfg.max_in_flight == 0 || cfg.limits.docs == 0 || cfg.limits.bytes == 0 {
            return Err(Error::usage(
                "--max-in-flight, --batch-docs and --batch-bytes must be at least 1",
            ));
        }
        let Some(first_root) = roots.first() else {
            return Err(Error::usage("name at least one LOGDIR"));
        };
        let (transport, ndjson, state_dir): (Arc<dyn Transport>, _, _) = match &cfg.target {
            Target::Elasticsearch(t) => {
                let client = EsClient::new(t, cfg.max_in_flight)?;
                let what = format!("Elasticsearch at {}", client.base());
                let info = at_start(&what, stop, cfg.retry, || client.request("GET", "/", None))?;
                let version = serde_json::from_slice::<serde_json::Value>(&info)
                    .ok()
                    .and_then(|v| v["version"]["number"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "unknown".into());
                log::info!("{what}: version {version}");
                if cfg.templates {
                    at_start("installing index templates", stop, cfg.retry, || {
                        templates::install(&client, &cfg.naming)
                    })?;
                }
                let dir = cfg
                    .state
                    .clone()
                    .unwrap_or_else(|| first_root.join(".ship"));
                (Arc::new(client), None, Some(dir))
            }
            Target::Ndjson(path) => {
                if cfg.state.is_some() {
                    return Err(Error::usage(
                        "--state goes with --es; the NDJSON output is written whole on every run",
                    ));
                }
                let out = NdjsonOut::create(path.as_deref()).map_err(|e| {
                    Error::usage(format!(
                        "{}: cannot create the output: {e}",
                        path.as_deref()
                            .map_or("stdout".into(), |p| p.display().to_string())
                    ))
                })?;
                let out = Arc::new(out);
                (out.clone(), Some(out), None)
            }
        };
        Self::assemble(cfg, roots, ctl, transport, ndjson, state_dir)
    }

    /// A shipper delivering through `transport`, its checkpoints in `state_dir` (none: no
    /// checkpoints).
    fn assemble(
        cfg: ShipConfig,
        roots: Vec<PathBuf>,
        ctl: Control,
        transport: Arc<dyn Transport>,
        ndjson: Option<Arc<NdjsonOut>>,
        state_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let store = state_dir
            .map(|d| CheckpointStore::open(&d, cfg.run_id.as_deref(), generate_run_id))
            .transpose()?;
        let run_id = match &store {
            Some(s) => s.run_id().to_string(),
            None => cfg.run_id.clone().unwrap_or_else(generate_run_id),
        };
        let state_dir_id = store
            .as_ref()
            .and_then(|s| std::fs::metadata(s.dir()).ok())
            .map(|m| FileId::of(&m));
        let senders = Senders::start(
            transport,
            if ndjson.is_some() {
                1
            } else {
                cfg.max_in_flight
            },
            cfg.retry,
        );
        log::info!("run id {run_id}, sensor {}", cfg.sensor);
        Ok(Shipper {
            encoder: Encoder::new(cfg.naming.clone(), cfg.ecs, &run_id, &cfg.sensor),
            dlq: DeadLetter::new(store.as_ref().map(|s| s.dir())),
            cfg,
            roots,
            files: BTreeMap::new(),
            by_id: HashMap::new(),
            ignored: HashSet::new(),
            next_slot: 0,
            store,
            state_dir_id,
            senders,
            ndjson,
            batch: Batch::new(0),
            spare: Vec::new(),
            next_seq: 0,
            arrived: InOrder::default(),
            in_flight: 0,
            blocked: false,
            fatal: None,
            ctl,
            counters: ShipCounters::default(),
            clock: Clock::start(),
            buf: Vec::new(),
            scanned_once: false,
            last_scan: None,
            last_save: Instant::now(),
            last_report: Instant::now(),
            published: None,
            marks: Watermark::default(),
            state_label: "Starting",
        })
    }

    /// Refreshes `latest` with the shipper's figures on each turn of its loop (metrics).
    pub fn publish_to(&mut self, latest: Arc<Mutex<ShipSnapshot>>) {
        *latest.lock().unwrap_or_else(|e| e.into_inner()) = self.snapshot();
        self.published = Some(latest);
    }

    /// Starts a following shipper on its own thread (for `shardcap run --ship`); startup errors are
    /// returned here.
    pub fn spawn(cfg: ShipConfig, roots: Vec<PathBuf>) -> Result<ShipHandle> {
        let ctl = Control::default();
        let (finish, stop) = (ctl.finish.clone(), ctl.stop.clone());
        let mut shipper = Shipper::new(cfg, roots, ctl)?;
        let latest = Arc::new(Mutex::new(ShipSnapshot::default()));
        shipper.publish_to(latest.clone());
        let watermark = shipper.marks.shared();
        let ended = Arc::new(AtomicBool::new(false));
        let ended_in_thread = ended.clone();
        let thread = std::thread::Builder::new()
            .name("ship".into())
            .spawn(move || {
                /// Raises the flag however the loop ends (a panic included).
                struct Ended(Arc<AtomicBool>);
                impl Drop for Ended {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _ended = Ended(ended_in_thread);
                shipper.run()
            })?;
        Ok(ShipHandle {
            finish,
            stop,
            latest,
            watermark,
            ended,
            thread: Some(thread),
        })
    }

    /// Ships until caught up (or, following, until stopped or told to finish).
    pub fn run(&mut self) -> Result<ShipSummary> {
        let mut idle_scanned = false;
        let mut stopped = false;
        self.state_label = "Running";
        loop {
            if self.stopping() {
                stopped = true;
                break;
            }
            if self.fatal.is_some() {
                break;
            }
            self.service()?;
            if self.ctl.suspended() {
                self.state_label = "Suspended";
                if !self.collect(POLL)? {
                    std::thread::sleep(POLL);
                }
                continue;
            }
            self.state_label = if self.senders.counters.backing_off.load(Ordering::Relaxed) > 0 {
                "Waiting for Elasticsearch"
            } else {
                "Running"
            };
            let finishing = !self.cfg.follow || self.ctl.finish.load(Ordering::SeqCst);
            if self
                .last_scan
                .is_none_or(|t| t.elapsed() >= self.cfg.scan_interval)
            {
                self.scan(finishing)?;
            }
            let progressed = self.read_pass()?;
            if progressed {
                idle_scanned = false;
            }
            let limits = self.cfg.limits;
            let idle_flush =
                !progressed && !self.batch.is_empty() && (finishing || self.batch.items.is_empty());
            if self.batch.is_full(&limits) || self.batch.is_due(&limits) || idle_flush {
                self.seal()?;
            }
            while self.collect(Duration::ZERO)? {}
            self.save(false)?;
            if progressed {
                continue;
            }
            if finishing && self.batch.is_empty() && self.in_flight == 0 {
                if idle_scanned {
                    break;
                }
                self.scan(true)?;
                idle_scanned = true;
                continue;
            }
            let wait = self
                .batch
                .opened
                .map_or(POLL, |t| limits.wait.saturating_sub(t.elapsed()).min(POLL));
            if !self.collect(wait)? {
                std::thread::sleep(if self.in_flight == 0 {
                    wait
                } else {
                    Duration::ZERO
                });
            }
        }
        self.wind_down(stopped)
    }

    /// Waits for the requests in flight (giving up retries when stopped), saves the checkpoints.
    fn wind_down(&mut self, stopped: bool) -> Result<ShipSummary> {
        self.state_label = "Stopping";
        if stopped || self.fatal.is_some() {
            self.senders.abort.store(true, Ordering::SeqCst);
        }
        while self.in_flight > 0 {
            self.collect(Duration::from_millis(200))?;
        }
        self.save(true)?;
        self.senders.shutdown();
        if let Some(out) = &self.ndjson {
            out.finish()
                .map_err(|e| Error::runtime(format!("finishing the NDJSON output: {e}")))?;
        }
        for t in self.files.values() {
            if t.source.is_some() && t.read_pos < t.size && !stopped {
                log::warn!(
                    "{}: {} bytes after the last newline were not shipped (an incomplete line)",
                    t.path.display(),
                    t.size - t.read_pos
                );
            }
        }
        self.state_label = "Done";
        if let Some(path) = &self.cfg.stats_file {
            write_snapshot(path, &self.snapshot())?;
        }
        if let Some(f) = &self.fatal {
            return Err(Error::runtime(format!(
                "{f}; checkpoints hold everything acknowledged, a restart resumes there"
            )));
        }
        let c = self.counters;
        log::info!(
            "shipped {} records ({} already indexed), {} dead-lettered{}",
            c.shipped,
            c.existing,
            c.dead_lettered,
            self.dlq
                .path()
                .map_or(String::new(), |p| format!(" to {}", p.display()))
        );
        if c.dead_lettered > 0 {
            log::warn!(
                "{} records were not indexed; see {}",
                c.dead_lettered,
                self.dlq
                    .path()
                    .map_or("the log above".into(), |p| p.display().to_string())
            );
        }
        Ok(ShipSummary {
            counters: c,
            stopped,
        })
    }

    /// Walks the log directories: new files, renames, files gone for good.
    fn scan(&mut self, finishing: bool) -> Result<()> {
        self.last_scan = Some(Instant::now());
        let found = watch::walk(&self.roots, self.state_dir_id);
        self.marks.discover(&self.roots);
        for t in self.files.values_mut() {
            t.visible = false;
        }
        for f in found {
            if self.ignored.contains(&f.id) {
                continue;
            }
            if let Some(slot) = self.by_id.get(&f.id) {
                let t = self.files.get_mut(slot).expect("slots and ids agree");
                t.visible = true;
                if !t.is_open() {
                    t.size = f.size;
                }
                if t.path != f.path {
                    t.renamed(&f.path);
                }
                continue;
            }
            let t = match self.store.as_ref().and_then(|s| s.get(f.id)) {
                Some(cp) => Tailed::resume(cp, f.path, f.size),
                None => Tailed::new(f.id, f.path, f.size),
            };
            self.by_id.insert(f.id, self.next_slot);
            self.files.insert(self.next_slot, t);
            self.next_slot += 1;
        }
        if !self.scanned_once {
            self.scanned_once = true;
            if let Some(store) = &mut self.store {
                for id in store.ids() {
                    if !self.by_id.contains_key(&id) {
                        store.retire(id);
                    }
                }
            }
        }
        let inactive = self.cfg.close_inactive;
        let mut gone = Vec::new();
        for (&slot, t) in &mut self.files {
            let settled = t.acked >= t.read_pos
                && (finishing || t.closed_by_writer || t.last_activity.elapsed() >= inactive);
            let at_end = t.read_pos >= t.size;
            if !t.visible && settled && at_end {
                gone.push(slot);
            } else if t.visible && t.is_open() {
                if t.head_changed() {
                    log::warn!(
                        "{}: its first bytes changed (rewritten in place); shipping it again from byte 0",
                        t.path.display()
                    );
                    t.restart();
                } else if settled && at_end && !finishing {
                    t.close();
                }
            }
        }
        for slot in gone {
            let t = self.files.remove(&slot).expect("listed above");
            log::info!(
                "{}: gone from the log directories, fully shipped",
                t.path.display()
            );
            self.by_id.remove(&t.id);
            if let Some(store) = &mut self.store {
                store.retire(t.id);
            }
        }
        Ok(())
    }

    /// One look at every file; true when any bytes were consumed. At most `MAX_OPEN` files are
    /// open: when that many are, the caught-up ones still in the directories are closed first.
    fn read_pass(&mut self) -> Result<bool> {
        let mut open = self.files.values().filter(|t| t.is_open()).count();
        if open >= MAX_OPEN {
            for t in self.files.values_mut() {
                if t.is_open() && t.visible && t.read_pos >= t.size {
                    t.close();
                    open -= 1;
                }
            }
        }
        let slots: Vec<u32> = self.files.keys().copied().collect();
        let mut progressed = false;
        for slot in slots {
            if self.batch.is_full(&self.cfg.limits) {
                self.seal()?;
            }
            if self.blocked || self.fatal.is_some() {
                break;
            }
            let was_open = self.files[&slot].is_open();
            if !was_open && open >= MAX_OPEN {
                continue;
            }
            let step = self.read_file(slot)?;
            if !was_open && self.files.get(&slot).is_some_and(Tailed::is_open) {
                open += 1;
            }
            match step {
                Step::Nothing => {}
                Step::Progress => progressed = true,
                Step::NotALog => {
                    let t = self.files.remove(&slot).expect("a slot being read");
                    log::debug!(
                        "{}: not a Zeek or Suricata log; left alone",
                        t.path.display()
                    );
                    self.by_id.remove(&t.id);
                    self.ignored.insert(t.id);
                }
            }
        }
        Ok(progressed)
    }

    /// Reads one file's new complete lines into the batch (until the batch is full).
    fn read_file(&mut self, slot: u32) -> Result<Step> {
        let t = self.files.get_mut(&slot).expect("a slot being read");
        if !t.is_open() && t.size == t.read_pos {
            return Ok(Step::Nothing);
        }
        let Ok(size) = t.current_size() else {
            t.close();
            return Ok(Step::Nothing);
        };
        if size < t.read_pos {
            log::warn!(
                "{}: truncated from {} to {size} bytes; shipping it again from byte 0 (lines written \
                 and truncated before they were read are lost)",
                t.path.display(),
                t.read_pos
            );
            t.restart();
        }
        t.size = size;
        if t.read_pos >= size {
            return Ok(Step::Nothing);
        }
        match t.identify() {
            Ok(Identified::Pending) => return Ok(Step::Nothing),
            Ok(Identified::NotALog) => return Ok(Step::NotALog),
            Ok(Identified::Log) => self.marks.log_seen(&t.path),
            Err(e) => {
                log::warn!("{}: {e}; left alone", t.path.display());
                return Ok(Step::NotALog);
            }
        }
        if t.registration.is_none() && register(t, &mut self.store, size).is_err() {
            // It shrank between the look and the read: the next pass sees the truncation.
            return Ok(Step::Nothing);
        }
        // Only in an instance's own log directory: logs kept from a dead instance
        // (`shard-K/run-R/`, `--ids-restart`) are not written again and keep positional `_id`s,
        // so the records of the instance restarted after it never take their `_id`s.
        let content = self.cfg.content_ids.and_then(|first| {
            let shard = t.source.as_ref()?.shard()?;
            in_shard_dir(&t.path).then(|| first + u64::from(shard))
        });
        if content.is_some() && t.counted < t.read_pos {
            count_occurrences(t).map_err(|e| read_error(t, e))?;
        }
        let avail = usize::try_from(size - t.read_pos).unwrap_or(usize::MAX);
        let mut want = CHUNK.min(avail);
        loop {
            self.buf.resize(want, 0);
            let n = t.read_at_pos(&mut self.buf).map_err(|e| read_error(t, e))?;
            self.buf.truncate(n);
            if self.buf.contains(&b'\n') {
                break;
            }
            if n < want || n >= avail {
                // The last line is not complete yet.
                return Ok(Step::Nothing);
            }
            if want >= MAX_LINE {
                return self.skip_line(slot);
            }
            want = (want * 2).min(MAX_LINE).min(avail);
        }
        let data_len = self.buf.iter().rposition(|&b| b == b'\n').expect("checked") + 1;
        let limits = self.cfg.limits;
        let Tailed {
            source,
            path,
            registration,
            generation,
            read_pos,
            closed_by_writer,
            last_activity,
            occurrences,
            counted,
            ..
        } = t;
        let source = source.as_mut().expect("identified above");
        let key = registration.expect("registered above").key;
        let base = *read_pos;
        let mut consumed = 0usize;
        for line in self.buf[..data_len].split_inclusive(|&b| b == b'\n') {
            let offset = base + consumed as u64;
            let start = self.batch.body.len();
            let text = &line[..line.len() - 1];
            let mut ts = 0;
            let id = match content.zip(content_hash(source.format, text)) {
                Some((global, c)) => {
                    let seen = occurrences.entry(c).or_insert(0);
                    *seen += 1;
                    DocId {
                        key: content_key(global, c),
                        n: u64::from(*seen - 1),
                    }
                }
                None => DocId { key, n: offset },
            };
            match self
                .encoder
                .encode(source, text, offset, id, &mut self.batch.body)
            {
                Ok(Encoded::Item { doc_start, ts_ns }) => {
                    ts = ts_ns;
                    self.batch.push(slot, *generation, offset, start, doc_start)
                }
                Ok(Encoded::Skipped) => {}
                Ok(Encoded::Closed) => *closed_by_writer = true,
                Err(why) => {
                    self.dlq
                        .write(&Entry {
                            reason: Reason::Unparsed(&why),
                            file: path,
                            offset,
                            action: None,
                            record: text,
                        })
                        .map_err(|e| dlq_error(&self.dlq, e))?;
                    self.counters.dead_lettered += 1;
                }
            }
            consumed += line.len();
            self.batch
                .advance(slot, *generation, base + consumed as u64, ts);
            if self.batch.is_full(&limits) {
                break;
            }
        }
        *read_pos += consumed as u64;
        *counted = *read_pos;
        *last_activity = Instant::now();
        Ok(Step::Progress)
    }

    /// Dead-letters a line longer than `MAX_LINE` (its first KiB) and skips to the next newline.
    fn skip_line(&mut self, slot: u32) -> Result<Step> {
        let t = self.files.get_mut(&slot).expect("a slot being read");
        let why = format!("a line longer than {} MiB; skipped", MAX_LINE >> 20);
        self.dlq
            .write(&Entry {
                reason: Reason::Unparsed(&why),
                file: &t.path,
                offset: t.read_pos,
                action: None,
                record: &self.buf[..1024],
            })
            .map_err(|e| dlq_error(&self.dlq, e))?;
        self.counters.dead_lettered += 1;
        let mut pos = t.read_pos + self.buf.len() as u64;
        self.buf.resize(CHUNK, 0);
        loop {
            t.read_pos = pos;
            let k = t.read_at_pos(&mut self.buf).map_err(|e| read_error(t, e))?;
            match self.buf[..k].iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    t.read_pos = pos + nl as u64 + 1;
                    break;
                }
                None if k == 0 => break,
                None => pos += k as u64,
            }
        }
        t.counted = t.read_pos;
        self.batch.advance(slot, t.generation, t.read_pos, 0);
        Ok(Step::Progress)
    }

    /// Sends the current batch (a batch of progress only is acknowledged at once).
    fn seal(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.next_seq += 1;
        let mut next = Batch::new(self.next_seq);
        next.body = std::mem::take(&mut self.spare);
        next.body.clear();
        let batch = std::mem::replace(&mut self.batch, next);
        if batch.items.is_empty() {
            return self.arrive(Delivered {
                batch,
                result: Ok(Vec::new()),
            });
        }
        if self.store.as_ref().is_some_and(CheckpointStore::is_urgent) {
            self.save(true)?;
        }
        while self.in_flight >= self.cfg.max_in_flight && !self.blocked && self.fatal.is_none() {
            self.collect(Duration::from_millis(100))?;
            self.service()?;
        }
        if self.blocked || self.fatal.is_some() || self.stopping() {
            // Not sent: nothing from here on is acknowledged, a restart reads it again.
            self.blocked = true;
            return Ok(());
        }
        self.senders.submit(batch);
        self.in_flight += 1;
        Ok(())
    }

    /// Takes one delivered batch if one arrives within `wait`; true if one did.
    fn collect(&mut self, wait: Duration) -> Result<bool> {
        if self.in_flight == 0 {
            return Ok(false);
        }
        if self.stopping() || self.fatal.is_some() {
            self.senders.abort.store(true, Ordering::SeqCst);
        }
        let Some(d) = self.senders.next(wait) else {
            return Ok(false);
        };
        self.in_flight -= 1;
        self.arrive(d)?;
        Ok(true)
    }

    /// Applies delivered batches in sequence order.
    fn arrive(&mut self, d: Delivered) -> Result<()> {
        self.arrived.arrive(d.batch.seq, d);
        while !self.blocked {
            let Some(d) = self.arrived.pop() else {
                break;
            };
            self.apply(d)?;
        }
        Ok(())
    }

    fn apply(&mut self, d: Delivered) -> Result<()> {
        let batch = d.batch;
        let outcomes = match d.result {
            Ok(o) => o,
            Err(Interrupted::Aborted) => {
                self.blocked = true;
                return Ok(());
            }
            Err(Interrupted::Auth(why)) => {
                self.blocked = true;
                self.fatal = Some(format!(
                    "{why}: authentication or authorization refused (check --es-user/--es-password \
                     or --es-api-key, and the write privileges on the target indices)"
                ));
                return Ok(());
            }
            Err(Interrupted::Fatal(why)) => {
                self.blocked = true;
                self.fatal = Some(why);
                return Ok(());
            }
        };
        for (i, o) in outcomes.iter().enumerate() {
            match o {
                Outcome::Created => self.counters.shipped += 1,
                Outcome::Existed => self.counters.existing += 1,
                Outcome::Rejected { status, error } => {
                    let item = batch.items[i];
                    let path = self
                        .files
                        .get(&item.slot)
                        .map_or_else(|| PathBuf::from("?"), |t| t.path.clone());
                    self.dlq
                        .write(&Entry {
                            reason: Reason::Server {
                                status: *status,
                                error,
                            },
                            file: &path,
                            offset: item.offset,
                            action: Some(batch.action(i)),
                            record: batch.document(i),
                        })
                        .map_err(|e| dlq_error(&self.dlq, e))?;
                    self.counters.dead_lettered += 1;
                }
            }
        }
        for f in &batch.frontiers {
            let Some(t) = self.files.get_mut(&f.slot) else {
                continue;
            };
            if let Some(bytes) = newly_acknowledged(t.acked, t.generation, f) {
                self.counters.bytes_shipped += bytes;
                t.acked = f.offset;
                if let Some(store) = &mut self.store {
                    store.advance(t.id, f.generation, f.offset, &t.path);
                }
                self.marks.acknowledged(&t.path, f.newest_ns);
            }
        }
        if self.spare.capacity() < batch.body.capacity() {
            self.spare = batch.body;
        }
        Ok(())
    }

    /// Writes the dead letters, then the checkpoints (at most every `SAVE_INTERVAL` unless forced).
    fn save(&mut self, force: bool) -> Result<()> {
        if !force && self.last_save.elapsed() < SAVE_INTERVAL {
            return Ok(());
        }
        self.last_save = Instant::now();
        self.dlq.sync().map_err(|e| dlq_error(&self.dlq, e))?;
        if let Some(store) = &mut self.store {
            store.save().map_err(|e| {
                Error::runtime(format!(
                    "{}: cannot write checkpoints: {e}",
                    store.dir().display()
                ))
            })?;
        }
        Ok(())
    }

    /// True once a stop was asked for.
    fn stopping(&self) -> bool {
        self.ctl.stop.load(Ordering::SeqCst)
    }

    /// Stats on request and periodically: `[STATS]` lines, the stats file, a progress line.
    fn service(&mut self) -> Result<()> {
        if self.ctl.stats.swap(false, Ordering::SeqCst) {
            let snap = self.snapshot();
            let to_stdout = !matches!(self.cfg.target, Target::Ndjson(None));
            if to_stdout {
                snap.write_lines(&mut io::stdout().lock())?;
            } else {
                snap.write_lines(&mut io::stderr().lock())?;
            }
        }
        if let Some(latest) = &self.published {
            *latest.lock().unwrap_or_else(|e| e.into_inner()) = self.snapshot();
        }
        if self.last_report.elapsed() >= self.cfg.stats_interval {
            self.last_report = Instant::now();
            let snap = self.snapshot();
            log::info!(
                "{} records shipped ({:.0}/s), {} already indexed, lag {} bytes, {} dead-lettered",
                snap.records_shipped,
                snap.records_per_s,
                snap.records_existing,
                snap.lag_bytes,
                snap.dead_lettered
            );
            if let Some(path) = &self.cfg.stats_file {
                write_snapshot(path, &snap)?;
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> ShipSnapshot {
        let mut s = ShipSnapshot::new(&self.clock, self.state_label, &self.counters);
        s.files = self.files.len();
        s.lag_bytes = self
            .files
            .values()
            .map(|t| t.size.saturating_sub(t.acked))
            .sum();
        s.requests = self.senders.counters.requests.load(Ordering::Relaxed);
        s.retries = self.senders.counters.retries.load(Ordering::Relaxed);
        s.in_flight = self.in_flight;
        s
    }
}

/// Gives a file its fingerprint and `_id` key, and records it before any record is sent.
fn register(t: &mut Tailed, store: &mut Option<CheckpointStore>, size: u64) -> io::Result<()> {
    let fingerprint = Fingerprint::take(t.open()?, size)?;
    let mut key = file_key(t.id, t.generation, &fingerprint);
    while store.as_ref().is_some_and(|s| s.key_in_use(key)) {
        t.generation += 1;
        key = file_key(t.id, t.generation, &fingerprint);
    }
    t.registration = Some(Registration { fingerprint, key });
    if let Some(store) = store {
        store.register(FileState {
            id: t.id,
            generation: t.generation,
            fingerprint,
            key,
            offset: t.read_pos,
            path: t.path.to_string_lossy().into_owned(),
        });
    }
    Ok(())
}

/// Counts the content hashes of the records between `t.counted` and `t.read_pos` (a file resumed
/// mid-way: its earlier records were shipped by an earlier run), as reading them would have.
fn count_occurrences(t: &mut Tailed) -> io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
    let format = t.source.as_ref().expect("identified").format;
    let mut f = BufReader::with_capacity(CHUNK, t.open()?.try_clone()?);
    f.seek(SeekFrom::Start(t.counted))?;
    let mut reader = f.take(t.read_pos - t.counted);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            // Longer than MAX_LINE (skipped when it was read) or cut: skip to its end.
            if n > MAX_LINE {
                reader.skip_until(b'\n')?;
            }
            continue;
        }
        if let Some(c) = content_hash(format, &line[..line.len() - 1]) {
            *t.occurrences.entry(c).or_insert(0) += 1;
        }
    }
    t.counted = t.read_pos;
    Ok(())
}

fn read_error(t: &Tailed, e: io::Error) -> Error {
    Error::runtime(format!("{}: byte {}: {e}", t.path.display(), t.read_pos))
}

fn dlq_error(dlq: &DeadLetter, e: io::Error) -> Error {
    Error::runtime(format!(
        "{}: cannot write the dead-letter file: {e}",
        dlq.path()
            .map_or("dead letters".into(), |p| p.display().to_string())
    ))
}

/// Replaces the stats file with `snap`.
fn write_snapshot(path: &Path, snap: &ShipSnapshot) -> Result<()> {
    let json = serde_json::to_vec_pretty(snap).map_err(io::Error::other)?;
    shardcap_files::write_atomic(path, &json).map_err(|source| Error::File {
        path: path.to_path_buf(),
        what: "cannot write stats file",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Condvar;

    use crate::client::{EsTarget, ItemReply};
    use crate::logformat::LogFormat;
    use crate::naming::Naming;
    use std::io::Write;

    /// A bulk endpoint: answers every item 201 and notes its `_id`, except a request holding the
    /// record at byte `hold`, which waits until released and then fails for now.
    #[derive(Default)]
    struct Bulk {
        hold: Option<u64>,
        /// (offset, `_id`, run id) of every item answered 201.
        indexed: Mutex<Vec<(u64, String, String)>>,
        /// The held request arrived / was released.
        held: Mutex<(bool, bool)>,
        changed: Condvar,
    }

    impl Bulk {
        fn holding(offset: u64) -> Self {
            Bulk {
                hold: Some(offset),
                ..Bulk::default()
            }
        }

        /// Waits (bounded) until `cond` holds of the items indexed and the held request's state.
        fn wait(&self, what: &str, cond: impl Fn(&Bulk, (bool, bool)) -> bool) {
            let until = Instant::now() + Duration::from_secs(60);
            let mut g = self.held.lock().unwrap();
            while !cond(self, *g) {
                let left = until.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "gave up waiting for {what}");
                g = self.changed.wait_timeout(g, left.min(POLL)).unwrap().0;
            }
        }

        fn release(&self) {
            self.held.lock().unwrap().1 = true;
            self.changed.notify_all();
        }

        /// The offsets of the records indexed, sorted (requests in flight complete in any order).
        fn offsets(&self) -> Vec<u64> {
            let mut o: Vec<u64> = self.indexed.lock().unwrap().iter().map(|i| i.0).collect();
            o.sort_unstable();
            o
        }

        /// The `_id` given to the record at `offset`.
        fn id_at(&self, offset: u64) -> String {
            let i = self.indexed.lock().unwrap();
            i.iter().find(|x| x.0 == offset).expect("indexed").1.clone()
        }
    }

    impl Transport for Bulk {
        fn bulk(&self, body: &[u8]) -> std::result::Result<Vec<ItemReply>, Failure> {
            let text = std::str::from_utf8(body).unwrap();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let items: Vec<(u64, String, String)> = lines
                .chunks(2)
                .map(|pair| {
                    let id = pair[0]["create"]["_id"].as_str().unwrap().to_string();
                    let meta = &pair[1]["shardcap"];
                    let run = meta["run_id"].as_str().unwrap().to_string();
                    (meta["offset"].as_u64().unwrap(), id, run)
                })
                .collect();
            if items.iter().any(|i| Some(i.0) == self.hold) {
                let mut g = self.held.lock().unwrap();
                g.0 = true;
                self.changed.notify_all();
                let until = Instant::now() + Duration::from_secs(60);
                while !g.1 && Instant::now() < until {
                    g = self.changed.wait_timeout(g, POLL).unwrap().0;
                }
                return Err(Failure::Retry("held".into()));
            }
            let n = items.len();
            self.indexed.lock().unwrap().extend(items);
            self.changed.notify_all();
            Ok((0..n)
                .map(|_| ItemReply {
                    status: 201,
                    error: None,
                })
                .collect())
        }
    }

    fn config(state: &Path, follow: bool, run_id: &str) -> ShipConfig {
        ShipConfig {
            target: Target::Elasticsearch(EsTarget {
                url: "http://127.0.0.1:9".into(),
                user: None,
                password: None,
                api_key: None,
                ca: None,
            }),
            state: Some(state.to_path_buf()),
            follow,
            limits: crate::batch::BatchLimits {
                bytes: 1 << 20,
                docs: 1,
                wait: Duration::ZERO,
            },
            max_in_flight: 3,
            naming: Naming {
                prefix: String::new(),
                data_streams: false,
                namespace: "default".into(),
            },
            ecs: false,
            templates: false,
            run_id: Some(run_id.into()),
            sensor: "lab".into(),
            retry: RetryPolicy {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(50),
            },
            scan_interval: Duration::from_millis(50),
            close_inactive: Duration::from_secs(60),
            stats_file: None,
            stats_interval: Duration::from_secs(3600),
            content_ids: None,
        }
    }

    /// A shipper of `logs` through `bulk`, on its own thread; returns its stop flag and its end.
    fn start(
        logs: &Path,
        state: &Path,
        follow: bool,
        run_id: &str,
        bulk: &Arc<Bulk>,
    ) -> (
        Arc<AtomicBool>,
        std::sync::mpsc::Receiver<Result<ShipSummary>>,
    ) {
        start_with(config(state, follow, run_id), logs, state, bulk)
    }

    /// [`start`] with a configuration of its own.
    fn start_with(
        cfg: ShipConfig,
        logs: &Path,
        state: &Path,
        bulk: &Arc<Bulk>,
    ) -> (
        Arc<AtomicBool>,
        std::sync::mpsc::Receiver<Result<ShipSummary>>,
    ) {
        let ctl = Control::default();
        let stop = ctl.stop.clone();
        let transport: Arc<dyn Transport> = bulk.clone();
        let mut s = Shipper::assemble(
            cfg,
            vec![logs.to_path_buf()],
            ctl,
            transport,
            None,
            Some(state.to_path_buf()),
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let end = s.run();
            // Its state directory's lock goes with it.
            drop(s);
            tx.send(end)
        });
        (stop, rx)
    }

    /// Ships `logs` until caught up.
    fn ship_all(logs: &Path, state: &Path, run_id: &str) -> Arc<Bulk> {
        let bulk = Arc::new(Bulk::default());
        let (_, end) = start(logs, state, false, run_id, &bulk);
        let summary = end.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
        assert!(!summary.stopped);
        bulk
    }

    /// Eve lines `first..first+n`; returns the text and each line's offset.
    fn eve(first: u32, n: u32) -> (String, Vec<u64>) {
        let mut text = String::new();
        let mut offsets = Vec::new();
        for k in first..first + n {
            offsets.push(text.len() as u64);
            text.push_str(&format!(
                "{{\"timestamp\":\"2024-03-01T12:00:{:02}.000000+0000\",\"event_type\":\"alert\",\"n\":{k}}}\n",
                k % 60
            ));
        }
        (text, offsets)
    }

    /// The checkpoint of the file at `path`, read by a store reopened under another run id.
    fn checkpoint_of(state: &Path, path: &Path) -> FileState {
        let store = CheckpointStore::open(state, None, || unreachable!()).unwrap();
        let id = FileId::of(&std::fs::metadata(path).unwrap());
        store.get(id).expect("a checkpoint").clone()
    }

    #[test]
    fn a_checkpoint_stops_at_the_first_unacknowledged_batch_and_ids_survive_a_new_run_id() {
        let logs = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let log = logs.path().join("eve.json");
        let (text, at) = eve(0, 3);
        std::fs::write(&log, &text).unwrap();
        // Batch 1 (the second line) gets no answer; batches 0 and 2 are indexed.
        let bulk = Arc::new(Bulk::holding(at[1]));
        let (stop, end) = start(logs.path(), state.path(), true, "first", &bulk);
        bulk.wait("batches 0 and 2 indexed, batch 1 held", |b, (held, _)| {
            b.offsets() == [at[0], at[2]] && held
        });
        stop.store(true, Ordering::SeqCst);
        bulk.release();
        let summary = end.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
        assert!(summary.stopped);
        let cp = checkpoint_of(state.path(), &log);
        assert_eq!(
            cp.offset, at[1],
            "resumes after the last record acknowledged with every one before it"
        );
        let first_ids = (bulk.id_at(at[0]), bulk.id_at(at[2]));

        let again = ship_all(logs.path(), state.path(), "second");
        assert_eq!(again.offsets(), [at[1], at[2]], "resumed at the checkpoint");
        assert_eq!(
            again.id_at(at[2]),
            first_ids.1,
            "the same _id under another run id"
        );
        assert!(again
            .indexed
            .lock()
            .unwrap()
            .iter()
            .all(|i| i.2 == "second"));
        let key = |id: &str| id.split('-').next().unwrap().to_string();
        assert_eq!(key(&again.id_at(at[1])), key(&first_ids.0));
        assert_eq!(
            again.id_at(at[1]),
            format!("{}-{}", key(&first_ids.0), at[1])
        );
        assert_eq!(checkpoint_of(state.path(), &log).offset, text.len() as u64);
    }

    /// With content `_id`s, a file shipped in two runs (the second resuming at the checkpoint)
    /// gives every record the `_id` one run over the whole file gives, in another file and
    /// directory: identical records numbered in order, the global shard from `shard-K`.
    #[test]
    fn content_ids_count_identical_records_across_a_resume() {
        let line = |n: u32| {
            format!(
                "{{\"timestamp\":\"2024-03-01T12:00:{n:02}.000000+0000\",\"flow_id\":{n},\"event_type\":\"anomaly\",\"anomaly\":{{\"event\":\"x\"}}}}\n"
            )
        };
        let other = "{\"event_type\":\"alert\",\"alert\":{\"signature_id\":1}}\n";
        let first: String = [line(1), other.into(), line(2)].concat();
        let more: String = [line(3), other.into()].concat();
        let ship = |logs: &Path, state: &Path| {
            let mut cfg = config(state, false, "r");
            cfg.content_ids = Some(10);
            let bulk = Arc::new(Bulk::default());
            let (_, end) = start_with(cfg, logs, state, &bulk);
            end.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
            let mut ids: Vec<(u64, String)> = bulk
                .indexed
                .lock()
                .unwrap()
                .iter()
                .map(|i| (i.0, i.1.clone()))
                .collect();
            ids.sort();
            ids
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log_a = a.path().join("shard-4/eve.json");
        std::fs::create_dir_all(log_a.parent().unwrap()).unwrap();
        std::fs::write(&log_a, &first).unwrap();
        let mut ids = ship(a.path(), sa.path());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log_a)
            .unwrap()
            .write_all(more.as_bytes())
            .unwrap();
        let resumed = ship(a.path(), sa.path());
        assert_eq!(resumed.len(), 2, "resumed at the checkpoint: {resumed:?}");
        ids.extend(resumed);
        let log_b = b.path().join("x/shard-4/eve.json");
        std::fs::create_dir_all(log_b.parent().unwrap()).unwrap();
        std::fs::write(&log_b, [first, more].concat()).unwrap();
        let whole = ship(b.path(), sb.path());
        assert_eq!(ids, whole, "the same _ids in one run over a copy");
        let hash = |l: &str| crate::content_id::content_hash(LogFormat::Eve, l.as_bytes()).unwrap();
        let key = |l: &str| format!("{:016x}", content_key(14, hash(l)));
        let want: Vec<String> = [
            format!("{}-0", key(&line(1))),
            format!("{}-0", key(other)),
            format!("{}-1", key(&line(1))),
            format!("{}-2", key(&line(1))),
            format!("{}-1", key(other)),
        ]
        .into();
        assert_eq!(whole.into_iter().map(|i| i.1).collect::<Vec<_>>(), want);
    }

    #[test]
    fn a_truncated_or_rotated_file_is_shipped_again_from_byte_0_under_a_new_key() {
        let logs = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let log = logs.path().join("eve.json");
        let (text, at) = eve(0, 3);
        std::fs::write(&log, &text).unwrap();
        let first = ship_all(logs.path(), state.path(), "first");
        assert_eq!(first.offsets(), at);
        let before = checkpoint_of(state.path(), &log);
        assert_eq!((before.offset, before.generation), (text.len() as u64, 0));

        // Truncated and rewritten in place (same inode) while no shipper ran, longer than before:
        // only its head tells.
        let (rewritten, at2) = eve(10, 4);
        std::fs::write(&log, &rewritten).unwrap();
        let second = ship_all(logs.path(), state.path(), "second");
        assert_eq!(second.offsets(), at2, "from byte 0");
        let cp = checkpoint_of(state.path(), &log);
        assert_eq!((cp.offset, cp.generation), (rewritten.len() as u64, 1));
        assert_ne!(
            second.id_at(0),
            first.id_at(0),
            "a new key: no clash with old records"
        );

        // Rotated: renamed away (fully shipped), a new file under the name.
        let rotated = logs.path().join("eve.json.1");
        std::fs::rename(&log, &rotated).unwrap();
        let (fresh, at3) = eve(20, 2);
        std::fs::write(&log, &fresh).unwrap();
        let third = ship_all(logs.path(), state.path(), "third");
        assert_eq!(third.offsets(), at3, "only the new file, from byte 0");
        let new_cp = checkpoint_of(state.path(), &log);
        assert_eq!(new_cp.offset, fresh.len() as u64);
        assert_ne!(new_cp.key, cp.key);
        assert_eq!(
            checkpoint_of(state.path(), &rotated).offset,
            rewritten.len() as u64
        );
    }
}
