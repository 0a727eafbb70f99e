//! `--partition K/M --ids suricata --ship` into the noida-db stand-in: M partitions, one of them
//! killed mid-stream (shardcap alone, leaving its Suricata to end its stream; or shardcap with its
//! Suricata, as a dead machine) or stopped, and restarted on the same `--state` and log directory, index
//! exactly the documents of one uninterrupted `-n M` run, with the same `_id`s, never one `_id` on
//! two nodes; replaying a partition again indexes nothing new. Real parts: Suricata 7, noida-db.

mod common;
mod ship_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Stdio;

use common::wait_for;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use ship_support::*;

/// Partitions (one Suricata each).
const M: u32 = 3;
/// The partition that is killed and restarted.
const KILLED: u32 = 1;

/// `shardcap run --ids suricata --ship` arguments with `extra` (index prefix, partition, state...).
fn run_args(server: &Server, logs: &Path, pile: &str, extra: &[&str]) -> Vec<String> {
    ["run".to_string()]
        .into_iter()
        .chain(suricata_shipping(server))
        .chain(["--log-dir".to_string(), logs.display().to_string()])
        .chain(extra.iter().map(|s| s.to_string()))
        .chain([pile.to_string()])
        .collect()
}

/// Partition `k` of M with one shard, indexing under `prefix`.
fn partition_args(k: u32, prefix: &str) -> Vec<String> {
    let partition = format!("{k}/{M}");
    [
        "--partition",
        &partition,
        "-n",
        "1",
        "--index-prefix",
        prefix,
    ]
    .map(String::from)
    .to_vec()
}

/// Runs shardcap to its end, insisting on success; returns its stderr.
fn run_ok(args: &[String], what: &str) -> String {
    let r = common::shardcap(args);
    assert_eq!(r.code, 0, "{what}: {args:?}\n{}", r.stderr);
    r.stderr
}

/// Packets the running partition wrote, from its stats file.
fn written(stats: &Path) -> Option<u64> {
    let text = fs::read_to_string(stats).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["packets"].as_u64()
}

/// How the killed partition dies.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Death {
    /// `kill -9` of shardcap: its Suricata reads to the end of its FIFO and logs what it holds.
    Shardcap,
    /// `kill -9` of shardcap and its Suricata.
    Machine,
    /// SIGTERM: shardcap ends the streams and waits for its Suricata, which logs what it holds
    /// (flows cut short) after the shipper stopped.
    Stop,
}

/// Starts partition `KILLED` paced, kills it (`death`) once a third of its packets are written
/// and some of its records are indexed, and restarts it on the same state and log directory.
fn kill_and_restart(server: &Server, dir: &Path, pile: &str, prefix: &str, death: Death) {
    let logs = dir.join(format!("p{KILLED}/logs"));
    let state = dir.join(format!("p{KILLED}/state"));
    let stats = dir.join("killed-stats.json");
    let partition = format!("{KILLED}/{M}");
    let st = state.to_str().unwrap();
    let common = ["--partition", &partition, "-n", "1", "--state", st];
    let common = [&common[..], &["--index-prefix", prefix]].concat();
    let total = {
        let probe = dir.join("probe");
        let o = format!("file:{}/g{{global}}.pcap", probe.display());
        fs::create_dir_all(&probe).unwrap();
        let r = common::shardcap(["run", "--partition", &partition, "-n", "1", "-o", &o, pile]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        common::read_stream(&probe.join(format!("g{KILLED}.pcap")))
            .unwrap()
            .packets
            .len() as u64
    };
    let paced = [
        "--run-id",
        "interrupted",
        "--checkpoint-interval",
        "100ms",
        "--max-pps",
        "1500",
        "--stats-interval",
        "20ms",
        "--stats-file",
        stats.to_str().unwrap(),
    ];
    let args = run_args(server, &logs, pile, &[&common[..], &paced[..]].concat());
    let console = fs::File::create(dir.join("killed.stderr")).unwrap();
    let mut run = common::ChildGuard::start(
        common::command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(console),
    );
    let at = wait_for(
        "a third of the partition's packets and some records indexed",
        || written(&stats).filter(|&n| n >= total / 3 && server.count(&format!("{prefix}*")) > 0),
    );
    let suricata = common::children(run.pid());
    assert_eq!(suricata.len(), 1, "one Suricata: {suricata:?}");
    let orphan = Pid::from_raw(suricata[0]);
    match death {
        Death::Shardcap => run.kill(),
        Death::Machine => {
            run.kill();
            kill(orphan, Signal::SIGKILL).unwrap();
        }
        Death::Stop => run.stop(Signal::SIGTERM),
    }
    assert!(at < total, "{death:?}: killed before the end");
    let stderr = run_ok(
        &run_args(
            server,
            &logs,
            pile,
            &[&common[..], &["--run-id", "replay"]].concat(),
        ),
        "restart",
    );
    assert!(
        stderr.contains("replayed from its start into fresh instances"),
        "{stderr}"
    );
    assert!(
        logs.join(".replaced-1/shard-0/eve.json").is_file(),
        "the interrupted instance's logs are set aside"
    );
    // An orphaned Suricata ends with the end of its (old) FIFO.
    wait_until("the interrupted Suricata to end", || {
        kill(orphan, None).is_err() || is_zombie(orphan)
    });
}

/// True for a process that ended and waits to be reaped (by init or a subreaper).
fn is_zombie(pid: Pid) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn a_killed_partition_restarted_indexes_exactly_the_documents_of_one_run() {
    let server = Server::start(Kind::Noida);
    let tmp = tempfile::tempdir().unwrap();
    let pile = common::pile(&tmp.path().join("pile"), 1 << 20, 5).remove(0);

    // One node, -n M.
    let n = M.to_string();
    let single_logs = tmp.path().join("single");
    run_ok(
        &run_args(
            &server,
            &single_logs,
            &pile,
            &["-n", &n, "--index-prefix", "single-"],
        ),
        "single node",
    );
    let single = documents(&server, "single-*");
    let c = single.len();
    assert!(c > 500, "too few records to prove anything: {c}");
    let types: BTreeSet<&str> = single.values().map(|d| d.1.as_str()).collect();
    for t in ["alert", "flow", "http", "dns", "stats"] {
        assert!(types.contains(t), "no {t} record: {types:?}");
    }

    for death in [Death::Shardcap, Death::Machine, Death::Stop] {
        let prefix = format!("{death:?}-").to_lowercase();
        let dir = tmp.path().join(&prefix);
        kill_and_restart(&server, &dir, &pile, &prefix, death);
        for k in (0..M).filter(|&k| k != KILLED) {
            let logs = dir.join(format!("p{k}/logs"));
            let state = dir.join(format!("p{k}/state"));
            let extra = partition_args(k, &prefix);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let state_args = ["--state", state.to_str().unwrap()];
            run_ok(
                &run_args(&server, &logs, &pile, &[&extra[..], &state_args].concat()),
                "partition",
            );
        }
        let parts = documents(&server, &format!("{prefix}*"));
        let interrupted = parts.values().filter(|d| d.2 == "interrupted").count();
        assert!(
            interrupted > 0,
            "{death:?}: nothing was indexed before the kill: the replay proved nothing"
        );
        assert_eq!(
            parts.len(),
            c,
            "{death:?}: the partitions' document count differs from one run's"
        );
        assert_eq!(
            parts.keys().collect::<Vec<_>>(),
            single.keys().collect::<Vec<_>>(),
            "{death:?}: the partitions' _ids differ from one run's"
        );
        // Each _id belongs to one node: the global shard is in it.
        let mut node_of = BTreeMap::new();
        for (id, (node, ..)) in &parts {
            let key = id.split('-').next().unwrap();
            let prev = node_of.insert(key.to_string(), node.clone());
            assert!(
                prev.is_none_or(|p| &p == node),
                "{death:?}: key {key} on two nodes"
            );
        }
        assert_eq!(
            parts.values().map(|d| &d.0).collect::<BTreeSet<_>>().len(),
            M as usize,
            "{death:?}: documents of every node"
        );

        // Again: the completed state is a no-op, and a replay of the partition into a fresh
        // state and log directory produces every record again but indexes nothing new.
        let extra = partition_args(KILLED, &prefix);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let logs = dir.join(format!("p{KILLED}/logs"));
        let state = dir.join(format!("p{KILLED}/state"));
        let state_args = ["--state", state.to_str().unwrap()];
        run_ok(
            &run_args(&server, &logs, &pile, &[&extra[..], &state_args].concat()),
            "rerun on the completed state",
        );
        let again = dir.join("again");
        let fresh_state = ["--state", again.to_str().unwrap(), "--run-id", "again"];
        let stderr = run_ok(
            &run_args(
                &server,
                &again.join("logs"),
                &pile,
                &[&extra[..], &fresh_state].concat(),
            ),
            "second replay",
        );
        assert_eq!(
            server.count(&format!("{prefix}*")) as usize,
            c,
            "{death:?}: a second replay indexed something\n{stderr}"
        );
        let shipped = stderr
            .lines()
            .find_map(|l| l.split("shipped ").nth(1))
            .unwrap_or_else(|| panic!("no shipping summary\n{stderr}"));
        let mut words = shipped
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty());
        let (created, existing) = (words.next().unwrap(), words.next().unwrap());
        assert!(
            created == "0" && existing != "0",
            "{death:?}: the second replay's records are all indexed already: {shipped}"
        );
    }
}
