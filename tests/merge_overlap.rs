//! The merge over overlapping inputs (two sensors taking turns every few packets, plus rotated
//! files opened as packet time reaches them): every packet comes out exactly once, byte-identical,
//! in timestamp order, each file's packets in their own order, and few files are open at a time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use shardcap::input::catalog::{self, Entry};
use shardcap::input::discover;
use shardcap::input::FileEnd;
use shardcap::merge::{Merge, MergeHooks, Order};
use shardcap_capture::capture::Capture;
use shardcap_gen::{generate, GenerateConfig};

/// Counts what the merge reports.
#[derive(Default)]
struct Hooks {
    opened: usize,
    finished: HashMap<PathBuf, u64>,
    open_now: usize,
    most_open: usize,
}

impl MergeHooks for Hooks {
    fn opening(&mut self, _entry: &Entry) -> shardcap::error::Result<bool> {
        self.opened += 1;
        self.open_now += 1;
        self.most_open = self.most_open.max(self.open_now);
        Ok(true)
    }

    fn finished(&mut self, entry: &Entry, packets: u64, end: FileEnd) {
        assert!(
            matches!(end, FileEnd::Complete),
            "{:?}: {end:?}",
            entry.path
        );
        self.open_now -= 1;
        self.finished.insert(entry.path.clone(), packets);
    }
}

/// Every record of one file, in file order: (timestamp, bytes).
fn records(path: &std::path::Path) -> Vec<(u64, Vec<u8>)> {
    let (mut cap, _, _) = Capture::open(path).unwrap().unwrap();
    let mut out = Vec::new();
    while cap.advance().unwrap() {
        out.push((cap.ts(), cap.packet().data.to_vec()));
    }
    out
}

#[test]
fn overlapping_sensors_merge_in_order_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    generate(&GenerateConfig {
        out: dir.path().to_path_buf(),
        sensors: 3,
        files_per_sensor: 5,
        size: 256 << 10,
        seed: 11,
        nanos: true,
        gzip: false,
        zstd: false,
        duration: Duration::from_secs(20),
    })
    .unwrap();
    let candidates = discover::expand(&[dir.path().to_string_lossy().into_owned()]).unwrap();
    // Given in reverse name order: the merge must not depend on it.
    let entries: Vec<Entry> = candidates
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| catalog::probe(i as u64, c).unwrap())
        .collect();
    assert_eq!(entries.len(), 15);
    // Each record, by its timestamp and bytes, to its file and position there.
    let mut expected: HashMap<(u64, Vec<u8>), (PathBuf, usize)> = HashMap::new();
    let mut per_file: HashMap<PathBuf, usize> = HashMap::new();
    for e in &entries {
        let recs = records(&e.path);
        per_file.insert(e.path.clone(), recs.len());
        for (i, rec) in recs.into_iter().enumerate() {
            assert!(
                expected.insert(rec, (e.path.clone(), i)).is_none(),
                "unique records"
            );
        }
    }
    let total = expected.len();

    let mut merge = Merge::new(Order::Time, 256);
    merge.add(entries);
    let mut hooks = Hooks::default();
    let mut next_of: HashMap<PathBuf, usize> = HashMap::new();
    let mut last_ts = 0;
    let mut switches = 0usize;
    let mut last_path = PathBuf::new();
    while let Some(slot) = merge.next(&mut hooks).unwrap() {
        let pkt = merge.packet(slot);
        assert!(pkt.ts_ns >= last_ts, "timestamp order");
        last_ts = pkt.ts_ns;
        let (path, i) = expected
            .remove(&(pkt.ts_ns, pkt.data.to_vec()))
            .expect("a packet of the inputs, not emitted before");
        let next = next_of.entry(path.clone()).or_default();
        assert_eq!(i, *next, "{path:?}: records in file order");
        *next += 1;
        switches += (path != last_path) as usize;
        last_path = path;
    }
    assert!(
        expected.is_empty(),
        "{} packets never emitted",
        expected.len()
    );
    for (path, n) in &per_file {
        assert_eq!(hooks.finished[path], *n as u64, "{path:?}");
    }
    assert_eq!(merge.stats.out_of_order, 0);
    // Three sensors overlap: inputs take turns often, yet only about one file per sensor is open.
    assert!(switches > 100, "{switches} switches for {total} packets");
    assert!(
        hooks.most_open <= 6,
        "{} files open at once",
        hooks.most_open
    );
}

/// Writes a one-file capture at `dir/name` with packets at the given timestamps (seconds).
fn capture_at(dir: &std::path::Path, name: &str, secs: &[u64]) {
    use shardcap_gen::rotate::{Compress, RotatingWriter};
    let mut w = RotatingWriter::new(dir, name, Compress::None, false, 1 << 20, 1);
    for (i, s) in secs.iter().enumerate() {
        let frame = [i as u8; 60];
        assert!(w.write(s * 1_000_000_000, &frame).unwrap());
    }
    w.finish().unwrap();
}

#[test]
fn a_file_due_while_two_inputs_take_turns_opens_in_time() {
    // A and B take turns; C's first packet (25) falls between B's (20) and A's next (30), and B
    // then jumps past both (40): C must come before A's 30.
    let dir = tempfile::tempdir().unwrap();
    capture_at(dir.path(), "a.pcap", &[10, 30, 50]);
    capture_at(dir.path(), "b.pcap", &[20, 40]);
    capture_at(dir.path(), "c.pcap", &[25, 26]);
    let candidates = discover::expand(&[dir.path().to_string_lossy().into_owned()]).unwrap();
    let entries: Vec<Entry> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| catalog::probe(i as u64, c).unwrap())
        .collect();
    let mut merge = Merge::new(Order::Time, 256);
    merge.add(entries);
    let mut hooks = Hooks::default();
    let mut order = Vec::new();
    while let Some(slot) = merge.next(&mut hooks).unwrap() {
        order.push(merge.packet(slot).ts_ns / 1_000_000_000);
    }
    assert_eq!(order, [10, 20, 25, 26, 30, 40, 50]);
    assert_eq!(merge.stats.out_of_order, 0);
}
