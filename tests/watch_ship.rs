//! Continuous mode with `--ship`: a streamed capture is deleted only once the logs covering its time
//! range are acknowledged by the server. Real parts: shardcap watching a spool, two tcpdump
//! consumers logging one JSON record per packet (its packet time as `ts`), the noida-db stand-in.

mod common;
mod ship_support;

use std::fs;
use std::path::Path;

use common::{ipv4_frame, rec, write_pcap, Endpoint, Rec};
use nix::sys::signal::Signal;
use ship_support::*;

/// The consumer: every packet of the shard as `{"ts":SECONDS}` in `{logdir}/packets.log` (a Zeek
/// JSON log to the shipper).
const CONSUMER: &str = r#"tcpdump -r {input} -tt -n -l 2>/dev/null | sed -u 's/^\([0-9.]*\) .*/{"ts":\1}/' > {logdir}/packets.log"#;

/// 2024-03-01T00:00:00Z in ns.
const T0: u64 = 1_709_251_200_000_000_000;

/// Capture `k`: 200 UDP packets a millisecond apart over 37 flows, ending in one packet of each
/// flow at the same last instant, so that every shard logs a record of the file's last packet time.
fn capture(k: u64) -> Vec<Rec> {
    let t0 = T0 + k * 1_000_000_000;
    let frame = |flow: u64| {
        let src = Endpoint {
            ip: [10, 0, 0, 1],
            port: 40_000 + flow as u16,
        };
        let dst = Endpoint {
            ip: [10, 0, 1, flow as u8],
            port: 53,
        };
        ipv4_frame(src, dst, None, &k.to_be_bytes())
    };
    let mut recs: Vec<Rec> = (0..200)
        .map(|i| rec(t0 + i * 1_000_000, frame(i % 37)))
        .collect();
    recs.extend((0..37).map(|flow| rec(t0 + 200_000_000, frame(flow))));
    recs
}

/// Writes capture `k` beside the spool and renames it in (as a complete file).
fn drop_in(spool: &Path, k: u64) -> (std::path::PathBuf, usize) {
    let recs = capture(k);
    let stage = spool.parent().unwrap().join(format!("c{k}.pcap"));
    write_pcap(&stage, 1, false, &recs);
    let path = spool.join(format!("sensor-{k}.pcap"));
    fs::rename(&stage, &path).unwrap();
    (path, recs.len())
}

/// Records the consumers logged so far, over all shards.
fn logged(logs: &Path) -> usize {
    (0..2)
        .map(|k| logs.join(format!("shard-{k}/packets.log")))
        .filter(|p| p.exists())
        .map(|p| records(&p))
        .sum()
}

#[test]
fn a_streamed_capture_is_deleted_once_its_logs_are_acknowledged() {
    let mut server = Server::start(Kind::Noida);
    let dir = tempfile::tempdir().unwrap();
    let (spool, logs) = (dir.path().join("spool"), dir.path().join("logs"));
    fs::create_dir_all(&spool).unwrap();
    let mut cmd = shardcap(["run", "--watch"]);
    cmd.arg(&spool)
        .args(["--settle", "0", "--horizon", "0s", "--retention", "delete"])
        .args(["-n", "2", "--exec", CONSUMER, "--log-dir"])
        .arg(&logs)
        .args(["--ship", &server.url, "--batch-wait", "100ms"])
        .args(["--retry-max", "500ms"]);
    let run = Proc::spawn(cmd);

    // Server up: the first capture is streamed, logged, shipped, and deleted.
    let (first, n1) = drop_in(&spool, 0);
    wait_until("the first capture's packets logged", || logged(&logs) == n1);
    wait_until("the first capture deleted", || !first.exists());
    wait_until("the first capture's records indexed", || {
        server.count("zeek-*") == n1 as u64
    });

    // Server down: the second capture is streamed and logged, but its logs cannot be acknowledged,
    // so it stays in the spool.
    server.stop();
    let (second, n2) = drop_in(&spool, 1);
    wait_until("the second capture's packets logged", || {
        logged(&logs) == n1 + n2
    });
    assert!(
        second.exists(),
        "deleted although its logs were not acknowledged"
    );

    // Server back: its logs are acknowledged and it goes.
    server.restart();
    wait_until("the second capture deleted", || !second.exists());
    assert_eq!(
        server.count("zeek-*"),
        (n1 + n2) as u64,
        "every packet logged and indexed once"
    );

    run.signal(Signal::SIGTERM);
    let (status, stderr) = run.wait();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(logged(&logs), n1 + n2, "no packet lost or repeated");
}
