//! `shardcap ship` and `shardcap run --ship`: the shipper of `shardcap-ship`, steered by this
//! process's signals and folded into its exit codes.

use std::path::PathBuf;

use shardcap_ship::{Control, ShipConfig, ShipHandle, Shipper, RUN_STATE_DIR};

use crate::control::signals::Signals;
use crate::error::{Error, Result, EXIT_OK, EXIT_SKIPPED};

/// `shardcap ship`: ships `logdirs` with `cfg`; returns the exit code (3 when records were
/// dead-lettered).
pub fn run(cfg: ShipConfig, logdirs: Vec<PathBuf>) -> Result<i32> {
    for d in &logdirs {
        if !d.is_dir() {
            return Err(Error::usage(format!(
                "{}: not a directory; name the log directories to ship",
                d.display()
            )));
        }
    }
    let signals = Signals::install()?;
    let ctl = Control {
        stop: signals.stop,
        stats: signals.stats,
        toggles: signals.toggles,
        finish: Default::default(),
    };
    let mut shipper = Shipper::new(cfg, logdirs, ctl)?;
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
    Ok(Some(Shipper::spawn(config, vec![log_dir])?))
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
