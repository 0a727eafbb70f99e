//! What happens to a capture once it was streamed completely: kept, deleted or moved, with limits
//! on the age and total size of what is kept. With a log watermark (`run --ship`), a streamed file
//! waits until the logs covering its time range are acknowledged.
//!
//! The policy acts only on the file that was streamed: right before deleting or moving, the file
//! under its name must still have the device, inode and head hash it had when it was taken. A file
//! found replaced (another capture renamed in under the name) is left alone and reported, so the
//! watcher takes it as new. `move:` never replaces a file in the target directory: a name already
//! taken there gets a number (`NAME-1.pcap`), logged.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::state::identity::FileId;
use shardcap_files::nofollow;

/// Most numbered names tried for a file moved into a directory that has its name already.
const MAX_NUMBERED: u32 = 10_000;

/// Which file a name referred to: device, inode and content identity (the journal's head hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    head: String,
}

impl FileIdentity {
    /// The identity of the regular file named `path` (a symlink is refused, not followed).
    pub fn of(path: &Path) -> io::Result<Self> {
        let md = fs::symlink_metadata(path)?;
        if !md.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(FileIdentity {
            dev: md.dev(),
            ino: md.ino(),
            head: FileId::of(path, md.len())?.head,
        })
    }

    /// True when `path` still names the same inode (a cheap check: no content is read).
    pub fn same_inode(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    /// True when `path` names this file now: same inode, same head (it may have grown).
    pub fn matches(&self, path: &Path) -> bool {
        FileIdentity::of(path).is_ok_and(|now| now == *self)
    }
}

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
    identity: FileIdentity,
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
    kept: VecDeque<Kept>,
    kept_bytes: u64,
    /// Streamed files found replaced by another file under their name (not acted on).
    replaced: Vec<PathBuf>,
}

/// A streamed file the policy left on disk.
#[derive(Debug)]
struct Kept {
    path: PathBuf,
    identity: Option<FileIdentity>,
    size: u64,
    at: SystemTime,
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
            replaced: Vec::new(),
        })
    }

    /// Holds each streamed file until `gate`'s watermark reaches its last packet plus the lag.
    pub fn with_gate(mut self, gate: LogGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// A file whose last packet is at `last_ts` (ns since the epoch) was streamed completely: the
    /// policy applies now, or, with a gate, once its logs are acknowledged. `identity` is the file's
    /// as it was taken: the policy applies only while `path` still names it.
    pub fn streamed(
        &mut self,
        path: &Path,
        identity: FileIdentity,
        size: u64,
        last_ts: u64,
    ) -> Result<()> {
        let Some(gate) = &self.gate else {
            self.apply(path, &identity, size)?;
            self.enforce_limits();
            return Ok(());
        };
        let lag = u64::try_from(gate.lag.as_nanos()).unwrap_or(u64::MAX);
        self.pending.push_back(Pending {
            path: path.to_path_buf(),
            identity,
            size,
            due: last_ts.saturating_add(lag),
        });
        self.enforce()
    }

    /// Streamed files waiting for their logs (files a run ends with are kept as they are).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Streamed files found replaced since the last call: another file now has their name.
    pub fn take_replaced(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.replaced)
    }

    /// Applies the policy to the file at `path`, if it is still the file streamed.
    fn apply(&mut self, path: &Path, identity: &FileIdentity, size: u64) -> Result<()> {
        let fail = |e| Error::file(path, "retention")(e);
        if !identity.matches(path) {
            if fs::symlink_metadata(path).is_ok() {
                log::warn!(
                    "{}: another file has this name since it was streamed; it is kept and taken \
                     as a new capture",
                    path.display()
                );
                self.replaced.push(path.to_path_buf());
            } else {
                log::warn!(
                    "{}: gone before the retention policy applied",
                    path.display()
                );
            }
            return Ok(());
        }
        let kept_at = match &self.policy {
            Policy::Delete => {
                fs::remove_file(path).map_err(fail)?;
                log::debug!("{}: streamed and deleted", path.display());
                return Ok(());
            }
            Policy::Keep => path.to_path_buf(),
            Policy::Move(dir) => {
                let to = move_unique(path, dir).map_err(fail)?;
                log::debug!("{}: streamed and moved to {}", path.display(), to.display());
                to
            }
        };
        self.kept.push_back(Kept {
            identity: FileIdentity::of(&kept_at).ok(),
            path: kept_at,
            size,
            at: SystemTime::now(),
        });
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
            self.apply(&p.path, &p.identity, p.size)?;
        }
        self.enforce_limits();
        Ok(())
    }

    /// Deletes kept files beyond the age and size limits, oldest first.
    fn enforce_limits(&mut self) {
        while let Some(k) = self.kept.front() {
            let too_old = self
                .max_age
                .is_some_and(|a| k.at.elapsed().unwrap_or_default() > a);
            let too_big = self.max_size.is_some_and(|m| self.kept_bytes > m);
            if !too_old && !too_big {
                break;
            }
            let path = &k.path;
            if !k.identity.as_ref().is_some_and(|id| id.matches(path)) {
                log::warn!(
                    "{}: not deleted by the retention limit: another file has this name now",
                    path.display()
                );
            } else if let Err(e) = fs::remove_file(path) {
                log::warn!("{}: retention could not delete: {e}", path.display());
            } else {
                log::info!("{}: deleted by the retention limit", path.display());
            }
            self.kept_bytes -= k.size;
            self.kept.pop_front();
        }
    }
}

/// `NAME` with a number before its extensions: `a.pcap.gz`, 2 -> `a-2.pcap.gz`.
fn numbered(name: &OsStr, n: u32) -> OsString {
    let s = name.to_string_lossy();
    let split = s
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == '.')
        .map_or(s.len(), |(i, _)| i);
    OsString::from(format!("{}-{n}{}", &s[..split], &s[split..]))
}

/// Moves `path` into `dir` under its own name, or a numbered one when that is taken there (never
/// replacing a file); returns where it went.
fn move_unique(path: &Path, dir: &Path) -> io::Result<PathBuf> {
    use nix::fcntl::{renameat2, RenameFlags};
    let name = path.file_name().unwrap_or_default();
    for n in 0..MAX_NUMBERED {
        let to = match n {
            0 => dir.join(name),
            n => dir.join(numbered(name, n)),
        };
        let moved = match renameat2(None, path, None, &to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EEXIST) => continue,
            // Another filesystem: copied into a file created for it, then the original removed.
            Err(nix::errno::Errno::EXDEV) => match nofollow::create_new(&to) {
                Ok(mut out) => fs::File::open(path)
                    .and_then(|mut src| io::copy(&mut src, &mut out))
                    .and_then(|_| out.sync_all())
                    .and_then(|()| fs::remove_file(path))
                    .inspect_err(|_| {
                        let _ = fs::remove_file(&to);
                    }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => Err(e),
            },
            Err(e) => Err(io::Error::from(e)),
        };
        moved?;
        if n > 0 {
            log::warn!(
                "{}: moved to {} ({} was taken)",
                path.display(),
                to.display(),
                dir.join(name).display()
            );
        }
        return Ok(to);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free name for it in {}", dir.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(p: &Path) -> FileIdentity {
        FileIdentity::of(p).unwrap()
    }

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
        del.streamed(&a, id(&a), 100, 0).unwrap();
        assert!(!a.exists());

        let mut keep = Retention::new(Policy::Keep, None, Some(250)).unwrap();
        let (b, c, e) = (mk("b"), mk("c"), mk("e"));
        for p in [&b, &c, &e] {
            keep.streamed(p, id(p), 100, 0).unwrap();
        }
        assert!(
            !b.exists() && c.exists() && e.exists(),
            "oldest deleted beyond 250 bytes"
        );

        let moved = d.join("done");
        let mut mv = Retention::new(Policy::Move(moved.clone()), None, None).unwrap();
        let f = mk("f");
        mv.streamed(&f, id(&f), 100, 0).unwrap();
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
        r.streamed(&a, id(&a), 1, 1000).unwrap();
        r.streamed(&b, id(&b), 1, 2000).unwrap();
        r.streamed(&c, id(&c), 1, 1500).unwrap();
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
                r.streamed(&p, id(&p), 100, 10 * (i + 1)).unwrap();
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

    #[test]
    fn a_file_replaced_under_its_name_is_kept_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cap.pcap");
        fs::write(&p, b"streamed").unwrap();
        let streamed = id(&p);
        let new = dir.path().join("new.tmp");
        fs::write(&new, b"arrived later").unwrap();
        fs::rename(&new, &p).unwrap();
        let mut r = Retention::new(Policy::Delete, None, None).unwrap();
        r.streamed(&p, streamed, 8, 0).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"arrived later");
        assert_eq!(r.take_replaced(), vec![p.clone()]);
        assert!(r.take_replaced().is_empty());
    }

    #[test]
    fn moving_never_replaces_and_counts_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, done) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("done"),
        );
        let mut r = Retention::new(Policy::Move(done.clone()), None, Some(250)).unwrap();
        for (d, body) in [(&a, b"first"), (&b, b"other")] {
            fs::create_dir(d).unwrap();
            let p = d.join("x.pcap.gz");
            fs::write(&p, body).unwrap();
            r.streamed(&p, id(&p), 100, 0).unwrap();
        }
        assert_eq!(fs::read(done.join("x.pcap.gz")).unwrap(), b"first");
        assert_eq!(fs::read(done.join("x-1.pcap.gz")).unwrap(), b"other");
        let kept: Vec<PathBuf> = r.kept.iter().map(|k| k.path.clone()).collect();
        assert_eq!(kept, [done.join("x.pcap.gz"), done.join("x-1.pcap.gz")]);
        assert_eq!(r.kept_bytes, 200);
        assert_eq!(numbered(OsStr::new(".hidden"), 3), ".hidden-3");
    }
}
