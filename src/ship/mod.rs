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
use std::sync::{Arc, Mutex};

use crate::control::signals::Signals;
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};

pub use shipper::{Control, ShipConfig, ShipHandle, ShipSummary, Shipper, Target};

/// Where `shardcap run --ship` keeps its checkpoints, inside the log directory.
pub const RUN_STATE_DIR: &str = ".ship";

/// The sensor name when none is given: the host name.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// An Elasticsearch target with the URL only (credentials come from the options).
pub fn es(url: &str) -> Target {
    Target::Elasticsearch(client::EsTarget {
        url: url.to_string(),
        user: None,
        password: None,
        api_key: None,
        ca: None,
    })
}

/// `shardcap ship`: ships `logdirs` with `cfg`, refreshing `latest` with its figures if given;
/// returns the exit code (3 when records were dead-lettered).
pub fn run(
    cfg: ShipConfig,
    logdirs: Vec<PathBuf>,
    latest: Option<Arc<Mutex<stats::ShipSnapshot>>>,
) -> Result<i32> {
    for d in &logdirs {
        if !d.is_dir() {
            return Err(Error::usage(format!(
                "{}: not a directory; name the log directories to ship",
                d.display()
            )));
        }
    }
    let ctl = Control {
        signals: Signals::install()?,
        finish: Arc::new(AtomicBool::new(false)),
    };
    let mut shipper = Shipper::new(cfg, logdirs, ctl)?;
    if let Some(latest) = latest {
        shipper.publish_to(latest);
    }
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

/// What `shardcap run --ship URL` asks for: the shipper's configuration (its `state` is set here)
/// and the log directory to follow.
#[derive(Debug)]
pub struct RunShipping {
    pub config: ShipConfig,
    pub log_dir: Option<PathBuf>,
}

/// Starts the shipper of `shardcap run --ship URL` (before any packet is streamed), following the
/// `--log-dir` with checkpoints in `LOG_DIR/.ship`. Nothing to start without a request.
pub fn start_for_run(request: impl Into<Option<RunShipping>>) -> Result<Option<ShipHandle>> {
    let Some(RunShipping {
        mut config,
        log_dir,
    }) = request.into()
    else {
        return Ok(None);
    };
    let Some(log_dir) = log_dir else {
        return Err(Error::usage(
            "--ship needs --log-dir: the directory the IDS instances write their logs to",
        ));
    };
    config.state = Some(log_dir.join(RUN_STATE_DIR));
    config.follow = true;
    Shipper::spawn(config, vec![log_dir]).map(Some)
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
