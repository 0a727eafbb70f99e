//! shardcap as a drop-in for pcapdj, against a real redis-server and real FIFO readers: the start
//! order of pcapdj's README (dispatcher, importer, IDS), SIGUSR1 as a brake, PROCESSED only once
//! the consumer has read the file, pcapdj's stats lines, `--redis-queue`, a Redis without the
//! commands newer than Redis 5, and `--announce-all`.

mod common;
mod redis_support;

use std::path::{Path, PathBuf};

use common::ChildGuard;
use nix::sys::signal::Signal;
use redis_support::*;

/// Links corpus files into a directory as 1.pcap, 2.pcap, ... (the importer sorts by name);
/// returns the directory and the files as the importer queues them.
fn numbered(files: &[&str]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let paths = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = root.join(format!("{}.pcap", i + 1));
            std::os::unix::fs::symlink(corpus(f), &p).unwrap();
            p
        })
        .collect();
    (dir, paths)
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| name(p)).collect()
}

/// Waits until the dispatcher has connected to Redis (it sets STATE to RUNNING).
fn wait_running(redis: &RedisServer, key: &str) {
    wait_for("the dispatcher to connect", || {
        (redis.get(key).as_deref() == Some("RUNNING")).then_some(())
    });
}

/// The packets of a stream read by a consumer.
fn stream_packets(bytes: &[u8]) -> Vec<common::Rec> {
    common::read_stream_bytes(bytes).unwrap().packets
}

fn importer(dir: &Path, url: &str) {
    let run = finish(script(
        "pcapdj-importer.py",
        &[dir.to_str().unwrap(), "--redis", url],
    ));
    expect_exit(&run, 0);
}

#[test]
fn dispatcher_started_before_the_importer_and_the_consumer() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (dir, paths) = numbered(&[SMALL[1], SMALL[0], SMALL[2]]);
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("s.pipe");
    // pcapdj's README order: the dispatcher first, on an empty queue...
    let run = fifo_dispatcher(&url, &fifo, &[]);
    wait_running(&redis, "PCAPDJ_STATE");
    // ... then the importer, the controller, and last the IDS reading the FIFO.
    importer(dir.path(), &url);
    let controller = script("pcapdj-controller.py", &["--redis", &url, "--until-done"]);
    let reader = PacedReader::start(&fifo, 0);
    let run = finish(run);
    expect_exit(&run, 0);
    expect_exit(&finish(controller), 0);
    let got = stream_packets(&reader.finish());
    assert_same_packets(&got, &concat(&paths), "every file queued after the start");
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), names(&paths));
    assert_eq!(redis.get("PCAPDJ_STATE").as_deref(), Some("DONE"));
}

#[test]
fn no_file_is_taken_before_the_consumer_attaches() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (dir, paths) = numbered(&[SMALL[0], SMALL[3]]);
    importer(dir.path(), &url);
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("s.pipe");
    let run = fifo_dispatcher(&url, &fifo, &[]);
    wait_running(&redis, "PCAPDJ_STATE");
    // The FIFO exists once the dispatcher opens its outputs: from then on it waits for a reader.
    wait_for("the FIFO", || fifo.exists().then_some(()));
    assert_eq!(
        redis.list("PCAPDJ_IN_QUEUE"),
        names(&paths),
        "nothing taken while the FIFO has no reader"
    );
    assert!(redis.list("PCAPDJ_NEXT").is_empty(), "nothing announced");
    let auth = Authorizer::start(url, "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let reader = PacedReader::start(&fifo, 0);
    expect_exit(&finish(run), 0);
    assert_eq!(auth.stop(), names(&paths));
    assert_same_packets(&stream_packets(&reader.finish()), &concat(&paths), "output");
}

#[test]
fn a_stop_before_the_consumer_attaches_takes_nothing() {
    let redis = RedisServer::start();
    let names = [name(&corpus(SMALL[0]))];
    redis.rpush("PCAPDJ_IN_QUEUE", &names);
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("s.pipe");
    let run = fifo_dispatcher(&redis.url(), &fifo, &[]);
    wait_running(&redis, "PCAPDJ_STATE");
    wait_for("the FIFO", || fifo.exists().then_some(()));
    run.signal(Signal::SIGTERM);
    expect_exit(&finish(run), 0);
    assert_eq!(redis.list("PCAPDJ_IN_QUEUE"), names, "the queue untouched");
    assert_eq!(redis.get("PCAPDJ_STATE").as_deref(), Some("STOPPED"));
}

#[test]
fn an_empty_queue_once_the_consumer_attaches_ends_the_run_as_pcapdj() {
    let redis = RedisServer::start();
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("s.pipe");
    let run = fifo_dispatcher(&redis.url(), &fifo, &[]);
    let reader = PacedReader::start(&fifo, 0);
    expect_exit(&finish(run), 0);
    assert_eq!(redis.get("PCAPDJ_STATE").as_deref(), Some("DONE"));
    assert!(
        stream_packets(&reader.finish()).is_empty(),
        "an empty stream"
    );
}

/// Most bytes a consumer may still read after SIGUSR1, with the default pipe size.
const BRAKE_BOUND: u64 = 256 << 10;

#[test]
fn sigusr1_brakes_what_reaches_a_400kbs_consumer() {
    let redis = RedisServer::start();
    let big = corpus(BIG);
    redis.rpush("PCAPDJ_IN_QUEUE", &[name(&big)]);
    let _auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("s.pipe");
    let mut run = fifo_dispatcher(&redis.url(), &fifo, &["--stats-format", "pcapdj"]);
    let stdout = watch_stdout(&mut run);
    let reader = PacedReader::start(&fifo, 400_000);
    wait_for("1 MB read", || (reader.read() >= 1 << 20).then_some(()));
    run.signal(Signal::SIGUSR1);
    let at_signal = reader.read();
    run.signal(Signal::SIGUSR2);
    wait_for("the suspension stated", || {
        let text = stdout.lock().unwrap();
        (text.contains("[INFO] Suspending pcapdj")
            && text.contains("[STATS] Internal state:Suspended")
            && text.contains("[STATS] Number of suspensions:1"))
        .then_some(())
    });
    // The consumer reads what the pipe held, then finds it empty; a faulty dispatcher would go
    // on writing: give it every chance, then count.
    wait_for("the pipe to run dry", || {
        reader
            .empty
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = reader.read() - at_signal;
    eprintln!("{after} bytes read after SIGUSR1");
    assert!(
        after <= BRAKE_BOUND,
        "{after} bytes reached the consumer after SIGUSR1 (bound {BRAKE_BOUND})"
    );
    reader.rate.store(0, std::sync::atomic::Ordering::SeqCst);
    run.signal(Signal::SIGUSR1);
    let run = finish(run);
    expect_exit(&run, 0);
    assert!(stdout.lock().unwrap().contains("[INFO] Resuming pcapdj"));
    let got = stream_packets(&reader.finish());
    assert_same_packets(&got, &packets(&big), "the whole file after the resume");
}

#[test]
fn processed_once_the_consumer_has_read_the_file() {
    let redis = RedisServer::start();
    let files = [corpus(BIG), corpus(SMALL[0])];
    redis.rpush("PCAPDJ_IN_QUEUE", &names(&files));
    let _auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("s.pipe");
    let run = fifo_dispatcher(&redis.url(), &fifo, &[]);
    let reader = PacedReader::start(&fifo, 2_000_000);
    let read_when_processed = wait_for("the first file processed", || {
        let read = reader.read();
        (redis.list("PCAPDJ_PROCESSED").first() == Some(&name(&files[0]))).then_some(read)
    });
    // The stream header and every record of the file.
    let file_bytes = 24 + stream_bytes(&packets(&files[0]));
    assert!(
        read_when_processed >= file_bytes,
        "PROCESSED came when the consumer had read {read_when_processed} of {file_bytes} bytes"
    );
    expect_exit(&finish(run), 0);
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), names(&files));
    assert_same_packets(&stream_packets(&reader.finish()), &concat(&files), "output");
}

/// `[STATS] Key:Value` lines, as (key, value).
fn stats_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("[STATS] "))
        .map(|l| {
            let (k, v) = l.split_once(':').expect("Key:Value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Asks for stats and returns the lines printed since `from` once all eight are there.
fn stats_since(run: &ChildGuard, stdout: &std::sync::Mutex<String>, from: usize) -> String {
    run.signal(Signal::SIGUSR2);
    wait_for("the stats", || {
        let text = stdout.lock().unwrap()[from..].to_string();
        text.contains("[STATS] Number of lengths:").then_some(text)
    })
}

#[test]
fn pcapdj_stats_format_line_by_line_and_suspension_while_waiting() {
    let redis = RedisServer::start();
    let file = corpus(SMALL[0]);
    let out = tempfile::tempdir().unwrap();
    redis.rpush("PCAPDJ_IN_QUEUE", &[name(&file)]);
    let mut run = dispatcher(
        &redis.url(),
        &out.path().join("s.pcap"),
        &["--order", "given", "--stats-format", "pcapdj"],
    );
    let stdout = watch_stdout(&mut run);
    wait_for("the announcement", || {
        (redis.list("PCAPDJ_NEXT") == [name(&file)]).then_some(())
    });
    let text = stats_since(&run, &stdout, 0);
    let lines = stats_lines(&text);
    let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        common::PCAPDJ_STATS_KEYS,
        "exactly pcapdj's lines:\n{text}"
    );
    let value = |k: &str| lines.iter().find(|(key, _)| key == k).unwrap().1.clone();
    let start = value("Start time");
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (date, time) = start.split_once(' ').expect("date and time");
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    assert!(
        d.len() == 3 && t.len() == 3 && d.iter().chain(&t).all(|p| digits(p)),
        "%Y-%d-%m %H:%M:%S: {start}"
    );
    let uptime = value("Uptime");
    assert!(
        digits(uptime.strip_suffix(" (seconds)").unwrap()),
        "{uptime}"
    );
    assert_eq!(value("Internal state"), "Waiting for authorization");
    for k in &common::PCAPDJ_STATS_KEYS[3..] {
        assert_eq!(value(k), "0", "{k} before any packet");
    }
    // SIGUSR1 while waiting for the authorization: suspended at once, and the authorization is
    // taken only after the resume.
    let from = stdout.lock().unwrap().len();
    run.signal(Signal::SIGUSR1);
    wait_for("the suspension", || {
        let text = stdout.lock().unwrap()[from..].to_string();
        text.contains("[INFO] Suspending pcapdj").then_some(())
    });
    let text = stats_since(&run, &stdout, from);
    let lines = stats_lines(&text);
    assert_eq!(lines.len(), 8, "{text}");
    assert_eq!(lines[2].1, "Suspended");
    assert_eq!(lines[3].1, "1");
    redis::cmd("SADD")
        .arg("PCAPDJ_AUTH")
        .arg(name(&file))
        .exec(&mut redis.con())
        .unwrap();
    let from = stdout.lock().unwrap().len();
    let text = stats_since(&run, &stdout, from);
    assert_eq!(stats_lines(&text)[2].1, "Suspended");
    let held: bool = redis::cmd("SISMEMBER")
        .arg("PCAPDJ_AUTH")
        .arg(name(&file))
        .query(&mut redis.con())
        .unwrap();
    assert!(held, "the authorization is not taken while suspended");
    run.signal(Signal::SIGUSR1);
    let run = finish(run);
    expect_exit(&run, 0);
    let text = stdout.lock().unwrap().clone();
    assert!(text.contains("[INFO] Resuming pcapdj"), "{text}");
    assert!(!text.contains("Files left"), "no shardcap lines: {text}");
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), [name(&file)]);
}

#[test]
fn redis_queue_renames_only_the_input_queue() {
    let redis = RedisServer::start();
    let files: Vec<PathBuf> = SMALL[..2].iter().map(|f| corpus(f)).collect();
    let decoy = name(&corpus(SMALL[2]));
    redis.rpush("PCAPDJ_IN_QUEUE", std::slice::from_ref(&decoy));
    let enq = common::shardcap([
        "ctl",
        "--redis",
        &redis.url(),
        "--redis-queue",
        "CAPTURES",
        "enqueue",
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
    ]);
    expect_exit(&enq, 0);
    assert_eq!(redis.list("CAPTURES").len(), 2);
    let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tempfile::tempdir().unwrap();
    let run = dispatcher(
        &redis.url(),
        &out.path().join("s.pcap"),
        &["--order", "given", "--redis-queue", "CAPTURES"],
    );
    expect_exit(&finish(run), 0);
    let granted = auth.stop();
    let mut want = names(&files);
    want.sort();
    let mut got = granted.clone();
    got.sort();
    assert_eq!(got, want, "the files of CAPTURES");
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), granted);
    assert_eq!(
        redis.list("PCAPDJ_IN_QUEUE"),
        [decoy],
        "PCAPDJ_IN_QUEUE untouched"
    );
    assert!(redis.list("CAPTURES").is_empty());
    assert_eq!(redis.get("PCAPDJ_STATE").as_deref(), Some("DONE"));
}

/// Commands added after Redis 5 that a pcapdj-mode dispatcher has no use for: hidden.
const NEWER_THAN_REDIS_5: [&str; 10] = [
    "LMOVE",
    "BLMOVE",
    "LMPOP",
    "BLMPOP",
    "LPOS",
    "GETDEL",
    "GETEX",
    "SMISMEMBER",
    "COPY",
    "SINTERCARD",
];

#[test]
fn pcapdj_mode_sends_nothing_newer_than_redis_5() {
    let mut args = vec!["--save", "", "--appendonly", "no"];
    for c in NEWER_THAN_REDIS_5 {
        args.extend(["--rename-command", c, ""]);
    }
    let redis = RedisServer::start_with(&args);
    let monitor = Monitor::start(redis.port);
    for order in ["given", "time"] {
        let files: Vec<PathBuf> = SMALL.iter().map(|f| corpus(f)).collect();
        redis.rpush("PCAPDJ_IN_QUEUE", &names(&files));
        let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
        let out = tempfile::tempdir().unwrap();
        let run = dispatcher(
            &redis.url(),
            &out.path().join("s.pcap"),
            &["--order", order, "--redis-window", "0"],
        );
        expect_exit(&finish(run), 0);
        auth.stop();
        let mut processed = redis.list("PCAPDJ_PROCESSED");
        processed.sort();
        let mut want = names(&files);
        want.sort();
        assert_eq!(processed, want, "--order {order}");
        redis::cmd("DEL")
            .arg("PCAPDJ_PROCESSED")
            .exec(&mut redis.con())
            .unwrap();
    }
    let seen = monitor.seen();
    let lpops: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("\"LPOP\" \"PCAPDJ_IN_QUEUE\""))
        .collect();
    assert!(!lpops.is_empty(), "the queue is read with LPOP");
    let counted: Vec<&&String> = lpops
        .iter()
        .filter(|l| !l.trim_end().ends_with("\"LPOP\" \"PCAPDJ_IN_QUEUE\""))
        .collect();
    assert!(counted.is_empty(), "LPOP with a count: {counted:?}");
}

#[test]
fn announce_all_announces_unreadable_files_as_pcapdj() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let good = corpus(SMALL[0]);
    let missing = tmp.path().join("missing.pcap");
    let queue = [name(&missing), name(&good)];
    redis.rpush("PCAPDJ_IN_QUEUE", &queue);
    let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let out = tempfile::tempdir().unwrap();
    let run = dispatcher(
        &redis.url(),
        &out.path().join("s.pcap"),
        &["--order", "given", "--announce-all"],
    );
    let run = finish(run);
    assert_eq!(run.code, 3, "a file failed: {}", run.stderr);
    assert_eq!(auth.stop(), queue, "every file announced and authorized");
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), [name(&good)]);
    let failed = redis.list("PCAPDJ_FAILED");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains(&name(&missing)), "{failed:?}");
}
