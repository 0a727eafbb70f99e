//! Mixing for the flow hash: fixed constants and no seed, so that shard assignment is the same
//! across runs, machines and byte orders (restarts and several dispatchers agree).

/// Constants of the mix (wyhash's primes); changing them moves every flow to another shard.
const P: [u64; 6] = [
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
    0x8ebc_6af0_9c88_c6e3,
    0x5899_65cc_7537_4cc3,
    0x1d8e_4e27_c47d_124f,
    0xeb44_acca_b455_d165,
];

/// Mixes 64 bits (the murmur3 finaliser).
#[inline(always)]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Multiplies to 128 bits and folds the halves.
#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = a as u128 * b as u128;
    (r as u64) ^ ((r >> 64) as u64)
}

/// Hashes five words: three independent multiplications and one finaliser, order-sensitive.
#[inline(always)]
pub fn words5(w: [u64; 5]) -> u64 {
    let a = mum(w[0] ^ P[0], w[1] ^ P[1]);
    let b = mum(w[2] ^ P[2], w[3] ^ P[3]);
    let c = mum(w[4] ^ P[4], P[5]);
    mix64(a ^ b.rotate_left(23) ^ c.rotate_left(47))
}

/// The two 64-bit words of a 16-byte address, read little-endian on every machine.
#[inline(always)]
pub fn addr_words(a: &[u8; 16]) -> [u64; 2] {
    let (lo, hi) = a.split_at(8);
    [
        u64::from_le_bytes(lo.try_into().unwrap_or_default()),
        u64::from_le_bytes(hi.try_into().unwrap_or_default()),
    ]
}

/// Maps a hash to one of `n` shards without a division (uses the high bits).
#[inline(always)]
pub fn shard_of(hash: u64, n: usize) -> usize {
    ((hash as u128 * n as u128) >> 64) as usize
}

/// The 64-bit FNV-1a hash: simple, and fixed forever, as journals and checkpoints written earlier depend on it.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_covers_every_shard_and_stays_in_range() {
        for n in [1usize, 2, 4, 7, 64] {
            let mut seen = vec![false; n];
            for i in 0..10_000u64 {
                let s = shard_of(mix64(i), n);
                assert!(s < n);
                seen[s] = true;
            }
            assert!(seen.iter().all(|&x| x), "n={n}");
        }
        assert_eq!(shard_of(u64::MAX, 7), 6);
        assert_eq!(shard_of(0, 7), 0);
    }

    #[test]
    fn words5_depends_on_every_word() {
        let base = [1u64, 2, 3, 4, 5];
        let h = words5(base);
        for i in 0..5 {
            let mut w = base;
            w[i] ^= 1 << 40;
            assert_ne!(words5(w), h, "word {i}");
        }
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
