//! Where a record goes: an index per log type and UTC day (`zeek-conn-2024.03.01`,
//! `suricata-alert-2024.03.01`), or a data stream per log type (`logs-zeek.conn-default`).
//!
//! The day comes from the record's own timestamp, never from the clock, so a replayed record always
//! reaches the index it reached the first time (which is what makes `create` with a fixed `_id`
//! idempotent).

use std::io::Write;

use crate::error::{Error, Result};
use crate::timestamp::UtcTime;

/// The IDS that wrote a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Zeek,
    Suricata,
}

impl Family {
    /// `zeek` or `suricata`: the first part of index names and `event.module`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Zeek => "zeek",
            Family::Suricata => "suricata",
        }
    }
}

/// How targets are named.
#[derive(Debug, Clone)]
pub struct Naming {
    /// Put before every index name (`--index-prefix`).
    pub prefix: String,
    /// Data streams `logs-FAMILY.TYPE-NAMESPACE` instead of daily indices.
    pub data_streams: bool,
    /// The data streams' namespace.
    pub namespace: String,
}

impl Naming {
    /// Checks the parts against Elasticsearch's naming rules (exit 2 when they break them).
    pub fn validate(&self) -> Result<()> {
        let bad = |s: &str| {
            s.chars().any(|c| {
                c.is_ascii_uppercase() || matches!(c, '\\' | '/' | '*' | '?' | '"' | '<' | '>')
            }) || s.contains(['|', ' ', ',', '#', ':'])
        };
        if bad(&self.prefix) || self.prefix.starts_with(['-', '_', '+', '.']) {
            return Err(Error::usage(format!(
                "--index-prefix {:?}: index names are lowercase, without \\ / * ? \" < > | , # : or \
                 spaces, and do not start with - _ + .",
                self.prefix
            )));
        }
        if self.namespace.is_empty() || bad(&self.namespace) || self.namespace.contains('-') {
            return Err(Error::usage(format!(
                "--data-stream-namespace {:?}: use lowercase letters, digits, _ and . (no -)",
                self.namespace
            )));
        }
        Ok(())
    }

    /// Writes the target of one record: its index (or data stream) name.
    pub fn write_target(
        &self,
        out: &mut Vec<u8>,
        family: Family,
        log_type: &str,
        ts: Option<UtcTime>,
    ) {
        if self.data_streams {
            let _ = write!(out, "logs-{}.", family.name());
            push_sanitised(out, log_type);
            let _ = write!(out, "-{}", self.namespace);
            return;
        }
        let _ = write!(out, "{}{}-", self.prefix, family.name());
        push_sanitised(out, log_type);
        if let Some(ts) = ts {
            out.push(b'-');
            ts.write_day(out);
        }
    }

    /// The index patterns that the templates for `family` cover.
    pub fn pattern(&self, family: Family) -> String {
        if self.data_streams {
            format!("logs-{}.*-*", family.name())
        } else {
            format!("{}{}-*", self.prefix, family.name())
        }
    }
}

/// A log type as an index name part: lowercase ASCII letters, digits, `_` and `.`; anything else
/// becomes `_` (log types come from file content and names).
fn push_sanitised(out: &mut Vec<u8>, log_type: &str) {
    if log_type.is_empty() {
        out.extend_from_slice(b"unknown");
        return;
    }
    out.extend(log_type.bytes().map(|b| match b {
        b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => b,
        b'A'..=b'Z' => b.to_ascii_lowercase(),
        _ => b'_',
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(n: &Naming, f: Family, t: &str, ts: Option<UtcTime>) -> String {
        let mut v = Vec::new();
        n.write_target(&mut v, f, t, ts);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn names() {
        let day = UtcTime::from_iso8601("2024-03-01T23:59:59+0000");
        let mut n = Naming {
            prefix: String::new(),
            data_streams: false,
            namespace: "default".into(),
        };
        assert_eq!(
            target(&n, Family::Zeek, "conn", day),
            "zeek-conn-2024.03.01"
        );
        assert_eq!(
            target(&n, Family::Suricata, "Alert", day),
            "suricata-alert-2024.03.01"
        );
        assert_eq!(
            target(&n, Family::Zeek, "loaded scripts", None),
            "zeek-loaded_scripts"
        );
        n.prefix = "lab-".into();
        assert_eq!(
            target(&n, Family::Zeek, "dns", day),
            "lab-zeek-dns-2024.03.01"
        );
        assert_eq!(n.pattern(Family::Zeek), "lab-zeek-*");
        n.data_streams = true;
        assert_eq!(
            target(&n, Family::Zeek, "conn", day),
            "logs-zeek.conn-default"
        );
        assert!(n.validate().is_ok());
        n.namespace = "a-b".into();
        assert!(n.validate().is_err());
    }
}
