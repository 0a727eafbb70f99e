//! Hostile input: captures built to make the reader allocate without bound, and names planted to
//! redirect a write. Runs are limited to 2 GiB of address space; they must end with exit 3 naming
//! the byte offset (not an abort) and stay within a bounded resident size, and a planted symlink's
//! target must stay untouched.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{read_capture, shardcap, shardcap_peak};

/// Interface descriptions in the flood (about 0.8 GB uncompressed).
const FLOOD_IDBS: usize = 40_000_000;
/// Most interface descriptions a section may hold (the documented limit).
const MAX_INTERFACES: u64 = 65_536;
/// Resident size a run over a hostile capture stays under.
const RSS_BOUND: u64 = 512 << 20;

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// A pcapng section header block (28 bytes).
fn shb() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(le32(0x0A0D_0D0A));
    b.extend(le32(28));
    b.extend(le32(0x1A2B_3C4D));
    b.extend(1u16.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    b.extend([0xff; 8]);
    b.extend(le32(28));
    b
}

/// An Ethernet interface description block without options (20 bytes).
fn idb() -> [u8; 20] {
    let mut b = [0u8; 20];
    b[0..4].copy_from_slice(&le32(1));
    b[4..8].copy_from_slice(&le32(20));
    b[8..10].copy_from_slice(&1u16.to_le_bytes());
    b[12..16].copy_from_slice(&le32(0));
    b[16..20].copy_from_slice(&le32(20));
    b
}

/// An enhanced packet block on interface 0 with a 60-byte frame.
fn epb() -> Vec<u8> {
    let data = [0u8; 60];
    let len = 28 + data.len() as u32 + 4;
    let mut b = Vec::new();
    b.extend(le32(6));
    b.extend(le32(len));
    b.extend(le32(0));
    b.extend(le32(0));
    b.extend(le32(1_000_000));
    b.extend(le32(data.len() as u32));
    b.extend(le32(data.len() as u32));
    b.extend(data);
    b.extend(le32(len));
    b
}

/// One section header, [`FLOOD_IDBS`] interface descriptions and one packet, zstd-compressed.
fn write_idb_flood(path: &Path) {
    let mut z = zstd::stream::write::Encoder::new(fs::File::create(path).unwrap(), 3).unwrap();
    z.write_all(&shb()).unwrap();
    let chunk: Vec<u8> = std::iter::repeat_n(idb(), 1 << 16).flatten().collect();
    for _ in 0..FLOOD_IDBS >> 16 {
        z.write_all(&chunk).unwrap();
    }
    z.write_all(&epb()).unwrap();
    z.finish().unwrap();
}

#[test]
fn an_interface_flood_is_damage_at_its_offset_not_an_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let flood = tmp.path().join("flood.pcapng.zst");
    write_idb_flood(&flood);
    assert!(fs::metadata(&flood).unwrap().len() < 4 << 20);
    // The first description beyond the limit, after the 28-byte section header.
    let at = format!("byte {}", 28 + MAX_INTERFACES * 20);

    let out = format!("file:{}/s-{{shard}}.pcap", tmp.path().display());
    let (run, peak) = shardcap_peak(["run", "-n", "2", "-o", &out, flood.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains(&at), "{at} not named:\n{}", run.stderr);
    assert!(
        run.stderr.contains("interface descriptions"),
        "{}",
        run.stderr
    );
    eprintln!("run: peak RSS {} MiB", peak >> 20);
    assert!(peak < RSS_BOUND, "run: peak RSS {peak} bytes");

    let (scan, peak) = shardcap_peak(["scan", flood.to_str().unwrap()]);
    assert_eq!(scan.code, 3, "{}\n{}", scan.stdout, scan.stderr);
    let said = format!("{}{}", scan.stdout, scan.stderr);
    assert!(said.contains(&at), "{at} not named:\n{said}");
    assert!(peak < RSS_BOUND, "scan: peak RSS {peak} bytes");
}

/// Bytes of the one record each large file holds (the largest a snapshot length may announce).
const LARGE_RECORD: usize = 64 << 20;

/// A gzip pcap whose header announces `LARGE_RECORD`-byte records and that holds one such record
/// at `ts_s`, an Ethernet frame from a source address ending in `tag`, padded with zeros.
fn write_large_record(path: &Path, ts_s: u32, tag: u8) {
    let mut gz =
        flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast());
    let mut head = Vec::new();
    head.extend(le32(0xa1b2_c3d4));
    head.extend(2u16.to_le_bytes());
    head.extend(4u16.to_le_bytes());
    head.extend([0; 8]);
    head.extend(le32(LARGE_RECORD as u32));
    head.extend(le32(1));
    head.extend(le32(ts_s));
    head.extend(le32(0));
    head.extend(le32(LARGE_RECORD as u32));
    head.extend(le32(LARGE_RECORD as u32));
    gz.write_all(&head).unwrap();
    let mut frame = vec![0u8; 1 << 20];
    frame[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, tag, ts_s as u8]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    gz.write_all(&frame).unwrap();
    frame[..14].fill(0);
    for _ in 1..LARGE_RECORD >> 20 {
        gz.write_all(&frame).unwrap();
    }
    gz.finish().unwrap();
}

#[test]
fn twelve_files_of_64_mib_records_stream_within_the_buffer_memory_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs: Vec<String> = (0..12)
        .map(|i| {
            let p = tmp.path().join(format!("big-{i}.pcap.gz"));
            // Overlapping times: all within the same two seconds; each file its own packet (the
            // same packets under two names would be read once, as duplicate files).
            write_large_record(&p, 1_700_000_000 + (i % 2), i as u8);
            p.display().to_string()
        })
        .collect();
    let out = tmp.path().join("all.pcap");
    let mut args = vec![
        "run".to_string(),
        "-n".into(),
        "1".into(),
        "-o".into(),
        format!("file:{}", out.display()),
    ];
    args.extend(inputs);
    let (run, peak) = shardcap_peak(&args);
    eprintln!("peak RSS {} MiB", peak >> 20);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        peak < RSS_BOUND + (128 << 20),
        "peak RSS {peak} bytes for twelve files of one 64 MiB record"
    );
    let got = read_capture(&out);
    assert_eq!(got.packets.len(), 12, "every record streamed");
    assert!(got.packets.iter().all(|p| p.1.data.len() == LARGE_RECORD));
}

#[test]
fn a_record_beyond_the_buffer_memory_limit_is_damage_at_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.pcap.gz");
    write_large_record(&big, 1_700_000_000, 0);
    let out = format!("file:{}/s-{{shard}}.pcap", tmp.path().display());
    let run = shardcap([
        "run",
        "--buffer-memory",
        "16M",
        "-o",
        &out,
        big.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("byte 24"), "{}", run.stderr);
    assert!(run.stderr.contains("--buffer-memory"), "{}", run.stderr);
}

#[test]
fn a_planted_partial_symlink_is_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let out = tmp.path().join("out.pcap");
    let stats = tmp.path().join("stats.json");
    symlink(&victim, tmp.path().join("out.pcap.partial")).unwrap();
    symlink(&victim, &stats).unwrap();

    let input = common::corpus("zeek/ssh-session.pcap");
    let run = shardcap([
        "run",
        "-o",
        &format!("file:{}", out.display()),
        "--stats-file",
        stats.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fs::read(&victim).unwrap(), b"precious", "target untouched");
    for p in [&out, &stats] {
        let md = fs::symlink_metadata(p).unwrap();
        assert!(
            md.file_type().is_file(),
            "{} is a regular file",
            p.display()
        );
    }
    assert_eq!(
        read_capture(&out).packets.len(),
        read_capture(&input).packets.len()
    );
    assert!(!tmp.path().join("out.pcap.partial").exists());
}
