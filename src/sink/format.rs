//! The pcap stream format shardcap writes: little-endian, microsecond or nanosecond magic.

use crate::input::Packet;

/// Global header of an output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    pub linktype: u32,
    pub nanos: bool,
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

    /// Appends one record (header and data) to `out`.
    #[inline(always)]
    pub fn append_record(&self, out: &mut Vec<u8>, pkt: &Packet) {
        let sec = pkt.ts_ns / 1_000_000_000;
        let sub = pkt.ts_ns % 1_000_000_000;
        let frac = if self.nanos { sub } else { sub / 1000 };
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&(sec as u32).to_le_bytes());
        h[4..8].copy_from_slice(&(frac as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(pkt.data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&pkt.len.to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(pkt.data);
    }
}
