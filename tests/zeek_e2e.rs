//! End to end with the real Zeek (8.2 at SHARDCAP_TEST_ZEEK, 8.0 LTS at SHARDCAP_TEST_ZEEK_LTS;
//! scripts/ci/install-deps installs both): N Zeek instances fed by `shardcap run --ids zeek`,
//! through FIFOs and through the pcapdir spool with the `pcapdir::` plugin built here, log the
//! same as one Zeek over the merged input; each instance processed exactly the packets shardcap
//! sent its shard; feeding the files of a rotated capture one Zeek each does not give the same.
//!
//! Compared (zeek_support::ZeekLogs): conn.log's flow fields (community_id, proto, service,
//! state, packets and IP bytes each way, history, start) and the dns, http, ssl, files, weird and
//! notice logs without their per-process fields (uids, fuids, node name). Every difference is
//! printed before the assertion.
//!
//! `--ids zeek-cluster`: the cluster's logger alone logs what the N plain instances log, and
//! known_hosts.log, fed by every worker, lists each host once.
//!
//! The flow key is the address pair (`--hash 2-tuple`): with the 5-tuple, linked flows part (FTP
//! data from its control connection, so files.log loses its FTP_DATA files and conn.log the
//! ftp-data service; the two UDP flows of a VXLAN or Geneve tunnel whose endpoints use different
//! source ports, so the inner ICMP connection is seen one way only).

mod common;
mod ids_support;
mod zeek_support;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{finished, manifest, shardcap, stats, Run};
use ids_support::{assert_fed_by_default_fifos, expect_success, shard_dirs};
use shardcap::ids::zeek::packets_seen;
use zeek_support::{ZeekInstall, ZeekLogs};

/// Shard counts compared with the reference.
const SHARDS: [usize; 4] = [1, 2, 4, 7];

/// How the shards reach Zeek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Fifo,
    Spool,
}

/// `shardcap run --ids zeek --hash 2-tuple -n N` over `inputs` with `zeek`, through `via`: checks
/// that each instance processed the packets shardcap sent its shard, and returns the logs of all
/// shards.
fn sharded(zeek: &ZeekInstall, inputs: &[PathBuf], n: usize, via: Via, dir: &Path) -> ZeekLogs {
    let (log_dir, _) = run_ids(zeek, inputs, n, via, "zeek", dir);
    ZeekLogs::read(&shard_dirs(&log_dir, n))
}

/// `shardcap -v run --ids IDS --hash 2-tuple -n N` over `inputs` with `zeek`, through `via` (no
/// `-o` for FIFOs: the default feed): checks that each instance processed the packets shardcap
/// sent its shard, and returns the log directory and the run.
fn run_ids(
    zeek: &ZeekInstall,
    inputs: &[PathBuf],
    n: usize,
    via: Via,
    ids: &str,
    dir: &Path,
) -> (PathBuf, Run) {
    let tag = format!("{ids}-{via:?}-n{n}").to_lowercase();
    let log_dir = dir.join(format!("logs-{tag}"));
    let stats_file = dir.join(format!("stats-{tag}.json"));
    let mut args: Vec<OsString> = [
        "-v",
        "run",
        "--ids",
        ids,
        "--hash",
        "2-tuple",
        "-n",
        &n.to_string(),
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.extend(["--log-dir".into(), log_dir.clone().into()]);
    args.extend(["--stats-file".into(), stats_file.clone().into()]);
    if via == Via::Spool {
        let spool = dir.join(format!("spool-{tag}"));
        args.extend(["-o".into(), format!("dir:{}", spool.display()).into()]);
        args.extend(["--zeek-plugin".into(), zeek.plugin().into()]);
    }
    args.extend(inputs.iter().map(OsString::from));
    let mut cmd = common::command(&args);
    zeek.apply(&mut cmd);
    let run = finished(cmd.stdin(Stdio::null()).output().expect("run shardcap"));
    expect_success(&run, &tag);

    let st = stats(&stats_file);
    let dirs = shard_dirs(&log_dir, n);
    for (k, d) in dirs.iter().enumerate() {
        let sent = st["shards"][k]["packets"]
            .as_u64()
            .expect("per-shard packets");
        let seen = packets_seen(d).unwrap();
        assert!(
            seen == Some(sent) || (sent == 0 && seen.is_none()),
            "{tag}: shard {k}: shardcap sent {sent} packets, Zeek processed {seen:?}"
        );
    }
    (log_dir, run)
}

/// One Zeek (`zeek`) over `inputs` merged by time (`shardcap run -n 1 -o file:`), as a user
/// would run it on the whole capture.
fn reference(zeek: &ZeekInstall, inputs: &[PathBuf], dir: &Path) -> ZeekLogs {
    let merged = merge(inputs, dir);
    let ref_dir = dir.join("reference");
    zeek.once(&merged, &ref_dir);
    let logs = ZeekLogs::read(&[ref_dir]);
    assert!(
        logs.count("conn") > 0,
        "the reference logged no connection; the comparison would prove nothing"
    );
    logs
}

/// `inputs` merged by time into one capture in `dir` (`shardcap run -n 1 -o file:`).
fn merge(inputs: &[PathBuf], dir: &Path) -> PathBuf {
    let merged = dir.join("merged.pcap");
    let mut args: Vec<OsString> = vec![
        "run".into(),
        "-n".into(),
        "1".into(),
        "-o".into(),
        format!("file:{}", merged.display()).into(),
    ];
    args.extend(inputs.iter().map(OsString::from));
    expect_success(&shardcap(&args), "merging the inputs");
    merged
}

/// Asserts that every run in `runs` (shard count, feed) gives exactly `reference`.
fn assert_same_as_reference(
    zeek: &ZeekInstall,
    inputs: &[PathBuf],
    reference: &ZeekLogs,
    dir: &Path,
    what: &str,
    runs: &[(usize, Via)],
) {
    let mut failures = Vec::new();
    for &(n, via) in runs {
        let logs = sharded(zeek, inputs, n, via, dir);
        let label = format!("{what}, {via:?}, N={n}");
        let differences = logs.diff(reference, &label);
        if differences > 0 {
            failures.push(format!("{label}: {differences} differences"));
        }
    }
    assert!(failures.is_empty(), "{what}: {}", failures.join("; "));
}

/// Every shard count through FIFOs and through the spool.
fn all_runs() -> Vec<(usize, Via)> {
    [Via::Fifo, Via::Spool]
        .iter()
        .flat_map(|&via| SHARDS.iter().map(move |&n| (n, via)))
        .collect()
}

/// The Ethernet captures of the corpus that Zeek reads, undamaged and small enough for CI:
/// tunnels (GRE, ERSPAN, VXLAN, Geneve, GTP, Teredo, IP-in-IP), IPv4 and IPv6 fragments, VLAN,
/// QinQ and MPLS, PPPoE, ICMP errors, IPv6 extension headers, HTTP, DNS, TLS, SMB, FTP, SMTP.
fn ethernet_captures() -> Vec<PathBuf> {
    let inputs: Vec<PathBuf> = manifest()
        .iter()
        .filter(|r| {
            r.link_types == "ETHERNET(1)"
                && !r.damaged
                && r.packets > 0
                && r.packets <= 20_000
                && [
                    "zeek/",
                    "pcapplusplus/realistic-",
                    "ndpi/",
                    "suricata-verify/",
                ]
                .iter()
                .any(|p| r.path.starts_with(p))
        })
        .map(|r| r.file())
        .collect();
    assert!(inputs.len() > 40, "corpus selection: {inputs:?}");
    inputs
}

/// `shardcap generate` output (2 sensors, 4 size-rotated files each) in `dir`, named in a
/// shuffled order.
fn rotated_set(dir: &Path) -> Vec<PathBuf> {
    let out = dir.join("generated");
    let run = shardcap([
        "generate".into(),
        "--out".into(),
        out.clone().into_os_string(),
        "--sensors".into(),
        "2".into(),
        "--files-per-sensor".into(),
        "4".into(),
        "--size".into(),
        "512K".into(),
        "--seed".into(),
        "11".into(),
    ] as [OsString; 11]);
    expect_success(&run, "generate");
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs = vec![out];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    [5, 2, 7, 0, 3, 6, 1, 4]
        .iter()
        .map(|&i| files[i].clone())
        .collect()
}

/// The corpus's Ethernet captures, one run of each kind: Zeek 8.2 through FIFOs and the spool at
/// every N logs what one Zeek logs over the merged captures.
#[test]
fn corpus_captures_sharded_equal_one_zeek() {
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    let inputs = ethernet_captures();
    let reference = reference(&zeek, &inputs, dir.path());
    for log in ["dns", "http", "ssl", "files", "weird"] {
        assert!(reference.count(log) > 0, "the reference has no {log}.log");
    }
    assert_same_as_reference(
        &zeek,
        &inputs,
        &reference,
        dir.path(),
        "corpus",
        &all_runs(),
    );
}

/// A generated multi-sensor set of rotated files named in shuffled order: shardcap's time merge
/// and sharding give exactly the reference's logs; one Zeek per file loses and cuts sessions.
#[test]
fn rotated_set_sharded_equals_one_zeek_and_per_file_zeek_does_not() {
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    let inputs = rotated_set(dir.path());
    let reference = reference(&zeek, &inputs, dir.path());
    assert_same_as_reference(
        &zeek,
        &inputs,
        &reference,
        dir.path(),
        "rotated set",
        &all_runs(),
    );

    // The naive way: each file to its own Zeek, as per-file importers do.
    let naive_dirs: Vec<PathBuf> = inputs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let d = dir.path().join(format!("naive-{i}"));
            zeek.once(p, &d);
            d
        })
        .collect();
    let naive = ZeekLogs::read(&naive_dirs);
    let (conn, naive_conn) = (&reference.logs["conn"], &naive.logs["conn"]);
    let lost: usize = conn
        .iter()
        .map(|(rec, &n)| n.saturating_sub(naive_conn.get(rec).copied().unwrap_or(0)))
        .sum();
    eprintln!(
        "naive per-file feed: {lost} of {} reference connections are missing or cut ({} conn \
         records instead of {}); {} records of the compared logs differ in all",
        reference.count("conn"),
        naive.count("conn"),
        reference.count("conn"),
        naive.diff(&reference, "per-file")
    );
    assert!(
        lost > 0,
        "the rotation should cut sessions; the contrast proves nothing"
    );
}

/// Zeek 8.0 (LTS) takes the older command line (a FIFO as a plain path) and its own build of the
/// plugin: two shards through FIFOs and through the spool log what one Zeek 8.0 logs.
#[test]
fn zeek_lts_through_fifos_and_the_spool_equals_one_zeek() {
    let zeek = ZeekInstall::lts();
    let dir = tempfile::tempdir().unwrap();
    let inputs = rotated_set(dir.path());
    let reference = reference(&zeek, &inputs, dir.path());
    assert_same_as_reference(
        &zeek,
        &inputs,
        &reference,
        dir.path(),
        "Zeek 8.0",
        &[(2, Via::Fifo), (2, Via::Spool)],
    );
}

/// Without `-o` each Zeek 8.2 reads its FIFO `LOGDIR/shard-K.pipe` through the `pcap::` source:
/// the default feed, which needs no plugin and no spool directory and costs no more CPU than the
/// spool (docs/PERFORMANCE.md, "Suricata and Zeek: FIFO or spool"); each instance processed the
/// packets its shard was sent (checked by `run_ids`).
#[test]
fn the_default_feed_is_one_fifo_per_shard() {
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    let input = common::corpus("pcapplusplus/realistic-mixed-http-dns-2013.pcap");
    let (log_dir, run) = run_ids(&zeek, &[input], 2, Via::Fifo, "zeek", dir.path());
    assert_eq!(
        assert_fed_by_default_fifos(&run, &log_dir, 2, "-r pcap::"),
        2
    );
}

/// The hosts in `dir`/known_hosts.log, each with the number of its records.
fn known_hosts(dir: &Path) -> BTreeMap<String, usize> {
    let path = dir.join("known_hosts.log");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hosts = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *hosts
            .entry(v["host"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    hosts
}

/// `--ids zeek-cluster` at N=2 and N=4 over the corpus captures: the logger alone writes what the
/// N plain instances write (every compared log, conn.log included), each worker processed its
/// shard's packets, and known_hosts.log, fed by every worker through the proxy, lists each host
/// once: the hosts one Zeek with the same tracking finds over the merged captures.
#[test]
fn zeek_cluster_logger_writes_what_the_plain_instances_write() {
    let zeek = ZeekInstall::latest();
    let dir = tempfile::tempdir().unwrap();
    let inputs = ethernet_captures();
    let plain = sharded(&zeek, &inputs, 2, Via::Fifo, dir.path());
    assert!(
        plain.count("conn") > 0,
        "the plain run logged no connection"
    );

    let merged = merge(&inputs, dir.path());
    let one = dir.path().join("known-hosts-reference");
    fs::create_dir_all(&one).unwrap();
    let out = zeek
        .command()
        .args(["-C", "-r"])
        .arg(&merged)
        .args([
            "LogAscii::use_json=T",
            "policy/protocols/conn/known-hosts",
            "Known::host_tracking=ALL_HOSTS",
        ])
        .current_dir(&one)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<String> = known_hosts(&one).into_keys().collect();
    assert!(
        !expected.is_empty(),
        "no known host; the comparison would prove nothing"
    );

    for n in [2, 4] {
        let (log_dir, _) = run_ids(&zeek, &inputs, n, Via::Fifo, "zeek-cluster", dir.path());
        let label = format!("zeek-cluster, N={n}");
        let logger = log_dir.join("logger");
        assert_eq!(
            ZeekLogs::read(std::slice::from_ref(&logger)).diff(&plain, &label),
            0,
            "{label}"
        );
        for k in 0..n {
            let shard = log_dir.join(format!("shard-{k}"));
            assert!(
                !shard.join("conn.log").exists(),
                "{label}: a worker logged locally"
            );
        }
        let hosts = known_hosts(&logger);
        let repeated: Vec<_> = hosts.iter().filter(|(_, &c)| c > 1).collect();
        assert!(
            repeated.is_empty(),
            "{label}: hosts logged more than once: {repeated:?}"
        );
        let found: Vec<String> = hosts.into_keys().collect();
        assert_eq!(found, expected, "{label}: known hosts");
    }
}
