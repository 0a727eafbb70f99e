//! Damaged input never crashes the readers: every corpus capture, with bytes flipped and cut at
//! pseudo-random places, either reads packets or stops with an error at a byte offset inside the
//! file — no panic, no packet beyond the data, no runaway buffer.

mod common;

use std::fs;

use shardcap_capture::capture::Capture;
use shardcap_gen::rng::Rng;

/// Reads a capture to its end; returns packets read and whether it ended in an error.
fn read_all(path: &std::path::Path, len: u64) -> (u64, bool) {
    let Ok(Some((mut cap, _, _))) = Capture::open(path) else {
        return (0, true);
    };
    let mut packets = 0;
    loop {
        match cap.advance() {
            Ok(true) => {
                let p = cap.packet();
                assert!(
                    p.data.len() as u64 <= len,
                    "{}: a packet longer than the file",
                    path.display()
                );
                packets += 1;
            }
            Ok(false) => return (packets, false),
            Err(e) => {
                assert!(
                    e.offset <= len,
                    "{}: error offset {} beyond the file ({len} bytes)",
                    path.display(),
                    e.offset
                );
                return (packets, true);
            }
        }
    }
}

#[test]
fn mutated_corpus_files_never_crash_the_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5eed);
    let mut cases = 0;
    let mut ended_in_error = 0;
    for row in common::manifest() {
        let original = fs::read(row.file()).unwrap();
        if original.len() > 1 << 20 {
            continue;
        }
        for round in 0..12 {
            let mut bytes = original.clone();
            match round % 3 {
                // Flip a few bytes anywhere (headers included).
                0 => {
                    for _ in 0..1 + rng.below(8) {
                        let at = rng.below(bytes.len() as u64) as usize;
                        bytes[at] ^= 1 << rng.below(8);
                    }
                }
                // Overwrite a 4-byte field with an extreme value (lengths, link types).
                1 => {
                    let at = rng.below(bytes.len().saturating_sub(4) as u64) as usize;
                    let v = [0u32, u32::MAX, 0x7fff_fff0, 0xffff_0000][rng.below(4) as usize];
                    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                // Cut the file anywhere.
                _ => bytes.truncate(rng.below(bytes.len() as u64) as usize),
            }
            let path = tmp.path().join("mutated");
            fs::write(&path, &bytes).unwrap();
            let (_, err) = read_all(&path, bytes.len() as u64);
            cases += 1;
            ended_in_error += err as usize;
        }
    }
    assert!(cases > 1000, "only {cases} mutated files were read");
    assert!(
        ended_in_error > cases / 4,
        "damage must be reported: {ended_in_error} of {cases}"
    );
}
