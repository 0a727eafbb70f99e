//! The Zeek preset: one `zeek` per shard, run in its log directory, JSON logs with community-id,
//! `-C` for offline traces, reading its FIFO (`-r pcap::FIFO` from Zeek 8.2 on, the plain path
//! before) or its spool through the `pcapdir::` packet source plugin (zeek-plugin/). At its end
//! each instance writes the number of packets it processed to [`PACKETS_FILE`] in its log
//! directory ([`packets_seen`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::consumer::{ConsumerSpec, Ending, PacketReport, Readiness};
use super::{Feed, ShardSlot};
use crate::sink::spool;

/// The file in a Zeek instance's log directory that holds, once it has finished, the number of
/// packets it processed.
pub const PACKETS_FILE: &str = "shardcap-packets.txt";

/// Given to every instance with `-e`: at `zeek_done` (after everything else), writes
/// `get_net_stats()$pkts_recvd` (packets the packet source handed to Zeek, after any BPF filter;
/// the same for `pcap::` FIFOs and `pcapdir::` spools in Zeek 8.0 and 8.2) to [`PACKETS_FILE`].
pub const PACKETS_SCRIPT: &str = "event zeek_done() &priority=-100 { \
     local f = open(\"shardcap-packets.txt\"); print f, get_net_stats()$pkts_recvd; close(f); }";

/// The number of packets the Zeek instance logging to `log_dir` processed, as it wrote at its end;
/// `None` when it wrote nothing (it did not finish, or was not started by shardcap's preset).
pub fn packets_seen(log_dir: &Path) -> io::Result<Option<u64>> {
    let path = log_dir.join(PACKETS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.trim().parse().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {:?} is not a packet count",
                path.display(),
                text.trim()
            ),
        )
    })
}

/// A Zeek release, as `zeek --version` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ZeekVersion {
    pub major: u32,
    pub minor: u32,
}

impl ZeekVersion {
    /// Parses `zeek version 6.0.3` (also `8.1.0-dev.42`, or a bare `7.0`).
    pub fn parse(text: &str) -> Option<Self> {
        let v = text.trim().rsplit(' ').next()?;
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ZeekVersion { major, minor })
    }

    /// Runs `program --version`.
    pub fn detect(program: &str) -> Result<Self, String> {
        let out = Command::new(program)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run `{program} --version`: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Self::parse(&text).ok_or_else(|| {
            format!(
                "`{program} --version` printed {:?}, not a Zeek version",
                text.trim()
            )
        })
    }

    /// Zeek 8.2 reads a FIFO only through the explicit `pcap::` packet source.
    fn needs_pcap_prefix(self) -> bool {
        self >= ZeekVersion { major: 8, minor: 2 }
    }

    /// Community-id logging ships with Zeek from 6.0 on (a zkg package before).
    fn has_community_id(self) -> bool {
        self.major >= 6
    }
}

impl fmt::Display for ZeekVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// How Zeek instances are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zeek {
    /// The installed Zeek's version.
    pub version: ZeekVersion,
    /// The `pcapdir` plugin's build directory, put in ZEEK_PLUGIN_PATH for spool input; `None` when
    /// the plugin is installed in Zeek's own plugin directory.
    pub plugin_dir: Option<PathBuf>,
    /// ZEEK_PLUGIN_PATH as shardcap found it, kept after the plugin directory.
    pub inherited_plugin_path: Option<String>,
    /// With `--ids zeek-cluster`: the cluster script (`zeek_cluster`) that makes each instance
    /// the cluster worker `worker-K`.
    pub cluster_script: Option<String>,
}

impl Zeek {
    /// The scripts and settings for the logs: JSON, with community-id when Zeek has it.
    pub fn log_args(&self) -> Vec<String> {
        let mut args = vec!["LogAscii::use_json=T".to_string()];
        if self.version.has_community_id() {
            args.push("policy/protocols/conn/community-id-logging".into());
        }
        args
    }

    /// The consumer for `slot`: a pure function of its inputs. Zeek runs in the shard's log
    /// directory (where it writes its logs), so every path given must be absolute.
    pub fn command(&self, slot: &ShardSlot) -> ConsumerSpec {
        let mut argv: Vec<String> = vec!["zeek".into(), "-C".into(), "-r".into()];
        let mut env = Vec::new();
        let mut failure_marker = None;
        match &slot.feed {
            Feed::Fifo(p) if self.version.needs_pcap_prefix() => {
                argv.push(format!("pcap::{}", p.display()))
            }
            Feed::Fifo(p) => argv.push(p.display().to_string()),
            Feed::Spool(dir) => {
                argv.push(format!("pcapdir::{}", dir.display()));
                failure_marker = dir
                    .parent()
                    .map(|root| spool::error_marker(root, slot.shard));
                if let Some(plugin) = &self.plugin_dir {
                    let mut path = plugin.display().to_string();
                    if let Some(old) = self.inherited_plugin_path.as_deref() {
                        path = format!("{path}:{old}");
                    }
                    env.push(("ZEEK_PLUGIN_PATH".to_string(), path));
                }
            }
        }
        argv.extend(["-e".into(), PACKETS_SCRIPT.into()]);
        argv.extend(self.log_args());
        if let Some(script) = &self.cluster_script {
            argv.push(script.clone());
            env.push((
                "CLUSTER_NODE".to_string(),
                super::zeek_cluster::worker_name(slot.shard),
            ));
        }
        ConsumerSpec {
            shard: slot.shard,
            name: "zeek".into(),
            argv,
            env,
            cwd: Some(slot.log_dir.clone()),
            log_dir: slot.log_dir.clone(),
            ready: match slot.feed {
                Feed::Fifo(_) => Readiness::OpenedFifo,
                Feed::Spool(_) => Readiness::Started,
            },
            ending: Ending::AtEndOfInput,
            report: PacketReport::Zeek(slot.log_dir.clone()),
            failure_marker,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeek(version: &str, plugin: Option<&str>) -> Zeek {
        Zeek {
            version: ZeekVersion::parse(version).unwrap(),
            plugin_dir: plugin.map(PathBuf::from),
            inherited_plugin_path: None,
            cluster_script: None,
        }
    }

    fn slot(feed: Feed) -> ShardSlot {
        ShardSlot {
            shard: 0,
            global: 0,
            partition: 0,
            feed,
            log_dir: "/logs/shard-0".into(),
        }
    }

    fn fifo() -> ShardSlot {
        slot(Feed::Fifo("/logs/shard-0.pipe".into()))
    }

    fn spool() -> ShardSlot {
        slot(Feed::Spool("/spool/shard-0".into()))
    }

    #[test]
    fn versions_parse() {
        let v = |s| ZeekVersion::parse(s).unwrap();
        assert_eq!(
            v("zeek version 6.0.3\n"),
            ZeekVersion { major: 6, minor: 0 }
        );
        assert_eq!(
            v("zeek version 8.1.0-dev.42"),
            ZeekVersion { major: 8, minor: 1 }
        );
        assert_eq!(v("8.2"), ZeekVersion { major: 8, minor: 2 });
        assert_eq!(ZeekVersion::parse("zeek version"), None);
        assert!(ZeekVersion::detect("/nonexistent/zeek").is_err());
    }

    #[test]
    fn fifo_before_8_2_reads_the_plain_path() {
        for version in [
            "zeek version 6.0.4",
            "zeek version 7.0.5",
            "zeek version 8.1.1",
        ] {
            let spec = zeek(version, Some("/p")).command(&fifo());
            assert_eq!(
                spec.display_command(),
                format!(
                    "zeek -C -r /logs/shard-0.pipe -e {PACKETS_SCRIPT} LogAscii::use_json=T \
                 policy/protocols/conn/community-id-logging"
                ),
                "{version}"
            );
            assert!(spec.env.is_empty());
            assert_eq!(spec.cwd.as_deref(), Some("/logs/shard-0".as_ref()));
            assert_eq!(spec.ready, Readiness::OpenedFifo);
            assert_eq!(spec.ending, Ending::AtEndOfInput);
        }
    }

    #[test]
    fn fifo_from_8_2_uses_the_pcap_source() {
        let spec = zeek("zeek version 8.2.0", None).command(&fifo());
        assert_eq!(
            spec.display_command(),
            format!(
                "zeek -C -r pcap::/logs/shard-0.pipe -e {PACKETS_SCRIPT} LogAscii::use_json=T \
             policy/protocols/conn/community-id-logging"
            )
        );
    }

    #[test]
    fn zeek_5_has_no_community_id_script() {
        let spec = zeek("zeek version 5.2.2", None).command(&fifo());
        assert_eq!(
            spec.display_command(),
            format!("zeek -C -r /logs/shard-0.pipe -e {PACKETS_SCRIPT} LogAscii::use_json=T")
        );
    }

    #[test]
    fn spool_reads_through_the_plugin() {
        for version in ["6.0", "7.0", "8.2"] {
            let spec = zeek(version, Some("/src/zeek-plugin/build")).command(&spool());
            assert_eq!(
                spec.display_command(),
                format!(
                    "zeek -C -r pcapdir::/spool/shard-0 -e {PACKETS_SCRIPT} LogAscii::use_json=T \
                 policy/protocols/conn/community-id-logging"
                ),
                "{version}"
            );
            assert_eq!(
                spec.env,
                [(
                    "ZEEK_PLUGIN_PATH".to_string(),
                    "/src/zeek-plugin/build".to_string()
                )]
            );
            assert_eq!(spec.ready, Readiness::Started);
            assert_eq!(spec.ending, Ending::AtEndOfInput);
            assert_eq!(
                spec.failure_marker.as_deref(),
                Some(Path::new("/spool/shard-0.error"))
            );
        }
        assert_eq!(zeek("8.2", None).command(&fifo()).failure_marker, None);
    }

    #[test]
    fn a_cluster_worker_loads_the_cluster_script_as_worker_k() {
        let mut z = zeek("8.2", None);
        z.cluster_script = Some("/logs/shardcap-cluster.zeek".into());
        let spec = z.command(&fifo());
        assert_eq!(
            spec.display_command(),
            format!(
                "zeek -C -r pcap::/logs/shard-0.pipe -e {PACKETS_SCRIPT} LogAscii::use_json=T \
             policy/protocols/conn/community-id-logging /logs/shardcap-cluster.zeek"
            )
        );
        assert_eq!(
            spec.env,
            [("CLUSTER_NODE".to_string(), "worker-0".to_string())]
        );
    }

    #[test]
    fn packets_seen_reads_what_the_script_writes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(packets_seen(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(PACKETS_FILE), "751\n").unwrap();
        assert_eq!(packets_seen(dir.path()).unwrap(), Some(751));
        std::fs::write(dir.path().join(PACKETS_FILE), "lots\n").unwrap();
        let err = packets_seen(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(PACKETS_SCRIPT.contains(PACKETS_FILE));
    }

    #[test]
    fn spool_keeps_an_inherited_plugin_path_and_an_installed_plugin_needs_none() {
        let mut z = zeek("7.0", Some("/b"));
        z.inherited_plugin_path = Some("/site/plugins".into());
        assert_eq!(z.command(&spool()).env[0].1, "/b:/site/plugins");
        assert!(zeek("7.0", None).command(&spool()).env.is_empty());
    }
}
