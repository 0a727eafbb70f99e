//! Conservation over the whole corpus: every capture run through `shardcap run -n 3` comes out
//! packet for packet (data, caplen, len, timestamp), checked against an independent reader.

mod common;

use std::fs;
use std::path::Path;

use common::{read_capture, read_shards, same_packets, shardcap, stats, Capture, Rec, Row};

const SHARDS: usize = 3;

/// How one corpus file fared.
enum Outcome {
    /// Every packet out exactly once.
    Conserved,
    /// Several link types declared before the first packet: refused, then conserved with
    /// `--link-mismatch drop` (this many packets dropped).
    RefusedThenDropped(u64),
    /// Damaged or irregular: the intact packets out, exit 3.
    Damaged,
}

/// Runs `shardcap run -n 3` on `file` into a fresh directory; returns the run and the directory.
fn run(file: &Path, extra: &[&str]) -> (common::Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("file:{}/s-{{shard}}.pcap", dir.path().display());
    let stats_file = dir.path().join("stats.json");
    // Conservation byte for byte: no link-layer normalisation.
    let mut args = vec![
        "run".to_string(),
        "--link-type".into(),
        "keep".into(),
        "-n".into(),
        SHARDS.to_string(),
        "-o".into(),
        pattern,
        "--stats-file".into(),
        stats_file.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(file.display().to_string());
    (shardcap(&args), dir)
}

/// Checks one corpus file; `Err` says what is wrong.
fn check(row: &Row) -> Result<Outcome, String> {
    let file = row.file();
    let input: Capture = read_capture(&file);
    if input.packets.len() == row.packets && input.sub_micro != row.sub_micro() {
        return Err(format!(
            "the independent reader's precision disagrees with the manifest's {}",
            row.format
        ));
    }
    let mut outcome = Outcome::Conserved;
    let mut extra: &[&str] = &[];
    let declared = &input.linktypes_before_first;
    if declared.len() > 1 {
        let (r, dir) = run(&file, &[]);
        if r.code != 2 || !r.stderr.contains(&row.path) || !r.stderr.contains("link type") {
            return Err(format!(
                "link types {declared:?}: expected exit 2 naming the file, got {}: {}",
                r.code, r.stderr
            ));
        }
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        if !left.is_empty() {
            return Err(format!("refused run left {} files behind", left.len()));
        }
        extra = &["--link-mismatch", "drop"];
    }
    let stream_lt = input.linktypes.first().copied().unwrap_or(1);
    let (kept, dropped): (Vec<_>, Vec<_>) =
        input.packets.iter().partition(|(lt, _)| *lt == stream_lt);
    let dropped = dropped.len() as u64;
    if !extra.is_empty() {
        outcome = Outcome::RefusedThenDropped(dropped);
    }

    let (r, dir) = run(&file, extra);
    let late_link_type = extra.is_empty() && dropped > 0;
    let expect_code = if row.damaged || late_link_type { 3 } else { 0 };
    if r.code != expect_code {
        return Err(format!(
            "exit {} (expected {expect_code}): {}",
            r.code, r.stderr
        ));
    }
    if expect_code == 3 {
        let named = r
            .stderr
            .lines()
            .any(|l| l.contains(&row.path) && l.contains("byte "));
        if !named {
            return Err(format!(
                "stderr does not name the file and a byte offset: {}",
                r.stderr
            ));
        }
    }
    if row.damaged {
        outcome = Outcome::Damaged;
    }

    let streams = read_shards(dir.path(), "s", SHARDS)?;
    let mut got = Vec::new();
    for s in &streams {
        if s.linktype != stream_lt {
            return Err(format!(
                "output link type {} != input {stream_lt}",
                s.linktype
            ));
        }
        if s.nanos != row.sub_micro() {
            return Err(format!(
                "output nanosecond magic {} but the manifest's format is {}",
                s.nanos, row.format
            ));
        }
        got.extend(s.packets.iter().cloned());
    }
    let st = stats(&dir.path().join("stats.json"));
    if st["dropped_linktype"] != dropped {
        return Err(format!(
            "stats dropped_linktype {} != {dropped}",
            st["dropped_linktype"]
        ));
    }
    if st["packets"] != got.len() as u64 {
        return Err(format!(
            "stats packets {} != {} written",
            st["packets"],
            got.len()
        ));
    }

    let expected: Vec<Rec> = kept
        .iter()
        .map(|(_, r)| {
            if row.sub_micro() {
                r.clone()
            } else {
                r.at_micros()
            }
        })
        .collect();
    let want = row.packets - dropped as usize;
    if got.len() != want {
        return Err(format!(
            "{} packets out, manifest says {} ({} dropped)",
            got.len(),
            row.packets,
            dropped
        ));
    }
    if input.packets.len() == row.packets {
        same_packets(expected, got)?;
    } else {
        // The independent reader gave up before the manifest's count (it is stricter): every
        // packet it read must be out, and the count above holds.
        let mut rest = got.clone();
        for e in &expected {
            let Some(i) = rest.iter().position(|g| g == e) else {
                return Err(format!("packet at ts {} missing", e.ts_ns));
            };
            rest.swap_remove(i);
        }
    }
    Ok(outcome)
}

#[test]
fn every_corpus_capture_is_conserved_across_three_shards() {
    let rows = common::manifest();
    assert!(rows.len() >= 100, "manifest lists {} captures", rows.len());
    let (mut conserved, mut refused, mut dropped, mut damaged) = (0, 0, 0, 0);
    let mut partial_reference = Vec::new();
    let mut failures = Vec::new();
    for row in &rows {
        let reference = read_capture(&row.file());
        if reference.packets.len() != row.packets {
            partial_reference.push(format!(
                "{} ({} of {}: {})",
                row.path,
                reference.packets.len(),
                row.packets,
                reference.error.as_deref().unwrap_or("?")
            ));
        }
        match check(row) {
            Ok(Outcome::Conserved) => conserved += 1,
            Ok(Outcome::RefusedThenDropped(n)) => {
                refused += 1;
                dropped += n;
            }
            Ok(Outcome::Damaged) => damaged += 1,
            Err(e) => failures.push(format!("{}: {e}", row.path)),
        }
    }
    eprintln!(
        "{conserved} conserved exactly, {refused} with several link types refused then conserved \
         with --link-mismatch drop ({dropped} packets dropped), {damaged} damaged with their intact packets conserved; the \
         independent reader stopped early on {}: {}",
        partial_reference.len(),
        partial_reference.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} of {} captures failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(
        partial_reference.len() <= 2,
        "the independent reader should read nearly every capture whole"
    );
}

#[test]
fn the_corpus_walk_finds_exactly_the_manifest_captures() {
    // A directory input is recognised by content: scanning the corpus directory reports every
    // manifest capture and nothing else (licences, rules and YAML files are skipped quietly).
    let r = shardcap(["scan".as_ref(), common::corpus_dir().as_os_str()]);
    assert_eq!(r.code, 3, "the corpus holds damaged files: {}", r.stderr);
    let mut seen: Vec<String> = r
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let p = v["path"].as_str().unwrap().to_string();
            let rel = Path::new(&p)
                .strip_prefix(common::corpus_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            rel
        })
        .collect();
    seen.sort();
    let mut listed: Vec<String> = common::manifest().into_iter().map(|r| r.path).collect();
    listed.sort();
    assert_eq!(seen, listed);
}
