//! The Suricata preset: one `suricata` per shard with the configuration shipped in suricata-conf/,
//! reading its FIFO (`-r FIFO`) or its spool directory in continuous mode, each with its own log
//! directory, pid file and unix-command socket.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::consumer::{ConsumerSpec, Ending, PacketReport, Readiness};
use super::{Feed, ShardSlot};

/// The longest unix socket path the kernel accepts (sun_path less its terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// How Suricata instances are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suricata {
    /// The directory holding suricata.yaml, classification.config, reference.config,
    /// threshold.config and rules/local.rules.
    pub conf_dir: PathBuf,
    /// Rule files; the shipped rules/local.rules when empty.
    pub rules: Vec<PathBuf>,
    /// Packet-processing threads per instance (1: runmode single).
    pub threads: usize,
}

/// Packet-processing threads per instance when `shards` instances share `cores` cores: the cores
/// divided among the instances, at least one; `requested` (`--ids-threads`) overrides.
pub fn threads_per_instance(shards: usize, cores: usize, requested: Option<usize>) -> usize {
    requested.unwrap_or(cores / shards.max(1)).max(1)
}

impl Suricata {
    /// The rule files instances load.
    pub fn rule_files(&self) -> Vec<PathBuf> {
        if self.rules.is_empty() {
            vec![self.conf_dir.join("rules").join("local.rules")]
        } else {
            self.rules.clone()
        }
    }

    /// The unix-command socket of the instance logging to `log_dir`.
    pub fn socket_path(log_dir: &Path) -> PathBuf {
        log_dir.join("suricata.socket")
    }

    /// The consumer for `slot`. Paths in `self` and `slot` should be absolute.
    pub fn command(&self, slot: &ShardSlot, cores: usize) -> ConsumerSpec {
        let conf = |name: &str| self.conf_dir.join(name).display().to_string();
        let log_dir = slot.log_dir.display().to_string();
        let socket = Self::socket_path(&slot.log_dir);
        let mut argv: Vec<String> = vec![
            "suricata".into(),
            "-c".into(),
            conf("suricata.yaml"),
            "-l".into(),
            log_dir.clone(),
            "--pidfile".into(),
            format!("{log_dir}/suricata.pid"),
            "-k".into(),
            "none".into(),
        ];
        let mut set = |kv: String| {
            argv.push("--set".into());
            argv.push(kv);
        };
        set("unix-command.enabled=yes".into());
        set(format!("unix-command.filename={}", socket.display()));
        for name in [
            "classification-file=classification.config",
            "reference-config-file=reference.config",
            "threshold-file=threshold.config",
        ] {
            let (key, file) = name.split_once('=').unwrap();
            set(format!("{key}={}", conf(file)));
        }
        for (i, rules) in self.rule_files().iter().enumerate() {
            set(format!("rule-files.{i}={}", rules.display()));
        }
        if self.threads <= 1 {
            argv.extend(["--runmode".into(), "single".into()]);
        } else {
            argv.extend(["--runmode".into(), "autofp".into()]);
            argv.push("--set".into());
            argv.push(format!(
                "threading.detect-thread-ratio={}",
                thread_ratio(self.threads, cores)
            ));
        }
        argv.push("-r".into());
        argv.push(slot.feed.path().display().to_string());
        let (ready, ending) = match &slot.feed {
            Feed::Fifo(_) => (Readiness::OpenedFifo, Ending::AtEndOfInput),
            Feed::Spool(dir) => {
                argv.extend(["--pcap-file-continuous".into(), "--pcap-file-delete".into()]);
                (
                    Readiness::Socket(socket),
                    Ending::TermWhenDrained(dir.clone()),
                )
            }
        };
        ConsumerSpec {
            shard: slot.shard,
            name: "suricata".into(),
            argv,
            env: Vec::new(),
            cwd: None,
            log_dir: slot.log_dir.clone(),
            ready,
            ending,
            report: PacketReport::SuricataEve(slot.log_dir.join("eve.json")),
            failure_marker: None,
        }
    }
}

/// Bytes read from the end of eve.json to find the final stats record.
const STATS_TAIL: u64 = 8 << 20;

/// The packets Suricata decoded, from the last stats record in `eve` (written when it exits; the
/// shipped configuration logs stats with totals). `None` when there is no stats record.
pub fn packets_seen(eve: &Path) -> io::Result<Option<u64>> {
    let mut f = File::open(eve)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(STATS_TAIL)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let last = tail
        .split(|&b| b == b'\n')
        .rev()
        .filter(|l| l.windows(20).any(|w| w == br#""event_type":"stats""#))
        .find_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok());
    Ok(last.and_then(|v| v.pointer("/stats/decoder/pkts")?.as_u64()))
}

/// Suricata's `threading.detect-thread-ratio` (workers = ratio x cores) for `threads` workers.
fn thread_ratio(threads: usize, cores: usize) -> String {
    let r = threads as f64 / cores.max(1) as f64;
    let s = format!("{r:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(threads: usize) -> Suricata {
        Suricata {
            conf_dir: "/src/suricata-conf".into(),
            rules: Vec::new(),
            threads,
        }
    }

    fn slot(feed: Feed) -> ShardSlot {
        ShardSlot {
            shard: 1,
            global: 1,
            partition: 0,
            feed,
            log_dir: "/logs/shard-1".into(),
        }
    }

    #[test]
    fn threads_share_the_cores() {
        assert_eq!(threads_per_instance(1, 2, None), 2);
        assert_eq!(threads_per_instance(2, 2, None), 1);
        assert_eq!(threads_per_instance(4, 2, None), 1);
        assert_eq!(threads_per_instance(3, 16, None), 5);
        assert_eq!(threads_per_instance(4, 2, Some(3)), 3);
        assert_eq!(thread_ratio(5, 16), "0.3125");
        assert_eq!(thread_ratio(2, 2), "1");
    }

    #[test]
    fn fifo_command_line() {
        let spec = preset(1).command(&slot(Feed::Fifo("/logs/shard-1.pipe".into())), 2);
        assert_eq!(
            spec.display_command(),
            "suricata -c /src/suricata-conf/suricata.yaml -l /logs/shard-1 \
             --pidfile /logs/shard-1/suricata.pid -k none \
             --set unix-command.enabled=yes --set unix-command.filename=/logs/shard-1/suricata.socket \
             --set classification-file=/src/suricata-conf/classification.config \
             --set reference-config-file=/src/suricata-conf/reference.config \
             --set threshold-file=/src/suricata-conf/threshold.config \
             --set rule-files.0=/src/suricata-conf/rules/local.rules \
             --runmode single -r /logs/shard-1.pipe"
        );
        assert_eq!(spec.ready, Readiness::OpenedFifo);
        assert_eq!(spec.ending, Ending::AtEndOfInput);
    }

    #[test]
    fn spool_command_line_with_user_rules() {
        let mut p = preset(2);
        p.rules = vec!["/r/a.rules".into(), "/r/b.rules".into()];
        let spec = p.command(&slot(Feed::Spool("/spool/shard-1".into())), 4);
        let cmd = spec.display_command();
        assert!(
            cmd.contains("--set rule-files.0=/r/a.rules --set rule-files.1=/r/b.rules"),
            "{cmd}"
        );
        assert!(!cmd.contains("local.rules"), "{cmd}");
        assert!(
            cmd.ends_with(
                "--runmode autofp --set threading.detect-thread-ratio=0.5 \
                 -r /spool/shard-1 --pcap-file-continuous --pcap-file-delete"
            ),
            "{cmd}"
        );
        assert_eq!(
            spec.ready,
            Readiness::Socket("/logs/shard-1/suricata.socket".into())
        );
        assert_eq!(
            spec.ending,
            Ending::TermWhenDrained("/spool/shard-1".into())
        );
    }
}
