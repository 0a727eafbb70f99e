//! Reliable mode against a real redis-server: shardcap killed with SIGKILL in the middle of a file
//! loses no queued file, and the restarted run streams the file that was in flight.

mod common;
mod redis_support;

use std::io::Read;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use redis_support::*;

#[test]
fn kill_9_mid_file_then_restart_loses_nothing() {
    let redis = RedisServer::start();
    let first = corpus(SMALL[0]);
    let big = corpus(BIG);
    let rest = [corpus(SMALL[1]), corpus(SMALL[2])];
    let names: Vec<String> = [&first, &big, &rest[0], &rest[1]]
        .iter()
        .map(|p| name(p))
        .collect();
    redis.rpush("PCAPDJ_IN_QUEUE", &names);
    let _auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("shard.fifo");
    let common = [
        "run",
        "--auth",
        "redis",
        "--redis-mode",
        "reliable",
        "--order",
        "given",
        "--redis",
    ];

    // Run 1 feeds a FIFO whose reader stops partway into the big file, so shardcap is stuck
    // inside it (the big file is larger than the pipe and every shard buffer together).
    let mut args = common.to_vec();
    let url = redis.url();
    let fifo_spec = format!("fifo:{}", fifo.display());
    args.extend([url.as_str(), "-o", fifo_spec.as_str()]);
    let run1 = spawn(&args);
    wait_for("the FIFO", || fifo.exists().then_some(()));
    let mut reader = std::fs::File::open(&fifo).unwrap();
    let into_big = 24 + stream_bytes(&packets(&first)) + (1 << 20);
    let mut head = vec![0u8; into_big as usize];
    reader.read_exact(&mut head).unwrap();
    assert_eq!(
        redis.list("PCAPDJ_DONE"),
        [name(&first)],
        "the first file is done"
    );
    assert_eq!(
        redis.list("PCAPDJ_PROCESSING"),
        [name(&big)],
        "the big one in flight"
    );
    run1.signal(Signal::SIGKILL);
    run1.wait();
    drop(reader);
    assert_eq!(
        redis.list("PCAPDJ_PROCESSING"),
        [name(&big)],
        "kept for the next run"
    );
    assert_eq!(
        redis.list("PCAPDJ_IN_QUEUE"),
        names[2..],
        "the rest still queued"
    );

    // Run 2 takes the file in flight first, from its start, then the queue.
    let mut args = common.to_vec();
    let file_spec = format!("file:{}/out.pcap", dir.path().display());
    args.extend([url.as_str(), "-o", file_spec.as_str()]);
    let run2 = finish(spawn(&args));
    expect_exit(&run2, 0);
    let stderr = &run2.stderr;
    assert!(stderr.contains("left in PCAPDJ_PROCESSING"), "{stderr}");
    assert_eq!(redis.list("PCAPDJ_DONE"), names, "every file done once");
    assert!(redis.list("PCAPDJ_PROCESSING").is_empty());
    assert!(redis.list("PCAPDJ_IN_QUEUE").is_empty());
    assert!(
        redis.list("PCAPDJ_PROCESSED").is_empty(),
        "reliable mode records in DONE"
    );
    let want: Vec<PathBuf> = vec![big, rest[0].clone(), rest[1].clone()];
    assert_same_packets(
        &output(&dir.path().join("out.pcap")),
        &concat(&want),
        "run 2",
    );
}

/// With `--state`, a queued file whose content an earlier file of the journal streamed is not
/// streamed again, but it is still recorded as done and the run goes on to the next file.
#[test]
fn a_file_already_streamed_under_the_state_is_recorded_and_the_run_goes_on() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (first, last) = (corpus(SMALL[0]), corpus(SMALL[1]));
    let copy = dir.path().join("copy.pcap");
    std::fs::copy(&first, &copy).unwrap();
    let names: Vec<String> = [&first, &copy, &last].iter().map(|p| name(p)).collect();
    redis.rpush("PCAPDJ_IN_QUEUE", &names);
    let _auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = dir.path().join("out.pcap");
    let state = dir.path().join("state");
    let args = [
        "--redis-mode",
        "reliable",
        "--order",
        "given",
        "--state",
        state.to_str().unwrap(),
    ];
    let run = finish(dispatcher(&redis.url(), &out, &args));
    expect_exit(&run, 0);
    assert_eq!(
        redis.list("PCAPDJ_DONE"),
        names,
        "every file recorded, in order"
    );
    assert!(redis.list("PCAPDJ_PROCESSING").is_empty());
    assert!(redis.list("PCAPDJ_FAILED").is_empty());
    assert_same_packets(&output(&out), &concat(&[first, last]), "the copy not twice");
}
