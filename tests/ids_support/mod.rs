//! Helpers of the consumer tests (beside tests/common): splitting a capture by time, running
//! Suricata, and reading Suricata's eve.json into comparable sets.

#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{read_capture, write_pcap, Rec, Run};

/// The repository root (suricata-conf/ lives there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Splits `src` into `parts` files of equal time spans (named part-0.pcap ...), keeping its link
/// type and precision; returns them in time order. Sessions that last across a cut span two files.
pub fn split_by_time(src: &Path, parts: usize, dir: &Path) -> Vec<PathBuf> {
    let cap = read_capture(src);
    assert!(cap.error.is_none(), "{}: {:?}", src.display(), cap.error);
    let recs = cap.recs();
    let (first, last) = (recs[0].ts_ns, recs[recs.len() - 1].ts_ns);
    let span = (last - first) as f64;
    let mut slices: Vec<Vec<Rec>> = vec![Vec::new(); parts];
    for r in recs {
        let at = (r.ts_ns - first) as f64 / span;
        slices[((at * parts as f64) as usize).min(parts - 1)].push(r);
    }
    slices
        .iter()
        .enumerate()
        .map(|(i, recs)| {
            let p = dir.join(format!("part-{i}.pcap"));
            write_pcap(&p, cap.linktypes[0], cap.sub_micro, recs);
            p
        })
        .collect()
}

/// Panics with shardcap's stderr unless it exited 0.
pub fn expect_success(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: shardcap failed:\n{}", run.stderr);
}

/// Checks the feed of a `-v` run given no `-o`: each shard of `n` that started an instance
/// handed it the FIFO `LOGDIR/shard-K.pipe` as `reader` followed by that path (`-r ` for
/// Suricata, `-r pcap::` for Zeek 8.2), and that path is a FIFO. Returns the number of instances
/// started.
pub fn assert_fed_by_default_fifos(run: &Run, log_dir: &Path, n: usize, reader: &str) -> usize {
    use std::os::unix::fs::FileTypeExt;
    let mut started = 0;
    for k in 0..n {
        let Some(line) = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!("shard {k}: started ")))
        else {
            continue;
        };
        started += 1;
        let fifo = log_dir.join(format!("shard-{k}.pipe"));
        let arg = format!("{reader}{} ", fifo.display());
        assert!(
            format!("{line} ").contains(&arg),
            "shard {k}: expected `{arg}` in the command line: {line}"
        );
        let kind = fs::symlink_metadata(&fifo).map(|m| m.file_type());
        assert!(
            kind.as_ref().is_ok_and(|t| t.is_fifo()),
            "{}: not a FIFO ({kind:?})",
            fifo.display()
        );
    }
    started
}

/// Runs Suricata once over `inputs` in order (a single file, as a user would), logging to `dir`,
/// with the shipped configuration and rules.
pub fn suricata_once(input: &Path, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let out = Command::new("suricata")
        .current_dir(repo())
        .args(["-c", "suricata-conf/suricata.yaml", "-k", "none", "-r"])
        .arg(input)
        .arg("-l")
        .arg(dir)
        .output()
        .expect("Suricata 7 must be installed (.ci/run installs it from bookworm-backports)");
    assert!(
        out.status.success(),
        "suricata -r {}: {}\n{}",
        input.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One flow record: community_id, proto, pkts and bytes each way, start, end.
pub type FlowRecord = (String, String, u64, u64, u64, u64, String, String);
/// One alert: signature_id, community_id, timestamp.
pub type AlertRecord = (u64, String, String);

/// What a set of Suricata runs saw.
#[derive(Debug, Default)]
pub struct Eve {
    pub flows: BTreeSet<FlowRecord>,
    pub alerts: BTreeSet<AlertRecord>,
    /// Flow records read (duplicates included).
    pub flow_lines: usize,
}

impl Eve {
    /// Reads every eve.json under `dirs` (not recursively). A shard directory where no consumer
    /// ever ran (no console log: the shard got no packets) has none.
    pub fn read(dirs: &[PathBuf]) -> Eve {
        let mut eve = Eve::default();
        for d in dirs {
            let path = d.join("eve.json");
            if !path.exists() && !d.join("console.log").exists() {
                continue;
            }
            let f = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for line in BufReader::new(f).lines() {
                let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
                let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
                match v["event_type"].as_str() {
                    Some("flow") => {
                        let f = &v["flow"];
                        let n = |k: &str| f[k].as_u64().unwrap();
                        let t = |k: &str| f[k].as_str().unwrap().to_string();
                        eve.flow_lines += 1;
                        eve.flows.insert((
                            s("community_id"),
                            s("proto"),
                            n("pkts_toserver"),
                            n("pkts_toclient"),
                            n("bytes_toserver"),
                            n("bytes_toclient"),
                            t("start"),
                            t("end"),
                        ));
                    }
                    Some("alert") => {
                        eve.alerts.insert((
                            v["alert"]["signature_id"].as_u64().unwrap(),
                            s("community_id"),
                            s("timestamp"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        eve
    }

    /// Prints every difference from `reference` and returns how many there are (flows, alerts).
    pub fn diff(&self, reference: &Eve, label: &str) -> (usize, usize) {
        let show = |kind: &str, only_ref: Vec<String>, only_self: Vec<String>| {
            for r in &only_ref {
                eprintln!("  {label}: {kind} only in the reference: {r}");
            }
            for r in &only_self {
                eprintln!("  {label}: {kind} only in {label}: {r}");
            }
            only_ref.len() + only_self.len()
        };
        let flows = show(
            "flow",
            missing(&self.flows, &reference.flows),
            missing(&reference.flows, &self.flows),
        );
        let alerts = show(
            "alert",
            missing(&self.alerts, &reference.alerts),
            missing(&reference.alerts, &self.alerts),
        );
        eprintln!(
            "{label}: {} flows, {} alerts; reference {} flows, {} alerts; {flows} flow and {alerts} \
             alert differences",
            self.flows.len(),
            self.alerts.len(),
            reference.flows.len(),
            reference.alerts.len()
        );
        (flows, alerts)
    }
}

/// The records of `want` that `have` lacks, printed.
fn missing<T: Ord + std::fmt::Debug>(have: &BTreeSet<T>, want: &BTreeSet<T>) -> Vec<String> {
    want.difference(have).map(|r| format!("{r:?}")).collect()
}

/// The shard log directories `LOGDIR/shard-K` of a run with `n` shards.
pub fn shard_dirs(log_dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|k| log_dir.join(format!("shard-{k}"))).collect()
}
