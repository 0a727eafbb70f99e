//! One shard's stream: packets are appended to a [`Batch`] in the hot loop (left in their input
//! buffers where they are written unchanged, copied otherwise) and handed, a whole batch at a
//! time, to a writer thread that owns the output. A slow consumer stalls the merge only once every
//! batch of its shard is in flight; the time spent stalled is counted.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::batch::{write_grouped, Batch};
use super::fence::Fence;
use super::output::Output;
use shardcap_capture::format::{StreamHeader, RECORD_HEADER_LEN};
use shardcap_capture::{Packet, Verbatim};
use shardcap_flow::reframe::Reframe;

/// Size of one shard buffer.
pub const BUFFER_SIZE: usize = 256 << 10;
/// Buffers per shard (one being filled, the rest queued or being written).
pub const BUFFERS: usize = 4;
/// An output nobody reads while it is written takes the same memory as two buffers of twice the
/// size: half the hand-overs to its writer thread (and the thread's wake-ups).
const FILE_BUFFERS: usize = 2;
/// The memory the file outputs' buffers share: with few shards each takes larger buffers (up to
/// [`MAX_FILE_BUFFER`]), so one shard hands over a few large buffers instead of many.
const FILE_BUDGET: usize = 8 << 20;
/// The largest file buffer.
const MAX_FILE_BUFFER: usize = 2 << 20;

/// The size of each of a file output's buffers when `shards` file outputs share the budget: 2 MiB
/// for one or two shards, down to 512 KiB (the memory of every other output) from eight on.
pub fn file_buffer_size(shards: usize) -> usize {
    (FILE_BUDGET / (shards.max(1) * FILE_BUFFERS))
        .clamp(BUFFER_SIZE * BUFFERS / FILE_BUFFERS, MAX_FILE_BUFFER)
}
/// How long the writer thread waits for data before it calls `Output::tick`.
const TICK: Duration = Duration::from_millis(100);
/// How often a held writer (or a merge waiting for a buffer) looks at the brake.
const BRAKE_POLL: Duration = Duration::from_millis(5);

/// Holds a shard's output: while `flag` is set the writer thread hands nothing more to it (queued
/// buffers stay queued). Bytes go out in chunks of at most `chunk`, the flag checked before each,
/// so at most one chunk is under way when it is set (whole buffers to an output nobody reads
/// while it is written, see [`Output::read_while_written`]).
#[derive(Clone)]
pub struct Brake {
    pub flag: Arc<AtomicBool>,
    pub chunk: usize,
    /// Every write, sync and close passes it first (a partition's lease, see [`Fence`]).
    pub fence: Fence,
    /// The size of each buffer of an output nobody reads while it is written (a file; see
    /// [`file_buffer_size`]).
    pub file_buffer: usize,
}

impl Brake {
    /// A brake never applied (whole buffers written at once).
    pub fn none() -> Self {
        Brake {
            flag: Arc::new(AtomicBool::new(false)),
            chunk: BUFFER_SIZE,
            fence: Fence::open(),
            file_buffer: file_buffer_size(1),
        }
    }

    fn on(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

enum Msg {
    Data(Batch),
    Sync(SyncSender<io::Result<()>>),
    /// The stream is complete; without it (the run failed) the output is left unfinished.
    Finish,
}

/// Counters of one shard, read by stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardCounters {
    /// Packets written.
    pub packets: u64,
    /// Of these, packets written from their input buffer (no copy).
    pub uncopied: u64,
    /// Captured bytes (sum of caplen).
    pub bytes: u64,
    /// Sum of original lengths.
    pub wire_bytes: u64,
    /// Time the merge waited for this shard's consumer.
    pub blocked: Duration,
}

/// The hot-loop side of one shard's output.
pub struct ShardWriter {
    header: StreamHeader,
    /// Size of one buffer.
    size: usize,
    buf: Batch,
    tx: Option<SyncSender<Msg>>,
    free: Receiver<Batch>,
    thread: Option<JoinHandle<io::Result<()>>>,
    name: String,
    brake: Arc<AtomicBool>,
    /// What was written so far.
    pub counters: ShardCounters,
}

impl ShardWriter {
    /// Starts the writer thread for `output`. With `write_header`, the stream begins with the pcap
    /// header (not when resuming an output that already has one).
    pub fn start(
        output: Box<dyn Output>,
        header: StreamHeader,
        write_header: bool,
    ) -> io::Result<Self> {
        Self::start_braked(output, header, write_header, Brake::none())
    }

    /// Like [`ShardWriter::start`], with the output held while `brake` says so.
    pub fn start_braked(
        mut output: Box<dyn Output>,
        header: StreamHeader,
        write_header: bool,
        brake: Brake,
    ) -> io::Result<Self> {
        if write_header {
            brake.fence.pass()?;
            output.write_header(&header)?;
        }
        let name = output.describe();
        let (buffers, chunk, size) = match output.read_while_written() {
            true => (BUFFERS, brake.chunk, BUFFER_SIZE),
            false => (FILE_BUFFERS, usize::MAX, brake.file_buffer),
        };
        let (tx, rx) = sync_channel::<Msg>(buffers);
        let (free_tx, free) = sync_channel::<Batch>(buffers);
        for _ in 1..buffers {
            free_tx
                .send(Batch::with_capacity(size))
                .expect("buffer pool");
        }
        let flag = brake.flag.clone();
        let thread = thread::Builder::new()
            .name(format!("out {name}"))
            .spawn(move || {
                // Where the records of a batch with pinned parts are gathered for an output that
                // takes one buffer at a time.
                let mut scratch = Vec::new();
                loop {
                    let msg = match rx.recv_timeout(TICK) {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => {
                            if !brake.on() && brake.fence.is_open() {
                                output.tick()?;
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    };
                    match msg {
                        Msg::Data(mut batch) => {
                            let vectored = output.vectored();
                            let write = |iov: &mut [io::IoSlice]| {
                                while brake.on() {
                                    thread::sleep(BRAKE_POLL);
                                }
                                brake.fence.pass()?;
                                match vectored {
                                    true => output.write_parts(iov),
                                    // One buffer a group (see `Batch::contiguous`).
                                    false => output.write_all(&iov[0]),
                                }
                            };
                            match vectored {
                                true => write_grouped(batch.runs(), chunk, write)?,
                                false => {
                                    let all = batch.contiguous(&mut scratch);
                                    write_grouped(std::iter::once(all), chunk, write)?
                                }
                            }
                            batch.clear(size);
                            // A batch added while braked is dropped once the pool is full again.
                            let _ = free_tx.try_send(batch);
                        }
                        Msg::Sync(ack) => {
                            let _ = ack.send(brake.fence.pass().and_then(|()| output.sync()));
                        }
                        Msg::Finish => {
                            brake.fence.pass()?;
                            return output.finish();
                        }
                    }
                }
            })?;
        Ok(ShardWriter {
            header,
            size,
            buf: Batch::with_capacity(size),
            tx: Some(tx),
            free,
            thread: Some(thread),
            name,
            brake: flag,
            counters: ShardCounters::default(),
        })
    }

    /// The output's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends one packet.
    #[inline(always)]
    pub fn write(&mut self, pkt: &Packet) -> io::Result<()> {
        self.room(pkt.data.len())?;
        self.buf.copy(&self.header, pkt);
        self.count(pkt.data.len(), pkt.len);
        Ok(())
    }

    /// Appends one packet whose record `v` already has this stream's bytes: written from where
    /// it was read when its chunk can be pinned, copied otherwise.
    #[inline(always)]
    pub fn write_verbatim(&mut self, pkt: &Packet, v: &Verbatim) -> io::Result<()> {
        self.room(pkt.data.len())?;
        if v.nanos == self.header.nanos && self.buf.pin(v) {
            self.counters.uncopied += 1;
        } else {
            self.buf.copy(&self.header, pkt);
        }
        self.count(pkt.data.len(), pkt.len);
        Ok(())
    }

    /// Appends one packet as an Ethernet frame, `r.header` in place of its link header.
    #[inline(never)]
    pub fn write_reframed(&mut self, pkt: &Packet, r: &Reframe) -> io::Result<()> {
        self.room(r.lengths(pkt.data.len(), pkt.len).0)?;
        let (caplen, len) = self.buf.copy_reframed(&self.header, pkt, r);
        self.count(caplen, len);
        Ok(())
    }

    /// Ships the buffer first when a record of `caplen` bytes would not fit.
    #[inline(always)]
    fn room(&mut self, caplen: usize) -> io::Result<()> {
        if self.buf.len() + RECORD_HEADER_LEN + caplen > self.size && !self.buf.is_empty() {
            self.ship()?;
        }
        Ok(())
    }

    #[inline(always)]
    fn count(&mut self, caplen: usize, len: u32) {
        self.counters.packets += 1;
        self.counters.bytes += caplen as u64;
        self.counters.wire_bytes += len as u64;
    }

    #[cold]
    fn ship(&mut self) -> io::Result<()> {
        let next = match self.free.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                let t = Instant::now();
                let b = self.wait_free();
                self.counters.blocked += t.elapsed();
                b?
            }
            Err(TryRecvError::Disconnected) => return Err(self.thread_error()),
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Msg::Data(full))
    }

    /// Waits for a free buffer; while braked, a new one instead (the held output frees none),
    /// so the merge reaches its next look at the signals.
    fn wait_free(&mut self) -> io::Result<Batch> {
        loop {
            if self.brake.load(Ordering::SeqCst) {
                return Ok(Batch::with_capacity(self.size));
            }
            match self.free.recv_timeout(BRAKE_POLL) {
                Ok(b) => return Ok(b),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(self.thread_error()),
            }
        }
    }

    fn send(&mut self, msg: Msg) -> io::Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("output already closed"))?;
        if tx.send(msg).is_err() {
            return Err(self.thread_error());
        }
        Ok(())
    }

    /// The writer thread's failure (it ended early).
    fn thread_error(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => io::Error::new(e.kind(), format!("{}: {e}", self.name)),
            Some(Err(_)) => io::Error::other(format!("{}: writer thread panicked", self.name)),
            _ => io::Error::other(format!("{}: output closed", self.name)),
        }
    }

    /// Writes out everything appended so far and waits until the output has it (and, for files,
    /// until it is on disk). Used at checkpoints and before suspending.
    pub fn flush(&mut self) -> io::Result<()> {
        let ack = self.request_sync()?;
        match ack.recv() {
            Ok(r) => r.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.name))),
            Err(_) => Err(self.thread_error()),
        }
    }

    /// Hands over everything appended so far and asks for it to be synced: the returned channel
    /// says when the output has it (a FIFO: when its reader has read it), so the caller can wait
    /// while doing other work.
    pub fn request_sync(&mut self) -> io::Result<Receiver<io::Result<()>>> {
        if !self.buf.is_empty() {
            self.ship()?;
        }
        let (ack_tx, ack) = sync_channel(1);
        self.send(Msg::Sync(ack_tx))?;
        Ok(ack)
    }

    /// Writes what is left and closes the output cleanly.
    pub fn finish(mut self) -> io::Result<ShardCounters> {
        if !self.buf.is_empty() {
            self.ship()?;
        }
        self.send(Msg::Finish)?;
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) => Ok(self.counters),
            Some(Ok(Err(e))) => Err(io::Error::new(e.kind(), format!("{}: {e}", self.name))),
            _ => Err(io::Error::other(format!(
                "{}: writer thread failed",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps the size of every write, and says whether it is read while written.
    struct Writes {
        sizes: Arc<Mutex<Vec<usize>>>,
        streamed: bool,
    }

    impl Output for Writes {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            self.sizes.lock().unwrap().push(buf.len());
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "writes".into()
        }
        fn read_while_written(&self) -> bool {
            self.streamed
        }
    }

    /// The sizes of the writes 3 MB of packets make, after the stream header.
    fn write_sizes(streamed: bool, chunk: usize) -> Vec<usize> {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let out = Writes {
            sizes: sizes.clone(),
            streamed,
        };
        let header = StreamHeader {
            linktype: 1,
            nanos: false,
            snaplen: 65535,
        };
        let brake = Brake {
            flag: Arc::new(AtomicBool::new(false)),
            chunk,
            fence: Fence::open(),
            file_buffer: file_buffer_size(8),
        };
        let mut w = ShardWriter::start_braked(Box::new(out), header, true, brake).unwrap();
        let data = [7u8; 984];
        for i in 0..3000 {
            let pkt = Packet {
                ts_ns: i,
                len: 984,
                linktype: 1,
                data: &data,
            };
            w.write(&pkt).unwrap();
        }
        w.finish().unwrap();
        let sizes = sizes.lock().unwrap().split_off(1);
        assert_eq!(sizes.iter().sum::<usize>(), 3000 * 1000);
        sizes
    }

    #[test]
    fn file_buffers_share_a_budget_between_bounds() {
        let mib = 1 << 20;
        let sizes: Vec<usize> = [1, 2, 4, 8, 64].map(file_buffer_size).to_vec();
        assert_eq!(sizes, [2 * mib, 2 * mib, mib, mib / 2, mib / 2]);
    }

    #[test]
    fn outputs_read_while_written_take_chunks_and_files_whole_buffers() {
        let chunk = 64 << 10;
        let streamed = write_sizes(true, chunk);
        assert!(streamed.iter().all(|&n| n <= chunk), "{streamed:?}");
        assert!(streamed.len() >= 3000 * 1000 / chunk, "{streamed:?}");
        let file = write_sizes(false, chunk);
        let size = file_buffer_size(8);
        let (last, whole) = file.split_last().unwrap();
        assert!(
            whole.iter().all(|&n| n > size - 1000 && n <= size),
            "{file:?}"
        );
        assert!(*last <= size);
        assert_eq!(file.len(), (3000 * 1000usize).div_ceil(size / 1000 * 1000));
    }
}
