//! What happens to a capture once it was streamed completely: kept, deleted or moved, with limits
//! on the age and total size of what is kept. With a log watermark (`run --ship`), a streamed file
//! waits until the logs covering its time range are acknowledged.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// The acknowledged-log watermark a streamed file waits for, and the lag added to its last packet.
#[derive(Debug, Clone)]
pub struct LogGate {
    /// Logs are acknowledged up to this record time (ns since the epoch).
    pub watermark: Arc<AtomicU64>,
    /// How late the IDS may log a packet (`--retain-lag`).
    pub lag: Duration,
}

/// A streamed file waiting for its logs.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    size: u64,
    /// The watermark it waits for (ns since the epoch).
    due: u64,
}

/// Applies the policy and the limits.
#[derive(Debug)]
pub struct Retention {
    policy: Policy,
    max_age: Option<Duration>,
    max_size: Option<u64>,
    gate: Option<LogGate>,
    /// Streamed files waiting for the watermark, in the order they were streamed.
    pending: VecDeque<Pending>,
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
            gate: None,
            pending: VecDeque::new(),
            kept: VecDeque::new(),
            kept_bytes: 0,
        })
    }

    /// Holds each streamed file until `gate`'s watermark reaches its last packet plus the lag.
    pub fn with_gate(mut self, gate: LogGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// A file whose last packet is at `last_ts` (ns since the epoch) was streamed completely: the
    /// policy applies now, or, with a gate, once its logs are acknowledged.
    pub fn streamed(&mut self, path: &Path, size: u64, last_ts: u64) -> Result<()> {
        let Some(gate) = &self.gate else {
            self.apply(path, size)?;
            self.enforce_limits();
            return Ok(());
        };
        let lag = u64::try_from(gate.lag.as_nanos()).unwrap_or(u64::MAX);
        self.pending.push_back(Pending {
            path: path.to_path_buf(),
            size,
            due: last_ts.saturating_add(lag),
        });
        self.enforce()
    }

    /// Streamed files waiting for their logs (files a run ends with are kept as they are).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Applies the policy to the file at `path`.
    fn apply(&mut self, path: &Path, size: u64) -> Result<()> {
        let fail = |e| Error::file(path, "retention")(e);
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
        Ok(())
    }

    /// Applies the policy to the waiting files the watermark has reached (in order), then the limits.
    pub fn enforce(&mut self) -> Result<()> {
        let mark = self
            .gate
            .as_ref()
            .map_or(u64::MAX, |g| g.watermark.load(Ordering::Acquire));
        while self.pending.front().is_some_and(|p| p.due <= mark) {
            let p = self.pending.pop_front().expect("looked at");
            self.apply(&p.path, p.size)?;
        }
        self.enforce_limits();
        Ok(())
    }

    /// Deletes kept files beyond the age and size limits, oldest first.
    fn enforce_limits(&mut self) {
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
        del.streamed(&a, 100, 0).unwrap();
        assert!(!a.exists());

        let mut keep = Retention::new(Policy::Keep, None, Some(250)).unwrap();
        let (b, c, e) = (mk("b"), mk("c"), mk("e"));
        for p in [&b, &c, &e] {
            keep.streamed(p, 100, 0).unwrap();
        }
        assert!(
            !b.exists() && c.exists() && e.exists(),
            "oldest deleted beyond 250 bytes"
        );

        let moved = d.join("done");
        let mut mv = Retention::new(Policy::Move(moved.clone()), None, None).unwrap();
        let f = mk("f");
        mv.streamed(&f, 100, 0).unwrap();
        assert!(!f.exists() && moved.join("f").exists());
        assert_eq!(Policy::parse("move:/x").unwrap(), Policy::Move("/x".into()));
        assert!(Policy::parse("shred").is_err());
    }

    #[test]
    fn streamed_files_wait_for_their_logs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |n: &str| {
            let p = dir.path().join(n);
            fs::write(&p, b"x").unwrap();
            p
        };
        let watermark = Arc::new(AtomicU64::new(0));
        let gate = LogGate {
            watermark: watermark.clone(),
            lag: Duration::from_nanos(50),
        };
        let mut r = Retention::new(Policy::Delete, None, None)
            .unwrap()
            .with_gate(gate);
        let (a, b, c) = (mk("a"), mk("b"), mk("c"));
        r.streamed(&a, 1, 1000).unwrap();
        r.streamed(&b, 1, 2000).unwrap();
        r.streamed(&c, 1, 1500).unwrap();
        assert!(
            a.exists() && b.exists() && c.exists(),
            "no logs acknowledged"
        );
        watermark.store(1000, Ordering::Release);
        r.enforce().unwrap();
        assert!(a.exists(), "the lag is not reached");
        watermark.store(1600, Ordering::Release);
        r.enforce().unwrap();
        assert!(
            !a.exists() && b.exists() && c.exists(),
            "in order: c waits behind b"
        );
        assert_eq!(r.pending(), 2);
        watermark.store(2050, Ordering::Release);
        r.enforce().unwrap();
        assert!(!b.exists() && !c.exists());
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn kept_files_count_against_the_limits_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let watermark = Arc::new(AtomicU64::new(0));
        let gate = LogGate {
            watermark: watermark.clone(),
            lag: Duration::ZERO,
        };
        let mut r = Retention::new(Policy::Keep, None, Some(150))
            .unwrap()
            .with_gate(gate);
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("k{i}"));
                fs::write(&p, [0u8; 100]).unwrap();
                r.streamed(&p, 100, 10 * (i + 1)).unwrap();
                p
            })
            .collect();
        assert!(
            paths.iter().all(|p| p.exists()),
            "pending files are not kept yet"
        );
        watermark.store(30, Ordering::Release);
        r.enforce().unwrap();
        assert!(!paths[0].exists() && !paths[1].exists() && paths[2].exists());
    }
}
