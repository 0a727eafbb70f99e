//! ARP: a request and its reply are keyed by the protocol addresses they carry (sender and
//! target), not by their MAC pair, since a request goes to broadcast and its reply to a station.

use super::ip::mapped;
use super::key::FlowKey;
use super::wire::{be16, bytes, u8_at};

const PTYPE_IPV4: u16 = 0x0800;

/// The key of an ARP packet for IPv4 (its sender and target protocol addresses, as an address pair
/// like IP's), or `None` for another protocol type or a truncated header.
pub fn key(d: &[u8]) -> Option<FlowKey> {
    if be16(d, 2)? != PTYPE_IPV4 || u8_at(d, 5)? != 4 {
        return None;
    }
    let hlen = u8_at(d, 4)? as usize;
    let spa = bytes::<4>(d, 8 + hlen)?;
    let tpa = bytes::<4>(d, 8 + 2 * hlen + 4)?;
    Some(FlowKey::new(mapped(spa), 0, mapped(tpa), 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{arp, v4, A4, B4, MAC_A, MAC_B};

    #[test]
    fn request_and_reply_share_a_key() {
        let req = arp(1, MAC_A, A4, [0; 6], B4);
        let reply = arp(2, MAC_B, B4, MAC_A, A4);
        assert_eq!(key(&req), key(&reply));
        assert_eq!(key(&req), Some(FlowKey::new(v4(A4), 0, v4(B4), 0, 0)));
    }

    #[test]
    fn other_protocols_and_short_headers_have_no_key() {
        let mut other = arp(1, MAC_A, A4, [0; 6], B4);
        other[2] = 0x86;
        other[3] = 0xdd;
        assert_eq!(key(&other), None);
        let req = arp(1, MAC_A, A4, [0; 6], B4);
        for cut in 0..req.len() {
            assert_eq!(key(&req[..cut]), None, "cut at {cut}");
        }
    }
}
