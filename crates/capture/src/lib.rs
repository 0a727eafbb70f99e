//! Capture files read and written: format and compression detection, zero-copy readers of pcap and
//! pcapng (plain, gzip or zstd), the [`Packet`] they yield, and the pcap stream format shardcap
//! writes. Nothing here knows about flows, shards or the command line.

pub mod buffer;
pub mod bytes;
pub mod capture;
pub mod detect;
pub mod format;
pub mod pcap;
pub mod pcapng;
pub mod stream;
pub mod tail;

use std::io;
use std::sync::Arc;

/// Largest record accepted unless the file's snapshot length announces more (libpcap's limit).
pub const MAX_CAPLEN: usize = 262_144;

/// One packet, as a view into its reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the epoch.
    pub ts_ns: u64,
    /// Original length on the wire.
    pub len: u32,
    /// Link type of the interface it was captured on.
    pub linktype: u32,
    /// Captured bytes (caplen = `data.len()`).
    pub data: &'a [u8],
}

/// A record exactly as shardcap's stream format holds it (little-endian header, `nanos`
/// resolution, a fraction below one second), in its reader's shared buffer: an output of the same
/// resolution writes these bytes from there, without copying them first.
#[derive(Clone, Copy)]
pub struct Verbatim<'a> {
    /// The buffer the record lies in.
    pub chunk: &'a buffer::Chunk,
    /// Record header and data.
    pub record: &'a [u8],
    /// Nanosecond timestamps (else microseconds).
    pub nanos: bool,
}

/// Damage or an I/O failure inside a capture, at a byte offset of its (decompressed) stream. The
/// file's path is added by whoever opened it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("byte {offset}: {message}")]
pub struct ReadError {
    /// Where in the (decompressed) stream the problem is.
    pub offset: u64,
    /// What is wrong, in words.
    pub message: String,
    /// The I/O error behind it, if any.
    #[source]
    pub source: Option<Arc<io::Error>>,
}

impl ReadError {
    /// A problem found at `offset`.
    pub fn new(offset: u64, message: impl Into<String>) -> Self {
        ReadError {
            offset,
            message: message.into(),
            source: None,
        }
    }

    /// An I/O error met while reading at `offset`.
    pub fn io(offset: u64, e: io::Error) -> Self {
        ReadError {
            offset,
            message: format!("read failed: {e}"),
            source: Some(Arc::new(e)),
        }
    }

    /// The file could not be opened.
    pub fn open(e: io::Error) -> Self {
        ReadError {
            offset: 0,
            message: format!("cannot open: {e}"),
            source: Some(Arc::new(e)),
        }
    }

    /// The kind of the I/O error behind it, if one is.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        self.source.as_ref().map(|e| e.kind())
    }
}

/// Irregularities a reader met and read past (the packets around them were kept), such as an
/// unexpected format version. Bounded: the first few are kept, the rest only counted.
#[derive(Debug, Default, Clone)]
pub struct Anomalies {
    kept: Vec<ReadError>,
    more: u64,
}

impl Anomalies {
    /// How many are kept with their message.
    pub const KEPT: usize = 8;

    /// Records one irregularity.
    #[cold]
    pub fn note(&mut self, e: ReadError) {
        if self.kept.len() < Self::KEPT {
            self.kept.push(e);
        } else {
            self.more += 1;
        }
    }

    /// True when nothing irregular was met.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// One line per kept irregularity, then a count of the others if any.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.kept.iter().map(ToString::to_string).collect();
        if self.more > 0 {
            lines.push(format!("{} more irregularities not listed", self.more));
        }
        lines
    }
}
