//! Packet-time spans of captures for `--since`: a file's last packet time is learned by reading
//! it to its end once, and kept in a cache file keyed by the file's identity (path, size and the
//! hash of its first 64 KiB, as the journal identifies files), so a later run over the same pile
//! reads only each file's head. A run's admission ([`SpanCache::place`]) takes it from the cache,
//! or from its intake (a watched spool learned each file's range from its ends), and otherwise
//! has it read off the dispatch thread (see [`super::screen`]).
//!
//! The cache is a JSON-lines file, appended to as files are learned; a later line for the same
//! identity wins. A missing file is an empty cache; an unreadable line is ignored. Once it has
//! [`COMPACT_AT`] lines, opening it rewrites it with one line a file still there at that size:
//! files deleted or rotated away (a watched spool's) leave it.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::{self, Entry};
use super::discover::Candidate;
use super::survey::read_range;
use crate::select::{Side, TimeRange};
use crate::state::identity::FileId;
use std::sync::atomic::AtomicBool;

/// Lines from which opening the cache compacts it.
const COMPACT_AT: usize = 4096;

/// One cached span.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    path: String,
    size: u64,
    head: String,
    first_ts: Option<u64>,
    /// The latest packet time in the file (its packets may be out of order).
    last_ts: Option<u64>,
}

/// The cache of last packet times.
#[derive(Debug, Default)]
pub struct SpanCache {
    file: Option<PathBuf>,
    known: HashMap<(String, u64, String), Option<u64>>,
    learned: Vec<Record>,
    /// Files whose last packet time came from the cache.
    pub hits: u64,
    /// Files read to their end to learn it.
    pub scans: u64,
    /// Files whose last packet time their intake told.
    pub told: u64,
}

/// Where a file lies against the time range, as far as known without reading it whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Known: wholly on that side of the range, or (`None`) not wholly outside it.
    Known(Option<Side>),
    /// It starts before the range and its last packet time must be read ([`SpanCache::learned`]).
    Unread,
}

impl SpanCache {
    /// The cache kept in `file` (`None`: in memory only, for this run).
    pub fn open(file: Option<&Path>) -> io::Result<Self> {
        let mut cache = SpanCache {
            file: file.map(Path::to_path_buf),
            ..Default::default()
        };
        let Some(path) = file else {
            return Ok(cache);
        };
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(cache),
            Err(e) => return Err(e),
        };
        let mut records: HashMap<(String, u64, String), Record> = HashMap::new();
        let lines = text.lines().count();
        for r in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        {
            records.insert((r.path.clone(), r.size, r.head.clone()), r);
        }
        if lines >= COMPACT_AT {
            // Still there at the same size (its head may have changed: it is looked up anyway).
            records.retain(|k, _| fs::metadata(&k.0).is_ok_and(|m| m.len() == k.1));
            let mut kept: Vec<&Record> = records.values().collect();
            kept.sort_by(|a, b| (&a.path, a.size).cmp(&(&b.path, b.size)));
            let text: String = kept
                .iter()
                .map(|r| serde_json::to_string(r).expect("serialisable") + "\n")
                .collect();
            shardcap_files::write_private(path, text.as_bytes())?;
            log::info!(
                "catalog cache {}: {lines} lines compacted to {}",
                path.display(),
                kept.len()
            );
        }
        cache.known = records.into_iter().map(|(k, r)| (k, r.last_ts)).collect();
        Ok(cache)
    }

    /// Where `entry` lies when wholly outside `range` (see [`TimeRange::outside`]): its last
    /// packet time is looked up, or learned, only when its first is before `range.since`.
    pub fn outside(&mut self, range: &TimeRange, entry: &Entry) -> Option<Side> {
        let first = entry.first_ts?;
        range.outside(first, || self.last_ts(entry))
    }

    /// True when the capture `cand` is wholly outside `range` (read as [`SpanCache::outside`]
    /// reads it); a file that cannot be probed is not.
    pub fn candidate_outside(&mut self, range: &TimeRange, cand: &Candidate) -> bool {
        catalog::probe(0, cand).is_ok_and(|e| self.outside(range, &e).is_some())
    }

    /// Where `entry` lies against `range` without reading it whole: its last packet time, when
    /// its first is before `range.since`, from the cache or else `told` (by the intake).
    pub fn place(&mut self, range: &TimeRange, entry: &Entry, told: Option<u64>) -> Placed {
        let Some(first) = entry.first_ts else {
            return Placed::Known(None);
        };
        let mut unread = false;
        let side = range.outside(first, || match self.cached(entry) {
            Some(last) => last,
            None if told.is_some() => {
                self.told += 1;
                told
            }
            None => {
                unread = true;
                None
            }
        });
        if unread {
            Placed::Unread
        } else {
            Placed::Known(side)
        }
    }

    /// The latest packet time of `entry`, from the cache or by reading the file to its end
    /// (`None` when it cannot be read; damage ends the reading, keeping what came before).
    pub fn last_ts(&mut self, entry: &Entry) -> Option<u64> {
        if let Some(last) = self.cached(entry) {
            return last;
        }
        let last = read_last_ts(&entry.path);
        self.learned(entry, last);
        last
    }

    /// The cached latest packet time of `entry` (`Some(None)`: it cannot be read), or `None`
    /// when the cache does not know it.
    fn cached(&mut self, entry: &Entry) -> Option<Option<u64>> {
        let id = match FileId::of(&entry.path, entry.size) {
            Ok(id) => id,
            Err(e) => {
                log::warn!("{}: cannot read: {e}", entry.path.display());
                return Some(None);
            }
        };
        let last = *self.known.get(&(id.path, id.size, id.head))?;
        self.hits += 1;
        Some(last)
    }

    /// Records `last`, the latest packet time of `entry` read to its end (`None`: unreadable).
    pub fn learned(&mut self, entry: &Entry, last: Option<u64>) {
        self.scans += 1;
        let Ok(id) = FileId::of(&entry.path, entry.size) else {
            return;
        };
        let key = (id.path, id.size, id.head);
        self.known.insert(key.clone(), last);
        self.learned.push(Record {
            path: key.0,
            size: key.1,
            head: key.2,
            first_ts: entry.first_ts,
            last_ts: last,
        });
    }

    /// Appends what was learned since the last save to the cache file.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.file else {
            self.learned.clear();
            return Ok(());
        };
        if self.learned.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for r in self.learned.drain(..) {
            text += &serde_json::to_string(&r).expect("serialisable");
            text.push('\n');
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(text.as_bytes())
    }

    /// Saves, logging a failure (the cache only saves time).
    pub fn save_or_warn(&mut self) {
        if let Err(e) = self.save() {
            let path = self.file.as_deref().unwrap_or(Path::new(""));
            log::warn!("catalog cache {}: cannot write: {e}", path.display());
        }
    }
}

/// Reads a capture to its end; its latest packet time.
fn read_last_ts(path: &Path) -> Option<u64> {
    read_range(path, &AtomicBool::new(false)).map(|(_, last)| last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A one-packet pcap at `path`, cataloged.
    fn capture(path: &Path) -> Entry {
        let mut b = Vec::new();
        for v in [
            0xa1b2_c3d4u32,
            0x0004_0002,
            0,
            0,
            65535,
            1,
            1_700_000_000,
            0,
            60,
            60,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[7; 60]);
        fs::write(path, b).unwrap();
        let cand = Candidate {
            path: path.to_path_buf(),
            explicit: true,
        };
        catalog::probe(0, &cand).unwrap()
    }

    #[test]
    fn a_long_cache_keeps_one_line_a_file_still_there() {
        let dir = tempfile::tempdir().unwrap();
        let entry = capture(&dir.path().join("a.pcap"));
        let file = dir.path().join("cache.jsonl");
        let mut cache = SpanCache::open(Some(&file)).unwrap();
        cache.learned(&entry, Some(42));
        cache.save().unwrap();
        let mine = fs::read_to_string(&file).unwrap();
        let mut text = String::new();
        for i in 0..COMPACT_AT {
            let gone = dir.path().join(format!("gone-{i}.pcap"));
            let r = format!(
                r#"{{"path":{:?},"size":84,"head":"x","first_ts":1,"last_ts":2}}"#,
                gone
            );
            text += &(r + "\n");
            if i % 1000 == 0 {
                text += &mine;
            }
        }
        fs::write(&file, text).unwrap();
        let mut cache = SpanCache::open(Some(&file)).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            mine,
            "one line: the file still there"
        );
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(cache.last_ts(&entry), Some(42));
        assert_eq!((cache.hits, cache.scans), (1, 0));
        // Short caches are left as they are.
        fs::write(&file, mine.repeat(3)).unwrap();
        SpanCache::open(Some(&file)).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), mine.repeat(3));
    }
}
