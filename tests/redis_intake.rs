//! The Redis intake on its own, through the `Intake` trait as the dispatcher drives it, against a
//! real redis-server: which files it takes and when, pcapdj's authorization handshake, where each
//! file's result is recorded, what a crash or a stop leaves in the queue, and the STATE key.

mod common;
mod redis_support;

use std::path::PathBuf;
use std::time::Duration;

use redis_support::*;
use shardcap::control::redis::failed::FailedFile;
use shardcap::control::redis::intake::RedisIntake;
use shardcap::control::redis::{RedisConfig, RedisMode};
use shardcap::control::signals::Signals;
use shardcap::input::catalog::{self, Entry, Rejected};
use shardcap::input::discover::Candidate;
use shardcap::input::intake::{Arrivals, Gate, Intake};
use shardcap::input::FileEnd;
use shardcap::merge::Order;
use shardcap_capture::ReadError;

const IN_QUEUE: &str = "PCAPDJ_IN_QUEUE";
const NEXT: &str = "PCAPDJ_NEXT";
const AUTH: &str = "PCAPDJ_AUTH";
const STATE: &str = "PCAPDJ_STATE";
const ACTIVE: &str = "PCAPDJ_ACTIVE";
const PROCESSING: &str = "PCAPDJ_PROCESSING";
const PROCESSED: &str = "PCAPDJ_PROCESSED";
const DONE: &str = "PCAPDJ_DONE";
const FAILED: &str = "PCAPDJ_FAILED";

/// An intake on `redis` with pcapdj's key names.
fn connect(redis: &RedisServer, mode: RedisMode, order: Order, window: Duration) -> RedisIntake {
    connect_with(redis, mode, order, window, &Signals::detached())
}

/// An intake steered by `signals`.
fn connect_with(
    redis: &RedisServer,
    mode: RedisMode,
    order: Order,
    window: Duration,
    signals: &Signals,
) -> RedisIntake {
    let config = RedisConfig {
        url: redis.url(),
        ca: None,
        prefix: "PCAPDJ".into(),
        queue: None,
        instance: None,
    };
    RedisIntake::connect(&config, mode, order, window, false, signals).expect("the intake connects")
}

/// The corpus files of `SMALL`, by the names they are queued under.
fn small() -> Vec<String> {
    SMALL.iter().map(|f| name(&corpus(f))).collect()
}

/// The next files the intake hands out, polling until it does (bounded).
fn arrivals(intake: &mut RedisIntake) -> Vec<String> {
    let signals = Signals::detached();
    wait_for("files from the intake", || {
        match intake.poll(Some(Duration::from_millis(100)), &signals) {
            Ok(Arrivals::Files(f)) => Some(f.iter().map(|c| name(&c.path)).collect()),
            Ok(Arrivals::Nothing) => None,
            Ok(Arrivals::Closed) => panic!("the intake closed"),
            Err(e) => panic!("poll: {e}"),
        }
    })
}

/// What one poll that does not wait gives.
fn poll_now(intake: &mut RedisIntake) -> Arrivals {
    intake.poll(None, &Signals::detached()).unwrap()
}

/// The catalog entry of a queued file, as the dispatcher makes it.
fn entry(file: &str) -> Entry {
    catalog::probe(
        0,
        &Candidate {
            path: PathBuf::from(file),
            explicit: true,
        },
    )
    .expect("a capture")
}

/// Authorizes `file` as a controller does (SADD to AUTH).
fn grant(redis: &RedisServer, file: &str) {
    redis::cmd("SADD")
        .arg(AUTH)
        .arg(file)
        .exec(&mut redis.con())
        .unwrap();
}

/// A set's members, sorted.
fn members(redis: &RedisServer, key: &str) -> Vec<String> {
    let mut m: Vec<String> = redis::cmd("SMEMBERS")
        .arg(key)
        .query(&mut redis.con())
        .unwrap();
    m.sort();
    m
}

/// Opens the gate for `file` as the dispatcher does before reading it, with a controller's part
/// played in between: the file is announced in NEXT, popped from there and authorized.
fn open(intake: &mut RedisIntake, redis: &RedisServer, file: &str) {
    let e = entry(file);
    let signals = Signals::detached();
    assert_eq!(intake.authorize(&e, &signals).unwrap(), Gate::NotYet);
    let next: Option<String> = redis::cmd("LPOP")
        .arg(NEXT)
        .query(&mut redis.con())
        .unwrap();
    assert_eq!(next.as_deref(), Some(file), "announced in NEXT");
    grant(redis, file);
    wait_for("the gate to open", || {
        (intake.authorize(&e, &signals).unwrap() == Gate::Open).then_some(())
    });
}

/// Where a completed file is recorded in `mode`.
fn completed_list(mode: RedisMode) -> &'static str {
    match mode {
        RedisMode::Pcapdj => PROCESSED,
        RedisMode::Reliable => DONE,
    }
}

/// The FAILED records.
fn failed(redis: &RedisServer) -> Vec<FailedFile> {
    redis
        .list(FAILED)
        .iter()
        .map(|r| serde_json::from_str(r).expect("a JSON record"))
        .collect()
}

fn given_order_takes_one_file_at_a_time(mode: RedisMode) {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files[..3]);
    let mut intake = connect(&redis, mode, Order::Given, Duration::ZERO);
    assert_eq!(redis.get(STATE).as_deref(), Some("RUNNING"));
    for (i, f) in files[..3].iter().enumerate() {
        assert_eq!(arrivals(&mut intake), files[i..=i], "file {i} comes alone");
        assert!(
            matches!(poll_now(&mut intake), Arrivals::Nothing),
            "nothing more before file {i} is finished"
        );
        assert_eq!(redis.list(IN_QUEUE), files[i + 1..3], "only file {i} taken");
        let in_flight = if mode == RedisMode::Reliable {
            vec![f.clone()]
        } else {
            vec![]
        };
        assert_eq!(redis.list(PROCESSING), in_flight);
        open(&mut intake, &redis, f);
        assert!(matches!(poll_now(&mut intake), Arrivals::Nothing));
        intake.finished(&entry(f), &FileEnd::Complete).unwrap();
        assert_eq!(redis.list(completed_list(mode)), files[..=i]);
    }
    assert!(redis.list(PROCESSING).is_empty());
    assert!(members(&redis, ACTIVE).is_empty());
    assert!(
        matches!(poll_now(&mut intake), Arrivals::Closed),
        "an empty queue with every file done ends the run"
    );
    intake.close(false).unwrap();
    assert_eq!(redis.get(STATE).as_deref(), Some("DONE"));
}

#[test]
fn given_order_takes_one_file_at_a_time_pcapdj() {
    given_order_takes_one_file_at_a_time(RedisMode::Pcapdj);
}

#[test]
fn given_order_takes_one_file_at_a_time_reliable() {
    given_order_takes_one_file_at_a_time(RedisMode::Reliable);
}

fn time_order_batches_files_queued_within_the_window(mode: RedisMode) {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files[..1]);
    let mut intake = connect(&redis, mode, Order::Time, Duration::from_secs(2));
    assert!(
        matches!(poll_now(&mut intake), Arrivals::Nothing),
        "held until the window passes"
    );
    assert!(redis.list(IN_QUEUE).is_empty(), "taken meanwhile");
    // Queued within the window of the start: merged with the first file.
    redis.rpush(IN_QUEUE, &files[1..3]);
    assert_eq!(arrivals(&mut intake), files[..3]);
    assert!(redis.list(IN_QUEUE).is_empty(), "every queued file taken");
    let in_flight = match mode {
        RedisMode::Pcapdj => vec![],
        RedisMode::Reliable => files[..3].to_vec(),
    };
    assert_eq!(redis.list(PROCESSING), in_flight);
    // A file queued after the batch went out opens the next one.
    redis.rpush(IN_QUEUE, &files[3..]);
    assert_eq!(arrivals(&mut intake), files[3..]);
    for f in &files {
        open(&mut intake, &redis, f);
        intake.finished(&entry(f), &FileEnd::Complete).unwrap();
    }
    let mut done = redis.list(completed_list(mode));
    done.sort();
    let mut want = files.clone();
    want.sort();
    assert_eq!(done, want);
    assert!(matches!(poll_now(&mut intake), Arrivals::Closed));
}

#[test]
fn time_order_batches_files_queued_within_the_window_pcapdj() {
    time_order_batches_files_queued_within_the_window(RedisMode::Pcapdj);
}

#[test]
fn time_order_batches_files_queued_within_the_window_reliable() {
    time_order_batches_files_queued_within_the_window(RedisMode::Reliable);
}

#[test]
fn authorize_announces_in_next_and_waits_for_auth() {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files[..2]);
    let mut intake = connect(&redis, RedisMode::Pcapdj, Order::Time, Duration::ZERO);
    assert_eq!(arrivals(&mut intake), files[..2]);
    let signals = Signals::detached();
    let (a, b) = (entry(&files[0]), entry(&files[1]));
    assert!(redis.list(NEXT).is_empty(), "nothing announced before");
    assert_eq!(intake.authorize(&a, &signals).unwrap(), Gate::NotYet);
    assert_eq!(redis.list(NEXT), files[..1], "announced once asked for");
    assert_eq!(redis.get(STATE).as_deref(), Some("WAITING"));
    // Another file's authorization does not open this one's gate.
    grant(&redis, &files[1]);
    assert_eq!(intake.authorize(&a, &signals).unwrap(), Gate::NotYet);
    assert_eq!(redis.list(NEXT), files[..1], "announced only once");
    grant(&redis, &files[0]);
    assert_eq!(intake.authorize(&a, &signals).unwrap(), Gate::Open);
    assert_eq!(
        members(&redis, AUTH),
        files[1..2],
        "its authorization is consumed, the other one stays"
    );
    assert_eq!(members(&redis, ACTIVE), files[..1], "being streamed");
    assert_eq!(redis.get(STATE).as_deref(), Some("RUNNING"));
    // The older form: AUTH as a string naming the file.
    redis::cmd("DEL").arg(AUTH).exec(&mut redis.con()).unwrap();
    assert_eq!(intake.authorize(&b, &signals).unwrap(), Gate::NotYet);
    assert_eq!(redis.list(NEXT), files[..2]);
    redis::cmd("SET")
        .arg(AUTH)
        .arg(&files[0])
        .exec(&mut redis.con())
        .unwrap();
    assert_eq!(
        intake.authorize(&b, &signals).unwrap(),
        Gate::NotYet,
        "a string naming another file"
    );
    redis::cmd("SET")
        .arg(AUTH)
        .arg(&files[1])
        .exec(&mut redis.con())
        .unwrap();
    assert_eq!(intake.authorize(&b, &signals).unwrap(), Gate::Open);
    assert_eq!(
        redis.get(AUTH),
        None,
        "the string authorization is consumed"
    );
    assert_eq!(members(&redis, ACTIVE), files[..2]);
}

fn failures_are_recorded_with_reason_and_offset(mode: RedisMode) {
    let redis = RedisServer::start();
    let files = small();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a capture\n").unwrap();
    let mut queued = files[..2].to_vec();
    queued.push(name(&text));
    redis.rpush(IN_QUEUE, &queued);
    let mut intake = connect(&redis, mode, Order::Time, Duration::ZERO);
    assert_eq!(arrivals(&mut intake), queued);
    // Damaged while streamed: packets before `offset` went out.
    open(&mut intake, &redis, &files[0]);
    let damage = ReadError::new(1234, "record length 70000 exceeds the snapshot length");
    intake
        .finished(&entry(&files[0]), &FileEnd::Damaged(damage))
        .unwrap();
    // Unreadable when cataloged.
    let unreadable = Rejected::Unreadable {
        path: PathBuf::from(&files[1]),
        error: ReadError::new(24, "truncated header"),
    };
    intake.rejected(&unreadable).unwrap();
    // Not a capture.
    let cand = Candidate {
        path: text.clone(),
        explicit: true,
    };
    let why = catalog::probe(2, &cand).expect_err("not a capture");
    assert!(matches!(why, Rejected::NotCapture { .. }));
    intake.rejected(&why).unwrap();
    let got = failed(&redis);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        (got[0].file.as_str(), got[0].offset),
        (files[0].as_str(), 1234)
    );
    assert!(
        got[0].reason.contains("exceeds the snapshot length"),
        "{got:?}"
    );
    assert_eq!(
        (got[1].file.as_str(), got[1].offset, got[1].reason.as_str()),
        (files[1].as_str(), 24, "truncated header")
    );
    assert_eq!((got[2].file.clone(), got[2].offset), (name(&text), 0));
    assert!(got[2].reason.contains("not a pcap or pcapng capture"));
    assert!(redis.list(completed_list(mode)).is_empty());
    assert!(redis.list(PROCESSING).is_empty(), "failed files leave it");
    assert!(members(&redis, ACTIVE).is_empty());
    assert!(matches!(poll_now(&mut intake), Arrivals::Closed));
}

#[test]
fn failures_are_recorded_with_reason_and_offset_pcapdj() {
    failures_are_recorded_with_reason_and_offset(RedisMode::Pcapdj);
}

#[test]
fn failures_are_recorded_with_reason_and_offset_reliable() {
    failures_are_recorded_with_reason_and_offset(RedisMode::Reliable);
}

/// Takes the first queued file, opens its gate, and drops the intake without closing it.
fn crash_while_streaming(redis: &RedisServer, mode: RedisMode, files: &[String]) {
    let mut intake = connect(redis, mode, Order::Given, Duration::ZERO);
    assert_eq!(arrivals(&mut intake), files[..1]);
    open(&mut intake, redis, &files[0]);
    drop(intake);
}

#[test]
fn reliable_mode_takes_a_file_in_flight_at_a_crash_first() {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files[..3]);
    crash_while_streaming(&redis, RedisMode::Reliable, &files);
    assert_eq!(redis.list(PROCESSING), files[..1]);
    assert_eq!(redis.list(IN_QUEUE), files[1..3]);
    let mut again = connect(&redis, RedisMode::Reliable, Order::Given, Duration::ZERO);
    assert_eq!(arrivals(&mut again), files[..1], "the file in flight first");
    open(&mut again, &redis, &files[0]);
    again
        .finished(&entry(&files[0]), &FileEnd::Complete)
        .unwrap();
    assert_eq!(redis.list(DONE), files[..1], "recorded once");
    assert!(redis.list(PROCESSING).is_empty());
    assert_eq!(arrivals(&mut again), files[1..2], "then the queue");
}

#[test]
fn pcapdj_mode_loses_a_file_in_flight_at_a_crash_as_pcapdj_does() {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files[..3]);
    crash_while_streaming(&redis, RedisMode::Pcapdj, &files);
    assert!(redis.list(PROCESSING).is_empty());
    let mut again = connect(&redis, RedisMode::Pcapdj, Order::Given, Duration::ZERO);
    assert_eq!(arrivals(&mut again), files[1..2]);
}

fn a_stop_gives_back_the_files_not_finished(mode: RedisMode) {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files);
    let mut intake = connect(&redis, mode, Order::Time, Duration::ZERO);
    assert_eq!(arrivals(&mut intake), files);
    open(&mut intake, &redis, &files[0]);
    intake
        .finished(&entry(&files[0]), &FileEnd::Complete)
        .unwrap();
    // Announced, not authorized yet.
    let signals = Signals::detached();
    assert_eq!(
        intake.authorize(&entry(&files[1]), &signals).unwrap(),
        Gate::NotYet
    );
    assert_eq!(redis.list(NEXT), files[1..2]);
    intake.close(true).unwrap();
    assert_eq!(redis.get(STATE).as_deref(), Some("STOPPED"));
    assert!(redis.list(NEXT).is_empty(), "announcement withdrawn");
    assert!(members(&redis, ACTIVE).is_empty());
    assert_eq!(redis.list(completed_list(mode)), files[..1]);
    match mode {
        RedisMode::Pcapdj => {
            assert_eq!(
                redis.list(IN_QUEUE),
                files[1..],
                "back in the queue, in order"
            );
        }
        RedisMode::Reliable => {
            assert!(redis.list(IN_QUEUE).is_empty());
            assert_eq!(redis.list(PROCESSING), files[1..], "kept for the next run");
        }
    }
    // The next run takes them first, in their order.
    let mut next = connect(&redis, mode, Order::Given, Duration::ZERO);
    assert_eq!(redis.get(STATE).as_deref(), Some("RUNNING"));
    assert_eq!(arrivals(&mut next), files[1..2]);
}

#[test]
fn a_stop_gives_back_the_files_not_finished_pcapdj() {
    a_stop_gives_back_the_files_not_finished(RedisMode::Pcapdj);
}

#[test]
fn a_stop_gives_back_the_files_not_finished_reliable() {
    a_stop_gives_back_the_files_not_finished(RedisMode::Reliable);
}

fn a_file_skipped_before_its_authorization(mode: RedisMode) {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files[..3]);
    let signals = Signals::detached();
    let mut intake = connect_with(&redis, mode, Order::Given, Duration::ZERO, &signals);
    // Skipped while the run goes on: a failure.
    assert_eq!(arrivals(&mut intake), files[..1]);
    intake
        .finished(&entry(&files[0]), &FileEnd::Skipped("link type 113".into()))
        .unwrap();
    let got = failed(&redis);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].file.as_str(), got[0].reason.as_str()),
        (files[0].as_str(), "link type 113")
    );
    // Skipped by a stop while waiting for its authorization: given back, not failed.
    assert_eq!(arrivals(&mut intake), files[1..2]);
    assert_eq!(
        intake.authorize(&entry(&files[1]), &signals).unwrap(),
        Gate::NotYet
    );
    signals
        .stop
        .store(true, std::sync::atomic::Ordering::SeqCst);
    intake
        .finished(&entry(&files[1]), &FileEnd::Skipped("stopped".into()))
        .unwrap();
    assert_eq!(failed(&redis).len(), 1, "not recorded as failed");
    intake.close(true).unwrap();
    assert_eq!(redis.get(STATE).as_deref(), Some("STOPPED"));
    assert!(redis.list(NEXT).is_empty(), "announcement withdrawn");
    match mode {
        RedisMode::Pcapdj => assert_eq!(redis.list(IN_QUEUE), files[1..3]),
        RedisMode::Reliable => {
            assert_eq!(redis.list(PROCESSING), files[1..2]);
            assert_eq!(redis.list(IN_QUEUE), files[2..3]);
        }
    }
}

#[test]
fn a_file_skipped_before_its_authorization_pcapdj() {
    a_file_skipped_before_its_authorization(RedisMode::Pcapdj);
}

#[test]
fn a_file_skipped_before_its_authorization_reliable() {
    a_file_skipped_before_its_authorization(RedisMode::Reliable);
}

fn a_stop_while_the_first_file_waits_gives_every_file_back_in_order(mode: RedisMode) {
    let redis = RedisServer::start();
    let files = small();
    redis.rpush(IN_QUEUE, &files[..3]);
    let signals = Signals::detached();
    let mut intake = connect_with(&redis, mode, Order::Time, Duration::ZERO, &signals);
    assert_eq!(arrivals(&mut intake), files[..3]);
    // The merge opens the first taken file first and waits for its authorization; the stop
    // skips it, then the run closes with the two others not started.
    assert_eq!(
        intake.authorize(&entry(&files[0]), &signals).unwrap(),
        Gate::NotYet
    );
    signals
        .stop
        .store(true, std::sync::atomic::Ordering::SeqCst);
    intake
        .finished(
            &entry(&files[0]),
            &FileEnd::Skipped("not authorized".into()),
        )
        .unwrap();
    intake.close(true).unwrap();
    assert!(redis.list(NEXT).is_empty());
    let back = match mode {
        RedisMode::Pcapdj => redis.list(IN_QUEUE),
        RedisMode::Reliable => redis.list(PROCESSING),
    };
    assert_eq!(back, files[..3], "in the order they were queued");
}

#[test]
fn a_stop_while_the_first_file_waits_gives_every_file_back_in_order_pcapdj() {
    a_stop_while_the_first_file_waits_gives_every_file_back_in_order(RedisMode::Pcapdj);
}

#[test]
fn a_stop_while_the_first_file_waits_gives_every_file_back_in_order_reliable() {
    a_stop_while_the_first_file_waits_gives_every_file_back_in_order(RedisMode::Reliable);
}
