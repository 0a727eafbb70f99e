//! Durability: the shipper killed with SIGKILL at random moments and restarted, and the server
//! stopped and restarted under it; in the end every record is indexed exactly once.

mod common;
mod ship_support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use shardcap_gen::rng::Rng;
use ship_support::*;

/// Real Suricata output of four corpus captures (one shard each) and both Zeek fixture sets.
fn many_logs(dir: &Path) -> usize {
    let captures = [
        "pcapplusplus/realistic-mixed-http-dns-2013.pcap",
        "pcapplusplus/realistic-tls-sessions-2021.pcap",
        "ndpi/realistic-mixed-apps-1kxun.pcap",
        "zeek/echo-connections-82k-packets.pcap",
    ];
    let mut n = 0;
    for (k, c) in captures.iter().enumerate() {
        n += suricata_eve(c, &dir.join(format!("shard-{k}")));
    }
    n + copy_fixtures("zeek-tsv", &dir.join("shard-4/zeek"))
        + copy_fixtures("zeek-json", &dir.join("shard-5/zeek"))
}

/// The generator's PRNG with a seed from the clock, printed so a failing run can be repeated
/// (`SHARDCAP_TEST_SEED`).
fn seeded_rng() -> Rng {
    let seed = std::env::var("SHARDCAP_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed {seed}");
    Rng::new(seed)
}

#[test]
fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let server = Server::start(Kind::Noida);
    let logs = tempfile::tempdir().unwrap();
    let total = many_logs(logs.path()) as u64;
    let state = tempfile::tempdir().unwrap();
    let args = [
        "ship",
        "--es",
        &server.url,
        "--state",
        state.path().to_str().unwrap(),
        "--batch-docs",
        "25",
        "--max-in-flight",
        "3",
        logs.path().to_str().unwrap(),
    ];
    let mut rng = seeded_rng();
    let mut counts = Vec::new();
    for _ in 0..6 {
        let proc = Proc::spawn(shardcap(args));
        std::thread::sleep(Duration::from_millis(20 + rng.below(600)));
        proc.signal(Signal::SIGKILL);
        let _ = proc.wait();
        counts.push(server.count("*"));
    }
    eprintln!("indexed after each kill: {counts:?} of {total}");
    assert!(counts.windows(2).all(|w| w[0] <= w[1]));
    let (code, err) = ship(&args[1..]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.count("*"), total, "every record, and none twice");
    assert_eq!(server.distinct_ids("*"), total as usize);
    assert!(dead_letters(state.path()).is_empty());
}

#[test]
fn server_stopped_and_restarted_mid_run_loses_nothing() {
    let mut server = Server::start(Kind::Noida);
    let logs = tempfile::tempdir().unwrap();
    let first = suricata_eve(
        "pcapplusplus/realistic-mixed-http-dns-2013.pcap",
        &logs.path().join("shard-0"),
    ) as u64;
    let state = tempfile::tempdir().unwrap();
    let stats_path = state.path().join("stats.json");
    let proc = Proc::spawn(follow(
        &server,
        state.path(),
        logs.path(),
        &[
            "--batch-docs",
            "50",
            "--batch-wait",
            "50ms",
            "--scan-interval",
            "100ms",
            "--retry-max",
            "300ms",
            "--stats-file",
            stats_path.to_str().unwrap(),
            "--stats-interval",
            "50ms",
        ],
    ));
    wait_until("the first logs are indexed", || server.count("*") == first);

    server.stop();
    let later = suricata_eve(
        "ndpi/realistic-mixed-apps-1kxun.pcap",
        &logs.path().join("shard-1"),
    ) as u64
        + copy_fixtures("zeek-tsv", &logs.path().join("shard-2")) as u64;
    let retries = |s: &serde_json::Value| s["retries"].as_u64().unwrap_or(0);
    let before = stats(&stats_path).map_or(0, |s| retries(&s));
    wait_until("the shipper meets the stopped server", || {
        stats(&stats_path)
            .is_some_and(|s| retries(&s) > before && s["lag_bytes"].as_u64() > Some(0))
    });
    server.restart();
    wait_until("everything is indexed after the restart", || {
        server.count("*") == first + later
    });
    proc.signal(Signal::SIGTERM);
    let (status, err) = proc.wait();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("Connection refused") || err.contains("connection"),
        "{err}"
    );
    assert_eq!(server.count("*"), first + later);
    assert_eq!(server.distinct_ids("*"), (first + later) as usize);
    let s = stats(&stats_path).unwrap();
    assert_eq!(
        s["records_shipped"].as_u64().unwrap() + s["records_existing"].as_u64().unwrap(),
        first + later
    );
}
