//! Content `_id`s for the records of IDS instances that shardcap runs (`run --ids suricata --ship`):
//! an `_id` that two instances give the same record, so that a record produced again by a fresh
//! instance replaying a shard's stream (after a restart or a takeover) is the document already
//! indexed, whichever instance wrote it first.
//!
//! `_id` formula: `KKKKKKKKKKKKKKKK-N`, where `K…` is `mix64(mix64(G ^ SALT) ^ C)` in 16 lowercase
//! hex digits, `G` the record's global shard (the shard number of a `-n M*N` run, so two nodes never
//! share an `_id`), `C` the content hash below, and `N` the number of earlier records of the same
//! file with the same `C` (0 for the first: identical records stay distinct documents).
//!
//! `C` is the 64-bit FNV-1a hash of the record's top-level members, key and raw value in the order
//! written, leaving out what differs between two instances producing the same record: `timestamp`
//! (the moment a flow or a transaction logged at flow end was written, which depends on when the
//! instance's flow manager got to it), `flow_id` and `parent_id` (random per process), `pcap_cnt`
//! (counted from where the instance's stream began), and `reason` inside `flow` (`timeout` or
//! `shutdown`, by the same timing). `stats` records describe an instance, not traffic (uptime and
//! counters at wall-clock moments): only their `event_type` counts, so `N` is their ordinal, and the
//! n-th stats record of a global shard is one document, whichever instance wrote it first.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

use shardcap_flow::hash::mix64;

use crate::logformat::LogFormat;

/// Mixed into the global shard so that content keys do not resemble file keys.
const SALT: u64 = 0x5348_4152_4443_4150;

/// Top-level eve members left out of the content hash.
const EVE_VOLATILE: [&str; 4] = ["timestamp", "flow_id", "parent_id", "pcap_cnt"];
/// Members of eve's `flow` object left out of the content hash.
const FLOW_VOLATILE: [&str; 1] = ["reason"];
/// Eve event types keyed by their ordinal (only `event_type` counts).
const ORDINAL: [&str; 1] = ["\"stats\""];

/// The key of a record with content hash `content` in global shard `global`.
pub fn content_key(global: u64, content: u64) -> u64 {
    mix64(mix64(global ^ SALT) ^ content)
}

/// The content hash of one record of a log in `format` (see the module doc), or `None` when the
/// record keeps a positional `_id`: not an eve record, or a line that is not a JSON object with
/// plain keys (the shipper dead-letters those anyway).
pub fn content_hash(format: LogFormat, line: &[u8]) -> Option<u64> {
    if format != LogFormat::Eve {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(line.trim_ascii());
    de.deserialize_map(Members {
        volatile: &EVE_VOLATILE,
        top: true,
    })
    .ok()
    .flatten()
}

/// Incremental FNV-1a (the same function as `shardcap_flow::hash::fnv1a`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A member: its key, a separator no JSON text holds, its raw value, another.
    fn member(&mut self, key: &str, value: &[u8]) {
        self.bytes(key.as_bytes());
        self.bytes(&[0xff]);
        self.bytes(value);
        self.bytes(&[0xfe]);
    }
}

/// Hashes an object's members, leaving out `volatile` ones; at the top level, `flow` is hashed
/// without its volatile members, and a record of an ordinal event type hashes as its `event_type`
/// alone.
struct Members<'a> {
    volatile: &'a [&'a str],
    top: bool,
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut h = Fnv::new();
        let mut ordinal = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            let value: &'de RawValue = map.next_value()?;
            if self.volatile.contains(&key) {
                continue;
            }
            let raw = value.get();
            if self.top && key == "event_type" && ORDINAL.contains(&raw) {
                ordinal = Some(raw);
            }
            if self.top && key == "flow" && raw.starts_with('{') {
                let mut de = serde_json::Deserializer::from_str(raw);
                let inner = de
                    .deserialize_map(Members {
                        volatile: &FLOW_VOLATILE,
                        top: false,
                    })
                    .map_err(serde::de::Error::custom)?;
                let Some(inner) = inner else { return Ok(None) };
                h.member(key, &inner.to_le_bytes());
                continue;
            }
            h.member(key, raw.as_bytes());
        }
        if let Some(event_type) = ordinal {
            h = Fnv::new();
            h.member("event_type", event_type.as_bytes());
        }
        Ok(Some(h.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(line: &str) -> Option<u64> {
        content_hash(LogFormat::Eve, line.as_bytes())
    }

    #[test]
    fn volatile_members_do_not_count_and_the_rest_does() {
        let a = r#"{"timestamp":"2024-03-01T12:00:25.813489+0000","flow_id":3087770427,"pcap_cnt":7,"event_type":"flow","src_ip":"10.1.0.134","flow":{"pkts_toserver":11,"end":"2024-03-01T12:00:01.345224+0000","state":"closed","reason":"timeout"}}"#;
        let b = r#"{"timestamp":"2024-03-01T12:00:29.000000+0000","flow_id":1,"pcap_cnt":9,"event_type":"flow","src_ip":"10.1.0.134","flow":{"pkts_toserver":11,"end":"2024-03-01T12:00:01.345224+0000","state":"closed","reason":"shutdown"}}"#;
        assert_eq!(hash(a), hash(b));
        assert!(hash(a).is_some());
        let fewer = b.replace("\"pkts_toserver\":11", "\"pkts_toserver\":10");
        assert_ne!(hash(a), hash(&fewer), "a partial flow is another record");
        let state = b.replace("\"state\":\"closed\"", "\"state\":\"established\"");
        assert_ne!(hash(a), hash(&state));
        let other = b.replace("10.1.0.134", "10.1.0.135");
        assert_ne!(hash(a), hash(&other));
    }

    #[test]
    fn stats_records_hash_alike_and_zeek_and_broken_lines_keep_positional_ids() {
        let stats = hash(r#"{"timestamp":"x","event_type":"stats","stats":{"uptime":3}}"#);
        assert!(stats.is_some());
        assert_eq!(
            stats,
            hash(r#"{"timestamp":"y","event_type":"stats","stats":{"uptime":60}}"#)
        );
        assert_eq!(
            content_hash(LogFormat::ZeekJson, br#"{"ts":1.0,"uid":"C1"}"#),
            None
        );
        assert_eq!(hash(r#"{"event_type":"alert""#), None);
        assert_eq!(hash("[1]"), None);
    }

    /// Known answers pinning the formula: a change is a deliberate, documented format break
    /// (instances of two versions would index the same record twice).
    #[test]
    fn content_keys_are_pinned() {
        let alert = r#"{"timestamp":"2024-03-01T12:00:00.002329+0000","flow_id":3087770427,"pcap_cnt":7,"event_type":"alert","src_ip":"10.1.0.134","alert":{"signature_id":9000001}}"#;
        let h = hash(alert).unwrap();
        assert_eq!(format!("{h:016x}"), "10709519d1c8bda9");
        assert_eq!(format!("{:016x}", content_key(0, h)), "abd3f41fda837cbb");
        assert_eq!(format!("{:016x}", content_key(5, h)), "e773b3cbb9658cb7");
    }
}
