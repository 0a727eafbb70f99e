//! One open capture of any supported format, behind a single cursor interface.

use std::io::Read;
use std::path::Path;

use super::buffer::{ReadBuffer, DEFAULT_CAPACITY};
use super::detect::{Compression, Format};
use super::pcap::PcapReader;
use super::pcapng::PcapNgReader;
use super::{stream, Anomalies, Packet, ReadError};

/// A cursor over the packets of one capture file.
pub enum Capture {
    /// Classic pcap.
    Pcap(PcapReader),
    /// pcapng.
    PcapNg(PcapNgReader),
}

/// What a capture says about itself (link types and precision as far as read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInfo {
    /// File format, by content.
    pub format: Format,
    /// Compression around it, by content.
    pub compression: Compression,
    /// Link types of the interfaces declared so far.
    pub linktypes: Vec<u32>,
    /// Nanosecond timestamps (else microseconds).
    pub nanos: bool,
    /// Largest snapshot length declared (0: unlimited, in pcapng).
    pub snaplen: u32,
}

impl Capture {
    /// Opens `path`, detecting compression and format by content. `Ok(None)`: not a capture.
    pub fn open(path: &Path) -> Result<Option<(Capture, Format, Compression)>, ReadError> {
        Self::open_with(path, DEFAULT_CAPACITY)
    }

    /// Like [`Capture::open`] with a chosen read-buffer size.
    pub fn open_with(
        path: &Path,
        capacity: usize,
    ) -> Result<Option<(Capture, Format, Compression)>, ReadError> {
        let opened = stream::open(path).map_err(ReadError::open)?;
        Self::from_stream(opened, capacity)
    }

    /// Reads a capture from a stream that [`stream::decompress`] or [`stream::open`] returned.
    pub fn from_stream(
        (compression, stream): (Compression, Box<dyn Read + Send>),
        capacity: usize,
    ) -> Result<Option<(Capture, Format, Compression)>, ReadError> {
        let mut buf = ReadBuffer::new(stream, capacity);
        buf.ensure(4).map_err(|e| ReadError::io(0, e))?;
        let Some(format) = Format::sniff(buf.data()) else {
            return Ok(None);
        };
        let capture = match format {
            Format::Pcap(variant) => Capture::Pcap(PcapReader::open(buf, variant)?),
            Format::PcapNg => Capture::PcapNg(PcapNgReader::open(buf)?),
        };
        Ok(Some((capture, format, compression)))
    }

    /// Moves to the next packet; `Ok(false)` at the clean end of the capture.
    #[inline(always)]
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        match self {
            Capture::Pcap(r) => r.advance(),
            Capture::PcapNg(r) => r.advance(),
        }
    }

    /// Timestamp of the current packet (ns since the epoch).
    #[inline(always)]
    pub fn ts(&self) -> u64 {
        match self {
            Capture::Pcap(r) => r.ts(),
            Capture::PcapNg(r) => r.ts(),
        }
    }

    /// The current packet.
    #[inline(always)]
    pub fn packet(&self) -> Packet<'_> {
        match self {
            Capture::Pcap(r) => r.packet(),
            Capture::PcapNg(r) => r.packet(),
        }
    }

    /// Stream offset of the current record.
    pub fn record_offset(&self) -> u64 {
        match self {
            Capture::Pcap(r) => r.record_offset(),
            Capture::PcapNg(r) => r.record_offset(),
        }
    }

    /// Irregularities read past so far (reported, but the packets were kept).
    pub fn anomalies(&self) -> &Anomalies {
        match self {
            Capture::Pcap(r) => r.anomalies(),
            Capture::PcapNg(r) => r.anomalies(),
        }
    }

    /// Link types seen so far, nanosecond precision, snapshot length.
    pub fn info(&self, format: Format, compression: Compression) -> CaptureInfo {
        let (linktypes, nanos, snaplen) = match self {
            Capture::Pcap(r) => (vec![r.linktype()], r.nanos(), r.snaplen()),
            Capture::PcapNg(r) => (r.linktypes().to_vec(), r.nanos(), r.snaplen()),
        };
        CaptureInfo {
            format,
            compression,
            linktypes,
            nanos,
            snaplen,
        }
    }

    /// Advances past every record that starts before `offset` (a checkpoint), emitting nothing:
    /// the cursor is then on the first packet at or after it. `Ok(false)` when there is none.
    pub fn skip_to(&mut self, offset: u64) -> Result<bool, ReadError> {
        while self.advance()? {
            if self.record_offset() >= offset {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
