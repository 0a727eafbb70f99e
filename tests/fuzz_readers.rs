//! Fuzzing on the stable toolchain: a mutational fuzzer per reader (pcap, pcapng, gzip and zstd
//! streams) and for the flow decoder, seeded with the corpus captures, each running for a bounded
//! time (`SHARDCAP_FUZZ_SECS` per target, 15 by default) through the public API. The test process
//! runs under a 1 GiB address-space limit, so an allocation driven by a hostile length aborts the
//! run instead of passing. A panic saves its input to `target/fuzz-failure-TARGET.bin`.
//!
//! Each target prints its executions: `cargo test --release --test fuzz_readers -- --nocapture`.

mod common;

use std::fs;
use std::io::{Cursor, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use shardcap_capture::capture::Capture;
use shardcap_capture::stream;
use shardcap_capture::Packet;
use shardcap_flow::{decode::decode, FlowConfig, HashMode, Sharder, TunnelMode};

/// Address space of the whole fuzzing process.
const ADDRESS_SPACE_LIMIT: u64 = 1 << 30;
/// Bytes of each corpus file used as a seed (its head).
const SEED_BYTES: usize = 32 << 10;
/// Packets read from one input at most.
const MAX_PACKETS: usize = 4096;
/// Read-buffer size: small, so records straddle refills.
const CAPACITY: usize = 4 << 10;

/// Numbers that make length fields interesting.
const INTERESTING: [u32; 12] = [
    0,
    1,
    4,
    0x7f,
    0xffff,
    0x1_0000,
    0x4_0000,
    0x400_0000,
    0x400_0001,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

static LIMIT: Once = Once::new();

/// Bounds the address space of this process (once, before any target runs).
fn limit_memory() {
    LIMIT.call_once(|| {
        let lim = libc::rlimit {
            rlim_cur: ADDRESS_SPACE_LIMIT,
            rlim_max: ADDRESS_SPACE_LIMIT,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
        assert_eq!(r, 0, "setrlimit: {}", std::io::Error::last_os_error());
    });
}

fn budget() -> Duration {
    let secs = std::env::var("SHARDCAP_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    Duration::from_secs(secs)
}

/// xorshift64*: fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to eight stacked mutations of `seed`: bit flips, random bytes, interesting 32-bit values
/// (either byte order), duplicated and removed ranges (repeated blocks), truncation.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        if d.is_empty() {
            d.push(0);
        }
        let at = rng.below(d.len());
        match rng.below(6) {
            0 => d[at] ^= 1 << rng.below(8),
            1 => d[at] = rng.next() as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let b = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let at = at & !3;
                let n = (d.len() - at).min(4);
                d[at..at + n].copy_from_slice(&b[..n]);
            }
            3 => {
                let len = rng.below((d.len() - at).min(256)) + 1;
                let copy = d[at..at + len].to_vec();
                for _ in 0..1 + rng.below(4) {
                    d.splice(at..at, copy.iter().copied());
                }
            }
            4 => {
                let len = rng.below((d.len() - at).min(256)) + 1;
                d.drain(at..at + len);
            }
            _ => d.truncate(at),
        }
    }
    d
}

/// Heads of the corpus files whose first bytes satisfy `pick`.
fn seeds(pick: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut dirs = vec![common::corpus_dir()];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let mut head = Vec::new();
            let Ok(f) = fs::File::open(&p) else { continue };
            let _ = f.take(SEED_BYTES as u64).read_to_end(&mut head);
            if head.len() >= 4 && pick(&head) {
                out.push(head);
            }
        }
    }
    assert!(!out.is_empty(), "no seed captures found in the corpus");
    out
}

fn is_pcap(h: &[u8]) -> bool {
    matches!(
        h[..4],
        [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x34, 0xcd, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xcd, 0x34]
    )
}

fn is_pcapng(h: &[u8]) -> bool {
    h[..4] == [0x0a, 0x0d, 0x0d, 0x0a]
}

/// Reads every packet of `bytes` through the public reader API, touching each packet's bytes.
fn read_capture(bytes: Vec<u8>) -> u64 {
    let stream = stream::decompress(Box::new(Cursor::new(bytes))).expect("in-memory stream");
    let mut sum = 0u64;
    if let Ok(Some((mut cap, _, _))) = Capture::from_stream(stream, CAPACITY) {
        for _ in 0..MAX_PACKETS {
            match cap.advance() {
                Ok(true) => {
                    let p = cap.packet();
                    assert_eq!(p.ts_ns, cap.ts());
                    sum += p.data.iter().map(|&b| u64::from(b)).sum::<u64>();
                }
                Ok(false) | Err(_) => break,
            }
        }
    }
    sum
}

/// Runs `exec` on mutations of `seeds` until the time budget is spent; returns the executions.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut exec: impl FnMut(&mut Rng, Vec<u8>)) -> u64 {
    limit_memory();
    let (start, budget) = (Instant::now(), budget());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let mut runs = 0u64;
    while start.elapsed() < budget {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        let kept = input.clone();
        if catch_unwind(AssertUnwindSafe(|| exec(&mut rng, input))).is_err() {
            let saved = failure_path(name);
            fs::write(&saved, &kept).unwrap();
            panic!(
                "{name}: a fuzzed input panicked; saved as {}",
                saved.display()
            );
        }
        runs += 1;
    }
    eprintln!(
        "fuzz {name}: {runs} executions in {:.1} s from {} seeds",
        start.elapsed().as_secs_f64(),
        seeds.len()
    );
    assert!(runs > 0);
    runs
}

fn failure_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("fuzz-failure-{name}.bin"))
}

#[test]
fn fuzz_pcap_reader() {
    fuzz("pcap", &seeds(is_pcap), |_, input| {
        read_capture(input);
    });
}

#[test]
fn fuzz_pcapng_reader() {
    fuzz("pcapng", &seeds(is_pcapng), |_, input| {
        read_capture(input);
    });
}

/// Compressed streams: seeds are compressed corpus heads; mutations hit the compressed bytes.
#[test]
fn fuzz_compressed_streams() {
    let plain = seeds(|h| is_pcap(h) || is_pcapng(h));
    let mut compressed = Vec::new();
    for (i, s) in plain.iter().enumerate().step_by(4) {
        let s = &s[..s.len().min(8 << 10)];
        if i % 8 == 0 {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(s).unwrap();
            compressed.push(gz.finish().unwrap());
        } else {
            compressed.push(zstd::encode_all(s, 1).unwrap());
        }
    }
    fuzz("compressed", &compressed, |_, input| {
        read_capture(input);
    });
}

/// The flow decoder and the sharder (fragment tracking included) over mutated corpus packets,
/// under the link types the readers report and random ones.
#[test]
fn fuzz_flow_decoder() {
    let mut packets = Vec::new();
    for s in seeds(|h| is_pcap(h) || is_pcapng(h)) {
        let stream = stream::decompress(Box::new(Cursor::new(s))).unwrap();
        if let Ok(Some((mut cap, _, _))) = Capture::from_stream(stream, CAPACITY) {
            for _ in 0..64 {
                match cap.advance() {
                    Ok(true) => {
                        let p = cap.packet();
                        let mut b = p.linktype.to_le_bytes().to_vec();
                        b.extend(p.data);
                        packets.push(b);
                    }
                    _ => break,
                }
            }
        }
    }
    let mut sharder = Sharder::new(
        FlowConfig {
            hash: HashMode::Five,
            tunnel: TunnelMode::Inner,
        },
        4,
    );
    let mut ts = 0u64;
    fuzz("flow", &packets, |rng, input| {
        if input.len() < 4 {
            return;
        }
        let mut linktype = u32::from_le_bytes(input[..4].try_into().unwrap());
        if rng.below(8) == 0 {
            linktype = rng.next() as u32 % 300;
        }
        let data = &input[4..];
        decode(linktype, data, TunnelMode::Outer);
        decode(linktype, data, TunnelMode::Inner);
        ts += rng.below(1_000_000) as u64;
        let pkt = Packet {
            ts_ns: ts,
            len: data.len() as u32,
            linktype,
            data,
        };
        sharder
            .route(&pkt, |shard, _| {
                assert!(shard < 4);
                Ok(())
            })
            .unwrap();
    });
    sharder.drain(|_, _| Ok(())).unwrap();
}
