//! Classic pcap reader: all four magic variants plus the modified (a1b2cd34) format, parsed in place.

use super::buffer::ReadBuffer;
use super::bytes::u32_at;
use super::detect::PcapVariant;
use super::tail;
use super::{Anomalies, Packet, ReadError, Verbatim, MAX_CAPLEN};

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
    /// Fractions below this make a record's header the output's own ([`PcapReader::verbatim`]):
    /// one second for little-endian classic files, 0 (none) for the others.
    verbatim_below: u32,
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
            verbatim_below: match (variant.big_endian || variant.modified, variant.nanos) {
                (true, _) => 0,
                (false, true) => 1_000_000_000,
                (false, false) => 1_000_000,
            },
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
    #[inline(always)]
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        self.buf.consume(self.current);
        // Fast path: the whole next record is buffered (all but one record a buffer refill).
        let hl = self.record_header;
        let h = self.buf.data();
        if let (Some(rec), false) = (h.first_chunk::<16>(), self.done) {
            // The four fields every record header starts with, read at fixed offsets.
            let field = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
            let mut f = [field(0), field(4), field(8), field(12)];
            if self.variant.big_endian {
                f = f.map(u32::swap_bytes);
            }
            let caplen = f[2] as usize;
            if caplen <= self.max_caplen && h.len() >= hl + caplen {
                self.ts_ns = f[0] as u64 * 1_000_000_000 + f[1] as u64 * self.frac_ns;
                self.caplen = caplen as u32;
                self.len = f[3];
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

    /// The current record as it lies in the buffer, when its bytes are those of shardcap's
    /// stream format (little-endian classic pcap, fraction below one second).
    #[inline(always)]
    pub fn verbatim(&self) -> Option<Verbatim<'_>> {
        let record = &self.buf.data()[..self.current];
        let frac = u32::from_le_bytes(*record.get(4..8)?.first_chunk()?);
        (frac < self.verbatim_below).then_some(Verbatim {
            chunk: self.buf.chunk(),
            record,
            nanos: self.variant.nanos,
        })
    }

    /// Stream offset of the current record (of the next one before the first advance).
    pub fn record_offset(&self) -> u64 {
        self.buf.offset()
    }

    /// The latest packet time among the records that fill `bytes`, the last bytes of the file
    /// starting at file offset `start`, found without a record index: the chain of records that
    /// ends exactly at the end of the file ([`tail::latest_in_chain`]). `first_ts` is the file's
    /// first packet time (records far from it are not records). `None` when no such chain is
    /// found.
    pub fn last_ts_in_tail(&self, start: u64, bytes: &[u8], first_ts: u64) -> Option<u64> {
        let hl = self.record_header;
        let be = self.variant.big_endian;
        let frac_max = if self.variant.nanos {
            1_000_000_000
        } else {
            1_000_000
        };
        // Drop whatever lies in the file header.
        let skip = (FILE_HEADER as u64).saturating_sub(start) as usize;
        let bytes = bytes.get(skip..)?;
        let whole = start + skip as u64 == FILE_HEADER as u64;
        let record = |at: usize| -> Option<(usize, u64)> {
            let h = bytes.get(at..at + hl)?;
            let (sec, frac) = (u32_at(h, 0, be) as u64, u32_at(h, 4, be) as u64);
            let (caplen, len) = (u32_at(h, 8, be) as usize, u32_at(h, 12, be) as usize);
            let sane = frac < frac_max && caplen <= self.max_caplen && caplen <= len;
            let ts = sec * 1_000_000_000 + frac * self.frac_ns;
            (sane && tail::near(ts, first_ts)).then_some((hl + caplen, ts))
        };
        tail::latest_in_chain(bytes.len(), hl, whole, record)
    }

    /// Irregularities of the file header (the records were read anyway).
    pub fn anomalies(&self) -> &Anomalies {
        &self.anomalies
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Format;
    use std::io::Cursor;

    /// A little- or big-endian microsecond pcap with records of the given data lengths.
    fn pcap(big_endian: bool, lens: &[usize]) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w(0xa1b2_c3d4));
        out.extend_from_slice(&if big_endian {
            [0, 2, 0, 4]
        } else {
            [2, 0, 4, 0]
        });
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&w(65535));
        out.extend_from_slice(&w(1));
        for (i, &len) in lens.iter().enumerate() {
            for v in [100 + i as u32, 7, len as u32, len as u32 + 4] {
                out.extend_from_slice(&w(v));
            }
            out.resize(out.len() + len, i as u8);
        }
        out
    }

    fn open(bytes: Vec<u8>, capacity: usize) -> PcapReader {
        let Some(Format::Pcap(variant)) = Format::sniff(&bytes) else {
            panic!("not pcap");
        };
        PcapReader::open(
            ReadBuffer::new(Box::new(Cursor::new(bytes)), capacity),
            variant,
        )
        .unwrap()
    }

    #[test]
    fn records_read_alike_whatever_the_buffer_and_byte_order() {
        let lens = [60, 1514, 0, 300, 9000, 42];
        for big_endian in [false, true] {
            for capacity in [64, 1000, 1 << 20] {
                let mut r = open(pcap(big_endian, &lens), capacity);
                for (i, &len) in lens.iter().enumerate() {
                    assert!(r.advance().unwrap(), "record {i}");
                    let p = r.packet();
                    assert_eq!(p.ts_ns, (100 + i as u64) * 1_000_000_000 + 7_000);
                    assert_eq!((p.data.len(), p.len as usize), (len, len + 4));
                    assert!(p.data.iter().all(|&b| b == i as u8));
                }
                assert!(!r.advance().unwrap());
                assert!(!r.advance().unwrap());
            }
        }
    }

    #[test]
    fn damage_is_reported_at_its_offset_after_the_intact_records() {
        let mut bytes = pcap(false, &[100, 100, 100]);
        bytes.truncate(bytes.len() - 10);
        let mut r = open(bytes, 1 << 20);
        assert!(r.advance().unwrap());
        assert!(r.advance().unwrap());
        let e = r.advance().unwrap_err();
        assert_eq!(e.offset, 24 + 2 * 116);
        assert!(e.message.contains("cut short"), "{e}");
        assert!(!r.advance().unwrap());

        let mut bytes = pcap(false, &[100, 100]);
        let second = 24 + 116;
        bytes[second + 8..second + 12].copy_from_slice(&(100u32 << 20).to_le_bytes());
        let mut r = open(bytes, 1 << 20);
        assert!(r.advance().unwrap());
        let e = r.advance().unwrap_err();
        assert_eq!(e.offset, second as u64);
        assert!(e.message.contains("exceeds the limit"), "{e}");
    }

    /// The latest time the chain search finds in the bytes of `bytes` from `from` on.
    fn tail_latest(bytes: &[u8], from: usize) -> Option<u64> {
        let mut r = open(bytes.to_vec(), 1 << 20);
        assert!(r.advance().unwrap());
        r.last_ts_in_tail(from as u64, &bytes[from..], r.ts())
    }

    #[test]
    fn the_last_records_are_the_chain_that_ends_at_the_end_of_the_file() {
        // Records of varied lengths whose data looks like record headers (times near the file's).
        let lens: Vec<usize> = (0..300).map(|i| 16 + (i * 37) % 900).collect();
        for big_endian in [false, true] {
            let mut bytes = pcap(big_endian, &lens);
            let mut at = 24;
            for &len in &lens {
                let fake = [100u32, 7, 16, 16];
                for (k, v) in fake.iter().enumerate() {
                    let b = if big_endian {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    };
                    bytes[at + 16 + 4 * k..at + 20 + 4 * k].copy_from_slice(&b);
                }
                at += 16 + len;
            }
            let latest = Some((100 + 299) * 1_000_000_000 + 7_000);
            assert_eq!(tail_latest(&bytes, 0), latest, "the whole file");
            assert_eq!(tail_latest(&bytes, bytes.len() - 20_000), latest, "its end");
            let mut cut = bytes.clone();
            cut.truncate(cut.len() - 3);
            assert_eq!(tail_latest(&cut, cut.len() - 20_000), None, "cut short");
        }
    }
}
