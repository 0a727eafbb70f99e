//! The pcapdir spool (`-o dir:`): segments carry exactly the `-o file:` stream, appear whole and
//! in order, end with a marker, and the writer waits for a slow consumer.

mod common;
mod spool_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use common::{wait_until, ChildGuard};

use shardcap::sink::output::Output;
use shardcap::sink::spool::{self, SpoolConfig, SpoolOutput};
use shardcap::sink::writer::ShardWriter;
use shardcap_capture::format::StreamHeader;
use spool_support::*;

const SHARDS: usize = 3;

/// Reads shard `k` of a finished spool: checks names, headers, sizes and mtimes, and returns the
/// records of all its segments in order.
fn read_shard(root: &Path, k: usize, header: &[u8], segment_size: usize) -> Vec<u8> {
    let dir = spool::shard_dir(root, k);
    let names = segments(&dir);
    let expected: Vec<String> = (1..=names.len() as u64).map(spool::segment_name).collect();
    assert_eq!(names, expected, "shard {k}: segments named 1..n");
    let end = fs::read_to_string(spool::end_marker(root, k)).unwrap();
    assert_eq!(end, format!("{}\n", names.len()), "shard {k}: end marker");
    let mut records = Vec::new();
    let mut last_mtime = None;
    for name in &names {
        let path = dir.join(name);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..FILE_HEADER], header, "{name}: stream header");
        let n = count_records(&bytes[FILE_HEADER..], name);
        assert!(n > 0, "{name}: empty segment");
        assert!(
            bytes.len() <= segment_size || n == 1,
            "{name}: {} bytes in {n} records past the size limit",
            bytes.len()
        );
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        if let Some(prev) = last_mtime {
            assert!(
                prev < mtime,
                "{name}: mtime not after the previous segment's"
            );
        }
        last_mtime = Some(mtime);
        records.extend_from_slice(&bytes[FILE_HEADER..]);
    }
    records
}

#[test]
fn segments_carry_the_file_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = inputs();
    let files = file_outputs(tmp.path(), &inputs, SHARDS);
    let root = tmp.path().join("spool");
    let size = 64 << 10;
    check(spool_run(
        &inputs,
        SHARDS,
        &root,
        &size.to_string(),
        100_000,
    ));
    for (k, (header, records)) in files.iter().enumerate() {
        assert_eq!(
            header[..4],
            0xa1b2_3c4du32.to_le_bytes(),
            "nanosecond stream"
        );
        let spooled = read_shard(&root, k, header, size);
        assert!(
            spooled == *records,
            "shard {k}: spooled records ({} bytes) differ from the file output ({} bytes)",
            spooled.len(),
            records.len()
        );
        assert!(segments(&spool::shard_dir(&root, k)).len() > 1);
    }
    assert_eq!(
        segments(&root.join(spool::TMP_DIR)),
        Vec::<String>::new(),
        "nothing left in .tmp"
    );

    // A spool holding a run is refused before anything is written.
    let before = segments(&spool::shard_dir(&root, 0));
    let again = shardcap_run(
        &inputs,
        &["-n", "3", "-o", &format!("dir:{}", root.display())],
    )
    .output()
    .unwrap();
    assert_eq!(again.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&again.stderr);
    assert!(msg.contains("shard-0"), "{msg}");
    assert_eq!(segments(&spool::shard_dir(&root, 0)), before);
}

/// A consumer that takes every shard's segments in order, deleting each once read, while checking
/// that no more than `backlog` segments ever wait.
struct Consumer {
    next: Vec<u64>,
    records: Vec<Vec<u8>>,
    most_waiting: usize,
}

impl Consumer {
    fn new(shards: usize) -> Self {
        Consumer {
            next: vec![1; shards],
            records: vec![Vec::new(); shards],
            most_waiting: 0,
        }
    }

    /// Looks at every shard once: counts what waits, consumes what is there. Returns true when
    /// every shard's end marker names its last consumed segment.
    fn pass(&mut self, root: &Path, consume: bool) -> bool {
        let mut done = true;
        for k in 0..self.next.len() {
            let dir = spool::shard_dir(root, k);
            if !dir.exists() {
                done = false;
                continue;
            }
            let names = segments(&dir);
            self.most_waiting = self.most_waiting.max(names.len());
            if consume {
                for name in names {
                    assert_eq!(name, spool::segment_name(self.next[k]), "shard {k}: order");
                    let bytes = fs::read(dir.join(&name)).unwrap();
                    self.records[k].extend_from_slice(&bytes[FILE_HEADER..]);
                    fs::remove_file(dir.join(&name)).unwrap();
                    self.next[k] += 1;
                }
            }
            let end = fs::read_to_string(spool::end_marker(root, k)).ok();
            done &= end.is_some_and(|e| e.trim().parse::<u64>().unwrap() + 1 == self.next[k]);
        }
        done
    }
}

#[test]
fn a_full_backlog_holds_the_stream_until_the_consumer_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs: Vec<_> = ["zeek/http-browse-bro-org.pcap", "zeek/ssh-session.pcap"]
        .iter()
        .map(|p| corpus(p))
        .collect();
    let files = file_outputs(tmp.path(), &inputs, 2);
    let root = tmp.path().join("spool");
    let backlog = 2;
    let mut shardcap =
        ChildGuard::start(spool_run(&inputs, 2, &root, "16K", backlog).stderr(Stdio::piped()));
    let mut consumer = Consumer::new(2);

    // Without a consumer, a shard fills its backlog and shardcap cannot finish: the inputs make
    // far more segments than the backlogs hold.
    wait_until("a full backlog", || {
        let filled = (0..2).any(|k| {
            let dir = spool::shard_dir(&root, k);
            dir.exists() && segments(&dir).len() >= backlog
        });
        if !filled {
            assert!(!consumer.pass(&root, false), "finished without a consumer");
        }
        filled
    });
    for _ in 0..20 {
        assert!(!consumer.pass(&root, false), "finished without a consumer");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(shardcap.running(), "shardcap exited");

    // Consuming lets it go on to the end.
    wait_until("the consumer to take every segment", || {
        consumer.pass(&root, true)
    });
    let status = shardcap.wait();
    assert!(status.success(), "shardcap: {status}");
    assert!(
        consumer.most_waiting <= backlog,
        "{} segments waited with a backlog of {backlog}",
        consumer.most_waiting
    );
    for (k, (_, records)) in files.iter().enumerate() {
        assert!(
            consumer.records[k] == *records,
            "shard {k}: consumed records differ from the file output"
        );
    }
}

fn test_config(age: Duration) -> SpoolConfig {
    SpoolConfig {
        segment_size: 64 << 20,
        segment_age: age,
        backlog: 8,
    }
}

const HEADER: StreamHeader = StreamHeader {
    linktype: 1,
    nanos: false,
    snaplen: 65535,
};

/// `n` records of `caplen` bytes each, numbered in their timestamps.
fn records(n: u32, caplen: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let data = vec![i as u8; caplen];
        HEADER.append_record(
            &mut out,
            &shardcap_capture::Packet {
                ts_ns: u64::from(i) * 1_000_000_000,
                len: caplen as u32,
                linktype: 1,
                data: &data,
            },
        );
    }
    out
}

#[test]
fn an_unfinished_stream_leaves_no_end_marker_and_no_partial_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let mut out = SpoolOutput::create(&root, 0, HEADER, test_config(Duration::from_secs(3600)))
        .expect("create");
    out.write_all(&records(10, 100)).unwrap();
    drop(out);
    assert!(!spool::end_marker(&root, 0).exists());
    assert_eq!(segments(&spool::shard_dir(&root, 0)), Vec::<String>::new());
    assert_eq!(segments(&root.join(spool::TMP_DIR)), Vec::<String>::new());

    // A finished stream with no packet ends at sequence 0.
    let out = SpoolOutput::create(&root, 1, HEADER, test_config(Duration::from_secs(1))).unwrap();
    Box::new(out).finish().unwrap();
    assert_eq!(
        fs::read_to_string(spool::end_marker(&root, 1)).unwrap(),
        "0\n"
    );
    assert_eq!(segments(&spool::shard_dir(&root, 1)), Vec::<String>::new());
}

#[test]
fn an_idle_stream_reaches_the_consumer_after_the_segment_age() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    let out =
        SpoolOutput::create(&root, 0, HEADER, test_config(Duration::from_millis(200))).unwrap();
    let mut writer = ShardWriter::start(Box::new(out), HEADER, true).unwrap();
    // Enough packets to ship one buffer to the writer thread; the rest stays in the buffer.
    let data = vec![7u8; 1000];
    let pkt = shardcap_capture::Packet {
        ts_ns: 1,
        len: 1000,
        linktype: 1,
        data: &data,
    };
    let n = shardcap::sink::writer::BUFFER_SIZE / 1016 + 10;
    for _ in 0..n {
        writer.write(&pkt).unwrap();
    }
    // No more writes: only the writer thread's tick can publish the segment.
    let dir = spool::shard_dir(&root, 0);
    wait_until("the aged segment", || !segments(&dir).is_empty());
    let first = fs::read(dir.join(spool::segment_name(1))).unwrap();
    let shipped = count_records(&first[FILE_HEADER..], "segment 1");
    assert!(shipped > 0 && shipped < n);
    writer.finish().unwrap();
    let mut total = 0;
    let mut seen = BTreeMap::new();
    for name in segments(&dir) {
        let bytes = fs::read(dir.join(&name)).unwrap();
        seen.insert(name.clone(), bytes.len());
        total += count_records(&bytes[FILE_HEADER..], &name);
    }
    assert_eq!(total, n, "segments {seen:?}");
    assert_eq!(
        fs::read_to_string(spool::end_marker(&root, 0)).unwrap(),
        format!("{}\n", seen.len())
    );
}

#[test]
fn records_are_split_only_at_record_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    // Room for exactly three 116-byte records after the header.
    let config = SpoolConfig {
        segment_size: 24 + 3 * 116,
        ..test_config(Duration::from_secs(3600))
    };
    let mut out = SpoolOutput::create(&root, 0, HEADER, config).unwrap();
    let all = records(10, 100);
    out.write_all(&all[..4 * 116]).unwrap();
    out.write_all(&all[4 * 116..]).unwrap();
    // One record larger than a whole segment gets a segment of its own.
    out.write_all(&records(1, 1000)).unwrap();
    Box::new(out).finish().unwrap();
    let dir = spool::shard_dir(&root, 0);
    let counts: Vec<usize> = segments(&dir)
        .iter()
        .map(|n| count_records(&fs::read(dir.join(n)).unwrap()[FILE_HEADER..], n))
        .collect();
    assert_eq!(counts, [3, 3, 3, 1, 1]);
}
