//! What happens to a capture once it was streamed completely: kept, deleted or moved, with limits
//! on the age and total size of what is kept.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// The policy for streamed files (`--retention keep|delete|move:DIR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Leave streamed files where they are.
    Keep,
    /// Delete them.
    Delete,
    /// Move them into a directory.
    Move(PathBuf),
}

impl Policy {
    /// Parses `keep`, `delete` or `move:DIR`.
    pub fn parse(s: &str) -> std::result::Result<Policy, String> {
        match s {
            "keep" => Ok(Policy::Keep),
            "delete" => Ok(Policy::Delete),
            _ => match s.strip_prefix("move:") {
                Some(d) if !d.is_empty() => Ok(Policy::Move(PathBuf::from(d))),
                _ => Err(format!("bad retention {s:?}: use keep, delete or move:DIR")),
            },
        }
    }
}

/// Applies the policy and the limits.
#[derive(Debug)]
pub struct Retention {
    policy: Policy,
    max_age: Option<Duration>,
    max_size: Option<u64>,
    /// Streamed files still on disk (where the policy left them), oldest first, with their sizes.
    kept: VecDeque<(PathBuf, u64, SystemTime)>,
    kept_bytes: u64,
}

impl Retention {
    /// A retention with `policy`; kept files beyond `max_age` or `max_size` in total are deleted,
    /// oldest first.
    pub fn new(policy: Policy, max_age: Option<Duration>, max_size: Option<u64>) -> Result<Self> {
        if let Policy::Move(d) = &policy {
            fs::create_dir_all(d)
                .map_err(|e| Error::usage(format!("--retention move:{}: {e}", d.display())))?;
        }
        Ok(Retention {
            policy,
            max_age,
            max_size,
            kept: VecDeque::new(),
            kept_bytes: 0,
        })
    }

    /// A file was streamed completely.
    pub fn streamed(&mut self, path: &Path, size: u64) -> Result<()> {
        let fail =
            |e: std::io::Error| Error::runtime(format!("{}: retention: {e}", path.display()));
        let kept_at = match &self.policy {
            Policy::Delete => {
                fs::remove_file(path).map_err(fail)?;
                log::debug!("{}: streamed and deleted", path.display());
                return Ok(());
            }
            Policy::Keep => path.to_path_buf(),
            Policy::Move(dir) => {
                let to = dir.join(path.file_name().unwrap_or_default());
                if fs::rename(path, &to).is_err() {
                    fs::copy(path, &to)
                        .and_then(|_| fs::remove_file(path))
                        .map_err(fail)?;
                }
                to
            }
        };
        self.kept.push_back((kept_at, size, SystemTime::now()));
        self.kept_bytes += size;
        self.enforce();
        Ok(())
    }

    /// Deletes kept files beyond the age and size limits, oldest first.
    pub fn enforce(&mut self) {
        while let Some((path, size, at)) = self.kept.front() {
            let too_old = self
                .max_age
                .is_some_and(|a| at.elapsed().unwrap_or_default() > a);
            let too_big = self.max_size.is_some_and(|m| self.kept_bytes > m);
            if !too_old && !too_big {
                break;
            }
            if let Err(e) = fs::remove_file(path) {
                log::warn!("{}: retention could not delete: {e}", path.display());
            } else {
                log::info!("{}: deleted by the retention limit", path.display());
            }
            self.kept_bytes -= size;
            self.kept.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mk = |n: &str| {
            let p = d.join(n);
            fs::write(&p, vec![0u8; 100]).unwrap();
            p
        };
        let mut del = Retention::new(Policy::Delete, None, None).unwrap();
        let a = mk("a");
        del.streamed(&a, 100).unwrap();
        assert!(!a.exists());

        let mut keep = Retention::new(Policy::Keep, None, Some(250)).unwrap();
        let (b, c, e) = (mk("b"), mk("c"), mk("e"));
        for p in [&b, &c, &e] {
            keep.streamed(p, 100).unwrap();
        }
        assert!(
            !b.exists() && c.exists() && e.exists(),
            "oldest deleted beyond 250 bytes"
        );

        let moved = d.join("done");
        let mut mv = Retention::new(Policy::Move(moved.clone()), None, None).unwrap();
        let f = mk("f");
        mv.streamed(&f, 100).unwrap();
        assert!(!f.exists() && moved.join("f").exists());
        assert_eq!(Policy::parse("move:/x").unwrap(), Policy::Move("/x".into()));
        assert!(Policy::parse("shred").is_err());
    }
}
