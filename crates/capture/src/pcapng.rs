//! pcapng reader, parsed in place: sections of either byte order (a new section header resets the
//! interfaces and may switch byte order), interfaces with their own link type, `if_tsresol` and
//! `if_tsoffset`, and the three packet blocks (EPB, SPB, the obsolete PB). Every other block is
//! skipped by its length without being buffered.
//!
//! A Simple Packet Block carries no timestamp: it gets the timestamp of the packet before it in the
//! file (0 when it is the file's first packet), so it keeps its place in a time-ordered merge.
//!
//! Damage is a [`ReadError`] at the offset of the block it is in. A trailing block length that
//! disagrees with the leading one is only noted (the leading one is sane and is followed), as is a
//! section version other than 1.x and interface options that run past their block.

use super::buffer::ReadBuffer;
use super::bytes::{i64_at, u16_at, u32_at};
use super::tail;
use super::{Anomalies, Packet, ReadError, MAX_CAPLEN};

const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE: u32 = 0x0000_0001;
const OBSOLETE_PACKET: u32 = 0x0000_0002;
const SIMPLE_PACKET: u32 = 0x0000_0003;
const ENHANCED_PACKET: u32 = 0x0000_0006;
/// Byte-order magic of a section header, as read in the section's byte order.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// Largest section header or interface block accepted (they are read whole).
const MAX_META_BLOCK: usize = 1 << 20;
/// Most interface descriptions accepted in one section (more is damage).
pub const MAX_INTERFACES: usize = 65_536;
/// Room allowed for options after a packet's data.
const OPTIONS_ROOM: usize = 64 << 10;
/// Largest snapshot length that widens the packet block limit.
const MAX_SNAPLEN: usize = 64 << 20;
/// Fixed part of an EPB or PB before the data (type, length, interface, timestamp, lengths).
const PACKET_HEADER: usize = 28;
/// Fixed part of an SPB before the data (type, length, original length).
const SIMPLE_HEADER: usize = 12;
const NS_PER_S: i128 = 1_000_000_000;

/// How an interface's timestamp ticks convert to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickUnit {
    /// 10^-v with v <= 9: multiply.
    Mul(u64),
    /// 10^-v with v > 9: divide (truncating).
    Div(u128),
    /// 2^-n: multiply by 10^9, shift right by n (truncating).
    Pow2(u32),
}

impl TickUnit {
    /// From the `if_tsresol` byte (default 6: microseconds).
    fn from_tsresol(v: u8) -> Self {
        if v & 0x80 != 0 {
            TickUnit::Pow2(u32::from(v & 0x7f))
        } else if v <= 9 {
            TickUnit::Mul(10u64.pow(9 - u32::from(v)))
        } else {
            // 10^38 already turns every u64 tick count into 0; larger exponents would overflow.
            TickUnit::Div(10u128.pow((u32::from(v) - 9).min(38)))
        }
    }

    /// True when a tick is shorter than a microsecond.
    fn sub_micro(self) -> bool {
        match self {
            TickUnit::Mul(m) => m < 1000,
            TickUnit::Div(_) => true,
            TickUnit::Pow2(n) => n >= 20,
        }
    }

    #[inline(always)]
    fn to_ns(self, ticks: u64) -> i128 {
        let t = i128::from(ticks);
        match self {
            TickUnit::Mul(m) => t * i128::from(m),
            TickUnit::Div(d) => (ticks as u128 / d) as i128,
            TickUnit::Pow2(n) => ((ticks as u128 * NS_PER_S as u128) >> n) as i128,
        }
    }
}

/// One interface of the current section.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    /// 0: no limit.
    snaplen: u32,
    unit: TickUnit,
    /// `if_tsoffset` in nanoseconds.
    offset_ns: i128,
}

impl Interface {
    /// Timestamp in ns since the epoch, saturated to the u64 range.
    #[inline(always)]
    fn ts_ns(&self, ticks: u64) -> u64 {
        (self.unit.to_ns(ticks) + self.offset_ns).clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// Reads packet blocks of a pcapng stream as slices of its read buffer.
pub struct PcapNgReader {
    buf: ReadBuffer,
    /// Byte order of the current section.
    big_endian: bool,
    /// Interfaces of the current section, by id.
    interfaces: Vec<Interface>,
    /// Largest packet block accepted in the current section.
    max_packet_block: usize,
    /// Distinct link types of every interface seen, in first-seen order.
    linktypes: Vec<u32>,
    nanos: bool,
    snaplen: u32,
    anomalies: Anomalies,
    /// Length of the current block at the front of the buffer; 0 before the first packet.
    current: usize,
    data_at: usize,
    caplen: u32,
    len: u32,
    linktype: u32,
    ts_ns: u64,
    done: bool,
}

impl PcapNgReader {
    /// Parses the first section header block; the stream must start with the pcapng magic.
    pub fn open(buf: ReadBuffer) -> Result<Self, ReadError> {
        let mut r = PcapNgReader {
            buf,
            big_endian: false,
            interfaces: Vec::new(),
            max_packet_block: 0,
            linktypes: Vec::new(),
            nanos: false,
            snaplen: 0,
            anomalies: Anomalies::default(),
            current: 0,
            data_at: 0,
            caplen: 0,
            len: 0,
            linktype: 0,
            ts_ns: 0,
            done: false,
        };
        r.section_header()?;
        Ok(r)
    }

    /// Moves to the next packet; `Ok(false)` at the clean end.
    #[inline]
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        self.buf.consume(self.current);
        self.current = 0;
        if self.done {
            return Ok(false);
        }
        loop {
            let step = match self.block_type()? {
                None => {
                    self.done = true;
                    return Ok(false);
                }
                Some(ENHANCED_PACKET | OBSOLETE_PACKET | SIMPLE_PACKET) => {
                    return self.packet_block().map(|()| true).map_err(|e| self.fail(e));
                }
                Some(SECTION_HEADER) => self.section_header(),
                Some(INTERFACE) => self.interface(),
                Some(_) => self.skip_block(),
            };
            step.map_err(|e| self.fail(e))?;
        }
    }

    fn fail(&mut self, e: ReadError) -> ReadError {
        self.done = true;
        self.current = 0;
        e
    }

    /// Type of the next block, `None` at the clean end of the stream.
    #[inline(always)]
    fn block_type(&mut self) -> Result<Option<u32>, ReadError> {
        let at = self.buf.offset();
        if !self
            .buf
            .ensure(8)
            .map_err(|e| self.fail(ReadError::io(at, e)))?
        {
            return match self.buf.available() {
                0 => Ok(None),
                n => Err(self.fail(ReadError::new(
                    at,
                    format!("block header cut short ({n} of 8 bytes)"),
                ))),
            };
        }
        Ok(Some(u32_at(self.buf.data(), 0, self.big_endian)))
    }

    /// Checks the leading length of the block at the front (at least `min`, at most `max`) and
    /// returns it.
    #[inline(always)]
    fn block_len(&self, what: &str, min: usize, max: usize) -> Result<usize, ReadError> {
        let at = self.buf.offset();
        let len = u32_at(self.buf.data(), 4, self.big_endian) as usize;
        if len % 4 != 0 || len < min {
            return Err(ReadError::new(
                at,
                format!(
                    "{what} block length {len} is invalid (a multiple of 4, at least {min}): corrupt block"
                ),
            ));
        }
        if len > max {
            return Err(ReadError::new(
                at,
                format!("{what} block length {len} exceeds the limit {max}: corrupt block"),
            ));
        }
        Ok(len)
    }

    /// Makes the whole block of `len` bytes at the front available and checks its trailing length.
    #[inline(always)]
    fn load(&mut self, what: &str, len: usize) -> Result<(), ReadError> {
        let at = self.buf.offset();
        if !self.buf.ensure(len).map_err(|e| ReadError::io(at, e))? {
            return Err(ReadError::new(
                at,
                format!(
                    "{what} block cut short ({} of {len} bytes)",
                    self.buf.available()
                ),
            ));
        }
        self.check_trailer(at, len, u32_at(self.buf.data(), len - 4, self.big_endian));
        Ok(())
    }

    #[inline(always)]
    fn check_trailer(&mut self, at: u64, len: usize, trailer: u32) {
        if trailer as usize != len {
            self.note_trailer(at, len, trailer);
        }
    }

    #[cold]
    fn note_trailer(&mut self, at: u64, len: usize, trailer: u32) {
        self.anomalies.note(ReadError::new(
            at,
            format!("trailing block length {trailer} differs from the leading {len}; followed the leading one"),
        ));
    }

    /// The packet block at the front: EPB, SPB or PB.
    #[inline(always)]
    fn packet_block(&mut self) -> Result<(), ReadError> {
        let at = self.buf.offset();
        let be = self.big_endian;
        let ty = u32_at(self.buf.data(), 0, be);
        let (what, header) = match ty {
            ENHANCED_PACKET => ("enhanced packet", PACKET_HEADER),
            OBSOLETE_PACKET => ("packet", PACKET_HEADER),
            _ => ("simple packet", SIMPLE_HEADER),
        };
        if self.interfaces.is_empty() {
            return Err(ReadError::new(
                at,
                format!("{what} block before any interface description in its section"),
            ));
        }
        let len = self.block_len(what, header + 4, self.max_packet_block)?;
        self.load(what, len)?;
        let b = self.buf.data();
        let space = len - header - 4;
        let (iface_id, caplen, orig) = match ty {
            ENHANCED_PACKET => (u32_at(b, 8, be), u32_at(b, 20, be), u32_at(b, 24, be)),
            OBSOLETE_PACKET => (
                u32::from(u16_at(b, 8, be)),
                u32_at(b, 20, be),
                u32_at(b, 24, be),
            ),
            _ => (0, 0, u32_at(b, 8, be)),
        };
        let Some(iface) = self.interfaces.get(iface_id as usize) else {
            return Err(ReadError::new(
                at,
                format!(
                    "{what} on interface {iface_id}, but the section defines {} interface(s)",
                    self.interfaces.len()
                ),
            ));
        };
        let (caplen, ts_ns) = if ty == SIMPLE_PACKET {
            let snap = match iface.snaplen {
                0 => u32::MAX,
                s => s,
            };
            (orig.min(snap).min(space as u32), self.ts_ns)
        } else {
            if caplen as usize > space {
                return Err(ReadError::new(
                    at,
                    format!("captured length {caplen} exceeds the {space} data bytes of its {what} block: corrupt block"),
                ));
            }
            let ticks = u64::from(u32_at(b, 12, be)) << 32 | u64::from(u32_at(b, 16, be));
            (caplen, iface.ts_ns(ticks))
        };
        self.linktype = iface.linktype;
        self.data_at = header;
        self.caplen = caplen;
        self.len = orig;
        self.ts_ns = ts_ns;
        self.current = len;
        Ok(())
    }

    /// The section header at the front: byte order, version; starts a new interface list.
    #[cold]
    fn section_header(&mut self) -> Result<(), ReadError> {
        let at = self.buf.offset();
        let ensured = self.buf.ensure(12).map_err(|e| ReadError::io(at, e))?;
        let magic = self.buf.data().get(8..12).unwrap_or_default();
        self.big_endian = match magic {
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            _ if !ensured => {
                return Err(ReadError::new(
                    at,
                    format!(
                        "section header cut short ({} of 12 bytes)",
                        self.buf.available()
                    ),
                ))
            }
            m => {
                return Err(ReadError::new(
                    at + 8,
                    format!(
                        "section header byte-order magic {:02x}{:02x}{:02x}{:02x} is not 1a2b3c4d in either byte order: corrupt block",
                        m[0], m[1], m[2], m[3]
                    ),
                ))
            }
        };
        debug_assert_eq!(
            u32_at(self.buf.data(), 8, self.big_endian),
            BYTE_ORDER_MAGIC
        );
        let len = self.block_len("section header", 28, MAX_META_BLOCK)?;
        self.load("section header", len)?;
        let b = self.buf.data();
        let (major, minor) = (
            u16_at(b, 12, self.big_endian),
            u16_at(b, 14, self.big_endian),
        );
        if major != 1 {
            self.anomalies.note(ReadError::new(
                at + 12,
                format!("pcapng version {major}.{minor} is not 1.x; read as 1.0"),
            ));
        }
        self.interfaces.clear();
        self.max_packet_block = 0;
        self.buf.consume(len);
        Ok(())
    }

    /// The interface description at the front: link type, snapshot length, resolution, offset.
    #[cold]
    fn interface(&mut self) -> Result<(), ReadError> {
        let at = self.buf.offset();
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(ReadError::new(
                at,
                format!(
                    "more than {MAX_INTERFACES} interface descriptions in one section: corrupt block"
                ),
            ));
        }
        let len = self.block_len("interface description", 20, MAX_META_BLOCK)?;
        self.load("interface description", len)?;
        let be = self.big_endian;
        let b = self.buf.data();
        let mut iface = Interface {
            linktype: u32::from(u16_at(b, 8, be)),
            snaplen: u32_at(b, 12, be),
            unit: TickUnit::from_tsresol(6),
            offset_ns: 0,
        };
        let mut pos = 16;
        let end = len - 4;
        while pos + 4 <= end {
            let code = u16_at(b, pos, be);
            let olen = usize::from(u16_at(b, pos + 2, be));
            let value = pos + 4;
            if code == 0 {
                break;
            }
            if value + olen > end {
                self.anomalies.note(ReadError::new(
                    at + pos as u64,
                    format!("interface option {code} of {olen} bytes runs past its block; ignored the rest"),
                ));
                break;
            }
            match (code, olen) {
                (9, 1..) => iface.unit = TickUnit::from_tsresol(b[value]),
                (14, 8..) => iface.offset_ns = i128::from(i64_at(b, value, be)) * NS_PER_S,
                _ => {}
            }
            pos = value + olen.next_multiple_of(4);
        }
        self.add_interface(iface);
        self.buf.consume(len);
        Ok(())
    }

    fn add_interface(&mut self, iface: Interface) {
        if !self.linktypes.contains(&iface.linktype) {
            self.linktypes.push(iface.linktype);
        }
        self.nanos |= iface.unit.sub_micro();
        self.snaplen = self.snaplen.max(iface.snaplen);
        let snap = (iface.snaplen as usize).min(MAX_SNAPLEN);
        let block = PACKET_HEADER + MAX_CAPLEN.max(snap) + 4 + OPTIONS_ROOM;
        self.max_packet_block = self.max_packet_block.max(block);
        self.interfaces.push(iface);
    }

    /// Any other block: skipped by its length, read through rather than buffered whole.
    #[cold]
    fn skip_block(&mut self) -> Result<(), ReadError> {
        let at = self.buf.offset();
        let ty = u32_at(self.buf.data(), 0, self.big_endian);
        let what = format!("type {ty:#010x}");
        let len = self.block_len(&what, 12, u32::MAX as usize)?;
        let cut = |have: u64| {
            ReadError::new(
                at,
                format!("{what} block cut short ({have} of {len} bytes)"),
            )
        };
        let start = self.buf.offset();
        if !self
            .buf
            .skip(len as u64 - 4)
            .map_err(|e| ReadError::io(at, e))?
        {
            return Err(cut(self.buf.offset() - start));
        }
        if !self.buf.ensure(4).map_err(|e| ReadError::io(at, e))? {
            return Err(cut(self.buf.offset() - start + self.buf.available() as u64));
        }
        let trailer = u32_at(self.buf.data(), 0, self.big_endian);
        self.buf.consume(4);
        self.check_trailer(at, len, trailer);
        Ok(())
    }

    /// Timestamp of the current packet.
    #[inline(always)]
    pub fn ts(&self) -> u64 {
        self.ts_ns
    }

    /// The current packet.
    #[inline(always)]
    pub fn packet(&self) -> Packet<'_> {
        Packet {
            ts_ns: self.ts_ns,
            len: self.len,
            linktype: self.linktype,
            data: &self.buf.data()[self.data_at..self.data_at + self.caplen as usize],
        }
    }

    /// Stream offset of the current block (of the next one before the first advance).
    pub fn record_offset(&self) -> u64 {
        self.buf.offset()
    }

    /// Distinct link types of the interfaces seen so far, in first-seen order.
    pub fn linktypes(&self) -> &[u32] {
        &self.linktypes
    }

    /// True when an interface seen so far has a resolution finer than microseconds.
    pub fn nanos(&self) -> bool {
        self.nanos
    }

    /// Largest snapshot length among the interfaces seen so far (0: unlimited).
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Irregularities read past so far.
    pub fn anomalies(&self) -> &Anomalies {
        &self.anomalies
    }

    /// The latest packet time among the packet blocks that fill `bytes`, the last bytes of the
    /// file starting at file offset `start`, walked back from the end of the file by each block's
    /// trailing length, read with the byte order and interfaces of the section read so far
    /// (after the first packet). `first_ts` is the file's first packet time. `None` when the walk
    /// meets anything it cannot vouch for: lengths that disagree, a packet on an interface not
    /// known, a later section, a time before the file's start, or no timestamped packet at all.
    pub fn last_ts_in_tail(&self, start: u64, bytes: &[u8], first_ts: u64) -> Option<u64> {
        let be = self.big_endian;
        let mut end = bytes.len();
        let mut latest: Option<u64> = None;
        while end >= 12 {
            let len = u32_at(bytes, end - 4, be) as usize;
            if len % 4 != 0 || len < 12 {
                return None;
            }
            let Some(at) = end.checked_sub(len) else {
                // The block starts before the bytes read: far enough.
                break;
            };
            if u32_at(bytes, at + 4, be) as usize != len {
                return None;
            }
            match u32_at(bytes, at, be) {
                ty @ (ENHANCED_PACKET | OBSOLETE_PACKET) => {
                    if len < PACKET_HEADER + 4
                        || u32_at(bytes, at + 20, be) as usize > len - PACKET_HEADER - 4
                    {
                        return None;
                    }
                    let iface = match ty {
                        ENHANCED_PACKET => u32_at(bytes, at + 8, be),
                        _ => u32::from(u16_at(bytes, at + 8, be)),
                    };
                    let ticks = u64::from(u32_at(bytes, at + 12, be)) << 32
                        | u64::from(u32_at(bytes, at + 16, be));
                    let ts = self.interfaces.get(iface as usize)?.ts_ns(ticks);
                    if ts == u64::MAX || !tail::near(ts, first_ts) {
                        return None;
                    }
                    latest = Some(latest.map_or(ts, |l| l.max(ts)));
                }
                // The file's own first section: its start.
                SECTION_HEADER if start + at as u64 == 0 => break,
                SECTION_HEADER => return None,
                _ => {}
            }
            end = at;
        }
        latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Builds pcapng blocks in one byte order.
    struct Writer {
        be: bool,
        out: Vec<u8>,
    }

    impl Writer {
        fn new(be: bool) -> Self {
            Writer {
                be,
                out: Vec::new(),
            }
        }

        fn u16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        fn u32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        fn block(&mut self, ty: u32, body: &[u8]) -> &mut Self {
            let len = 12 + body.len().next_multiple_of(4);
            let (t, l) = (self.u32(ty), self.u32(len as u32));
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(body);
            self.out.resize(self.out.len() + len - 12 - body.len(), 0);
            self.out.extend_from_slice(&l);
            self
        }

        fn shb(&mut self) -> &mut Self {
            let mut b = self.u32(BYTE_ORDER_MAGIC).to_vec();
            b.extend(self.u16(1));
            b.extend(self.u16(0));
            b.extend([0xff; 8]);
            self.block(SECTION_HEADER, &b)
        }

        /// An IDB; `opts` are (code, value) pairs.
        fn idb(&mut self, linktype: u16, snaplen: u32, opts: &[(u16, Vec<u8>)]) -> &mut Self {
            let mut b = self.u16(linktype).to_vec();
            b.extend(self.u16(0));
            b.extend(self.u32(snaplen));
            for (code, v) in opts {
                b.extend(self.u16(*code));
                b.extend(self.u16(v.len() as u16));
                b.extend(v);
                b.resize(b.len().next_multiple_of(4), 0);
            }
            if !opts.is_empty() {
                b.extend([0; 4]);
            }
            self.block(INTERFACE, &b)
        }

        fn epb(&mut self, iface: u32, ticks: u64, data: &[u8], orig: u32) -> &mut Self {
            let mut b = self.u32(iface).to_vec();
            b.extend(self.u32((ticks >> 32) as u32));
            b.extend(self.u32(ticks as u32));
            b.extend(self.u32(data.len() as u32));
            b.extend(self.u32(orig));
            b.extend(data);
            self.block(ENHANCED_PACKET, &b)
        }

        fn spb(&mut self, data: &[u8], orig: u32) -> &mut Self {
            let mut b = self.u32(orig).to_vec();
            b.extend(data);
            self.block(SIMPLE_PACKET, &b)
        }

        fn pb(&mut self, iface: u16, ticks: u64, data: &[u8]) -> &mut Self {
            let mut b = self.u16(iface).to_vec();
            b.extend(self.u16(0));
            b.extend(self.u32((ticks >> 32) as u32));
            b.extend(self.u32(ticks as u32));
            b.extend(self.u32(data.len() as u32));
            b.extend(self.u32(data.len() as u32));
            b.extend(data);
            self.block(OBSOLETE_PACKET, &b)
        }

        fn offset(&self, secs: i64) -> Vec<u8> {
            if self.be {
                secs.to_be_bytes().to_vec()
            } else {
                secs.to_le_bytes().to_vec()
            }
        }
    }

    fn reader(bytes: Vec<u8>) -> Result<PcapNgReader, ReadError> {
        // A small buffer makes blocks straddle refills.
        PcapNgReader::open(ReadBuffer::new(Box::new(Cursor::new(bytes)), 64))
    }

    /// (ts, linktype, len, data) of every packet, and the error that ended the stream if any.
    type Seen = (u64, u32, u32, Vec<u8>);

    fn read_all(bytes: Vec<u8>) -> (Vec<Seen>, Option<ReadError>, PcapNgReader) {
        let mut r = reader(bytes).expect("open");
        let mut seen = Vec::new();
        loop {
            match r.advance() {
                Ok(true) => {
                    let p = r.packet();
                    assert_eq!(p.ts_ns, r.ts());
                    seen.push((p.ts_ns, p.linktype, p.len, p.data.to_vec()));
                }
                Ok(false) => return (seen, None, r),
                Err(e) => {
                    assert!(!r.advance().unwrap(), "no packets after an error");
                    return (seen, Some(e), r);
                }
            }
        }
    }

    #[test]
    fn sections_of_both_byte_orders_reset_interfaces() {
        let mut w = Writer::new(false);
        w.shb()
            .idb(1, 0, &[])
            .epb(0, 1_500_000, b"abcde", 60)
            .block(0x0000_0BAD, b"custom")
            .block(4, b"name resolution");
        let mut bytes = w.out;
        let mut w = Writer::new(true);
        w.shb()
            .idb(101, 0, &[(9, vec![9])])
            .block(5, b"stats")
            .epb(0, 7, b"xyz", 3)
            .pb(0, 8, b"old");
        bytes.extend(w.out);
        let (seen, err, r) = read_all(bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            seen,
            vec![
                (1_500_000_000, 1, 60, b"abcde".to_vec()),
                (7, 101, 3, b"xyz".to_vec()),
                (8, 101, 3, b"old".to_vec()),
            ]
        );
        assert_eq!(r.linktypes(), &[1, 101]);
        assert!(r.nanos());
        assert!(r.anomalies().is_empty());
    }

    #[test]
    fn resolutions_and_offsets() {
        let mut w = Writer::new(false);
        let offset = w.offset(100);
        w.shb()
            .idb(1, 0, &[(9, vec![3]), (14, offset)])
            .idb(1, 0, &[(9, vec![0x88])])
            .idb(1, 0, &[(9, vec![12])])
            .idb(1, 0, &[(9, vec![0x9e])])
            .epb(0, 1234, b"", 0)
            .epb(1, 3 * 256 + 1, b"", 0)
            .epb(2, 123_456_789_012_345, b"", 0)
            .epb(3, 1 << 30, b"", 0);
        let (seen, err, r) = read_all(w.out);
        assert!(err.is_none(), "{err:?}");
        let ts: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(
            ts,
            [
                100_000_000_000 + 1_234_000_000,
                3_000_000_000 + 3_906_250,
                123_456_789_012,
                1_000_000_000,
            ]
        );
        assert!(r.nanos(), "2^-30 and 10^-12 are finer than a microsecond");

        let mut w = Writer::new(true);
        w.shb().idb(1, 0, &[(9, vec![0x88])]).epb(0, 1, b"", 0);
        let (_, _, r) = read_all(w.out);
        assert!(!r.nanos(), "2^-8 is coarser than a microsecond");
    }

    #[test]
    fn simple_packets_take_the_previous_timestamp_and_the_snaplen() {
        let mut w = Writer::new(false);
        w.shb()
            .idb(1, 4, &[])
            .spb(b"abcdef", 6)
            .epb(0, 9, b"ab", 6)
            .spb(b"abcdef", 6)
            .spb(b"ab", 2);
        let (seen, err, _) = read_all(w.out);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            seen,
            vec![
                (0, 1, 6, b"abcd".to_vec()),
                (9_000, 1, 6, b"ab".to_vec()),
                (9_000, 1, 6, b"abcd".to_vec()),
                (9_000, 1, 2, b"ab".to_vec()),
            ]
        );
    }

    #[test]
    fn damage_is_an_error_at_the_block() {
        let mut w = Writer::new(false);
        w.shb().idb(1, 0, &[]).epb(0, 1, b"ok", 2);
        let good = w.out.len() as u64;

        // A packet on an interface the section does not define.
        let mut bad = Writer::new(false);
        bad.out = w.out.clone();
        bad.epb(3, 1, b"x", 1);
        let (seen, err, _) = read_all(bad.out);
        assert_eq!(seen.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.offset, good);
        assert!(err.message.contains("interface 3"), "{err}");

        // A packet before any interface of its section.
        let mut bad = Writer::new(true);
        bad.shb().spb(b"x", 1);
        let err = read_all(bad.out).1.unwrap();
        assert_eq!(err.offset, 28);
        assert!(err.message.contains("before any interface"), "{err}");

        // A captured length beyond the block.
        let mut bad = Writer::new(false);
        bad.out = w.out.clone();
        bad.epb(0, 1, b"abcd", 4);
        let at = good as usize;
        bad.out[at + 20..at + 24].copy_from_slice(&9u32.to_le_bytes());
        let (_, err, _) = read_all(bad.out);
        assert!(err.unwrap().message.contains("captured length 9"));

        // An absurd block length: an error, not a 4 GB buffer.
        let mut bytes = w.out.clone();
        bytes.extend(6u32.to_le_bytes());
        bytes.extend(0xffff_fff0u32.to_le_bytes());
        bytes.extend([0u8; 64]);
        let (seen, err, _) = read_all(bytes);
        assert_eq!(seen.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.offset, good);
        assert!(err.message.contains("exceeds the limit"), "{err}");

        // A length that is not a multiple of 4, and one cut short by the end of the file.
        for (len, what) in [(30u32, "invalid"), (40, "cut short")] {
            let mut bytes = w.out.clone();
            bytes.extend(6u32.to_le_bytes());
            bytes.extend(len.to_le_bytes());
            bytes.extend([0u8; 24]);
            let (seen, err, _) = read_all(bytes);
            assert_eq!(seen.len(), 1);
            assert!(err.unwrap().message.contains(what));
        }

        // An unknown block running past the end, and stray bytes at the end.
        let mut bytes = w.out.clone();
        bytes.extend(0x0BADu32.to_le_bytes());
        bytes.extend(4096u32.to_le_bytes());
        bytes.extend([0u8; 100]);
        assert!(read_all(bytes).1.unwrap().message.contains("cut short"));
        let mut bytes = w.out.clone();
        bytes.extend([1, 2, 3]);
        let err = read_all(bytes).1.unwrap();
        assert_eq!(err.offset, good);
    }

    #[test]
    fn mismatched_trailer_and_version_are_noted_not_fatal() {
        let mut w = Writer::new(false);
        w.shb()
            .idb(1, 0, &[])
            .epb(0, 1, b"ok", 2)
            .epb(0, 2, b"ok", 2);
        let n = w.out.len();
        w.out[n - 4] ^= 0xff;
        w.out[12] = 2;
        let (seen, err, r) = read_all(w.out);
        assert_eq!(seen.len(), 2);
        assert!(err.is_none(), "{err:?}");
        let lines = r.anomalies().lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("byte 12: pcapng version 2.0"));
        assert!(lines[1].contains("trailing block length"));
    }

    /// The latest time the tail walk finds in `bytes` read from `from` on, after the first packet.
    fn tail_latest(bytes: &[u8], from: usize) -> Option<u64> {
        let mut r = reader(bytes.to_vec()).unwrap();
        assert!(r.advance().unwrap());
        r.last_ts_in_tail(from as u64, &bytes[from..], r.ts())
    }

    #[test]
    fn the_tail_is_walked_back_by_block_lengths() {
        let mut w = Writer::new(true);
        w.shb().idb(1, 0, &[(9, vec![9])]);
        for i in 0..200u64 {
            // Out of order near the end: the latest is not the last.
            let t = 1_700_000_000_000_000_000 + if i == 190 { 500 } else { i };
            w.epb(0, t, &[i as u8; 61], 61).block(5, b"stats");
        }
        w.spb(b"no time", 7);
        let bytes = w.out.clone();
        let latest = Some(1_700_000_000_000_000_500);
        assert_eq!(tail_latest(&bytes, 0), latest, "the whole file");
        assert_eq!(tail_latest(&bytes, bytes.len() - 4000), latest, "its end");
        assert_eq!(
            tail_latest(&bytes, bytes.len() - 24),
            None,
            "no timed packet"
        );
        let mut cut = bytes.clone();
        cut.truncate(cut.len() - 6);
        assert_eq!(tail_latest(&cut, cut.len() - 4000), None, "cut short");
        // A later section: its interfaces are not those read at the head.
        w.shb().idb(1, 0, &[]).epb(0, 9, b"x", 1);
        assert_eq!(tail_latest(&w.out, 0), None);
    }
}
