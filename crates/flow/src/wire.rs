//! Bounds-checked reads of header fields: a short or garbage packet yields `None`, never a panic.

/// The byte at `off`.
#[inline(always)]
pub fn u8_at(d: &[u8], off: usize) -> Option<u8> {
    d.get(off).copied()
}

/// The big-endian 16-bit field at `off`.
#[inline(always)]
pub fn be16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes(d, off)?))
}

/// The big-endian 32-bit field at `off`.
#[inline(always)]
pub fn be32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes(d, off)?))
}

/// `N` bytes at `off`.
#[inline(always)]
pub fn bytes<const N: usize>(d: &[u8], off: usize) -> Option<[u8; N]> {
    d.get(off..)?.get(..N)?.try_into().ok()
}

/// Everything from `off` on.
#[inline(always)]
pub fn rest(d: &[u8], off: usize) -> Option<&[u8]> {
    d.get(off..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_short_input() {
        let d = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(be16(&d, 0), Some(0x1234));
        assert_eq!(be32(&d, 1), Some(0x3456_789a));
        assert_eq!(be32(&d, 2), None);
        assert_eq!(be16(&d, usize::MAX), None);
        assert_eq!(u8_at(&d, 5), None);
        assert_eq!(rest(&d, 5), Some(&[][..]));
        assert_eq!(rest(&d, 6), None);
        assert_eq!(bytes::<2>(&d, 3), Some([0x78, 0x9a]));
    }
}
