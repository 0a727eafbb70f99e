//! `shardcap ctl status --cluster URL --job NAME`: the job's partitions, their owners, progress
//! and lag.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::{Connection, RedisResult};
use serde::Serialize;

use super::JobKeys;

/// A partition's state.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PartState {
    /// Neither done nor leased: the next node to look claims it.
    Free,
    /// Leased by a node.
    Held,
    Done,
}

/// One partition as `ctl status` shows it.
#[derive(Debug, Serialize)]
pub struct PartStatus {
    pub partition: u32,
    pub state: PartState,
    /// The lease holder, or the node of the last checkpoint.
    pub node: Option<String>,
    /// The fencing number of the lease (or of the last checkpoint).
    pub fence: Option<u64>,
    /// Lease time left, in seconds.
    pub lease_left_s: Option<f64>,
    pub files: u64,
    pub bytes: u64,
    pub packets: u64,
    /// Catalog batches streamed.
    pub batches: u64,
    /// Catalog batches not streamed yet.
    pub lag_batches: u64,
    /// Age of the last checkpoint, in seconds.
    pub checkpoint_age_s: Option<f64>,
}

/// The job as `ctl status` shows it.
#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub job: String,
    /// Partitions (M), unknown until a node started.
    pub partitions: Option<u32>,
    pub shards: Option<u16>,
    /// Batches in the catalog.
    pub catalog_batches: u64,
    /// Files in the catalog.
    pub catalog_files: u64,
    pub sealed: bool,
    pub done: u64,
    pub parts: Vec<PartStatus>,
}

/// Reads the job's status.
pub fn read(c: &mut Connection, keys: &JobKeys, job: &str) -> RedisResult<JobStatus> {
    let config: HashMap<String, String> = redis::cmd("HGETALL").arg(keys.key("config")).query(c)?;
    let (sealed, batches) = super::catalog::read(c, keys, 0)?;
    let partitions = config.get("partitions").and_then(|v| v.parse().ok());
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut parts = Vec::new();
    for k in 0..partitions.unwrap_or(0) {
        let (done, lease, pttl, progress): (bool, Option<String>, i64, HashMap<String, String>) =
            redis::pipe()
                .cmd("SISMEMBER")
                .arg(keys.key("done"))
                .arg(k)
                .cmd("GET")
                .arg(keys.part("lease", k))
                .cmd("PTTL")
                .arg(keys.part("lease", k))
                .cmd("HGETALL")
                .arg(keys.part("progress", k))
                .query(c)?;
        let num = |f: &str| progress.get(f).and_then(|v| v.parse::<u64>().ok());
        let held = lease.as_deref().and_then(|v| v.rsplit_once(':'));
        let streamed = num("batches").unwrap_or(0);
        parts.push(PartStatus {
            partition: k,
            state: match (done, &lease) {
                (true, _) => PartState::Done,
                (false, Some(_)) => PartState::Held,
                (false, None) => PartState::Free,
            },
            node: held
                .map(|(n, _)| n.to_string())
                .or_else(|| progress.get("node").cloned()),
            fence: held
                .and_then(|(_, f)| f.parse().ok())
                .or_else(|| num("fence")),
            lease_left_s: (pttl >= 0 && lease.is_some()).then(|| pttl as f64 / 1e3),
            files: num("files").unwrap_or(0),
            bytes: num("bytes").unwrap_or(0),
            packets: num("packets").unwrap_or(0),
            batches: streamed,
            lag_batches: if done {
                0
            } else {
                (batches.len() as u64).saturating_sub(streamed)
            },
            checkpoint_age_s: num("checkpoint_ms").map(|t| now_ms.saturating_sub(t) as f64 / 1e3),
        });
    }
    Ok(JobStatus {
        job: job.to_string(),
        partitions,
        shards: config.get("shards").and_then(|v| v.parse().ok()),
        catalog_batches: batches.len() as u64,
        catalog_files: batches
            .iter()
            .map(|b| b.lines().filter(|l| !l.is_empty()).count() as u64)
            .sum(),
        sealed,
        done: parts.iter().filter(|p| p.state == PartState::Done).count() as u64,
        parts,
    })
}

impl JobStatus {
    /// Human-readable lines on stdout.
    pub fn print(&self) {
        let m = self
            .partitions
            .map_or_else(|| "? (no node started yet)".to_string(), |m| m.to_string());
        println!(
            "job {}: {m} partitions, {} done; catalog {} files in {} batches{}",
            self.job,
            self.done,
            self.catalog_files,
            self.catalog_batches,
            if self.sealed { ", sealed" } else { ", open" }
        );
        for p in &self.parts {
            let owner = match (&p.node, p.fence) {
                (Some(n), Some(f)) => format!("{n} (fence {f})"),
                _ => "-".into(),
            };
            let left = p
                .lease_left_s
                .map_or_else(String::new, |s| format!(", lease {s:.1}s left"));
            let age = p.checkpoint_age_s.map_or_else(
                || "no checkpoint".into(),
                |s| format!("checkpoint {s:.1}s ago"),
            );
            println!(
                "  partition {}: {:<4} {owner}{left}; {} files, {} bytes, {} packets; {} batches behind; {age}",
                p.partition,
                match p.state {
                    PartState::Free => "free",
                    PartState::Held => "held",
                    PartState::Done => "done",
                },
                p.files,
                p.bytes,
                p.packets,
                p.lag_batches,
            );
        }
    }
}
