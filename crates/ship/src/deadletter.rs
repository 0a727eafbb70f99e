//! The dead-letter file, `STATE/dead-letter.ndjson`: one JSON line per record that will not be
//! indexed (refused by the server, or not parseable), with the reason, where it came from and the
//! record itself, so nothing is dropped silently. Entries are fsync'd before the checkpoint moves
//! past them (a crash in between can repeat an entry; `_id` tells repeats apart).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::json_text::{write_bytes, ObjectWriter};
use crate::timestamp::UtcTime;

/// The file name in the state directory.
pub const FILE_NAME: &str = "dead-letter.ndjson";

/// What went wrong with a record.
pub enum Reason<'a> {
    /// The server's per-item answer (status and its `error` object as JSON).
    Server { status: u16, error: &'a str },
    /// The shipper could not turn the line into a document.
    Unparsed(&'a str),
}

/// One dead-lettered record.
pub struct Entry<'a> {
    pub reason: Reason<'a>,
    /// The file's name and the record's byte offset in it.
    pub file: &'a Path,
    pub offset: u64,
    /// The bulk action line (server rejections).
    pub action: Option<&'a [u8]>,
    /// The document sent (server rejections) or the raw line (unparsed).
    pub record: &'a [u8],
}

/// Appends entries to the dead-letter file (or, without a state directory, to the log).
pub struct DeadLetter {
    path: Option<PathBuf>,
    out: Option<BufWriter<File>>,
    line: Vec<u8>,
    pending: bool,
}

impl DeadLetter {
    /// Entries go to `dir/dead-letter.ndjson` (opened on first use), or only to the log.
    pub fn new(dir: Option<&Path>) -> Self {
        DeadLetter {
            path: dir.map(|d| d.join(FILE_NAME)),
            out: None,
            line: Vec::new(),
            pending: false,
        }
    }

    /// Where entries go, if to a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records one entry (durable after the next `sync`).
    pub fn write(&mut self, e: &Entry) -> io::Result<()> {
        let what = match &e.reason {
            Reason::Server { status, error } => format!("HTTP {status} {error}"),
            Reason::Unparsed(why) => why.to_string(),
        };
        log::warn!(
            "{} byte {}: dead-lettered: {what}",
            e.file.display(),
            e.offset
        );
        let Some(path) = &self.path else {
            return Ok(());
        };
        self.line.clear();
        self.line.push(b'{');
        let mut w = ObjectWriter::resume(&mut self.line, 0);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let v = w.value_of("time");
        v.push(b'"');
        UtcTime {
            secs: now.as_secs() as i64,
            nanos: now.subsec_nanos(),
        }
        .write_rfc3339(v);
        v.push(b'"');
        match &e.reason {
            Reason::Server { status, error } => {
                w.u64("status", u64::from(*status));
                w.raw("error", error.as_bytes());
            }
            Reason::Unparsed(why) => {
                w.begin("error");
                w.str("type", "unparsed_record");
                w.str("reason", why);
                w.end();
            }
        }
        write_bytes(w.value_of("file"), e.file.as_os_str().as_encoded_bytes());
        w.u64("offset", e.offset);
        match e.action {
            Some(action) => {
                w.raw("action", action);
                w.raw("document", e.record);
            }
            None => write_bytes(w.value_of("line"), e.record),
        }
        w.end();
        self.line.push(b'\n');
        if self.out.is_none() {
            // Owner only: it holds whole documents.
            let f = shardcap_files::nofollow::open_or_create_private(path)?;
            self.out = Some(BufWriter::new(f));
        }
        let out = self.out.as_mut().expect("opened above");
        out.write_all(&self.line)?;
        self.pending = true;
        Ok(())
    }

    /// Makes every entry written so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if let (true, Some(out)) = (self.pending, self.out.as_mut()) {
            out.flush()?;
            out.get_ref().sync_data()?;
            self.pending = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn entries_are_json_lines_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DeadLetter::new(Some(dir.path()));
        d.write(&Entry {
            reason: Reason::Server {
                status: 400,
                error: r#"{"type":"document_parsing_exception","reason":"bad ip"}"#,
            },
            file: Path::new("/l/conn.log"),
            offset: 77,
            action: Some(br#"{"create":{"_index":"zeek-conn","_id":"k-77"}}"#),
            record: br#"{"id.orig_h":"x"}"#,
        })
        .unwrap();
        d.write(&Entry {
            reason: Reason::Unparsed("invalid JSON: EOF"),
            file: Path::new("/l/eve.json"),
            offset: 5,
            action: None,
            record: b"{\"trunc",
        })
        .unwrap();
        d.sync().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["status"], 400);
        assert_eq!(lines[0]["error"]["reason"], "bad ip");
        assert_eq!(lines[0]["action"]["create"]["_id"], "k-77");
        assert_eq!(lines[0]["document"]["id.orig_h"], "x");
        assert_eq!(lines[1]["error"]["type"], "unparsed_record");
        assert_eq!(lines[1]["line"], "{\"trunc");
        assert_eq!(lines[1]["offset"], 5);
        // It holds whole documents: readable by its owner only.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
