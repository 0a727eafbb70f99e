//! Inputs: discovery, format detection, zero-copy readers and the first-packet catalog.

pub mod buffer;
pub mod bytes;
pub mod capture;
pub mod catalog;
pub mod detect;
pub mod discover;
pub mod intake;
pub mod pcap;
pub mod pcapng;
pub mod retention;
pub mod stream;
pub mod survey;
pub mod watch;

use std::fmt;
use std::io;

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

/// Damage or an I/O failure inside a capture, at a byte offset of its (decompressed) stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub offset: u64,
    pub message: String,
    /// The read buffer memory limit was reached: the file may be whole, but not readable now.
    pub over_limit: bool,
}

impl ReadError {
    /// A problem found at `offset`.
    pub fn new(offset: u64, message: impl Into<String>) -> Self {
        ReadError {
            offset,
            message: message.into(),
            over_limit: false,
        }
    }

    /// An I/O error met while reading at `offset`.
    pub fn io(offset: u64, e: io::Error) -> Self {
        if buffer::is_memory_limit(&e) {
            return ReadError {
                over_limit: true,
                ..ReadError::new(offset, e.to_string())
            };
        }
        ReadError::new(offset, format!("read failed: {e}"))
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.message)
    }
}

/// Irregularities a reader met and read past (the packets around them were kept), such as an
/// unexpected format version. Bounded: the first few are kept, the rest only counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
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
