//! The run's journal (`--state DIR`): which files are finished (by content identity) and, at each
//! checkpoint, where every open input stands and how long every output is. A restarted run with the
//! same state skips finished files, resumes the files in flight at their checkpointed offsets, and
//! cuts file outputs back to their checkpointed length, so file outputs get every packet exactly
//! once. FIFO and stdout outputs cannot be cut back: a restart starts a new stream (with its own
//! header) and repeats the packets written after the last checkpoint.

pub mod identity;
pub mod journal;
pub mod show;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result, EXIT_OK};
use crate::input::catalog::{self, Entry};
use crate::input::discover::Candidate;
use crate::input::FileEnd;
use crate::merge::Merge;
use crate::sink::output::{FileOutput, Output};
use crate::sink::writer::ShardWriter;
use crate::sink::{OutputOptions, OutputSpec};
use identity::FileId;
use journal::{
    now, Checkpoint, Contents, DoneRecord, FileRecord, InFlight, Journal, Outcome, OutputMark,
    Reason, Record, RunKey, RunRecord, VERSION,
};
use shardcap_capture::format::{StreamHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use shardcap_files::{nofollow, PartialFile};
use shardcap_flow::{HashMode, Partition, TunnelMode};

/// The options of a run the journal records and checkpoints by.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// The `-o` argument (empty: the default output).
    pub output: String,
    pub shards: u16,
    pub hash: HashMode,
    pub tunnel: TunnelMode,
    /// This node's part of the flow-hash space.
    pub partition: Partition,
    /// Most time between two checkpoints.
    pub checkpoint_interval: Duration,
    /// Most output between two checkpoints.
    pub checkpoint_bytes: u64,
    /// The selection options as given (`--since N --filter X`...); empty without any.
    pub select: String,
    /// Lock the directory against another run (off when a cluster lease guards it instead: a
    /// stopped node that lost its lease must not keep the partition from another).
    pub exclusive: bool,
    /// The run's consumers are IDS instances that cannot resume mid-stream (FIFO-fed presets over
    /// a fixed input list): a restart replays the stream from its start instead of resuming.
    pub replays: bool,
}

/// Name of the lock file that keeps two runs off one state directory.
const LOCK_FILE: &str = "lock";

/// Where a file in flight at the last checkpoint resumes.
struct Resume {
    offset: u64,
    /// Packets it had streamed before.
    packets: u64,
    /// The merge has opened it (from then on the merge reports its position).
    taken: bool,
    id: FileId,
}

/// The journal of one run, with what an earlier run left in it.
pub struct StateKeeper {
    dir: PathBuf,
    journal: Journal,
    spec: OutputSpec,
    interval: Duration,
    every_bytes: u64,
    /// Finished files of earlier runs (and of this one, once committed).
    finished: Vec<FileRecord>,
    /// Finished records by content (size, head hash).
    by_content: HashMap<(u64, String), usize>,
    /// The last checkpoint of an earlier run.
    previous: Option<Checkpoint>,
    /// Identity each path had in the journal, to report changed files.
    known: HashMap<String, FileId>,
    done: Option<DoneRecord>,
    /// Identities of admitted inputs, by merge sequence number.
    ids: HashMap<u64, FileId>,
    resumes: HashMap<u64, Resume>,
    /// Finished files waiting for the next checkpoint to commit them.
    pending: Vec<FileRecord>,
    /// Finished files the intake has not heard of yet.
    unreported: Vec<(Entry, FileEnd)>,
    seq: u64,
    last_at: Instant,
    last_out: u64,
    /// This run replays an interrupted run's stream from its start (see `StateConfig::replays`).
    replaying: bool,
    _lock: Option<Flock<File>>,
}

impl StateKeeper {
    /// Opens (or creates) the state in `dir` for a run with `config`: checks that the journal was
    /// written for the same outputs (else a usage error), and compacts it.
    pub fn open(dir: &Path, config: impl Into<StateConfig>, spec: &OutputSpec) -> Result<Self> {
        let config: StateConfig = config.into();
        fs::create_dir_all(dir)
            .map_err(|e| Error::usage(format!("--state {}: cannot create: {e}", dir.display())))?;
        let lock = config.exclusive.then(|| lock(dir)).transpose()?;
        let contents = Contents::load(dir)?;
        let key = RunKey {
            output: config.output.clone(),
            shards: config.shards,
            hash: config.hash.as_str().to_string(),
            tunnel: config.tunnel.as_str().to_string(),
            partition: (!config.partition.is_whole()).then(|| config.partition.as_string()),
            select: config.select.clone(),
        };
        // A journal without a checkpoint binds nothing yet: nothing was streamed under it.
        let bound = contents.checkpoint.is_some() || contents.done.is_some();
        let run = match &contents.run {
            Some(r) if r.key.partition != key.partition && bound => {
                let name = |p: &Option<String>| p.clone().unwrap_or_else(|| "0/1".into());
                return Err(Error::usage(format!(
                    "--state {} belongs to --partition {}, not --partition {}; every partition \
                     (and every partition count) needs its own --state directory",
                    dir.display(),
                    name(&r.key.partition),
                    name(&key.partition),
                )));
            }
            Some(r) if r.key != key && bound => {
                return Err(Error::usage(format!(
                    "--state {} belongs to a run with {}, not {}; use the same options, or another \
                     --state directory",
                    dir.display(),
                    r.key.options(),
                    key.options(),
                )))
            }
            Some(r) if r.key == key => RunRecord {
                started: now(),
                restarts: r.restarts + 1,
                ..r.clone()
            },
            _ => RunRecord {
                version: VERSION,
                created: now(),
                started: now(),
                restarts: 0,
                key,
            },
        };
        if contents.torn || contents.uncommitted > 0 {
            log::info!(
                "{}: the last run ended without a final checkpoint; resuming from checkpoint {}",
                dir.display(),
                contents.checkpoint.as_ref().map_or(0, |c| c.seq)
            );
        }
        let mut contents = contents;
        // An interrupted run whose IDS instances cannot resume mid-stream starts over: its
        // finished files are forgotten (they are streamed again), and its last checkpoint stays
        // in the journal only to bind it until this run writes its own.
        let replaying = config.replays && contents.checkpoint.is_some() && contents.done.is_none();
        if replaying {
            log::warn!(
                "{}: an interrupted run; its IDS instances cannot resume mid-stream, so the \
                 stream is replayed from its start into fresh instances",
                dir.display()
            );
            contents.files.clear();
        }
        let journal = Journal::rewrite(dir, &contents, run)?;
        let mut keeper = StateKeeper {
            dir: dir.to_path_buf(),
            journal,
            spec: spec.clone(),
            interval: config.checkpoint_interval,
            every_bytes: config.checkpoint_bytes.max(1),
            finished: Vec::new(),
            by_content: HashMap::new(),
            seq: contents.checkpoint.as_ref().map_or(0, |c| c.seq),
            previous: contents.checkpoint.filter(|_| !replaying),
            known: HashMap::new(),
            done: contents.done,
            ids: HashMap::new(),
            resumes: HashMap::new(),
            pending: Vec::new(),
            unreported: Vec::new(),
            last_at: Instant::now(),
            last_out: 0,
            replaying,
            _lock: lock,
        };
        for f in contents.files {
            keeper.remember(f);
        }
        for f in keeper.previous.iter().flat_map(|c| &c.open) {
            keeper.known.insert(f.id.path.clone(), f.id.clone());
        }
        Ok(keeper)
    }

    fn remember(&mut self, f: FileRecord) {
        self.known.insert(f.id.path.clone(), f.id.clone());
        if f.outcome != Outcome::Skipped {
            self.by_content
                .insert((f.id.size, f.id.head.clone()), self.finished.len());
        }
        self.finished.push(f);
    }

    /// True when this run replays an interrupted run's stream from its start.
    pub fn replaying(&self) -> bool {
        self.replaying
    }

    /// True when an earlier run on this state streamed every input and completed its outputs.
    pub fn is_complete(&self) -> bool {
        self.done.is_some()
    }

    /// For a completed state: checks that every capture among `candidates` (the command line's
    /// inputs) was part of the run and returns the exit code of a run with nothing to do (a usage
    /// error when there are new inputs, or files come from elsewhere, since the completed outputs
    /// are final).
    pub fn completed_run(&self, candidates: &[Candidate]) -> Result<i32> {
        let Some(done) = self.done.clone() else {
            return Err(Error::runtime("the state holds no completed run"));
        };
        if candidates.is_empty() {
            return Err(Error::usage(format!(
                "--state {}: this run completed and its outputs are final; files from --watch or a                  Redis queue need another --state directory",
                self.dir.display()
            )));
        }
        for (i, cand) in candidates.iter().enumerate() {
            let Ok(entry) = catalog::probe(i as u64, cand) else {
                continue;
            };
            let id = FileId::of(&entry.path, entry.size)?;
            if self.streamed_before(&id).is_none() {
                return Err(Error::usage(format!(
                    "--state {}: this run completed and its outputs are final, but {} is not part \
                     of it; use another --state directory to stream more files",
                    self.dir.display(),
                    entry.path.display()
                )));
            }
        }
        log::warn!(
            "--state {}: the run completed at {} ({} files, {} packets); nothing to do",
            self.dir.display(),
            show::time(done.time),
            done.files,
            done.packets
        );
        Ok(EXIT_OK)
    }

    /// The finished record of a file with this content, under any name: content streamed once is
    /// not streamed again (a copy, or a file that reappears in a spool, is skipped).
    fn streamed_before(&self, id: &FileId) -> Option<&FileRecord> {
        let i = *self.by_content.get(&(id.size, id.head.clone()))?;
        Some(&self.finished[i])
    }

    /// Drops the entries an earlier run finished, notes where files in flight resume, and reports
    /// files that changed since they were journaled. Returns the entries to stream, and the
    /// dropped ones with how their content ended when it was streamed: their intake must still
    /// hear of them (a Redis queue records them and moves on, a spool's retention counts them).
    pub fn admit(&mut self, entries: Vec<Entry>) -> (Vec<Entry>, Vec<(Entry, FileEnd)>) {
        let mut kept = Vec::with_capacity(entries.len());
        let mut dropped = Vec::new();
        for e in entries {
            let id = match FileId::of(&e.path, e.size) {
                Ok(id) => id,
                Err(err) => {
                    log::warn!(
                        "{}: cannot read it for the journal ({err}); streaming it without a record",
                        e.path.display()
                    );
                    kept.push(e);
                    continue;
                }
            };
            if let Some(f) = self.streamed_before(&id) {
                log::debug!(
                    "{}: already streamed (as {}); skipped",
                    e.path.display(),
                    f.id.path
                );
                let end = f.end();
                dropped.push((e, end));
                continue;
            }
            let in_flight =
                self.previous.iter().flat_map(|c| &c.open).find(|f| {
                    f.id.same_content(&id) && !self.resumes.values().any(|r| r.id == f.id)
                });
            if let Some(f) = in_flight {
                self.resumes.insert(
                    e.seq,
                    Resume {
                        offset: f.offset,
                        packets: f.packets,
                        taken: false,
                        id: f.id.clone(),
                    },
                );
            } else if let Some(old) = self.known.get(&id.path).filter(|o| !o.same_content(&id)) {
                log::warn!(
                    "{}: changed since the journal recorded it ({} bytes, head {}; now {} bytes, \
                     head {}); streaming it again from the start",
                    e.path.display(),
                    old.size,
                    old.head,
                    id.size,
                    id.head
                );
            }
            self.ids.insert(e.seq, id);
            kept.push(e);
        }
        if !dropped.is_empty() {
            log::info!(
                "{} files were streamed by an earlier run (--state {}); skipped",
                dropped.len(),
                self.dir.display()
            );
        }
        (kept, dropped)
    }

    /// The stream header of an earlier run (resumed outputs keep it).
    pub fn header(&self) -> Option<StreamHeader> {
        self.previous.as_ref().map(|c| c.header.into())
    }

    /// Reopens shard `k`'s file output at its checkpointed length, dropping what was written after
    /// the checkpoint. `None` when there is nothing to resume (no checkpoint, or not a file output):
    /// the caller opens a fresh output.
    pub fn resume_output(
        &self,
        k: usize,
        options: &OutputOptions,
    ) -> Result<Option<Box<dyn Output>>> {
        let (Some(cp), OutputSpec::File(_)) = (&self.previous, &self.spec) else {
            return Ok(None);
        };
        let Some(mark) = cp.outputs.iter().find(|m| m.shard == k) else {
            return Ok(None);
        };
        let path = self.spec.path(k).expect("file outputs have paths");
        let partial = PartialFile::partial_path(&path);
        let fail = |what: String| {
            Error::runtime(format!(
                "{what}; cannot resume shard {k} from --state {} (restore the file, or move the \
                 state directory away to start over)",
                self.dir.display()
            ))
        };
        let len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        if !partial.exists() {
            // A stopped or finished run renamed it; it continues as a partial file.
            if !path.exists() || len(&path) < mark.bytes {
                return Err(fail(format!(
                    "{}: missing or shorter than the {} bytes the journal records",
                    path.display(),
                    mark.bytes
                )));
            }
            nofollow::rename(&path, &partial)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        }
        let have = len(&partial);
        if have < mark.bytes {
            return Err(fail(format!(
                "{}: {have} bytes, shorter than the {} bytes the journal records",
                partial.display(),
                mark.bytes
            )));
        }
        if have > mark.bytes {
            log::info!(
                "{}: dropping {} bytes written after the last checkpoint",
                partial.display(),
                have - mark.bytes
            );
        }
        let out = FileOutput::resume(&path, mark.bytes, options.file_io, options.file_buffer)
            .map_err(|e| fail(format!("{}: {e}", partial.display())))?;
        Ok(Some(Box::new(out)))
    }

    /// Where the merge should start reading `entry` (its checkpointed offset), if anywhere.
    pub fn resume_offset(&mut self, entry: &Entry) -> Option<u64> {
        let r = self.resumes.get_mut(&entry.seq)?;
        r.taken = true;
        log::info!(
            "{}: resuming at byte {} after {} packets",
            entry.path.display(),
            r.offset,
            r.packets
        );
        Some(r.offset)
    }

    /// Notes that the merge is finished with `entry`; the next checkpoint commits it and hands it
    /// back, so that the intake hears of it only once its packets are on disk.
    pub fn finished(&mut self, entry: &Entry, packets: u64, end: FileEnd) {
        let id = match self.ids.remove(&entry.seq) {
            Some(id) => id,
            None => FileId {
                path: entry.path.to_string_lossy().into_owned(),
                size: entry.size,
                head: String::new(),
            },
        };
        let before = self.resumes.remove(&entry.seq).map_or(0, |r| r.packets);
        let (outcome, detail, offset) = match &end {
            FileEnd::Complete => (Outcome::Complete, None, None),
            FileEnd::Damaged(e) => (Outcome::Damaged, Some(e.to_string()), Some(e.offset)),
            FileEnd::Skipped(why) => (Outcome::Skipped, Some(why.clone()), None),
            FileEnd::Duplicate(original) => (
                Outcome::Complete,
                Some(format!("the same packets as {}", original.display())),
                None,
            ),
        };
        let record = FileRecord {
            id,
            packets: before + packets,
            outcome,
            detail,
            offset,
            time: now(),
        };
        self.pending.push(record);
        self.unreported.push((entry.clone(), end));
    }

    /// True when a checkpoint is due: something was streamed or finished since the last one, and
    /// `--checkpoint-interval` or `--checkpoint-bytes` has passed.
    pub fn due(&self, writers: &[ShardWriter]) -> bool {
        let streamed = stream_bytes(writers).saturating_sub(self.last_out);
        (streamed > 0 || !self.pending.is_empty())
            && (self.last_at.elapsed() >= self.interval || streamed >= self.every_bytes)
    }

    /// Flushes every output and records a checkpoint: the offset of every input in flight and the
    /// length of every output. Returns the files it committed as finished. Before the outputs are
    /// opened nothing was streamed: nothing is recorded, and the finished files are handed back.
    pub fn checkpoint(
        &mut self,
        reason: Reason,
        merge: &Merge,
        writers: &mut [ShardWriter],
        header: Option<StreamHeader>,
    ) -> Result<Vec<(Entry, FileEnd)>> {
        let Some(header) = header.filter(|_| !writers.is_empty()) else {
            return Ok(self.report_early());
        };
        for w in writers.iter_mut() {
            w.flush().map_err(|e| Error::runtime(e.to_string()))?;
        }
        let emitted: HashMap<u64, u64> = merge
            .open_inputs()
            .map(|i| (i.entry.seq, i.packets))
            .collect();
        let mut open = Vec::new();
        for (entry, offset) in merge.resume_points() {
            let Some(id) = self.ids.get(&entry.seq) else {
                continue;
            };
            let before = self.resumes.get(&entry.seq).map_or(0, |r| r.packets);
            open.push(InFlight {
                id: id.clone(),
                offset,
                packets: before + emitted.get(&entry.seq).copied().unwrap_or(0),
            });
        }
        // Files in flight before that the merge has not reopened yet keep their old position.
        open.extend(
            self.resumes
                .values()
                .filter(|r| !r.taken)
                .map(|r| InFlight {
                    id: r.id.clone(),
                    offset: r.offset,
                    packets: r.packets,
                }),
        );
        let outputs = writers
            .iter()
            .enumerate()
            .map(|(k, w)| OutputMark {
                shard: k,
                name: w.name().to_string(),
                bytes: self.output_len(k, w),
            })
            .collect();
        self.seq += 1;
        let cp = Checkpoint {
            seq: self.seq,
            time: now(),
            reason,
            header: header.into(),
            open,
            outputs,
        };
        let pending = std::mem::take(&mut self.pending);
        let mut records: Vec<Record> = pending.iter().cloned().map(Record::File).collect();
        records.push(Record::Checkpoint(cp));
        self.journal.append(&records)?;
        self.last_at = Instant::now();
        self.last_out = stream_bytes(writers);
        log::debug!("checkpoint {} ({reason:?})", self.seq);
        for record in pending {
            self.remember(record);
        }
        Ok(std::mem::take(&mut self.unreported))
    }

    /// Finished files the intake has not heard of, handed out before a checkpoint commits them:
    /// for a run that must wait for a controller which may be waiting for them in turn. After a
    /// crash before that checkpoint, such a file is streamed again only if its intake offers it
    /// again.
    pub fn report_early(&mut self) -> Vec<(Entry, FileEnd)> {
        std::mem::take(&mut self.unreported)
    }

    /// Length of shard `k`'s output: the file's size for file outputs (flushed), else the bytes
    /// this run streamed.
    fn output_len(&self, k: usize, w: &ShardWriter) -> u64 {
        match (&self.spec, self.spec.path(k)) {
            (OutputSpec::File(_), Some(p)) => {
                fs::metadata(PartialFile::partial_path(&p)).map_or(0, |m| m.len())
            }
            _ => FILE_HEADER_LEN as u64 + stream_bytes(std::slice::from_ref(w)),
        }
    }

    /// Records that every input was streamed (after the final checkpoint and the outputs'
    /// completion): a rerun on this state has nothing to do.
    pub fn done(&mut self) -> Result<()> {
        let streamed = self
            .finished
            .iter()
            .filter(|f| f.outcome != Outcome::Skipped);
        let done = DoneRecord {
            time: now(),
            files: streamed.clone().count() as u64,
            packets: streamed.map(|f| f.packets).sum(),
        };
        self.journal.append(&[Record::Done(done)])
    }
}

/// Bytes of records the writers took so far (record headers and data).
fn stream_bytes(writers: &[ShardWriter]) -> u64 {
    writers
        .iter()
        .map(|w| w.counters.bytes + RECORD_HEADER_LEN as u64 * w.counters.packets)
        .sum()
}

/// Takes the state directory's lock, so two runs never write one journal.
fn lock(dir: &Path) -> Result<Flock<File>> {
    let path = dir.join(LOCK_FILE);
    let file = nofollow::open_or_create_private(&path)
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
        Error::usage(format!(
            "--state {}: another shardcap run is using it",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use journal::HeaderRecord;
    use std::fs::OpenOptions;

    /// Direct file outputs, the default.
    const OPTIONS: OutputOptions = OutputOptions {
        spool: crate::sink::spool::SpoolConfig {
            segment_size: 1 << 20,
            segment_age: std::time::Duration::from_secs(1),
            backlog: 1,
        },
        pipe_size: 1 << 16,
        file_io: crate::sink::output::FileIo::Direct,
        file_buffer: 1 << 20,
    };

    fn config(hash: HashMode) -> StateConfig {
        StateConfig {
            output: "file:out-{shard}.pcap".into(),
            shards: 2,
            hash,
            tunnel: TunnelMode::Inner,
            partition: Partition::WHOLE,
            checkpoint_interval: Duration::from_secs(5),
            checkpoint_bytes: 1 << 20,
            select: String::new(),
            exclusive: true,
            replays: false,
        }
    }

    fn spec() -> OutputSpec {
        OutputSpec::parse("file:out-{shard}.pcap", 2, Partition::WHOLE).unwrap()
    }

    /// Appends `records` to the journal in `dir`, as a run streaming under it writes them.
    fn append(dir: &Path, records: &[Record]) {
        let mut c = Contents::load(dir).unwrap();
        let run = c.run.take().unwrap();
        let mut j = Journal::rewrite(dir, &c, run).unwrap();
        j.append(records).unwrap();
    }

    /// Checkpoint `seq` with stream link type `linktype`, inputs `open` and outputs `outputs`.
    fn cp(seq: u64, linktype: u32, open: Vec<InFlight>, outputs: Vec<OutputMark>) -> Record {
        Record::Checkpoint(Checkpoint {
            seq,
            time: 0,
            reason: Reason::Interval,
            header: HeaderRecord {
                linktype,
                nanos: false,
                snaplen: 65535,
            },
            open,
            outputs,
        })
    }

    /// A checkpoint appended to the journal, as a run streaming under it writes one.
    fn checkpoint(dir: &Path) {
        append(dir, &[cp(1, 1, vec![], vec![])]);
    }

    /// A finished file's record.
    fn finished(id: FileId, outcome: Outcome) -> Record {
        Record::File(FileRecord {
            id,
            packets: 1,
            outcome,
            detail: None,
            offset: None,
            time: 0,
        })
    }

    /// A one-packet pcap at `path` whose packet bytes are all `fill`, cataloged as input `seq`.
    fn capture(path: &Path, fill: u8, seq: u64) -> Entry {
        let mut b = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [1_700_000_000u32, 0, 60, 60] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[fill; 60]);
        fs::write(path, b).unwrap();
        let cand = Candidate {
            path: path.to_path_buf(),
            explicit: true,
        };
        catalog::probe(seq, &cand).expect("a capture")
    }

    fn id_of(e: &Entry) -> FileId {
        FileId::of(&e.path, e.size).unwrap()
    }

    /// The `type` of every line of the journal in `dir`.
    fn line_types(dir: &Path) -> Vec<String> {
        fs::read_to_string(dir.join(journal::JOURNAL_FILE))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["type"].as_str().unwrap().to_string()
            })
            .collect()
    }

    #[test]
    fn compaction_at_start_keeps_committed_files_and_the_last_checkpoint_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        drop(StateKeeper::open(d, config(HashMode::Two), &spec()).unwrap());
        let a = capture(&d.join("a.pcap"), 1, 0);
        let b = capture(&d.join("b.pcap"), 2, 1);
        let c = capture(&d.join("c.pcap"), 3, 2);
        append(
            d,
            &[
                finished(id_of(&a), Outcome::Complete),
                cp(1, 1, vec![], vec![]),
                finished(id_of(&b), Outcome::Damaged),
                cp(2, 101, vec![], vec![]),
                // Not committed: the run died before its next checkpoint.
                finished(id_of(&c), Outcome::Complete),
            ],
        );
        let mut raw = OpenOptions::new()
            .append(true)
            .open(d.join(journal::JOURNAL_FILE))
            .unwrap();
        std::io::Write::write_all(&mut raw, b"{\"type\":\"file\",\"pa").unwrap();
        let mut keeper = StateKeeper::open(d, config(HashMode::Two), &spec()).unwrap();
        assert_eq!(line_types(d), ["run", "file", "file", "checkpoint"]);
        let kept = Contents::load(d).unwrap();
        let paths: Vec<&str> = kept.files.iter().map(|f| f.id.path.as_str()).collect();
        assert_eq!(paths, [id_of(&a).path, id_of(&b).path]);
        assert_eq!(kept.checkpoint.as_ref().map(|k| k.seq), Some(2));
        assert_eq!((kept.uncommitted, kept.torn), (0, false));
        assert_eq!(kept.run.unwrap().restarts, 1);
        assert_eq!(keeper.header().map(|h| h.linktype), Some(101));
        let (entries, dropped) = keeper.admit(vec![a, b, c.clone()]);
        let left: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(left, [c.seq], "only the uncommitted file is streamed again");
        assert_eq!(dropped.len(), 2);
        assert!(matches!(dropped[0].1, FileEnd::Complete));
        assert!(matches!(dropped[1].1, FileEnd::Damaged(_)));
    }

    #[test]
    fn a_checkpoint_resumes_inputs_and_outputs_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = OutputSpec::parse(
            &format!("file:{}/out-{{shard}}.pcap", d.display()),
            2,
            Partition::WHOLE,
        )
        .unwrap();
        drop(StateKeeper::open(d, config(HashMode::Two), &spec).unwrap());
        let input = capture(&d.join("in.pcap"), 7, 0);
        // Past 2^53: an offset through a float would come back off by one.
        let offset = (1u64 << 53) + 1;
        append(
            d,
            &[cp(
                1,
                1,
                vec![InFlight {
                    id: id_of(&input),
                    offset,
                    packets: 42,
                }],
                vec![
                    OutputMark {
                        shard: 0,
                        name: "out-0.pcap".into(),
                        bytes: 1000,
                    },
                    OutputMark {
                        shard: 1,
                        name: "out-1.pcap".into(),
                        bytes: 24,
                    },
                ],
            )],
        );
        let out0 = spec.path(0).unwrap();
        let out1 = spec.path(1).unwrap();
        let written: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        // Shard 0 died mid-run (partial, longer than checkpointed); shard 1 had been completed.
        fs::write(PartialFile::partial_path(&out0), &written).unwrap();
        fs::write(&out1, &written[..24]).unwrap();
        let mut keeper = StateKeeper::open(d, config(HashMode::Two), &spec).unwrap();
        let (kept, _) = keeper.admit(vec![input.clone()]);
        assert_eq!(kept.len(), 1);
        assert_eq!(keeper.resume_offset(&input), Some(offset));
        assert!(keeper.resume_output(0, &OPTIONS).unwrap().is_some());
        assert!(keeper.resume_output(1, &OPTIONS).unwrap().is_some());
        assert_eq!(
            fs::read(PartialFile::partial_path(&out0)).unwrap(),
            written[..1000],
            "cut back to the checkpointed length, keeping what was before it"
        );
        assert_eq!(
            fs::read(PartialFile::partial_path(&out1)).unwrap(),
            written[..24]
        );
        assert!(
            !out1.exists(),
            "the completed output continues as a partial file"
        );
        // An output shorter than its checkpoint cannot be resumed.
        fs::write(PartialFile::partial_path(&out0), &written[..999]).unwrap();
        let e = keeper.resume_output(0, &OPTIONS).err().expect("too short");
        assert!(e.to_string().contains("shorter than the 1000 bytes"), "{e}");
    }

    #[test]
    fn finished_files_are_known_by_content_not_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        drop(StateKeeper::open(d, config(HashMode::Two), &spec()).unwrap());
        let a = capture(&d.join("a.pcap"), 1, 0);
        let s = capture(&d.join("s.pcap"), 9, 1);
        append(
            d,
            &[
                finished(id_of(&a), Outcome::Complete),
                finished(id_of(&s), Outcome::Skipped),
                cp(1, 1, vec![], vec![]),
            ],
        );
        let copy = d.join("copy.pcap");
        fs::copy(&a.path, &copy).unwrap();
        let copy = capture(&copy, 1, 2);
        // Same name and size, other bytes: another file.
        let changed = capture(&a.path, 2, 3);
        let mut keeper = StateKeeper::open(d, config(HashMode::Two), &spec()).unwrap();
        let (kept, dropped) = keeper.admit(vec![copy, changed, s]);
        let seqs: Vec<u64> = kept.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            [3, 1],
            "the copy is finished; the changed file and the skipped one are not"
        );
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].0.seq, 2);
        assert!(
            matches!(dropped[0].1, FileEnd::Complete),
            "its intake hears it is done"
        );
    }

    #[test]
    fn the_journal_is_replaced_atomically_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path = d.join(journal::JOURNAL_FILE);
        drop(StateKeeper::open(d, config(HashMode::Two), &spec()).unwrap());
        checkpoint(d);
        // A rewrite interrupted earlier left its temporary file.
        let tmp = d.join(format!("{}.tmp", journal::JOURNAL_FILE));
        fs::write(&tmp, "{\"type\":\"ru").unwrap();
        let old = d.join("old");
        fs::hard_link(&path, &old).unwrap();
        let before = fs::read(&path).unwrap();
        drop(StateKeeper::open(d, config(HashMode::Two), &spec()).unwrap());
        assert_eq!(
            fs::read(&old).unwrap(),
            before,
            "the old journal is never written over: the new one is renamed in"
        );
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        assert_ne!(ino(&path), ino(&old));
        assert!(!tmp.exists(), "no temporary file remains");
        let mut names: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["journal.jsonl", "lock", "old"]);
        let c = Contents::load(d).unwrap();
        assert_eq!((c.run.unwrap().restarts, c.checkpoint.unwrap().seq), (1, 1));
    }

    #[test]
    fn the_journal_records_the_stable_names_of_the_options() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateKeeper::open(dir.path(), config(HashMode::Four), &spec()).unwrap());
        let key = Contents::load(dir.path()).unwrap().run.unwrap().key;
        assert_eq!(
            (key.hash.as_str(), key.tunnel.as_str(), key.shards),
            ("4-tuple", "inner", 2)
        );
        assert_eq!(key.output, "file:out-{shard}.pcap");
    }

    #[test]
    fn a_bound_journal_refuses_other_options_and_counts_restarts() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateKeeper::open(dir.path(), config(HashMode::Two), &spec()).unwrap());
        // Nothing streamed yet: other options take the journal over.
        drop(StateKeeper::open(dir.path(), config(HashMode::Five), &spec()).unwrap());
        checkpoint(dir.path());
        let e = StateKeeper::open(dir.path(), config(HashMode::Two), &spec())
            .err()
            .expect("other options refused");
        assert!(e.is_usage());
        assert!(e.to_string().contains("--hash 5-tuple"), "{e}");
        drop(StateKeeper::open(dir.path(), config(HashMode::Five), &spec()).unwrap());
        let run = Contents::load(dir.path()).unwrap().run.unwrap();
        assert_eq!(run.restarts, 1);
        // The selection binds it too.
        let selected = StateConfig {
            select: "--since 1709287200.000000000".into(),
            ..config(HashMode::Five)
        };
        let e = StateKeeper::open(dir.path(), selected, &spec())
            .err()
            .expect("another selection refused");
        assert!(e.to_string().contains("--since 1709287200"), "{e}");
    }

    #[test]
    fn a_bound_journal_refuses_another_partition_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let part = |k, m| StateConfig {
            partition: Partition::new(k, m).unwrap(),
            ..config(HashMode::Two)
        };
        drop(StateKeeper::open(dir.path(), part(1, 3), &spec()).unwrap());
        checkpoint(dir.path());
        let key = Contents::load(dir.path()).unwrap().run.unwrap().key;
        assert_eq!(key.partition.as_deref(), Some("1/3"));
        for (k, m, other) in [(2, 3, "2/3"), (1, 4, "1/4"), (0, 1, "0/1")] {
            let e = StateKeeper::open(dir.path(), part(k, m), &spec())
                .err()
                .expect("another partition refused");
            assert!(e.is_usage());
            let msg = e.to_string();
            assert!(
                msg.contains("--partition 1/3") && msg.contains(&format!("--partition {other}")),
                "{msg}"
            );
        }
        drop(StateKeeper::open(dir.path(), part(1, 3), &spec()).unwrap());
    }

    #[test]
    fn one_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateKeeper::open(dir.path(), config(HashMode::Two), &spec()).unwrap();
        let e = StateKeeper::open(dir.path(), config(HashMode::Two), &spec())
            .err()
            .expect("the lock is held");
        assert!(e.to_string().contains("another shardcap run"), "{e}");
        drop(first);
        assert!(StateKeeper::open(dir.path(), config(HashMode::Two), &spec()).is_ok());
    }
}
