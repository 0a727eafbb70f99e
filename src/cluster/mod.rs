//! Dynamic partitioning (`run --cluster URL --job NAME --partitions M`): nodes claim the job's
//! partitions through Redis leases, run each as `run --partition K/M --state STATE/part-K` would,
//! and take over partitions whose lease lapsed, resuming them from their journal.
//!
//! Keys, under `PREFIX:job:NAME:`: `config` (hash: partitions, shards, hash, tunnel, fixed at the
//! job's first start), `catalog` (list of batches, one a line per file; never consumed),
//! `sealed` (no more batches), `fence:K` (counter, incremented at each claim of partition K),
//! `lease:K` (`NODE:FENCE`, with an expiry renewed by its holder), `done` (set of finished
//! partitions), `progress:K` (hash written at each checkpoint under the lease).

pub mod catalog;
pub mod lease;
pub mod status;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::control::redis::link::{self, Link};
use crate::control::redis::RedisConfig;
use crate::control::signals::Signals;
use crate::error::{Error, Result, EXIT_OK};
use crate::input::intake::Intake;
use catalog::CatalogIntake;
use lease::{Claim, Lease, LeaseCheck};
use shardcap_flow::{HashMode, Partition, TunnelMode};

/// A cluster node's settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Redis server (`redis://`, `rediss://` or `redis+sentinel://`), password and key prefix.
    pub redis: RedisConfig,
    /// The job's name: several jobs share one Redis.
    pub job: String,
    /// Partitions of the job (M).
    pub partitions: u32,
    /// Shards a partition (N), flow key and tunnel mode: fixed for the job at its first start.
    pub shards: u16,
    pub hash: HashMode,
    pub tunnel: TunnelMode,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// This node's name in leases and status.
    pub node: String,
    /// The shared state directory: partition K's journal is `STATE/part-K`.
    pub state: PathBuf,
}

impl ClusterConfig {
    /// Partition `k`'s journal directory.
    pub fn part_state(&self, k: u32) -> PathBuf {
        self.state.join(format!("part-{k}"))
    }
}

/// The names of one job's keys.
#[derive(Debug, Clone)]
pub struct JobKeys {
    /// `PREFIX:job:NAME`, the stem of every key.
    pub base: String,
}

impl JobKeys {
    /// The keys of job `name` under `prefix`.
    pub fn new(prefix: &str, name: &str) -> Self {
        JobKeys {
            base: format!("{prefix}:job:{name}"),
        }
    }

    /// `BASE:what`.
    pub fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.base)
    }

    /// `BASE:what:k`.
    pub fn part(&self, what: &str, k: u32) -> String {
        format!("{}:{what}:{k}", self.base)
    }
}

/// What a node hands the dispatcher for the partition it holds.
pub struct Assignment {
    pub partition: Partition,
    /// `STATE/part-K`.
    pub state: PathBuf,
    /// The job's catalog, batch by batch.
    pub intake: Box<dyn Intake>,
    /// The lease's fence and its check before each checkpoint.
    pub lease: LeaseCheck,
}

/// Runs a node: claims free partitions one after another and runs each with `run`, stands by
/// while every partition not done is held by another node, and ends when all are done (exit
/// status: the worst of its partitions'), on a stop (its lease released), or when it loses a lease
/// (a runtime error naming the node that holds it; nothing more was written).
pub fn run_node(
    cfg: &ClusterConfig,
    signals: &Signals,
    mut run: impl FnMut(Assignment) -> Result<i32>,
) -> Result<i32> {
    std::fs::create_dir_all(&cfg.state).map_err(|e| {
        Error::usage(format!(
            "--state {}: cannot create: {e}",
            cfg.state.display()
        ))
    })?;
    let keys = JobKeys::new(&cfg.redis.prefix, &cfg.job);
    let mut link = Link::open(&cfg.redis, &signals.stop)?;
    lease::check_job(&mut link, &keys, cfg, &signals.stop)?;
    log::info!(
        "node {} in job {} ({} partitions of {} shards) at {}",
        cfg.node,
        cfg.job,
        cfg.partitions,
        cfg.shards,
        link.shown()
    );
    let mut worst = EXIT_OK;
    let mut standing_by = false;
    loop {
        if signals.stop.load(Ordering::SeqCst) {
            return Ok(worst);
        }
        let Some(claim) = link.retry(Some(&signals.stop), |c| lease::claim(c, &keys, cfg))? else {
            return Ok(worst);
        };
        let (k, fence) = match claim {
            Claim::Got { partition, fence } => (partition, fence),
            Claim::AllDone => {
                log::info!("every partition of job {} is done", cfg.job);
                return Ok(worst);
            }
            Claim::NoneFree => {
                if !standing_by {
                    log::warn!(
                        "node {}: standing by: every partition not done is held by another node",
                        cfg.node
                    );
                    standing_by = true;
                }
                link::pause(cfg.lease / 3, || signals.stop.load(Ordering::SeqCst));
                continue;
            }
        };
        standing_by = false;
        let lease = Lease::start(cfg, &keys, k, fence, signals)?;
        log::warn!(
            "node {}: partition {k}/{} claimed (fence {fence}); its journal: {}",
            cfg.node,
            cfg.partitions,
            cfg.part_state(k).display()
        );
        let intake = CatalogIntake::connect(&cfg.redis, &keys, lease.streamed(), signals)?;
        let partition = Partition::new(k, cfg.partitions).expect("claimed partitions are below M");
        let result = run(Assignment {
            partition,
            state: cfg.part_state(k),
            intake: Box::new(intake),
            lease: lease.check(cfg, signals)?,
        });
        if let Some(why) = lease.lost() {
            // Nothing was written since the lease lapsed; another node carries on.
            return Err(Error::runtime(why));
        }
        let code = match result {
            Ok(code) => code,
            Err(e) => {
                lease.release(&mut link);
                return Err(e);
            }
        };
        worst = worst.max(code);
        if signals.stop.load(Ordering::SeqCst) {
            lease.release(&mut link);
            return Ok(worst);
        }
        lease.finish(&mut link, &signals.stop)?;
        log::warn!("node {}: partition {k}/{} done", cfg.node, cfg.partitions);
    }
}
