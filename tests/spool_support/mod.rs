//! Shared by the spool tests, beside `common`: their inputs, `shardcap run` into files and into a
//! spool, and reading pcap streams and spools back.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use crate::common::corpus;

/// Size of a pcap file header.
pub const FILE_HEADER: usize = 24;

/// Ethernet captures of several sizes, one of them nanosecond (so the streams are nanosecond).
pub fn inputs() -> Vec<PathBuf> {
    [
        "zeek/echo-connections-82k-packets.pcap",
        "zeek/http-browse-bro-org.pcap",
        "zeek/ssh-session.pcap",
        "zeek/tls-sslv3-session.pcap",
        "zeek/nanosecond-http-get-to-ssh-server.pcap",
    ]
    .iter()
    .map(|p| corpus(p))
    .collect()
}

/// A `shardcap run` command over `inputs` with extra arguments.
pub fn shardcap_run(inputs: &[PathBuf], args: &[&str]) -> Command {
    let mut cmd = crate::common::command(["run"].iter().chain(args));
    cmd.args(inputs);
    cmd
}

/// `shardcap run -n SHARDS -o dir:ROOT --segment-size SIZE --spool-backlog BACKLOG` over `inputs`.
pub fn spool_run(
    inputs: &[PathBuf],
    shards: usize,
    root: &Path,
    segment_size: &str,
    backlog: usize,
) -> Command {
    shardcap_run(
        inputs,
        &[
            "-n",
            &shards.to_string(),
            "-o",
            &format!("dir:{}", root.display()),
            "--segment-size",
            segment_size,
            "--spool-backlog",
            &backlog.to_string(),
        ],
    )
}

/// Runs a command and insists it exits 0.
pub fn check(mut cmd: Command) -> Output {
    let out = cmd.output().expect("start shardcap");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Per shard, the `-o file:` output of `shards` shards over `inputs`: (header, records).
pub fn file_outputs(dir: &Path, inputs: &[PathBuf], shards: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let pattern = dir.join("file-{shard}.pcap");
    check(shardcap_run(
        inputs,
        &[
            "-n",
            &shards.to_string(),
            "-o",
            &format!("file:{}", pattern.display()),
        ],
    ));
    (0..shards)
        .map(|k| {
            let bytes = fs::read(dir.join(format!("file-{k}.pcap"))).unwrap();
            let (h, r) = bytes.split_at(FILE_HEADER);
            (h.to_vec(), r.to_vec())
        })
        .collect()
}

/// Checks that `records` is a sequence of whole little-endian pcap records; returns their count.
pub fn count_records(records: &[u8], what: &str) -> usize {
    let (mut at, mut n) = (0, 0);
    while at < records.len() {
        assert!(
            at + 16 <= records.len(),
            "{what}: record header cut at {at}"
        );
        let caplen = u32::from_le_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
        assert!(at <= records.len(), "{what}: record data cut before {at}");
        n += 1;
    }
    n
}

/// Segment names of a shard directory, sorted.
pub fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
