//! Finding log files: a recursive walk of the log directories, hidden entries and compressed
//! archives left out, each file identified by device and inode.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use crate::identity::FileId;
use crate::logformat::is_candidate;

/// A file found by a walk.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub id: FileId,
    pub size: u64,
}

/// Walks `roots` (a missing root is skipped: the IDS may not have created it yet), leaving out the
/// directory `exclude` (the shipper's own state), hidden entries and archives. Symlinks to files
/// are followed, symlinks to directories are not (no loops). A file reached by two names is listed
/// once.
pub fn walk(roots: &[PathBuf], exclude: Option<FileId>) -> Vec<Found> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for root in roots {
        let entries = walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0
                    || is_candidate(e.path())
                        && !(e.file_type().is_dir()
                            && e.metadata()
                                .is_ok_and(|md| Some(FileId::of(&md)) == exclude))
            });
        for e in entries.flatten() {
            if e.file_type().is_dir() {
                continue;
            }
            // Follow a symlink to a file.
            let Ok(md) = fs::metadata(e.path()) else {
                continue;
            };
            let id = FileId::of(&md);
            if md.is_file() && seen.insert(id) {
                out.push(Found {
                    path: e.into_path(),
                    id,
                    size: md.len(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_recursively_and_skips() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("shard-0/zeek")).unwrap();
        fs::create_dir_all(r.join(".ship")).unwrap();
        fs::create_dir_all(r.join("state")).unwrap();
        fs::write(r.join("shard-0/zeek/conn.log"), "x").unwrap();
        fs::write(r.join("shard-0/eve.json"), "x").unwrap();
        fs::write(r.join("shard-0/old.log.gz"), "x").unwrap();
        fs::write(r.join(".ship/checkpoints.json"), "x").unwrap();
        fs::write(r.join("state/dead-letter.ndjson"), "x").unwrap();
        std::os::unix::fs::symlink(r, r.join("shard-0/loop")).unwrap();
        let state = FileId::of(&fs::metadata(r.join("state")).unwrap());
        let names: Vec<_> = walk(&[r.to_path_buf(), r.join("missing")], Some(state))
            .into_iter()
            .map(|f| {
                f.path
                    .strip_prefix(r)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, vec!["shard-0/eve.json", "shard-0/zeek/conn.log"]);
    }
}
