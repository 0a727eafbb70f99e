//! Elastic Common Schema fields, added with `--ecs` the way Elastic's Zeek and Suricata integrations
//! derive them: `source.*`, `destination.*`, `network.*`, `event.*`, `rule.*` (alerts), `log.*`,
//! `observer.name`, `ecs.version`. A group the record already has at the top level is left alone.

use crate::json_text::ObjectWriter;
use crate::meta::{Meta, Taken};
use crate::naming::Family;

/// The ECS version the fields follow.
pub const ECS_VERSION: &str = "8.11.0";

/// Where a record came from, for `log.*` and `observer.*`.
pub struct Origin<'a> {
    /// The file's path as a JSON string literal.
    pub path_json: &'a [u8],
    pub offset: u64,
    pub sensor: &'a str,
}

/// Writes the ECS groups for one record.
pub fn write(w: &mut ObjectWriter, meta: &Meta, family: Family, log_type: &str, origin: &Origin) {
    let free = |t: Taken| !meta.taken.contains(t);
    if free(Taken::SOURCE) {
        endpoint(
            w,
            "source",
            &meta.src_ip,
            meta.src_port,
            meta.src_bytes,
            meta.src_packets,
        );
    }
    if free(Taken::DESTINATION) {
        endpoint(
            w,
            "destination",
            &meta.dst_ip,
            meta.dst_port,
            meta.dst_bytes,
            meta.dst_packets,
        );
    }
    if free(Taken::NETWORK) {
        w.begin("network");
        if let Some(t) = &meta.transport {
            w.str("transport", &t.to_ascii_lowercase());
        }
        if let Some(p) = &meta.protocol {
            w.str("protocol", p);
        }
        if let Some(c) = &meta.community_id {
            w.str("community_id", c);
        }
        if let (Some(a), Some(b)) = (meta.src_bytes, meta.dst_bytes) {
            w.u64("bytes", a + b);
        }
        if let (Some(a), Some(b)) = (meta.src_packets, meta.dst_packets) {
            w.u64("packets", a + b);
        }
        w.end();
    }
    let alert = family == Family::Suricata && log_type == "alert";
    if free(Taken::EVENT) {
        w.begin("event");
        w.str("module", family.name());
        match family {
            Family::Zeek => w.str("dataset", &format!("zeek.{log_type}")),
            Family::Suricata => w.str("dataset", "suricata.eve"),
        }
        w.str("kind", if alert { "alert" } else { "event" });
        w.raw(
            "category",
            if alert {
                br#"["network","intrusion_detection"]"#
            } else {
                br#"["network"]"#
            },
        );
        if let Some(id) = &meta.session_id {
            w.str("id", id);
        }
        if let Some(d) = meta.duration.filter(|d| *d >= 0.0) {
            w.u64("duration", (d * 1e9).round() as u64);
        }
        if let Some(s) = meta.severity {
            w.u64("severity", s);
        }
        w.end();
    }
    if alert && free(Taken::RULE) {
        w.begin("rule");
        if let Some(id) = meta.rule_id {
            w.str("id", &id.to_string());
        }
        if let Some(n) = &meta.rule_name {
            w.str("name", n);
        }
        if let Some(c) = &meta.rule_category {
            w.str("category", c);
        }
        w.end();
    }
    if free(Taken::LOG) {
        w.begin("log");
        w.begin("file");
        w.raw("path", origin.path_json);
        w.end();
        w.u64("offset", origin.offset);
        w.end();
    }
    if free(Taken::OBSERVER) {
        w.begin("observer");
        w.str("name", origin.sensor);
        w.end();
    }
    if free(Taken::ECS) {
        w.begin("ecs");
        w.str("version", ECS_VERSION);
        w.end();
    }
}

/// `source` or `destination`, when any of its fields is known.
fn endpoint(
    w: &mut ObjectWriter,
    key: &str,
    ip: &Option<std::borrow::Cow<str>>,
    port: Option<u64>,
    bytes: Option<u64>,
    packets: Option<u64>,
) {
    if ip.is_none() && port.is_none() && bytes.is_none() && packets.is_none() {
        return;
    }
    w.begin(key);
    if let Some(ip) = ip {
        w.str("ip", ip);
    }
    if let Some(p) = port {
        w.u64("port", p);
    }
    if let Some(b) = bytes {
        w.u64("bytes", b);
    }
    if let Some(p) = packets {
        w.u64("packets", p);
    }
    w.end();
}
