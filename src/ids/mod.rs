//! IDS consumers: one process per shard (`--ids suricata|zeek` presets or any `--exec` command),
//! each reading its shard's FIFO or spool directory and writing to its own log directory, supervised
//! for the whole run.

pub mod accounting;
pub mod consumer;
pub mod exec;
pub mod guarded;
pub mod supervise;
pub mod suricata;
pub mod zeek;
pub mod zeek_cluster;

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sink::OutputSpec;
use consumer::ConsumerSpec;
use shardcap_flow::Partition;
pub use supervise::Consumers;

/// The log directory when `--ids` or `--exec` is given without `--log-dir`.
pub const DEFAULT_LOG_DIR: &str = "logs";

/// The IDS presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdsKind {
    /// Suricata with suricata-conf/ (FIFO: `-r`; spool: continuous directory mode).
    Suricata,
    /// Zeek with JSON logs and community-id (FIFO; spool through the pcapdir plugin).
    Zeek,
    /// The Zeek instances as the workers of one Zeek cluster (manager, proxy and logger started
    /// by shardcap): one set of logs, in LOGDIR/logger/ (FIFO only).
    ZeekCluster,
}

/// What the run asks of its consumers.
#[derive(Debug, Clone, Default)]
pub struct IdsConfig {
    /// The preset to start, if any.
    pub ids: Option<IdsKind>,
    /// The `--exec` command template, if any (excludes `ids`).
    pub exec: Option<String>,
    /// Where the shards' log directories go (`DEFAULT_LOG_DIR` when consumers start).
    pub log_dir: Option<PathBuf>,
    /// Suricata rule files replacing the shipped ones.
    pub rules: Vec<PathBuf>,
    /// Restart a consumer that dies instead of failing the run.
    pub restart: bool,
    /// The zeek-plugin build directory.
    pub zeek_plugin: Option<PathBuf>,
    /// Packet threads per instance.
    pub threads: Option<u16>,
    /// The logs are shipped (`--log-dir` then has a use without consumers).
    pub shipping: bool,
    /// Number of shards.
    pub shards: usize,
    /// This node's part of the flow-hash space (`{partition}`, `{global}` in `--exec`).
    pub partition: Partition,
    /// The run replays an interrupted run's stream: its instances' logs are set aside first.
    pub replay: bool,
}

/// How a shard's stream reaches its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// A FIFO carrying one pcap stream.
    Fifo(PathBuf),
    /// A spool directory of numbered segments (`PATH/shard-K`).
    Spool(PathBuf),
}

impl Feed {
    /// The FIFO or the spool directory.
    pub fn path(&self) -> &Path {
        match self {
            Feed::Fifo(p) | Feed::Spool(p) => p,
        }
    }

    /// Shard `k`'s feed for the output `spec`, as an absolute path: a FIFO, or `PATH/shard-K` of
    /// a `dir:PATH` spool.
    pub fn of(spec: &OutputSpec, k: usize) -> Result<Self> {
        let path = || absolute(&spec.path(k).expect("a path output"));
        match spec {
            OutputSpec::Fifo(_) => Ok(Feed::Fifo(path()?)),
            OutputSpec::Dir(_) => Ok(Feed::Spool(path()?)),
            OutputSpec::File(_) | OutputSpec::Stdout => Err(Error::usage(
                "consumers (--ids, --exec) read fifo: outputs or dir: spools; \
                 drop -o to get FIFOs in the log directory",
            )),
        }
    }
}

/// What one shard's consumer reads and where it writes its logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSlot {
    pub shard: usize,
    /// The shard's number among every partition's shards (`shard` without partitions).
    pub global: usize,
    /// This node's partition number (0 without partitions).
    pub partition: u32,
    pub feed: Feed,
    /// `LOGDIR/shard-K`.
    pub log_dir: PathBuf,
}

impl IdsConfig {
    /// True when the run starts consumers.
    pub fn wanted(&self) -> bool {
        self.ids.is_some() || self.exec.is_some()
    }

    /// The `-o` used when consumers are started and no `-o` was given: FIFOs
    /// `LOGDIR/shard-K.pipe`, for every preset. Measured against the spool (`-o dir:`), FIFOs cost
    /// Suricata less CPU (its offline flow threads wake every 250 µs for as long as it runs, and
    /// the spool's directory polling makes it run longer) and Zeek the same, with no plugin, disk
    /// or spool budget needed (docs/PERFORMANCE.md, "Suricata and Zeek: FIFO or spool").
    pub fn default_output(&self) -> Option<String> {
        self.wanted().then(|| {
            let dir = self
                .log_dir
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_LOG_DIR));
            format!("fifo:{}/shard-{{shard}}.pipe", dir.display())
        })
    }
}

/// Checks the consumer options (`spec` is the `-o` given or defaulted), creates the log directories and builds one consumer a shard (not
/// started yet). Everything wrong here is a usage error: nothing has been written.
pub fn plan(args: &IdsConfig, spec: &OutputSpec) -> Result<Consumers> {
    if !args.wanted() {
        let stray = [
            (!args.rules.is_empty(), "--rules"),
            (args.restart, "--ids-restart"),
            (args.zeek_plugin.is_some(), "--zeek-plugin"),
            (args.threads.is_some(), "--ids-threads"),
            // --ship reads --log-dir too: logs written by consumers outside this run.
            (args.log_dir.is_some() && !args.shipping, "--log-dir"),
        ];
        if let Some((_, flag)) = stray.iter().find(|(given, _)| *given) {
            return Err(Error::usage(format!(
                "{flag} applies to consumers (or, for --log-dir, to --ship): add --ids \
                 suricata|zeek or --exec CMD"
            )));
        }
        return Ok(Consumers::none());
    }
    if !args.rules.is_empty() && args.ids != Some(IdsKind::Suricata) {
        return Err(Error::usage("--rules applies to --ids suricata"));
    }
    if args.zeek_plugin.is_some() && args.ids != Some(IdsKind::Zeek) {
        return Err(Error::usage("--zeek-plugin applies to --ids zeek"));
    }
    if args.threads.is_some() && args.ids != Some(IdsKind::Suricata) {
        return Err(Error::usage("--ids-threads applies to --ids suricata"));
    }
    let shards = args.shards;
    let log_dir = absolute(
        args.log_dir
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_LOG_DIR)),
    )?;
    fs::create_dir_all(&log_dir).map_err(|e| {
        Error::usage(format!(
            "--log-dir {}: cannot create it: {e}",
            log_dir.display()
        ))
    })?;
    let cluster = match args.ids {
        Some(IdsKind::ZeekCluster) => {
            if matches!(spec, OutputSpec::Dir(_)) || args.restart {
                return Err(Error::usage(
                    "--ids zeek-cluster reads FIFOs (no -o dir:) and restarts no worker \
                     (no --ids-restart)",
                ));
            }
            let version = zeek_version()?;
            let z = zeek::Zeek {
                version,
                plugin_dir: None,
                inherited_plugin_path: None,
                cluster_script: None,
            };
            Some(zeek_cluster::ZeekCluster::plan(
                &log_dir,
                shards,
                &z.log_args(),
            )?)
        }
        _ => None,
    };
    let build = preset(args, shards, cluster.as_ref().map(|c| c.script()))?;
    if args.replay {
        let feeds = (0..shards)
            .map(|k| Feed::of(spec, k))
            .collect::<Result<Vec<_>>>()?;
        set_aside(&log_dir, &feeds)?;
    }
    let mut specs = Vec::with_capacity(shards);
    for k in 0..shards {
        let slot = ShardSlot {
            shard: k,
            global: args.partition.global(k, shards),
            partition: args.partition.index,
            feed: Feed::of(spec, k)?,
            log_dir: log_dir.join(format!("shard-{k}")),
        };
        prepare_log_dir(&slot.log_dir, args.ids == Some(IdsKind::Suricata))?;
        if let Some(c) = &cluster {
            c.prepare_worker(&slot.log_dir)?;
        }
        match &slot.feed {
            Feed::Fifo(p) => make_fifo(p)?,
            // The reader may look for its directory before the spool output is opened.
            Feed::Spool(d) => fs::create_dir_all(d)
                .map_err(|e| Error::usage(format!("{}: cannot create it: {e}", d.display())))?,
        }
        specs.push(build(&slot));
    }
    Ok(Consumers::new(specs, args.restart).with_cluster(cluster))
}

/// The version of the `zeek` in PATH.
fn zeek_version() -> Result<zeek::ZeekVersion> {
    zeek::ZeekVersion::detect("zeek")
        .map_err(|e| Error::usage(format!("--ids zeek: {e} (is Zeek installed?)")))
}

/// Builds a shard's consumer.
type Preset = Box<dyn Fn(&ShardSlot) -> ConsumerSpec>;

/// The consumer builder chosen by `--ids`/`--exec` (`cluster_script` with `--ids zeek-cluster`).
fn preset(args: &IdsConfig, shards: usize, cluster_script: Option<String>) -> Result<Preset> {
    if let Some(template) = args.exec.clone() {
        let here = std::env::current_dir()
            .map_err(|e| Error::usage(format!("--exec: the current directory: {e}")))?;
        return Ok(Box::new(move |slot| exec::command(&template, slot, &here)));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match args.ids.expect("wanted") {
        IdsKind::Suricata => {
            need_program("suricata", "install Suricata 7 (Debian: suricata)")?;
            let conf_dir = shipped("suricata-conf", "suricata.yaml")?;
            let mut rules = Vec::with_capacity(args.rules.len());
            for r in &args.rules {
                if !r.is_file() {
                    return Err(Error::usage(format!(
                        "--rules {}: no such file",
                        r.display()
                    )));
                }
                rules.push(absolute(r)?);
            }
            let suricata = suricata::Suricata {
                conf_dir,
                rules,
                threads: suricata::threads_per_instance(
                    shards,
                    cores,
                    args.threads.map(usize::from),
                ),
            };
            Ok(Box::new(move |slot| suricata.command(slot, cores)))
        }
        IdsKind::Zeek | IdsKind::ZeekCluster => {
            let version = zeek_version()?;
            let plugin_dir = match &args.zeek_plugin {
                Some(d) if d.is_dir() => Some(absolute(d)?),
                Some(d) => {
                    return Err(Error::usage(format!(
                        "--zeek-plugin {}: not a directory (build zeek-plugin/ first)",
                        d.display()
                    )))
                }
                None => shipped("zeek-plugin/build", "").ok(),
            };
            let z = zeek::Zeek {
                version,
                plugin_dir,
                inherited_plugin_path: std::env::var("ZEEK_PLUGIN_PATH").ok(),
                cluster_script,
            };
            Ok(Box::new(move |slot| z.command(slot)))
        }
    }
}

/// Prefix of the directories, inside the log directory, that keep an interrupted run's logs.
pub const SET_ASIDE_PREFIX: &str = ".replaced-";

/// Before a replay: moves the interrupted run's shard log directories to
/// `LOGDIR/.replaced-R/shard-K` (R the first free number) and removes its FIFOs. Hidden, the moved
/// logs are never read by the shipper: what the interrupted instances wrote after the shipper's
/// last acknowledgement (records the replay produces again, and, at their end of input, records
/// of flows cut short) is not indexed. An instance of the interrupted run still running keeps
/// writing there, and keeps only the removed FIFO open.
fn set_aside(log_dir: &Path, feeds: &[Feed]) -> Result<()> {
    let fail = |p: &Path, e: std::io::Error| {
        Error::runtime(format!(
            "{}: cannot set an interrupted run's logs aside: {e}",
            p.display()
        ))
    };
    let place = (1..)
        .map(|r| log_dir.join(format!("{SET_ASIDE_PREFIX}{r}")))
        .find(|p| !p.exists())
        .expect("a free number");
    for (k, feed) in feeds.iter().enumerate() {
        let shard = log_dir.join(format!("shard-{k}"));
        if fs::read_dir(&shard).is_ok_and(|mut d| d.next().is_some()) {
            fs::create_dir_all(&place).map_err(|e| fail(&place, e))?;
            let to = place.join(format!("shard-{k}"));
            fs::rename(&shard, &to).map_err(|e| fail(&shard, e))?;
            log::warn!(
                "shard {k}: the interrupted run's logs are set aside in {}",
                to.display()
            );
        }
        if let Feed::Fifo(p) = feed {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(p, e)),
            }
        }
    }
    Ok(())
}

/// Creates a shard's log directory; refuses one that already holds logs (a rerun would mix them).
fn prepare_log_dir(dir: &Path, control_socket: bool) -> Result<()> {
    let used = fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if used {
        return Err(Error::usage(format!(
            "{} already holds logs of an earlier run; move it away or choose another --log-dir",
            dir.display()
        )));
    }
    fs::create_dir_all(dir)
        .map_err(|e| Error::usage(format!("{}: cannot create it: {e}", dir.display())))?;
    let socket = suricata::Suricata::socket_path(dir);
    if control_socket && socket.as_os_str().len() > suricata::MAX_SOCKET_PATH {
        return Err(Error::usage(format!(
            "{}: too long for a control socket path inside it; choose a shorter --log-dir",
            dir.display()
        )));
    }
    Ok(())
}

/// Creates the FIFO `path` unless it exists (a consumer may look for it before shardcap opens it).
fn make_fifo(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match fs::metadata(path) {
        Ok(md) if md.file_type().is_fifo() => Ok(()),
        Ok(_) => Err(Error::usage(format!(
            "{} exists and is not a FIFO; remove it or choose another path",
            path.display()
        ))),
        Err(_) => nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .map_err(|e| Error::usage(format!("{}: cannot create the FIFO: {e}", path.display()))),
    }
}

/// A file shipped with shardcap (`name`, holding `probe`), found in the source tree the binary was
/// built from or in an installed share directory.
pub fn shipped(name: &str, probe: &str) -> Result<PathBuf> {
    let mut places = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(name)];
    if let Some(prefix) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
    {
        places.push(prefix.join("share/shardcap").join(name));
    }
    places.push(Path::new("/usr/local/share/shardcap").join(name));
    places.push(Path::new("/usr/share/shardcap").join(name));
    places
        .iter()
        .find(|p| p.join(probe).exists())
        .cloned()
        .ok_or_else(|| {
            Error::usage(format!(
                "cannot find {name}/ (looked in {})",
                places
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Fails with `hint` unless `program` is on PATH.
fn need_program(program: &str, hint: &str) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| d.join(program).is_file()) {
        Ok(())
    } else {
        Err(Error::usage(format!("{program} is not on PATH: {hint}")))
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::usage(format!("{}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_follow_the_output() {
        let fifo = OutputSpec::parse(
            "fifo:/run/s-{shard}.pipe",
            2,
            shardcap_flow::Partition::WHOLE,
        )
        .unwrap();
        assert_eq!(
            Feed::of(&fifo, 1).unwrap(),
            Feed::Fifo("/run/s-1.pipe".into())
        );
        let spool = OutputSpec::parse("dir:/spool", 4, shardcap_flow::Partition::WHOLE).unwrap();
        assert_eq!(
            Feed::of(&spool, 3).unwrap(),
            Feed::Spool("/spool/shard-3".into())
        );
        let file =
            OutputSpec::parse("file:/o-{shard}.pcap", 2, shardcap_flow::Partition::WHOLE).unwrap();
        let err = Feed::of(&file, 0).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
        assert!(err.to_string().contains("drop -o"), "{err}");
    }

    #[test]
    fn every_preset_defaults_to_fifos_in_the_log_directory() {
        for ids in [IdsKind::Suricata, IdsKind::Zeek, IdsKind::ZeekCluster] {
            let cfg = IdsConfig {
                ids: Some(ids),
                ..IdsConfig::default()
            };
            assert_eq!(
                cfg.default_output().as_deref(),
                Some("fifo:logs/shard-{shard}.pipe"),
                "{ids:?}"
            );
        }
        let cfg = IdsConfig {
            exec: Some("cat {input}".into()),
            log_dir: Some("/var/ids".into()),
            ..IdsConfig::default()
        };
        assert_eq!(
            cfg.default_output().as_deref(),
            Some("fifo:/var/ids/shard-{shard}.pipe")
        );
        assert_eq!(IdsConfig::default().default_output(), None);
    }
}
