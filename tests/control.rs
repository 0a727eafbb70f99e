//! Operator control against the real binary with real signals: SIGUSR1 suspend/resume, SIGUSR2
//! stats, SIGTERM stop, kill -9 crashes and restarts from the journal (`--state`).
//!
//! Inputs are generated rotated captures whose UDP payloads carry a unique packet number, so lost
//! and repeated packets are counted exactly. `--max-pps` keeps a run going for a few seconds in
//! debug and release builds alike; the tests never assert on time, they poll the stats file to
//! learn what the run is doing.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use serde_json::Value;

mod common;

use common::ChildGuard;

/// Offset of the packet number in a generated frame (Ethernet, IPv4, UDP headers).
const NUMBER_AT: usize = 14 + 20 + 8;
/// Longest a test waits for a run to reach a state before it gives up (a hang guard only).
const PATIENCE: Duration = Duration::from_secs(120);

/// Writes `files` rotated captures of `per_file` packets each; packet numbers start at `first`.
/// Returns the paths in order.
fn write_inputs(dir: &Path, files: usize, per_file: usize, first: u64) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    (0..files)
        .map(|f| {
            let path = dir.join(format!("trace-{f:03}.pcap"));
            let start = first + (f * per_file) as u64;
            write_capture(&path, start, per_file);
            path
        })
        .collect()
}

/// One capture of `count` UDP packets numbered from `start`, 1 ms apart, over 64 flows.
fn write_capture(path: &Path, start: u64, count: usize) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for n in start..start + count as u64 {
        let frame = frame(n);
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_millis(n);
        w.write_packet(&PcapPacket::new(ts, frame.len() as u32, &frame))
            .unwrap();
    }
}

/// Rewrites a capture with each pair of packets swapped: every second packet is late.
fn swap_pairs(path: &Path) {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut packets = Vec::new();
    while let Some(p) = r.next_packet() {
        packets.push(p.unwrap().into_owned());
    }
    for pair in packets.chunks_mut(2) {
        pair.reverse();
    }
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for p in &packets {
        w.write_packet(p).unwrap();
    }
}

/// An Ethernet/IPv4/UDP frame carrying packet number `n`.
fn frame(n: u64) -> Vec<u8> {
    let payload = 58;
    let mut f = Vec::with_capacity(NUMBER_AT + payload);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let ip_len = (20 + 8 + payload) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 0, 0, 1 + (n % 64) as u8, 10, 0, 1, 1]);
    let sport = 1024 + (n % 64) as u16;
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&53u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&n.to_le_bytes());
    f.resize(NUMBER_AT + payload, 0xab);
    f
}

/// Packet numbers in a pcap stream; stops quietly at a record cut short (a killed writer).
fn numbers_in(path: &Path) -> Vec<u64> {
    let mut r = PcapReader::new(BufReader::new(File::open(path).unwrap()))
        .unwrap_or_else(|e| panic!("{}: not a pcap stream: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(Ok(p)) = r.next_packet() {
        assert_eq!(
            p.data.len(),
            NUMBER_AT + 58,
            "{}: odd frame",
            path.display()
        );
        assert_eq!(p.data.as_ref(), frame(read_number(&p.data)).as_slice());
        out.push(read_number(&p.data));
    }
    out
}

/// Every packet of a complete pcap file (an error anywhere fails the test).
fn complete_numbers(path: &Path) -> Vec<u64> {
    let mut r = PcapReader::new(BufReader::new(File::open(path).unwrap()))
        .unwrap_or_else(|e| panic!("{}: not a pcap file: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap_or_else(|e| panic!("{}: damaged: {e}", path.display()));
        out.push(read_number(&p.data));
    }
    out
}

fn read_number(data: &[u8]) -> u64 {
    u64::from_le_bytes(data[NUMBER_AT..NUMBER_AT + 8].try_into().unwrap())
}

/// How often each packet number occurs.
fn tally(numbers: impl IntoIterator<Item = u64>) -> HashMap<u64, u32> {
    let mut t = HashMap::new();
    for n in numbers {
        *t.entry(n).or_insert(0) += 1;
    }
    t
}

/// Asserts that `seen` holds every number of `expected` at least once and nothing else; returns
/// how many extra copies there were.
fn duplicates(seen: &HashMap<u64, u32>, expected: impl IntoIterator<Item = u64>) -> u64 {
    let expected: Vec<u64> = expected.into_iter().collect();
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|n| !seen.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "{} packets lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(seen.len(), expected.len(), "packets that were never input");
    seen.values().map(|&c| u64::from(c - 1)).sum()
}

/// Starts `shardcap ARGS` with its output going where it is told; killed if the test fails.
fn start_with(args: &[String], stdout: Stdio, stderr: Stdio) -> ChildGuard {
    let child = common::command(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start shardcap");
    ChildGuard(Some(child))
}

/// Starts `shardcap ARGS` with its output discarded.
fn start(args: &[String]) -> ChildGuard {
    start_with(args, Stdio::null(), Stdio::null())
}

/// Sends `sig` to a running shardcap.
fn signal(run: &ChildGuard, sig: Signal) {
    let pid = run.0.as_ref().expect("running child").id();
    kill(Pid::from_raw(pid as i32), sig).expect("send signal");
}

/// Polls the stats file until `ready` holds for it; panics if the run ends first.
fn wait_stats(
    run: &mut ChildGuard,
    path: &Path,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        if let Some(v) = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            if ready(&v) {
                return v;
            }
        }
        assert!(run.running(), "the run ended before {what}");
        assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn packets(v: &Value) -> u64 {
    v["packets"].as_u64().unwrap()
}

/// A test's files: generated inputs, an output directory, a stats file and a state directory.
struct Setup {
    _tmp: tempfile::TempDir,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    stats: PathBuf,
    state: PathBuf,
}

impl Setup {
    /// `files` rotated captures of `per_file` packets numbered from 0.
    fn new(files: usize, per_file: usize) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        Setup {
            inputs: write_inputs(&tmp.path().join("in"), files, per_file, 0),
            stats: tmp.path().join("stats.json"),
            state: tmp.path().join("state"),
            out,
            _tmp: tmp,
        }
    }

    /// `-o` for file outputs in the output directory.
    fn files(&self) -> String {
        format!("file:{}/shard-{{shard}}.pcap", self.out.display())
    }

    /// `--state` and the state directory.
    fn state(&self) -> [&str; 2] {
        ["--state", self.state.to_str().unwrap()]
    }

    /// `shardcap run` paced to `pps` packets a second, with a stats file every 20 ms, then `extra`
    /// options and the inputs.
    fn run_args(&self, pps: u64, extra: &[&str]) -> Vec<String> {
        let pps = pps.to_string();
        let head = [
            "run",
            "--max-pps",
            &pps,
            "--stats-interval",
            "20ms",
            "--stats-file",
            self.stats.to_str().unwrap(),
        ];
        (head.iter().chain(extra))
            .map(|s| s.to_string())
            .chain(self.inputs.iter().map(|p| p.display().to_string()))
            .collect()
    }

    /// The file output of each of `shards` shards.
    fn shards(&self, shards: usize) -> Vec<PathBuf> {
        (0..shards)
            .map(|k| self.out.join(format!("shard-{k}.pcap")))
            .collect()
    }
}

fn partial(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", p.display()))
}

/// A pseudo-random sequence for kill moments (seeded from the clock, printed for reruns).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[test]
fn suspend_holds_the_stream_and_resume_continues() {
    let t = Setup::new(10, 4000);
    let pattern = t.files();
    let mut run = start(&t.run_args(20_000, &["-n", "2", "-o", &pattern]));
    wait_stats(&mut run, &t.stats, "packets flow", |v| packets(v) > 1000);
    signal(&run, Signal::SIGUSR1);
    let held = wait_stats(&mut run, &t.stats, "the suspension", |v| {
        v["state"] == "Suspended"
    });
    assert_eq!(held["suspensions"], 1);
    let outputs: Vec<PathBuf> = t.shards(2).iter().map(|p| partial(p)).collect();
    let size = |p: &PathBuf| fs::metadata(p).unwrap().len();
    let first: Vec<u64> = outputs.iter().map(size).collect();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        let now: Vec<u64> = outputs.iter().map(size).collect();
        assert_eq!(now, first, "outputs grew while suspended");
        assert!(run.running(), "the run ended while suspended");
    }
    let still = wait_stats(&mut run, &t.stats, "a stats refresh", |v| {
        v["uptime_s"].as_f64() > held["uptime_s"].as_f64()
    });
    assert_eq!(
        packets(&still),
        packets(&held),
        "packets counted while suspended"
    );
    signal(&run, Signal::SIGUSR1);
    assert!(run.wait().success());

    let last = common::stats(&t.stats);
    assert_eq!(last["state"], "Done");
    assert_eq!(last["suspensions"], 1, "one suspension counted once");
    let written: Vec<u64> = t
        .shards(2)
        .iter()
        .flat_map(|p| complete_numbers(p))
        .collect();
    assert_eq!(packets(&last), written.len() as u64);
    assert_eq!(duplicates(&tally(written), 0..40_000), 0);
}

#[test]
fn sigusr2_prints_pcapdj_stats_first_and_counts_match_the_outputs() {
    let t = Setup::new(8, 4000);
    let pattern = t.files();
    let mut run = start_with(
        &t.run_args(20_000, &["-n", "2", "-o", &pattern]),
        Stdio::piped(),
        Stdio::null(),
    );
    let lines = read_lines(run.0.as_mut().unwrap().stdout.take().unwrap());
    wait_stats(&mut run, &t.stats, "packets flow", |v| packets(v) > 1000);
    signal(&run, Signal::SIGUSR2);
    let after = wait_stats(&mut run, &t.stats, "more packets", |v| packets(v) > 5000);
    signal(&run, Signal::SIGUSR2);
    assert!(run.wait().success());
    let lines = lines.join().unwrap();

    let pairs: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("[STATS] ")
                .unwrap_or_else(|| panic!("not a stats line: {l:?}"));
            let (k, v) = rest.split_once(':').expect("Key:Value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let pcapdj = common::PCAPDJ_STATS_KEYS;
    let blocks: Vec<&[(String, String)]> = pairs.chunk_by(|_, b| b.0 != "Start time").collect();
    assert_eq!(blocks.len(), 2, "one block per SIGUSR2: {lines:#?}");
    let mut counts = Vec::new();
    for block in &blocks {
        let keys: Vec<&str> = block.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&keys[..pcapdj.len()], &pcapdj, "pcapdj's fields first");
        for k in [
            "Current file",
            "Files left",
            "Bytes done",
            "Bytes total",
            "ETA",
        ] {
            assert!(keys.contains(&k), "{k} missing");
        }
        let get = |k: &str| &block.iter().find(|(key, _)| key == k).unwrap().1;
        assert_eq!(get("Internal state"), "Feeding fifo buffer");
        assert!(get("Uptime").ends_with(" (seconds)"));
        let start = get("Start time");
        assert_eq!(start.len(), 19, "pcapdj's %Y-%d-%m %H:%M:%S: {start}");
        let n: u64 = get("Number of packets").parse().unwrap();
        let s0: u64 = get("Shard 0 packets").parse().unwrap();
        let s1: u64 = get("Shard 1 packets").parse().unwrap();
        assert_eq!(n, s0 + s1);
        let caplen: u64 = get("Number of cap_lengths").parse().unwrap();
        assert_eq!(caplen, n * (NUMBER_AT as u64 + 58));
        counts.push(n);
    }
    assert!(counts[0] > 0 && counts[0] < counts[1] && counts[1] >= packets(&after));

    let last = common::stats(&t.stats);
    let mut total = 0;
    for (k, p) in t.shards(2).iter().enumerate() {
        let n = complete_numbers(p).len() as u64;
        assert_eq!(last["shards"][k]["packets"].as_u64().unwrap(), n);
        total += n;
    }
    assert_eq!(packets(&last), total);
    assert_eq!(total, 32_000);
}

/// Collects the lines of a child's pipe on a thread.
fn read_lines(pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || BufReader::new(pipe).lines().map(Result::unwrap).collect())
}

#[test]
fn sigusr2_goes_to_stderr_when_stdout_carries_packets() {
    let t = Setup::new(4, 4000);
    let stream = t.out.join("stream.pcap");
    let mut run = start_with(
        &t.run_args(20_000, &["-o", "stdout"]),
        Stdio::from(File::create(&stream).unwrap()),
        Stdio::piped(),
    );
    let lines = read_lines(run.0.as_mut().unwrap().stderr.take().unwrap());
    wait_stats(&mut run, &t.stats, "packets flow", |v| packets(v) > 1000);
    signal(&run, Signal::SIGUSR2);
    assert!(run.wait().success());
    let lines = lines.join().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[STATS] Number of packets:")),
        "{lines:#?}"
    );
    assert_eq!(duplicates(&tally(complete_numbers(&stream)), 0..16_000), 0);
}

#[test]
fn sigterm_counts_the_packets_the_reorder_window_released_at_the_stop() {
    let t = Setup::new(10, 4000);
    for p in &t.inputs {
        swap_pairs(p);
    }
    let pattern = t.files();
    let run_args = t.run_args(
        20_000,
        &["-n", "2", "-o", &pattern, "--reorder-window", "10ms"],
    );
    let mut run = start(&run_args);
    wait_stats(&mut run, &t.stats, "a few files", |v| {
        v["files_done"].as_u64() >= Some(2)
    });
    signal(&run, Signal::SIGTERM);
    assert!(run.wait().success(), "a stop signal ends with exit 0");
    let st: Value = serde_json::from_slice(&fs::read(&t.stats).unwrap()).unwrap();
    assert_eq!(st["state"], "Stopping", "stopped mid-run");
    assert!(st["out_of_order"].as_u64() > Some(0), "{st}");
    assert_eq!(
        st["reorder"]["repaired"], st["out_of_order"],
        "the packets held to the stop were put in order and counted"
    );
}

#[test]
fn sigterm_stops_with_complete_outputs_and_a_restart_finishes() {
    let t = Setup::new(10, 4000);
    let pattern = t.files();
    let run_args = t.run_args(
        20_000,
        &[&["-n", "2", "-o", &pattern][..], &t.state()].concat(),
    );
    let mut run = start(&run_args);
    wait_stats(&mut run, &t.stats, "a few files", |v| {
        v["files_done"].as_u64() >= Some(2)
    });
    signal(&run, Signal::SIGTERM);
    assert!(run.wait().success(), "a stop signal ends with exit 0");

    let mut first = Vec::new();
    for p in t.shards(2) {
        assert!(!partial(&p).exists(), "{} left partial", p.display());
        first.extend(complete_numbers(&p));
    }
    assert!(!first.is_empty() && first.len() < 40_000, "stopped mid-run");
    assert_eq!(
        tally(first.iter().copied()).len(),
        first.len(),
        "repeated packets"
    );
    let journal = state_show(&t, &["--json"]);
    let journal: Value = serde_json::from_str(&journal).unwrap();
    assert_eq!(journal["status"], "resumable");
    assert_eq!(journal["checkpoint"]["reason"], "stop");
    assert!(journal["counts"]["complete"].as_u64() >= Some(2));
    let sum = |list: &Value| -> u64 {
        let list = list.as_array().unwrap();
        list.iter().map(|f| f["packets"].as_u64().unwrap()).sum()
    };
    let journaled = sum(&journal["files"]) + sum(&journal["checkpoint"]["open"]);
    assert_eq!(
        journaled,
        first.len() as u64,
        "the journal accounts for every packet"
    );

    assert!(start(&run_args).wait().success());
    let all: Vec<u64> = t
        .shards(2)
        .iter()
        .flat_map(|p| complete_numbers(p))
        .collect();
    let dups = duplicates(&tally(all), 0..40_000);
    println!("SIGTERM and restart, file outputs: {dups} duplicate packets");
    assert_eq!(dups, 0);

    let text = state_show(&t, &[]);
    assert!(text.contains(": complete"), "{text}");
    assert!(text.contains("10 complete"), "{text}");
}

/// `shardcap state show` of the test's state directory.
fn state_show(t: &Setup, extra: &[&str]) -> String {
    let state = t.state();
    let args = ["state", "show"].iter().chain(&state).chain(extra);
    let out = common::command(args).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Kills a run at random moments (after 2,000 to 13,000 packets of its stream), restarts it with the
/// same state each time, and after six kills lets it finish.
/// Returns every output file of every run (one per run for stdout, the shard files otherwise).
fn crash_and_restart(run_args: &[String], stats: &Path, stdout_dir: Option<&Path>) -> Vec<PathBuf> {
    let (streams, kills) = crash_loop(run_args, stats, stdout_dir);
    println!("{kills} kills with SIGKILL, then a run to the end");
    assert!(kills >= 5, "only {kills} kills before the run completed");
    streams
}

fn crash_loop(run_args: &[String], stats: &Path, stdout_dir: Option<&Path>) -> (Vec<PathBuf>, u32) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill moments seeded with {seed}");
    let mut rng = Lcg(seed);
    let mut streams = Vec::new();
    let mut kills = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let _ = fs::remove_file(stats);
        let stdout = match stdout_dir {
            Some(d) => {
                let p = d.join(format!("run-{attempt}.pcap"));
                streams.push(p.clone());
                Stdio::from(File::create(&p).unwrap())
            }
            None => Stdio::null(),
        };
        let mut run = start_with(run_args, stdout, Stdio::null());
        if kills >= 6 {
            assert!(run.wait().success(), "the last run completes");
            return (streams, kills);
        }
        // Kill it at a random point of its stream (it may find nothing left to do and end).
        let target = 2000 + rng.next(11_000);
        let begun = Instant::now();
        loop {
            let streamed = fs::read(stats)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .map_or(0, |v| packets(&v));
            if streamed >= target || !run.running() || begun.elapsed() > PATIENCE {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !run.running() {
            assert!(run.wait().success());
            return (streams, kills);
        }
        println!("kill -9 after {target} packets of this run");
        signal(&run, Signal::SIGKILL);
        run.wait();
        kills += 1;
    }
}

#[test]
fn kill_9_and_restart_repeatedly_loses_nothing_and_repeats_nothing_with_file_outputs() {
    let t = Setup::new(25, 4000);
    let pattern = t.files();
    // Checkpoints by volume, so that shard buffers reach the files between two checkpoints.
    let options = ["-n", "2", "-o", &pattern, "--checkpoint-interval", "1h"];
    let volume = ["--checkpoint-bytes", "1MiB"];
    let run_args = t.run_args(40_000, &[&options[..], &volume, &t.state()].concat());
    crash_and_restart(&run_args, &t.stats, None);
    let all: Vec<u64> = t
        .shards(2)
        .iter()
        .flat_map(|p| complete_numbers(p))
        .collect();
    let dups = duplicates(&tally(all), 0..100_000);
    println!("kill -9 and restart, file outputs: {dups} duplicate packets of 100000");
    assert_eq!(dups, 0, "file outputs are cut back to the checkpoint");
}

#[test]
fn kill_9_and_restart_with_stdout_repeats_at_most_one_checkpoint_of_packets() {
    let t = Setup::new(25, 4000);
    // Checkpoints by volume: at most 1 MiB of records between two, plus one pacing tick.
    let (every, pps) = (1u64 << 20, 40_000);
    let every_arg = every.to_string();
    let options = ["-o", "stdout", "--checkpoint-interval", "1h"];
    let volume = ["--checkpoint-bytes", &every_arg];
    let run_args = t.run_args(pps, &[&options[..], &volume, &t.state()].concat());
    let runs = crash_and_restart(&run_args, &t.stats, Some(&t.out));
    let record = (16 + NUMBER_AT + 58) as u64;
    let bound = every / record + 1 + pps / 100;
    let mut seen = HashMap::new();
    let mut worst = 0;
    for (i, s) in runs.iter().enumerate() {
        let numbers = numbers_in(s);
        let repeated = numbers.iter().filter(|n| seen.contains_key(*n)).count() as u64;
        println!(
            "run {i}: {} packets, {repeated} already streamed",
            numbers.len()
        );
        worst = worst.max(repeated);
        for n in numbers {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    let dups = duplicates(&seen, 0..100_000);
    println!(
        "kill -9 and restart, stdout: {dups} duplicate packets of 100000 over {} restarts; \
         at most {worst} in one restart (bound: one checkpoint, {bound})",
        runs.len() - 1
    );
    assert!(
        worst <= bound,
        "{worst} repeated packets in one restart > {bound}"
    );
}

#[test]
fn a_file_changed_after_a_stop_is_reported_and_streamed_again() {
    let t = Setup::new(6, 4000);
    let pattern = t.files();
    let run_args = t.run_args(20_000, &[&["-o", &pattern][..], &t.state()].concat());
    let mut run = start(&run_args);
    wait_stats(&mut run, &t.stats, "two files", |v| {
        v["files_done"].as_u64() >= Some(2)
    });
    signal(&run, Signal::SIGTERM);
    assert!(run.wait().success());

    // The first file, finished before the stop, gets new content under the same name.
    write_capture(&t.inputs[0], 1_000_000, 4000);
    let again = common::command(&run_args).output().unwrap();
    assert!(again.status.success());
    let log = String::from_utf8_lossy(&again.stderr);
    let changed = format!("{}: changed since the journal", t.inputs[0].display());
    assert!(log.contains(&changed), "{log}");
    let all = tally(complete_numbers(&t.shards(1)[0]));
    assert_eq!(duplicates(&all, (0..24_000).chain(1_000_000..1_004_000)), 0);
}

#[test]
fn a_state_refuses_other_outputs_and_a_completed_run_is_a_no_op() {
    let t = Setup::new(2, 500);
    let pattern = t.files();
    let with = |n: &str| t.run_args(0, &[&["-n", n, "-o", &pattern][..], &t.state()].concat());
    assert!(start(&with("2")).wait().success());
    let contents =
        || -> Vec<Vec<u8>> { t.shards(2).iter().map(|p| fs::read(p).unwrap()).collect() };
    let before = contents();

    let other = common::command(with("3")).output().unwrap();
    assert_eq!(other.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&other.stderr);
    assert!(
        msg.contains("belongs to a run with") && msg.contains("-n 2"),
        "{msg}"
    );

    let noop = common::command(with("2")).output().unwrap();
    assert_eq!(noop.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&noop.stderr).contains("nothing to do"));
    assert_eq!(before, contents(), "outputs untouched");
    assert!(!t.shards(3)[2].exists());
}

#[test]
fn continuous_mode_restarts_skip_files_already_streamed_even_under_another_name() {
    let t = Setup::new(0, 0);
    let spool = t.out.join("spool");
    fs::create_dir(&spool).unwrap();
    for f in 0..3u64 {
        write_capture(&spool.join(format!("sensor-{f}.pcap")), f * 4000, 4000);
    }
    let pattern = format!("file:{}/shard-{{shard}}.pcap", t.out.display());
    let spool_arg = spool.display().to_string();
    let watch = [
        "--watch",
        &spool_arg,
        "--settle",
        "100ms",
        "--horizon",
        "200ms",
    ];
    let run_args = t.run_args(
        0,
        &[&["-n", "2", "-o", &pattern][..], &watch, &t.state()].concat(),
    );
    let mut run = start(&run_args);
    wait_stats(&mut run, &t.stats, "the spool", |v| packets(v) == 12_000);
    signal(&run, Signal::SIGTERM);
    assert!(run.wait().success());

    // A new file, and an old one again under another name.
    fs::copy(spool.join("sensor-0.pcap"), spool.join("sensor-9.pcap")).unwrap();
    write_capture(&spool.join("sensor-3.pcap"), 12_000, 4000);
    let _ = fs::remove_file(&t.stats);
    let mut run = start(&run_args);
    wait_stats(&mut run, &t.stats, "the new file", |v| packets(v) >= 4000);
    signal(&run, Signal::SIGTERM);
    assert!(run.wait().success());
    let all = tally(t.shards(2).iter().flat_map(|p| complete_numbers(p)));
    assert_eq!(duplicates(&all, 0..16_000), 0, "a file streamed twice");
}
