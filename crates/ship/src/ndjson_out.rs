//! The embedded default when no `--es` is given: the bulk NDJSON that would be sent, written to a
//! file (`NAME.partial` until complete, then renamed) or to stdout, every item counted as indexed.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::client::{Failure, ItemReply};
use crate::sender::Transport;
use shardcap_files::PartialFile;

/// Where the NDJSON goes.
enum Sink {
    File(PartialFile),
    Stdout(io::Stdout),
}

/// Writes bulk bodies instead of sending them.
pub struct NdjsonOut {
    sink: Mutex<Option<Sink>>,
}

impl NdjsonOut {
    /// To `path` (created as `path.partial`), or stdout when `None`.
    pub fn create(path: Option<&Path>) -> io::Result<Self> {
        let sink = match path {
            Some(p) => Sink::File(PartialFile::create(p)?),
            None => Sink::Stdout(io::stdout()),
        };
        Ok(NdjsonOut {
            sink: Mutex::new(Some(sink)),
        })
    }

    /// Flushes, and gives a file its final name.
    pub fn finish(&self) -> io::Result<()> {
        match self
            .sink
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .take()
        {
            Some(Sink::File(f)) => f.finish(),
            Some(Sink::Stdout(s)) => s.lock().flush(),
            None => Ok(()),
        }
    }
}

impl Transport for NdjsonOut {
    fn bulk(&self, body: &[u8]) -> Result<Vec<ItemReply>, Failure> {
        let mut sink = self
            .sink
            .lock()
            .map_err(|_| Failure::Fatal("output lock poisoned".into()))?;
        let written = match sink.as_mut() {
            Some(Sink::File(f)) => f.write_all(body),
            Some(Sink::Stdout(s)) => s.lock().write_all(body),
            None => Err(io::Error::other("output already finished")),
        };
        written.map_err(|e| Failure::Fatal(format!("writing the NDJSON output: {e}")))?;
        let items = body.iter().filter(|&&b| b == b'\n').count() / 2;
        Ok(vec![
            ItemReply {
                status: 201,
                error: None
            };
            items
        ])
    }
}
