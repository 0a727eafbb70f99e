//! Selecting what to reprocess, against independent tools: `--since/--until` against editcap's
//! `-A/-B` over mergecap's merge, `--filter` against tcpdump reading the same merge, `--dedup` on
//! a pile where two sensors saw every packet, the catalog cache of last packet times, and the
//! counts in the stats.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Runs one of Wireshark's or tcpdump's tools, insisting it is installed and succeeds.
fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("{program} is needed (Wireshark's tools and tcpdump, see scripts/ci/install-deps): {e}")
    });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// mergecap's merge of `files` (classic pcap) at `out`.
fn mergecap(files: &[PathBuf], out: &Path) {
    let mut args = vec!["-F", "pcap", "-w", s(out)];
    args.extend(files.iter().map(|f| s(f)));
    tool("mergecap", &args);
}

/// A generated multi-sensor pile (rotated files of three sensors) under `dir`; its files.
fn generated(dir: &Path) -> Vec<PathBuf> {
    let out = dir.join("pile");
    let run = shardcap([
        "generate",
        "--out",
        s(&out),
        "--sensors",
        "3",
        "--files-per-sensor",
        "4",
        "--size",
        "64K",
        "--duration",
        "40s",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 12, "{files:?}");
    files
}

/// Classic-pcap Ethernet captures of the corpus in microseconds, intact and in time order.
fn corpus_pile() -> Vec<PathBuf> {
    let files: Vec<PathBuf> = manifest()
        .into_iter()
        .filter(|r| {
            r.link_types == "ETHERNET(1)"
                && r.format.starts_with("pcap LE us")
                && !r.damaged
                && (1..5000).contains(&r.packets)
        })
        .map(|r| r.file())
        .filter(|f| non_decreasing(&read_capture(f).recs()))
        .collect();
    assert!(files.len() >= 20, "corpus Ethernet pcap files: {files:?}");
    files
}

/// `shardcap run -n N -o file:DIR/out-{shard}.pcap --stats-file DIR/stats.json EXTRA FILES`.
fn run_into(dir: &Path, shards: usize, extra: &[&str], files: &[PathBuf]) -> Run {
    let out = format!("file:{}/out-{{shard}}.pcap", s(dir));
    let stats = dir.join("stats.json");
    let n = shards.to_string();
    let mut args = vec!["run", "-n", &n, "-o", &out, "--stats-file", s(&stats)];
    args.extend(extra);
    args.extend(files.iter().map(|f| s(f)));
    shardcap(args)
}

/// The `select` figures of the stats file a run wrote into `dir`.
fn select_stats(dir: &Path) -> serde_json::Value {
    stats(&dir.join("stats.json"))["select"].clone()
}

/// Epoch seconds with nine decimals, as editcap and shardcap both take them.
fn epoch(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// RFC 3339 with an offset of +02:00 for `ns`.
fn rfc3339(ns: u64) -> String {
    let t = jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap();
    let offset = jiff::tz::Offset::from_hours(2).unwrap();
    t.display_with_offset(offset).to_string()
}

/// Checks `--since A --until B` against `editcap -A A -B B` over mergecap's merge of `files`,
/// packet for packet and in order, and the counts against the files as read independently.
fn range_matches_editcap(dir: &Path, files: &[PathBuf]) {
    let merged = dir.join("merged.pcap");
    mergecap(files, &merged);
    let all = read_capture(&merged).recs();
    let (since, until) = (all[all.len() / 3].ts_ns, all[all.len() * 2 / 3].ts_ns);
    let reference = dir.join("editcap.pcap");
    tool(
        "editcap",
        &[
            "-A",
            &epoch(since),
            "-B",
            &epoch(until),
            s(&merged),
            s(&reference),
        ],
    );
    let expected = read_capture(&reference).recs();
    assert!(!expected.is_empty() && expected.len() < all.len());
    let out = dir.join("run");
    std::fs::create_dir(&out).unwrap();
    let cache = dir.join("catalog.jsonl");
    let run = run_into(
        &out,
        1,
        &[
            "--since",
            &rfc3339(since),
            "--until",
            &epoch(until),
            "--catalog-cache",
            s(&cache),
        ],
        files,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = read_stream(&out.join("out-0.pcap")).unwrap().packets;
    assert!(got == expected, "{:?}", same_packets(expected.clone(), got));

    // Files wholly outside are not read; the packets left out of the others are counted.
    let (mut outside, mut cut) = (0, 0);
    for f in files {
        let recs = read_capture(f).recs();
        let (first, last) = (recs[0].ts_ns, recs.iter().map(|r| r.ts_ns).max().unwrap());
        if first >= until || last < since {
            outside += 1;
        } else {
            cut += recs
                .iter()
                .filter(|r| r.ts_ns < since || r.ts_ns >= until)
                .count();
        }
    }
    let sel = select_stats(&out);
    assert!(outside > 0, "the range leaves whole files out");
    assert_eq!(sel["files_outside_range"], outside);
    let left_out = sel["packets_before_range"].as_u64().unwrap()
        + sel["packets_after_range"].as_u64().unwrap();
    assert_eq!(left_out, cut as u64);
    assert!(run
        .stderr
        .contains(&format!("{outside} files outside the time range")));
}

#[test]
fn since_until_cut_a_generated_pile_as_editcap_cuts_mergecaps_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let files = generated(tmp.path());
    range_matches_editcap(tmp.path(), &files);
}

#[test]
fn since_until_cut_the_corpus_as_editcap_cuts_mergecaps_merge() {
    let tmp = tempfile::tempdir().unwrap();
    range_matches_editcap(tmp.path(), &corpus_pile());
}

#[test]
fn a_second_run_takes_last_packet_times_from_the_catalog_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let files = generated(tmp.path());
    let first = read_capture(&files[0]).recs();
    // A time inside sensor A's first file: every file starting before it is read to its end.
    let since = epoch(first[first.len() / 2].ts_ns);
    let state = tmp.path().join("state");
    let cache = state.join("catalog-cache.jsonl");
    // The first run keeps the cache in its journal directory; the second names it.
    let places = [["--state", s(&state)], ["--catalog-cache", s(&cache)]];
    let runs: Vec<Run> = places
        .iter()
        .enumerate()
        .map(|(i, place)| {
            let out = tmp.path().join(format!("run-{i}"));
            std::fs::create_dir(&out).unwrap();
            let extra = ["-v", "--since", &since, place[0], place[1]];
            let run = run_into(&out, 2, &extra, &files);
            assert_eq!(run.code, 0, "{}", run.stderr);
            run
        })
        .collect();
    let learned = std::fs::read_to_string(&cache).unwrap();
    let lines = learned.lines().count();
    assert!(
        lines >= 3,
        "one line a file starting before --since: {learned}"
    );
    assert!(
        runs[0].stderr.contains(&format!(
            "0 from the catalog cache, {lines} read to their end"
        )),
        "{}",
        runs[0].stderr
    );
    assert!(
        runs[1].stderr.contains(&format!(
            "{lines} from the catalog cache, 0 read to their end"
        )),
        "{}",
        runs[1].stderr
    );
}

#[test]
fn scan_describes_only_the_files_in_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    let files = generated(tmp.path());
    let starts: Vec<u64> = files
        .iter()
        .map(|f| read_capture(f).recs()[0].ts_ns)
        .collect();
    let until = *starts.iter().max().unwrap();
    let mut args = vec!["scan".to_string(), "--until".into(), epoch(until)];
    args.extend(files.iter().map(|f| s(f).to_string()));
    let run = shardcap(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = run.stdout.lines().count();
    assert_eq!(listed, starts.iter().filter(|&&t| t < until).count());
    assert!(listed < files.len());
}

/// Checks `--filter EXPR` against `tcpdump -r MERGED -w - EXPR`, in order with one shard and as
/// a multiset over three, and the count of packets left out.
fn filter_matches_tcpdump(dir: &Path, files: &[PathBuf], exprs: &[&str]) {
    let merged = dir.join("merged.pcap");
    mergecap(files, &merged);
    let all = read_capture(&merged).recs();
    for (i, expr) in exprs.iter().enumerate() {
        let reference = dir.join(format!("tcpdump-{i}.pcap"));
        tool("tcpdump", &["-r", s(&merged), "-w", s(&reference), expr]);
        let expected = read_capture(&reference).recs();
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{expr}: {} of {} packets match",
            expected.len(),
            all.len()
        );
        for shards in [1, 3] {
            let out = dir.join(format!("run-{i}-{shards}"));
            std::fs::create_dir(&out).unwrap();
            let run = run_into(&out, shards, &["--filter", expr], files);
            assert_eq!(run.code, 0, "{expr}: {}", run.stderr);
            let streams = read_shards(&out, "out", shards).unwrap();
            let got: Vec<Rec> = streams.into_iter().flat_map(|s| s.packets).collect();
            if shards == 1 {
                assert!(
                    got == expected,
                    "{expr}: {:?}",
                    same_packets(expected.clone(), got)
                );
            } else {
                same_packets(expected.clone(), got).unwrap_or_else(|e| panic!("{expr}: {e}"));
            }
            let sel = select_stats(&out);
            assert_eq!(sel["packets_filtered"], (all.len() - expected.len()) as u64);
        }
    }
}

#[test]
fn filter_keeps_what_tcpdump_keeps_of_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    filter_matches_tcpdump(
        tmp.path(),
        &corpus_pile(),
        &[
            "tcp port 80",
            "udp and not port 53",
            "vlan or mpls",
            "greater 1000",
            "ip6",
        ],
    );
}

#[test]
fn filter_keeps_what_tcpdump_keeps_of_a_generated_pile() {
    let tmp = tempfile::tempdir().unwrap();
    filter_matches_tcpdump(
        tmp.path(),
        &generated(tmp.path()),
        &["tcp[tcpflags] & tcp-syn != 0", "host 10.1.0.10 or udp"],
    );
}

#[test]
fn filter_applies_to_each_input_on_its_own_link_type_when_normalising() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        corpus("pcapplusplus/linux-sll-518pkts.pcap"),
        corpus("pcapplusplus/realistic-mixed-http-dns-2013.pcap"),
    ];
    let expr = "tcp";
    let mut expected = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let reference = tmp.path().join(format!("tcpdump-{i}.pcap"));
        tool("tcpdump", &["-r", s(f), "-w", s(&reference), expr]);
        expected.extend(read_capture(&reference).recs());
    }
    let run = run_into(
        tmp.path(),
        1,
        &["--link-type", "ethernet", "--filter", expr],
        &files,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = read_stream(&tmp.path().join("out-0.pcap")).unwrap().packets;
    // The SLL packets were converted to Ethernet frames: compare their times.
    let times = |recs: &[Rec]| {
        let mut t: Vec<u64> = recs.iter().map(|r| r.ts_ns).collect();
        t.sort_unstable();
        t
    };
    let want = times(&expected);
    assert_eq!(times(&got), want);
    let total: usize = files.iter().map(|f| read_capture(f).packets.len()).sum();
    assert_eq!(
        select_stats(tmp.path())["packets_filtered"],
        (total - want.len()) as u64
    );
}

#[test]
fn a_filter_that_does_not_compile_is_a_usage_error_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [corpus("gopacket/udp-dns.pcap")];
    let run = run_into(tmp.path(), 2, &["--filter", "port banana"], &files);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("\"port banana\""), "{}", run.stderr);
    assert!(!tmp.path().join("out-0.pcap").exists());
    assert!(!tmp.path().join("stats.json").exists());
}

/// Where the network header of an Ethernet frame starts (after any VLAN tags).
fn network_offset(frame: &[u8]) -> usize {
    let mut off = 12;
    while frame[off..off + 2] == [0x81, 0x00] {
        off += 4;
    }
    off + 2
}

/// `frame` with its VLAN tags replaced by one tag `vlan`.
fn retag(frame: &[u8], vlan: u16) -> Vec<u8> {
    let net = network_offset(frame);
    let mut f = frame[..12].to_vec();
    f.extend([0x81, 0x00]);
    f.extend(vlan.to_be_bytes());
    f.extend(&frame[net - 2..]);
    f
}

/// `frame` one router further: TTL or hop limit less one (the IPv4 header checksum updated).
fn one_hop_later(mut frame: Vec<u8>) -> Vec<u8> {
    let ip = network_offset(&frame);
    match frame[ip] >> 4 {
        4 => {
            frame[ip + 8] -= 1;
            let ihl = usize::from(frame[ip] & 0x0f) * 4;
            frame[ip + 10..ip + 12].fill(0);
            let sum: u32 = frame[ip..ip + ihl]
                .chunks(2)
                .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                .sum();
            let folded = (sum & 0xffff) + (sum >> 16);
            let check = !((folded & 0xffff) + (folded >> 16)) as u16;
            frame[ip + 10..ip + 12].copy_from_slice(&check.to_be_bytes());
        }
        6 => frame[ip + 7] -= 1,
        v => panic!("IP version {v}"),
    }
    frame
}

#[test]
fn dedup_keeps_one_copy_of_what_two_sensors_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let files = generated(tmp.path());
    // Sensor A's traffic as two sensors see it: VLAN 100 on one side; VLAN 200, one hop later
    // and 1.5 ms later on the other.
    let single: Vec<Rec> = files[..4]
        .iter()
        .flat_map(|f| read_capture(f).recs())
        .collect();
    let a: Vec<Rec> = single
        .iter()
        .map(|r| rec(r.ts_ns, retag(&r.data, 100)))
        .collect();
    let b: Vec<Rec> = single
        .iter()
        .map(|r| rec(r.ts_ns + 1_500_000, one_hop_later(retag(&r.data, 200))))
        .collect();
    assert!(a.iter().zip(&b).all(|(x, y)| x.data != y.data));
    let pile = [tmp.path().join("a.pcap"), tmp.path().join("b.pcap")];
    write_pcap(&pile[0], 1, false, &a);
    write_pcap(&pile[1], 1, false, &b);
    for (window, dropped) in [("5ms", a.len()), ("1ms", 0)] {
        let out = tmp.path().join(format!("run-{window}"));
        std::fs::create_dir(&out).unwrap();
        let run = run_into(&out, 1, &["--dedup", window], &pile);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let got = read_stream(&out.join("out-0.pcap")).unwrap().packets;
        assert_eq!(got.len(), 2 * a.len() - dropped, "--dedup {window}");
        if dropped > 0 {
            assert!(got == a, "{:?}", same_packets(a.clone(), got));
        }
        assert_eq!(select_stats(&out)["packets_duplicate"], dropped as u64);
    }
}
