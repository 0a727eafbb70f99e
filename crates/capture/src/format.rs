//! The pcap stream format shardcap writes: little-endian, microsecond or nanosecond magic.

use std::io;

use crate::Packet;

/// Global header of an output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    /// Link type of every record.
    pub linktype: u32,
    /// Nanosecond timestamps (else microseconds).
    pub nanos: bool,
    /// Snapshot length announced.
    pub snaplen: u32,
}

/// Size of the pcap file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Size of a pcap record header.
pub const RECORD_HEADER_LEN: usize = 16;

impl StreamHeader {
    /// The 24-byte pcap file header.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut h = [0u8; FILE_HEADER_LEN];
        let magic: u32 = if self.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&self.snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&self.linktype.to_le_bytes());
        h
    }

    /// The record header of a packet captured at `ts_ns`.
    #[inline(always)]
    pub fn record_header(&self, ts_ns: u64, caplen: usize, len: u32) -> [u8; RECORD_HEADER_LEN] {
        let sec = ts_ns / 1_000_000_000;
        let sub = ts_ns % 1_000_000_000;
        let frac = if self.nanos { sub } else { sub / 1000 };
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&(sec as u32).to_le_bytes());
        h[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        h
    }

    /// Appends one record (header and data) to `out`.
    #[inline(always)]
    pub fn append_record(&self, out: &mut Vec<u8>, pkt: &Packet) {
        let h = self.record_header(pkt.ts_ns, pkt.data.len(), pkt.len);
        // One capacity check for header and data, then two plain copies.
        let n = RECORD_HEADER_LEN + pkt.data.len();
        out.reserve(n);
        let at = out.len();
        // SAFETY: `reserve` left room for `n` more bytes after `at`; the two copies fill exactly
        // `at..at + n` from buffers that cannot overlap `out`'s spare capacity.
        unsafe {
            let dst = out.as_mut_ptr().add(at);
            std::ptr::copy_nonoverlapping(h.as_ptr(), dst, RECORD_HEADER_LEN);
            std::ptr::copy_nonoverlapping(
                pkt.data.as_ptr(),
                dst.add(RECORD_HEADER_LEN),
                pkt.data.len(),
            );
            out.set_len(at + n);
        }
    }
}

/// Length of the record starting at `at` in a buffer of whole records.
pub fn record_len(buf: &[u8], at: usize) -> io::Result<usize> {
    let caplen = buf
        .get(at + 8..at + 12)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
    match caplen {
        Some(c) if at + RECORD_HEADER_LEN + c <= buf.len() => Ok(RECORD_HEADER_LEN + c),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a buffer of {} bytes ends inside the record at byte {at}",
                buf.len()
            ),
        )),
    }
}
