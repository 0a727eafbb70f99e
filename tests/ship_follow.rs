//! Following live logs: lines written a piece at a time, files renamed and replaced (rotation),
//! truncated and rewritten, and new files appearing; every record arrives exactly once.

mod common;
mod ship_support;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use nix::sys::signal::Signal;
use ship_support::*;

fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Appends `lines`, the last one in two writes with a pause between them (a writer caught in the
/// middle of a line).
fn write_split(f: &mut File, lines: &[String]) {
    let Some((last, rest)) = lines.split_last() else {
        return;
    };
    f.write_all(rest.concat().as_bytes()).unwrap();
    let (a, b) = last.split_at(last.len() / 2);
    f.write_all(a.as_bytes()).unwrap();
    f.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    f.write_all(b.as_bytes()).unwrap();
}

#[test]
fn rotation_truncation_and_new_files_lose_nothing() {
    let server = Server::start(Kind::Noida);
    let scratch = tempfile::tempdir().unwrap();
    suricata_eve(
        "pcapplusplus/realistic-mixed-http-dns-2013.pcap",
        scratch.path(),
    );
    let eve = lines_of(&scratch.path().join("eve.json"));
    let conn = lines_of(&fixtures().join("zeek-tsv/conn.log"));
    let (conn_header, conn_rest) = conn.split_at(8);
    let conn_records: Vec<String> = conn_rest
        .iter()
        .filter(|l| !l.starts_with('#'))
        .cloned()
        .collect();
    let conn_close = conn_rest.last().unwrap().clone();
    let dns = lines_of(&fixtures().join("zeek-json/dns.log"));

    let logs = tempfile::tempdir().unwrap();
    let (s0, s1) = (logs.path().join("shard-0"), logs.path().join("shard-1"));
    fs::create_dir_all(&s0).unwrap();
    fs::create_dir_all(&s1).unwrap();
    let state = tempfile::tempdir().unwrap();
    let stats_path = state.path().join("stats.json");
    let mut proc = Proc::spawn_piped(follow(
        &server,
        state.path(),
        logs.path(),
        &[
            "--batch-docs",
            "100",
            "--batch-wait",
            "50ms",
            "--scan-interval",
            "100ms",
            "--close-inactive",
            "300ms",
            "--stats-file",
            stats_path.to_str().unwrap(),
            "--stats-interval",
            "50ms",
        ],
    ));

    // Growth, with lines completed later.
    let mut eve_file = File::create(s0.join("eve.json")).unwrap();
    for chunk in eve[..400].chunks(100) {
        write_split(&mut eve_file, chunk);
    }
    let mut conn_file = File::create(s1.join("conn.log")).unwrap();
    conn_file
        .write_all(conn_header.concat().as_bytes())
        .unwrap();
    write_split(&mut conn_file, &conn_records[..60]);
    wait_until("the first lines", || server.count("*") == 460);

    // Suricata-style rotation: renamed while still written to, then replaced.
    write_split(&mut eve_file, &eve[400..500]);
    fs::rename(s0.join("eve.json"), s0.join("eve.json.1")).unwrap();
    write_split(&mut eve_file, &eve[500..550]);
    drop(eve_file);
    let mut eve_file = File::create(s0.join("eve.json")).unwrap();
    for chunk in eve[550..].chunks(200) {
        write_split(&mut eve_file, chunk);
    }

    // Zeek-style rotation: closed, renamed with its time, and a new file opened.
    conn_file
        .write_all(conn_records[60..].concat().as_bytes())
        .unwrap();
    conn_file.write_all(conn_close.as_bytes()).unwrap();
    drop(conn_file);
    fs::rename(s1.join("conn.log"), s1.join("conn.2013-05-02-20-20-33.log")).unwrap();
    let mut conn_file = File::create(s1.join("conn.log")).unwrap();
    conn_file
        .write_all(conn_header.concat().as_bytes())
        .unwrap();
    write_split(&mut conn_file, &conn_records[..30]);

    // Truncation: the file is emptied and written again from the start.
    let dns_path = s1.join("dns.log");
    let mut dns_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&dns_path)
        .unwrap();
    write_split(&mut dns_file, &dns[..40]);
    let before = eve.len() as u64 + conn_records.len() as u64 + 30;
    wait_until("the lines before the truncation", || {
        server.count("zeek-dns-*") == 40 && server.count("*") == before + 40
    });
    dns_file.set_len(0).unwrap();
    write_split(&mut dns_file, &dns[40..]);

    // A new log directory with a log in it.
    let more = copy_fixtures("zeek-json", &logs.path().join("shard-2/zeek"));

    let total = before + dns.len() as u64 + more as u64;
    wait_until("everything", || server.count("*") == total);
    wait_until("every answer applied", || {
        stats(&stats_path).is_some_and(|s| s["records_shipped"] == total && s["lag_bytes"] == 0)
    });

    // SIGUSR2: the figures, as `[STATS]` lines on stdout.
    proc.signal(Signal::SIGUSR2);
    let lines = proc.read_stdout_until("[STATS] Requests in flight:");
    let stat = |key: &str| -> String {
        let prefix = format!("[STATS] {key}:");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{key} in {lines:?}"));
        line[prefix.len()..].to_string()
    };
    assert_eq!(lines[0].split(':').next(), Some("[STATS] Start time"));
    assert_eq!(stat("Records shipped"), total.to_string());
    assert_eq!(stat("Lag (bytes)"), "0");
    assert_eq!(stat("Dead-lettered"), "0");
    assert_eq!(stat("Internal state"), "Running");
    proc.signal(Signal::SIGTERM);
    let (status, err) = proc.wait();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("truncated") || err.contains("rewritten in place"),
        "the truncation is reported: {err}"
    );
    assert_eq!(server.count("suricata-*"), eve.len() as u64);
    assert_eq!(
        server.count("zeek-conn-*"),
        conn_records.len() as u64 + 30 + 136,
        "both conn files and the new directory's"
    );
    assert_eq!(server.count("zeek-dns-*"), dns.len() as u64 + 69);
    assert_eq!(server.count("*"), total);
    assert_eq!(server.distinct_ids("*"), total as usize);
    assert!(
        dead_letters(state.path()).is_empty(),
        "no half line was shipped"
    );
}

/// Many more log files than the shipper keeps open: all are shipped, with a bounded number of file
/// descriptors.
#[test]
fn many_files_with_bounded_descriptors() {
    let server = Server::start(Kind::Noida);
    let dns = lines_of(&fixtures().join("zeek-json/dns.log"));
    let logs = tempfile::tempdir().unwrap();
    let files = 600;
    for k in 0..files {
        let dir = logs.path().join(format!("shard-{}", k % 4));
        fs::create_dir_all(&dir).unwrap();
        let lines = &dns[k % 60..k % 60 + 3];
        fs::write(dir.join(format!("dns.{k:04}.log")), lines.concat()).unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let proc = Proc::spawn(follow(
        &server,
        state.path(),
        logs.path(),
        &["--batch-wait", "50ms"],
    ));
    let total = 3 * files as u64;
    wait_until("every file", || server.count("zeek-*") == total);
    let fds = fs::read_dir(format!("/proc/{}/fd", proc.pid()))
        .unwrap()
        .count();
    assert!(fds < 300, "{fds} descriptors open for {files} files");
    proc.signal(Signal::SIGTERM);
    let (status, err) = proc.wait();
    assert!(status.success(), "{err}");
    assert_eq!(server.distinct_ids("zeek-*"), total as usize);
}
