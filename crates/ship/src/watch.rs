//! Finding log files: a recursive walk of the log directories, hidden entries and compressed
//! archives left out, each file identified by device and inode.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

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
/// directory `exclude` (the shipper's own state). A file reached by two names is listed once.
pub fn walk(roots: &[PathBuf], exclude: Option<FileId>) -> Vec<Found> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for root in roots {
        walk_dir(root, exclude, &mut seen, &mut out);
    }
    out
}

fn walk_dir(dir: &Path, exclude: Option<FileId>, seen: &mut HashSet<FileId>, out: &mut Vec<Found>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if !is_candidate(&path) {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        // Follow a symlink to a file, never to a directory (no loops).
        let Ok(md) = fs::metadata(&path) else {
            continue;
        };
        let id = FileId::of(&md);
        if ft.is_dir() {
            if Some(id) != exclude && seen.insert(id) {
                walk_dir(&path, exclude, seen, out);
            }
        } else if md.is_file() && seen.insert(id) {
            out.push(Found {
                path,
                id,
                size: md.len(),
            });
        }
    }
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
