//! Continuous mode (`run --watch`): writers rotate captures into a spool while shardcap watches.
//! Every packet must arrive exactly once, in time order per shard; files are read only once
//! complete, and their bytes once for streaming, never whole on the dispatch thread (duplicate
//! checks, `--since`); renamed-in files are taken; the retention limit bounds what the spool keeps.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, TsResolution};

mod common;

use common::{wait_until, ChildGuard, Endpoint, Rec};

/// An Ethernet/IPv4/UDP frame whose payload carries a unique packet id.
fn frame(id: u64, flow: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 8];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&36u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    // Alternate directions so both directions of each flow are exercised.
    let (a, b) = ([10, 0, 0, 1], [10, 0, (flow >> 8) as u8, flow as u8]);
    let (src, dst) = if id % 2 == 0 { (a, b) } else { (b, a) };
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let udp = &mut f[34..42];
    let (sp, dp) = if id % 2 == 0 {
        (40000 + flow, 53)
    } else {
        (53, 40000 + flow)
    };
    udp[0..2].copy_from_slice(&sp.to_be_bytes());
    udp[2..4].copy_from_slice(&dp.to_be_bytes());
    udp[4..6].copy_from_slice(&16u16.to_be_bytes());
    f[42..50].copy_from_slice(&id.to_be_bytes());
    f
}

/// A sensor writing `files` rotated captures of `per_file` packets, one file a period, packets
/// spread over the period. Packet ids are `base + n`; timestamps start at `t0_ns` and advance
/// `step_ns` a packet. With `stage`, files are written there and renamed into `spool`; otherwise
/// they are written in place (and closed at rotation, as tcpdump -C/-G does).
struct Sensor {
    name: &'static str,
    base: u64,
    t0_ns: u64,
    step_ns: u64,
    /// Index of the first file written (a sensor that goes on after a restart).
    from: u64,
    files: u64,
    per_file: u64,
    stage: Option<PathBuf>,
}

impl Sensor {
    fn run(&self, spool: &Path, period: Duration) -> Vec<u64> {
        let mut ids = Vec::new();
        for k in self.from..self.from + self.files {
            let name = format!("{}.pcap{k}", self.name);
            let path = self
                .stage
                .as_ref()
                .unwrap_or(&spool.to_path_buf())
                .join(&name);
            let mut w = PcapWriter::new(BufWriter::new(File::create(&path).unwrap())).unwrap();
            for i in 0..self.per_file {
                let n = k * self.per_file + i;
                let id = self.base + n;
                let ts = Duration::from_nanos(self.t0_ns + n * self.step_ns);
                let data = frame(id, (n % 37) as u16);
                w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data))
                    .unwrap();
                ids.push(id);
                if i % 50 == 49 {
                    thread::sleep(period / (self.per_file as u32 / 50));
                }
            }
            drop(w);
            if self.stage.is_some() {
                fs::rename(&path, spool.join(&name)).unwrap();
            }
        }
        ids
    }
}

fn stats_packets(path: &Path) -> u64 {
    stat(path, "packets")
}

/// A counter of the stats file (0 before it exists): a top-level key, or a JSON pointer
/// (`/select/files_outside_range`).
fn stat(path: &Path, key: &str) -> u64 {
    let pointer = match key.starts_with('/') {
        true => key.to_string(),
        false => format!("/{key}"),
    };
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.pointer(&pointer).and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// Reads shard outputs: ids in output order per shard, and (ts, id) to check order.
fn read_outputs(dir: &Path, shards: usize) -> Vec<Vec<(Duration, u64)>> {
    (0..shards)
        .map(|k| {
            let f = File::open(dir.join(format!("out-{k}.pcap"))).expect("complete output");
            let mut r = PcapReader::new(f).unwrap();
            let mut v = Vec::new();
            while let Some(p) = r.next_packet() {
                let p = p.unwrap();
                v.push((
                    p.timestamp,
                    u64::from_be_bytes(p.data[42..50].try_into().unwrap()),
                ));
            }
            v
        })
        .collect()
}

/// Starts `shardcap run --watch SPOOL` with 3 file outputs and a stats file in `dir`.
/// `DIR/spool` (watched) and `DIR/stage` (where files are written before they are moved in), both
/// created, and the stats file `DIR/stats.json`.
fn spool_and_stage(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (spool, stage) = (dir.join("spool"), dir.join("stage"));
    fs::create_dir_all(&spool).unwrap();
    fs::create_dir_all(&stage).unwrap();
    (spool, stage, dir.join("stats.json"))
}

fn watch(dir: &Path, spool: &Path, extra: &[&str]) -> ChildGuard {
    let running = ChildGuard::start(
        common::command(["run", "--watch"])
            .arg(spool)
            .args([
                "--settle",
                "0",
                "--stats-interval",
                "100ms",
                "-n",
                "3",
                "-o",
            ])
            .arg(format!("file:{}/out-{{shard}}.pcap", dir.display()))
            .arg("--stats-file")
            .arg(dir.join("stats.json"))
            .args(extra),
    );
    // Ready once it reports: the watch is in place, so writers may start.
    wait_until("shardcap to start", || dir.join("stats.json").exists());
    running
}

/// Stops a dispatcher with SIGTERM; it must exit 0.
fn stop(running: ChildGuard) {
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let status = running.wait();
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}

/// Checks that every written packet is in the outputs exactly once, each shard in time order.
fn assert_once_in_order(dir: &Path, written: &[u64]) {
    let mut seen = HashSet::new();
    for (k, shard) in read_outputs(dir, 3).iter().enumerate() {
        for pair in shard.windows(2) {
            assert!(
                pair[0].0 <= pair[1].0,
                "shard {k}: {:?} then {:?} is out of order",
                pair[0],
                pair[1]
            );
        }
        for &(_, id) in shard {
            assert!(seen.insert(id), "packet {id} arrived twice");
        }
    }
    let want: HashSet<u64> = written.iter().copied().collect();
    let lost: Vec<_> = want.difference(&seen).take(5).collect();
    assert!(lost.is_empty(), "packets lost, e.g. {lost:?}");
    assert_eq!(seen.len(), written.len());
}

#[test]
fn watched_spool_streams_every_packet_once_in_time_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, stage, stats) = spool_and_stage(tmp.path());
    let running = watch(
        tmp.path(),
        &spool,
        &[
            "--horizon",
            "3s",
            "--retention",
            "keep",
            "--retain-size",
            "20K",
        ],
    );

    // Two sensors over overlapping time: A writes in place and rotates, B stages and renames in.
    // Their timestamps interleave (A on even microseconds, B on odd ones).
    let a = Sensor {
        name: "sensorA",
        base: 0,
        t0_ns: 1_700_000_000_000_000_000,
        step_ns: 2_000,
        from: 0,
        files: 4,
        per_file: 300,
        stage: None,
    };
    let b = Sensor {
        name: "sensorB",
        base: 1_000_000,
        t0_ns: 1_700_000_000_000_001_000,
        step_ns: 2_000,
        from: 0,
        files: 4,
        per_file: 300,
        stage: Some(stage.clone()),
    };
    let spool_a = spool.clone();
    let ta = thread::spawn(move || a.run(&spool_a, Duration::from_millis(700)));
    let spool_b = spool.clone();
    let tb = thread::spawn(move || b.run(&spool_b, Duration::from_millis(900)));
    let mut written: Vec<u64> = ta.join().unwrap();
    written.extend(tb.join().unwrap());

    wait_until("shardcap to stream every packet", || {
        stats_packets(&stats) >= written.len() as u64
    });
    stop(running);
    assert_once_in_order(tmp.path(), &written);

    // Retention keeps at most 20 KiB of streamed captures (each file is ~20 KiB: one may stay).
    let kept: u64 = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        kept <= 20 << 10,
        "the spool keeps {kept} bytes beyond --retain-size 20K"
    );
}

#[test]
fn a_restart_in_the_middle_resumes_without_loss_or_repeat() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    fs::create_dir_all(&spool).unwrap();
    let stats = tmp.path().join("stats.json");
    let state = tmp.path().join("state");
    let args = ["--horizon", "1s", "--state", state.to_str().unwrap()];
    let sensor = |from| Sensor {
        name: "sensorA",
        base: 0,
        t0_ns: 1_700_000_000_000_000_000,
        step_ns: 2_000,
        from,
        files: 3,
        per_file: 300,
        stage: None,
    };

    // First run: three files written, stopped once two have been streamed.
    let running = watch(tmp.path(), &spool, &args);
    let mut written = sensor(0).run(&spool, Duration::from_millis(300));
    wait_until("the first run to stream two files", || {
        stats_packets(&stats) >= 600
    });
    stop(running);

    // Second run with the same state: the sensor goes on; every file in the spool (all kept) is
    // seen again, but the journal says which are done.
    fs::remove_file(&stats).unwrap();
    let running = watch(tmp.path(), &spool, &args);
    written.extend(sensor(3).run(&spool, Duration::from_millis(300)));
    // The last file waits for its horizon; wait until the stats stop moving after it.
    let mut last = (u64::MAX, Instant::now());
    wait_until("the second run to settle", || {
        let now = stats_packets(&stats);
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() > Duration::from_secs(3)
    });
    stop(running);
    assert_once_in_order(tmp.path(), &written);
}

#[test]
fn a_stray_file_arriving_first_does_not_fix_the_stream_header() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, spool) = (tmp.path(), tmp.path().join("spool"));
    fs::create_dir(&spool).unwrap();
    let running = watch(dir, &spool, &["--horizon", "0"]);
    fs::write(spool.join("notes.txt"), "not a capture").unwrap();
    let stats = &dir.join("stats.json");
    let files_seen = |want: u64| {
        move || {
            let v: serde_json::Value = fs::read(stats)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            v["files_skipped"].as_u64().unwrap_or(0) + v["files_done"].as_u64().unwrap_or(0) >= want
        }
    };
    wait_until("the stray file to be refused", files_seen(1));
    // Then a nanosecond capture of raw IP packets (link type 101).
    let header = PcapHeader {
        datalink: DataLink::RAW,
        ts_resolution: TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut w =
        PcapWriter::with_header(File::create(spool.join("raw.pcap0")).unwrap(), header).unwrap();
    let mut want = Vec::new();
    for id in 0..20u64 {
        let ts = Duration::from_nanos(1_700_000_000_000_000_000 + id * 7);
        let data = frame(id, id as u16)[14..].to_vec();
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data))
            .unwrap();
        want.push((ts, id));
    }
    drop(w);
    wait_until("the capture to be streamed", files_seen(2));
    running.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(running.wait().code(), Some(3), "the stray file was skipped");

    let mut got = Vec::new();
    for k in 0..3 {
        let f = File::open(dir.join(format!("out-{k}.pcap"))).expect("complete output");
        let mut r = PcapReader::new(f).unwrap();
        let h = r.header();
        assert_eq!(
            (h.datalink, h.ts_resolution),
            (DataLink::RAW, TsResolution::NanoSecond)
        );
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            got.push((
                p.timestamp,
                u64::from_be_bytes(p.data[28..36].try_into().unwrap()),
            ));
        }
    }
    got.sort();
    assert_eq!(got, want, "every packet once, with its nanoseconds");
}

#[test]
fn a_file_of_another_link_type_is_skipped_counted_and_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, spool) = (tmp.path(), tmp.path().join("spool"));
    fs::create_dir(&spool).unwrap();
    let state = dir.join("state");
    let stats = dir.join("stats.json");
    let running = watch(
        dir,
        &spool,
        &[
            "--horizon",
            "0",
            "--state",
            state.to_str().unwrap(),
            "--link-type",
            "keep",
        ],
    );
    let write = |name: &str, datalink: DataLink, strip: usize| {
        let header = PcapHeader {
            datalink,
            ..PcapHeader::default()
        };
        let mut w =
            PcapWriter::with_header(File::create(spool.join(name)).unwrap(), header).unwrap();
        for id in 0..5u64 {
            let data = frame(id, 1)[strip..].to_vec();
            let ts = Duration::from_secs(1_700_000_000 + id);
            w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data))
                .unwrap();
        }
    };
    // Ethernet first fixes the stream's link type; with --link-type keep, raw IP afterwards
    // cannot join it.
    write("eth.pcap0", DataLink::ETHERNET, 0);
    wait_until("the Ethernet capture to be streamed", || {
        stat(&stats, "files_done") >= 1
    });
    write("raw.pcap0", DataLink::RAW, 14);
    wait_until("the raw-IP capture to be refused", || {
        stat(&stats, "files_skipped") >= 1
    });
    assert_eq!(
        stat(&stats, "packets"),
        5,
        "only the Ethernet packets are streamed"
    );
    running.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        running.wait().code(),
        Some(3),
        "a skipped file ends the run with exit 3"
    );

    // The journal records the refusal with its reason, so a restart does not take it again.
    let show = common::shardcap([
        "state",
        "show",
        "--json",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let journal: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let files = journal["files"].as_array().expect("files in the journal");
    let raw = files
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with("raw.pcap0")));
    let raw = raw.unwrap_or_else(|| panic!("raw.pcap0 is not in the journal: {journal}"));
    assert_eq!(raw["outcome"], "skipped", "{raw}");
    assert!(
        raw["detail"]
            .as_str()
            .unwrap_or("")
            .contains("link type 101"),
        "{raw}"
    );
}

/// Writes `ids` as a capture at `path` (one packet a microsecond from `t0_ns`).
fn write_ids(path: &Path, t0_ns: u64, ids: std::ops::Range<u64>) -> Vec<u64> {
    let mut w = PcapWriter::new(BufWriter::new(File::create(path).unwrap())).unwrap();
    for id in ids.clone() {
        let data = frame(id, (id % 37) as u16);
        let ts = Duration::from_nanos(t0_ns + (id % 100_000) * 1_000);
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data))
            .unwrap();
    }
    ids.collect()
}

/// Every packet id in the three outputs.
fn output_ids(dir: &Path) -> HashSet<u64> {
    read_outputs(dir, 3)
        .into_iter()
        .flatten()
        .map(|(_, id)| id)
        .collect()
}

#[test]
fn a_capture_renamed_in_under_the_streamed_name_is_streamed_not_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, stage, stats) = spool_and_stage(tmp.path());
    // Paced, so the first file is still being streamed when its successor takes its name.
    let running = watch(
        tmp.path(),
        &spool,
        &[
            "--horizon",
            "0",
            "--retention",
            "delete",
            "--max-pps",
            "200",
        ],
    );
    let t0 = 1_700_000_000_000_000_000;
    let mut written = write_ids(&stage.join("ring.pcap"), t0, 0..200);
    fs::rename(stage.join("ring.pcap"), spool.join("ring.pcap")).unwrap();
    wait_until("the first capture to be streaming", || {
        stat(&stats, "packets") > 0
    });
    written.extend(write_ids(
        &stage.join("ring.pcap"),
        t0 + 1_000_000_000,
        1000..1100,
    ));
    fs::rename(stage.join("ring.pcap"), spool.join("ring.pcap")).unwrap();
    assert!(
        stat(&stats, "packets") < 200,
        "the first capture was still being streamed when its successor arrived"
    );
    wait_until("both captures to be streamed", || {
        stat(&stats, "packets") >= written.len() as u64
    });
    wait_until("the retention to delete both", || {
        fs::read_dir(&spool).unwrap().next().is_none()
    });
    stop(running);
    assert_once_in_order(tmp.path(), &written);
}

#[test]
fn move_retention_keeps_files_of_the_same_name_from_two_spools() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, done) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("done"),
    );
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let stats = tmp.path().join("stats.json");
    let moved = format!("move:{}", done.display());
    let running = watch(
        tmp.path(),
        &a,
        &[
            "--watch",
            b.to_str().unwrap(),
            "--horizon",
            "0",
            "--retention",
            &moved,
            "--retain-size",
            "1M",
        ],
    );
    let t0 = 1_700_000_000_000_000_000;
    let mut written = write_ids(&a.join("cap.pcap0"), t0, 0..50);
    wait_until("the first file to be moved", || {
        done.join("cap.pcap0").exists()
    });
    written.extend(write_ids(&b.join("cap.pcap0"), t0 + 1_000_000, 100..150));
    wait_until("the second file to be streamed", || {
        stat(&stats, "files_done") >= 2
    });
    wait_until("the second file to be moved", || {
        !b.join("cap.pcap0").exists()
    });
    stop(running);
    assert_once_in_order(tmp.path(), &written);
    let mut names: Vec<String> = fs::read_dir(&done)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["cap-1.pcap0", "cap.pcap0"], "both files kept");
    let mut r = PcapReader::new(File::open(done.join("cap.pcap0")).unwrap()).unwrap();
    let first = r.next_packet().unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(first.data[42..50].try_into().unwrap()),
        0,
        "the first file kept its name"
    );
}

#[test]
fn a_symlink_renamed_into_the_spool_after_start_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, stage, stats) = spool_and_stage(tmp.path());
    let running = watch(tmp.path(), &spool, &["--horizon", "0"]);
    let t0 = 1_700_000_000_000_000_000;
    // A capture elsewhere, linked into the spool by a rename.
    let elsewhere = tmp.path().join("private.pcap");
    write_ids(&elsewhere, t0, 5000..5010);
    std::os::unix::fs::symlink(&elsewhere, stage.join("link.pcap")).unwrap();
    fs::rename(stage.join("link.pcap"), spool.join("link.pcap")).unwrap();
    // Then a regular capture: once it is streamed, the symlink's event was handled too.
    let written = write_ids(&spool.join("real.pcap"), t0 + 1_000, 0..10);
    wait_until("the regular capture to be streamed", || {
        stat(&stats, "files_done") >= 1
    });
    stop(running);
    assert_eq!(
        output_ids(tmp.path()),
        written.iter().copied().collect(),
        "only the regular capture is streamed"
    );
    assert_eq!(stat(&stats, "files_done"), 1);
}

/// `n` UDP packets of ~1 KB (compressible payloads) from `t0_ns`, 100 µs apart, over 40 flows.
fn kilobyte_packets(t0_ns: u64, n: u64) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            let client = Endpoint {
                ip: [10, 1, 0, (i % 40) as u8],
                port: 30_000 + (i % 40) as u16,
            };
            let server = Endpoint {
                ip: [10, 2, 0, 1],
                port: 53,
            };
            let payload = vec![(i % 7) as u8; 950 + (i % 50) as usize];
            common::rec(
                t0_ns + i * 100_000,
                common::ipv4_frame(client, server, None, &payload),
            )
        })
        .collect()
}

/// What one probe of an uncompressed file's head reads at most (its buffer holds 8 KiB).
const PLAIN_HEAD: u64 = 64 << 10;
/// What one probe of a compressed file's head decompresses at most: a decompressor hands over
/// chunks of 64, 128, 256 and 512 KiB before it notices that nobody reads on.
const PACKED_HEAD: u64 = 1 << 20;
/// The end of an uncompressed file read for its latest packet time (the reader's window).
const TAIL: u64 = 256 << 10;

#[test]
fn each_file_is_read_once_for_streaming_and_the_outputs_match_a_static_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, stage) = (tmp.path().join("spool"), tmp.path().join("stage"));
    let (watched, fixed) = (tmp.path().join("watched"), tmp.path().join("static"));
    for d in [&spool, &stage, &watched, &fixed] {
        fs::create_dir_all(d).unwrap();
    }
    // One sensor's four files, one a second, ~3 MB of packets each: pcap, pcapng, gzip pcap, zstd
    // pcapng (nanosecond resolution throughout, so the stream header does not depend on which
    // file comes first).
    let per_file = 3000;
    let mut plain = 0; // uncompressed files' bytes
    let mut packed = 0; // compressed files' bytes
    let mut unpacked = 0; // what they decompress to
    let mut names = Vec::new();
    for k in 0..4u64 {
        let recs = kilobyte_packets(1_700_000_000_000_000_000 + k * 1_000_000_000, per_file);
        let name = format!("sensor.pcap{k}");
        let path = stage.join(&name);
        if k % 2 == 0 {
            common::write_pcap(&path, 1, true, &recs);
        } else {
            common::write_pcapng(&path, 1, &recs);
        }
        let raw = fs::read(&path).unwrap();
        let bytes = match k {
            2 => gzip(&raw),
            3 => zstd::encode_all(&raw[..], 3).unwrap(),
            _ => raw.clone(),
        };
        if k >= 2 {
            packed += bytes.len() as u64;
            unpacked += raw.len() as u64;
        } else {
            plain += raw.len() as u64;
        }
        fs::write(&path, bytes).unwrap();
        names.push(name);
    }
    let stats = watched.join("stats.json");
    let running = watch(&watched, &spool, &["--horizon", "1s"]);
    for name in &names {
        fs::rename(stage.join(name), spool.join(name)).unwrap();
    }
    wait_until("shardcap to stream every packet", || {
        stats_packets(&stats) >= 4 * per_file
    });
    stop(running);

    // Uncompressed files: read once, plus their heads and tails. Compressed ones: read and
    // decompressed once to stream, once (off the dispatch thread) for their time range.
    let read = stat(&stats, "input_bytes_read");
    // Two head probes a file: the range's and the catalog's (a compressed head may be all of it).
    let most = plain + 2 * (TAIL + 2 * PLAIN_HEAD) + 2 * packed + 2 * packed;
    assert!(
        (plain + packed..=most).contains(&read),
        "{read} bytes read from {plain} plain and {packed} compressed bytes (at most {most})"
    );
    let decompressed = stat(&stats, "input_bytes_decompressed");
    let most = 2 * unpacked + 2 * 2 * PACKED_HEAD;
    assert!(
        (unpacked..=most).contains(&decompressed),
        "{decompressed} bytes decompressed from files of {unpacked} (at most {most})"
    );

    // The same files named on the command line give the same bytes.
    let inputs: Vec<PathBuf> = names.iter().map(|n| spool.join(n)).collect();
    same_as_static(&watched, &fixed, &inputs, &[]);
}

/// `raw` gzip-compressed.
fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
    std::io::Write::write_all(&mut gz, raw).unwrap();
    gz.finish().unwrap()
}

/// Runs `shardcap run` naming `inputs` (with `extra` options, 3 file outputs in `fixed`) and
/// checks that its outputs are byte-identical to the continuous run's in `watched`.
fn same_as_static(watched: &Path, fixed: &Path, inputs: &[PathBuf], extra: &[&str]) -> common::Run {
    fs::create_dir_all(fixed).unwrap();
    let run = common::shardcap(
        ["run", "-n", "3", "-o"]
            .map(String::from)
            .into_iter()
            .chain([format!("file:{}/out-{{shard}}.pcap", fixed.display())])
            .chain(extra.iter().map(|a| a.to_string()))
            .chain(inputs.iter().map(|p| p.display().to_string())),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for k in 0..3 {
        let name = format!("out-{k}.pcap");
        let (w, s) = (
            fs::read(watched.join(&name)).unwrap(),
            fs::read(fixed.join(&name)).unwrap(),
        );
        assert!(s.len() > 24, "shard {k} has packets");
        assert!(w == s, "shard {k}: continuous and static outputs differ");
    }
    run
}

/// What the looks at the intake may read of one file on the dispatch thread: its head twice
/// (its range's probe and the catalog's) and its tail. Never the whole file.
const LOOKS: u64 = 2 * PLAIN_HEAD + TAIL;

/// Writes `n` kilobyte packets from `t0_ns` as a nanosecond pcap file at `path`; its bytes.
fn kilobyte_capture(path: &Path, t0_ns: u64, n: u64) -> Vec<u8> {
    common::write_pcap(path, 1, true, &kilobyte_packets(t0_ns, n));
    fs::read(path).unwrap()
}

#[test]
fn a_duplicate_in_the_spool_is_read_once_and_checked_off_the_dispatch_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, stage, stats) = spool_and_stage(tmp.path());
    // Two names for the same ~3 MB capture: same size and first packet time, so the second is
    // read whole and hashed, with the first, to tell it is a duplicate.
    let per_file = 3000;
    let bytes = kilobyte_capture(
        &stage.join("sensor.pcap0"),
        1_700_000_000_000_000_000,
        per_file,
    );
    fs::write(stage.join("copy.pcap0"), &bytes).unwrap();
    let size = bytes.len() as u64;
    let running = watch(tmp.path(), &spool, &["--horizon", "0"]);
    for name in ["sensor.pcap0", "copy.pcap0"] {
        fs::rename(stage.join(name), spool.join(name)).unwrap();
    }
    wait_until("both files to be done", || stat(&stats, "files_done") >= 2);
    stop(running);

    assert_eq!(
        stat(&stats, "files_duplicate"),
        1,
        "one is the other's duplicate"
    );
    assert_eq!(
        stat(&stats, "packets"),
        per_file,
        "its packets are streamed once"
    );
    // The dispatch thread read heads and tails only: the two files were hashed elsewhere.
    let looks = stat(&stats, "intake_bytes_read");
    assert!(
        (1..=2 * LOOKS).contains(&looks),
        "the looks at the intake read {looks} bytes on the dispatch thread (at most {}; a file \
         is {size})",
        2 * LOOKS
    );
    // Yet both were read whole once to hash them, and one of them once more to stream it.
    let read = stat(&stats, "input_bytes_read");
    assert!(
        (3 * size..=3 * size + 2 * LOOKS).contains(&read),
        "{read} bytes read from two files of {size}"
    );

    // Named on the command line, the copy is a duplicate too, and the outputs are the same.
    let inputs = [spool.join("sensor.pcap0"), spool.join("copy.pcap0")];
    let run = same_as_static(tmp.path(), &tmp.path().join("static"), &inputs, &[]);
    assert!(
        run.stderr.contains("copy.pcap0: the same packets as"),
        "{}",
        run.stderr
    );
}

#[test]
fn since_takes_a_watched_files_end_from_its_range_and_never_reads_it_on_the_dispatch_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, stage, stats) = spool_and_stage(tmp.path());
    // One sensor's three files of 0.6 s, one a second: a pcap and a gzip pcap wholly before
    // --since, and a pcap it cuts in half.
    let t0 = 1_700_000_000_000_000_000;
    let per_file = 6000;
    let since = "1700000002.3";
    let mut sizes = Vec::new();
    for k in 0..3u64 {
        let path = stage.join(format!("sensor.pcap{k}"));
        let mut bytes = kilobyte_capture(&path, t0 + k * 1_000_000_000, per_file);
        if k == 1 {
            bytes = gzip(&bytes);
            fs::write(&path, &bytes).unwrap();
        }
        sizes.push(bytes.len() as u64);
    }
    let running = watch(tmp.path(), &spool, &["--horizon", "1s", "--since", since]);
    for k in 0..3 {
        let name = format!("sensor.pcap{k}");
        fs::rename(stage.join(&name), spool.join(&name)).unwrap();
    }
    wait_until("every file to be done", || stat(&stats, "files_done") >= 3);
    stop(running);

    assert_eq!(stat(&stats, "/select/files_outside_range"), 2);
    assert_eq!(
        stat(&stats, "packets"),
        per_file / 2,
        "the second half of the last file"
    );
    let looks = stat(&stats, "intake_bytes_read");
    assert!(
        (1..=3 * LOOKS).contains(&looks),
        "the looks at the intake read {looks} bytes on the dispatch thread (at most {}; the \
         files are {sizes:?})",
        3 * LOOKS
    );
    // The first file's end came from its tail, the gzip file's from its range read off the
    // dispatch thread: neither is read whole again for --since. The last is streamed.
    let read = stat(&stats, "input_bytes_read");
    let most = sizes[2] + 2 * LOOKS + 3 * sizes[1];
    assert!(
        (sizes[2]..=most).contains(&read),
        "{read} bytes read from files of {sizes:?} (at most {most})"
    );

    let inputs: Vec<PathBuf> = (0..3)
        .map(|k| spool.join(format!("sensor.pcap{k}")))
        .collect();
    same_as_static(
        tmp.path(),
        &tmp.path().join("static"),
        &inputs,
        &["--since", since],
    );
}
