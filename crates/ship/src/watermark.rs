//! The acknowledged-log watermark: per shard log directory (`shard-K`; logs outside any count as
//! one shard), the newest record time among records the server acknowledged, and over the run the
//! oldest of these, so that everything the IDS logged up to that time is indexed. Continuous mode
//! holds a streamed capture's retention until the watermark reaches its last packet.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::logformat::shard_of;

/// The per-shard watermarks and the run-wide one, shared with readers.
#[derive(Debug, Default)]
pub struct Watermark {
    /// Newest acknowledged record time (ns since the epoch) per shard; 0: none yet.
    shards: BTreeMap<Option<u32>, u64>,
    shared: Arc<AtomicU64>,
}

impl Watermark {
    /// The run-wide watermark (ns since the epoch; 0 until every shard has an acknowledged record).
    pub fn shared(&self) -> Arc<AtomicU64> {
        self.shared.clone()
    }

    /// Counts the `shard-K` directories directly under `roots` as shards, before they hold a log.
    pub fn discover(&mut self, roots: &[PathBuf]) {
        for root in roots {
            let Ok(entries) = fs::read_dir(root) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let k = name.to_str().and_then(|n| n.strip_prefix("shard-"));
                if let Some(k) = k.and_then(|k| k.parse().ok()) {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        self.add(Some(k));
                    }
                }
            }
        }
        self.publish();
    }

    /// Counts the shard of the log at `path`.
    pub fn log_seen(&mut self, path: &Path) {
        self.add(shard_of(path));
        self.publish();
    }

    /// Records at `path` up to time `newest_ns` are acknowledged.
    pub fn acknowledged(&mut self, path: &Path, newest_ns: u64) {
        let mark = self.shards.entry(shard_of(path)).or_insert(0);
        *mark = (*mark).max(newest_ns);
        self.publish();
    }

    fn add(&mut self, shard: Option<u32>) {
        self.shards.entry(shard).or_insert(0);
    }

    fn publish(&self) {
        let low = self.shards.values().copied().min().unwrap_or(0);
        self.shared.store(low, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_shard_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("shard-0")).unwrap();
        fs::create_dir(dir.path().join("shard-1")).unwrap();
        fs::create_dir(dir.path().join("shard-x")).unwrap();
        let mut w = Watermark::default();
        let shared = w.shared();
        w.discover(&[dir.path().to_path_buf()]);
        w.acknowledged(&dir.path().join("shard-0/eve.json"), 500);
        assert_eq!(shared.load(Ordering::Acquire), 0, "shard-1 has nothing yet");
        w.acknowledged(&dir.path().join("shard-1/eve.json"), 300);
        assert_eq!(shared.load(Ordering::Acquire), 300);
        w.acknowledged(&dir.path().join("shard-1/eve.json"), 200);
        assert_eq!(shared.load(Ordering::Acquire), 300, "never moves back");
        w.log_seen(&dir.path().join("conn.log"));
        assert_eq!(
            shared.load(Ordering::Acquire),
            0,
            "logs outside the shards are one more shard"
        );
        w.acknowledged(&dir.path().join("conn.log"), 900);
        assert_eq!(shared.load(Ordering::Acquire), 300);
    }
}
