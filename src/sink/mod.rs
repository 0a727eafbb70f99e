//! Outputs: the pcap stream format, per-shard writers and the destinations they write to.

pub mod batch;
pub mod deferred;
pub mod fence;
pub mod fifo;
pub mod output;
pub mod spool;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use fifo::FifoOutput;
use output::{FileIo, FileOutput, Output, StdoutOutput};
use shardcap_capture::format::StreamHeader;
use shardcap_files::PartialFile;
use shardcap_flow::Partition;
use spool::{SpoolConfig, SpoolOutput};

/// The `-o` argument: where shard streams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `file:PATTERN`
    File(Pattern),
    /// `fifo:PATTERN`
    Fifo(Pattern),
    /// `dir:PATH`: a pcapdir spool, one `PATH/shard-K/` directory of segments per shard.
    Dir(String),
    /// `stdout` (one shard only)
    Stdout,
}

/// How outputs are opened, beyond where they go.
#[derive(Debug, Clone, Copy)]
pub struct OutputOptions {
    /// How a spool cuts its stream into segments.
    pub spool: SpoolConfig,
    /// The pipe buffer size asked for FIFOs.
    pub pipe_size: usize,
    /// How file outputs are written.
    pub file_io: FileIo,
    /// The size of a direct file output's buffer.
    pub file_buffer: usize,
}

/// A path pattern with `{partition}` expanded; `{shard}` (the local shard) and `{global}` (its
/// number among every partition's shards) are expanded per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    /// Global number of local shard 0.
    base: usize,
}

impl Pattern {
    /// The path of local shard `k`.
    fn path(&self, k: usize) -> PathBuf {
        let p = self.text.replace("{shard}", &k.to_string());
        PathBuf::from(p.replace("{global}", &(self.base + k).to_string()))
    }
}

impl OutputSpec {
    /// Parses `fifo:PATTERN`, `file:PATTERN`, `dir:PATH` or `stdout` for the `shards` shards of
    /// `partition`; PATTERN must contain `{shard}` or `{global}` when there is more than one
    /// shard; `{partition}` (in PATTERN or PATH) is the partition's number.
    pub fn parse(s: &str, shards: usize, partition: Partition) -> Result<Self> {
        let expanded = s.replace("{partition}", &partition.index.to_string());
        let pattern = |p: &str| {
            if shards > 1 && !p.contains("{shard}") && !p.contains("{global}") {
                Err(Error::usage(format!(
                    "-o {s}: the pattern needs {{shard}} or {{global}} with {shards} shards"
                )))
            } else if p.is_empty() {
                Err(Error::usage(format!("-o {s}: empty path")))
            } else {
                Ok(Pattern {
                    text: p.to_string(),
                    base: partition.global(0, shards),
                })
            }
        };
        let s = expanded.as_str();
        if let Some(p) = s.strip_prefix("file:") {
            Ok(OutputSpec::File(pattern(p)?))
        } else if let Some(p) = s.strip_prefix("fifo:") {
            Ok(OutputSpec::Fifo(pattern(p)?))
        } else if let Some(p) = s.strip_prefix("dir:") {
            if p.is_empty() || p.contains("{shard}") || p.contains("{global}") {
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
            OutputSpec::File(p) | OutputSpec::Fifo(p) => Some(p.path(k)),
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

    /// Opens shard `k`'s output for a stream with `header`, as `options` say. FIFOs wait for
    /// their reader unless `stop` is set.
    pub fn open(
        &self,
        k: usize,
        header: StreamHeader,
        options: &OutputOptions,
        stop: &AtomicBool,
    ) -> Result<Box<dyn Output>> {
        let named = |r: std::io::Result<Box<dyn Output>>, what: &str| {
            r.map_err(|e| Error::runtime(format!("shard {k}: cannot open {what}: {e}")))
        };
        match self {
            OutputSpec::File(_) => {
                let p = self.path(k).unwrap();
                named(
                    FileOutput::create(&p, options.file_io, options.file_buffer)
                        .map(|o| Box::new(o) as _),
                    &p.display().to_string(),
                )
            }
            OutputSpec::Fifo(_) => {
                let p = self.path(k).unwrap();
                named(
                    FifoOutput::open_sized(&p, stop, options.pipe_size).map(|o| Box::new(o) as _),
                    &p.display().to_string(),
                )
            }
            OutputSpec::Dir(root) => named(
                SpoolOutput::create(Path::new(root), k, header, options.spool)
                    .map(|o| Box::new(o) as _),
                &format!("spool {root}"),
            ),
            OutputSpec::Stdout => named(StdoutOutput::open().map(|o| Box::new(o) as _), "stdout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_of_a_partition() {
        let part = Partition::new(2, 3).unwrap();
        let spec = OutputSpec::parse("file:/o/p{partition}-g{global}-s{shard}.pcap", 4, part);
        let spec = spec.unwrap();
        assert_eq!(spec.path(1).unwrap(), Path::new("/o/p2-g9-s1.pcap"));
        let spec = OutputSpec::parse("fifo:/o/{global}.pipe", 4, part).unwrap();
        assert_eq!(spec.path(3).unwrap(), Path::new("/o/11.pipe"));
        let spec = OutputSpec::parse("dir:/spool/{partition}", 4, part).unwrap();
        assert_eq!(spec.path(0).unwrap(), Path::new("/spool/2/shard-0"));
        let whole = OutputSpec::parse("file:/o/{global}.pcap", 2, Partition::WHOLE).unwrap();
        assert_eq!(whole.path(1).unwrap(), Path::new("/o/1.pcap"));
        for bad in ["file:/o/{partition}.pcap", "dir:/s/{global}"] {
            assert!(
                OutputSpec::parse(bad, 4, part).unwrap_err().is_usage(),
                "{bad}"
            );
        }
    }
}
