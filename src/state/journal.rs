//! The journal file: JSON lines, appended and fsync'd, rewritten atomically (compacted) at start.
//!
//! A `file` record is committed by the next `checkpoint` or `done` record: both are written only
//! after every shard output was flushed, so a file counts as done only once its packets are on
//! disk. File records after the last checkpoint, and a torn last line, are ignored on load.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::identity::FileId;
use crate::error::{Error, Result};
use crate::input::FileEnd;
use shardcap_capture::format::StreamHeader;
use shardcap_capture::ReadError;
use shardcap_files::nofollow;

/// Name of the journal inside the state directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Format version written in the `run` record.
pub const VERSION: u32 = 1;

/// The options a journal is bound to: a restart must use the same ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunKey {
    /// The `-o` argument.
    pub output: String,
    pub shards: u16,
    pub hash: String,
    pub tunnel: String,
    /// `K/M` of a partitioned run (`--partition`); absent for the whole flow-hash space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The selection options (`--since`, `--until`, `--filter`, `--dedup`); empty without any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub select: String,
}

impl RunKey {
    /// The options as given on the command line.
    pub fn options(&self) -> String {
        let mut s = format!(
            "-o {} -n {} --hash {} --tunnel {}",
            self.output, self.shards, self.hash, self.tunnel
        );
        if let Some(p) = &self.partition {
            s += &format!(" --partition {p}");
        }
        if !self.select.is_empty() {
            s += &format!(" {}", self.select);
        }
        s
    }
}

/// First record: what the journal belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub version: u32,
    /// When the first run of this journal started (seconds since the epoch).
    pub created: u64,
    /// When the latest run started.
    pub started: u64,
    /// How many times the run was started again on this journal.
    pub restarts: u32,
    #[serde(flatten)]
    pub key: RunKey,
}

/// How a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every packet was streamed.
    Complete,
    /// Streamed up to damage; the rest is unreadable.
    Damaged,
    /// Not streamed (not authorized, not a capture any more, another link type).
    Skipped,
}

/// A file the run is finished with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    #[serde(flatten)]
    pub id: FileId,
    /// Packets streamed from it (over all runs).
    pub packets: u64,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where a damaged file's damage is (byte offset of its decompressed stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub time: u64,
}

impl FileRecord {
    /// How the file ended, as the run that streamed it told its intake.
    pub fn end(&self) -> FileEnd {
        let detail = self.detail.clone().unwrap_or_default();
        match self.outcome {
            Outcome::Complete => FileEnd::Complete,
            Outcome::Damaged => {
                let offset = self.offset.unwrap_or(0);
                let prefix = format!("byte {offset}: ");
                let message = detail.strip_prefix(&prefix).unwrap_or(&detail);
                FileEnd::Damaged(ReadError::new(offset, message))
            }
            Outcome::Skipped => FileEnd::Skipped(detail),
        }
    }
}

/// Why a checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `--checkpoint-interval` or `--checkpoint-bytes` elapsed.
    Interval,
    /// SIGTERM/SIGINT stopped the run.
    Stop,
    /// Every input was streamed.
    End,
}

/// The pcap header every shard stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRecord {
    pub linktype: u32,
    pub nanos: bool,
    pub snaplen: u32,
}

impl From<StreamHeader> for HeaderRecord {
    fn from(h: StreamHeader) -> Self {
        HeaderRecord {
            linktype: h.linktype,
            nanos: h.nanos,
            snaplen: h.snaplen,
        }
    }
}

impl From<HeaderRecord> for StreamHeader {
    fn from(h: HeaderRecord) -> Self {
        StreamHeader {
            linktype: h.linktype,
            nanos: h.nanos,
            snaplen: h.snaplen,
        }
    }
}

/// A file open at a checkpoint: records before `offset` were streamed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InFlight {
    #[serde(flatten)]
    pub id: FileId,
    /// Offset in the (decompressed) capture stream to resume at.
    pub offset: u64,
    /// Packets streamed from it so far.
    pub packets: u64,
}

/// One shard output at a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputMark {
    pub shard: usize,
    pub name: String,
    /// Length of the output file (file outputs), or bytes streamed by the latest run (others).
    pub bytes: u64,
}

/// Where the run stood when every output had been flushed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub time: u64,
    pub reason: Reason,
    pub header: HeaderRecord,
    pub open: Vec<InFlight>,
    pub outputs: Vec<OutputMark>,
}

/// The run streamed every input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneRecord {
    pub time: u64,
    /// Files the journal holds as finished.
    pub files: u64,
    /// Packets streamed from them.
    pub packets: u64,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Run(RunRecord),
    File(FileRecord),
    Checkpoint(Checkpoint),
    Done(DoneRecord),
}

/// What a journal holds once read: only committed records.
#[derive(Debug, Default, Serialize)]
pub struct Contents {
    pub run: Option<RunRecord>,
    pub files: Vec<FileRecord>,
    pub checkpoint: Option<Checkpoint>,
    pub done: Option<DoneRecord>,
    /// File records written after the last checkpoint (the run died before committing them).
    pub uncommitted: usize,
    /// The last line was cut short (the run died while writing it).
    pub torn: bool,
}

impl Contents {
    /// Reads the journal in `dir`; an absent journal is empty.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(JOURNAL_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(e) => return Err(Error::file(&path, "cannot read")(e)),
        };
        let mut c = Contents::default();
        let mut pending = Vec::new();
        let mut lines = BufReader::new(file).lines().enumerate().peekable();
        while let Some((n, line)) = lines.next() {
            let line = line.map_err(|e| Error::file(&path, "cannot read")(e))?;
            let record = match serde_json::from_str::<Record>(&line) {
                Ok(r) => r,
                Err(_) if lines.peek().is_none() => {
                    c.torn = true;
                    break;
                }
                Err(e) => {
                    return Err(Error::runtime(format!(
                        "{}: line {}: {e}; the journal is damaged (move it away to start over)",
                        path.display(),
                        n + 1
                    )))
                }
            };
            match record {
                Record::Run(r) => c.run = Some(r),
                Record::File(f) => pending.push(f),
                Record::Checkpoint(k) => {
                    c.files.append(&mut pending);
                    c.checkpoint = Some(k);
                }
                Record::Done(d) => {
                    c.files.append(&mut pending);
                    c.done = Some(d);
                }
            }
        }
        c.uncommitted = pending.len();
        Ok(c)
    }

    /// The records of a compacted journal holding the same committed state.
    fn compacted(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.files.len() + 3);
        out.extend(self.run.clone().map(Record::Run));
        out.extend(self.files.iter().cloned().map(Record::File));
        out.extend(self.checkpoint.clone().map(Record::Checkpoint));
        out.extend(self.done.clone().map(Record::Done));
        out
    }
}

/// The journal open for appending.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Rewrites the journal in `dir` atomically as `contents` compacted, with `run` as its run
    /// record, and opens it for appending.
    pub fn rewrite(dir: &Path, contents: &Contents, run: RunRecord) -> Result<Self> {
        let path = dir.join(JOURNAL_FILE);
        let fail = |e| Error::file(&path, "cannot write")(e);
        let mut records = contents.compacted();
        match records.first_mut() {
            Some(Record::Run(r)) => *r = run,
            _ => records.insert(0, Record::Run(run)),
        }
        remove_stale_temporaries(dir);
        // Owner only: it names every input and output.
        shardcap_files::write_private(&path, &encode(&records)).map_err(fail)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        let file = nofollow::open_existing(&path, true).map_err(fail)?;
        Ok(Journal { file, path })
    }

    /// Appends `records` in one write and waits until they are on disk.
    pub fn append(&mut self, records: &[Record]) -> Result<()> {
        self.file
            .write_all(&encode(records))
            .and_then(|_| self.file.sync_data())
            .map_err(Error::file(&self.path, "cannot append"))
    }
}

/// JSON lines of `records`.
fn encode(records: &[Record]) -> Vec<u8> {
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r).expect("journal records serialize");
        buf.push(b'\n');
    }
    buf
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Removes what an interrupted rewrite left (the run holds the directory's lock, so no other run
/// is writing one): `.journal.jsonl.PID.N.tmp`, and `journal.jsonl.tmp` of earlier versions.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name == format!("{JOURNAL_FILE}.tmp")
            || (name.starts_with(&format!(".{JOURNAL_FILE}.")) && name.ends_with(".tmp"));
        if ours {
            // unlink(2) removes a symlink itself, never its target.
            let _ = nix::unistd::unlink(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};

    fn file(path: &str) -> Record {
        Record::File(FileRecord {
            id: FileId {
                path: path.into(),
                size: 1,
                head: "00".into(),
            },
            packets: 1,
            outcome: Outcome::Complete,
            detail: None,
            offset: None,
            time: 0,
        })
    }

    fn checkpoint(seq: u64) -> Record {
        Record::Checkpoint(Checkpoint {
            seq,
            time: 0,
            reason: Reason::Interval,
            header: HeaderRecord {
                linktype: 1,
                nanos: false,
                snaplen: 65535,
            },
            open: vec![],
            outputs: vec![],
        })
    }

    fn run() -> RunRecord {
        RunRecord {
            version: VERSION,
            created: 1,
            started: 1,
            restarts: 0,
            key: RunKey {
                output: "file:x".into(),
                shards: 1,
                hash: "5-tuple".into(),
                tunnel: "outer".into(),
                partition: None,
                select: String::new(),
            },
        }
    }

    #[test]
    fn files_count_only_once_a_checkpoint_follows_and_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::rewrite(dir.path(), &Contents::default(), run()).unwrap();
        j.append(&[file("a"), checkpoint(1)]).unwrap();
        j.append(&[file("b")]).unwrap();
        let mut raw = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        raw.write_all(b"{\"type\":\"checkp").unwrap();
        let c = Contents::load(dir.path()).unwrap();
        assert_eq!(c.files.len(), 1);
        assert_eq!(c.files[0].id.path, "a");
        assert_eq!(c.uncommitted, 1);
        assert!(c.torn);
        assert_eq!(c.checkpoint.as_ref().unwrap().seq, 1);

        let mut r = run();
        r.restarts = 1;
        Journal::rewrite(dir.path(), &c, r).unwrap();
        let again = Contents::load(dir.path()).unwrap();
        assert_eq!(again.files.len(), 1);
        assert!(!again.torn);
        assert_eq!(again.uncommitted, 0);
        assert_eq!(again.run.unwrap().restarts, 1);
    }

    #[test]
    fn damage_inside_the_journal_is_an_error_even_with_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::rewrite(dir.path(), &Contents::default(), run()).unwrap();
        j.append(&[file("a"), checkpoint(1)]).unwrap();
        let mut raw = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        // Whole JSON, but not a record: damage, not a write cut short.
        raw.write_all(b"{\"type\":\"file\",\"path\":7}\n").unwrap();
        j.append(&[file("b"), checkpoint(2)]).unwrap();
        raw.write_all(b"{\"type\":\"do").unwrap();
        let e = Contents::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn a_torn_tail_keeps_every_committed_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::rewrite(dir.path(), &Contents::default(), run()).unwrap();
        j.append(&[file("a"), checkpoint(1), file("b"), checkpoint(2)])
            .unwrap();
        let full = fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        // The run died while writing its next records: cut anywhere in them.
        j.append(&[file("c"), checkpoint(3)]).unwrap();
        let longer = fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        let c_end = full.len()
            + longer[full.len()..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap()
            + 1;
        for cut in full.len() + 1..longer.len() {
            fs::write(dir.path().join(JOURNAL_FILE), &longer[..cut]).unwrap();
            let c = Contents::load(dir.path()).unwrap();
            let paths: Vec<&str> = c.files.iter().map(|f| f.id.path.as_str()).collect();
            let seq = c.checkpoint.as_ref().map(|k| k.seq);
            if cut == longer.len() - 1 {
                // Only the newline is missing: the record is whole.
                assert_eq!((seq, paths), (Some(3), vec!["a", "b", "c"]));
                continue;
            }
            assert_eq!((seq, paths), (Some(2), vec!["a", "b"]), "cut at {cut}");
            // The file record is read whole (uncommitted) once only its newline may be missing.
            let whole = cut >= c_end - 1;
            assert_eq!(c.torn, !whole || cut > c_end, "cut at {cut}");
            assert_eq!(c.uncommitted, usize::from(whole), "cut at {cut}");
        }
    }

    #[test]
    fn a_damaged_file_reads_back_with_its_offset_and_reason() {
        let record = |offset: Option<u64>| FileRecord {
            id: FileId {
                path: "d".into(),
                size: 1,
                head: "00".into(),
            },
            packets: 3,
            outcome: Outcome::Damaged,
            detail: Some(ReadError::new(777, "record cut short").to_string()),
            offset,
            time: 0,
        };
        let text = serde_json::to_string(&Record::File(record(Some(777)))).unwrap();
        let Record::File(back) = serde_json::from_str(&text).unwrap() else {
            panic!("a file record: {text}");
        };
        match back.end() {
            FileEnd::Damaged(e) => {
                assert_eq!((e.offset, e.message.as_str()), (777, "record cut short"))
            }
            other => panic!("{other:?}"),
        }
        // Written before offsets were journaled: the reason stays whole.
        let old = text.replace(",\"offset\":777", "");
        let Record::File(old) = serde_json::from_str(&old).unwrap() else {
            panic!("a file record: {old}");
        };
        match old.end() {
            FileEnd::Damaged(e) => {
                assert_eq!(
                    (e.offset, e.message.as_str()),
                    (0, "byte 777: record cut short")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damage_before_the_last_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(JOURNAL_FILE),
            "garbage\n{\"type\":\"done\",\"time\":0,\"files\":0,\"packets\":0}\n",
        )
        .unwrap();
        let e = Contents::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
