//! Classic pcap reader: all four magic variants plus the modified (a1b2cd34) format, parsed in place.

use super::buffer::ReadBuffer;
use super::bytes::u32_at;
use super::detect::PcapVariant;
use super::{Anomalies, Packet, ReadError, MAX_CAPLEN};

const FILE_HEADER: usize = 24;
/// Bits of the link-type field that must be zero (between the link type and the FCS information).
const LINKTYPE_RESERVED: u32 = 0x03ff_0000;

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
    anomalies: Anomalies,
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
        let version = u32_at(h, 4, be);
        let (major, minor) = if be {
            (version >> 16, version & 0xffff)
        } else {
            (version & 0xffff, version >> 16)
        };
        let snaplen = u32_at(h, 16, be);
        let linktype = u32_at(h, 20, be);
        let mut anomalies = Anomalies::default();
        if major != 2 {
            anomalies.note(ReadError::new(
                4,
                format!("pcap version {major}.{minor} is not 2.x; read as 2.4"),
            ));
        }
        if linktype & LINKTYPE_RESERVED != 0 {
            anomalies.note(ReadError::new(
                20,
                format!("link-type field {linktype:#010x} has reserved bits set"),
            ));
        }
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
            anomalies,
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
    #[inline]
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        self.buf.consume(self.current);
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

    /// Irregularities of the file header (the records were read anyway).
    pub fn anomalies(&self) -> &Anomalies {
        &self.anomalies
    }
}
