//! Supervision of `--exec` consumers with real processes: packets conserved through the FIFOs, a
//! consumer that dies mid-stream fails the run naming its shard and exit status, and
//! `--ids-restart` resumes a dead consumer's shard at a file boundary with a fresh header.

mod common;
mod ids_support;

use std::path::{Path, PathBuf};

use common::{corpus, read_capture, read_stream, same_packets, shardcap, Rec, Run};
use ids_support::{expect_success, shard_dirs, split_by_time};

fn run_exec(cmd: &str, n: usize, log_dir: &Path, inputs: &[PathBuf], extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "run".into(),
        "-n".into(),
        n.to_string(),
        "--exec".into(),
        cmd.into(),
        "--log-dir".into(),
        log_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    shardcap(&args)
}

/// The packets of an input capture.
fn input_packets(path: &Path) -> Vec<Rec> {
    read_capture(path).recs()
}

/// The packets of a stream a consumer copied (read strictly: one header, whole records).
fn stream_packets(path: &Path) -> Vec<Rec> {
    read_stream(path).unwrap_or_else(|e| panic!("{e}")).packets
}

#[test]
fn exec_consumers_receive_every_packet_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("pcapplusplus/realistic-mixed-http-dns-2013.pcap");
    let log_dir = dir.path().join("logs");
    let run = run_exec(
        "cat {input} > {logdir}/out.pcap",
        3,
        &log_dir,
        std::slice::from_ref(&input),
        &[],
    );
    expect_success(&run, "--exec cat");
    let mut got = Vec::new();
    for d in shard_dirs(&log_dir, 3) {
        let shard = stream_packets(&d.join("out.pcap"));
        assert!(!shard.is_empty(), "{}: no packets", d.display());
        got.extend(shard);
    }
    same_packets(input_packets(&input), got).unwrap();
}

#[test]
fn a_consumer_dying_mid_stream_fails_the_run_naming_shard_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("zeek/echo-connections-82k-packets.pcap");
    let log_dir = dir.path().join("logs");
    let run = run_exec(
        r#"sh -c "head -c 100000 {input} >/dev/null; exit 7""#,
        2,
        &log_dir,
        &[input],
        &[],
    );
    let stderr = &run.stderr;
    eprintln!("{stderr}");
    assert_eq!(run.code, 1, "exit code; stderr:\n{stderr}");
    let named = (0..2).any(|k| {
        stderr.contains(&format!("shard {k}: exec (pid "))
            && stderr.contains("ended while streaming with exit status 7")
    });
    assert!(
        named,
        "the error names the shard and its exit status:\n{stderr}"
    );
}

#[test]
fn ids_restart_resumes_the_shard_at_a_file_boundary_with_a_fresh_header() {
    let dir = tempfile::tempdir().unwrap();
    // Many files: however late the death is noticed, a later file boundary remains to resume at.
    let parts = split_by_time(
        &corpus("zeek/echo-connections-82k-packets.pcap"),
        40,
        dir.path(),
    );
    let log_dir = dir.path().join("logs");
    let marker = dir.path().join("died-once");
    // The first instance reads a little, holds its FIFO full for a moment (shardcap waits on it),
    // and dies; the restarted one copies its stream.
    let cmd = format!(
        "if [ -e {m} ]; then cat {{input}} > {{logdir}}/out.pcap; \
         else touch {m}; exec 3<{{input}}; head -c 50000 <&3 > /dev/null; sleep 0.3; exit 9; fi",
        m = marker.display()
    );
    let run = run_exec(&cmd, 1, &log_dir, &parts, &["--ids-restart"]);
    let stderr = &run.stderr;
    eprintln!("{stderr}");
    assert_eq!(run.code, 3, "packets were lost: exit 3\n{stderr}");
    assert!(stderr.contains("exit status 9"), "{stderr}");
    let lost: u64 = stderr
        .split("resumed at a file boundary with a fresh header; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no loss report:\n{stderr}"));

    // The restarted consumer got one whole pcap stream (read strictly: one header, whole records)
    // holding exactly the packets of the input files from some boundary on.
    let resumed = stream_packets(&log_dir.join("shard-0/out.pcap"));
    let per_file: Vec<Vec<Rec>> = parts.iter().map(|p| input_packets(p)).collect();
    let total: usize = per_file.iter().map(Vec::len).sum();
    let boundary = (1..per_file.len())
        .find(|&j| per_file[j..].iter().map(Vec::len).sum::<usize>() == resumed.len())
        .unwrap_or_else(|| panic!("{} packets do not start at a file boundary", resumed.len()));
    let tail: Vec<Rec> = per_file[boundary..].concat();
    assert!(
        resumed == tail,
        "the resumed stream is not files {boundary}.. in order"
    );
    let before = total - resumed.len();
    assert!(
        lost > 0 && lost as usize <= before,
        "reported {lost} lost; {before} packets came before the boundary"
    );
    // The dead instance's console log was kept aside.
    assert!(log_dir.join("shard-0/run-1/console.log").exists());
}

#[test]
fn consumer_options_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("pcapplusplus/tcp-three-http-streams.pcap");
    let input = input.to_str().unwrap();
    let logs = dir.path().join("logs");
    let logs = logs.to_str().unwrap();
    let usage = |args: &[&str], says: &str| {
        let run = shardcap(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    };
    usage(
        &[
            "run",
            "--ids",
            "suricata",
            "--rules",
            "/nonexistent.rules",
            "--log-dir",
            logs,
            input,
        ],
        "--rules /nonexistent.rules: no such file",
    );
    usage(
        &["run", "--rules", "x.rules", "-o", "stdout", input],
        "--rules applies to consumers",
    );
    usage(
        &["run", "--exec", "cat", "--rules", "x.rules", input],
        "--rules applies to --ids suricata",
    );
    usage(
        &[
            "run",
            "--exec",
            "cat",
            "-o",
            "file:/tmp/x-{shard}",
            "--log-dir",
            logs,
            input,
        ],
        "consumers (--ids, --exec) read fifo: outputs or dir: spools",
    );
    usage(&["run", input], "no -o given");
    // A shard log directory with an earlier run's logs is not mixed into.
    std::fs::create_dir_all(dir.path().join("logs/shard-0")).unwrap();
    std::fs::write(dir.path().join("logs/shard-0/eve.json"), "{}\n").unwrap();
    usage(
        &["run", "--exec", "cat", "--log-dir", logs, input],
        "already holds logs",
    );
    // Zeek cannot be installed on these machines: --ids zeek says so clearly.
    let zeek_missing = std::process::Command::new("zeek")
        .arg("--version")
        .output()
        .is_err();
    if zeek_missing {
        usage(
            &["run", "--ids", "zeek", "--log-dir", logs, input],
            "is Zeek installed?",
        );
    }
}

#[test]
fn a_shard_without_packets_starts_no_consumer() {
    let dir = tempfile::tempdir().unwrap();
    // FTP control and data between one host pair: one shard under the default key.
    let input = corpus("suricata-verify/bug-4877/input.pcap");
    let log_dir = dir.path().join("logs");
    let run = run_exec(
        "cat {input} > {logdir}/out.pcap",
        4,
        &log_dir,
        std::slice::from_ref(&input),
        &["-v"],
    );
    expect_success(&run, "--exec cat, 4 shards, one host pair");
    let mut started = Vec::new();
    let mut got = Vec::new();
    for (k, d) in shard_dirs(&log_dir, 4).iter().enumerate() {
        if d.join("console.log").exists() {
            started.push(k);
            got.extend(stream_packets(&d.join("out.pcap")));
        } else {
            assert!(!d.join("out.pcap").exists(), "{}", d.display());
        }
    }
    assert_eq!(started.len(), 1, "consumers started: {started:?}");
    same_packets(input_packets(&input), got).unwrap();
    assert!(
        run.stderr
            .contains("3 of 4 shards got no packets and started no consumer"),
        "{}",
        run.stderr
    );
}

#[test]
fn exec_commands_run_in_the_directory_shardcap_was_started_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("copies")).unwrap();
    let input = corpus("pcapplusplus/realistic-mixed-http-dns-2013.pcap");
    let out = common::command([
        "run",
        "-n",
        "2",
        "--log-dir",
        "logs",
        "--exec",
        "cat {input} > copies/shard-{shard}.pcap",
        &input.display().to_string(),
    ])
    .current_dir(dir.path())
    .output()
    .unwrap();
    let run = common::finished(out);
    expect_success(&run, "--exec with a relative path");
    let mut got = Vec::new();
    for k in 0..2 {
        let copy = dir.path().join(format!("copies/shard-{k}.pcap"));
        if copy.exists() {
            got.extend(stream_packets(&copy));
        }
    }
    same_packets(input_packets(&input), got).unwrap();
}
