//! Link-layer normalisation: inputs and pcapng interfaces of several link types come out as one
//! Ethernet stream, every packet kept, each one's network layer byte for byte as captured; and
//! Suricata sees the same flows through N shards as reading the normalised merge at once.

mod common;
mod ids_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    corpus, manifest, non_decreasing, read_capture, read_shards, shardcap, stats, write_pcap, Rec,
    Stream,
};
use ids_support::{expect_success, shard_dirs, suricata_once, Eve};

/// Corpus captures of three link types whose times do not overlap; [`overlapping`] moves them
/// into one time range.
const ETHERNET: &str = "zeek/wikipedia-http-browse.pcap";
const SLL: &str = "pcapplusplus/linux-sll-518pkts.pcap";
const SLL2: &str = "suricata-verify/decode-sll2-02/input.pcap";

/// A packet as a normalised stream must carry it: time, original length, ethertype, and the
/// bytes after the link header (the network layer on).
type Norm = (u64, u32, u16, Vec<u8>);

/// Length of the link header and the ethertype of a packet of `linktype`, decoded here
/// independently of shardcap.
fn link_header(linktype: u32, d: &[u8]) -> (usize, u16) {
    let be16 = |at: usize| u16::from_be_bytes([d[at], d[at + 1]]);
    let by_version = || if d[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
    match linktype {
        1 => (14, be16(12)),
        113 => (16, be16(14)),
        276 => (20, be16(0)),
        0 | 108 => {
            let family = u32::from_le_bytes(d[..4].try_into().unwrap());
            let family = if family > 0xffff {
                family.swap_bytes()
            } else {
                family
            };
            (4, if family == 2 { 0x0800 } else { 0x86dd })
        }
        12 | 14 | 101 | 228 | 229 => (0, by_version()),
        _ => panic!("link type {linktype} in a test input"),
    }
}

/// What an input packet must become in an Ethernet stream (at microseconds unless `nanos`).
fn expected(linktype: u32, r: &Rec, nanos: bool) -> Norm {
    let (head, ethertype) = link_header(linktype, &r.data);
    let ts = if nanos {
        r.ts_ns
    } else {
        r.ts_ns / 1000 * 1000
    };
    (
        ts,
        r.len + 14 - head as u32,
        ethertype,
        r.data[head..].to_vec(),
    )
}

/// What an output frame carries.
fn found(r: &Rec) -> Norm {
    let (_, ethertype) = link_header(1, &r.data);
    (r.ts_ns, r.len, ethertype, r.data[14..].to_vec())
}

/// Checks that the Ethernet `streams` hold exactly the packets of `inputs` (each packet with the
/// link type of its interface), normalised; the Ethernet packets also byte for byte.
fn assert_normalised(inputs: &[(u32, Rec)], streams: &[Stream], what: &str) {
    let nanos = streams[0].nanos;
    let out: Vec<Rec> = streams.iter().flat_map(|s| s.packets.clone()).collect();
    for s in streams {
        assert_eq!(s.linktype, 1, "{what}: the stream is not Ethernet");
    }
    let mut want: Vec<Norm> = inputs
        .iter()
        .map(|(lt, r)| expected(*lt, r, nanos))
        .collect();
    let mut got: Vec<Norm> = out.iter().map(found).collect();
    want.sort();
    got.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} packets out of {}",
        got.len(),
        want.len()
    );
    let differ = want.iter().zip(&got).filter(|(w, g)| w != g).count();
    assert_eq!(
        differ, 0,
        "{what}: {differ} packets differ from the network layer on"
    );
    let mut ethernet: Vec<Rec> = inputs
        .iter()
        .filter(|(lt, _)| *lt == 1)
        .map(|(_, r)| if nanos { r.clone() } else { r.at_micros() })
        .collect();
    ethernet.sort();
    let mut left = out.clone();
    left.sort();
    for r in &ethernet {
        let i = left
            .binary_search(r)
            .unwrap_or_else(|_| panic!("{what}: Ethernet packet at {} not out as is", r.ts_ns));
        left.remove(i);
    }
}

/// `shardcap run -n N -o file:DIR/s-{shard}.pcap --stats-file DIR/stats.json`: exit code, stderr.
fn run(inputs: &[PathBuf], n: usize, dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "run".to_string(),
        "-n".into(),
        n.to_string(),
        "-o".into(),
        format!("file:{}/s-{{shard}}.pcap", dir.display()),
        "--stats-file".into(),
        dir.join("stats.json").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    let r = shardcap(&args);
    (r.code, r.stderr)
}

/// The three corpus captures rewritten into `dir` so that their times overlap (each keeps its
/// link type, packets and spacing), with their packets.
fn overlapping(dir: &Path) -> (Vec<PathBuf>, Vec<(u32, Rec)>) {
    let sll = read_capture(&corpus(SLL));
    let start = sll.packets[0].1.ts_ns;
    let mut files = vec![corpus(SLL)];
    let mut packets = sll.packets.clone();
    for (i, rel) in [ETHERNET, SLL2].iter().enumerate() {
        let cap = read_capture(&corpus(rel));
        assert!(cap.error.is_none(), "{rel}: {:?}", cap.error);
        // Start 3 s and 7 s after the SLL capture, which lasts 51 s.
        let shift = start + (3 + 4 * i as u64) * 1_000_000_000 - cap.packets[0].1.ts_ns;
        let recs: Vec<Rec> = cap
            .recs()
            .into_iter()
            .map(|r| Rec {
                ts_ns: r.ts_ns + shift,
                ..r
            })
            .collect();
        let path = dir.join(format!("in-{i}.pcap"));
        write_pcap(&path, cap.linktypes[0], false, &recs);
        packets.extend(recs.into_iter().map(|r| (cap.linktypes[0], r)));
        files.push(path);
    }
    (files, packets)
}

/// Every corpus pcapng with packets on several link types, and one merged here from captures of
/// Ethernet and Linux SLL (mergecap): every packet out, Ethernet, network layer unchanged.
#[test]
fn pcapng_with_several_link_types_loses_no_packet() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = manifest()
        .iter()
        .filter(|r| {
            let on = r.link_types.split("packets on").nth(1).unwrap_or("");
            r.format.starts_with("pcapng") && on.contains(',') && !r.damaged
        })
        .map(|r| r.file())
        .collect();
    assert!(
        files.len() >= 3,
        "corpus pcapng files of several link types: {files:?}"
    );
    let (parts, _) = overlapping(tmp.path());
    let merged = tmp.path().join("eth-sll.pcapng");
    let out = Command::new("mergecap")
        .args(["-F", "pcapng", "-w"])
        .arg(&merged)
        .args(&parts[..2])
        .output()
        .expect("mergecap (Wireshark's tools) must be installed to build an Ethernet+SLL pcapng");
    assert!(out.status.success(), "mergecap: {out:?}");
    files.push(merged);
    for (i, file) in files.iter().enumerate() {
        let cap = read_capture(file);
        assert!(cap.error.is_none(), "{}: {:?}", file.display(), cap.error);
        let linktypes: Vec<u32> = cap.packets.iter().map(|p| p.0).collect();
        assert!(
            linktypes.iter().any(|&lt| lt != linktypes[0]),
            "{}: packets on one link type only",
            file.display()
        );
        let dir = tmp.path().join(format!("out-{i}"));
        std::fs::create_dir(&dir).unwrap();
        let (code, stderr) = run(std::slice::from_ref(file), 3, &dir, &[]);
        assert_eq!(code, 0, "{}: {stderr}", file.display());
        let streams = read_shards(&dir, "s", 3).unwrap();
        assert_normalised(&cap.packets, &streams, &file.display().to_string());
        let st = stats(&dir.join("stats.json"));
        let converted = cap.packets.iter().filter(|p| p.0 != 1).count();
        assert_eq!(
            st["normalised_linktype"],
            converted as u64,
            "{}",
            file.display()
        );
        assert_eq!(st["dropped_linktype"], 0, "{}", file.display());
    }
}

/// Captures of Ethernet, Linux SLL and SLL2 whose times overlap, merged: every packet out, in
/// time order, one Ethernet stream; `--link-type keep` still refuses them.
#[test]
fn inputs_of_different_link_types_merge_in_time_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, packets) = overlapping(tmp.path());
    for n in [1, 3] {
        let dir = tmp.path().join(format!("n{n}"));
        std::fs::create_dir(&dir).unwrap();
        let (code, stderr) = run(&inputs, n, &dir, &[]);
        assert_eq!(code, 0, "-n {n}: {stderr}");
        let streams = read_shards(&dir, "s", n).unwrap();
        for (k, s) in streams.iter().enumerate() {
            assert!(
                non_decreasing(&s.packets),
                "-n {n}: shard {k} out of time order"
            );
            assert!(!s.packets.is_empty(), "-n {n}: shard {k} got no packet");
        }
        assert_normalised(&packets, &streams, &format!("-n {n}"));
        let st = stats(&dir.join("stats.json"));
        let converted = packets.iter().filter(|p| p.0 != 1).count() as u64;
        assert_eq!(st["normalised_linktype"], converted);
        assert_eq!(st["packets"], packets.len() as u64);
    }
    let dir = tmp.path().join("keep");
    std::fs::create_dir(&dir).unwrap();
    let (code, stderr) = run(&inputs, 2, &dir, &["--link-type", "keep"]);
    assert_eq!(code, 2, "--link-type keep: {stderr}");
    assert!(stderr.contains("link type"), "{stderr}");
}

/// One input: auto keeps its link type (byte for byte), ethernet converts it.
#[test]
fn one_link_type_is_kept_unless_ethernet_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let input = [corpus(SLL)];
    let cap = read_capture(&input[0]);
    let (code, stderr) = run(&input, 2, tmp.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    let streams = read_shards(tmp.path(), "s", 2).unwrap();
    assert!(streams.iter().all(|s| s.linktype == 113));
    let got = streams.iter().flat_map(|s| s.packets.clone()).collect();
    common::same_packets(cap.recs(), got).unwrap();

    let dir = tmp.path().join("ethernet");
    std::fs::create_dir(&dir).unwrap();
    let (code, stderr) = run(&input, 2, &dir, &["--link-type", "ethernet"]);
    assert_eq!(code, 0, "{stderr}");
    assert_normalised(
        &cap.packets,
        &read_shards(&dir, "s", 2).unwrap(),
        "ethernet",
    );
}

/// Suricata over 2 shards of the mixed inputs sees the same flows and alerts as one Suricata
/// reading the normalised merge (`-n 1 -o file:`).
#[test]
fn suricata_over_shards_of_mixed_link_types_equals_one_suricata_on_the_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, _) = overlapping(tmp.path());
    let merge_dir = tmp.path().join("merge");
    std::fs::create_dir(&merge_dir).unwrap();
    let (code, stderr) = run(&inputs, 1, &merge_dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let merged = merge_dir.join("s-0.pcap");
    let ref_dir = tmp.path().join("reference");
    suricata_once(&merged, &ref_dir);
    let reference = Eve::read(&[ref_dir]);
    assert!(
        reference.flows.len() >= 10,
        "the reference saw {} flows; the comparison would prove little",
        reference.flows.len()
    );

    let log_dir = tmp.path().join("logs");
    let mut args: Vec<String> = ["run", "--ids", "suricata", "-n", "2", "--log-dir"]
        .map(String::from)
        .to_vec();
    args.push(log_dir.display().to_string());
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    let r = shardcap(&args);
    expect_success(&r, "--ids suricata -n 2");
    let dirs = shard_dirs(&log_dir, 2);
    for d in &dirs {
        let per_shard = Eve::read(std::slice::from_ref(d));
        assert!(!per_shard.flows.is_empty(), "{}: no flows", d.display());
    }
    let eve = Eve::read(&dirs);
    let (flows, alerts) = eve.diff(&reference, "mixed link types, N=2");
    assert_eq!((flows, alerts), (0, 0), "flow and alert differences");
}
