//! One shard's stream: packets are appended to a large buffer in the hot loop and handed, a whole
//! buffer at a time, to a writer thread that owns the output. A slow consumer stalls the merge only
//! once every buffer of its shard is in flight; the time spent stalled is counted.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::format::{StreamHeader, RECORD_HEADER_LEN};
use super::output::Output;
use super::reframe::Reframe;
use crate::input::Packet;

/// Size of one shard buffer.
pub const BUFFER_SIZE: usize = 256 << 10;
/// Buffers per shard (one being filled, the rest queued or being written).
pub const BUFFERS: usize = 4;
/// How long the writer thread waits for data before it calls `Output::tick`.
const TICK: Duration = Duration::from_millis(100);

enum Msg {
    Data(Vec<u8>),
    Sync(SyncSender<io::Result<()>>),
    /// The stream is complete; without it (the run failed) the output is left unfinished.
    Finish,
}

/// Counters of one shard, read by stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardCounters {
    /// Packets written.
    pub packets: u64,
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
    buf: Vec<u8>,
    tx: Option<SyncSender<Msg>>,
    free: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    name: String,
    /// What was written so far.
    pub counters: ShardCounters,
}

impl ShardWriter {
    /// Starts the writer thread for `output`. With `write_header`, the stream begins with the pcap
    /// header (not when resuming an output that already has one).
    pub fn start(
        mut output: Box<dyn Output>,
        header: StreamHeader,
        write_header: bool,
    ) -> io::Result<Self> {
        if write_header {
            output.write_header(&header)?;
        }
        let name = output.describe();
        let (tx, rx) = sync_channel::<Msg>(BUFFERS);
        let (free_tx, free) = sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 1..BUFFERS {
            free_tx
                .send(Vec::with_capacity(BUFFER_SIZE))
                .expect("buffer pool");
        }
        let thread = thread::Builder::new()
            .name(format!("out {name}"))
            .spawn(move || loop {
                let msg = match rx.recv_timeout(TICK) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        output.tick()?;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                };
                match msg {
                    Msg::Data(mut buf) => {
                        output.write_all(&buf)?;
                        buf.clear();
                        let _ = free_tx.send(buf);
                    }
                    Msg::Sync(ack) => {
                        let _ = ack.send(output.sync());
                    }
                    Msg::Finish => return output.finish(),
                }
            })?;
        Ok(ShardWriter {
            header,
            buf: Vec::with_capacity(BUFFER_SIZE),
            tx: Some(tx),
            free,
            thread: Some(thread),
            name,
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
        self.header.append_record(&mut self.buf, pkt);
        self.count(pkt.data.len(), pkt.len);
        Ok(())
    }

    /// Appends one packet as an Ethernet frame, `r.header` in place of its link header.
    #[inline(never)]
    pub fn write_reframed(&mut self, pkt: &Packet, r: &Reframe) -> io::Result<()> {
        self.room(r.lengths(pkt.data.len(), pkt.len).0)?;
        let (caplen, len) = self.header.append_reframed(&mut self.buf, pkt, r);
        self.count(caplen, len);
        Ok(())
    }

    /// Ships the buffer first when a record of `caplen` bytes would not fit.
    #[inline(always)]
    fn room(&mut self, caplen: usize) -> io::Result<()> {
        if self.buf.len() + RECORD_HEADER_LEN + caplen > BUFFER_SIZE && !self.buf.is_empty() {
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
                let b = self.free.recv().map_err(|_| self.thread_error());
                self.counters.blocked += t.elapsed();
                b?
            }
            Err(TryRecvError::Disconnected) => return Err(self.thread_error()),
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Msg::Data(full))
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
        if !self.buf.is_empty() {
            self.ship()?;
        }
        let (ack_tx, ack) = sync_channel(1);
        self.send(Msg::Sync(ack_tx))?;
        match ack.recv() {
            Ok(r) => r.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.name))),
            Err(_) => Err(self.thread_error()),
        }
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
