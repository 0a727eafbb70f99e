//! Duplicate and overlapping captures. A file whose packets are another input's (the same capture
//! collected twice, under two names) is read once; a capture whose packets are the first packets
//! of another (a copy taken while it was still being written) is reported by `scan`.
//!
//! Two files are compared only when their first packet times collide, which the catalog knows
//! already: the common path stays one read of each file's head. Only such rare candidates are
//! read to their end, and their packets hashed, by whoever runs the index's reads (the
//! dispatcher: on a thread of its own, see [`super::screen`]); a candidate waits for its verdict.
//! Sizes are not compared: the same packets in another container (gzip, zstd, pcapng, another
//! precision or byte order) are the same capture.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use shardcap_capture::capture::Capture;
use shardcap_capture::Packet;

use super::catalog::Entry;

/// A hash of a sequence of packets: times, lengths, link types and bytes (not the file's
/// container: the same packets in pcap and pcapng hash the same).
#[derive(Clone, Default)]
pub struct PacketHash(Sha256);

impl PacketHash {
    /// Adds one packet.
    pub fn add(&mut self, p: &Packet) {
        self.0.update(p.ts_ns.to_le_bytes());
        self.0.update(p.len.to_le_bytes());
        self.0.update(p.linktype.to_le_bytes());
        self.0.update((p.data.len() as u32).to_le_bytes());
        self.0.update(p.data);
    }

    /// The hash of the packets added so far.
    pub fn value(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }
}

/// What reading every packet of a capture gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content {
    /// Packets read.
    pub packets: u64,
    /// Time of the last packet.
    pub last_ts: u64,
    /// Hash of all packets.
    pub hash: [u8; 32],
}

/// Reads `path` to its end, hashing its packets and taking the hash after each count in
/// `at` (ascending) on the way. `None` when it cannot be read to its end (damaged, unreadable),
/// or `stop` was set before.
pub fn read_content(
    path: &Path,
    at: &[u64],
    stop: &AtomicBool,
) -> Option<(Content, Vec<[u8; 32]>)> {
    let (mut cap, _, _) = Capture::open(path).ok()??;
    let mut hash = PacketHash::default();
    let mut snapshots = Vec::with_capacity(at.len());
    let (mut packets, mut last_ts) = (0u64, 0u64);
    loop {
        if at.get(snapshots.len()) == Some(&packets) {
            snapshots.push(hash.value());
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match cap.advance() {
            Ok(true) => {
                let p = cap.packet();
                hash.add(&p);
                last_ts = p.ts_ns;
                packets += 1;
            }
            Ok(false) => break,
            Err(_) => return None,
        }
    }
    while at.get(snapshots.len()) == Some(&packets) {
        snapshots.push(hash.value());
    }
    let content = Content {
        packets,
        last_ts,
        hash: hash.value(),
    };
    Some((content, snapshots))
}

/// A cataloged file, remembered to find its duplicates.
struct Known {
    path: PathBuf,
    /// The number of the read of its content: `None` until another file collides with it.
    read: Option<u64>,
}

/// A file colliding with a known one, until its verdict.
struct Candidate {
    entry: Entry,
    /// Its first packet time.
    key: u64,
    /// The number of the read of its content.
    read: u64,
}

/// The files a run has cataloged, by first packet time (one small record a file), and
/// the candidates waiting for their verdict. Contents are read by the caller: [`check`] asks
/// for reads by number, [`content`] takes their results.
///
/// [`check`]: DuplicateIndex::check
/// [`content`]: DuplicateIndex::content
#[derive(Default)]
pub struct DuplicateIndex {
    known: HashMap<u64, Vec<Known>>,
    /// In the order they came: a candidate is decided only after every earlier one of its key.
    waiting: Vec<Candidate>,
    /// Contents read, by read number (`None`: not readable to its end).
    contents: HashMap<u64, Option<Content>>,
    next_read: u64,
}

impl DuplicateIndex {
    /// Looks at a newly cataloged file: `Some(entry)` when it collides with no known file (it is
    /// remembered, and goes on at once); `None` when it does, and waits for its verdict
    /// ([`DuplicateIndex::verdicts`]). The files whose content must be read to decide are
    /// handed to `read` with their read number. A file without packets is nobody's duplicate.
    pub fn check(&mut self, entry: Entry, read: &mut dyn FnMut(u64, &Path)) -> Option<Entry> {
        let Some(key) = entry.first_ts else {
            return Some(entry);
        };
        let known = self.known.entry(key).or_default();
        if known.is_empty() {
            known.push(Known {
                path: entry.path.clone(),
                read: None,
            });
            return Some(entry);
        }
        let next = &mut self.next_read;
        let mut number = |path: &Path| {
            *next += 1;
            read(*next, path);
            *next
        };
        for k in known.iter_mut().filter(|k| k.read.is_none()) {
            k.read = Some(number(&k.path));
        }
        let read = number(&entry.path);
        self.waiting.push(Candidate { entry, key, read });
        None
    }

    /// The content of read number `read`.
    pub fn content(&mut self, read: u64, content: Option<Content>) {
        self.contents.insert(read, content);
    }

    /// Candidates waiting for their verdict.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The candidates decided since the last call, in the order they came, each with the earlier
    /// file holding exactly its packets (the same number, first and last packet time, and hash)
    /// or `None` (it is then remembered as known).
    pub fn verdicts(&mut self) -> Vec<(Entry, Option<PathBuf>)> {
        let mut decided = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            let c = &self.waiting[i];
            let earlier = self.waiting[..i].iter().any(|e| e.key == c.key);
            let known = &self.known[&c.key];
            let read = |n: &Option<u64>| n.and_then(|n| self.contents.get(&n));
            let ready = !earlier
                && self.contents.contains_key(&c.read)
                && known.iter().all(|k| read(&k.read).is_some());
            if !ready {
                i += 1;
                continue;
            }
            let c = self.waiting.remove(i);
            let mine = self.contents[&c.read];
            let original = mine.and_then(|m| {
                known
                    .iter()
                    .find(|k| read(&k.read) == Some(&Some(m)))
                    .map(|k| k.path.clone())
            });
            if original.is_none() {
                let known = self.known.get_mut(&c.key).expect("the candidate's key");
                known.push(Known {
                    path: c.entry.path.clone(),
                    read: Some(c.read),
                });
            } else {
                self.contents.remove(&c.read);
            }
            decided.push((c.entry, original));
        }
        decided
    }
}

/// How one scanned file relates to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// The same packets as the other file.
    DuplicateOf(usize),
    /// Its packets are the first packets of the other (longer) file.
    PrefixOf(usize),
}

/// A file as `scan` saw it, for [`relations`].
#[derive(Debug, Clone, Copy)]
pub struct Scanned<'a> {
    pub path: &'a Path,
    pub first_ts: Option<u64>,
    pub packets: u64,
    /// Read to its end without damage.
    pub intact: bool,
}

/// For each file of `files`, its relation to an earlier or longer one: the same packets, or
/// its packets the first packets of another. Only files with the same first packet time are
/// read again (to hash their packets).
pub fn relations(files: &[Scanned]) -> Vec<Option<Relation>> {
    let mut out = vec![None; files.len()];
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if let (Some(ts), true) = (f.first_ts, f.intact && f.packets > 0) {
            groups.entry(ts).or_default().push(i);
        }
    }
    for mut group in groups.into_values().filter(|g| g.len() > 1) {
        // Longest first; among equals, the earlier input is the original.
        group.sort_by_key(|&i| (std::cmp::Reverse(files[i].packets), i));
        let mut counts: Vec<u64> = group.iter().map(|&i| files[i].packets).collect();
        counts.sort_unstable();
        counts.dedup();
        let mut hashes: HashMap<usize, HashMap<u64, [u8; 32]>> = HashMap::new();
        for &i in &group {
            let Some((_, at)) = read_content(files[i].path, &counts, &AtomicBool::new(false))
            else {
                continue;
            };
            hashes.insert(i, counts.iter().copied().zip(at).collect());
        }
        for (pos, &i) in group.iter().enumerate() {
            let n = files[i].packets;
            let Some(mine) = hashes.get(&i).and_then(|h| h.get(&n)) else {
                continue;
            };
            // The longest earlier-sorted file whose first n packets are these.
            out[i] = group[..pos]
                .iter()
                .find(|&&j| hashes.get(&j).and_then(|h| h.get(&n)) == Some(mine))
                .map(|&j| {
                    if files[j].packets == n {
                        Relation::DuplicateOf(j)
                    } else {
                        Relation::PrefixOf(j)
                    }
                });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcap file of `n` 4-byte records, one a second from `t0`.
    fn pcap(t0: u32, n: u32) -> Vec<u8> {
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend([0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        for i in 0..n {
            b.extend((t0 + i).to_le_bytes());
            b.extend([0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0]);
            b.extend(i.to_le_bytes());
        }
        b
    }

    fn entry(path: &Path) -> Entry {
        let cand = super::super::discover::Candidate {
            path: path.to_path_buf(),
            explicit: true,
        };
        super::super::catalog::probe(0, &cand).unwrap()
    }

    #[test]
    fn a_copy_is_a_duplicate_and_a_same_sized_other_capture_is_not() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = d.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let a = write("a.pcap", &pcap(100, 5));
        let b = write("b.pcap", &pcap(100, 5));
        let mut other = pcap(100, 5);
        *other.last_mut().unwrap() ^= 1;
        let c = write("c.pcap", &other);
        let mut idx = DuplicateIndex::default();
        let mut asked = Vec::new();
        let mut ask = |n: u64, p: &Path| asked.push((n, p.to_path_buf()));
        assert!(
            idx.check(entry(&a), &mut ask).is_some(),
            "nothing to collide with"
        );
        assert!(idx.check(entry(&c), &mut ask).is_none(), "same start");
        assert!(idx.check(entry(&b), &mut ask).is_none());
        let verdict = |idx: &mut DuplicateIndex| {
            idx.verdicts()
                .into_iter()
                .map(|(e, original)| (e.path, original))
                .collect::<Vec<_>>()
        };
        assert_eq!(verdict(&mut idx), [], "nothing read yet");
        // a, c, then b: each file read once.
        let read: Vec<PathBuf> = asked.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(read, [a.clone(), c.clone(), b.clone()]);
        // b's content first: b waits for c, which is earlier under the same key.
        for (n, p) in asked.iter().rev() {
            let content = read_content(p, &[], &AtomicBool::new(false)).map(|(c, _)| c);
            idx.content(*n, content);
        }
        assert_eq!(
            verdict(&mut idx),
            [(c, None), (b, Some(a))],
            "c has other bytes; b is a's"
        );
        assert_eq!(idx.waiting(), 0);
    }

    #[test]
    fn a_copy_in_another_container_is_a_duplicate_and_a_prefix_is_not() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.pcap");
        std::fs::write(&a, pcap(100, 5)).unwrap();
        let gz = d.path().join("b.pcap.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&pcap(100, 5)).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let prefix = d.path().join("c.pcap");
        std::fs::write(&prefix, pcap(100, 3)).unwrap();
        let mut idx = DuplicateIndex::default();
        let mut asked = Vec::new();
        let mut ask = |n: u64, p: &Path| asked.push((n, p.to_path_buf()));
        assert!(idx.check(entry(&a), &mut ask).is_some());
        assert!(idx.check(entry(&gz), &mut ask).is_none(), "same start");
        assert!(idx.check(entry(&prefix), &mut ask).is_none(), "same start");
        for (n, p) in &asked {
            let content = read_content(p, &[], &AtomicBool::new(false)).map(|(c, _)| c);
            idx.content(*n, content);
        }
        let verdicts: Vec<_> = idx
            .verdicts()
            .into_iter()
            .map(|(e, original)| (e.path, original))
            .collect();
        assert_eq!(
            verdicts,
            [(gz, Some(a)), (prefix, None)],
            "the gzip copy holds a's packets; the prefix holds fewer"
        );
    }

    #[test]
    fn scan_relations_find_copies_and_prefixes() {
        let d = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (name, t0, n) in [
            ("long", 7, 9),
            ("short", 7, 4),
            ("copy", 7, 9),
            ("else", 8, 4),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, pcap(t0, n)).unwrap();
            paths.push((p, t0, n));
        }
        let files: Vec<Scanned> = paths
            .iter()
            .map(|(p, t0, n)| Scanned {
                path: p,
                first_ts: Some(*t0 as u64 * 1_000_000_000),
                packets: *n as u64,
                intact: true,
            })
            .collect();
        assert_eq!(
            relations(&files),
            [
                None,
                Some(Relation::PrefixOf(0)),
                Some(Relation::DuplicateOf(0)),
                None
            ]
        );
    }
}
