//! The Zeek plugin's spool reader (zeek-plugin/src/spool_reader.cc) against spools that shardcap
//! writes: its unit tests, a live spool consumed while shardcap writes it, and a damaged segment.
//! The C++ is built with CMake into the test target directory; the tests are skipped, saying
//! why, only where cmake or g++ is missing (scripts/ci/install-deps installs both). The plugin
//! itself runs in the real Zeek in zeek_e2e.rs and zeek_plugin.rs.

mod common;
mod spool_support;

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::ChildGuard;
use shardcap::sink::spool;
use spool_support::*;

/// The directory holding the built `spool_reader_tests` and `spool_cat`; fails the test when the
/// tools to build them are missing.
fn cpp_build() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD
        .get_or_init(|| {
            for tool in ["cmake", "g++"] {
                assert!(
                    Command::new(tool).arg("--version").output().is_ok(),
                    "{tool} is not installed (scripts/test installs it): the zeek-plugin core \
                     cannot be built"
                );
            }
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("zeek-plugin/tests");
            // One build directory per checkout: CMake refuses a cache made for another source.
            let mut h = DefaultHasher::new();
            src.hash(&mut h);
            let build = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("zeek-plugin-tests-{:016x}", h.finish()));
            for args in [
                vec![
                    "-S".into(),
                    src.display().to_string(),
                    "-B".into(),
                    build.display().to_string(),
                ],
                vec!["--build".into(), build.display().to_string()],
            ] {
                let out = Command::new("cmake").args(&args).output().unwrap();
                assert!(
                    out.status.success(),
                    "cmake {args:?} failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            build
        })
        .as_path()
}

#[test]
fn reader_core_unit_tests_pass() {
    let build = cpp_build();
    let out = Command::new(build.join("spool_reader_tests"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "spool_reader_tests failed:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

#[test]
fn a_live_spool_is_read_as_the_file_stream() {
    let build = cpp_build();
    const SHARDS: usize = 3;
    let tmp = tempfile::tempdir().unwrap();
    let inputs = inputs();
    let files = file_outputs(tmp.path(), &inputs, SHARDS);
    let root = tmp.path().join("spool");
    fs::create_dir(&root).unwrap();

    // The readers start first and wait for their shard directories to appear.
    let readers: Vec<ChildGuard> = (0..SHARDS)
        .map(|k| {
            ChildGuard::start(
                Command::new(build.join("spool_cat"))
                    .arg(spool::shard_dir(&root, k))
                    .arg(tmp.path().join(format!("cat-{k}.pcap")))
                    .stderr(Stdio::piped()),
            )
        })
        .collect();
    check(spool_run(&inputs, SHARDS, &root, "32K", 3));
    for (k, reader) in readers.into_iter().enumerate() {
        let out = reader.output();
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "spool_cat shard {k}: {msg}");
        let cat = fs::read(tmp.path().join(format!("cat-{k}.pcap"))).unwrap();
        let (header, records) = &files[k];
        assert_eq!(&cat[..FILE_HEADER], &header[..], "shard {k}: header");
        assert!(
            cat[FILE_HEADER..] == records[..],
            "shard {k}: the reader's stream ({} bytes) differs from the file output ({} bytes)",
            cat.len(),
            records.len() + FILE_HEADER
        );
        let segments_read = spool::end_marker(&root, k);
        let last: u64 = fs::read_to_string(segments_read)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            msg.contains(&format!("from {last} segments")),
            "shard {k}: {msg}"
        );
        assert!(
            segments(&spool::shard_dir(&root, k)).is_empty(),
            "consumed segments removed"
        );
    }
    assert!(segments(&root.join(spool::TMP_DIR)).is_empty());
}

#[test]
fn a_damaged_segment_is_reported_by_name_and_offset() {
    let build = cpp_build();
    let tmp = tempfile::tempdir().unwrap();
    let inputs = vec![corpus("zeek/ssh-session.pcap")];
    let root = tmp.path().join("spool");
    check(spool_run(&inputs, 1, &root, "16K", 100_000));
    let dir = spool::shard_dir(&root, 0);
    let seg = |n| dir.join(spool::segment_name(n));
    let mut kept = fs::read(seg(1)).unwrap();
    kept.extend_from_slice(&fs::read(seg(2)).unwrap()[FILE_HEADER..]);
    let third = fs::read(seg(3)).unwrap();
    fs::write(seg(3), &third[..third.len() - 5]).unwrap();

    let out_path = tmp.path().join("cat.pcap");
    let out = Command::new(build.join("spool_cat"))
        .arg(&dir)
        .arg(&out_path)
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!("{}: byte ", seg(3).display())),
        "the error names the segment and offset: {msg}"
    );
    assert!(
        !out_path.exists(),
        "no complete output for a damaged stream"
    );
    let partial = fs::read(tmp.path().join("cat.pcap.partial")).unwrap();
    let whole = count_records(&third[FILE_HEADER..], "segment 3") - 1;
    let mut expected = kept;
    let mut at = FILE_HEADER;
    for _ in 0..whole {
        let caplen = u32::from_le_bytes(third[at + 8..at + 12].try_into().unwrap()) as usize;
        expected.extend_from_slice(&third[at..at + 16 + caplen]);
        at += 16 + caplen;
    }
    assert!(
        partial == expected,
        "the packets before the damage were handed over"
    );
    assert!(!seg(1).exists() && !seg(2).exists(), "consumed");
    assert!(seg(3).exists(), "the damaged segment stays");
}
