//! Per-file checkpoints in the state directory: for each file (device, inode, head fingerprint,
//! generation, `_id` key) the offset up to which every record is acknowledged by the server.
//!
//! `checkpoints.json` is replaced atomically (written beside, fsync'd, renamed, directory fsync'd),
//! only with offsets whose records were all acknowledged, in order; a restarted shipper resumes each
//! file exactly there. A file's entry is written before any of its records is sent, so its `_id`
//! key survives a crash. A lock file keeps two shippers off one state directory.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::{FileId, Fingerprint};
use shardcap_files::nofollow;

const FILE_NAME: &str = "checkpoints.json";
const LOCK_NAME: &str = "lock";
/// How many keys of files gone from disk are remembered, so that a new file reusing an inode never
/// gets an old key.
const RETIRED_KEYS: usize = 4096;

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub id: FileId,
    /// Truncations seen.
    pub generation: u32,
    pub fingerprint: Fingerprint,
    /// The `_id` key of its records.
    pub key: u64,
    /// Every record before this byte is acknowledged.
    pub offset: u64,
    /// The name it had last (for people reading the file).
    pub path: String,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    run_id: String,
    files: Vec<FileState>,
    #[serde(default)]
    retired_keys: Vec<u64>,
}

/// The checkpoints of one state directory, held locked.
pub struct CheckpointStore {
    dir: PathBuf,
    _lock: Flock<File>,
    run_id: String,
    files: BTreeMap<FileId, FileState>,
    retired: VecDeque<u64>,
    /// Changed since the last save.
    dirty: bool,
    /// A new file entry must be saved before its records are sent.
    urgent: bool,
}

impl CheckpointStore {
    /// Opens (creating) `dir`, takes its lock and loads its checkpoints. The run id is the one
    /// stored, else `run_id`, else `fresh()`.
    pub fn open(dir: &Path, run_id: Option<&str>, fresh: impl FnOnce() -> String) -> Result<Self> {
        let usage = |what: String| Error::usage(format!("--state {}: {what}", dir.display()));
        fs::create_dir_all(dir).map_err(|e| usage(e.to_string()))?;
        let lock_file = nofollow::open_or_create_private(&dir.join(LOCK_NAME))
            .map_err(|e| usage(e.to_string()))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            usage(
                "another shipper holds this state directory; stop it or use another --state".into(),
            )
        })?;
        let path = dir.join(FILE_NAME);
        let (stored, files, retired) = match fs::read(&path) {
            Ok(bytes) => {
                let d: OnDisk = serde_json::from_slice(&bytes).map_err(|e| {
                    usage(format!(
                        "{FILE_NAME} is unreadable ({e}); move it away to ship everything again"
                    ))
                })?;
                let files = d.files.into_iter().map(|f| (f.id, f)).collect();
                (Some(d.run_id), files, d.retired_keys.into())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (None, BTreeMap::new(), VecDeque::new())
            }
            Err(e) => return Err(usage(e.to_string())),
        };
        let run_id = match (stored, run_id) {
            (Some(s), Some(r)) if s != r => {
                log::info!(
                    "state {}: run id {s} replaced by --run-id {r}",
                    dir.display()
                );
                r.to_string()
            }
            (Some(s), _) => s,
            (None, Some(r)) => r.to_string(),
            (None, None) => fresh(),
        };
        let mut store = CheckpointStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            run_id,
            files,
            retired,
            dirty: true,
            urgent: false,
        };
        store
            .save()
            .map_err(|e| usage(format!("cannot write checkpoints: {e}")))?;
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run id recorded with these checkpoints.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The checkpoint of a file, if it has one.
    pub fn get(&self, id: FileId) -> Option<&FileState> {
        self.files.get(&id)
    }

    /// Every file with a checkpoint.
    pub fn ids(&self) -> Vec<FileId> {
        self.files.keys().copied().collect()
    }

    /// True when `key` belongs to a file with a checkpoint or to one retired recently.
    pub fn key_in_use(&self, key: u64) -> bool {
        self.files.values().any(|f| f.key == key) || self.retired.contains(&key)
    }

    /// Records a new file (or a new generation of one); it must be saved before its records go out.
    pub fn register(&mut self, state: FileState) {
        self.files.insert(state.id, state);
        self.dirty = true;
        self.urgent = true;
    }

    /// Moves a file's acknowledged offset forward (for the generation given only).
    pub fn advance(&mut self, id: FileId, generation: u32, offset: u64, path: &Path) {
        if let Some(f) = self.files.get_mut(&id) {
            if f.generation == generation && offset > f.offset {
                f.offset = offset;
                f.path = path.to_string_lossy().into_owned();
                self.dirty = true;
            }
        }
    }

    /// Forgets a file that is gone, remembering its key.
    pub fn retire(&mut self, id: FileId) {
        if let Some(f) = self.files.remove(&id) {
            self.retired.push_back(f.key);
            while self.retired.len() > RETIRED_KEYS {
                self.retired.pop_front();
            }
            self.dirty = true;
        }
    }

    /// True when a registration waits to be saved.
    pub fn is_urgent(&self) -> bool {
        self.urgent
    }

    /// Writes the checkpoints durably and atomically (when changed).
    pub fn save(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let disk = OnDisk {
            version: 1,
            run_id: self.run_id.clone(),
            files: self.files.values().cloned().collect(),
            retired_keys: self.retired.iter().copied().collect(),
        };
        let json = serde_json::to_vec(&disk).map_err(io::Error::other)?;
        // Owner only, as the dead letters beside it (which hold documents).
        shardcap_files::write_private(&self.dir.join(FILE_NAME), &json)?;
        File::open(&self.dir)?.sync_all()?;
        self.dirty = false;
        self.urgent = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ino: u64, key: u64) -> FileState {
        FileState {
            id: FileId { dev: 1, ino },
            generation: 0,
            fingerprint: Fingerprint { len: 4, hash: 9 },
            key,
            offset: 0,
            path: "x".into(),
        }
    }

    #[test]
    fn survives_a_reopen_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = CheckpointStore::open(dir.path(), None, || "gen-1".into()).unwrap();
        assert_eq!(s.run_id(), "gen-1");
        assert!(
            CheckpointStore::open(dir.path(), None, || "x".into()).is_err(),
            "locked"
        );
        s.register(state(5, 50));
        assert!(s.is_urgent());
        s.advance(FileId { dev: 1, ino: 5 }, 0, 120, Path::new("/l/conn.log"));
        s.advance(FileId { dev: 1, ino: 5 }, 1, 999, Path::new("/l/conn.log"));
        s.advance(FileId { dev: 1, ino: 5 }, 0, 100, Path::new("/l/conn.log"));
        s.register(state(6, 60));
        s.retire(FileId { dev: 1, ino: 6 });
        s.save().unwrap();
        assert!(!s.is_urgent());
        drop(s);
        let s = CheckpointStore::open(dir.path(), None, || "gen-2".into()).unwrap();
        assert_eq!(s.run_id(), "gen-1");
        let f = s.get(FileId { dev: 1, ino: 5 }).unwrap();
        assert_eq!((f.offset, f.path.as_str()), (120, "/l/conn.log"));
        assert!(s.get(FileId { dev: 1, ino: 6 }).is_none());
        assert!(s.key_in_use(60) && s.key_in_use(50) && !s.key_in_use(70));
    }
}
