//! Outputs: the pcap stream format, per-shard writers and the destinations they write to.

pub mod deferred;
pub mod fifo;
pub mod output;
pub mod spool;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use fifo::FifoOutput;
use output::{FileOutput, Output, StdoutOutput};
use shardcap_capture::format::StreamHeader;
use shardcap_files::PartialFile;
use spool::{SpoolConfig, SpoolOutput};

/// The `-o` argument: where shard streams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `file:PATTERN`
    File(String),
    /// `fifo:PATTERN`
    Fifo(String),
    /// `dir:PATH`: a pcapdir spool, one `PATH/shard-K/` directory of segments per shard.
    Dir(String),
    /// `stdout` (one shard only)
    Stdout,
}

impl OutputSpec {
    /// Parses `fifo:PATTERN`, `file:PATTERN`, `dir:PATH` or `stdout`; PATTERN must contain
    /// `{shard}` when there is more than one shard.
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
        } else if let Some(p) = s.strip_prefix("dir:") {
            if p.is_empty() || p.contains("{shard}") {
                return Err(Error::usage(format!(
                    "-o {s}: dir: takes the spool directory; shards go to PATH/shard-K/"
                )));
            }
            Ok(OutputSpec::Dir(p.to_string()))
        } else if s == "stdout" || s == "-" {
            if shards != 1 {
                return Err(Error::usage(
                    "-o stdout carries one shard; use -n 1 or fifo:/file: outputs",
                ));
            }
            Ok(OutputSpec::Stdout)
        } else {
            Err(Error::usage(format!(
                "-o {s}: expected file:PATTERN, fifo:PATTERN, dir:PATH or stdout"
            )))
        }
    }

    /// The path of shard `k`, for path-based outputs (a spool's shard directory).
    pub fn path(&self, k: usize) -> Option<PathBuf> {
        match self {
            OutputSpec::File(p) | OutputSpec::Fifo(p) => {
                Some(PathBuf::from(p.replace("{shard}", &k.to_string())))
            }
            OutputSpec::Dir(p) => Some(spool::shard_dir(Path::new(p), k)),
            OutputSpec::Stdout => None,
        }
    }

    /// True when packets go to stdout (stats then go to stderr).
    pub fn is_stdout(&self) -> bool {
        matches!(self, OutputSpec::Stdout)
    }

    /// Checks what can be checked before anything is written: parent directories exist, a spool
    /// (created if missing) holds no earlier run.
    pub fn validate(&self, shards: usize) -> Result<()> {
        if let OutputSpec::Dir(p) = self {
            return spool::validate(Path::new(p), shards).map_err(Error::usage);
        }
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
                if matches!(self, OutputSpec::File(_)) {
                    PartialFile::check_target(&p).map_err(|e| Error::usage(e.to_string()))?;
                }
            } else if let Err(e) = StdoutOutput::open() {
                return Err(Error::usage(e.to_string()));
            }
        }
        Ok(())
    }

    /// True when opening needs the stream header (a spool writes it at the head of each segment);
    /// other outputs can be opened before the first capture is known.
    pub fn needs_header(&self) -> bool {
        matches!(self, OutputSpec::Dir(_))
    }

    /// Opens shard `k`'s output for a stream with `header`. FIFOs get a pipe of `pipe_size` bytes
    /// and wait for their reader unless `stop` is set; a spool cuts the stream into segments as
    /// `spool` says.
    pub fn open(
        &self,
        k: usize,
        header: StreamHeader,
        spool: SpoolConfig,
        pipe_size: usize,
        stop: &AtomicBool,
    ) -> Result<Box<dyn Output>> {
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
                    FifoOutput::open_sized(&p, stop, pipe_size).map(|o| Box::new(o) as _),
                    &p.display().to_string(),
                )
            }
            OutputSpec::Dir(root) => named(
                SpoolOutput::create(Path::new(root), k, header, spool).map(|o| Box::new(o) as _),
                &format!("spool {root}"),
            ),
            OutputSpec::Stdout => named(StdoutOutput::open().map(|o| Box::new(o) as _), "stdout"),
        }
    }
}
