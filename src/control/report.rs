//! Shared pieces of stats reporting: `[STATS] Key:Value` lines and stats files replaced atomically.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes one `[STATS] Key:Value` line, pcapdj's format.
pub fn stat_line(out: &mut dyn Write, key: &str, value: &str) -> io::Result<()> {
    writeln!(out, "[STATS] {key}:{value}")
}

/// Writes `value` as pretty JSON to `path` atomically: a reader never sees a half-written file.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::runtime(e.to_string()))?;
    shardcap_files::write_atomic(path, &json).map_err(Error::file(path, "cannot write stats file"))
}
