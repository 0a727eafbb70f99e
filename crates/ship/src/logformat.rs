//! Which files under a log directory are logs to ship, and in which format: recognised by content
//! (the first line), with the file name only naming the Zeek log type when the content does not.

use std::path::Path;

use crate::json_line;
use crate::naming::Family;

/// The format of a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Zeek's tab-separated format with its `#` header.
    ZeekTsv,
    /// Zeek's JSON lines.
    ZeekJson,
    /// Suricata's eve.json (JSON lines with `event_type`).
    Eve,
}

impl LogFormat {
    /// Recognises a format from a file's first complete line; `None` for anything else (Suricata's
    /// suricata.log, fast.log and stats.log, text files).
    pub fn sniff(first_line: &[u8]) -> Option<LogFormat> {
        if first_line.starts_with(b"#separator ") {
            return Some(LogFormat::ZeekTsv);
        }
        match json_line::is_eve(first_line)? {
            true => Some(LogFormat::Eve),
            false => Some(LogFormat::ZeekJson),
        }
    }

    /// The IDS that writes this format.
    pub fn family(self) -> Family {
        match self {
            LogFormat::ZeekTsv | LogFormat::ZeekJson => Family::Zeek,
            LogFormat::Eve => Family::Suricata,
        }
    }
}

/// True for a name worth looking into: not hidden, not a compressed archive.
pub fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && ![".gz", ".zst", ".bz2", ".xz", ".lz4", ".zip"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The Zeek log type a file name says: the part before the first dot (`conn.log`,
/// `conn.2024-03-01-00-00-00.log` and `conn.00:00:00-01:00:00.log` are all `conn`).
pub fn zeek_type_from_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.split('.').next().unwrap_or_default().to_string()
}

/// The shard a log belongs to: the nearest enclosing directory named `shard-K`.
pub fn shard_of(path: &Path) -> Option<u32> {
    path.ancestors()
        .skip(1)
        .filter_map(|d| {
            d.file_name()?
                .to_str()?
                .strip_prefix("shard-")?
                .parse()
                .ok()
        })
        .next()
}

/// True when the file is directly in a `shard-K` directory (an IDS instance's own log directory,
/// not a subdirectory keeping a dead instance's logs).
pub fn in_shard_dir(path: &Path) -> bool {
    path.parent()
        .and_then(|d| d.file_name()?.to_str()?.strip_prefix("shard-"))
        .is_some_and(|k| k.parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_shard_directories() {
        assert!(in_shard_dir(Path::new("/logs/shard-3/eve.json")));
        assert!(!in_shard_dir(Path::new("/logs/shard-3/run-1/eve.json")));
        assert!(!in_shard_dir(Path::new("/logs/eve.json")));
        assert!(!in_shard_dir(Path::new("/logs/shard-x/eve.json")));
    }

    #[test]
    fn formats_and_names() {
        assert_eq!(
            LogFormat::sniff(b"#separator \\x09"),
            Some(LogFormat::ZeekTsv)
        );
        assert_eq!(
            LogFormat::sniff(br#"{"timestamp":"2024-03-01T00:00:00+0000","event_type":"flow"}"#),
            Some(LogFormat::Eve)
        );
        assert_eq!(
            LogFormat::sniff(br#"{"ts":1.5,"uid":"C"}"#),
            Some(LogFormat::ZeekJson)
        );
        assert_eq!(LogFormat::sniff(b"1/1/2024 -- Notice: started"), None);
        assert_eq!(
            zeek_type_from_name(Path::new("/l/conn.00:00:00-01:00:00.log")),
            "conn"
        );
        assert_eq!(shard_of(Path::new("/logs/shard-3/zeek/conn.log")), Some(3));
        assert_eq!(shard_of(Path::new("/logs/shard-x/conn.log")), None);
        assert!(is_candidate(Path::new("/l/eve.json")));
        assert!(!is_candidate(Path::new("/l/.status")));
        assert!(!is_candidate(Path::new("/l/conn.log.gz")));
    }
}
