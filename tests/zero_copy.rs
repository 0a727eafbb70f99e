//! Records written from where they were read: a little-endian pcap record is written out from the
//! input's read buffer, any other is copied first. Both ways give the same bytes, whatever the
//! shard count (many shards make outputs fall back to copies), precision and mix of inputs, and
//! whether the file outputs are written past the page cache or through it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{files, shardcap, stats};

/// Generates a rotated pile of little-endian pcap files in `dir`.
fn generate(dir: &Path, nanos: bool, seed: u64) {
    shardcap_gen::generate(&shardcap_gen::GenerateConfig {
        out: dir.to_path_buf(),
        sensors: 2,
        files_per_sensor: 2,
        size: 6 << 20,
        seed,
        nanos,
        gzip: false,
        zstd: false,
        duration: std::time::Duration::from_secs(20),
    })
    .unwrap();
}

/// The same capture with every header field in big-endian byte order (records copied by
/// shardcap: their headers are not those of its output).
fn big_endian(pcap: &[u8]) -> Vec<u8> {
    let swap32 = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap()).to_be_bytes();
    let swap16 = |b: &[u8]| u16::from_le_bytes(b.try_into().unwrap()).to_be_bytes();
    let mut out = Vec::with_capacity(pcap.len());
    out.extend(swap32(&pcap[0..4]));
    out.extend(swap16(&pcap[4..6]));
    out.extend(swap16(&pcap[6..8]));
    for f in (8..24).step_by(4) {
        out.extend(swap32(&pcap[f..f + 4]));
    }
    let mut at = 24;
    while at < pcap.len() {
        for f in (at..at + 16).step_by(4) {
            out.extend(swap32(&pcap[f..f + 4]));
        }
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        out.extend(&pcap[at + 16..at + 16 + caplen]);
        at += 16 + caplen;
    }
    assert_eq!(at, pcap.len(), "whole records");
    out
}

/// Copies the files of `from` into a new directory `to`, big-endian where `swap` says so.
fn convert(from: &Path, to: &Path, swap: impl Fn(&str) -> bool) {
    fs::create_dir_all(to).unwrap();
    for (name, bytes) in files(from) {
        let bytes = if swap(&name) {
            big_endian(&bytes)
        } else {
            bytes
        };
        fs::write(to.join(name), bytes).unwrap();
    }
}

/// Runs `-n shards` over `input` into `out` with `--file-io io`; returns the shard files and the
/// stats.
fn run(
    input: &Path,
    out: &Path,
    shards: usize,
    io: &str,
) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    fs::create_dir_all(out).unwrap();
    let stats_file = out.with_extension("json");
    let r = shardcap([
        "run".to_string(),
        "-q".into(),
        "--file-io".into(),
        io.into(),
        "-n".into(),
        shards.to_string(),
        "-o".into(),
        format!("file:{}/s-{{shard}}.pcap", out.display()),
        "--stats-file".into(),
        stats_file.display().to_string(),
        input.display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (files(out).into_iter().collect(), stats(&stats_file))
}

#[test]
fn records_written_from_their_buffers_are_the_bytes_of_copied_ones() {
    let tmp = tempfile::tempdir().unwrap();
    for nanos in [false, true] {
        let le = tmp.path().join(format!("le-{nanos}"));
        generate(&le, nanos, 7);
        let be: PathBuf = tmp.path().join(format!("be-{nanos}"));
        convert(&le, &be, |_| true);
        let mixed = tmp.path().join(format!("mixed-{nanos}"));
        convert(&le, &mixed, |name| name.starts_with("sensorB"));
        for shards in [1, 4, 64] {
            let out = |what: &str| tmp.path().join(format!("out-{what}-{nanos}-{shards}"));
            let (copied, copied_stats) = run(&be, &out("be"), shards, "direct");
            let (direct, direct_stats) = run(&le, &out("le"), shards, "direct");
            let (part, part_stats) = run(&mixed, &out("mixed"), shards, "direct");
            let (cached, _) = run(&le, &out("le-buffered"), shards, "buffered");
            let (cached_copies, _) = run(&be, &out("be-buffered"), shards, "buffered");
            let packets = copied_stats["packets"].as_u64().unwrap();
            assert!(packets > 10_000, "{packets} packets");
            let case = format!("nanos {nanos}, {shards} shards");
            assert_eq!(
                copied_stats["packets_uncopied"], 0,
                "{case}: big-endian records are copied"
            );
            let uncopied = direct_stats["packets_uncopied"].as_u64().unwrap();
            assert!(
                uncopied > packets / 2,
                "{case}: {uncopied} of {packets} packets written without a copy"
            );
            if shards == 1 {
                assert_eq!(uncopied, packets, "{case}: one shard copies nothing");
            }
            let some = part_stats["packets_uncopied"].as_u64().unwrap();
            assert!(some > 0 && some < uncopied, "{case}: {some} of {uncopied}");
            assert_eq!(copied.len(), shards, "{case}");
            assert!(
                copied == direct,
                "{case}: outputs differ between copied and uncopied records"
            );
            assert!(
                copied == part,
                "{case}: outputs differ when both kinds are merged"
            );
            assert!(
                copied == cached && copied == cached_copies,
                "{case}: outputs differ between direct and buffered file writes"
            );
        }
    }
}
