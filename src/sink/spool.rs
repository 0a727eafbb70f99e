//! The pcapdir spool (`-o dir:PATH`): a shard's stream cut into numbered segment files for
//! directory-reading consumers (Suricata's continuous pcap-file mode, Zeek's `pcapdir::` source).
//!
//! Contract: segments are complete pcap files written in `PATH/.tmp/` and renamed into
//! `PATH/shard-K/NNNNNNNNNNNN.pcap` (12-digit sequence from 1, consecutive, mtimes strictly
//! increasing); a segment is closed when the next record would take it past the size limit, when
//! its first packet has waited the age limit, and at the end; `PATH/shard-K.end` holds the last
//! sequence number once the stream is complete. The consumer deletes what it has read; when the
//! backlog of waiting segments is full, writing stops until it catches up. A consumer that finds
//! the stream damaged (a cut or missing segment) writes its message to `PATH/shard-K.error`.

use std::fs::{self, File, FileTimes};
use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::batch::{fit, PARTS_MAX};
use super::output::Output;
use shardcap_capture::format::{StreamHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use shardcap_files::{nofollow, write_all_vectored};

/// Directory inside the spool where segments are written before they appear.
pub const TMP_DIR: &str = ".tmp";
/// Longest wait for a consumer event before counting the backlog again (also the poll interval
/// where inotify is unavailable).
const RECHECK: Duration = Duration::from_millis(100);
/// Smallest mtime step between consecutive segments, so readers comparing microseconds agree.
const MTIME_STEP: Duration = Duration::from_micros(1);

/// Segment limits and back-pressure of a spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// A segment is closed before a record would take it past this many bytes (a single larger
    /// record gets a segment of its own).
    pub segment_size: u64,
    /// A segment is closed once its first packet has waited this long.
    pub segment_age: Duration,
    /// Segments waiting in a shard directory at which writing stops until the consumer deletes one.
    pub backlog: usize,
}

/// Directory of shard `k` inside the spool `root`.
pub fn shard_dir(root: &Path, k: usize) -> PathBuf {
    root.join(format!("shard-{k}"))
}

/// End marker of shard `k` (beside its directory).
pub fn end_marker(root: &Path, k: usize) -> PathBuf {
    root.join(format!("shard-{k}.end"))
}

/// Error marker of shard `k` (beside its directory): written by a consumer that found the
/// shard's stream damaged.
pub fn error_marker(root: &Path, k: usize) -> PathBuf {
    root.join(format!("shard-{k}.error"))
}

/// File name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:012}.pcap")
}

/// Explains why shard `k` of `root` cannot start a new run, if it cannot: its directory already
/// holds files, or its end marker exists.
pub fn check_fresh(root: &Path, k: usize) -> Option<String> {
    for marker in [end_marker(root, k), error_marker(root, k)] {
        if marker.exists() {
            return Some(format!(
                "spool {}: {} exists from an earlier run; empty the spool or choose another \
                 directory",
                root.display(),
                marker.display()
            ));
        }
    }
    let dir = shard_dir(root, k);
    let first = fs::read_dir(&dir).ok()?.flatten().next()?;
    Some(format!(
        "spool {}: {} already holds {} (an earlier run's segments?); empty the spool or choose \
         another directory",
        root.display(),
        dir.display(),
        first.file_name().to_string_lossy()
    ))
}

/// Checks before a run that the spool `root` can be created or used: its parent exists, it is a
/// directory if it exists, and none of its `shards` holds an earlier run (see [`check_fresh`]).
pub fn validate(root: &Path, shards: usize) -> Result<(), String> {
    let parent = root.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = parent.filter(|d| !d.is_dir()) {
        return Err(format!(
            "spool {}: directory {} does not exist",
            root.display(),
            d.display()
        ));
    }
    if root.exists() && !root.is_dir() {
        return Err(format!("spool {}: not a directory", root.display()));
    }
    (0..shards)
        .find_map(|k| check_fresh(root, k))
        .map_or(Ok(()), Err)
}

/// The segment being written.
struct Segment {
    file: File,
    tmp: PathBuf,
    seq: u64,
    size: u64,
    /// When its first record arrived.
    first_at: Instant,
}

/// One shard's spool output.
pub struct SpoolOutput {
    header: StreamHeader,
    config: SpoolConfig,
    shard: usize,
    root: PathBuf,
    dir: PathBuf,
    tmp_dir: PathBuf,
    /// Last published sequence number (0: none yet).
    seq: u64,
    current: Option<Segment>,
    last_mtime: Option<SystemTime>,
    /// Published segments not yet made durable by `sync` (the last `backlog` at most).
    unsynced: Vec<PathBuf>,
    /// Watch on the shard directory, set up the first time the backlog is full.
    watch: Option<Inotify>,
}

impl SpoolOutput {
    /// Prepares shard `shard` of the spool at `root`: creates the directories, refuses a shard that
    /// is not fresh and removes this shard's leftovers of a crashed run from `.tmp`.
    pub fn create(
        root: &Path,
        shard: usize,
        header: StreamHeader,
        config: SpoolConfig,
    ) -> io::Result<Self> {
        let dir = shard_dir(root, shard);
        let tmp_dir = root.join(TMP_DIR);
        fs::create_dir_all(&dir)?;
        fs::create_dir_all(&tmp_dir)?;
        if let Some(why) = check_fresh(root, shard) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, why));
        }
        let prefix = format!("shard-{shard}-");
        let marker = format!("shard-{shard}.end");
        for entry in fs::read_dir(&tmp_dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) || name == marker {
                log::info!(
                    "spool: removing {} left by an interrupted run",
                    entry.path().display()
                );
                fs::remove_file(entry.path())?;
            }
        }
        Ok(SpoolOutput {
            header,
            config,
            shard,
            root: root.to_path_buf(),
            dir,
            tmp_dir,
            seq: 0,
            current: None,
            last_mtime: None,
            unsynced: Vec::new(),
            watch: None,
        })
    }

    /// Appends whole records (in pieces) to the current segment, opening one if needed.
    fn append(&mut self, records: &mut [IoSlice]) -> io::Result<()> {
        let seg = match &mut self.current {
            Some(seg) => seg,
            None => {
                let seq = self.seq + 1;
                let tmp = self
                    .tmp_dir
                    .join(format!("shard-{}-{}", self.shard, segment_name(seq)));
                let mut file = nofollow::create_fresh(&tmp)?;
                file.write_all(&self.header.encode())?;
                self.current.insert(Segment {
                    file,
                    tmp,
                    seq,
                    size: FILE_HEADER_LEN as u64,
                    first_at: Instant::now(),
                })
            }
        };
        let len: usize = records.iter().map(|r| r.len()).sum();
        for group in records.chunks_mut(PARTS_MAX) {
            write_all_vectored(&mut seg.file, group)?;
        }
        seg.size += len as u64;
        Ok(())
    }

    /// Bytes the current segment can still take before reaching the size limit.
    fn room(&self) -> u64 {
        let used = self
            .current
            .as_ref()
            .map_or(FILE_HEADER_LEN as u64, |s| s.size);
        self.config.segment_size.saturating_sub(used)
    }

    /// True when the current segment's first packet has waited the age limit.
    fn aged(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| s.first_at.elapsed() >= self.config.segment_age)
    }

    /// Moves the current segment into the shard directory, after waiting for room in the backlog.
    fn publish(&mut self) -> io::Result<()> {
        // A segment exists only once it holds a record: empty segments are never published.
        let Some(seg) = self.current.take() else {
            return Ok(());
        };
        self.wait_for_room()?;
        self.stamp(&seg.file)?;
        let path = self.dir.join(segment_name(seg.seq));
        nofollow::rename(&seg.tmp, &path)?;
        self.seq = seg.seq;
        self.unsynced.push(path);
        // At most `backlog` segments wait and consumers take them in order: older ones are gone.
        let gone = self.unsynced.len().saturating_sub(self.config.backlog);
        self.unsynced.drain(..gone);
        Ok(())
    }

    /// Sets the segment's mtime strictly after the previous segment's, so mtime order is name order.
    fn stamp(&mut self, file: &File) -> io::Result<()> {
        let set = |t: SystemTime| {
            file.set_times(FileTimes::new().set_modified(t))?;
            file.metadata()?.modified()
        };
        let Some(prev) = self.last_mtime else {
            self.last_mtime = Some(set(SystemTime::now())?);
            return Ok(());
        };
        let mut got = set(SystemTime::now().max(prev + MTIME_STEP))?;
        if got <= prev {
            // The filesystem keeps coarser timestamps: step by a whole second.
            got = set(prev + Duration::from_secs(1))?;
        }
        if got <= prev {
            return Err(io::Error::other(format!(
                "{}: cannot give segments increasing modification times",
                self.dir.display()
            )));
        }
        self.last_mtime = Some(got);
        Ok(())
    }

    /// Segments waiting in the shard directory.
    fn waiting(&self) -> io::Result<usize> {
        let mut n = 0;
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            n += usize::from(!name.starts_with('.') && name.ends_with(".pcap"));
        }
        Ok(n)
    }

    /// Blocks while `backlog` segments are waiting, woken by the consumer's deletions (inotify),
    /// counting again at least every `RECHECK`.
    fn wait_for_room(&mut self) -> io::Result<()> {
        let mut since: Option<Instant> = None;
        loop {
            if self.waiting()? < self.config.backlog {
                if let Some(t) = since {
                    log::debug!(
                        "{}: consumer caught up after {:.1}s",
                        self.dir.display(),
                        t.elapsed().as_secs_f64()
                    );
                }
                return Ok(());
            }
            if since.is_none() {
                since = Some(Instant::now());
                log::debug!(
                    "{}: {} segments waiting; holding the stream until the consumer takes one",
                    self.dir.display(),
                    self.config.backlog
                );
                if self.watch.is_none() {
                    // Watch first, then count again: no deletion can slip between the two.
                    self.watch = self.new_watch();
                    continue;
                }
            }
            match &self.watch {
                Some(watch) => {
                    let mut fds = [PollFd::new(watch.as_fd(), PollFlags::POLLIN)];
                    let timeout = PollTimeout::try_from(RECHECK).unwrap_or(PollTimeout::MAX);
                    match poll(&mut fds, timeout) {
                        Ok(n) if n > 0 => drop(watch.read_events()),
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                None => std::thread::sleep(RECHECK),
            }
        }
    }

    /// An inotify watch for deletions in the shard directory; none (polling instead) where the
    /// system refuses one, e.g. when the per-user instance limit is reached.
    fn new_watch(&self) -> Option<Inotify> {
        let watch = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).and_then(|w| {
            let flags = AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM;
            w.add_watch(&self.dir, flags).map(|_| w)
        });
        match watch {
            Ok(w) => Some(w),
            Err(e) => {
                log::debug!(
                    "{}: no inotify watch ({e}); polling every {}ms",
                    self.dir.display(),
                    RECHECK.as_millis()
                );
                None
            }
        }
    }

    /// Writes `PATH/shard-K.end` with the last sequence number, atomically.
    fn write_end_marker(&self) -> io::Result<()> {
        let marker = end_marker(&self.root, self.shard);
        let tmp = self.tmp_dir.join(marker.file_name().expect("marker name"));
        let mut f = nofollow::create_fresh(&tmp)?;
        writeln!(f, "{}", self.seq)?;
        f.sync_all()?;
        nofollow::rename(&tmp, &marker)?;
        File::open(&self.root)?.sync_all()
    }
}

impl Output for SpoolOutput {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_parts(&mut [IoSlice::new(buf)])
    }

    /// Splits the records at record boundaries into segments, each segment's share written in
    /// one vectored write; a run of records is walked only where a segment ends inside it.
    fn write_parts(&mut self, parts: &mut [IoSlice]) -> io::Result<()> {
        let mut group: Vec<IoSlice> = Vec::new();
        let mut room = self.room();
        for part in parts.iter() {
            let mut run: &[u8] = part;
            while !run.is_empty() {
                let take = match run.len() as u64 <= room {
                    true => run.len(),
                    // A record longer than a whole segment goes alone into a segment.
                    false => fit(
                        run,
                        room as usize,
                        group.is_empty() && self.current.is_none(),
                    )?,
                };
                if take > 0 {
                    group.push(IoSlice::new(&run[..take]));
                    room = room.saturating_sub(take as u64);
                    run = &run[take..];
                }
                if !run.is_empty() {
                    // The next record does not fit: the segment is full.
                    self.append(&mut group)?;
                    group.clear();
                    self.publish()?;
                    room = self.room();
                }
            }
        }
        if !group.is_empty() {
            self.append(&mut group)?;
        }
        if self.room() < RECORD_HEADER_LEN as u64 || self.aged() {
            self.publish()?;
        }
        Ok(())
    }

    fn vectored(&self) -> bool {
        true
    }

    /// Every segment carries the header given at creation; nothing to write ahead of them.
    fn write_header(&mut self, _header: &StreamHeader) -> io::Result<()> {
        Ok(())
    }

    /// Publishes the current segment, then makes every published segment still waiting durable.
    fn sync(&mut self) -> io::Result<()> {
        if let Some(seg) = &self.current {
            seg.file.sync_data()?;
        }
        self.publish()?;
        for path in self.unsynced.drain(..) {
            match File::open(&path) {
                Ok(f) => f.sync_data()?,
                // Already taken by the consumer.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        File::open(&self.dir)?.sync_all()
    }

    /// Closes an aged segment when the stream is idle.
    fn tick(&mut self) -> io::Result<()> {
        if self.aged() {
            self.publish()?;
        }
        Ok(())
    }

    /// Publishes the last segment and marks the shard's stream complete.
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.sync()?;
        self.write_end_marker()
    }

    fn describe(&self) -> String {
        format!("spool {}", self.dir.display())
    }
}

impl Drop for SpoolOutput {
    /// A stream that did not finish leaves no half-written segment behind (and no end marker).
    fn drop(&mut self) {
        if let Some(seg) = self.current.take() {
            let _ = fs::remove_file(seg.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(caplen: usize) -> Vec<u8> {
        let mut r = vec![0u8; RECORD_HEADER_LEN + caplen];
        r[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        r
    }

    /// The records of each published segment of shard 0 at `root`, as their lengths.
    fn segments(root: &Path) -> Vec<Vec<usize>> {
        let mut names: Vec<PathBuf> = fs::read_dir(shard_dir(root, 0))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let bytes = fs::read(p).unwrap();
                let mut at = FILE_HEADER_LEN;
                let mut lens = Vec::new();
                while at < bytes.len() {
                    let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
                    lens.push(caplen as usize);
                    at += RECORD_HEADER_LEN + caplen as usize;
                }
                assert_eq!(at, bytes.len(), "whole records");
                lens
            })
            .collect()
    }

    #[test]
    fn segments_end_at_record_boundaries_whatever_the_pieces() {
        let header = StreamHeader {
            linktype: 1,
            nanos: false,
            snaplen: 65535,
        };
        // Room for 100 bytes of records a segment (after the header).
        let config = SpoolConfig {
            segment_size: FILE_HEADER_LEN as u64 + 100,
            segment_age: Duration::from_secs(3600),
            backlog: 100,
        };
        let tmp = tempfile::tempdir().unwrap();
        let mut out = SpoolOutput::create(tmp.path(), 0, header, config).unwrap();
        // Pieces of whole records: three that fill a segment, a run crossing a segment's end, a
        // record longer than a segment, and an empty one.
        let (a, b) = ([record(20), record(20)].concat(), record(10));
        let run = [record(30), record(30), record(4)].concat();
        let (big, last) = (record(150), record(0));
        let mut parts = [&a, &b, &run, &big, &last].map(|p| IoSlice::new(p));
        out.write_parts(&mut parts).unwrap();
        Box::new(out).finish().unwrap();
        assert_eq!(
            segments(tmp.path()),
            [vec![20, 20, 10], vec![30, 30], vec![4], vec![150], vec![0]]
        );
    }
}
