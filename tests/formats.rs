//! Formats: `scan` describes every corpus capture as the manifest does, and gzip- or
//! zstd-compressed captures (recognised by content) give the same outputs as the plain ones.

mod common;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use common::{corpus, read_capture, shardcap};

#[test]
fn scan_matches_the_manifest_for_every_capture() {
    let rows = common::manifest();
    let mut args = vec!["scan".to_string()];
    args.extend(rows.iter().map(|r| r.file().display().to_string()));
    let r = shardcap(&args);
    assert_eq!(r.code, 3, "damaged captures make scan exit 3: {}", r.stderr);
    let reports: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(reports.len(), rows.len());
    let mut failures = Vec::new();
    for (row, rep) in rows.iter().zip(&reports) {
        let mut fail = |what: String| failures.push(format!("{}: {what}", row.path));
        assert_eq!(rep["path"], row.file().display().to_string());
        if rep["packets"] != row.packets {
            fail(format!("packets {} != {}", rep["packets"], row.packets));
        }
        let problems: Vec<&str> = rep["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        if problems.is_empty() == row.damaged {
            fail(format!(
                "problems {problems:?}, manifest damaged: {}",
                row.damaged
            ));
        }
        let located = |p: &&str| {
            p.strip_prefix("byte ")
                .and_then(|p| p.split_once(':'))
                .is_some_and(|(n, _)| n.parse::<u64>().is_ok())
        };
        if !problems.iter().all(located) {
            fail(format!("a problem without its byte offset: {problems:?}"));
        }
        let mut lts: Vec<u32> = rep["link_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32 & 0xffff)
            .collect();
        lts.sort_unstable();
        let mut want = row.link_type_numbers();
        want.sort_unstable();
        if lts != want {
            fail(format!("link types {lts:?} != {want:?}"));
        }
        let precision = if row.sub_micro() { "ns" } else { "us" };
        if rep["precision"] != precision {
            fail(format!("precision {} != {precision}", rep["precision"]));
        }
        let format = if row.format.starts_with("pcapng") {
            "pcapng"
        } else if row.format.contains("modified") {
            "pcap-modified"
        } else {
            "pcap"
        };
        if rep["format"] != format {
            fail(format!("format {} != {format}", rep["format"]));
        }
        let input = read_capture(&row.file());
        if input.packets.len() == row.packets {
            let recs = input.recs();
            let bytes: usize = recs.iter().map(|r| r.data.len()).sum();
            let first = serde_json::json!(recs.first().map(|r| r.ts_ns));
            let last = serde_json::json!(recs.iter().map(|r| r.ts_ns).max());
            if rep["bytes"] != bytes || rep["first_ts"] != first || rep["last_ts"] != last {
                fail(format!(
                    "bytes/first/last {} {} {} != {bytes} {first} {last}",
                    rep["bytes"], rep["first_ts"], rep["last_ts"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Captures of each kind: pcap LE, pcap BE nanosecond, pcapng of both byte orders and several
/// sections, pcapng with nanosecond interfaces, and a pcap cut short in its last record.
const SAMPLES: &[&str] = &[
    "zeek/ssh-session.pcap",
    "pcapplusplus/nanosecond-big-endian.pcap",
    "gopacket/pcapng-test-generator/le/test202.pcapng",
    "gopacket/pcapng-test-generator/be/test201.pcapng",
    "zeek/pcapng-multi-interface-mergecap.pcapng",
    "suricata-verify/pgsql-5000-query-results/input.pcap",
];

fn compress(src: &Path, dir: &Path, gzip: bool) -> PathBuf {
    let name = src.file_name().unwrap().to_string_lossy();
    // Names say nothing: the format is found by content.
    let dst = dir.join(format!("{}-{name}", if gzip { "g" } else { "z" }));
    let mut input = File::open(src).unwrap();
    let out = File::create(&dst).unwrap();
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        io::copy(&mut input, &mut enc).unwrap();
        enc.finish().unwrap().flush().unwrap();
    } else {
        let mut enc = zstd::stream::write::Encoder::new(out, 3).unwrap();
        io::copy(&mut input, &mut enc).unwrap();
        enc.finish().unwrap().flush().unwrap();
    }
    dst
}

/// Runs `-n 3` into `out`; returns the exit code and stderr with the input's path blanked out.
fn run_into(input: &Path, out: &Path) -> (i32, String) {
    fs::create_dir(out).unwrap();
    let r = shardcap([
        "run".as_ref(),
        "-n".as_ref(),
        "3".as_ref(),
        "--link-mismatch".as_ref(),
        "drop".as_ref(),
        "-o".as_ref(),
        format!("file:{}/s-{{shard}}.pcap", out.display()).as_ref(),
        input.as_os_str(),
    ]);
    (
        r.code,
        r.stderr.replace(&input.display().to_string(), "INPUT"),
    )
}

#[test]
fn compressed_inputs_give_the_same_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, rel) in SAMPLES.iter().enumerate() {
        let plain = corpus(rel);
        let (code, stderr) = run_into(&plain, &tmp.path().join(format!("{i}-plain")));
        assert!(code == 0 || code == 3, "{rel}: exit {code}: {stderr}");
        for gzip in [true, false] {
            let packed = compress(&plain, tmp.path(), gzip);
            let scan = shardcap(["scan".as_ref(), packed.as_os_str()]);
            let rep: serde_json::Value = serde_json::from_str(scan.stdout.trim()).unwrap();
            assert_eq!(rep["compression"], if gzip { "gzip" } else { "zstd" });
            let out = tmp.path().join(format!("{i}-{gzip}"));
            let (c, e) = run_into(&packed, &out);
            assert_eq!((c, strip_times(&e)), (code, strip_times(&stderr)), "{rel}");
            for k in 0..3 {
                let name = format!("s-{k}.pcap");
                let want = fs::read(tmp.path().join(format!("{i}-plain")).join(&name)).unwrap();
                let got = fs::read(out.join(&name)).unwrap();
                assert!(want == got, "{rel} (gzip {gzip}): shard {k} differs");
            }
        }
    }
}

/// Log lines without their timestamps.
fn strip_times(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(|l| l.split_once(']').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}
