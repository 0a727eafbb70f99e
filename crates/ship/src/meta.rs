//! What the shipper reads out of a record besides shipping it whole: its time and type (for the index
//! name and `@timestamp`) and the connection fields that ECS fields are derived from.

use std::borrow::Cow;

use crate::timestamp::UtcTime;

/// Top-level keys a record already has, which the shipper must not add a second time (a JSON object
/// with a duplicate key is rejected by Elasticsearch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken(u16);

impl Taken {
    pub const TIMESTAMP: Taken = Taken(1);
    pub const SHARDCAP: Taken = Taken(1 << 1);
    pub const SOURCE: Taken = Taken(1 << 2);
    pub const DESTINATION: Taken = Taken(1 << 3);
    pub const NETWORK: Taken = Taken(1 << 4);
    pub const EVENT: Taken = Taken(1 << 5);
    pub const RULE: Taken = Taken(1 << 6);
    pub const LOG: Taken = Taken(1 << 7);
    pub const ECS: Taken = Taken(1 << 8);
    pub const OBSERVER: Taken = Taken(1 << 9);

    /// The flag for a top-level key the shipper may add, if it is one.
    pub fn of_key(key: &str) -> Option<Taken> {
        Some(match key {
            "@timestamp" => Self::TIMESTAMP,
            "shardcap" => Self::SHARDCAP,
            "source" => Self::SOURCE,
            "destination" => Self::DESTINATION,
            "network" => Self::NETWORK,
            "event" => Self::EVENT,
            "rule" => Self::RULE,
            "log" => Self::LOG,
            "ecs" => Self::ECS,
            "observer" => Self::OBSERVER,
            _ => return None,
        })
    }

    /// Adds `other`'s flags.
    pub fn insert(&mut self, other: Taken) {
        self.0 |= other.0;
    }

    /// True when every flag of `other` is set.
    pub fn contains(self, other: Taken) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The fields of one record the shipper uses, borrowed from the line where possible.
#[derive(Debug, Default)]
pub struct Meta<'a> {
    /// When the record happened (Zeek `ts`, Suricata `timestamp`).
    pub ts: Option<UtcTime>,
    /// The log type the record names itself (Suricata `event_type`, Zeek JSON `_path`).
    pub log_type: Option<Cow<'a, str>>,
    pub src_ip: Option<Cow<'a, str>>,
    pub src_port: Option<u64>,
    pub dst_ip: Option<Cow<'a, str>>,
    pub dst_port: Option<u64>,
    /// Transport protocol, as the IDS names it (`tcp`, `UDP`).
    pub transport: Option<Cow<'a, str>>,
    /// Application protocol (Zeek `service`, Suricata `app_proto`).
    pub protocol: Option<Cow<'a, str>>,
    pub community_id: Option<Cow<'a, str>>,
    /// Zeek's connection `uid`.
    pub session_id: Option<Cow<'a, str>>,
    pub src_bytes: Option<u64>,
    pub dst_bytes: Option<u64>,
    pub src_packets: Option<u64>,
    pub dst_packets: Option<u64>,
    /// Seconds.
    pub duration: Option<f64>,
    pub rule_id: Option<u64>,
    pub rule_name: Option<Cow<'a, str>>,
    pub rule_category: Option<Cow<'a, str>>,
    pub severity: Option<u64>,
    /// Top-level keys already in the record.
    pub taken: Taken,
}
