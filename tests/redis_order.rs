//! `--order time` with files from Redis: the queued files are merged by packet time, and a file
//! queued later, within `--redis-window`, still takes its place in time.

mod common;
mod redis_support;

use std::path::PathBuf;

use redis_support::*;

fn run_time_order(redis: &RedisServer, window: &str, out: &std::path::Path) -> common::ChildGuard {
    let args = ["--order", "time", "--redis-window", window];
    dispatcher(&redis.url(), &out.join("s.pcap"), &args)
}

/// The files in order of their first packet.
fn by_time(mut files: Vec<PathBuf>) -> Vec<PathBuf> {
    files.sort_by_key(|p| packets(p)[0].ts_ns);
    files
}

#[test]
fn queued_files_are_merged_by_packet_time() {
    let redis = RedisServer::start();
    let files: Vec<PathBuf> = SMALL.iter().map(|f| corpus(f)).collect();
    let mut queued = by_time(files.clone());
    queued.reverse();
    let names: Vec<String> = queued.iter().map(|p| name(p)).collect();
    redis.rpush("PCAPDJ_IN_QUEUE", &names);
    let _auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tempfile::tempdir().unwrap();
    let run = finish(run_time_order(&redis, "0s", out.path()));
    expect_exit(&run, 0);
    let in_time = by_time(files);
    let want_names: Vec<String> = in_time.iter().map(|p| name(p)).collect();
    assert_eq!(
        redis.list("PCAPDJ_PROCESSED"),
        want_names,
        "finished in time order"
    );
    assert_same_packets(
        &output(&out.path().join("s.pcap")),
        &concat(&in_time),
        "output",
    );
}

#[test]
fn a_file_queued_within_the_window_takes_its_place_in_time() {
    let redis = RedisServer::start();
    let in_time = by_time(vec![corpus(SMALL[0]), corpus(SMALL[2])]);
    let (early, late) = (&in_time[0], &in_time[1]);
    redis.rpush("PCAPDJ_IN_QUEUE", &[name(late)]);
    let _auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tempfile::tempdir().unwrap();
    let run = run_time_order(&redis, "5s", out.path());
    wait_for("the first file to be taken", || {
        redis.list("PCAPDJ_IN_QUEUE").is_empty().then_some(())
    });
    redis.rpush("PCAPDJ_IN_QUEUE", &[name(early)]);
    let run = finish(run);
    expect_exit(&run, 0);
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), [name(early), name(late)]);
    assert_same_packets(
        &output(&out.path().join("s.pcap")),
        &concat(&in_time),
        "output",
    );
}
