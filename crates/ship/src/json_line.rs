//! JSON-lines records (Suricata eve.json, Zeek's JSON logs): each line is checked to be one JSON
//! object, and the fields the shipper uses are read without building a tree. The record itself is
//! shipped byte for byte.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::meta::{Meta, Taken};
use crate::timestamp::UtcTime;

/// True for a present key, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// The top-level fields read from a record; every other key is skipped (but still parsed, so a
/// malformed line is caught here rather than by the server).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, rename = "_path")]
    path: Option<&'a RawValue>,
    #[serde(borrow)]
    src_ip: Option<&'a RawValue>,
    #[serde(borrow)]
    src_port: Option<&'a RawValue>,
    #[serde(borrow)]
    dest_ip: Option<&'a RawValue>,
    #[serde(borrow)]
    dest_port: Option<&'a RawValue>,
    #[serde(borrow)]
    proto: Option<&'a RawValue>,
    #[serde(borrow)]
    app_proto: Option<&'a RawValue>,
    #[serde(borrow)]
    service: Option<&'a RawValue>,
    #[serde(borrow)]
    community_id: Option<&'a RawValue>,
    #[serde(borrow)]
    uid: Option<&'a RawValue>,
    #[serde(borrow, rename = "id.orig_h")]
    orig_h: Option<&'a RawValue>,
    #[serde(borrow, rename = "id.orig_p")]
    orig_p: Option<&'a RawValue>,
    #[serde(borrow, rename = "id.resp_h")]
    resp_h: Option<&'a RawValue>,
    #[serde(borrow, rename = "id.resp_p")]
    resp_p: Option<&'a RawValue>,
    #[serde(borrow)]
    duration: Option<&'a RawValue>,
    #[serde(borrow)]
    orig_ip_bytes: Option<&'a RawValue>,
    #[serde(borrow)]
    resp_ip_bytes: Option<&'a RawValue>,
    #[serde(borrow)]
    orig_pkts: Option<&'a RawValue>,
    #[serde(borrow)]
    resp_pkts: Option<&'a RawValue>,
    #[serde(borrow)]
    alert: Option<&'a RawValue>,
    #[serde(borrow)]
    flow: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present", rename = "@timestamp")]
    has_timestamp: bool,
    #[serde(default, deserialize_with = "present")]
    shardcap: bool,
    #[serde(default, deserialize_with = "present")]
    source: bool,
    #[serde(default, deserialize_with = "present")]
    destination: bool,
    #[serde(default, deserialize_with = "present")]
    network: bool,
    #[serde(default, deserialize_with = "present")]
    event: bool,
    #[serde(default, deserialize_with = "present")]
    rule: bool,
    #[serde(default, deserialize_with = "present")]
    log: bool,
    #[serde(default, deserialize_with = "present")]
    ecs: bool,
    #[serde(default, deserialize_with = "present")]
    observer: bool,
}

/// The fields of Suricata's `alert` object used for ECS `rule.*`.
#[derive(Deserialize)]
struct AlertHead<'a> {
    #[serde(borrow)]
    signature_id: Option<&'a RawValue>,
    #[serde(borrow)]
    signature: Option<&'a RawValue>,
    #[serde(borrow)]
    category: Option<&'a RawValue>,
    #[serde(borrow)]
    severity: Option<&'a RawValue>,
}

/// The counters of Suricata's `flow` object, for ECS `source.*`/`destination.*` bytes and packets.
#[derive(Deserialize)]
struct FlowHead<'a> {
    #[serde(borrow)]
    bytes_toserver: Option<&'a RawValue>,
    #[serde(borrow)]
    bytes_toclient: Option<&'a RawValue>,
    #[serde(borrow)]
    pkts_toserver: Option<&'a RawValue>,
    #[serde(borrow)]
    pkts_toclient: Option<&'a RawValue>,
}

/// A string value (escapes decoded), or nothing when the value is not a string.
fn text(v: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = v?.get();
    if !raw.starts_with('"') {
        return None;
    }
    if !raw.contains('\\') {
        return Some(Cow::Borrowed(&raw[1..raw.len() - 1]));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// A non-negative integer value, or nothing.
fn count(v: Option<&RawValue>) -> Option<u64> {
    v?.get().parse().ok()
}

/// A number value, or nothing.
fn real(v: Option<&RawValue>) -> Option<f64> {
    let raw = v?.get();
    raw.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A timestamp: epoch seconds as a number (Zeek's default) or an ISO 8601 string (Suricata; Zeek
/// with `JSON::TS_ISO8601`).
fn time(v: Option<&RawValue>) -> Option<UtcTime> {
    let raw = v?.get();
    if raw.starts_with('"') {
        UtcTime::from_iso8601(&text(v)?)
    } else {
        UtcTime::from_epoch_text(raw)
    }
}

/// Checks that `line` is one JSON object and reads its `Meta`. The error names what is wrong and
/// where (column within the line).
pub fn read(line: &[u8]) -> Result<Meta<'_>, String> {
    let trimmed = line.trim_ascii();
    if trimmed.first() != Some(&b'{') {
        return Err("not a JSON object".into());
    }
    let h: Head = serde_json::from_slice(trimmed).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut m = Meta {
        ts: time(h.ts).or_else(|| time(h.timestamp)),
        log_type: text(h.event_type).or_else(|| text(h.path)),
        src_ip: text(h.src_ip).or_else(|| text(h.orig_h)),
        src_port: count(h.src_port).or_else(|| count(h.orig_p)),
        dst_ip: text(h.dest_ip).or_else(|| text(h.resp_h)),
        dst_port: count(h.dest_port).or_else(|| count(h.resp_p)),
        transport: text(h.proto),
        protocol: text(h.app_proto).or_else(|| text(h.service)),
        community_id: text(h.community_id),
        session_id: text(h.uid),
        src_bytes: count(h.orig_ip_bytes),
        dst_bytes: count(h.resp_ip_bytes),
        src_packets: count(h.orig_pkts),
        dst_packets: count(h.resp_pkts),
        duration: real(h.duration),
        ..Meta::default()
    };
    if let Some(a) = h
        .alert
        .and_then(|a| serde_json::from_str::<AlertHead>(a.get()).ok())
    {
        m.rule_id = count(a.signature_id);
        m.rule_name = text(a.signature);
        m.rule_category = text(a.category);
        m.severity = count(a.severity);
    }
    if let Some(f) = h
        .flow
        .and_then(|f| serde_json::from_str::<FlowHead>(f.get()).ok())
    {
        m.src_bytes = m.src_bytes.or(count(f.bytes_toserver));
        m.dst_bytes = m.dst_bytes.or(count(f.bytes_toclient));
        m.src_packets = m.src_packets.or(count(f.pkts_toserver));
        m.dst_packets = m.dst_packets.or(count(f.pkts_toclient));
    }
    for (has, flag) in [
        (h.has_timestamp, Taken::TIMESTAMP),
        (h.shardcap, Taken::SHARDCAP),
        (h.source, Taken::SOURCE),
        (h.destination, Taken::DESTINATION),
        (h.network, Taken::NETWORK),
        (h.event, Taken::EVENT),
        (h.rule, Taken::RULE),
        (h.log, Taken::LOG),
        (h.ecs, Taken::ECS),
        (h.observer, Taken::OBSERVER),
    ] {
        if has {
            m.taken.insert(flag);
        }
    }
    Ok(m)
}

/// True when the first line of a file is a Suricata eve record (it has `event_type`).
pub fn is_eve(line: &[u8]) -> Option<bool> {
    let h: Head = serde_json::from_slice(line.trim_ascii()).ok()?;
    Some(h.event_type.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eve_alert() {
        let line = br#"{"timestamp":"2013-05-02T22:20:33.491822+0200","flow_id":42,"event_type":"alert","src_ip":"10.0.0.6","src_port":21536,"dest_ip":"10.0.0.138","dest_port":53,"proto":"UDP","community_id":"1:abc=","alert":{"action":"allowed","signature_id":1000001,"signature":"sid \"x\"","category":"","severity":3},"app_proto":"dns"}"#;
        let m = read(line).unwrap();
        assert_eq!(m.ts, UtcTime::from_iso8601("2013-05-02T20:20:33.491822Z"));
        assert_eq!(m.log_type.as_deref(), Some("alert"));
        assert_eq!(m.src_port, Some(21536));
        assert_eq!(m.dst_ip.as_deref(), Some("10.0.0.138"));
        assert_eq!(m.transport.as_deref(), Some("UDP"));
        assert_eq!(m.protocol.as_deref(), Some("dns"));
        assert_eq!(m.rule_id, Some(1_000_001));
        assert_eq!(m.rule_name.as_deref(), Some("sid \"x\""));
        assert_eq!(m.severity, Some(3));
        assert_eq!(is_eve(line), Some(true));
        let flow = br#"{"event_type":"flow","flow":{"pkts_toserver":3,"pkts_toclient":2,"bytes_toserver":180,"bytes_toclient":120}}"#;
        let m = read(flow).unwrap();
        assert_eq!(
            (m.src_bytes, m.dst_bytes, m.src_packets, m.dst_packets),
            (Some(180), Some(120), Some(3), Some(2))
        );
    }

    #[test]
    fn zeek_json_and_taken_keys() {
        let line = br#"{"ts":1709251200.25,"uid":"C1","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":2,"proto":"tcp","service":null,"source":null}"#;
        let m = read(line).unwrap();
        assert_eq!(m.ts.unwrap().nanos, 250_000_000);
        assert_eq!(m.session_id.as_deref(), Some("C1"));
        assert_eq!(m.protocol, None);
        assert!(m.taken.contains(Taken::SOURCE));
        assert!(!m.taken.contains(Taken::EVENT));
        assert_eq!(is_eve(line), Some(false));
    }

    #[test]
    fn malformed_lines_are_named() {
        assert!(read(b"[1,2]").unwrap_err().contains("not a JSON object"));
        let e = read(br#"{"ts":1,"uid":"C1""#).unwrap_err();
        assert!(e.contains("invalid JSON") && e.contains("column"), "{e}");
        assert_eq!(is_eve(b"Notice: suricata"), None);
    }
}
