//! Duplicate files: a pile holding the same capture under two names streams its packets once
//! (given on the command line, in a watched spool, from a Redis queue), names both files, and
//! counts the duplicate, also when the copy is in another container (gzip, pcapng); a file of the
//! same size and first packet time but other packets is read.

mod common;
mod redis_support;

use std::fs;
use std::path::{Path, PathBuf};

use common::{read_capture, read_shards, same_packets, stats, wait_until, ChildGuard, Rec};
use redis_support::{expect_exit, finish, name, spawn, Authorizer, RedisServer};

/// A pile of the sample captures in two sensor directories, plus `spare/`: `dup-sensorA.pcap`
/// (a byte copy of sensorA.pcap1) and `other-sensorB.pcap` (sensorB.pcap2 with one byte of its
/// last packet changed). Returns the pile's directory, its files in order, and the duplicate.
fn pile(root: &Path) -> (PathBuf, Vec<PathBuf>, PathBuf) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let dir = root.join("pile");
    let mut files = Vec::new();
    for sensor in ["sensorA", "sensorB"] {
        fs::create_dir_all(dir.join(sensor)).unwrap();
        for k in ["", "1", "2", "3"] {
            let name = format!("{sensor}.pcap{k}");
            let to = dir.join(sensor).join(&name);
            fs::copy(samples.join(&name), &to).unwrap();
            files.push(to);
        }
    }
    fs::create_dir_all(dir.join("spare")).unwrap();
    let dup = dir.join("spare/dup-sensorA.pcap");
    fs::copy(&files[1], &dup).unwrap();
    let mut other = fs::read(&files[6]).unwrap();
    *other.last_mut().unwrap() ^= 0xff;
    let other_path = dir.join("spare/other-sensorB.pcap");
    fs::write(&other_path, other).unwrap();
    files.push(other_path);
    (dir, files, dup)
}

/// The packets of `files`, by the independent reader.
fn packets_of(files: &[PathBuf]) -> Vec<Rec> {
    files.iter().flat_map(|f| read_capture(f).recs()).collect()
}

/// The packets of the 3 shard outputs `out-{k}.pcap` in `dir`.
fn shard_packets(dir: &Path) -> Vec<Rec> {
    read_shards(dir, "out", 3)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.packets)
        .collect()
}

fn out_spec(dir: &Path) -> String {
    format!("file:{}/out-{{shard}}.pcap", dir.display())
}

/// Runs `-n 3` over the pile `dir` in `tmp`, which must end well with every packet of `files`
/// streamed once; returns the run and its stats.
fn stream_once(tmp: &Path, dir: &Path, files: &[PathBuf]) -> (common::Run, serde_json::Value) {
    let out = tmp.join("out");
    fs::create_dir_all(&out).unwrap();
    let stats_file = tmp.join("stats.json");
    let run = common::shardcap([
        "run",
        "-n",
        "3",
        "-o",
        &out_spec(&out),
        "--stats-file",
        &name(&stats_file),
        &name(dir),
    ]);
    expect_exit(&run, 0);
    same_packets(packets_of(files), shard_packets(&out)).unwrap();
    (run, stats(&stats_file))
}

/// The run's log names `copy` as read once, holding `original`'s packets.
fn assert_read_once(run: &common::Run, copy: &Path, original: &Path) {
    let line = format!(
        "{}: the same packets as {}; read once",
        copy.display(),
        original.display()
    );
    assert!(
        run.stderr.contains(&line),
        "no line {line:?} in {}",
        run.stderr
    );
}

#[test]
fn a_pile_with_a_duplicated_file_streams_every_packet_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, files, dup) = pile(tmp.path());
    let (run, s) = stream_once(tmp.path(), &dir, &files);
    assert_read_once(&run, &dup, &files[1]);
    assert!(
        run.stderr.contains("from 10 files") && run.stderr.contains("1 duplicate files read once"),
        "summary: {}",
        run.stderr
    );
    assert_eq!(s["files_duplicate"], 1, "{s}");
    assert_eq!(s["files_done"], 10, "{s}");
}

#[test]
fn copies_in_other_containers_are_read_once() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, files, _dup) = pile(tmp.path());
    // sensorB.pcap1 gzipped, and sensorA.pcap2 as pcapng (nanosecond timestamps, other blocks).
    let gz = dir.join("spare/copy-sensorB.pcap1.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&fs::read(&files[5]).unwrap()).unwrap();
    fs::write(&gz, enc.finish().unwrap()).unwrap();
    let ng = dir.join("spare/copy-sensorA.pcapng");
    let capture = read_capture(&files[2]);
    assert_eq!(capture.linktypes, [1], "Ethernet samples");
    common::write_pcapng(&ng, 1, &capture.recs());
    let (run, s) = stream_once(tmp.path(), &dir, &files);
    assert_read_once(&run, &gz, &files[5]);
    assert_read_once(&run, &ng, &files[2]);
    assert_eq!(
        s["files_duplicate"], 3,
        "the byte copy and the two others: {s}"
    );
}

#[test]
fn a_duplicate_arriving_in_a_watched_spool_is_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, files, dup) = pile(tmp.path());
    let spool = tmp.path().join("spool");
    let out = tmp.path().join("out");
    fs::create_dir_all(&spool).unwrap();
    fs::create_dir_all(&out).unwrap();
    let stats_file = out.join("stats.json");
    let running = ChildGuard::start(
        common::command(["run", "--watch"])
            .arg(&spool)
            .args([
                "--settle",
                "0",
                "--horizon",
                "1s",
                "--stats-interval",
                "100ms",
            ])
            .args(["-n", "3", "-o", &out_spec(&out), "--stats-file"])
            .arg(&stats_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    wait_until("shardcap to start", || stats_file.exists());
    // The files arrive one by one, renamed in as complete files; the duplicate after its original.
    let stage = tmp.path().join("stage");
    fs::create_dir_all(&stage).unwrap();
    let mut arrivals = files.clone();
    arrivals.insert(5, dup.clone());
    for f in &arrivals {
        let name = f
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('/', "-");
        fs::copy(f, stage.join(&name)).unwrap();
        fs::rename(stage.join(&name), spool.join(&name)).unwrap();
    }
    let want = packets_of(&files);
    wait_until("every file to be streamed", || {
        let s = fs::read(&stats_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        s.is_some_and(|s| {
            s["files_done"] == arrivals.len() as u64 && s["packets"] == want.len() as u64
        })
    });
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let done = running.output();
    assert!(done.status.success(), "{done:?}");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(
        stderr.contains("spare-dup-sensorA.pcap: the same packets as")
            && stderr.contains("sensorA-sensorA.pcap1; read once"),
        "{stderr}"
    );
    same_packets(want, shard_packets(&out)).unwrap();
    assert_eq!(stats(&stats_file)["files_duplicate"], 1);
}

#[test]
fn a_queued_duplicate_is_recorded_done_with_its_original() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (_dir, files, dup) = pile(tmp.path());
    let mut queued: Vec<PathBuf> = files.clone();
    queued.insert(3, dup.clone());
    let names: Vec<String> = queued.iter().map(|p| name(p)).collect();
    redis.rpush("PCAPDJ_IN_QUEUE", &names);
    let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let url = redis.url();
    let spec = out_spec(&out);
    let run = finish(spawn(&[
        "run",
        "--auth",
        "redis",
        "--redis",
        &url,
        "--redis-mode",
        "reliable",
        "--order",
        "given",
        "-n",
        "3",
        "-o",
        &spec,
    ]));
    expect_exit(&run, 0);
    let granted = auth.stop();
    assert!(
        !granted.contains(&name(&dup)),
        "the duplicate is never announced: {granted:?}"
    );
    assert_eq!(granted.len(), files.len());
    same_packets(packets_of(&files), shard_packets(&out)).unwrap();
    assert_eq!(
        redis.list("PCAPDJ_DONE"),
        names,
        "every file done, in queue order"
    );
    let original: Option<String> = redis::cmd("HGET")
        .arg("PCAPDJ_DUPLICATES")
        .arg(name(&dup))
        .query(&mut redis.con())
        .unwrap();
    assert_eq!(original, Some(name(&files[1])));
    assert!(redis.list("PCAPDJ_FAILED").is_empty());
}
