//! Command-line definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::flow::{HashMode, TunnelMode};
use crate::merge::Order;

/// Merge packet captures by packet time, shard them by symmetric flow hash, and feed Zeek/Suricata.
#[derive(Debug, Parser)]
#[command(name = "shardcap", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Merge inputs by packet time and shard them to N pcap streams.
    Run(RunArgs),
    /// Describe captures: one JSON object a line.
    Scan(ScanArgs),
    /// Write realistic multi-sensor traffic as size-rotated captures (samples, tests, benchmarks).
    Generate(crate::generate::GenerateArgs),
}

/// What to do with packets whose link type differs from the output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinkMismatch {
    /// Refuse inputs whose link types differ (exit 2).
    Error,
    /// Keep the first input's link type; drop (and count) packets of other link types.
    Drop,
}

/// `shardcap run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Capture files, directories (searched recursively, recognised by content), globs, or @LIST files.
    pub inputs: Vec<String>,
    /// Number of shards (output streams).
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub shards: u16,
    /// Flow key used to choose a shard.
    #[arg(long, value_enum, default_value = "5-tuple")]
    pub hash: HashMode,
    /// Key tunnelled packets by their outer or inner header.
    #[arg(long, value_enum, default_value = "outer")]
    pub tunnel: TunnelMode,
    /// Outputs: fifo:PATTERN, file:PATTERN or stdout; PATTERN contains {shard}.
    #[arg(short, long)]
    pub output: String,
    /// Packet order: merge on timestamps across inputs, or files one after another as given.
    #[arg(long, value_enum, default_value = "time")]
    pub order: Order,
    /// Most input files open at once during the merge.
    #[arg(long, default_value_t = 256)]
    pub max_open: usize,
    /// Inputs whose link types differ: refuse, or drop the packets of other link types.
    #[arg(long, value_enum, default_value = "error")]
    pub link_mismatch: LinkMismatch,
    /// Write stats as JSON to this file on SIGUSR2, periodically and at the end.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// Interval of the stats file and of progress lines.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub stats_interval: Duration,
}

/// `shardcap scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Capture files, directories, globs, or @LIST files.
    #[arg(required = true)]
    pub inputs: Vec<String>,
}

/// Parses durations such as `250ms`, `10s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 250ms, 10s, 5m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
