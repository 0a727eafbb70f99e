//! An output that outlives its consumer (`--ids-restart`): once the consumer has gone (a broken
//! pipe), the shard's records are counted and dropped instead of failing the run, until the
//! supervisor resumes the shard with a restarted consumer.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::sink::output::Output;
use shardcap_capture::format::{StreamHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};

/// What a guarded output saw; shared with the supervisor.
#[derive(Debug, Default)]
pub struct Losses {
    /// The consumer went away (a write met a broken pipe).
    pub gone: AtomicBool,
    /// Packets dropped since then.
    pub packets: AtomicU64,
    /// Bytes of those packets (record headers included).
    pub bytes: AtomicU64,
}

/// Wraps a shard's output; see the module documentation.
pub struct GuardedOutput {
    inner: Box<dyn Output>,
    losses: Arc<Losses>,
    /// The first write is the stream header, not records.
    header_written: bool,
}

impl GuardedOutput {
    /// Guards `inner`; the returned [`Losses`] tell what was dropped.
    pub fn new(inner: Box<dyn Output>) -> (Self, Arc<Losses>) {
        let losses = Arc::new(Losses::default());
        let out = GuardedOutput {
            inner,
            losses: losses.clone(),
            header_written: false,
        };
        (out, losses)
    }

    fn drop_records(&self, buf: &[u8]) {
        self.losses
            .packets
            .fetch_add(count_records(buf), Ordering::Relaxed);
        self.losses
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
    }

    /// The result of a write of `records` to the consumer: a broken pipe drops them (and every
    /// later record) instead of failing.
    fn outcome<'a>(
        &self,
        written: io::Result<()>,
        records: impl Iterator<Item = &'a [u8]>,
    ) -> io::Result<()> {
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                log::warn!("{}: {e}; dropping its packets", self.inner.describe());
                self.losses.gone.store(true, Ordering::SeqCst);
                records.for_each(|r| self.drop_records(r));
                Ok(())
            }
            r => r,
        }
    }
}

/// Number of whole pcap records in `buf` (a shard buffer holds only whole records).
fn count_records(buf: &[u8]) -> u64 {
    let (mut at, mut n) = (0usize, 0u64);
    while at + RECORD_HEADER_LEN <= buf.len() {
        let caplen = u32::from_le_bytes(buf[at + 8..at + 12].try_into().unwrap()) as usize;
        at += RECORD_HEADER_LEN + caplen;
        n += 1;
    }
    n
}

impl Output for GuardedOutput {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let records = if self.header_written {
            buf
        } else {
            self.header_written = true;
            &buf[buf.len().min(FILE_HEADER_LEN)..]
        };
        if self.losses.gone.load(Ordering::Relaxed) {
            self.drop_records(records);
            return Ok(());
        }
        let written = self.inner.write_all(buf);
        self.outcome(written, std::iter::once(records))
    }

    fn write_parts(&mut self, parts: &mut [IoSlice]) -> io::Result<()> {
        if self.losses.gone.load(Ordering::Relaxed) {
            parts.iter().for_each(|p| self.drop_records(p));
            return Ok(());
        }
        // The writes advance the slices they are given: `parts` keeps the records to count.
        let mut work = parts.to_vec();
        let written = self.inner.write_parts(&mut work);
        self.outcome(written, parts.iter().map(|p| &p[..]))
    }

    fn vectored(&self) -> bool {
        self.inner.vectored()
    }

    fn write_header(&mut self, header: &StreamHeader) -> io::Result<()> {
        self.header_written = true;
        self.inner.write_header(header)
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.losses.gone.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.sync()
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        if self.losses.gone.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.finish()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn read_while_written(&self) -> bool {
        self.inner.read_while_written()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardcap_capture::Packet;

    /// An output whose reader has gone after `room` bytes.
    struct Closing {
        room: usize,
    }

    impl Output for Closing {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            if buf.len() > self.room {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.room -= buf.len();
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "closing".into()
        }
    }

    #[test]
    fn counts_the_records_it_drops_after_a_broken_pipe() {
        let header = StreamHeader {
            linktype: 1,
            nanos: false,
            snaplen: 65535,
        };
        let records = |n: usize, size: usize| {
            let data = vec![7u8; size];
            let mut buf = Vec::new();
            for i in 0..n {
                let pkt = Packet {
                    ts_ns: i as u64,
                    len: size as u32,
                    linktype: 1,
                    data: &data,
                };
                header.append_record(&mut buf, &pkt);
            }
            buf
        };
        let (mut out, losses) = GuardedOutput::new(Box::new(Closing { room: 200 }));
        out.write_all(&header.encode()).unwrap();
        out.write_all(&records(3, 10)).unwrap(); // 78 bytes: fits
        assert!(!losses.gone.load(Ordering::SeqCst));
        out.write_all(&records(5, 100)).unwrap(); // broken pipe: 5 dropped
        out.write_all(&records(2, 0)).unwrap(); // gone: 2 more
        assert!(losses.gone.load(Ordering::SeqCst));
        assert_eq!(losses.packets.load(Ordering::SeqCst), 7);
        assert_eq!(losses.bytes.load(Ordering::SeqCst), 5 * 116 + 2 * 16);
        Box::new(out).finish().unwrap();
    }
}
