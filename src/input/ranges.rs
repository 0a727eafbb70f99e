//! The time ranges of completed spool files, which continuous mode's release decision needs. A
//! range is learned from the file's two ends where the format allows it — the head up to the first
//! packet and the last [`shardcap_capture::tail::WINDOW`] bytes of an uncompressed pcap or pcapng
//! file, a bounded read on the dispatch thread — and otherwise (gzip or zstd, whose end cannot be
//! reached without decompressing everything before it; a tail whose records cannot be told apart)
//! by reading the file to its end on a thread of its own, one file at a time, while the shards go
//! on. The same kind of reader ([`Background`]) does admission's whole-file reads (see
//! [`super::screen`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::survey::read_range;
use shardcap_capture::capture::{Capture, Ends};

/// Files handed to the reading thread ahead of the one it reads (the rest wait in a backlog).
const QUEUED: usize = 2;

/// A file's first and latest packet times (both 0 for a file without packets, or unreadable: the
/// catalog reports it once it is released).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub first_ts: u64,
    pub last_ts: u64,
}

/// What is known of a completed file's range at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Its whole range.
    Known(Range),
    /// Its first packet time; its latest comes later from [`RangeReader::done`].
    Reading { first_ts: u64 },
}

/// Reads files to their end on a thread of its own, one at a time in the order asked, while the
/// thread that asks goes on: each job `J` names a file, `work` reads it (stopping early once
/// its flag is set) and its result `R` comes back through [`Background::done`].
pub struct Background<J: Send + 'static, R: Send + 'static> {
    jobs: Option<SyncSender<J>>,
    results: Receiver<(J, R)>,
    /// Jobs waiting for room in the reading thread's queue.
    backlog: VecDeque<J>,
    /// Jobs asked for whose result was not taken yet.
    outstanding: usize,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl<J: Send + 'static, R: Send + 'static> Background<J, R> {
    /// Starts the reading thread `name` (idle until a job comes).
    pub fn new(name: &str, work: fn(&J, &AtomicBool) -> R) -> Self {
        let (jobs, inbox) = sync_channel::<J>(QUEUED);
        let (outbox, results) = sync_channel(QUEUED);
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let worker = thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    let result = work(&job, &halt);
                    if halt.load(Ordering::Relaxed) || outbox.send((job, result)).is_err() {
                        return;
                    }
                }
            })
            .unwrap_or_else(|e| panic!("spawn the {name} thread: {e}"));
        Background {
            jobs: Some(jobs),
            results,
            backlog: VecDeque::new(),
            outstanding: 0,
            stop,
            worker: Some(worker),
        }
    }

    /// Queues `job` (never waits).
    pub fn ask(&mut self, job: J) {
        self.backlog.push_back(job);
        self.outstanding += 1;
        self.feed();
    }

    /// Results since the last call; with `wait`, waits up to that long for one while jobs are
    /// outstanding (otherwise never waits).
    pub fn done(&mut self, wait: Option<Duration>) -> Vec<(J, R)> {
        let mut done = Vec::new();
        if let Some(wait) = wait.filter(|_| self.outstanding > 0) {
            match self.results.recv_timeout(wait) {
                Ok(r) => done.push(r),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.ended(),
            }
            self.feed();
        }
        loop {
            match self.results.try_recv() {
                Ok(r) => done.push(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.ended();
                    break;
                }
            }
            self.feed();
        }
        self.feed();
        self.outstanding -= done.len();
        done
    }

    fn ended(&self) {
        log::error!("the background reader ended; files waiting for it stay held");
    }

    /// Hands backlogged jobs to the reading thread while its queue has room.
    fn feed(&mut self) {
        let Some(jobs) = &self.jobs else { return };
        while let Some(job) = self.backlog.pop_front() {
            match jobs.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                    self.backlog.push_front(job);
                    return;
                }
            }
        }
    }
}

impl<J: Send + 'static, R: Send + 'static> Drop for Background<J, R> {
    fn drop(&mut self) {
        // The file being read is left at its next packet.
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        // A thread about to hand over a result finds nobody to take it, rather than waiting.
        let (_, nobody) = sync_channel(0);
        drop(std::mem::replace(&mut self.results, nobody));
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Learns ranges, reading files to their end off the dispatch thread when their ends do not tell.
pub struct RangeReader {
    reader: Background<PathBuf, Range>,
}

impl RangeReader {
    /// Starts the reading thread (idle until a file needs it).
    pub fn new() -> Self {
        RangeReader {
            reader: Background::new("range-reader", |path, halt| {
                read_range(path, halt).map_or(Range::EMPTY, |(f, l)| Range {
                    first_ts: f,
                    last_ts: l,
                })
            }),
        }
    }

    /// The range of the complete file `path` from its ends; when they do not tell its latest
    /// packet time, the file is queued to be read to its end off this thread.
    pub fn learn(&mut self, path: &Path) -> Learned {
        match Capture::ends(path) {
            Ok(Some(Ends {
                first_ts: Some(first_ts),
                last_ts,
                ..
            })) => match last_ts {
                Some(last) => Learned::Known(Range {
                    first_ts,
                    last_ts: last.max(first_ts),
                }),
                None => {
                    self.reader.ask(path.to_path_buf());
                    Learned::Reading { first_ts }
                }
            },
            _ => Learned::Known(Range::EMPTY),
        }
    }

    /// Ranges read to the end since the last call (never waits).
    pub fn done(&mut self) -> Vec<(PathBuf, Range)> {
        self.reader.done(None)
    }
}

impl Range {
    /// The range of a file without packets.
    pub const EMPTY: Range = Range {
        first_ts: 0,
        last_ts: 0,
    };
}

impl Default for RangeReader {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A pcap file of `n` records, one a second from second 1000, the first one last in time.
    fn pcap(n: u32) -> Vec<u8> {
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend([0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        for i in 0..n {
            let sec = if i == 0 { 1000 + n } else { 1000 + i };
            b.extend(sec.to_le_bytes());
            b.extend([0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0]);
            b.extend(i.to_le_bytes());
        }
        b
    }

    fn secs(s: u32) -> u64 {
        u64::from(s) * 1_000_000_000
    }

    #[test]
    fn ends_tell_a_plain_file_and_a_compressed_one_is_read_off_the_thread() {
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("a.pcap");
        std::fs::write(&plain, pcap(50)).unwrap();
        let packed = d.path().join("b.pcap.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        std::io::Write::write_all(&mut gz, &pcap(50)).unwrap();
        std::fs::write(&packed, gz.finish().unwrap()).unwrap();
        let not_capture = d.path().join("c.txt");
        std::fs::write(&not_capture, "hello").unwrap();

        let mut ranges = RangeReader::new();
        // The first packet is the latest: the range is never earlier than it.
        let whole = Range {
            first_ts: secs(1050),
            last_ts: secs(1050),
        };
        assert_eq!(ranges.learn(&plain), Learned::Known(whole));
        assert_eq!(
            ranges.learn(&not_capture),
            Learned::Known(Range::EMPTY),
            "the catalog reports it"
        );
        assert_eq!(
            ranges.learn(&packed),
            Learned::Reading {
                first_ts: secs(1050)
            }
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let done = loop {
            let done = ranges.done();
            if !done.is_empty() || Instant::now() > deadline {
                break done;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(done, [(packed, whole)]);
    }
}
