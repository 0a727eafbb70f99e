//! FIFO outputs with real reader processes: each reader gets one valid pcap stream spanning all
//! inputs, whether it opens its FIFO before or after shardcap starts; a reader that goes away
//! is reported by name.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    corpus, finished, read_capture, read_stream, same_packets, spawn, wait_until, ChildGuard, Rec,
};

const SHARDS: usize = 3;

/// Ethernet captures (pcap and pcapng) that the stream must span.
const INPUTS: &[&str] = &[
    "zeek/ssh-session.pcap",
    "zeek/http-browse-bro-org.pcap",
    "pcapplusplus/realistic-mixed-http-dns-2013.pcap",
    "zeek/pcapng-vlan-pcp-dei-comments.pcapng",
    "ndpi/realistic-mixed-apps-1kxun.pcap",
];

fn fifo(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("f-{k}"))
}

/// Starts `cat FIFO > out-k.pcap`.
fn cat_reader(dir: &Path, k: usize) -> ChildGuard {
    let out = File::create(dir.join(format!("out-{k}.pcap"))).unwrap();
    ChildGuard::start(Command::new("cat").arg(fifo(dir, k)).stdout(out))
}

fn start_shardcap(dir: &Path, inputs: &[PathBuf]) -> ChildGuard {
    let shards = SHARDS.to_string();
    let pattern = format!("fifo:{}/f-{{shard}}", dir.display());
    let mut args = vec!["run", "-n", &shards, "-o", &pattern];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    spawn(&args)
}

/// Waits until shardcap has created the FIFO (it creates missing ones).
fn wait_for_fifo(path: &Path, shardcap: &mut ChildGuard) {
    wait_until(&format!("shardcap to create {path:?}"), || {
        path.exists() || {
            assert!(
                shardcap.running(),
                "shardcap ended before creating {path:?}"
            );
            false
        }
    });
}

/// Waits for shardcap and its readers; each reader's file must be a whole stream, and together
/// they must hold the inputs' packets.
fn check_run(shardcap: ChildGuard, readers: Vec<ChildGuard>, dir: &Path, inputs: &[PathBuf]) {
    let run = finished(shardcap.output());
    assert_eq!(run.code, 0, "{}", run.stderr);
    for r in readers {
        assert!(r.wait().success());
    }
    check_streams(dir, inputs);
}

fn check_streams(dir: &Path, inputs: &[PathBuf]) {
    let want: Vec<Rec> = inputs
        .iter()
        .flat_map(|p| read_capture(p).recs())
        .map(|r| r.at_micros())
        .collect();
    let mut got = Vec::new();
    for k in 0..SHARDS {
        let s = read_stream(&dir.join(format!("out-{k}.pcap"))).unwrap();
        assert_eq!(s.linktype, 1);
        assert!(!s.packets.is_empty(), "shard {k} got nothing");
        got.extend(s.packets);
    }
    same_packets(want, got).unwrap();
}

#[test]
fn readers_started_before_shardcap_get_whole_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = INPUTS.iter().map(|r| corpus(r)).collect();
    for k in 0..SHARDS {
        nix::unistd::mkfifo(&fifo(tmp.path(), k), nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    let readers: Vec<ChildGuard> = (0..SHARDS).map(|k| cat_reader(tmp.path(), k)).collect();
    let shardcap = start_shardcap(tmp.path(), &inputs);
    check_run(shardcap, readers, tmp.path(), &inputs);
}

#[test]
fn readers_started_after_shardcap_get_whole_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = INPUTS.iter().rev().map(|r| corpus(r)).collect();
    let mut shardcap = start_shardcap(tmp.path(), &inputs);
    let readers: Vec<ChildGuard> = (0..SHARDS)
        .map(|k| {
            wait_for_fifo(&fifo(tmp.path(), k), &mut shardcap);
            cat_reader(tmp.path(), k)
        })
        .collect();
    check_run(shardcap, readers, tmp.path(), &inputs);
}

#[test]
fn a_reader_that_exits_early_is_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    // More than a pipe buffer for every shard.
    let mut inputs: Vec<PathBuf> = INPUTS.iter().map(|r| corpus(r)).collect();
    inputs.push(corpus("zeek/echo-connections-82k-packets.pcap"));
    for k in 0..SHARDS {
        nix::unistd::mkfifo(&fifo(tmp.path(), k), nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    let quitter = ChildGuard::start(
        Command::new("head")
            .args(["-c", "100"])
            .arg(fifo(tmp.path(), 0))
            .stdout(Stdio::null()),
    );
    let readers: Vec<ChildGuard> = (1..SHARDS).map(|k| cat_reader(tmp.path(), k)).collect();
    let run = finished(start_shardcap(tmp.path(), &inputs).output());
    assert!(quitter.wait().success());
    drop(readers);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let name = fifo(tmp.path(), 0).display().to_string();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains(&name) && l.contains("closed")),
        "expected a message naming {name}: {}",
        run.stderr
    );
}
