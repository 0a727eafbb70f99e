//! End to end with real Suricata 7 (installed by .ci/run from bookworm-backports): N instances fed
//! by shardcap reconstruct the same sessions and raise the same alerts as one Suricata reading the
//! whole, ordered capture; feeding the files of a rotated capture one at a time does not.
//!
//! Compared: the set of flow records (community_id, proto, packets and bytes each way, start, end)
//! and the set of alerts (signature_id, community_id, timestamp) under the shipped rules. Every
//! difference is printed before the assertion.

mod common;
mod ids_support;

use std::path::{Path, PathBuf};

use common::{corpus, shardcap};
use ids_support::{
    assert_fed_by_default_fifos, expect_success, shard_dirs, split_by_time, suricata_once, Eve,
};

/// Shard counts compared with the reference.
const SHARDS: [usize; 3] = [1, 2, 4];

/// `shardcap run --ids suricata -n N` over `inputs` (in the order given), with `extra` options;
/// the union of the shards' eve.json.
fn sharded(inputs: &[PathBuf], n: usize, dir: &Path, extra: &[String]) -> Eve {
    let log_dir = dir.join(format!("logs-n{n}"));
    let mut args = vec![
        "run".to_string(),
        "--ids".into(),
        "suricata".into(),
        "-n".into(),
        n.to_string(),
        "--log-dir".into(),
        log_dir.display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    let out = shardcap(&args);
    expect_success(&out, &format!("--ids suricata -n {n}"));
    Eve::read(&shard_dirs(&log_dir, n))
}

/// Asserts that shardcap with every N in [`SHARDS`] (and `extra` options) matches `reference`
/// exactly.
fn assert_same_as_reference(
    inputs: &[PathBuf],
    reference: &Eve,
    dir: &Path,
    what: &str,
    extra: impl Fn(usize) -> Vec<String>,
) {
    assert!(
        !reference.flows.is_empty(),
        "{what}: the reference saw no flows; the comparison would prove nothing"
    );
    let mut failures = Vec::new();
    for n in SHARDS {
        let eve = sharded(inputs, n, dir, &extra(n));
        let (flows, alerts) = eve.diff(reference, &format!("{what}, N={n}"));
        if flows + alerts > 0 {
            failures.push(format!(
                "N={n}: {flows} flow and {alerts} alert differences"
            ));
        }
    }
    assert!(failures.is_empty(), "{what}: {}", failures.join("; "));
}

/// A corpus capture with HTTP, DNS and TLS rotated into 4 files by time in `dir`: the files in
/// time order, the same files in `order`, and one Suricata's view of the original capture.
fn rotated(dir: &Path, order: [usize; 4]) -> (Vec<PathBuf>, Vec<PathBuf>, Eve) {
    let original = corpus("pcapplusplus/realistic-mixed-http-dns-2013.pcap");
    let parts = split_by_time(&original, 4, dir);
    let shuffled = order.iter().map(|&i| parts[i].clone()).collect();
    let ref_dir = dir.join("reference");
    suricata_once(&original, &ref_dir);
    let reference = Eve::read(&[ref_dir]);
    assert!(!reference.alerts.is_empty(), "no alerts to compare");
    (parts, shuffled, reference)
}

/// Corpus captures, each as one input: the sharded runs equal the single run.
#[test]
fn corpus_captures_sharded_equal_one_suricata() {
    let mut alerts = 0;
    for rel in [
        "pcapplusplus/realistic-mixed-http-dns-2013.pcap",
        "pcapplusplus/realistic-tls-sessions-2021.pcap",
        "ndpi/realistic-mixed-apps-1kxun.pcap",
        "zeek/echo-connections-82k-packets.pcap",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let input = corpus(rel);
        let ref_dir = dir.path().join("reference");
        suricata_once(&input, &ref_dir);
        let reference = Eve::read(&[ref_dir]);
        alerts += reference.alerts.len();
        assert_same_as_reference(&[input], &reference, dir.path(), rel, |_| Vec::new());
    }
    assert!(
        alerts > 0,
        "the shipped rules raised no alert: alerts went untested"
    );
}

/// A capture rotated into 4 files by time (TCP sessions cross every cut), named on the command
/// line in shuffled order: shardcap's time merge and sharding give exactly the reference's flows
/// and alerts; the naive per-file feed loses sessions.
#[test]
fn rotated_capture_in_shuffled_order_equals_one_suricata_and_naive_per_file_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (parts, shuffled, reference) = rotated(dir.path(), [2, 0, 3, 1]);
    assert_same_as_reference(
        &shuffled,
        &reference,
        dir.path(),
        "rotated, shuffled",
        |_| Vec::new(),
    );

    // The naive way: each file to its own Suricata, as per-file importers do.
    let naive_dirs: Vec<PathBuf> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let d = dir.path().join(format!("naive-{i}"));
            suricata_once(p, &d);
            d
        })
        .collect();
    let naive = Eve::read(&naive_dirs);
    let lost_sessions = reference.flows.difference(&naive.flows).count();
    let lost_alerts = reference.alerts.difference(&naive.alerts).count();
    eprintln!(
        "naive per-file feed: {lost_sessions} of {} reference sessions are missing or cut \
         ({} flow records instead of {}), {lost_alerts} of {} alerts differ",
        reference.flows.len(),
        naive.flows.len(),
        reference.flows.len(),
        reference.alerts.len()
    );
    assert!(
        lost_sessions > 0,
        "the cuts should split sessions; the split proves nothing"
    );
}

/// The same comparison through the pcapdir spool (`-o dir:`): each Suricata reads its shard's
/// directory in continuous mode and deletes what it has read; shardcap stops it once its
/// directory is empty after the end marker.
#[test]
fn rotated_capture_through_the_spool_equals_one_suricata() {
    let dir = tempfile::tempdir().unwrap();
    let (_, shuffled, reference) = rotated(dir.path(), [3, 1, 0, 2]);
    let spool = |n: usize| dir.path().join(format!("spool-n{n}"));
    assert_same_as_reference(&shuffled, &reference, dir.path(), "spool", |n| {
        vec!["-o".into(), format!("dir:{}", spool(n).display())]
    });
    for n in SHARDS {
        for k in 0..n {
            let shard = spool(n).join(format!("shard-{k}"));
            let left: Vec<_> = std::fs::read_dir(&shard).unwrap().collect();
            assert!(left.is_empty(), "{}: segments left unread", shard.display());
            // A shard without packets opens no spool and starts no Suricata.
            let started = dir
                .path()
                .join(format!("logs-n{n}/shard-{k}/console.log"))
                .exists();
            assert_eq!(
                spool(n).join(format!("shard-{k}.end")).exists(),
                started,
                "{}",
                shard.display()
            );
        }
    }
}

/// A capture of one host pair (FTP control and data) over 4 shards: one shard gets every packet
/// and the three others start no Suricata (which cannot read a stream without packets); the run
/// succeeds with the reference's flows and alerts, each instance's packet count reconciled.
#[test]
fn shards_without_packets_start_no_suricata() {
    let dir = tempfile::tempdir().unwrap();
    let input = corpus("suricata-verify/bug-4877/input.pcap");
    let ref_dir = dir.path().join("reference");
    suricata_once(&input, &ref_dir);
    let reference = Eve::read(&[ref_dir]);
    assert_same_as_reference(&[input], &reference, dir.path(), "one host pair", |_| {
        vec!["-v".into()]
    });
    let started: Vec<usize> = (0..4)
        .filter(|k| {
            dir.path()
                .join(format!("logs-n4/shard-{k}/eve.json"))
                .exists()
        })
        .collect();
    assert_eq!(started.len(), 1, "instances started at N=4: {started:?}");
}

/// Without `-o` each Suricata reads its FIFO `LOGDIR/shard-K.pipe`: the default feed, cheaper in
/// CPU than the spool (docs/PERFORMANCE.md, "Suricata and Zeek: FIFO or spool"); the run succeeds,
/// so every instance decoded the packets its shard was sent.
#[test]
fn the_default_feed_is_one_fifo_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("logs");
    let input = corpus("pcapplusplus/realistic-mixed-http-dns-2013.pcap");
    let run = shardcap([
        "-v".as_ref(),
        "run".as_ref(),
        "--ids".as_ref(),
        "suricata".as_ref(),
        "-n".as_ref(),
        "2".as_ref(),
        "--log-dir".as_ref(),
        log_dir.as_os_str(),
        input.as_os_str(),
    ]);
    expect_success(&run, "--ids suricata without -o");
    assert_eq!(assert_fed_by_default_fifos(&run, &log_dir, 2, "-r "), 2);
}
