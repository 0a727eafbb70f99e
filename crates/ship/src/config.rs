//! What a shipper is told (target, limits, naming, state) and how it is steered while it runs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::RetryPolicy;
use crate::batch::BatchLimits;
use crate::client::EsTarget;
use crate::naming::Naming;

/// Where documents go.
#[derive(Debug, Clone)]
pub enum Target {
    Elasticsearch(EsTarget),
    /// The NDJSON bulk bodies to a file, or stdout.
    Ndjson(Option<PathBuf>),
}

/// Everything a shipper is told.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    pub target: Target,
    /// Checkpoints and dead letters (`--es` only; default `LOGDIR/.ship` of the first LOGDIR).
    pub state: Option<PathBuf>,
    /// Keep following until stopped (or told to finish).
    pub follow: bool,
    pub limits: BatchLimits,
    pub max_in_flight: usize,
    pub naming: Naming,
    pub ecs: bool,
    /// Install the index templates at start.
    pub templates: bool,
    pub run_id: Option<String>,
    pub sensor: String,
    pub retry: RetryPolicy,
    pub scan_interval: Duration,
    /// Close a caught-up file's descriptor after this long without growth.
    pub close_inactive: Duration,
    pub stats_file: Option<PathBuf>,
    pub stats_interval: Duration,
    /// For the logs of IDS instances that shardcap runs: eve records get `_id`s by content
    /// (`crate::content_id`), in global shard `content_ids + K` for a `shard-K` directory.
    pub content_ids: Option<u64>,
}

/// How the loop is steered from outside (by signals, or by the run that started it).
#[derive(Clone, Default)]
pub struct Control {
    /// Stop as soon as possible, saving checkpoints.
    pub stop: Arc<AtomicBool>,
    /// Write the stats now; cleared once written.
    pub stats: Arc<AtomicBool>,
    /// Suspend/resume toggles: suspended while odd.
    pub toggles: Arc<AtomicUsize>,
    /// Ship what is there, then end (even when following).
    pub finish: Arc<AtomicBool>,
}

impl Control {
    /// True while suspended (an odd number of toggles).
    pub fn suspended(&self) -> bool {
        self.toggles.load(Ordering::SeqCst) % 2 == 1
    }
}
