//! Order: sessions split over rotated files come out whole and in time order whatever order the
//! files are named in; overlapping sensors interleave by time; `--order given` streams file by
//! file; shards stay time-ordered over the corpus; disorder is counted.

mod common;

use std::path::Path;

use common::{
    ipv4_frame, non_decreasing, read_capture, read_shards, rec, same_packets, shardcap, stats,
    tcp_session, write_pcap, Endpoint, Rec,
};

const T0: u64 = 1_600_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn ep(host: u8, port: u16) -> Endpoint {
    Endpoint {
        ip: [10, 0, 0, host],
        port,
    }
}

/// Runs `shardcap run -n N -o file:DIR/s-{shard}.pcap --stats-file DIR/stats.json ARGS... INPUTS...`.
fn run(dir: &Path, shards: usize, args: &[&str], inputs: &[&Path]) -> common::Run {
    let mut all: Vec<String> = vec![
        "run".into(),
        "-n".into(),
        shards.to_string(),
        "-o".into(),
        format!("file:{}/s-{{shard}}.pcap", dir.display()),
        "--stats-file".into(),
        dir.join("stats.json").display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(inputs.iter().map(|p| p.display().to_string()));
    shardcap(all)
}

#[test]
fn sessions_split_over_shuffled_rotated_files_come_out_whole_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    // Eight concurrent sessions, 0.3 ms apart, each 20 packets 1 ms apart.
    let sessions: Vec<Vec<Rec>> = (0..8u16)
        .map(|i| {
            let client = ep(1 + i as u8, 40_000 + i);
            tcp_session(client, ep(200, 80), T0 + u64::from(i) * 300_000, MS, 7)
        })
        .collect();
    let mut all: Vec<Rec> = sessions.iter().flatten().cloned().collect();
    all.sort();
    // Rotate like tcpdump -C: three consecutive files; name them so that their order on the
    // command line is not their time order.
    let third = all.len() / 3;
    let parts = [&all[..third], &all[third..2 * third], &all[2 * third..]];
    let names = ["b.pcap", "c.pcap", "a.pcap"];
    for (name, part) in names.iter().zip(parts) {
        write_pcap(&tmp.path().join(name), 1, false, part);
    }
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let inputs: Vec<_> = ["a.pcap", "c.pcap", "b.pcap"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    let r = run(&out, 3, &[], &refs);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let streams = read_shards(&out, "s", 3).unwrap();
    let got: Vec<Rec> = streams.iter().flat_map(|s| s.packets.clone()).collect();
    same_packets(all.clone(), got).unwrap();
    let mut used = 0;
    for s in &streams {
        assert!(non_decreasing(&s.packets));
        used += usize::from(!s.packets.is_empty());
    }
    assert!(used >= 2, "eight sessions should spread over the shards");
    for (i, session) in sessions.iter().enumerate() {
        let holders: Vec<&common::Stream> = streams
            .iter()
            .filter(|s| s.packets.iter().any(|p| session.contains(p)))
            .collect();
        assert_eq!(holders.len(), 1, "session {i} split over shards");
        let seen: Vec<&Rec> = holders[0]
            .packets
            .iter()
            .filter(|p| session.contains(p))
            .collect();
        let want: Vec<&Rec> = session.iter().collect();
        assert_eq!(seen, want, "session {i}: whole and in order");
    }
}

/// Two sensors seeing different flows at interleaved times: A at even, B at odd milliseconds.
fn sensors(dir: &Path) -> (Vec<Rec>, Vec<Rec>) {
    let sensor = |host: u8, offset: u64| -> Vec<Rec> {
        (0..50u16)
            .map(|i| {
                let frame = ipv4_frame(
                    ep(host, 5000 + i % 5),
                    ep(100 + host, 53),
                    None,
                    format!("sensor {host} #{i}").as_bytes(),
                );
                rec(T0 + (2 * u64::from(i) + offset) * MS, frame)
            })
            .collect()
    };
    let (a, b) = (sensor(1, 0), sensor(2, 1));
    write_pcap(&dir.join("sensor-a.pcap"), 1, false, &a);
    write_pcap(&dir.join("sensor-b.pcap"), 1, true, &b);
    (a, b)
}

/// Runs the two sensors' files, b named first, into one shard; returns the sensors' packets,
/// the stream and the stats.
fn run_sensors(order: &str) -> (Vec<Rec>, Vec<Rec>, common::Stream, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = sensors(tmp.path());
    let files = [
        tmp.path().join("sensor-b.pcap"),
        tmp.path().join("sensor-a.pcap"),
    ];
    let r = run(tmp.path(), 1, &["--order", order], &[&files[0], &files[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = read_shards(tmp.path(), "s", 1).unwrap().remove(0);
    (a, b, s, stats(&tmp.path().join("stats.json")))
}

#[test]
fn overlapping_sensors_interleave_by_time() {
    let (a, b, s, st) = run_sensors("time");
    assert!(s.nanos, "sensor b is nanosecond: so is the stream");
    let mut want: Vec<Rec> = a.into_iter().chain(b).collect();
    want.sort();
    assert_eq!(s.packets, want, "strictly alternating, in time order");
    assert_eq!(st["out_of_order"], 0);
}

#[test]
fn order_given_streams_file_by_file() {
    let (a, b, s, st) = run_sensors("given");
    let older = a.len();
    let want: Vec<Rec> = b.into_iter().chain(a).collect();
    assert_eq!(s.packets, want, "all of b, then all of a");
    assert_eq!(
        st["out_of_order"], older,
        "every packet of a is older than b's newest: each counts as out of order"
    );
}

/// Ethernet captures of the corpus read whole, undamaged and in time order.
fn ordered_ethernet_captures() -> Vec<(std::path::PathBuf, Vec<Rec>, bool)> {
    common::manifest()
        .into_iter()
        .filter(|row| !row.damaged)
        .filter_map(|row| {
            let cap = read_capture(&row.file());
            let recs = cap.recs();
            let usable = cap.error.is_none()
                && cap.linktypes == [1]
                && !recs.is_empty()
                && non_decreasing(&recs);
            usable.then(|| (row.file(), recs, cap.sub_micro))
        })
        .collect()
}

#[test]
fn shards_are_time_ordered_when_every_input_is() {
    let captures = ordered_ethernet_captures();
    assert!(captures.len() >= 40, "{} captures", captures.len());
    let nanos = captures.iter().any(|c| c.2);
    let tmp = tempfile::tempdir().unwrap();
    let inputs: Vec<&Path> = captures.iter().map(|c| c.0.as_path()).collect();
    let r = run(tmp.path(), 3, &[], &inputs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let streams = read_shards(tmp.path(), "s", 3).unwrap();
    for (k, s) in streams.iter().enumerate() {
        assert_eq!(s.nanos, nanos);
        assert!(non_decreasing(&s.packets), "shard {k} goes back in time");
    }
    // A capture holding the same packets as an earlier one (the corpus has a few, in other
    // pcapng block layouts) is read once.
    let mut seen: Vec<&Vec<Rec>> = Vec::new();
    for c in &captures {
        if !seen.contains(&&c.1) {
            seen.push(&c.1);
        }
    }
    let copies = captures.len() - seen.len();
    let want: Vec<Rec> = seen
        .into_iter()
        .flatten()
        .map(|r| if nanos { r.clone() } else { r.at_micros() })
        .collect();
    let got: Vec<Rec> = streams.iter().flat_map(|s| s.packets.clone()).collect();
    same_packets(want, got).unwrap();
    let st = stats(&tmp.path().join("stats.json"));
    assert_eq!(st["out_of_order"], 0);
    assert_eq!(st["files_done"], captures.len() as u64);
    assert_eq!(st["files_duplicate"], copies as u64);
}

#[test]
fn disorder_within_a_file_is_counted() {
    let mut checked = Vec::new();
    for row in common::manifest() {
        let cap = read_capture(&row.file());
        let recs = cap.recs();
        let backward = recs.windows(2).filter(|w| w[1].ts_ns < w[0].ts_ns).count() as u64;
        if row.damaged || cap.error.is_some() || cap.linktypes.len() != 1 || backward == 0 {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let r = run(tmp.path(), 1, &[], &[&row.file()]);
        assert_eq!(r.code, 0, "{}: {}", row.path, r.stderr);
        let counted = stats(&tmp.path().join("stats.json"))["out_of_order"]
            .as_u64()
            .unwrap();
        assert!(
            (1..=recs.len() as u64).contains(&counted),
            "{}: {backward} steps back, {counted} counted",
            row.path
        );
        let s = &read_shards(tmp.path(), "s", 1).unwrap()[0];
        let want = if cap.sub_micro {
            recs
        } else {
            recs.iter().map(Rec::at_micros).collect()
        };
        same_packets(want, s.packets.clone()).unwrap();
        checked.push(row.path);
    }
    assert!(
        checked
            .iter()
            .any(|p| p == "ndpi/out-of-order-ts-tftp.pcap")
            && checked.len() >= 5,
        "disordered captures checked: {checked:?}"
    );
}

#[test]
fn reorder_window_repairs_in_file_disorder() {
    for rel in [
        "arkime/out-of-order-ts-tcpseq.pcap",
        "ndpi/out-of-order-ts-tftp.pcap",
        "pcapplusplus/realistic-tls-sessions-2021.pcap",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let input = common::corpus(rel);
        let r = run(tmp.path(), 3, &["--reorder-window", "1h"], &[&input]);
        assert_eq!(r.code, 0, "{rel}: {}", r.stderr);
        let shards = read_shards(tmp.path(), "s", 3).unwrap();
        for (k, s) in shards.iter().enumerate() {
            assert!(
                non_decreasing(&s.packets),
                "{rel}: shard {k} is not in time order"
            );
        }
        let want: Vec<Rec> = read_capture(&input)
            .packets
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let got: Vec<Rec> = shards.into_iter().flat_map(|s| s.packets).collect();
        same_packets(want, got).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let st = stats(&tmp.path().join("stats.json"));
        assert!(
            st["out_of_order"].as_u64().unwrap() > 0,
            "{rel} is disordered"
        );
        assert_eq!(
            st["reorder"]["repaired"], st["out_of_order"],
            "{rel}: every late packet put back in order"
        );
        assert_eq!(st["reorder"]["too_late"], 0, "{rel}");
    }
}
