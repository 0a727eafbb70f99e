//! The symmetric flow hash: a fixed, seedless mix so that shard assignment is stable across runs
//! and machines (restarts and several dispatchers agree).

/// Mixes 64 bits (the murmur3 finaliser).
#[inline(always)]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Folds bytes into a running hash, 8 at a time.
#[inline(always)]
pub fn fold(mut h: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix64(h ^ u64::from_le_bytes(c.try_into().unwrap()));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = mix64(h ^ u64::from_le_bytes(last) ^ ((rest.len() as u64) << 56));
    }
    h
}

/// Maps a hash to one of `n` shards without a division.
#[inline(always)]
pub fn shard_of(hash: u64, n: usize) -> usize {
    ((hash as u128 * n as u128) >> 64) as usize
}
