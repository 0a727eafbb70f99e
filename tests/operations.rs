//! Running shardcap as a service: special files refused without blocking (queue, command line),
//! `--allow-root` and the reasons a queue writer gets, secrets kept out of everything shardcap
//! writes and out of its command line, and the Prometheus metrics (checked by promtool) — against
//! a real redis-server and the Elasticsearch stand-in.

mod common;
mod redis_support;
mod ship_support;

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use redis_support::{
    assert_same_packets, corpus, dispatch_in_order, expect_exit, finish, name, output, packets,
    Authorizer, RedisServer, SMALL,
};
use ship_support::{Kind, Proc, Server};

/// The FAILED records as (file, reason).
fn failed(redis: &RedisServer) -> Vec<(String, String)> {
    redis
        .list("PCAPDJ_FAILED")
        .iter()
        .map(|s| {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            (
                v["file"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
fn queued_fifo_device_and_directory_are_refused_at_once() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("capture.pcap");
    mkfifo(&fifo);
    let dir = tmp.path().join("dir.pcap");
    fs::create_dir(&dir).unwrap();
    let good = corpus(SMALL[0]);
    let queue = [
        name(&fifo),
        "/dev/zero".to_string(),
        name(&dir),
        name(&good),
    ];
    let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let started = Instant::now();
    let (out, run) = dispatch_in_order(&redis, &queue);
    redis_support::wait_for("the three refusals in FAILED", || {
        (failed(&redis).len() == 3).then_some(())
    });
    // Opening any of them for reading the usual way blocks for ever (FIFO) or never ends (device):
    // refused from their metadata, they are done with before the dispatcher's first second.
    let refused_after = started.elapsed();
    let run = finish(run);
    expect_exit(&run, 3);
    assert!(
        refused_after < Duration::from_secs(10),
        "refusals took {refused_after:?}"
    );
    assert_eq!(auth.stop(), [name(&good)], "only the capture is announced");
    let f = failed(&redis);
    let files: Vec<&str> = f.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(files, queue[..3]);
    for ((_, reason), kind) in f.iter().zip(["a FIFO", "a device", "a directory"]) {
        assert!(
            reason.contains(kind) && reason.contains("not a regular file"),
            "{reason}"
        );
    }
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), [name(&good)]);
    assert_same_packets(
        &output(&out.path().join("s.pcap")),
        &packets(&good),
        "output",
    );
}

#[test]
fn special_files_on_the_command_line_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("a.pcap");
    mkfifo(&fifo);
    let good = corpus(SMALL[1]);
    let out = tmp.path().join("s.pcap");
    let spec = format!("file:{}", out.display());
    let run = finish(common::spawn(&[
        "run",
        "-o",
        &spec,
        fifo.to_str().unwrap(),
        "/dev/null",
        good.to_str().unwrap(),
    ]));
    expect_exit(&run, 3);
    assert!(
        run.stderr.contains("a FIFO, not a regular file"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("a device, not a regular file"),
        "{}",
        run.stderr
    );
    assert_same_packets(&output(&out), &packets(&good), "output");
    let scan = finish(common::spawn(&["scan", fifo.to_str().unwrap()]));
    assert!(
        scan.stdout.contains("a FIFO, not a regular file"),
        "{}",
        scan.stdout
    );
}

#[test]
fn a_fifo_in_a_watched_spool_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    fs::create_dir(&spool).unwrap();
    mkfifo(&spool.join("early.pcap"));
    let out = tmp.path().join("s.pcap");
    let spec = format!("file:{}", out.display());
    let stats = tmp.path().join("stats.json");
    let mut run = common::spawn(&[
        "run",
        "--watch",
        spool.to_str().unwrap(),
        "--settle",
        "0",
        "--horizon",
        "0",
        "--stats-file",
        stats.to_str().unwrap(),
        "--stats-interval",
        "50ms",
        "-o",
        &spec,
    ]);
    let stderr = redis_support::watch_stderr(&mut run);
    redis_support::wait_for("the refusal of the FIFO present at start", || {
        stderr
            .lock()
            .unwrap()
            .contains("early.pcap: a FIFO")
            .then_some(())
    });
    mkfifo(&spool.join("late.pcap"));
    let good = corpus(SMALL[2]);
    fs::copy(&good, tmp.path().join("t")).unwrap();
    fs::rename(tmp.path().join("t"), spool.join("good.pcap")).unwrap();
    redis_support::wait_for("the capture behind the FIFOs streamed", || {
        let done = stats.exists() && common::stats(&stats)["files_done"] == 1;
        (done && stderr.lock().unwrap().contains("late.pcap: a FIFO")).then_some(())
    });
    run.signal(Signal::SIGTERM);
    assert!(run.wait().code().is_some(), "ended by its stop signal");
    assert_same_packets(&output(&out), &packets(&good), "output");
}

#[test]
fn allow_root_refuses_other_paths_without_telling_which_exist() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    let good = root.join("good.pcap");
    fs::copy(corpus(SMALL[0]), &good).unwrap();
    let notes = root.join("notes.pcap");
    fs::write(&notes, "not a capture\n").unwrap();
    let secret = outside.join("secret.pcap");
    fs::copy(corpus(SMALL[1]), &secret).unwrap();
    let link = root.join("link.pcap");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let outside_paths = [
        name(&secret),
        name(&outside.join("missing.pcap")),
        "/etc/passwd".to_string(),
        format!("{}/../outside/secret.pcap", root.display()),
        name(&link),
    ];
    let inside_missing = root.join("missing.pcap");
    let mut queue = outside_paths.to_vec();
    queue.extend([name(&inside_missing), name(&notes), name(&good)]);
    redis.rpush("PCAPDJ_IN_QUEUE", &queue);
    let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tmp.path().join("s.pcap");
    let run = finish(redis_support::dispatcher(
        &redis.url(),
        &out,
        &["--order", "given", "--allow-root", root.to_str().unwrap()],
    ));
    expect_exit(&run, 3);
    assert_eq!(
        auth.stop(),
        [name(&good)],
        "only the capture under the root is announced"
    );
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), [name(&good)]);
    let f = failed(&redis);
    let files: Vec<&str> = f.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(files, queue[..7]);
    let outside_reasons: HashSet<&str> = f[..5].iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        outside_reasons.len(),
        1,
        "one reason for every path outside, existing or not: {outside_reasons:?}"
    );
    assert!(f[0].1.contains("--allow-root"), "{}", f[0].1);
    let missing = &f[5].1;
    assert!(
        !missing.contains("No such file") && !missing.contains("os error"),
        "the reason for a path under the root tells nothing more than that it cannot be read: {missing}"
    );
    assert!(f[6].1.contains("not a pcap"), "{}", f[6].1);
    assert!(
        run.stderr.contains("missing.pcap: No such file"),
        "the local log has the detail:\n{}",
        run.stderr
    );
    assert_same_packets(&output(&out), &packets(&good), "output");
}

/// Extra arguments and environment of one way to give a secret.
type Variant<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>);

/// The secret used by the secret tests, unlike anything else shardcap writes.
const SECRET: &str = "Zq7-secret-9f3Kx";

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Asserts that no file under `dir` and none of `texts` holds [`SECRET`].
fn assert_secret_absent(dir: &Path, texts: &[(&str, &str)]) {
    let files = files_under(dir);
    assert!(
        !files.is_empty(),
        "shardcap wrote files under {}",
        dir.display()
    );
    for f in files {
        let bytes = fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{} holds the secret",
            f.display()
        );
    }
    for (what, text) in texts {
        assert!(!text.contains(SECRET), "{what} holds the secret:\n{text}");
    }
}

fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// `shardcap ARGS` with the environment `env`, stdout and stderr piped.
fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> common::ChildGuard {
    let mut cmd = common::command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::ChildGuard::start(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

/// Text of a scrape of `http://addr/metrics`.
fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// A sample's value in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Runs `promtool check metrics` on `text`, insisting it passes.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool is needed (Debian package prometheus; scripts/ci/install-deps installs it)",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_from_environment_and_files_appear_nowhere() {
    let es = Server::start(Kind::Noida);
    let tmp = tempfile::tempdir().unwrap();
    let secret_file = tmp.path().join("secret");
    fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let secret_file = secret_file.to_str().unwrap().to_string();
    let written = tmp.path().join("written");
    fs::create_dir(&written).unwrap();

    // ship: the password by environment, then by file, then an API key by file.
    let logs = written.join("logs");
    fs::create_dir(&logs).unwrap();
    for f in ["conn.log", "dns.log"] {
        fs::copy(Path::new("tests/data/ship/zeek-json").join(f), logs.join(f)).unwrap();
    }
    let variants: [Variant; 3] = [
        (
            &["--es-user", "elastic"],
            vec![("SHARDCAP_ES_PASSWORD", SECRET)],
        ),
        (
            &["--es-user", "elastic", "--es-password-file", &secret_file],
            vec![],
        ),
        (&["--es-api-key-file", &secret_file], vec![]),
    ];
    for (i, (extra, env)) in variants.iter().enumerate() {
        let state = written.join(format!("ship-state-{i}"));
        let stats = written.join(format!("ship-stats-{i}.json"));
        let port = common::free_port().to_string();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "-vv",
            "ship",
            "--follow",
            "--es",
            &es.url,
            "--state",
            state.to_str().unwrap(),
            "--stats-file",
            stats.to_str().unwrap(),
            "--stats-interval",
            "100ms",
            "--metrics-listen",
            &listen,
            "--index-prefix",
        ];
        let prefix = format!("v{i}-");
        args.push(&prefix);
        args.extend_from_slice(extra);
        args.push(logs.to_str().unwrap());
        let child = spawn_with_env(&args, env);
        let cmd = cmdline(child.pid());
        assert!(cmd.contains("ship"), "{cmd}");
        assert!(
            !cmd.contains(SECRET),
            "the command line holds the secret: {cmd}"
        );
        let lines = fs::read_to_string(logs.join("conn.log"))
            .unwrap()
            .lines()
            .count()
            + fs::read_to_string(logs.join("dns.log"))
                .unwrap()
                .lines()
                .count();
        let metrics = redis_support::wait_for("every record shipped, in the metrics", || {
            let text = scrape(&listen)?;
            let n = sample(&text, "shardcap_ship_records_total{result=\"indexed\"}")?;
            (n as usize >= lines).then_some(text)
        });
        promtool_check(&metrics);
        child.signal(Signal::SIGTERM);
        let run = finish(child);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_secret_absent(
            &written,
            &[
                ("stderr", &run.stderr),
                ("stdout", &run.stdout),
                ("metrics", &metrics),
            ],
        );
        let checkpoints = state.join("checkpoints.json");
        let mode = fs::metadata(&checkpoints).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{}: owner only", checkpoints.display());
    }

    // A Redis-fed run shipping its log directory: Redis' password by environment, by file, and
    // in a URL taken from the environment; the Elasticsearch password by environment.
    let redis = RedisServer::start_with_password(SECRET, &[]);
    let plain_url = format!("redis://127.0.0.1:{}", redis.port);
    let full_url = redis.url();
    let variants: [Variant; 3] = [
        (
            &["--redis", &plain_url],
            vec![("SHARDCAP_REDIS_PASSWORD", SECRET)],
        ),
        (
            &["--redis", &plain_url, "--redis-password-file", &secret_file],
            vec![],
        ),
        (&[], vec![("SHARDCAP_REDIS_URL", full_url.as_str())]),
    ];
    let good = corpus(SMALL[0]);
    for (i, (extra, env)) in variants.iter().enumerate() {
        redis.rpush("PCAPDJ_IN_QUEUE", &[name(&good)]);
        let out = written.join(format!("s-{i}.pcap"));
        let spec = format!("file:{}", out.display());
        let state = written.join(format!("run-state-{i}"));
        let stats = written.join(format!("run-stats-{i}.json"));
        let log_dir = written.join(format!("run-logs-{i}"));
        let listen = format!("127.0.0.1:{}", common::free_port());
        let mut args = vec![
            "-vv",
            "run",
            "--auth",
            "redis",
            "--order",
            "given",
            "-o",
            &spec,
            "--state",
            state.to_str().unwrap(),
            "--stats-file",
            stats.to_str().unwrap(),
            "--metrics-listen",
            &listen,
            "--log-dir",
            log_dir.to_str().unwrap(),
            "--ship",
            &es.url,
            "--es-user",
            "elastic",
        ];
        args.extend_from_slice(extra);
        let mut env = env.clone();
        env.push(("SHARDCAP_ES_PASSWORD", SECRET));
        fs::create_dir_all(&log_dir).unwrap();
        let child = spawn_with_env(&args, &env);
        let cmd = cmdline(child.pid());
        assert!(cmd.contains("run"), "{cmd}");
        assert!(
            !cmd.contains(SECRET),
            "the command line holds the secret: {cmd}"
        );
        // The file waits for its authorization: Redis answered with the password given apart.
        let metrics = redis_support::wait_for("the file announced, in the metrics", || {
            let text = scrape(&listen)?;
            (sample(&text, "shardcap_state{state=\"waiting\"}")? == 1.0).then_some(text)
        });
        assert_eq!(
            sample(&metrics, "shardcap_redis_up"),
            Some(1.0),
            "{metrics}"
        );
        promtool_check(&metrics);
        let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
        let run = finish(child);
        auth.stop();
        expect_exit(&run, 0);
        assert_same_packets(&output(&out), &packets(&good), "output");
        assert_secret_absent(
            &written,
            &[
                ("stderr", &run.stderr),
                ("stdout", &run.stdout),
                ("metrics", &metrics),
            ],
        );
        for f in files_under(&state) {
            let mode = fs::metadata(&f).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}: owner only", f.display());
        }
    }

    // ctl with the password by environment; a wrong one is refused without being shown.
    let status = {
        let child = spawn_with_env(
            &["ctl", "--redis", &plain_url, "status"],
            &[("SHARDCAP_REDIS_PASSWORD", SECRET)],
        );
        finish(child)
    };
    expect_exit(&status, 0);
    let wrong = format!("{SECRET}-wrong");
    let refused = finish(spawn_with_env(
        &["ctl", "--redis", &plain_url, "status"],
        &[("SHARDCAP_REDIS_PASSWORD", &wrong)],
    ));
    expect_exit(&refused, 2);
    assert!(
        refused.stderr.contains("authentication"),
        "{}",
        refused.stderr
    );
    assert_secret_absent(
        &written,
        &[
            ("ctl status", &status.stdout),
            ("ctl status stderr", &status.stderr),
            ("ctl refused", &refused.stderr),
        ],
    );
}

#[test]
fn metrics_move_during_a_run_and_pass_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", common::free_port());
    let spec = format!("file:{}/s-{{shard}}.pcap", tmp.path().display());
    let big = common::corpus(redis_support::BIG);
    let child = common::spawn(&[
        "run",
        "-n",
        "2",
        "-o",
        &spec,
        "--max-pps",
        "20000",
        "--metrics-listen",
        &listen,
        big.to_str().unwrap(),
    ]);
    let first = redis_support::wait_for("packets in the metrics", || {
        let text = scrape(&listen)?;
        (sample(&text, "shardcap_packets_total")? > 0.0).then_some(text)
    });
    promtool_check(&first);
    let before = sample(&first, "shardcap_packets_total").unwrap();
    let later = redis_support::wait_for("the packet count to move", || {
        let text = scrape(&listen)?;
        (sample(&text, "shardcap_packets_total")? > before).then_some(text)
    });
    promtool_check(&later);
    for series in [
        "shardcap_build_info{version=\"",
        "shardcap_shard_packets_total{shard=\"1\"}",
        "shardcap_shard_blocked_seconds_total{shard=\"0\"}",
        "shardcap_files_total{outcome=\"streamed\"}",
        "shardcap_flow_packets_total{stage=\"fragment\"}",
        "shardcap_reorder_packets_total{result=\"repaired\"}",
        "shardcap_out_of_order_packets_total",
        "shardcap_state{state=\"running\"} 1",
    ] {
        assert!(later.contains(series), "{series} missing:\n{later}");
    }
    let shards: f64 = (0..2)
        .map(|k| {
            sample(
                &later,
                &format!("shardcap_shard_packets_total{{shard=\"{k}\"}}"),
            )
            .unwrap()
        })
        .sum();
    assert!(shards >= before, "the shards' packets add up to the total");
    let run = finish(child);
    expect_exit(&run, 0);
}

/// Ship's metrics without Elasticsearch (the NDJSON output): records, lag and requests.
#[test]
fn ship_metrics_pass_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", common::free_port());
    let out = tmp.path().join("bulk.ndjson");
    let mut child = Proc::spawn(common::command([
        "ship",
        "--follow",
        "--out",
        out.to_str().unwrap(),
        "--metrics-listen",
        &listen,
        "tests/data/ship/zeek-json",
    ]));
    let text = redis_support::wait_for("records in the metrics", || {
        let text = scrape(&listen)?;
        (sample(&text, "shardcap_ship_records_total{result=\"indexed\"}")? > 0.0).then_some(text)
    });
    promtool_check(&text);
    for series in [
        "shardcap_ship_lag_bytes",
        "shardcap_ship_retries_total",
        "shardcap_ship_records_total{result=\"dead_lettered\"}",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    child.terminate(Signal::SIGTERM);
}
