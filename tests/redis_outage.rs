//! Redis trouble against a real redis-server: killed and restarted mid-run (with persistence, so
//! the queue survives as it would in production) loses no file; refused credentials at start are
//! exit 2; a password and TLS (rediss://) work.

mod common;
mod redis_support;

use std::path::PathBuf;
use std::time::Duration;

use redis_support::*;

#[test]
fn redis_killed_and_restarted_mid_run_loses_nothing() {
    let mut redis = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let files: Vec<PathBuf> = SMALL.iter().map(|f| corpus(f)).collect();
    let names: Vec<String> = files.iter().map(|p| name(p)).collect();
    let (out, run) = dispatch_in_order(&redis, &names);
    let announced = |redis: &RedisServer, n: &str| {
        wait_for("an announcement", || {
            (redis.list("PCAPDJ_NEXT") == [n]).then_some(())
        })
    };
    let grant = |redis: &RedisServer, n: &str| {
        let mut c = redis.con();
        redis::cmd("LPOP").arg("PCAPDJ_NEXT").exec(&mut c).unwrap();
        redis::cmd("SADD")
            .arg("PCAPDJ_AUTH")
            .arg(n)
            .exec(&mut c)
            .unwrap();
    };
    for (i, n) in names.iter().enumerate() {
        announced(&redis, n);
        if i == 1 {
            // Down while shardcap waits for this authorization, long enough for several retries.
            redis.outage(Duration::from_millis(1500));
        }
        grant(&redis, n);
        if i == 2 {
            // Down right after an authorization: shardcap streams the file, then records it and
            // takes the next one meanwhile.
            redis.outage(Duration::from_millis(800));
        }
    }

    let run = finish(run);
    expect_exit(&run, 0);
    let stderr = &run.stderr;
    assert!(
        stderr.contains("unreachable"),
        "the outage is logged: {stderr}"
    );
    assert!(
        stderr.contains("is back"),
        "the recovery is logged: {stderr}"
    );
    assert_eq!(
        redis.list("PCAPDJ_PROCESSED"),
        names,
        "every file once, in order"
    );
    assert_eq!(redis.get("PCAPDJ_STATE").as_deref(), Some("DONE"));
    assert!(redis.list("PCAPDJ_IN_QUEUE").is_empty());
    assert_same_packets(
        &output(&out.path().join("s.pcap")),
        &concat(&files),
        "output",
    );
}

#[test]
fn refused_credentials_at_start_are_exit_2_and_a_password_works() {
    let redis = RedisServer::start_with_password("s3cret", &[]);
    let wrong = format!("redis://:nope@127.0.0.1:{}", redis.port);
    let run = finish(spawn(&[
        "run",
        "--auth",
        "redis",
        "--redis",
        &wrong,
        "-o",
        "file:/tmp/never-{shard}.pcap",
    ]));
    expect_exit(&run, 2);
    let stderr = &run.stderr;
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(
        !stderr.contains("nope"),
        "the password is not shown: {stderr}"
    );
    let none = format!("redis://127.0.0.1:{}", redis.port);
    let status = finish(spawn(&["ctl", "--redis", &none, "status"]));
    expect_exit(&status, 2);

    let file = corpus(SMALL[0]);
    let out = finish(spawn(&[
        "ctl",
        "--redis",
        &redis.url(),
        "enqueue",
        file.to_str().unwrap(),
    ]));
    expect_exit(&out, 0);
    assert_eq!(redis.list("PCAPDJ_IN_QUEUE"), [name(&file)]);
}

#[test]
fn tls_with_a_password() {
    let tls = TlsRedis::start("pw");
    let redis = &tls.server;
    let url = format!("rediss://:pw@127.0.0.1:{}", tls.tls_port);
    let ca = tls.ca.clone();
    let capture = corpus(SMALL[0]);
    let enqueue = finish(spawn(&[
        "ctl",
        "--redis",
        &url,
        "--redis-ca",
        &ca,
        "enqueue",
        capture.to_str().unwrap(),
    ]));
    expect_exit(&enqueue, 0);
    assert!(enqueue.stdout.contains("queued 1 files"));
    assert_eq!(redis.list("PCAPDJ_IN_QUEUE"), [name(&capture)]);

    let out = tempfile::tempdir().unwrap();
    let run = dispatcher(
        &url,
        &out.path().join("s.pcap"),
        &["--redis-ca", &ca, "--redis-window", "0s"],
    );
    let ctl = finish(spawn(&[
        "ctl",
        "--redis",
        &url,
        "--redis-ca",
        &ca,
        "authorize",
    ]));
    expect_exit(&ctl, 0);
    let run = finish(run);
    expect_exit(&run, 0);
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), [name(&capture)]);
    assert_same_packets(
        &output(&out.path().join("s.pcap")),
        &packets(&capture),
        "output",
    );

    // Without the CA, the server's certificate is refused: a clear runtime error, not a hang.
    let refused = finish(spawn(&["ctl", "--redis", &url, "status"]));
    expect_exit(&refused, 1);
}
