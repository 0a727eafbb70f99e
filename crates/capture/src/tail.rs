//! A capture's latest packet time read from its last bytes, without reading the file again from
//! its start. A pcapng file is walked back exactly (every block ends with its length); a classic
//! pcap file has no such marks, so its records are found as the one chain of sane records that
//! ends exactly at the end of the file. Either way the answer is the latest time among the
//! packets of the last [`WINDOW`] bytes, or nothing when they cannot be told apart with
//! certainty (the caller then reads the file to its end).

use std::collections::HashMap;

/// Bytes read from the end of a file to find its last packets.
pub const WINDOW: u64 = 256 << 10;
/// A record dated this long before the file's first packet, or this far from its neighbour in
/// the chain, is taken for packet bytes that look like a record header.
pub const MAX_GAP_NS: u64 = 3_600_000_000_000;
/// Fewest records a classic pcap chain must hold (unless it starts at the file's first record).
const MIN_RECORDS: u32 = 4;

/// True when `ts` may be a packet time of a file whose first packet is at `first_ts`.
pub fn near(ts: u64, first_ts: u64) -> bool {
    ts.saturating_add(MAX_GAP_NS) >= first_ts
}

/// A chain of records ending at the end of a buffer: how many, and the latest time among them.
#[derive(Debug, Clone, Copy)]
struct Link {
    records: u32,
    ts: u64,
    latest: u64,
}

/// The latest time of the longest chain of records in a buffer of `n` bytes that ends exactly
/// at its end. `record(at)` gives the length and time of a sane record starting at `at` (`None`:
/// no record can start there); consecutive records must be within [`MAX_GAP_NS`] of each other.
/// With `whole`, the buffer starts at the file's first record, and the chain must start there.
pub fn latest_in_chain(
    n: usize,
    min_len: usize,
    whole: bool,
    record: impl Fn(usize) -> Option<(usize, u64)>,
) -> Option<u64> {
    // Chains that reach the end, by start (few: the records, and what merely looks like one).
    let mut chains: HashMap<usize, Link> = HashMap::new();
    for at in (0..=n.checked_sub(min_len)?).rev() {
        let Some((len, ts)) = record(at) else {
            continue;
        };
        let link = match at + len {
            end if end == n => Link {
                records: 1,
                ts,
                latest: ts,
            },
            next => match chains.get(&next) {
                Some(l) if ts.abs_diff(l.ts) <= MAX_GAP_NS => Link {
                    records: l.records + 1,
                    ts,
                    latest: l.latest.max(ts),
                },
                _ => continue,
            },
        };
        chains.insert(at, link);
    }
    if whole {
        return chains.get(&0).map(|l| l.latest);
    }
    chains
        .iter()
        .max_by_key(|(&at, l)| (l.records, std::cmp::Reverse(at)))
        .filter(|(_, l)| l.records >= MIN_RECORDS)
        .map(|(_, l)| l.latest)
}
