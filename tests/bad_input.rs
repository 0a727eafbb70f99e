//! Bad input: usage errors write nothing; unreadable, truncated and corrupt captures are named
//! with a byte offset, their intact packets kept, and the run ends with exit 3 without crashing
//! or allocating what a corrupt length asks for (runs are limited to 2 GiB of address space).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{corpus, read_capture, read_shards, same_packets, shardcap, Rec};

fn out_arg(dir: &Path) -> String {
    format!("file:{}/s-{{shard}}.pcap", dir.display())
}

fn run3(dir: &Path, inputs: &[&Path]) -> common::Run {
    let mut args = vec!["run".to_string(), "-n".into(), "3".into()];
    args.extend(["-o".into(), out_arg(dir)]);
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    shardcap(args)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Packets of all three shards under `dir`.
fn shard_packets(dir: &Path) -> Vec<Rec> {
    read_shards(dir, "s", 3)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.packets)
        .collect()
}

#[test]
fn a_missing_path_fails_before_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such.pcap");
    let good = corpus("zeek/ssh-session.pcap");
    let r = run3(tmp.path(), &[&good, &missing]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no-such.pcap"), "{}", r.stderr);
    assert!(entries(tmp.path()).is_empty(), "nothing may be written");
}

#[test]
fn bad_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let good = corpus("zeek/ssh-session.pcap").display().to_string();
    let out = out_arg(tmp.path());
    let cases: &[&[&str]] = &[
        &["run", "--bogus", "-o", &out, &good],
        &["run", "-n", "0", "-o", &out, &good],
        &["run", "--hash", "7-tuple", "-o", &out, &good],
        &["run", "--order", "sideways", "-o", &out, &good],
        &["run", "-o", "carrier-pigeon:x", &good],
        &[
            "run",
            "-n",
            "3",
            "-o",
            "file:/tmp/no-shard-in-pattern.pcap",
            &good,
        ],
        &["run", "-o", &out],
        &["scan"],
    ];
    for args in cases {
        let r = shardcap(*args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.trim().is_empty(), "{args:?}: no message");
    }
    assert!(entries(tmp.path()).is_empty(), "nothing may be written");
}

#[test]
fn a_file_that_is_not_a_capture_is_named_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let notes = tmp.path().join("notes.pcap");
    fs::write(&notes, "these are not packets\n").unwrap();
    let good = corpus("zeek/ssh-session.pcap");
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let r = run3(&out, &[&notes, &good]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("notes.pcap") && l.contains("not a pcap")),
        "{}",
        r.stderr
    );
    let want = read_capture(&good).recs();
    let want = want.iter().map(Rec::at_micros).collect();
    same_packets(want, shard_packets(&out)).unwrap();

    // Found by a directory walk instead, it is ignored quietly.
    let walked = tmp.path().join("walked");
    fs::create_dir(&walked).unwrap();
    let out2 = tmp.path().join("out2");
    fs::create_dir(&out2).unwrap();
    fs::copy(&notes, walked.join("notes.pcap")).unwrap();
    fs::copy(&good, walked.join("good.pcap")).unwrap();
    let r = run3(&out2, &[&walked]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        shard_packets(&out2).len(),
        read_capture(&good).packets.len()
    );
}

/// Start offsets of the records of a little-endian pcap (after the file header).
fn pcap_record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        offsets.push(at);
        at += 16 + u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    offsets
}

/// Start offsets of the enhanced packet blocks of a little-endian pcapng.
fn pcapng_packet_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let ty = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        if ty == 6 {
            offsets.push(at);
        }
        at += u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    offsets
}

/// Cuts a copy of `rel` in the middle of its `k`-th packet record: the packets before it come
/// out, the run ends with exit 3, and the message names the file and the record's offset.
fn check_truncated(rel: &str, offsets: fn(&[u8]) -> Vec<usize>) {
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus(rel);
    let bytes = fs::read(&src).unwrap();
    let starts = offsets(&bytes);
    let k = starts.len() / 2;
    let cut = tmp.path().join("cut-capture");
    fs::write(&cut, &bytes[..starts[k] + 20]).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let r = run3(&out, &[&cut]);
    assert_eq!(r.code, 3, "{rel}: {}", r.stderr);
    let needle = format!("byte {}:", starts[k]);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("cut-capture") && l.contains(&needle)),
        "{rel}: expected file and {needle} in: {}",
        r.stderr
    );
    let input = read_capture(&src);
    let want: Vec<Rec> = input.recs()[..k]
        .iter()
        .map(|r| {
            if input.sub_micro {
                r.clone()
            } else {
                r.at_micros()
            }
        })
        .collect();
    same_packets(want, shard_packets(&out)).unwrap_or_else(|e| panic!("{rel}: {e}"));
}

#[test]
fn a_truncated_pcap_keeps_its_intact_packets() {
    check_truncated("zeek/http-browse-bro-org.pcap", pcap_record_offsets);
}

#[test]
fn a_truncated_pcapng_keeps_its_intact_packets() {
    check_truncated(
        "zeek/pcapng-vlan-pcp-dei-comments.pcapng",
        pcapng_packet_offsets,
    );
    check_truncated("ndpi/out-of-order-ts-tftp.pcap", pcapng_packet_offsets);
}

/// A pcap with three good records, then a record header claiming `caplen` bytes.
fn pcap_with_absurd_caplen(caplen: u32) -> (Vec<u8>, Vec<Rec>, usize) {
    let good: Vec<Rec> = (0..3u64)
        .map(|i| common::rec(1_700_000_000_000_000_000 + i * 1000, vec![i as u8; 60]))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.pcap");
    common::write_pcap(&path, 1, false, &good);
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len();
    bytes.extend(1_700_000_001u32.to_le_bytes());
    bytes.extend(0u32.to_le_bytes());
    bytes.extend(caplen.to_le_bytes());
    bytes.extend(caplen.to_le_bytes());
    bytes.extend([0xab; 256]);
    (bytes, good, at)
}

/// A pcapng with three good packets, then an enhanced packet block claiming `len` bytes.
fn pcapng_with_absurd_block(len: u32) -> (Vec<u8>, Vec<Rec>, usize) {
    let block = |ty: u32, body: &[u8]| {
        let total = 12 + body.len() as u32;
        let mut b = ty.to_le_bytes().to_vec();
        b.extend(total.to_le_bytes());
        b.extend(body);
        b.extend(total.to_le_bytes());
        b
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend([0xff; 8]);
    let mut idb = 1u32.to_le_bytes().to_vec();
    idb.extend(0u32.to_le_bytes());
    let mut bytes = block(0x0a0d_0d0a, &shb);
    bytes.extend(block(1, &idb));
    let mut good = Vec::new();
    for i in 0..3u32 {
        let ts_us = 1_700_000_000_000_000u64 + u64::from(i);
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend(((ts_us >> 32) as u32).to_le_bytes());
        epb.extend((ts_us as u32).to_le_bytes());
        epb.extend(60u32.to_le_bytes());
        epb.extend(60u32.to_le_bytes());
        epb.extend([i as u8; 60]);
        bytes.extend(block(6, &epb));
        good.push(common::rec(ts_us * 1000, vec![i as u8; 60]));
    }
    let at = bytes.len();
    bytes.extend(6u32.to_le_bytes());
    bytes.extend(len.to_le_bytes());
    bytes.extend([0xab; 256]);
    (bytes, good, at)
}

#[test]
fn an_absurd_record_length_is_an_error_for_that_record_not_an_allocation() {
    let cases = [
        ("caplen-4g.pcap", pcap_with_absurd_caplen(0xffff_fff0)),
        ("caplen-16m.pcap", pcap_with_absurd_caplen(16 << 20)),
        ("block-4g.pcapng", pcapng_with_absurd_block(0xffff_fff0)),
        ("block-16m.pcapng", pcapng_with_absurd_block(16 << 20)),
    ];
    for (name, (bytes, good, at)) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(name);
        fs::write(&path, bytes).unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        let r = run3(&out, &[&path]);
        assert_eq!(r.code, 3, "{name}: {}", r.stderr);
        let needle = format!("byte {at}:");
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains(name) && l.contains(&needle)),
            "{name}: expected the file and {needle} in: {}",
            r.stderr
        );
        same_packets(good, shard_packets(&out)).unwrap_or_else(|e| panic!("{name}: {e}"));

        let scan = shardcap(["scan".as_ref(), path.as_os_str()]);
        assert_eq!(scan.code, 3);
        let rep: serde_json::Value = serde_json::from_str(scan.stdout.trim()).unwrap();
        assert_eq!(rep["packets"], 3, "{name}");
        assert!(
            rep["problems"][0].as_str().unwrap().starts_with(&needle),
            "{name}: {}",
            rep["problems"]
        );
    }
}

#[test]
fn a_file_output_never_replaces_a_device_or_pipe() {
    // file: outputs are renamed over their target when complete; a target that is not a regular
    // file (here a FIFO, standing in for /dev/null) must be refused before anything is written.
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("pipe");
    nix::unistd::mkfifo(&target, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let r = shardcap([
        "run".to_string(),
        "-o".into(),
        format!("file:{}", target.display()),
        corpus("arkime/big-endian-icmp.pcap").display().to_string(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::symlink_metadata(&target).unwrap().file_type().is_fifo(),
        "the FIFO is still a FIFO"
    );
    assert_eq!(entries(tmp.path()), [target], "nothing else was written");
}
