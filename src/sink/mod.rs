//! Outputs: the pcap stream format, per-shard writers and the destinations they write to.

pub mod fifo;
pub mod format;
pub mod output;
pub mod writer;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use fifo::FifoOutput;
use output::{FileOutput, Output, StdoutOutput};

/// The `-o` argument: where shard streams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `file:PATTERN`
    File(String),
    /// `fifo:PATTERN`
    Fifo(String),
    /// `stdout` (one shard only)
    Stdout,
}

impl OutputSpec {
    /// Parses `fifo:PATTERN`, `file:PATTERN` or `stdout`; PATTERN must contain `{shard}` when
    /// there is more than one shard.
    pub fn parse(s: &str, shards: usize) -> Result<Self> {
        let need_shard = |p: &str| {
            if shards > 1 && !p.contains("{shard}") {
                Err(Error::usage(format!(
                    "-o {s}: the pattern needs {{shard}} with {shards} shards"
                )))
            } else if p.is_empty() {
                Err(Error::usage(format!("-o {s}: empty path")))
            } else {
                Ok(p.to_string())
            }
        };
        if let Some(p) = s.strip_prefix("file:") {
            Ok(OutputSpec::File(need_shard(p)?))
        } else if let Some(p) = s.strip_prefix("fifo:") {
            Ok(OutputSpec::Fifo(need_shard(p)?))
        } else if s == "stdout" || s == "-" {
            if shards != 1 {
                return Err(Error::usage(
                    "-o stdout carries one shard; use -n 1 or fifo:/file: outputs",
                ));
            }
            Ok(OutputSpec::Stdout)
        } else {
            Err(Error::usage(format!(
                "-o {s}: expected file:PATTERN, fifo:PATTERN or stdout"
            )))
        }
    }

    /// The path of shard `k`, for path-based outputs.
    pub fn path(&self, k: usize) -> Option<PathBuf> {
        match self {
            OutputSpec::File(p) | OutputSpec::Fifo(p) => {
                Some(PathBuf::from(p.replace("{shard}", &k.to_string())))
            }
            OutputSpec::Stdout => None,
        }
    }

    /// True when packets go to stdout (stats then go to stderr).
    pub fn is_stdout(&self) -> bool {
        matches!(self, OutputSpec::Stdout)
    }

    /// Checks what can be checked before anything is written: parent directories exist.
    pub fn validate(&self, shards: usize) -> Result<()> {
        for k in 0..shards {
            if let Some(p) = self.path(k) {
                let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
                if let Some(d) = parent.filter(|d| !d.is_dir()) {
                    return Err(Error::usage(format!(
                        "{}: directory {} does not exist",
                        p.display(),
                        d.display()
                    )));
                }
            } else if let Err(e) = StdoutOutput::open() {
                return Err(Error::usage(e.to_string()));
            }
        }
        Ok(())
    }

    /// Opens shard `k`'s output. FIFOs wait for their reader unless `stop` is set.
    pub fn open(&self, k: usize, stop: &AtomicBool) -> Result<Box<dyn Output>> {
        let named = |r: std::io::Result<Box<dyn Output>>, what: &str| {
            r.map_err(|e| Error::runtime(format!("shard {k}: cannot open {what}: {e}")))
        };
        match self {
            OutputSpec::File(_) => {
                let p = self.path(k).unwrap();
                named(
                    FileOutput::create(&p).map(|o| Box::new(o) as _),
                    &p.display().to_string(),
                )
            }
            OutputSpec::Fifo(_) => {
                let p = self.path(k).unwrap();
                named(
                    FifoOutput::open(&p, stop).map(|o| Box::new(o) as _),
                    &p.display().to_string(),
                )
            }
            OutputSpec::Stdout => named(StdoutOutput::open().map(|o| Box::new(o) as _), "stdout"),
        }
    }
}
