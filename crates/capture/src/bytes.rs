//! Fixed-width integers read at an offset of a record, in the byte order of its file. The readers
//! call these only inside a record whose length they have checked against the buffer, so an
//! out-of-range read is a bug, and panics; packet bytes, which nothing has checked, are read with
//! `shardcap_flow::wire`'s functions, which return `None` instead.

/// The `u32` at `b[at..at + 4]`.
#[inline(always)]
pub fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let raw: [u8; 4] = b[at..at + 4].try_into().unwrap();
    if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    }
}

/// The `u16` at `b[at..at + 2]`.
#[inline(always)]
pub fn u16_at(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let raw: [u8; 2] = b[at..at + 2].try_into().unwrap();
    if big_endian {
        u16::from_be_bytes(raw)
    } else {
        u16::from_le_bytes(raw)
    }
}

/// The `i64` at `b[at..at + 8]`.
#[inline(always)]
pub fn i64_at(b: &[u8], at: usize, big_endian: bool) -> i64 {
    let raw: [u8; 8] = b[at..at + 8].try_into().unwrap();
    if big_endian {
        i64::from_be_bytes(raw)
    } else {
        i64::from_le_bytes(raw)
    }
}
