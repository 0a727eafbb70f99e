//! Continuous mode: a watched spool directory of rotating captures (`run --watch DIR`).
//!
//! A file is taken when complete: on inotify close-write or moved-to, or, for writers that keep
//! files open, when its size and mtime have not changed for `--settle`. Files matching an ignore
//! pattern (temporary and partial names) are never taken. A completed file's time range is
//! learned from its two ends, or read off this thread when they do not tell (see
//! [`super::ranges`]); a file is not released before its range is known, and admission takes its
//! latest packet time from it (`--since`) rather than reading the file. Completed files are
//! held back until their time range is closed — every source (sensor) seen so far, its own
//! included, has a complete file starting at or after the held file's last packet — or until
//! `--horizon` has passed (held files overlapping a released one go with it), so independently
//! rotating sensors still interleave by packet time. A held file that overlaps anything released
//! earlier goes at once: holding it would only make it later, while the merge may still be
//! streaming what it overlaps. A disk guard pauses intake below `--min-free`.
//!
//! Only regular files are taken: a symlink in the spool is ignored, whether it was there at start
//! or arrived later. A taken file is remembered by its identity (device, inode, head hash); another
//! file arriving under the same name is taken as new once the one taken is done, and the retention
//! policy acts only on the file that was streamed.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::catalog::Entry;
use super::discover::Candidate;
use super::intake::{Arrivals, Intake};
use super::ranges::{Learned, Range, RangeReader};
use super::retention::{FileIdentity, Retention};
use crate::control::signals::Signals;
use crate::error::{Error, Result};
use crate::input::FileEnd;
use shardcap_capture::stream::{not_regular, special_kind};

/// Longest single sleep, so that settle and horizon deadlines are noticed.
const MAX_SLEEP: Duration = Duration::from_millis(200);

/// Options of continuous mode.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The spool directories watched.
    pub dirs: Vec<PathBuf>,
    /// Quiet time after which a file that was not closed counts as complete; zero: events only.
    pub settle: Duration,
    /// File-name patterns never taken.
    pub ignore: Vec<glob::Pattern>,
    /// Longest time a complete file is held back waiting for other sensors.
    pub horizon: Duration,
    /// Pause intake while the spool's filesystem has fewer free bytes than this.
    pub min_free: Option<u64>,
}

/// A file seen in the spool but not yet complete.
#[derive(Debug)]
struct Growing {
    size: u64,
    mtime: SystemTime,
    stable_since: Instant,
}

/// A complete file held back until its time range is closed.
#[derive(Debug)]
struct Held {
    path: PathBuf,
    first_ts: u64,
    /// `None` while its range is being read.
    last_ts: Option<u64>,
    /// Its range was read (a file whose end could not be read counts as ending at its first
    /// packet for the release, but tells admission nothing).
    told: bool,
    since: Instant,
}

/// The spool watcher.
pub struct WatchIntake {
    cfg: WatchConfig,
    inotify: Inotify,
    /// The directory of each watch, to place the names its events carry.
    watched: HashMap<WatchDescriptor, PathBuf>,
    growing: HashMap<PathBuf, Growing>,
    taken: HashSet<PathBuf>,
    /// Identity of each taken file, as it was taken.
    identities: HashMap<PathBuf, FileIdentity>,
    /// Taken files that were written to afterwards (warned about once).
    grown: HashSet<PathBuf>,
    /// Special files (FIFOs, devices, sockets, directories) met and refused (logged once).
    refused: HashSet<PathBuf>,
    held: Vec<Held>,
    /// Latest first-packet time seen from each source.
    source_front: HashMap<String, u64>,
    /// Last packet time of each released file until it is finished (for retention).
    last_ts: HashMap<PathBuf, u64>,
    /// The same, for released files whose range was read (for admission, `--since`).
    told: HashMap<PathBuf, u64>,
    /// The latest last-packet time of every file released so far.
    released_reach: Option<u64>,
    retention: Retention,
    paused: bool,
    /// Learns completed files' time ranges.
    ranges: RangeReader,
}

impl WatchIntake {
    /// Starts watching; files already in the directories are considered at once (through the
    /// settle check, so a file still being written is not taken early).
    pub fn new(cfg: WatchConfig, retention: Retention) -> Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| Error::runtime(format!("inotify: {e}")))?;
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MODIFY;
        let mut watched = HashMap::new();
        for d in &cfg.dirs {
            if !d.is_dir() {
                return Err(Error::usage(format!(
                    "--watch {}: not a directory",
                    d.display()
                )));
            }
            let wd = inotify
                .add_watch(d, flags)
                .map_err(|e| Error::usage(format!("--watch {}: cannot watch: {e}", d.display())))?;
            watched.insert(wd, d.clone());
        }
        let mut w = WatchIntake {
            cfg,
            inotify,
            watched,
            growing: HashMap::new(),
            taken: HashSet::new(),
            identities: HashMap::new(),
            grown: HashSet::new(),
            refused: HashSet::new(),
            held: Vec::new(),
            source_front: HashMap::new(),
            last_ts: HashMap::new(),
            told: HashMap::new(),
            released_reach: None,
            retention,
            paused: false,
            ranges: RangeReader::new(),
        };
        // Files present at start: their close events are gone. With a settle time they go through
        // the settle check; without one they are taken as they are.
        w.rescan(w.cfg.settle.is_zero());
        Ok(w)
    }

    fn ignored(&self, name: &OsStr) -> bool {
        let name = name.to_string_lossy();
        self.cfg.ignore.iter().any(|p| p.matches(&name))
    }

    /// Looks at every file in the watched directories (start, or after an event overflow);
    /// `complete`: take them as complete.
    fn rescan(&mut self, complete: bool) {
        for d in self.cfg.dirs.clone() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                self.arrived(e.path(), complete);
            }
        }
    }

    /// A name appeared or changed: a regular file is looked at, a symbolic link is not followed
    /// (at start as later), any other kind is refused without being opened.
    fn arrived(&mut self, path: PathBuf, complete: bool) {
        let Ok(md) = fs::symlink_metadata(&path) else {
            return;
        };
        if md.file_type().is_symlink() {
            return;
        }
        match special_kind(md.file_type()) {
            None => self.seen(path, complete),
            Some(_) if path.file_name().is_none_or(|n| self.ignored(n)) => {}
            Some(kind) if self.refused.insert(path.clone()) => {
                // Subdirectories are common in a spool (a move: retention target): not a warning.
                let level = if md.is_dir() {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                log::log!(level, "{}: {}; refused", path.display(), not_regular(kind));
            }
            Some(_) => {}
        }
    }

    /// Records a file event; `complete` when the writer closed it or moved it in.
    fn seen(&mut self, path: PathBuf, complete: bool) {
        if path.file_name().is_none_or(|n| self.ignored(n)) {
            return;
        }
        if self.taken.contains(&path) && !self.same_file(&path) {
            if self.in_flight(&path) {
                // Another file under the name of one held or being streamed: taken as new once
                // that one is done.
                return;
            }
            self.forget(&path);
        }
        if self.taken.contains(&path) {
            if self.grown.insert(path.clone()) {
                log::warn!(
                    "{}: written to after it was taken as complete; packets added since are not \
                     streamed (raise --settle for writers that pause)",
                    path.display()
                );
            }
            return;
        }
        if complete {
            self.growing.remove(&path);
            self.complete(path);
            return;
        }
        let md = match fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_file() => md,
            _ => {
                self.growing.remove(&path);
                return;
            }
        };
        let (size, mtime) = (md.len(), md.modified().unwrap_or(SystemTime::UNIX_EPOCH));
        let g = self.growing.entry(path).or_insert(Growing {
            size,
            mtime,
            stable_since: Instant::now(),
        });
        if g.size != size || g.mtime != mtime {
            *g = Growing {
                size,
                mtime,
                stable_since: Instant::now(),
            };
        }
    }

    /// True when `path` still names the file taken under it.
    fn same_file(&self, path: &Path) -> bool {
        self.identities
            .get(path)
            .is_some_and(|id| id.same_inode(path))
    }

    /// True while the file taken under `path` is held or being streamed.
    fn in_flight(&self, path: &Path) -> bool {
        self.last_ts.contains_key(path) || self.held.iter().any(|h| h.path == path)
    }

    /// Forgets the file taken under `path`: what has that name next is a new file.
    fn forget(&mut self, path: &Path) {
        self.taken.remove(path);
        self.grown.remove(path);
        self.identities.remove(path);
    }

    /// Files the retention found replaced under their names: taken as new.
    fn retake_replaced(&mut self) {
        for path in self.retention.take_replaced() {
            self.forget(&path);
            self.seen(path, self.cfg.settle.is_zero());
        }
    }

    /// A file is complete: learn its time range and hold it.
    fn complete(&mut self, path: PathBuf) {
        // Its identity before its content: a file swapped in between is caught when it is done.
        let identity = match FileIdentity::of(&path) {
            Ok(id) => id,
            Err(e) => {
                log::debug!("{}: not taken: {e}", path.display());
                return;
            }
        };
        self.identities.insert(path.clone(), identity);
        self.taken.insert(path.clone());
        let (first_ts, last_ts, told) = match self.ranges.learn(&path) {
            Learned::Known(r) => {
                log::info!("{}: complete; held", path.display());
                (r.first_ts, Some(r.last_ts), r != Range::EMPTY)
            }
            Learned::Reading { first_ts } => {
                log::info!(
                    "{}: complete; held while its time range is read",
                    path.display()
                );
                (first_ts, None, false)
            }
        };
        let front = self
            .source_front
            .entry(source_of(&path))
            .or_insert(first_ts);
        *front = (*front).max(first_ts);
        self.held.push(Held {
            path,
            first_ts,
            last_ts,
            told,
            since: Instant::now(),
        });
    }

    /// Files whose quiet time reached the settle time.
    fn settle(&mut self) {
        if self.cfg.settle.is_zero() {
            return;
        }
        let settled: Vec<PathBuf> = self
            .growing
            .iter()
            .filter(|(_, g)| g.stable_since.elapsed() >= self.cfg.settle)
            .map(|(p, _)| p.clone())
            .collect();
        for p in settled {
            // Look once more: a change since the last event restarts the clock.
            self.seen(p.clone(), false);
            if self
                .growing
                .get(&p)
                .is_some_and(|g| g.stable_since.elapsed() >= self.cfg.settle)
            {
                self.growing.remove(&p);
                self.complete(p);
            }
        }
    }

    /// Ranges read off this thread since the last look.
    fn learn_ranges(&mut self) {
        for (path, range) in self.ranges.done() {
            if let Some(h) = self.held.iter_mut().find(|h| h.path == path) {
                h.last_ts = Some(range.last_ts.max(h.first_ts));
                h.told = range != Range::EMPTY;
            }
        }
    }

    /// Held files whose time range is closed, whose horizon passed, or that overlap what is
    /// released now or was released before (transitively), sorted by first packet. A file whose
    /// range is still being read stays, and so does every file it would have to go with: only
    /// the files wholly before it may go.
    fn release(&mut self) -> Vec<Candidate> {
        let fronts = &self.source_front;
        let horizon = self.cfg.horizon;
        let earlier = self.released_reach;
        let closed = |h: &Held| {
            h.last_ts.is_some_and(|last| {
                h.since.elapsed() >= horizon
                    || fronts.values().all(|&front| front >= last)
                    || earlier.is_some_and(|reach| h.first_ts <= reach)
            })
        };
        let (mut due, mut keep): (Vec<Held>, Vec<Held>) = self.held.drain(..).partition(closed);
        // Held files overlapping what is released go with it, so they are merged, not appended.
        while let Some(reach) = due.iter().filter_map(|h| h.last_ts).max() {
            let (overlap, rest): (Vec<Held>, Vec<Held>) =
                keep.into_iter().partition(|h| h.first_ts <= reach);
            keep = rest;
            if overlap.is_empty() {
                break;
            }
            due.extend(overlap);
        }
        due.sort_by_key(|h| h.first_ts);
        if due.iter().any(|h| h.last_ts.is_none()) {
            // Cut before the first file whose range is unknown, where nothing released reaches
            // into what stays.
            let (mut cut, mut reach) = (0, None);
            for (i, h) in due.iter().enumerate() {
                if reach.is_none_or(|r| r < h.first_ts) {
                    cut = i;
                }
                let Some(last) = h.last_ts else { break };
                reach = reach.max(Some(last));
            }
            keep.extend(due.drain(cut..));
        }
        self.held = keep;
        let reach = due.iter().filter_map(|h| h.last_ts).max();
        self.released_reach = self.released_reach.max(reach);
        due.into_iter()
            .map(|h| {
                let last_ts = h.last_ts.expect("released with a known range");
                self.last_ts.insert(h.path.clone(), last_ts);
                if h.told {
                    self.told.insert(h.path.clone(), last_ts);
                }
                Candidate {
                    path: h.path,
                    explicit: true,
                }
            })
            .collect()
    }

    /// The disk guard: true while intake must pause.
    fn disk_low(&mut self) -> bool {
        let Some(min) = self.cfg.min_free else {
            return false;
        };
        let free = self
            .cfg
            .dirs
            .iter()
            .filter_map(|d| nix::sys::statvfs::statvfs(d).ok())
            .map(|s| s.blocks_available() * s.fragment_size())
            .min()
            .unwrap_or(u64::MAX);
        let low = free < min;
        if low != self.paused {
            if low {
                log::warn!("disk guard: {free} bytes free, below --min-free {min}; intake paused");
            } else {
                log::warn!("disk guard: {free} bytes free again; intake resumed");
            }
            self.paused = low;
        }
        low
    }

    fn read_events(&mut self, wait: Duration) -> Result<()> {
        let ms = wait.min(MAX_SLEEP).as_millis() as u16;
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::runtime(format!("inotify poll: {e}"))),
        }
        let events = match self.inotify.read_events() {
            Ok(ev) => ev,
            Err(nix::errno::Errno::EAGAIN) => return Ok(()),
            Err(e) => return Err(Error::runtime(format!("inotify: {e}"))),
        };
        for ev in events {
            if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                log::warn!("inotify queue overflowed; rescanning the spool");
                self.rescan(false);
                continue;
            }
            let (Some(name), Some(dir)) = (ev.name, self.watched.get(&ev.wd)) else {
                continue;
            };
            let complete = ev
                .mask
                .intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO);
            self.arrived(dir.join(name), complete);
        }
        Ok(())
    }
}

impl Intake for WatchIntake {
    fn poll(&mut self, wait: Option<Duration>, signals: &Signals) -> Result<Arrivals> {
        let deadline = Instant::now() + wait.unwrap_or(Duration::ZERO);
        loop {
            self.read_events(deadline.saturating_duration_since(Instant::now()))?;
            self.learn_ranges();
            self.settle();
            self.retention.enforce()?;
            self.retake_replaced();
            if !self.disk_low() {
                let due = self.release();
                if !due.is_empty() {
                    return Ok(Arrivals::Files(due));
                }
            }
            if Instant::now() >= deadline || signals.stop.load(std::sync::atomic::Ordering::Relaxed)
            {
                return Ok(Arrivals::Nothing);
            }
        }
    }

    fn last_ts(&self, path: &Path) -> Option<u64> {
        self.told.get(path).copied()
    }

    fn finished(&mut self, entry: &Entry, end: &FileEnd) -> Result<()> {
        let last_ts = self.last_ts.remove(&entry.path).unwrap_or(u64::MAX);
        self.told.remove(&entry.path);
        let identity = self.identities.get(&entry.path).cloned();
        match (end, identity) {
            // A duplicate's packets are streamed as its original's.
            (FileEnd::Complete | FileEnd::Duplicate(_), Some(identity)) => {
                self.retention
                    .streamed(&entry.path, identity, entry.size, last_ts)?;
                self.retake_replaced();
                if fs::symlink_metadata(&entry.path).is_err() {
                    // Deleted or moved away: a writer that reuses the name (a ring of rotated
                    // files) brings a new capture there.
                    self.forget(&entry.path);
                }
            }
            _ => {
                log::warn!(
                    "{}: kept in the spool (not streamed completely)",
                    entry.path.display()
                );
                if !self.same_file(&entry.path) {
                    self.forget(&entry.path);
                    self.seen(entry.path.clone(), self.cfg.settle.is_zero());
                }
            }
        }
        Ok(())
    }

    fn close(&mut self, _stopped: bool) -> Result<()> {
        self.retention.enforce()?;
        let n = self.retention.pending();
        if n > 0 {
            log::info!(
                "{n} streamed files kept in the spool: their logs were not acknowledged yet (the \
                 retention policy is not applied to them later)"
            );
        }
        Ok(())
    }
}

/// The sensor a file comes from: its directory and its name without digits (tcpdump -C/-G
/// rotation changes only the numbers).
pub fn source_of(path: &Path) -> String {
    let dir = path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let name: String = path
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect()
        })
        .unwrap_or_default();
    format!("{dir}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::catalog;
    use crate::input::retention::Policy;

    /// The files `poll` hands out now.
    fn arrivals(w: &mut WatchIntake, signals: &Signals) -> Vec<PathBuf> {
        match w.poll(Some(Duration::from_millis(300)), signals).unwrap() {
            Arrivals::Files(f) => f.into_iter().map(|c| c.path).collect(),
            _ => Vec::new(),
        }
    }

    /// A watcher of `dirs` that takes files on their close event and holds none back.
    fn watcher(dirs: &[&Path], retention: Policy) -> WatchIntake {
        let cfg = WatchConfig {
            dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
            settle: Duration::ZERO,
            ignore: Vec::new(),
            horizon: Duration::ZERO,
            min_free: None,
        };
        WatchIntake::new(cfg, Retention::new(retention, None, None).unwrap()).unwrap()
    }

    fn held(name: &str, first_ts: u64, last_ts: u64) -> Held {
        Held {
            path: PathBuf::from(name),
            first_ts,
            last_ts: Some(last_ts),
            told: true,
            since: Instant::now(),
        }
    }

    fn released(w: &mut WatchIntake) -> Vec<String> {
        let mut names: Vec<String> = w
            .release()
            .into_iter()
            .map(|c| c.path.display().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn overlapping_files_go_with_a_release_and_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watcher(&[dir.path()], Policy::Keep);
        w.cfg.horizon = Duration::from_secs(3600);
        // Sensor a's file is closed (b's front is past it); b1 overlaps it, b0 overlaps b1.
        w.source_front = HashMap::from([("a".into(), 100), ("b".into(), 100)]);
        w.held = vec![
            held("a1", 10, 20),
            held("b1", 15, 40),
            held("b0", 35, 60),
            held("c", 200, 300),
        ];
        assert_eq!(released(&mut w), ["a1", "b0", "b1"]);
        assert_eq!(w.held.len(), 1);
        // A file completed later that reaches back into what went out goes at once.
        w.held.push(held("a2", 50, 150));
        w.held.push(held("late", 61, 70));
        assert_eq!(released(&mut w), ["a2", "late"]);
        assert_eq!(w.held[0].path, Path::new("c"));
    }

    #[test]
    fn a_file_whose_range_is_being_read_holds_what_it_would_go_with() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watcher(&[dir.path()], Policy::Keep);
        // Every file is past its horizon; "z" still has its range read.
        w.held = vec![
            held("a", 10, 20),
            held("b", 30, 45),
            held("c", 40, 50),
            held("d", 70, 80),
        ];
        w.held.push(Held {
            last_ts: None,
            ..held("z", 48, 0)
        });
        assert_eq!(released(&mut w), ["a"], "b and c reach into z");
        assert_eq!(w.held.len(), 4);
        w.held
            .iter_mut()
            .find(|h| h.path == Path::new("z"))
            .unwrap()
            .last_ts = Some(60);
        assert_eq!(released(&mut w), ["b", "c", "d", "z"]);
    }

    /// A pcap file header and one 4-byte record.
    fn tiny_pcap() -> Vec<u8> {
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        pcap.extend([0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        pcap.extend([1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9, 9, 9, 9]);
        pcap
    }

    #[test]
    fn a_file_is_taken_from_the_directory_its_event_came_from() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut w = watcher(&[a.path(), b.path()], Policy::Keep);
        let signals = Signals::detached();
        for d in [&a, &b] {
            let same_name = d.path().join("trace.pcap0");
            fs::write(&same_name, tiny_pcap()).unwrap();
            assert_eq!(arrivals(&mut w, &signals), std::slice::from_ref(&same_name));
        }
    }

    #[test]
    fn a_name_reused_after_its_file_was_deleted_is_taken_again() {
        let spool = tempfile::tempdir().unwrap();
        let mut w = watcher(&[spool.path()], Policy::Delete);
        let signals = Signals::detached();
        let ring = spool.path().join("ring.pcap0");
        for round in 0..2 {
            fs::write(&ring, tiny_pcap()).unwrap();
            assert_eq!(
                arrivals(&mut w, &signals),
                std::slice::from_ref(&ring),
                "round {round}"
            );
            let cand = Candidate {
                path: ring.clone(),
                explicit: true,
            };
            let entry = catalog::probe(round, &cand).unwrap();
            w.finished(&entry, &FileEnd::Complete).unwrap();
            assert!(!ring.exists(), "deleted once streamed");
        }
    }

    #[test]
    fn rotation_numbers_do_not_change_the_source() {
        assert_eq!(
            source_of(Path::new("/s/a.pcap12")),
            source_of(Path::new("/s/a.pcap3"))
        );
        assert_eq!(
            source_of(Path::new("/s/a-20240301-1200.pcap")),
            source_of(Path::new("/s/a-20240301-1201.pcap"))
        );
        assert_ne!(
            source_of(Path::new("/s/a.pcap1")),
            source_of(Path::new("/s/b.pcap1"))
        );
    }
}
