//! Classic pcap reader: all four magic variants plus the modified (a1b2cd34) format, parsed in place.

use super::buffer::ReadBuffer;
use super::detect::PcapVariant;
use super::{Packet, ReadError, MAX_CAPLEN};

const FILE_HEADER: usize = 24;

/// Reads records of a classic pcap stream as slices of its read buffer.
pub struct PcapReader {
    buf: ReadBuffer,
    variant: PcapVariant,
    linktype: u32,
    snaplen: u32,
    record_header: usize,
    frac_ns: u64,
    max_caplen: usize,
    /// Length of the current record (header and data) at the front of the buffer; 0 before the first.
    current: usize,
    ts_ns: u64,
    caplen: u32,
    len: u32,
    done: bool,
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let raw: [u8; 4] = b[at..at + 4].try_into().unwrap();
    if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    }
}

impl PcapReader {
    /// Parses the file header; the stream must start with a pcap magic of `variant`.
    pub fn open(mut buf: ReadBuffer, variant: PcapVariant) -> Result<Self, ReadError> {
        if !buf.ensure(FILE_HEADER).map_err(|e| ReadError::io(0, e))? {
            return Err(ReadError::new(
                0,
                "file header cut short (fewer than 24 bytes)",
            ));
        }
        let h = buf.data();
        let be = variant.big_endian;
        let major = u16::from_ne_bytes([h[4], h[5]]);
        let major = if be {
            u16::from_be(major)
        } else {
            u16::from_le(major)
        };
        if major != 2 {
            return Err(ReadError::new(
                4,
                format!("unsupported pcap version {major} (only 2.x exists)"),
            ));
        }
        let snaplen = u32_at(h, 16, be);
        let linktype = u32_at(h, 20, be);
        buf.consume(FILE_HEADER);
        Ok(PcapReader {
            buf,
            variant,
            linktype,
            snaplen,
            record_header: if variant.modified { 24 } else { 16 },
            frac_ns: if variant.nanos { 1 } else { 1000 },
            max_caplen: MAX_CAPLEN.max(snaplen.min(64 << 20) as usize),
            current: 0,
            ts_ns: 0,
            caplen: 0,
            len: 0,
            done: false,
        })
    }

    /// Link type from the file header (including any FCS bits).
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Snapshot length from the file header.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// True for nanosecond-resolution files.
    pub fn nanos(&self) -> bool {
        self.variant.nanos
    }

    /// Moves to the next record. `Ok(false)` at the clean end of the file.
    #[inline(always)]
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        self.buf.consume(self.current);
        // Fast path: the whole next record is buffered (all but one record a buffer refill).
        let hl = self.record_header;
        let h = self.buf.data();
        if let (Some(rec), false) = (h.first_chunk::<16>(), self.done) {
            // The four fields every record header starts with, read at fixed offsets.
            let be = self.variant.big_endian;
            let field = |i: usize| {
                let v = u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
                if be {
                    v.swap_bytes()
                } else {
                    v
                }
            };
            let caplen = field(8) as usize;
            if caplen <= self.max_caplen && h.len() >= hl + caplen {
                self.ts_ns = field(0) as u64 * 1_000_000_000 + field(4) as u64 * self.frac_ns;
                self.caplen = caplen as u32;
                self.len = field(12);
                self.current = hl + caplen;
                return Ok(true);
            }
        }
        self.advance_slow()
    }

    /// [`PcapReader::advance`] when the next record is not wholly buffered: refills, and reports
    /// the end of the file or damage.
    #[cold]
    #[inline(never)]
    fn advance_slow(&mut self) -> Result<bool, ReadError> {
        self.current = 0;
        if self.done {
            return Ok(false);
        }
        let hl = self.record_header;
        let at = self.buf.offset();
        if !self
            .buf
            .ensure(hl)
            .map_err(|e| self.fail(ReadError::io(at, e)))?
        {
            self.done = true;
            return match self.buf.available() {
                0 => Ok(false),
                n => Err(ReadError::new(
                    at,
                    format!("record header cut short ({n} of {hl} bytes)"),
                )),
            };
        }
        let h = self.buf.data();
        let be = self.variant.big_endian;
        let sec = u32_at(h, 0, be) as u64;
        let frac = u32_at(h, 4, be) as u64;
        let caplen = u32_at(h, 8, be);
        let len = u32_at(h, 12, be);
        if caplen as usize > self.max_caplen {
            return Err(self.fail(ReadError::new(
                at,
                format!(
                    "record length {caplen} exceeds the limit {} (corrupt record)",
                    self.max_caplen
                ),
            )));
        }
        let total = hl + caplen as usize;
        if !self
            .buf
            .ensure(total)
            .map_err(|e| self.fail(ReadError::io(at, e)))?
        {
            let have = self.buf.available() - hl;
            return Err(self.fail(ReadError::new(
                at,
                format!("record cut short ({have} of {caplen} data bytes)"),
            )));
        }
        self.ts_ns = sec * 1_000_000_000 + frac * self.frac_ns;
        self.caplen = caplen;
        self.len = len;
        self.current = total;
        Ok(true)
    }

    fn fail(&mut self, e: ReadError) -> ReadError {
        self.done = true;
        self.current = 0;
        e
    }

    /// Timestamp of the current record in ns since the epoch.
    #[inline(always)]
    pub fn ts(&self) -> u64 {
        self.ts_ns
    }

    /// The current record.
    #[inline(always)]
    pub fn packet(&self) -> Packet<'_> {
        let hl = self.record_header;
        Packet {
            ts_ns: self.ts_ns,
            len: self.len,
            linktype: self.linktype,
            data: &self.buf.data()[hl..hl + self.caplen as usize],
        }
    }

    /// Stream offset of the current record (of the next one before the first advance).
    pub fn record_offset(&self) -> u64 {
        self.buf.offset()
    }
}
