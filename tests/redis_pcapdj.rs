//! pcapdj's protocol against a real redis-server: the shipped Python importer and controller
//! (redis-py, as pcapdj's README does it) drive shardcap; a step-by-step controller checks that no
//! packet is written before its file is authorized, in both authorization forms; unreadable and
//! damaged files land in FAILED; a stop while waiting gives the file back to the queue.

mod common;
mod redis_support;

use std::path::PathBuf;

use nix::sys::signal::Signal;
use redis_support::*;

/// Links corpus files into a directory as 1.pcap, 2.pcap, ... (the importer sorts by name).
fn numbered(files: &[&str]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = dir.path().join(format!("{}.pcap", i + 1));
            std::os::unix::fs::symlink(corpus(f), &p).unwrap();
            p
        })
        .collect();
    (dir, paths)
}

fn python_flow(set_form: bool) {
    let redis = RedisServer::start();
    let url = redis.url();
    // The pcap files go in reverse time order: --order given must keep the queue's order.
    let (dir, paths) = numbered(&[SMALL[2], SMALL[1], SMALL[0], SMALL[3]]);
    let importer = script(
        "pcapdj-importer.py",
        &[dir.path().to_str().unwrap(), "--redis", &url],
    );
    expect_exit(&finish(importer), 0);
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let queued_abs: Vec<String> = paths
        .iter()
        .map(|p| name(&root.join(p.file_name().unwrap())))
        .collect();
    assert_eq!(redis.list("PCAPDJ_IN_QUEUE"), queued_abs, "importer order");

    let out = tempfile::tempdir().unwrap();
    let run = dispatcher(&url, &out.path().join("s.pcap"), &["--order", "given"]);
    let mut ctl_args = vec!["--redis", url.as_str(), "--until-done"];
    if set_form {
        ctl_args.push("--set-form");
    }
    let controller = script("pcapdj-controller.py", &ctl_args);

    let run = finish(run);
    expect_exit(&run, 0);
    let controller = finish(controller);
    expect_exit(&controller, 0);
    let authorized: Vec<String> = controller
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Authorized file ").map(String::from))
        .collect();
    assert_eq!(
        authorized, queued_abs,
        "every file announced once, in queue order"
    );
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), queued_abs);
    assert_eq!(redis.get("PCAPDJ_STATE").as_deref(), Some("DONE"));
    assert!(redis.list("PCAPDJ_NEXT").is_empty());
    assert!(redis.list("PCAPDJ_IN_QUEUE").is_empty());
    assert!(redis.list("PCAPDJ_FAILED").is_empty());
    let got = output(&out.path().join("s.pcap"));
    assert_same_packets(&got, &concat(&paths), "output = the files in queue order");
}

#[test]
fn python_controller_drives_the_pcapdj_flow() {
    python_flow(false);
}

#[test]
fn python_controller_with_the_older_set_form() {
    python_flow(true);
}

#[test]
fn no_packet_before_its_authorization_in_either_form() {
    let redis = RedisServer::start();
    let files: Vec<PathBuf> = SMALL[..3].iter().map(|f| corpus(f)).collect();
    let names: Vec<String> = files.iter().map(|p| name(p)).collect();
    let (out, mut run) = dispatch_in_order(&redis, &names);
    let partial = out.path().join("s.pcap.partial");
    let stdout = watch_stdout(&mut run);
    let mut con = redis.con();
    let mut written = 24;
    for (i, n) in names.iter().enumerate() {
        wait_for("the next announcement", || {
            let next: Vec<String> = redis.list("PCAPDJ_NEXT");
            (next == [n.clone()]).then_some(())
        });
        // Give a faulty dispatcher every chance to write early, then look.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let size = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            size, written,
            "file {i}: only the previous files are written before its authorization"
        );
        if i == 0 {
            run.signal(Signal::SIGUSR2);
            wait_for("the stats while waiting", || {
                let text = stdout.lock().unwrap();
                text.contains("[STATS] Number of lengths:").then_some(())
            });
            let text = stdout.lock().unwrap().clone();
            assert!(
                text.contains("[STATS] Internal state:Waiting for authorization"),
                "stats while waiting: {text}"
            );
        }
        // As a controller does: pop the announcement, authorize (file 1 the older SET way).
        let popped: String = redis::cmd("LPOP")
            .arg("PCAPDJ_NEXT")
            .query(&mut con)
            .unwrap();
        assert_eq!(&popped, n);
        let form = if i == 1 { "SET" } else { "SADD" };
        redis::cmd(form)
            .arg("PCAPDJ_AUTH")
            .arg(n)
            .exec(&mut con)
            .unwrap();
        written += stream_bytes(&packets(&files[i]));
    }
    let run = finish(run);
    expect_exit(&run, 0);
    let got = output(&out.path().join("s.pcap"));
    assert_eq!(
        std::fs::metadata(out.path().join("s.pcap")).unwrap().len(),
        written
    );
    assert_same_packets(&got, &concat(&files), "output");
    assert_eq!(redis.list("PCAPDJ_PROCESSED"), names);
    let auth_left: i64 = redis::cmd("EXISTS")
        .arg("PCAPDJ_AUTH")
        .query(&mut con)
        .unwrap();
    assert_eq!(auth_left, 0, "every authorization consumed");
}

#[test]
fn unreadable_and_damaged_files_go_to_failed() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not a capture at all\n").unwrap();
    let good = [corpus(SMALL[0]), corpus(SMALL[1])];
    let damaged = corpus("suricata-verify/bug-1450-04/tls_DER-incomplete-header.pcap");
    let missing = tmp.path().join("missing.pcap");
    let queue = [
        name(&good[0]),
        name(&missing),
        name(&text),
        name(&damaged),
        name(&good[1]),
    ];
    let auth = Authorizer::start(redis.url(), "PCAPDJ_NEXT", "PCAPDJ_AUTH");
    let (out, run) = dispatch_in_order(&redis, &queue);
    let run = finish(run);
    assert_eq!(run.code, 3, "some input skipped: {}", run.stderr);
    let granted = auth.stop();
    assert_eq!(
        granted,
        [name(&good[0]), name(&damaged), name(&good[1])],
        "unreadable files are never announced"
    );
    assert_eq!(
        redis.list("PCAPDJ_PROCESSED"),
        [name(&good[0]), name(&good[1])]
    );
    let failed: Vec<serde_json::Value> = redis
        .list("PCAPDJ_FAILED")
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    let files: Vec<&str> = failed.iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(files, [name(&missing), name(&text), name(&damaged)]);
    let reason = |i: usize| failed[i]["reason"].as_str().unwrap().to_string();
    assert!(reason(0).contains("No such file"), "{}", reason(0));
    assert!(reason(1).contains("not a pcap"), "{}", reason(1));
    assert!(reason(2).contains("record length"), "{}", reason(2));
    assert_eq!(failed[2]["offset"], 5035, "the damage's offset");
    // The damaged file's packets before the damage were streamed, between the good files.
    let mut want = packets(&good[0]);
    want.extend(packets(&damaged));
    want.extend(packets(&good[1]));
    assert_same_packets(&output(&out.path().join("s.pcap")), &want, "output");
}

#[test]
fn a_stop_while_waiting_gives_the_file_back() {
    let redis = RedisServer::start();
    let names: Vec<String> = SMALL[..2].iter().map(|f| name(&corpus(f))).collect();
    let (out, run) = dispatch_in_order(&redis, &names);
    wait_for("the announcement", || {
        (redis.list("PCAPDJ_NEXT") == names[..1]).then_some(())
    });
    run.signal(Signal::SIGTERM);
    let run = finish(run);
    expect_exit(&run, 0);
    assert_eq!(
        redis.list("PCAPDJ_IN_QUEUE"),
        names,
        "the file went back to the head"
    );
    assert!(
        redis.list("PCAPDJ_NEXT").is_empty(),
        "announcement withdrawn"
    );
    assert_eq!(redis.get("PCAPDJ_STATE").as_deref(), Some("STOPPED"));
    assert!(
        output(&out.path().join("s.pcap")).is_empty(),
        "a complete, empty stream"
    );
}

#[test]
fn instances_keep_their_own_keys() {
    let redis = RedisServer::start();
    let files: Vec<PathBuf> = SMALL.iter().map(|f| corpus(f)).collect();
    let names: Vec<String> = files.iter().map(|p| name(p)).collect();
    redis.rpush("PCAPDJ_IN_QUEUE", &names);
    let out = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    let mut auths = Vec::new();
    for inst in ["a", "b"] {
        auths.push(Authorizer::start(
            redis.url(),
            &format!("PCAPDJ_{inst}_NEXT"),
            &format!("PCAPDJ_{inst}_AUTH"),
        ));
        let file = out.path().join(format!("{inst}.pcap"));
        let args = ["--redis-instance", inst, "--order", "given"];
        runs.push(dispatcher(&redis.url(), &file, &args));
    }
    for run in runs {
        let run = finish(run);
        expect_exit(&run, 0);
    }
    let granted: Vec<Vec<String>> = auths.into_iter().map(Authorizer::stop).collect();
    for inst in ["a", "b"] {
        assert_eq!(
            redis.get(&format!("PCAPDJ_{inst}_STATE")).as_deref(),
            Some("DONE")
        );
    }
    assert_eq!(
        redis.get("PCAPDJ_STATE"),
        None,
        "pcapdj's own keys untouched"
    );
    let mut processed = redis.list("PCAPDJ_PROCESSED");
    processed.sort();
    let mut all = names.clone();
    all.sort();
    assert_eq!(
        processed, all,
        "every file processed once, by one of the two"
    );
    // Each output holds exactly the files its instance was authorized for, in that order.
    let mut total = 0;
    for (inst, got) in ["a", "b"].iter().zip(&granted) {
        let mine: Vec<PathBuf> = got.iter().map(PathBuf::from).collect();
        let pkts = output(&out.path().join(format!("{inst}.pcap")));
        assert_same_packets(&pkts, &concat(&mine), inst);
        total += mine.len();
    }
    assert_eq!(total, names.len());
}
