//! The flow key: the fields that name a flow, sorted so that both directions give the same key,
//! and its hash for each hash mode.

use super::hash::{addr_words, words5};
use super::HashMode;

/// Endpoints sorted by (address, port), and the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKey {
    addr: [[u8; 16]; 2],
    port: [u16; 2],
    proto: u8,
}

impl FlowKey {
    /// The key of a flow between `(a, pa)` and `(b, pb)` over `proto`, in either direction.
    #[inline(always)]
    pub fn new(a: [u8; 16], pa: u16, b: [u8; 16], pb: u16, proto: u8) -> Self {
        let (addr, port) = if (a, pa) <= (b, pb) {
            ([a, b], [pa, pb])
        } else {
            ([b, a], [pb, pa])
        };
        FlowKey { addr, port, proto }
    }

    /// The key of a non-IP frame: its MAC pair.
    pub fn macs(a: [u8; 6], b: [u8; 6]) -> Self {
        let pad = |m: [u8; 6]| {
            let mut a = [0u8; 16];
            a[..6].copy_from_slice(&m);
            a
        };
        FlowKey::new(pad(a), 0, pad(b), 0, 0)
    }

    /// The symmetric hash: addresses (2-tuple), plus ports (4-tuple), plus protocol (5-tuple).
    #[inline(always)]
    pub fn hash(&self, mode: HashMode) -> u64 {
        let [a0, a1] = addr_words(&self.addr[0]);
        let [b0, b1] = addr_words(&self.addr[1]);
        let ports = (self.port[0] as u64) << 16 | self.port[1] as u64;
        let extra = match mode {
            HashMode::Two => 0,
            HashMode::Four => ports,
            HashMode::Five => ports | (self.proto as u64) << 32,
        };
        words5([a0, a1, b0, b1, extra])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [HashMode; 3] = [HashMode::Two, HashMode::Four, HashMode::Five];

    fn addr(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12] = 10;
        a[15] = last;
        a
    }

    #[test]
    fn both_directions_give_the_same_key_and_hash() {
        let fwd = FlowKey::new(addr(1), 40000, addr(2), 443, 6);
        let rev = FlowKey::new(addr(2), 443, addr(1), 40000, 6);
        assert_eq!(fwd, rev);
        // Same address on both ends (loopback): the ports decide the order.
        let fwd = FlowKey::new(addr(1), 40000, addr(1), 443, 6);
        let rev = FlowKey::new(addr(1), 443, addr(1), 40000, 6);
        assert_eq!(fwd, rev);
        for m in MODES {
            assert_eq!(fwd.hash(m), rev.hash(m));
        }
        assert_eq!(FlowKey::macs([1; 6], [2; 6]), FlowKey::macs([2; 6], [1; 6]));
    }

    #[test]
    fn modes_take_the_fields_they_name() {
        let k = FlowKey::new(addr(1), 1000, addr(2), 53, 17);
        let other_ports = FlowKey::new(addr(1), 1001, addr(2), 53, 17);
        let other_proto = FlowKey::new(addr(1), 1000, addr(2), 53, 6);
        assert_eq!(k.hash(HashMode::Two), other_ports.hash(HashMode::Two));
        assert_ne!(k.hash(HashMode::Four), other_ports.hash(HashMode::Four));
        assert_eq!(k.hash(HashMode::Four), other_proto.hash(HashMode::Four));
        assert_ne!(k.hash(HashMode::Five), other_proto.hash(HashMode::Five));
    }

    /// The hash is part of the on-disk contract (restarts and several dispatchers must agree):
    /// these values may only change on purpose.
    #[test]
    fn hash_values_are_stable() {
        let k = FlowKey::new(addr(1), 40000, addr(2), 443, 6);
        let got: Vec<u64> = MODES.iter().map(|&m| k.hash(m)).collect();
        assert_eq!(
            got,
            vec![
                1175985566662546937,
                6522576316919377015,
                10180075894730629247
            ]
        );
    }
}
