//! pcapng reader (sections, interfaces, if_tsresol/if_tsoffset), parsed in place.

use super::buffer::ReadBuffer;
use super::{Packet, ReadError};

/// Reads packet blocks of a pcapng stream as slices of its read buffer.
pub struct PcapNgReader {
    buf: ReadBuffer,
    linktypes: Vec<u32>,
}

impl PcapNgReader {
    /// Parses the first section header block.
    pub fn open(buf: ReadBuffer) -> Result<Self, ReadError> {
        Ok(PcapNgReader {
            buf,
            linktypes: Vec::new(),
        })
    }

    /// Moves to the next packet; `Ok(false)` at the clean end.
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        Err(ReadError::new(
            self.buf.offset(),
            "pcapng is not supported yet",
        ))
    }

    /// Timestamp of the current packet.
    pub fn ts(&self) -> u64 {
        0
    }

    /// The current packet.
    pub fn packet(&self) -> Packet<'_> {
        Packet {
            ts_ns: 0,
            len: 0,
            linktype: 0,
            data: &[],
        }
    }

    /// Stream offset of the current block.
    pub fn record_offset(&self) -> u64 {
        self.buf.offset()
    }

    /// Distinct link types of the interfaces seen so far.
    pub fn linktypes(&self) -> &[u32] {
        &self.linktypes
    }

    /// True when an interface seen so far has a resolution finer than microseconds.
    pub fn nanos(&self) -> bool {
        false
    }

    /// Largest snapshot length among the interfaces seen so far.
    pub fn snaplen(&self) -> u32 {
        0
    }
}
