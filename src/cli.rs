//! Command-line definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::control::progress::ProgressMode;
use crate::control::redis::{RedisConfig, RedisMode};
use crate::ids::{IdsConfig, IdsKind};
use crate::input::retention::Policy;
use crate::merge::Order;
use crate::sink::output::FileIo;
use shardcap_flow::{HashMode, Partition, TunnelMode};
use shardcap_ship as ship;

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
    Run(Box<RunArgs>),
    /// Describe captures: one JSON object a line; optionally a coverage picture of them.
    Scan(ScanArgs),
    /// The Redis side: enqueue files, authorize them, show the queue, requeue failed files.
    Ctl(Box<CtlArgs>),
    /// Inspect a run's journal (`--state DIR`).
    #[command(subcommand)]
    State(StateCommand),
    /// Write realistic multi-sensor traffic as size-rotated captures (samples, tests, benchmarks).
    #[cfg(feature = "generate")]
    Generate(GenerateArgs),
    /// Ship Zeek and Suricata logs to Elasticsearch (or, without --es, write the bulk NDJSON).
    Ship(Box<ShipArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout (`shardcap man > shardcap.1`), or write
    /// shardcap.1 and one shardcap-SUBCOMMAND.1 a subcommand into DIR.
    Man {
        /// Where to write every page.
        dir: Option<std::path::PathBuf>,
    },
}

/// Parses the command-line twin `A` of a domain enum `T` and converts it.
fn enum_parser<A, T>() -> impl clap::builder::TypedValueParser<Value = T>
where
    A: ValueEnum + Clone + Send + Sync + 'static,
    T: From<A> + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser;
    clap::builder::EnumValueParser::<A>::new().map(T::from)
}

/// `--hash`: the command-line spelling of [`HashMode`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum HashArg {
    /// Address pair.
    #[value(name = "2-tuple")]
    Two,
    /// Address pair and port pair.
    #[value(name = "4-tuple")]
    Four,
    /// Address pair, port pair and protocol.
    #[value(name = "5-tuple")]
    Five,
}

impl From<HashArg> for HashMode {
    fn from(a: HashArg) -> Self {
        match a {
            HashArg::Two => HashMode::Two,
            HashArg::Four => HashMode::Four,
            HashArg::Five => HashMode::Five,
        }
    }
}

/// `--tunnel`: the command-line spelling of [`TunnelMode`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TunnelArg {
    /// The outer header (the IDS decapsulates).
    Outer,
    /// The innermost decodable header.
    Inner,
}

impl From<TunnelArg> for TunnelMode {
    fn from(a: TunnelArg) -> Self {
        match a {
            TunnelArg::Outer => TunnelMode::Outer,
            TunnelArg::Inner => TunnelMode::Inner,
        }
    }
}

/// `--order`: the command-line spelling of [`Order`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderArg {
    /// Merge all inputs on packet timestamps.
    Time,
    /// Stream files one after another in the order given (pcapdj's behaviour).
    Given,
}

impl From<OrderArg> for Order {
    fn from(a: OrderArg) -> Self {
        match a {
            OrderArg::Time => Order::Time,
            OrderArg::Given => Order::Given,
        }
    }
}

/// `--file-io`: the command-line spelling of [`FileIo`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FileIoArg {
    /// Whole blocks past the page cache (O_DIRECT).
    Direct,
    /// Through the page cache.
    Buffered,
}

impl From<FileIoArg> for FileIo {
    fn from(a: FileIoArg) -> Self {
        match a {
            FileIoArg::Direct => FileIo::Direct,
            FileIoArg::Buffered => FileIo::Buffered,
        }
    }
}

/// `--ids`: the command-line spelling of [`IdsKind`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum IdsArg {
    /// Suricata with suricata-conf/ (FIFO: `-r`; spool: continuous directory mode).
    Suricata,
    /// Zeek with JSON logs and community-id (FIFO; spool through the pcapdir plugin).
    Zeek,
    /// The Zeek instances as the workers of one Zeek cluster (manager, proxy and logger started
    /// by shardcap): one set of logs, in LOGDIR/logger/ (FIFO only).
    ZeekCluster,
}

impl From<IdsArg> for IdsKind {
    fn from(a: IdsArg) -> Self {
        match a {
            IdsArg::Suricata => IdsKind::Suricata,
            IdsArg::Zeek => IdsKind::Zeek,
            IdsArg::ZeekCluster => IdsKind::ZeekCluster,
        }
    }
}

/// What to do with packets whose link type differs from the output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinkMismatch {
    /// Refuse inputs whose link types differ (exit 2).
    Error,
    /// Keep the first input's link type; drop (and count) packets of other link types.
    Drop,
}

/// Link type of the output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinkType {
    /// The inputs' link type when they all share one, else Ethernet with every packet converted.
    Auto,
    /// The first input's link type; other link types are handled by --link-mismatch.
    Keep,
    /// Always Ethernet: packets of other link types are converted.
    Ethernet,
}

/// `shardcap run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Capture files, directories (searched recursively, recognised by content), globs, or @LIST files.
    pub inputs: Vec<String>,
    /// Number of shards (output streams).
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub shards: u16,
    /// Flow key used to choose a shard: the address pair (default) keeps together every flow an
    /// IDS links to another (tunnels, FTP data, HTTP ranges, TFTP); 4-/5-tuple balance better but
    /// split those.
    #[arg(long, default_value = "2-tuple", value_parser = enum_parser::<HashArg, HashMode>())]
    pub hash: HashMode,
    /// Key tunnelled packets by their outer or inner header.
    #[arg(long, default_value = "outer", value_parser = enum_parser::<TunnelArg, TunnelMode>())]
    pub tunnel: TunnelMode,
    /// This node's part of the flow-hash space, K/M (K from 0): the space holds M x N shards and
    /// this run writes only global shards K*N to K*N+N-1, as its shards 0 to N-1; the M
    /// partitions together write what one run with -n M*N writes. Every node reads the same
    /// inputs. In a Kubernetes Indexed Job: --partition "$JOB_COMPLETION_INDEX/M".
    #[arg(long, value_name = "K/M", default_value = "0/1", value_parser = parse_partition)]
    pub partition: Partition,
    /// Dynamic mode: claim partitions of --job from Redis at URL (redis://, rediss:// for TLS,
    /// or redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER), standing by while all are held and
    /// taking over those whose lease lapsed; files come from the job's catalog (`ctl enqueue`).
    /// The password as for --redis; --state (shared storage) is required.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "partition",
        requires_all = ["job", "partitions", "state"],
        help_heading = "Dynamic mode (--cluster)"
    )]
    pub cluster: Option<String>,
    /// The job's name (several jobs share one Redis).
    #[arg(
        long,
        value_name = "NAME",
        requires = "cluster",
        help_heading = "Dynamic mode (--cluster)"
    )]
    pub job: Option<String>,
    /// Partitions of the job (M); fixed, with -n, --hash and --tunnel, at the job's first start.
    #[arg(long, value_name = "M", requires = "cluster", value_parser = clap::value_parser!(u32).range(1..=MAX_PARTITIONS as i64), help_heading = "Dynamic mode (--cluster)")]
    pub partitions: Option<u32>,
    /// How long a partition's lease lasts unless renewed (renewed every third of it); another
    /// node takes the partition over once it lapsed.
    #[arg(long, value_parser = parse_duration, default_value = "15s", help_heading = "Dynamic mode (--cluster)")]
    pub lease: Duration,
    /// This node's name in leases and `ctl status` [default: HOSTNAME-PID].
    #[arg(
        long,
        value_name = "ID",
        requires = "cluster",
        help_heading = "Dynamic mode (--cluster)"
    )]
    pub node_id: Option<String>,
    /// Outputs: fifo:PATTERN, file:PATTERN, dir:PATH (a pcapdir spool) or stdout; PATTERN
    /// contains {shard} (0..N-1), or {global} (the shard's number among all partitions' M x N);
    /// {partition} is K. With --ids or --exec the default is fifo:LOGDIR/shard-{shard}.pipe.
    #[arg(short, long)]
    pub output: Option<String>,
    /// File outputs: direct writes whole blocks past the page cache (the kernel does not copy
    /// the bytes, and the outputs do not push other data out of the cache); buffered writes
    /// through the page cache. A filesystem that refuses direct I/O gets buffered writes.
    #[arg(long, default_value = "direct", value_parser = enum_parser::<FileIoArg, FileIo>())]
    pub file_io: FileIo,
    /// FIFO outputs: pipe buffer size asked of the kernel (capped by /proc/sys/fs/pipe-max-size).
    /// It bounds what a consumer still reads after SIGUSR1 and how early a file counts as read.
    #[arg(long, value_parser = parse_size, default_value = "64KiB")]
    pub pipe_size: u64,
    /// Spool (-o dir:): segment size limit (bytes; K, M, G suffixes are powers of 1024).
    #[arg(long, value_parser = parse_size, default_value = "64MiB")]
    pub segment_size: u64,
    /// Spool: close a segment once its first packet has waited this long (wall time).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub segment_age: Duration,
    /// Spool: segments waiting in a shard directory at which shardcap waits for the consumer.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub spool_backlog: u32,
    /// Packet order: merge on timestamps across inputs, or files one after another as given.
    #[arg(long, default_value = "time", value_parser = enum_parser::<OrderArg, Order>())]
    pub order: Order,
    /// Most input files open at once during the merge.
    #[arg(long, default_value_t = 256)]
    pub max_open: usize,
    /// Most memory read buffers together hold beyond their 1 MiB each, for records larger than
    /// that (e.g. 256M): fewer files are opened rather than exceed it, and a record that does not
    /// fit in what is left is damage.
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub buffer_memory: u64,
    /// Repair timestamp disorder up to this span of packet time (e.g. 100ms); 0 turns it off.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub reorder_window: Duration,
    /// Most bytes of packets the reorder window holds (e.g. 16M); beyond it packets are released early.
    #[arg(long, value_parser = parse_size, default_value = "16M")]
    pub reorder_buffer: u64,
    /// Output link type: auto (the inputs' one, or Ethernet when they differ), keep (the first
    /// input's), ethernet (always; other link types converted to Ethernet frames).
    #[arg(long, value_enum, default_value = "auto")]
    pub link_type: LinkType,
    /// Packets whose link type the stream cannot carry: refuse such inputs, or drop the packets.
    #[arg(long, value_enum, default_value = "error")]
    pub link_mismatch: LinkMismatch,
    /// Continuous mode: take new captures from these spool directories as they complete.
    #[arg(long, value_name = "DIR")]
    pub watch: Vec<PathBuf>,
    /// Continuous mode: a file unchanged this long counts as complete even if never closed, and so
    /// does a file present at start (0: only closed and moved-in files, and files present at start
    /// at once).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub settle: Duration,
    /// Continuous mode: file-name patterns never taken (temporary and partial names).
    #[arg(long, value_name = "GLOB", default_values = [".*", "*.tmp", "*.part", "*.partial", "*.filepart"])]
    pub ignore: Vec<glob::Pattern>,
    /// Continuous mode: longest time a complete file waits for other sensors to close its time range.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub horizon: Duration,
    /// Continuous mode: what to do with a file once streamed: keep, delete or move:DIR.
    #[arg(long, value_parser = Policy::parse, default_value = "keep")]
    pub retention: Policy,
    /// Continuous mode: delete kept files older than this (since they were streamed).
    #[arg(long, value_parser = parse_duration)]
    pub retain_age: Option<Duration>,
    /// Continuous mode: delete the oldest kept files beyond this total size (e.g. 500G).
    #[arg(long, value_parser = parse_size)]
    pub retain_size: Option<u64>,
    /// Continuous mode with --ship: a streamed file waits until the logs reach its last packet time
    /// plus this much (for IDS that log late), then the retention policy applies.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub retain_lag: Duration,
    /// Continuous mode: pause intake while the spool's filesystem has less free space (e.g. 10G).
    #[arg(long, value_parser = parse_size)]
    pub min_free: Option<u64>,
    /// Write stats as JSON to this file on SIGUSR2, periodically and at the end.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// SIGUSR2 stats lines: every figure (full), or exactly pcapdj's eight lines, with pcapdj's
    /// `[INFO] Suspending pcapdj` / `[INFO] Resuming pcapdj` lines on SIGUSR1 (pcapdj).
    #[arg(long, value_enum, default_value = "full")]
    pub stats_format: StatsFormat,
    /// Interval of the stats file and of progress lines.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub stats_interval: Duration,
    /// Serve the run's figures for Prometheus at http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    /// Who authorizes each file: nobody, or a Redis controller (pcapdj's protocol; files then come
    /// from the Redis queue and INPUT is omitted).
    #[arg(long, value_enum, default_value = "none")]
    pub auth: AuthMode,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// pcapdj: LPOP from the queue, as pcapdj does. reliable: files are moved atomically to a
    /// processing list while in flight, so a crash loses none.
    #[arg(long, default_value = "pcapdj", value_parser = enum_parser::<RedisModeArg, RedisMode>())]
    pub redis_mode: RedisMode,
    /// Announce and wait for the authorization of every file taken, as pcapdj does, even of files
    /// that cannot be read (they are then recorded in FAILED once authorized).
    #[arg(long)]
    pub announce_all: bool,
    /// With --auth redis: read only files under DIR (repeatable; symbolic links resolved), so that
    /// whoever writes to a shared queue cannot make the dispatcher read elsewhere. Other paths are
    /// recorded in FAILED with one reason, whether they exist or not.
    #[arg(long, value_name = "DIR")]
    pub allow_root: Vec<PathBuf>,
    /// With --order time: files taken from the queue within this long of each other are merged
    /// together by packet time (see README, Redis).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub redis_window: Duration,
    /// Stream at most this many packets a second (0: as fast as possible).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_pps: u64,
    /// Progress display: a bar when stderr is a terminal (auto), always a bar, or never.
    #[arg(long, default_value = "auto", value_parser = enum_parser::<ProgressArg, ProgressMode>())]
    pub progress: ProgressMode,
    /// Journal directory: finished files and checkpoints, so a restarted run skips what is done
    /// and resumes the files in flight.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Most time between two checkpoints of the journal.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub checkpoint_interval: Duration,
    /// Most output between two checkpoints of the journal (e.g. 256M, 1G).
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub checkpoint_bytes: u64,
    #[command(flatten, next_help_heading = "Selecting packets")]
    pub range: RangeArgs,
    /// Only packets matching this libpcap filter expression (tcpdump's syntax), compiled for
    /// each input link type and applied before sharding; a filter that does not compile is a
    /// usage error.
    #[arg(long, value_name = "BPF", help_heading = "Selecting packets")]
    pub filter: Option<String>,
    /// Drop a packet identical from its IP header on (TTL or hop limit, the IPv4 header checksum
    /// and the link header aside) to one kept within this much packet time (e.g. 5ms).
    #[arg(long, value_name = "WINDOW", value_parser = parse_duration, help_heading = "Selecting packets")]
    pub dedup: Option<Duration>,
    // Consumers (src/ids/).
    /// Start one consumer per shard: `sh -c CMD` with {input} (its FIFO or spool directory),
    /// {shard}, {logdir}, and with --partition {global} and {partition}, expanded.
    #[arg(long, value_name = "CMD", conflicts_with = "ids")]
    pub exec: Option<String>,
    /// Start one IDS instance per shard with shardcap's shipped configuration.
    #[arg(long, value_parser = enum_parser::<IdsArg, IdsKind>())]
    pub ids: Option<IdsKind>,
    /// Consumers' log directories go here, one per shard (shard-K/) [default: ./logs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Suricata rule file (repeatable) instead of the shipped suricata-conf/rules/local.rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Restart a consumer that dies and resume its shard at the next input file, reporting the
    /// packets it lost (exit 3), instead of failing the run.
    #[arg(long)]
    pub ids_restart: bool,
    /// Build directory of zeek-plugin/ (the pcapdir:: packet source) for spool input
    /// [default: zeek-plugin/build of the source tree, else Zeek's installed plugins].
    #[arg(long, value_name = "DIR")]
    pub zeek_plugin: Option<PathBuf>,
    /// Packet-processing threads per IDS instance [default: the cores divided among the shards].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub ids_threads: Option<u16>,
    /// Ship the logs under --log-dir to Elasticsearch at URL while the run goes on; finish
    /// shipping before exiting.
    #[arg(long, value_name = "URL")]
    pub ship: Option<String>,
    #[command(flatten, next_help_heading = "Shipping (with --ship)")]
    pub ship_options: ShipOptions,
}

impl From<&RunArgs> for IdsConfig {
    fn from(a: &RunArgs) -> Self {
        IdsConfig {
            ids: a.ids,
            exec: a.exec.clone(),
            log_dir: a.log_dir.clone(),
            rules: a.rules.clone(),
            restart: a.ids_restart,
            zeek_plugin: a.zeek_plugin.clone(),
            threads: a.ids_threads,
            shipping: a.ship.is_some(),
            shards: a.shards.into(),
            partition: a.partition,
            replay: false,
        }
    }
}

impl From<&RunArgs> for crate::state::StateConfig {
    fn from(a: &RunArgs) -> Self {
        crate::state::StateConfig {
            output: a.output.clone().unwrap_or_default(),
            shards: a.shards,
            hash: a.hash,
            tunnel: a.tunnel,
            partition: a.partition,
            checkpoint_interval: a.checkpoint_interval,
            checkpoint_bytes: a.checkpoint_bytes,
            select: a.selection(),
            exclusive: true,
            replays: a.replays_on_restart(),
        }
    }
}

impl RunArgs {
    /// The settings of a cluster node (`--cluster`).
    pub fn cluster_config(&self) -> Result<crate::cluster::ClusterConfig, crate::error::Error> {
        use crate::error::Error;
        let (Some(url), Some(job), Some(partitions), Some(state)) =
            (&self.cluster, &self.job, self.partitions, &self.state)
        else {
            return Err(Error::usage(
                "--cluster needs --job, --partitions and --state",
            ));
        };
        if job.is_empty() || job.contains(char::is_whitespace) {
            return Err(Error::usage(format!(
                "--job {job:?}: a name without spaces"
            )));
        }
        if self.lease < Duration::from_millis(300) {
            return Err(Error::usage("--lease: at least 300ms"));
        }
        let node = match &self.node_id {
            Some(n) if !n.is_empty() => n.clone(),
            Some(_) => return Err(Error::usage("--node-id: empty")),
            None => format!(
                "{}-{}",
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "node".into()),
                std::process::id()
            ),
        };
        let mut redis = RedisConfig::from(&self.redis);
        redis.url = url.clone();
        Ok(crate::cluster::ClusterConfig {
            redis,
            job: job.clone(),
            partitions,
            shards: self.shards,
            hash: self.hash,
            tunnel: self.tunnel,
            lease: self.lease,
            node,
            state: state.clone(),
        })
    }

    /// True when a restart on this run's `--state` replays the stream from its start into fresh
    /// IDS instances (`StateConfig::replays`): Suricata instances fed through FIFOs over a fixed
    /// input list (a watched spool or a Redis queue cannot hand out its files again).
    pub fn replays_on_restart(&self) -> bool {
        self.ids == Some(crate::ids::IdsKind::Suricata)
            && self
                .output
                .as_deref()
                .is_none_or(|o| o.starts_with("fifo:"))
            && self.watch.is_empty()
            && self.auth != AuthMode::Redis
    }

    /// The selection options as given, in one canonical line (empty without any).
    pub fn selection(&self) -> String {
        let time = |t: u64| format!("{}.{:09}", t / 1_000_000_000, t % 1_000_000_000);
        let options = [
            ("--since", self.range.since.map(time)),
            ("--until", self.range.until.map(time)),
            ("--filter", self.filter.as_ref().map(|f| format!("{f:?}"))),
            ("--dedup", self.dedup.map(|d| format!("{}ns", d.as_nanos()))),
        ];
        let given = options
            .into_iter()
            .filter_map(|(k, v)| Some(format!("{k} {}", v?)));
        given.collect::<Vec<_>>().join(" ")
    }
}

/// Who authorizes each input file before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Read every file as soon as the merge reaches it.
    None,
    /// Files come from a Redis queue and wait for a controller's authorization (pcapdj's protocol).
    Redis,
}

/// How SIGUSR2 stats lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// pcapdj's lines, then shardcap's own figures (files, bytes, rates, shards...).
    Full,
    /// Exactly pcapdj's eight `[STATS]` lines and its suspend/resume `[INFO]` lines.
    Pcapdj,
}

/// `--redis-mode`: the command-line spelling of [`RedisMode`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RedisModeArg {
    /// As pcapdj: LPOP from the queue; results in PROCESSED (complete) or FAILED.
    Pcapdj,
    /// LMOVE into a processing list while in flight; DONE or FAILED after; resumed after a crash.
    Reliable,
}

impl From<RedisModeArg> for RedisMode {
    fn from(a: RedisModeArg) -> Self {
        match a {
            RedisModeArg::Pcapdj => RedisMode::Pcapdj,
            RedisModeArg::Reliable => RedisMode::Reliable,
        }
    }
}

/// Where Redis is and how its keys are named (shared by `run --auth redis` and `ctl`).
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis URL: redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss://... for TLS. Keep a password
    /// out of the command line: put the URL in the environment, or the password in
    /// SHARDCAP_REDIS_PASSWORD or --redis-password-file.
    #[arg(
        long = "redis",
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379",
        env = "SHARDCAP_REDIS_URL",
        hide_env_values = true,
        global = true
    )]
    pub url: String,
    /// Redis password (replaces one in the URL); every local user sees a command line, so prefer
    /// the environment variable or --redis-password-file.
    #[arg(
        long = "redis-password",
        value_name = "PASSWORD",
        env = "SHARDCAP_REDIS_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub password: Option<Secret>,
    /// Read the Redis password from FILE (its first line).
    #[arg(
        long = "redis-password-file",
        value_name = "FILE",
        value_parser = read_secret,
        conflicts_with = "password",
        global = true
    )]
    pub password_file: Option<Secret>,
    /// CA certificate (PEM) that signed the rediss:// server's certificate (default: the public roots).
    #[arg(long = "redis-ca", value_name = "PEM", global = true)]
    pub ca: Option<PathBuf>,
    /// Key prefix: PREFIX_IN_QUEUE, PREFIX_NEXT, PREFIX_AUTH, PREFIX_PROCESSED, PREFIX_STATE, ...
    #[arg(
        long = "redis-prefix",
        value_name = "PREFIX",
        default_value = "PCAPDJ",
        global = true
    )]
    pub prefix: String,
    /// The input queue's name (pcapdj's -q) [default: PREFIX_IN_QUEUE]; the other keys keep theirs.
    #[arg(long = "redis-queue", value_name = "NAME", global = true)]
    pub queue: Option<String>,
    /// Give this dispatcher its own NEXT, AUTH, STATE, PROCESSING and ACTIVE keys (PREFIX_NAME_NEXT,
    /// ...) so several dispatchers share one Redis; the queue and result lists stay shared.
    #[arg(long = "redis-instance", value_name = "NAME", global = true)]
    pub instance: Option<String>,
}

impl CtlArgs {
    /// The Redis of `--cluster` (password, CA and prefix as for --redis), and the job.
    pub fn cluster(&self) -> Option<(RedisConfig, String)> {
        let (url, job) = (self.cluster.as_ref()?, self.job.as_ref()?);
        let mut redis = RedisConfig::from(&self.redis);
        redis.url = url.clone();
        Some((redis, job.clone()))
    }
}

impl From<&RedisArgs> for RedisConfig {
    fn from(a: &RedisArgs) -> Self {
        RedisConfig {
            url: a.url.clone(),
            password: Secret::either(&a.password, &a.password_file),
            ca: a.ca.clone(),
            prefix: a.prefix.clone(),
            queue: a.queue.clone(),
            instance: a.instance.clone(),
        }
    }
}

/// `shardcap ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
    /// A dynamic-mode job's Redis (as `run --cluster`): enqueue, seal and status act on the
    /// job's catalog and partitions.
    #[arg(long, value_name = "URL", requires = "job", global = true)]
    pub cluster: Option<String>,
    /// The job (with --cluster).
    #[arg(long, value_name = "NAME", requires = "cluster", global = true)]
    pub job: Option<String>,
    #[command(subcommand)]
    pub action: CtlAction,
}

/// What `shardcap ctl` does.
#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// Queue capture files (or the captures under directories), ordered by first packet time;
    /// with --cluster, append them to the job's catalog as one batch.
    Enqueue {
        /// Capture files, directories, globs or @LIST files.
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        range: RangeArgs,
        /// With --cluster: seal the catalog after this batch (no more files).
        #[arg(long)]
        seal: bool,
    },
    /// With --cluster: seal the job's catalog; nodes finish once they streamed it all.
    Seal,
    /// Authorize the next file the dispatcher waits for (once, or continuously with --watch).
    Authorize(AuthorizeArgs),
    /// Show the queue and the dispatcher's state; with --cluster, the job's partitions.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put every failed file back at the end of the queue.
    RequeueFailed,
}

/// `shardcap ctl authorize`.
#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    /// Keep authorizing each next file while the conditions hold, until stopped.
    #[arg(long)]
    pub watch: bool,
    /// Authorize only while the filesystem of --path has at least this much free space (e.g. 10G).
    #[arg(long, value_parser = parse_size, requires = "path")]
    pub min_free_disk: Option<u64>,
    /// Directory whose filesystem --min-free-disk watches.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Authorize only while fewer than K files are being streamed.
    #[arg(long, value_name = "K")]
    pub max_in_flight: Option<u64>,
    /// Give up (exit 1) when no file asked for authorization within this long (default: wait).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// With --watch: exit once the dispatcher has finished its queue (its STATE is DONE).
    #[arg(long, requires = "watch")]
    pub until_done: bool,
}

/// `--progress`: the command-line spelling of [`ProgressMode`].
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgressArg {
    /// A bar when stderr is a terminal, otherwise a log line every --stats-interval.
    Auto,
    /// Always a bar (on stderr).
    Always,
    /// No bar and no progress lines.
    Never,
}

impl From<ProgressArg> for ProgressMode {
    fn from(a: ProgressArg) -> Self {
        match a {
            ProgressArg::Auto => ProgressMode::Auto,
            ProgressArg::Always => ProgressMode::Always,
            ProgressArg::Never => ProgressMode::Never,
        }
    }
}

/// `shardcap state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List what a journal holds: finished files, the last checkpoint, outputs, counts.
    Show(StateShowArgs),
}

/// `shardcap state show`.
#[derive(Debug, Args)]
pub struct StateShowArgs {
    /// The journal directory given to `run --state`.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `shardcap ship`.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Log directories, searched recursively for Zeek logs (JSON or TSV) and Suricata eve.json.
    #[arg(required = true)]
    pub logdirs: Vec<PathBuf>,
    /// Elasticsearch URL: http[s]://[USER:PASSWORD@]HOST:PORT. Without it, the bulk requests are
    /// written as NDJSON to --out.
    #[arg(long, value_name = "URL")]
    pub es: Option<String>,
    /// Without --es: the NDJSON file to write (default stdout).
    #[arg(long, conflicts_with = "es")]
    pub out: Option<PathBuf>,
    /// Keep following the logs (new files, growth, rotation, truncation) until stopped.
    #[arg(long)]
    pub follow: bool,
    /// Checkpoints and dead-letter file (with --es; default LOGDIR/.ship of the first LOGDIR).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Write stats as JSON to this file on SIGUSR2, periodically and at the end.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
    /// Interval of the stats file and of progress lines.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub stats_interval: Duration,
    /// Serve the shipper's figures for Prometheus at http://ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub options: ShipOptions,
}

impl ShipArgs {
    /// The shipper's configuration from these arguments.
    pub fn config(&self) -> ship::ShipConfig {
        let target = match &self.es {
            Some(url) => ship::es(url),
            None => ship::Target::Ndjson(self.out.clone()),
        };
        let mut cfg = self.options.config(target, self.state.clone(), self.follow);
        cfg.stats_file = self.stats_file.clone();
        cfg.stats_interval = self.stats_interval;
        cfg
    }
}

impl From<&RunArgs> for Option<crate::shipping::RunShipping> {
    fn from(a: &RunArgs) -> Self {
        let url = a.ship.as_deref()?;
        let mut config = a.ship_options.config(ship::es(url), None, true);
        // Records of the Suricata instances started here get `_id`s by content, in their global
        // shard: a replay after a restart reproduces them (see `StateConfig::replays`).
        config.content_ids = (a.ids == Some(crate::ids::IdsKind::Suricata))
            .then(|| a.partition.global(0, a.shards.into()) as u64);
        Some(crate::shipping::RunShipping {
            config,
            log_dir: a.log_dir.clone(),
        })
    }
}

impl ShipOptions {
    /// The shipper's configuration from these options.
    pub fn config(
        &self,
        target: ship::Target,
        state: Option<PathBuf>,
        follow: bool,
    ) -> ship::ShipConfig {
        let target = match target {
            ship::Target::Elasticsearch(mut t) => {
                t.user = self.es_user.clone();
                t.password = Secret::either(&self.es_password, &self.es_password_file);
                t.api_key = Secret::either(&self.es_api_key, &self.es_api_key_file);
                t.ca = self.es_ca.clone();
                ship::Target::Elasticsearch(t)
            }
            other => other,
        };
        ship::ShipConfig {
            target,
            state,
            follow,
            limits: ship::batch::BatchLimits {
                bytes: usize::try_from(self.batch_bytes).unwrap_or(usize::MAX),
                docs: self.batch_docs,
                wait: self.batch_wait,
            },
            max_in_flight: self.max_in_flight,
            naming: ship::naming::Naming {
                prefix: self.index_prefix.clone(),
                data_streams: self.data_streams,
                namespace: self.data_stream_namespace.clone(),
            },
            ecs: self.ecs,
            templates: !self.no_templates,
            run_id: self.run_id.clone(),
            sensor: self.sensor.clone().unwrap_or_else(ship::host_name),
            retry: ship::backoff::RetryPolicy {
                initial: Duration::from_millis(100),
                max: self.retry_max,
            },
            scan_interval: self.scan_interval,
            close_inactive: self.close_inactive,
            stats_file: None,
            stats_interval: Duration::from_secs(10),
            content_ids: None,
        }
    }
}

/// How logs are shipped: shared by `ship` and `run --ship`.
#[derive(Debug, Clone, Args)]
pub struct ShipOptions {
    /// Send a bulk request when its body reaches this size (uncompressed).
    #[arg(long, value_parser = parse_size, default_value = "5MiB")]
    pub batch_bytes: u64,
    /// Send a bulk request when it holds this many records.
    #[arg(long, default_value_t = 5000)]
    pub batch_docs: usize,
    /// Send a bulk request at most this long after its first record.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub batch_wait: Duration,
    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 2)]
    pub max_in_flight: usize,
    /// Put before index names (`PREFIXzeek-conn-2024.03.01`).
    #[arg(long, default_value = "")]
    pub index_prefix: String,
    /// Write to data streams (`logs-zeek.conn-NAMESPACE`) instead of daily indices.
    #[arg(long)]
    pub data_streams: bool,
    /// The data streams' namespace.
    #[arg(long, default_value = "default")]
    pub data_stream_namespace: String,
    /// Add Elastic Common Schema fields (source.ip, destination.port, network.community_id, ...).
    #[arg(long)]
    pub ecs: bool,
    /// Run id stored in every document (default: the one in the state directory, else generated).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Sensor or input set name stored in every document (default: the host name).
    #[arg(long)]
    pub sensor: Option<String>,
    /// User for basic authentication.
    #[arg(long, env = "SHARDCAP_ES_USER")]
    pub es_user: Option<String>,
    /// Password for basic authentication; every local user sees a command line, so prefer the
    /// environment variable or --es-password-file.
    #[arg(long, env = "SHARDCAP_ES_PASSWORD", hide_env_values = true)]
    pub es_password: Option<Secret>,
    /// Read the password for basic authentication from FILE (its first line).
    #[arg(long, value_name = "FILE", value_parser = read_secret, conflicts_with = "es_password")]
    pub es_password_file: Option<Secret>,
    /// API key (`id:key` or its base64 form); prefer the environment variable or --es-api-key-file.
    #[arg(long, env = "SHARDCAP_ES_API_KEY", hide_env_values = true)]
    pub es_api_key: Option<Secret>,
    /// Read the API key from FILE (its first line).
    #[arg(long, value_name = "FILE", value_parser = read_secret, conflicts_with = "es_api_key")]
    pub es_api_key_file: Option<Secret>,
    /// PEM file of the CA that signed the server's certificate.
    #[arg(long)]
    pub es_ca: Option<PathBuf>,
    /// Do not install the index templates at start.
    #[arg(long)]
    pub no_templates: bool,
    /// Longest wait between two retries.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub retry_max: Duration,
    /// How often the log directories are walked for new and renamed files.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub scan_interval: Duration,
    /// Close a caught-up file after this long without growth (reopened when it grows).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub close_inactive: Duration,
}

/// `shardcap generate`.
#[cfg(feature = "generate")]
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory to write the captures to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of sensors; each sees its own LAN's traffic over overlapping time.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=26))]
    pub sensors: u8,
    /// Files each sensor writes (rotated by size).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub files_per_sensor: u32,
    /// Size of each file before rotation, like `tcpdump -C` (at least 4K).
    #[arg(long, default_value = "2M", value_parser = parse_capture_size)]
    pub size: u64,
    /// Seed of the traffic model: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Nanosecond timestamps (pcap magic a1b23c4d) instead of microseconds.
    #[arg(long)]
    pub nanos: bool,
    /// Compress each file with gzip (NAME.gz).
    #[arg(long, conflicts_with = "zstd")]
    pub gzip: bool,
    /// Compress each file with zstd (NAME.zst).
    #[arg(long)]
    pub zstd: bool,
    /// Time the captures span.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
}

#[cfg(feature = "generate")]
impl From<GenerateArgs> for shardcap_gen::GenerateConfig {
    fn from(a: GenerateArgs) -> Self {
        shardcap_gen::GenerateConfig {
            out: a.out,
            sensors: a.sensors,
            files_per_sensor: a.files_per_sensor,
            size: a.size,
            seed: a.seed,
            nanos: a.nanos,
            gzip: a.gzip,
            zstd: a.zstd,
            duration: a.duration,
        }
    }
}

/// `shardcap scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Capture files, directories, globs, or @LIST files.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Also draw the coverage picture of the inputs (one lane per source, gaps, overlaps,
    /// damaged files, packet rate) to this .svg or .html file (self-contained).
    #[arg(long, value_name = "FILE", value_parser = parse_report_path)]
    pub report: Option<std::path::PathBuf>,
}

/// `--since`, `--until` and where files' last packet times are kept (`run`, `scan`, `ctl enqueue`).
#[derive(Debug, Clone, Default, Args)]
pub struct RangeArgs {
    /// Only packets at or after TIME (as editcap -A): RFC 3339 with an offset
    /// (2024-03-01T10:00:00.25+01:00, ...Z) or epoch seconds with a fraction (1709287200.25).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only packets before TIME (as editcap -B), in the same forms as --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<u64>,
    /// With --since: the file that keeps each capture's last packet time, so a file is read to
    /// its end once [default: STATE/catalog-cache.jsonl with --state, else none].
    #[arg(long, value_name = "FILE")]
    pub catalog_cache: Option<PathBuf>,
}

impl RangeArgs {
    /// The time range asked for; refuses an empty one.
    pub fn range(&self) -> crate::error::Result<crate::select::TimeRange> {
        let range = crate::select::TimeRange {
            since: self.since.unwrap_or(0),
            until: self.until.unwrap_or(u64::MAX),
        };
        if range.since >= range.until {
            return Err(crate::error::Error::usage(
                "--since must be before --until (packets at or after --since and before --until are kept)",
            ));
        }
        Ok(range)
    }

    /// The catalog cache file: --catalog-cache, else one in the journal directory `state`.
    pub fn cache_path(&self, state: Option<&std::path::Path>) -> Option<PathBuf> {
        (self.catalog_cache.clone()).or_else(|| state.map(|d| d.join("catalog-cache.jsonl")))
    }
}

/// Parses a point in time to nanoseconds since the epoch: epoch seconds with an optional
/// fraction of up to 9 digits (`1709287200`, `1709287200.000250`), or RFC 3339 with an offset
/// (`2024-03-01T10:00:00Z`, `2024-03-01T11:00:00.5+01:00`). Times before 1970 are refused.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "bad time {s:?} (try 2024-03-01T10:00:00Z, 2024-03-01T10:00:00+01:00 or 1709287200.5)"
        )
    };
    let range = || format!("time {s:?} out of range (1970 to 2554)");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !int.is_empty() && digits(int) && digits(frac) {
        if frac.len() > 9 {
            return Err(format!(
                "time {s:?}: at most 9 fractional digits (nanoseconds)"
            ));
        }
        let secs: u64 = int.parse().map_err(|_| range())?;
        let nanos: u64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        return (secs.checked_mul(1_000_000_000))
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(range);
    }
    let t: jiff::Timestamp = s.parse().map_err(|_| bad())?;
    u64::try_from(t.as_nanosecond()).map_err(|_| range())
}

/// A report file name: its extension says the format.
fn parse_report_path(s: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(s);
    crate::coverage::Format::of(&path)?;
    Ok(path)
}

/// A password or key: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, to hand to the client that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret given by value (flag or environment) or by file, whichever was given.
    pub fn either(value: &Option<Secret>, file: &Option<Secret>) -> Option<String> {
        value.as_ref().or(file.as_ref()).map(|s| s.0.clone())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Reads a secret from a file: its first line, without the line end. The error names the file,
/// never its content.
pub fn read_secret(path: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(format!("{path}: empty (the secret is its first line)"));
    }
    Ok(Secret(line.to_string()))
}

/// The longest duration any flag takes (100 years): longer ones are refused, so that deadlines
/// computed from them (`Instant` plus the duration, nanoseconds in 64 bits) cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Splits `s` into its number (digits and one optional decimal point) and its unit.
fn number_and_unit(s: &str) -> (&str, &str) {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s.split_at(split)
}

/// Parses the durations of every duration flag: a number, integer or decimal, with an optional
/// unit `us`, `ms`, `s` (the default), `m` or `h`: `250ms`, `1.5s`, `10`, `5m`. At most
/// [`MAX_DURATION`]; clap names the flag in the error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = number_and_unit(s);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 250ms, 10s, 5m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "bad duration unit in {s:?} (use us, ms, s, m or h)"
            ))
        }
    };
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!("duration {s:?} out of range (at most 100 years)")),
    }
}

/// Parses the sizes of every size flag: a number of bytes, integer or decimal, with an optional
/// unit, case-insensitive: `K`, `M`, `G`, `T`, also spelled `KB`/`KiB` and so on, are all powers
/// of 1024; `B` or nothing means bytes. `64MiB`, `512k`, `1.5G`, `1000000`. Decimals round down
/// to whole bytes; the result is at least one byte and fits in 64 bits.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = number_and_unit(s);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("bad size unit in {s:?} (use K, M, G or T)")),
    };
    let bad = || format!("bad size {s:?} (try 64MiB, 1.5G, 512K, 1000000)");
    let bytes = if num.contains('.') {
        let n: f64 = num.parse().map_err(|_| bad())?;
        let v = (n * (1u64 << shift) as f64).floor();
        // 2^64 is exact as an f64; anything from it on does not fit.
        (v < 18_446_744_073_709_551_616.0).then_some(v as u64)
    } else if num.is_empty() {
        return Err(bad());
    } else {
        num.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
    };
    match bytes {
        Some(0) | None => Err(format!("size {s:?} out of range (1 byte to 16 EiB)")),
        Some(v) => Ok(v),
    }
}

/// The most partitions `--partition` takes.
pub const MAX_PARTITIONS: u32 = 65_536;

/// Parses `--partition K/M`: partition K (from 0) of M (1 to [`MAX_PARTITIONS`]).
pub fn parse_partition(s: &str) -> Result<Partition, String> {
    let bad = || format!("bad partition {s:?}: expected K/M with 0 <= K < M, e.g. 2/8");
    let (k, m) = s.trim().split_once('/').ok_or_else(bad)?;
    let (k, m): (u32, u32) = (k.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m == 0 || m > MAX_PARTITIONS {
        return Err(format!(
            "partition count {m} out of range (1 to {MAX_PARTITIONS})"
        ));
    }
    Partition::new(k, m).ok_or_else(|| format!("partition {k} of {m}: K must be below M (from 0)"))
}

/// `generate --size`: a [`parse_size`] of at least 4K (a file must hold a few packets).
#[cfg(feature = "generate")]
fn parse_capture_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        v if v < 4096 => Err(format!("size {s:?} is too small (at least 4K)")),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("876000h").unwrap(), MAX_DURATION);
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration(".").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn durations_out_of_range_are_refused() {
        for s in [
            "99999999999999999999999h",
            "876001h",
            "1e400",
            "18446744073709551616",
            &"9".repeat(400),
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(
                e.contains("out of range") || e.contains("bad duration"),
                "{s}: {e}"
            );
        }
    }

    #[test]
    fn times() {
        let t = 1_709_287_200_000_000_000;
        assert_eq!(parse_time("1709287200"), Ok(t));
        assert_eq!(parse_time("1709287200.25"), Ok(t + 250_000_000));
        assert_eq!(parse_time("1709287200.000000001"), Ok(t + 1));
        assert_eq!(parse_time("2024-03-01T10:00:00Z"), Ok(t));
        assert_eq!(
            parse_time("2024-03-01T11:00:00.5+01:00"),
            Ok(t + 500_000_000)
        );
        assert!(
            parse_time("2024-03-01T10:00:00").is_err(),
            "an offset is required"
        );
        assert!(parse_time("1709287200.0000000001").is_err());
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
        assert!(parse_time("99999999999999999999").is_err());
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn an_empty_range_is_refused() {
        let r = |since, until| RangeArgs {
            since,
            until,
            catalog_cache: None,
        };
        assert!(r(Some(5), Some(5)).range().is_err());
        assert_eq!(r(None, Some(5)).range().unwrap().until, 5);
        assert_eq!(r(None, None).range().unwrap().until, u64::MAX);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("2M").unwrap(), 2 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("1.5 ").unwrap(), 1);
        assert_eq!(parse_size("2TB").unwrap(), 2 << 40);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("18446744073709551615").unwrap(), u64::MAX);
        assert_eq!(parse_size("16777215T").unwrap(), 16_777_215 << 40);
        assert!(parse_size("0").is_err());
        assert!(parse_size("0.4").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("2X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        for s in [
            "18446744073709551616",
            "16777216T",
            "16777216.0T",
            "99999999999999999999999999G",
            &"9".repeat(400),
            &format!("{}.5", "9".repeat(400)),
        ] {
            assert!(parse_size(s).unwrap_err().contains("out of range"), "{s}");
        }
    }

    #[cfg(feature = "generate")]
    #[test]
    fn capture_sizes_hold_packets() {
        assert_eq!(parse_capture_size("4K"), Ok(4096));
        assert!(parse_capture_size("10").is_err());
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        use clap::Parser;
        let e = Cli::try_parse_from([
            "shardcap",
            "run",
            "--reorder-window",
            "99999999999999999999999h",
            "x",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(e.to_string().contains("--reorder-window"), "{e}");
        #[cfg(feature = "generate")]
        {
            let e = Cli::try_parse_from([
                "shardcap",
                "generate",
                "--out",
                "x",
                "--size",
                "99999999999T",
            ])
            .unwrap_err();
            assert!(e.to_string().contains("--size"), "{e}");
        }
    }

    #[test]
    fn partitions() {
        assert_eq!(parse_partition("2/8"), Ok(Partition::new(2, 8).unwrap()));
        assert_eq!(parse_partition("0/1"), Ok(Partition::WHOLE));
        for bad in ["8/8", "1/0", "3", "-1/4", "a/b", "1/65537", ""] {
            assert!(parse_partition(bad).is_err(), "{bad}");
        }
        use clap::Parser;
        let Command::Run(run) = Cli::try_parse_from(["shardcap", "run", "--partition", "1/3", "x"])
            .unwrap()
            .command
        else {
            panic!("run")
        };
        assert_eq!(run.partition, Partition::new(1, 3).unwrap());
        let e = Cli::try_parse_from(["shardcap", "run", "--partition", "3/3", "x"]).unwrap_err();
        assert!(e.to_string().contains("--partition"), "{e}");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
