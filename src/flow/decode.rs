//! Header decoding from the link layer to a flow key.

use super::hash::{fold, mix64};
use super::{FlowConfig, HashMode};

/// Link types.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The fields that identify a flow, sorted so that both directions give the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// Lower and higher endpoint addresses (IPv4 mapped into 16 bytes, or a MAC in 6).
    pub addr: [[u8; 16]; 2],
    /// Ports in the same order as the addresses.
    pub port: [u16; 2],
    /// IP protocol; 0 for non-IP frames.
    pub proto: u8,
    non_ip: bool,
}

impl FlowKey {
    fn new(a: [u8; 16], pa: u16, b: [u8; 16], pb: u16, proto: u8, non_ip: bool) -> Self {
        let (addr, port) = if (a, pa) <= (b, pb) {
            ([a, b], [pa, pb])
        } else {
            ([b, a], [pb, pa])
        };
        FlowKey {
            addr,
            port,
            proto,
            non_ip,
        }
    }

    /// True when no IP layer was found (keyed by MAC pair).
    pub fn is_non_ip(&self) -> bool {
        self.non_ip
    }

    /// The symmetric hash for `mode`.
    #[inline(always)]
    pub fn hash(&self, mode: HashMode) -> u64 {
        let mut h = fold(fold(0x5eed, &self.addr[0]), &self.addr[1]);
        if mode != HashMode::Two {
            h = mix64(h ^ ((self.port[0] as u64) << 16 | self.port[1] as u64));
        }
        if mode == HashMode::Five {
            h = mix64(h ^ self.proto as u64);
        }
        h
    }
}

fn v4(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&b[..4]);
    a
}

/// Decodes a packet to its flow key.
pub fn flow_key(linktype: u32, data: &[u8], _cfg: FlowConfig) -> FlowKey {
    let mac_key = || {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        if data.len() >= 12 {
            a[..6].copy_from_slice(&data[..6]);
            b[..6].copy_from_slice(&data[6..12]);
        }
        FlowKey::new(a, 0, b, 0, 0, true)
    };
    if linktype != LINKTYPE_ETHERNET || data.len() < 14 {
        return mac_key();
    }
    let ethertype = u16::from_be_bytes([data[12], data[13]]);
    let ip = &data[14..];
    match ethertype {
        0x0800 if ip.len() >= 20 => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let proto = ip[9];
            let (sp, dp) = ports(ip.get(ihl..).unwrap_or(&[]));
            FlowKey::new(v4(&ip[12..16]), sp, v4(&ip[16..20]), dp, proto, false)
        }
        0x86dd if ip.len() >= 40 => {
            let proto = ip[6];
            let (sp, dp) = ports(&ip[40..]);
            FlowKey::new(
                ip[8..24].try_into().unwrap(),
                sp,
                ip[24..40].try_into().unwrap(),
                dp,
                proto,
                false,
            )
        }
        _ => mac_key(),
    }
}

fn ports(l4: &[u8]) -> (u16, u16) {
    if l4.len() >= 4 {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    } else {
        (0, 0)
    }
}
