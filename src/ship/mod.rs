//! `shardcap ship` (and `shardcap run --ship`): follows the Zeek and Suricata logs under log
//! directories and indexes every record into Elasticsearch through the bulk API, checkpointed per
//! file, with deterministic `_id`s so that nothing is lost and nothing is indexed twice.

pub mod backoff;
pub mod batch;
pub mod checkpoint;
pub mod client;
pub mod deadletter;
pub mod document;
pub mod ecs;
pub mod identity;
pub mod json_line;
pub mod json_text;
pub mod logformat;
pub mod meta;
pub mod naming;
pub mod ndjson_out;
pub mod sender;
pub mod shipper;
pub mod stats;
pub mod tail;
pub mod templates;
pub mod timestamp;
pub mod watch;
pub mod watermark;
pub mod zeek_tsv;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{RunArgs, ShipArgs, ShipOptions};
use crate::control::signals::Signals;
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};

pub use shipper::{Control, ShipConfig, ShipHandle, ShipSummary, Shipper, Target};

/// Where `shardcap run --ship` keeps its checkpoints, inside the log directory.
pub const RUN_STATE_DIR: &str = ".ship";

/// The sensor name when none is given: the host name.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

impl ShipConfig {
    /// A configuration from the shared options.
    pub fn from_options(
        o: &ShipOptions,
        target: Target,
        state: Option<PathBuf>,
        follow: bool,
    ) -> ShipConfig {
        let target = match target {
            Target::Elasticsearch(mut t) => {
                t.user = o.es_user.clone();
                t.password = o.es_password.clone();
                t.api_key = o.es_api_key.clone();
                t.ca = o.es_ca.clone();
                Target::Elasticsearch(t)
            }
            other => other,
        };
        ShipConfig {
            target,
            state,
            follow,
            limits: batch::BatchLimits {
                bytes: usize::try_from(o.batch_bytes).unwrap_or(usize::MAX),
                docs: o.batch_docs,
                wait: o.batch_wait,
            },
            max_in_flight: o.max_in_flight,
            naming: naming::Naming {
                prefix: o.index_prefix.clone(),
                data_streams: o.data_streams,
                namespace: o.data_stream_namespace.clone(),
            },
            ecs: o.ecs,
            templates: !o.no_templates,
            run_id: o.run_id.clone(),
            sensor: o.sensor.clone().unwrap_or_else(host_name),
            retry: backoff::RetryPolicy {
                initial: Duration::from_millis(100),
                max: o.retry_max,
            },
            scan_interval: o.scan_interval,
            close_inactive: o.close_inactive,
            stats_file: None,
            stats_interval: Duration::from_secs(10),
        }
    }
}

/// An Elasticsearch target with the URL only (credentials come from the options).
fn es(url: &str) -> Target {
    Target::Elasticsearch(client::EsTarget {
        url: url.to_string(),
        user: None,
        password: None,
        api_key: None,
        ca: None,
    })
}

/// `shardcap ship`: returns the exit code (3 when records were dead-lettered).
pub fn run(args: ShipArgs) -> Result<i32> {
    for d in &args.logdirs {
        if !d.is_dir() {
            return Err(Error::usage(format!(
                "{}: not a directory; name the log directories to ship",
                d.display()
            )));
        }
    }
    let target = match &args.es {
        Some(url) => es(url),
        None => Target::Ndjson(args.out.clone()),
    };
    let mut cfg = ShipConfig::from_options(&args.options, target, args.state.clone(), args.follow);
    cfg.stats_file = args.stats_file.clone();
    cfg.stats_interval = args.stats_interval;
    let ctl = Control {
        signals: Signals::install()?,
        finish: Arc::new(AtomicBool::new(false)),
    };
    let mut shipper = Shipper::new(cfg, args.logdirs.clone(), ctl)?;
    let summary = shipper.run()?;
    if summary.stopped {
        log::warn!(
            "stopped before everything was shipped; the same --state resumes where it stopped"
        );
    }
    Ok(if summary.counters.dead_lettered > 0 {
        EXIT_SKIPPED
    } else {
        EXIT_OK
    })
}

/// Starts the shipper of `shardcap run --ship URL` (before any packet is streamed), following the
/// `--log-dir` with checkpoints in `LOG_DIR/.ship`.
pub fn start_for_run(args: &RunArgs) -> Result<Option<ShipHandle>> {
    let Some(url) = &args.ship else {
        return Ok(None);
    };
    let Some(log_dir) = &args.log_dir else {
        return Err(Error::usage(
            "--ship needs --log-dir: the directory the IDS instances write their logs to",
        ));
    };
    let cfg = ShipConfig::from_options(
        &args.ship_options,
        es(url),
        Some(log_dir.join(RUN_STATE_DIR)),
        true,
    );
    Shipper::spawn(cfg, vec![log_dir.clone()]).map(Some)
}

/// Ends the shipper of `shardcap run` once the writers and consumers are done: ships everything
/// they wrote, or, when the run failed, stops at once. Folds its result into the run's exit code.
pub fn finish_for_run(handle: Option<ShipHandle>, run: Result<i32>) -> Result<i32> {
    let Some(handle) = handle else {
        return run;
    };
    let code = match run {
        Ok(code) => code,
        Err(e) => {
            let _ = handle.stop();
            return Err(e);
        }
    };
    let summary = handle.finish()?;
    log::info!(
        "shipped {} records ({} already indexed, {} dead-lettered)",
        summary.counters.shipped,
        summary.counters.existing,
        summary.counters.dead_lettered
    );
    Ok(if code == EXIT_OK && summary.counters.dead_lettered > 0 {
        EXIT_SKIPPED
    } else {
        code
    })
}
