//! One open capture of any supported format, behind a single cursor interface.

use std::io::Read;
use std::path::Path;

use super::buffer::{ReadBuffer, DEFAULT_CAPACITY};
use super::detect::{Compression, Format};
use super::pcap::PcapReader;
use super::pcapng::PcapNgReader;
use super::{stream, tail, Anomalies, Packet, ReadError, Verbatim};

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

/// What the two ends of a capture tell: its first packet time and, where the format allows it,
/// its latest packet time near its end ([`Capture::ends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    /// Compression around it.
    pub compression: Compression,
    /// Time of the first packet; `None` for a capture without packets.
    pub first_ts: Option<u64>,
    /// Latest packet time among the packets of its last [`tail::WINDOW`] bytes; `None` when it
    /// is compressed (its end cannot be reached without decompressing it all), has no packets,
    /// or its last records could not be told apart with certainty.
    pub last_ts: Option<u64>,
}

impl Capture {
    /// Reads the head of `path` up to its first packet and, for an uncompressed capture, its last
    /// [`tail::WINDOW`] bytes: never the whole file. `Ok(None)`: not a capture.
    pub fn ends(path: &Path) -> Result<Option<Ends>, ReadError> {
        let file = stream::open_regular(path).map_err(ReadError::open)?;
        let head = file.try_clone().map_err(ReadError::open)?;
        let opened = stream::open_file(head).map_err(ReadError::open)?;
        let Some((mut cap, _, compression)) = Self::from_stream(opened, 8 << 10)? else {
            return Ok(None);
        };
        let mut ends = Ends {
            compression,
            first_ts: None,
            last_ts: None,
        };
        if !cap.advance()? {
            return Ok(Some(ends));
        }
        let first_ts = cap.ts();
        ends.first_ts = Some(first_ts);
        if compression == Compression::None {
            let (start, bytes) =
                stream::read_tail(&file, tail::WINDOW).map_err(|e| ReadError::io(0, e))?;
            ends.last_ts = match &cap {
                Capture::Pcap(r) => r.last_ts_in_tail(start, &bytes, first_ts),
                Capture::PcapNg(r) => r.last_ts_in_tail(start, &bytes, first_ts),
            };
        }
        Ok(Some(ends))
    }

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

    /// The current record as it lies in the read buffer, when it is written out unchanged (see
    /// [`Verbatim`]).
    #[inline(always)]
    pub fn verbatim(&self) -> Option<Verbatim<'_>> {
        match self {
            Capture::Pcap(r) => r.verbatim(),
            Capture::PcapNg(_) => None,
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
