//! `shardcap ctl` against a real redis-server: enqueue orders by first packet time, status in JSON,
//! requeue of failed files, authorization held while a condition fails.

mod common;
mod redis_support;

use std::path::PathBuf;
use std::time::Duration;

use redis_support::*;

fn ctl(redis: &RedisServer, args: &[&str]) -> common::Run {
    let url = redis.url();
    let mut all = vec!["ctl", "--redis", url.as_str()];
    all.extend_from_slice(args);
    finish(spawn(&all))
}

#[test]
fn enqueue_orders_by_first_packet_time_not_by_name() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // Names sort one way, first packets another.
    let links = [
        ("a.pcap", SMALL[2]),
        ("sub/b.pcap", SMALL[0]),
        ("c.cap", SMALL[3]),
        ("d.pcap", SMALL[1]),
    ];
    for (n, f) in links {
        std::os::unix::fs::symlink(corpus(f), dir.path().join(n)).unwrap();
    }
    std::fs::write(dir.path().join("README"), "not a capture").unwrap();
    let out = ctl(&redis, &["enqueue", dir.path().to_str().unwrap()]);
    expect_exit(&out, 0);
    let queued = redis.list("PCAPDJ_IN_QUEUE");
    assert_eq!(queued.len(), 4, "the non-capture is left out: {queued:?}");
    let first_ts = |p: &str| packets(&PathBuf::from(p))[0].ts_ns;
    let times: Vec<u64> = queued.iter().map(|p| first_ts(p)).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "by time: {queued:?}"
    );
    let mut by_name = queued.clone();
    by_name.sort();
    assert_ne!(
        by_name, queued,
        "the test files must not be in time order by name"
    );
    assert!(queued.iter().all(|p| p.starts_with('/')), "absolute paths");
}

#[test]
fn enqueue_with_a_time_range_queues_only_the_files_with_packets_in_it() {
    let redis = RedisServer::start();
    let files: Vec<PathBuf> = SMALL.iter().map(|f| corpus(f)).collect();
    let spans: Vec<(u64, u64)> = files
        .iter()
        .map(|f| {
            let p = packets(f);
            (p[0].ts_ns, p.iter().map(|r| r.ts_ns).max().unwrap())
        })
        .collect();
    let mut starts: Vec<u64> = spans.iter().map(|s| s.0).collect();
    starts.sort_unstable();
    // From the second file's first packet to just after the third's.
    let (since, until) = (starts[1], starts[2] + 1);
    let epoch = |ns: u64| format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
    let mut args = vec![
        "enqueue".to_string(),
        "--since".into(),
        epoch(since),
        "--until".into(),
        epoch(until),
    ];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ctl(&redis, &args);
    expect_exit(&out, 0);
    let queued = redis.list("PCAPDJ_IN_QUEUE");
    let expected: Vec<String> = (files.iter().zip(&spans))
        .filter(|(_, &(first, last))| first < until && last >= since)
        .map(|(f, _)| {
            std::path::absolute(f)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(expected.len() < files.len() && expected.len() >= 2);
    let mut sorted = queued.clone();
    sorted.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(sorted, want);
    assert!(
        out.stdout
            .contains("wholly outside the time range not queued"),
        "{}",
        out.stdout
    );
}

#[test]
fn status_json_and_requeue_failed() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    redis.rpush("PCAPDJ_IN_QUEUE", &["/q/1.pcap".into(), "/q/2.pcap".into()]);
    redis.rpush("PCAPDJ_NEXT", &["/q/0.pcap".into()]);
    redis.rpush("PCAPDJ_PROCESSED", &["/q/a.pcap".into()]);
    let failed = r#"{"file":"/q/bad.pcap","reason":"record length 9 exceeds","offset":5035}"#;
    redis.rpush("PCAPDJ_FAILED", &[failed.into(), "/q/bare.pcap".into()]);
    redis::cmd("SET")
        .arg("PCAPDJ_STATE")
        .arg("WAITING")
        .exec(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg("PCAPDJ_AUTH")
        .arg("/q/old.pcap")
        .exec(&mut con)
        .unwrap();

    let out = ctl(&redis, &["status", "--json"]);
    expect_exit(&out, 0);
    let s: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["state"], "WAITING");
    assert_eq!(s["queued"], 2);
    assert_eq!(s["next"], serde_json::json!(["/q/0.pcap"]));
    assert_eq!(
        s["authorized"],
        serde_json::json!(["/q/old.pcap"]),
        "the SET form is read too"
    );
    assert_eq!(s["processed"], 1);
    assert_eq!(s["failed"][0]["file"], "/q/bad.pcap");
    assert_eq!(s["failed"][0]["offset"], 5035);
    assert_eq!(s["failed"][1]["file"], "/q/bare.pcap");

    let out = ctl(&redis, &["requeue-failed"]);
    expect_exit(&out, 0);
    assert_eq!(
        redis.list("PCAPDJ_IN_QUEUE"),
        ["/q/1.pcap", "/q/2.pcap", "/q/bad.pcap", "/q/bare.pcap"]
    );
    assert!(redis.list("PCAPDJ_FAILED").is_empty());
}

#[test]
fn authorize_holds_while_a_condition_fails() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    redis.rpush("PCAPDJ_NEXT", &["/q/1.pcap".into()]);
    redis::cmd("SADD")
        .arg("PCAPDJ_ACTIVE")
        .arg("/q/0.pcap")
        .exec(&mut con)
        .unwrap();
    let url = redis.url();
    let auth_members = |con: &mut redis::Connection| -> Vec<String> {
        redis::cmd("SMEMBERS")
            .arg("PCAPDJ_AUTH")
            .query(con)
            .unwrap()
    };

    // Not enough disk: nothing is authorized, the announcement stays where it is.
    let disk = spawn(&[
        "ctl",
        "--redis",
        &url,
        "authorize",
        "--min-free-disk",
        "100000T",
        "--path",
        "/",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(auth_members(&mut con).is_empty());
    assert_eq!(redis.list("PCAPDJ_NEXT"), ["/q/1.pcap"]);
    drop(disk);

    // One file in flight, at most one allowed: held until it finishes.
    let once = spawn(&["ctl", "--redis", &url, "authorize", "--max-in-flight", "1"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(auth_members(&mut con).is_empty());
    redis::cmd("SREM")
        .arg("PCAPDJ_ACTIVE")
        .arg("/q/0.pcap")
        .exec(&mut con)
        .unwrap();
    let out = finish(once);
    expect_exit(&out, 0);
    assert_eq!(out.stdout.trim(), "authorized /q/1.pcap");
    assert_eq!(auth_members(&mut con), ["/q/1.pcap"]);
    assert!(redis.list("PCAPDJ_NEXT").is_empty());
}
