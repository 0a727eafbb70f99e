//! The `pcapdir::` Zeek packet source (zeek-plugin/) with the real Zeek 8.2: a writer that
//! publishes segments seconds apart, with and without inotify (the plugin's test hook
//! SHARDCAP_PCAPDIR_NO_INOTIFY=1 stands for an exhausted inotify instance limit or NFS); an idle
//! Zeek on an open shard with a large connection table sleeps, and finishes its logs on SIGTERM
//! without an end marker; a damaged segment fails shardcap's run; shardcap stopped with SIGTERM
//! mid-stream leaves every Zeek's logs finished.

mod common;
mod ids_support;
mod spool_support;
mod zeek_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{
    corpus, finish, ipv4_frame, rec, stats, wait_until, write_pcap, ChildGuard, Endpoint, SYN,
};
use nix::sys::signal::Signal;
use shardcap::ids::zeek::{packets_seen, PACKETS_SCRIPT};
use shardcap::sink::spool;
use spool_support::{check, segments, spool_run};
use zeek_support::{ZeekInstall, ZeekLogs};

/// Zeek reading `shard` (a spool shard directory) through the plugin as shardcap's preset runs
/// it, logging to `log_dir`; `poll` disables inotify through the plugin's test hook.
fn zeek_on_spool(zeek: &ZeekInstall, shard: &Path, log_dir: &Path, poll: bool) -> ChildGuard {
    fs::create_dir_all(log_dir).unwrap();
    let mut cmd = zeek.command();
    cmd.arg("-C")
        .arg("-r")
        .arg(format!("pcapdir::{}", shard.display()))
        .args([
            "-e",
            PACKETS_SCRIPT,
            "LogAscii::use_json=T",
            "policy/protocols/conn/community-id-logging",
        ])
        .env("ZEEK_PLUGIN_PATH", zeek.plugin())
        .current_dir(log_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if poll {
        cmd.env("SHARDCAP_PCAPDIR_NO_INOTIFY", "1");
    }
    ChildGuard::start(&mut cmd)
}

/// A spool of `input` in one shard (`segment_size` segments, end marker written): its segment
/// files in order and its end marker.
fn prepared_spool(input: &Path, dir: &Path, segment_size: &str) -> (Vec<PathBuf>, PathBuf) {
    let root = dir.join("prepared");
    check(spool_run(
        &[input.to_path_buf()],
        1,
        &root,
        segment_size,
        100_000,
    ));
    let shard = spool::shard_dir(&root, 0);
    let segs = segments(&shard).iter().map(|s| shard.join(s)).collect();
    (segs, spool::end_marker(&root, 0))
}

/// Publishes `file` into the spool `root` as the contract says: written in `.tmp`, renamed to
/// `to`.
fn publish(root: &Path, file: &Path, to: &Path) {
    let tmp = root.join(".tmp");
    fs::create_dir_all(&tmp).unwrap();
    let staged = tmp.join(file.file_name().unwrap());
    fs::copy(file, &staged).unwrap();
    fs::rename(&staged, to).unwrap();
}

/// User and system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as f64
}

/// Waits for a Zeek started by [`zeek_on_spool`] and insists it exited 0.
fn expect_clean_exit(zeek: ChildGuard, what: &str) {
    let out = zeek.output();
    assert!(
        out.status.success(),
        "{what}: Zeek ended with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Segments published a second apart (each after Zeek took the one before): Zeek follows them,
/// with inotify and polling without it, and logs what one Zeek logs over the capture.
#[test]
fn a_slow_writer_is_followed_with_and_without_inotify() {
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("zeek/http-browse-bro-org.pcap");
    let reference_dir = dir.path().join("reference");
    zeek.once(&input, &reference_dir);
    let reference = ZeekLogs::read(&[reference_dir]);
    let (segs, end) = prepared_spool(&input, dir.path(), "128K");
    assert!(segs.len() >= 3, "{segs:?}");

    let follow = |poll: bool| {
        let root = dir.path().join(format!("live-poll-{poll}"));
        let shard = spool::shard_dir(&root, 0);
        fs::create_dir_all(&shard).unwrap();
        let log_dir = dir.path().join(format!("logs-poll-{poll}"));
        let z = zeek_on_spool(&zeek, &shard, &log_dir, poll);
        for seg in &segs {
            let to = shard.join(seg.file_name().unwrap());
            publish(&root, seg, &to);
            wait_until("Zeek to take the segment", || !to.exists());
            thread::sleep(Duration::from_secs(1)); // the slow writer
        }
        publish(&root, &end, &spool::end_marker(&root, 0));
        expect_clean_exit(z, &format!("poll={poll}"));
        (
            log_dir,
            packets_seen(&dir.path().join(format!("logs-poll-{poll}"))),
        )
    };
    let (with, without) = thread::scope(|s| {
        let a = s.spawn(|| follow(false));
        let b = s.spawn(|| follow(true));
        (a.join().unwrap(), b.join().unwrap())
    });
    let packets = common::read_capture(&input).recs().len() as u64;
    let mut differences = 0;
    for ((log_dir, seen), label) in [(with, "inotify"), (without, "polling")] {
        assert_eq!(seen.unwrap(), Some(packets), "{label}");
        differences += ZeekLogs::read(&[log_dir]).diff(&reference, label);
    }
    assert_eq!(differences, 0);
}

/// 20000 connection attempts, then nothing: Zeek holds them in its connection table with network
/// time frozen and timers pending. Idle on the open shard it uses (almost) no CPU, with inotify
/// and polling; SIGTERM without an end marker still gives complete logs.
#[test]
fn an_idle_zeek_on_an_open_shard_sleeps_and_finishes_its_logs_on_sigterm() {
    const CONNECTIONS: u32 = 20_000;
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("syns.pcap");
    let server = Endpoint {
        ip: [10, 9, 0, 1],
        port: 80,
    };
    let recs: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let client = Endpoint {
                ip: [10, 8, (i >> 8) as u8, i as u8],
                port: 1024 + (i % 50_000) as u16,
            };
            let frame = ipv4_frame(client, server, Some((SYN, i)), b"");
            rec(1_700_000_000_000_000_000 + u64::from(i) * 500_000, frame)
        })
        .collect();
    write_pcap(&input, 1, false, &recs);
    let (segs, _end) = prepared_spool(&input, dir.path(), "64M");
    assert_eq!(segs.len(), 1);

    let idle = |poll: bool| {
        let root = dir.path().join(format!("live-poll-{poll}"));
        let shard = spool::shard_dir(&root, 0);
        fs::create_dir_all(&shard).unwrap();
        let log_dir = dir.path().join(format!("logs-poll-{poll}"));
        let z = zeek_on_spool(&zeek, &shard, &log_dir, poll);
        let to = shard.join(segs[0].file_name().unwrap());
        publish(&root, &segs[0], &to);
        wait_until("Zeek to take the segment", || !to.exists());
        // The segment is removed once its last packet was handed over; let Zeek finish with it.
        thread::sleep(Duration::from_secs(1));
        let before = cpu_seconds(z.pid());
        thread::sleep(Duration::from_secs(3));
        let used = cpu_seconds(z.pid()) - before;
        z.signal(Signal::SIGTERM);
        expect_clean_exit(z, &format!("poll={poll}"));
        (used, log_dir)
    };
    let results = thread::scope(|s| {
        let a = s.spawn(|| idle(false));
        let b = s.spawn(|| idle(true));
        [a.join().unwrap(), b.join().unwrap()]
    });
    for ((used, log_dir), label) in results.into_iter().zip(["inotify", "polling"]) {
        eprintln!("{label}: an idle Zeek used {used:.3}s of CPU in 3s");
        assert!(
            used < 0.5,
            "{label}: an idle Zeek used {used:.2}s of CPU in 3s: it spins"
        );
        assert_eq!(
            packets_seen(&log_dir).unwrap(),
            Some(u64::from(CONNECTIONS)),
            "{label}"
        );
        let logs = ZeekLogs::read(&[log_dir]);
        assert_eq!(logs.count("conn"), CONNECTIONS as usize, "{label}");
    }
}

/// A segment cut short before Zeek reads it: Zeek reports it (reporter.log), writes the spool's
/// error marker and still finishes its logs; shardcap's run fails naming the segment.
#[test]
fn a_damaged_segment_fails_the_run() {
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    // A `zeek` first in PATH that waits for the whole spool, cuts segment 2, then runs Zeek.
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let wrapper = bin.join("zeek");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = --version ] && exec {real} \"$@\"\n\
             shard=${{3#pcapdir::}}\n\
             i=0\n\
             while [ ! -e \"$shard.end\" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n\
             truncate -s -5 \"$shard/000000000002.pcap\" || exit 99\n\
             exec {real} \"$@\"\n",
            real = zeek.bin.display()
        ),
    )
    .unwrap();
    check({
        let mut c = Command::new("chmod");
        c.arg("+x").arg(&wrapper);
        c
    });
    let root = dir.path().join("spool");
    let log_dir = dir.path().join("logs");
    let mut cmd = common::command([
        "run".as_ref(),
        "--ids".as_ref(),
        "zeek".as_ref(),
        "--zeek-plugin".as_ref(),
        zeek.plugin().as_os_str(),
        "-o".as_ref(),
        format!("dir:{}", root.display()).as_ref(),
        "--segment-size".as_ref(),
        "64K".as_ref(),
        "--spool-backlog".as_ref(),
        "1000".as_ref(),
        "--log-dir".as_ref(),
        log_dir.as_os_str(),
        corpus("zeek/http-browse-bro-org.pcap").as_os_str(),
    ]);
    zeek.apply(&mut cmd);
    let path = std::env::join_paths(
        [bin.clone(), zeek.bin.parent().unwrap().to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    cmd.env("PATH", path);
    let run = common::finished(cmd.stdin(Stdio::null()).output().unwrap());
    let seg = spool::shard_dir(&root, 0).join(spool::segment_name(2));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("found its input damaged")
            && run.stderr.contains(&seg.display().to_string()),
        "{}",
        run.stderr
    );
    let marker = fs::read_to_string(spool::error_marker(&root, 0)).unwrap();
    assert!(marker.contains("corrupt segment"), "{marker}");
    let shard_logs = log_dir.join("shard-0");
    let reporter = fs::read_to_string(shard_logs.join("reporter.log")).unwrap();
    assert!(reporter.contains("corrupt segment"), "{reporter}");
    assert!(
        ZeekLogs::read(std::slice::from_ref(&shard_logs)).count("conn") > 0,
        "the logs of what came before are written"
    );
    // The packets before the cut were processed, the rest not.
    let seen = packets_seen(&shard_logs).unwrap().unwrap();
    assert!(seen > 0 && seen < 751, "{seen}");
}

/// shardcap stopped with SIGTERM while it streams (paced): it ends every shard's stream, each
/// Zeek finishes its logs, having processed exactly what shardcap sent it.
#[test]
fn stopping_shardcap_mid_stream_lets_zeek_finish_its_logs() {
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let log_dir = dir.path().join("logs");
    let stats_file = dir.path().join("stats.json");
    let input = corpus("zeek/ssh-session.pcap");
    let plugin = zeek.plugin();
    let args: Vec<String> = [
        "run",
        "--ids",
        "zeek",
        "-n",
        "2",
        "--max-pps",
        "300",
        "--segment-age",
        "200ms",
        "--stats-interval",
        "100ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--zeek-plugin={}", plugin.display()),
        format!("-o=dir:{}", root.display()),
        format!("--log-dir={}", log_dir.display()),
        format!("--stats-file={}", stats_file.display()),
        input.display().to_string(),
    ])
    .collect();
    let mut cmd = common::command(&args);
    zeek.apply(&mut cmd);
    let child = ChildGuard::start(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    wait_until("300 packets streamed", || {
        fs::read(&stats_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["packets"].as_u64().unwrap_or(0) >= 300)
    });
    child.signal(Signal::SIGTERM);
    let run = finish(child);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let st = stats(&stats_file);
    let total = st["packets"].as_u64().unwrap();
    assert!(
        total < 1797,
        "stopped mid-stream, yet all {total} packets went out"
    );
    let mut seen_total = 0;
    for k in 0..2 {
        let shard_logs = log_dir.join(format!("shard-{k}"));
        let sent = st["shards"][k]["packets"].as_u64().unwrap();
        let seen = packets_seen(&shard_logs).unwrap();
        assert_eq!(seen, Some(sent), "shard {k}");
        seen_total += sent;
        assert!(
            sent == 0 || ZeekLogs::read(&[shard_logs]).count("conn") > 0,
            "shard {k}: no conn.log"
        );
    }
    assert_eq!(seen_total, total);
}
