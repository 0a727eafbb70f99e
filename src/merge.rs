//! The merge: packets of all inputs in timestamp order (or file by file in the given order), with
//! files opened only when packet time reaches their first packet and closed at their end.
//!
//! Fast path: the input that holds the smallest timestamp keeps emitting, with one comparison a
//! packet, until it passes the next competitor (the earliest other open input or the next file to
//! open). With rotated captures (one file active at a time) the heap is touched once per file.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;

use crate::input::catalog::Entry;
use crate::input::FileEnd;
use shardcap_capture::buffer::{self, DEFAULT_CAPACITY};
use shardcap_capture::capture::Capture;
use shardcap_capture::stream;
use shardcap_capture::{Anomalies, Packet, ReadError, Verbatim};

/// How inputs are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Merge all inputs on packet timestamps.
    Time,
    /// Stream files one after another in the order given (pcapdj's behaviour).
    Given,
}

/// Callbacks from the merge to the rest of the dispatcher.
pub trait MergeHooks {
    /// A file is about to be opened; returns false to skip it (not authorized).
    fn opening(&mut self, entry: &Entry) -> crate::error::Result<bool>;
    /// A file was closed after emitting `packets` packets.
    fn finished(&mut self, entry: &Entry, packets: u64, end: FileEnd);
    /// A file being closed had irregularities that were read past (called before `finished`).
    fn irregular(&mut self, _entry: &Entry, _found: &Anomalies) {}
    /// Where to resume `entry` (a checkpoint offset from a previous run), if anywhere.
    fn resume_offset(&mut self, _entry: &Entry) -> Option<u64> {
        None
    }
}

/// Opens the file `entry` names, if the name still leads to the file the catalog probed: a file
/// or symlink swapped in since is skipped, not read in its place. `Err`: how the input ends.
fn open_cataloged(entry: &Entry) -> Result<Option<Capture>, FileEnd> {
    let file =
        stream::open_regular(&entry.path).map_err(|e| FileEnd::Damaged(ReadError::open(e)))?;
    let md = file
        .metadata()
        .map_err(|e| FileEnd::Damaged(ReadError::open(e)))?;
    if let Some((dev, ino)) = entry.inode.filter(|&id| id != (md.dev(), md.ino())) {
        return Err(FileEnd::Skipped(format!(
            "replaced since it was cataloged (inode {} of device {}, not {ino} of {dev}); not \
             read: give the new file again to read it",
            md.ino(),
            md.dev()
        )));
    }
    let stream = stream::open_file(file).map_err(|e| FileEnd::Damaged(ReadError::open(e)))?;
    Capture::from_stream(stream, DEFAULT_CAPACITY)
        .map(|c| c.map(|(capture, _, _)| capture))
        .map_err(FileEnd::Damaged)
}

/// Tells the hooks that an input ended, with the irregularities its reader went past first.
fn report_end<H: MergeHooks>(
    hooks: &mut H,
    entry: &Entry,
    capture: &Capture,
    packets: u64,
    end: FileEnd,
) {
    if !capture.anomalies().is_empty() {
        hooks.irregular(entry, capture.anomalies());
    }
    hooks.finished(entry, packets, end);
}

/// An input being read.
pub struct OpenInput {
    /// The file, as cataloged.
    pub entry: Entry,
    /// Its reader, on the packet to emit next (or just emitted, for the active input).
    pub capture: Capture,
    /// Packets emitted from this input so far.
    pub packets: u64,
}

/// Merge counters.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct MergeStats {
    /// Packets emitted with a timestamp before that of a packet emitted earlier.
    pub out_of_order: u64,
    /// Times a due file could not be opened because `--max-open` inputs were open.
    pub open_limit_hits: u64,
    /// Most inputs open at once.
    pub max_open_seen: usize,
}

/// Timestamp-ordered merge over a growing list of files.
pub struct Merge {
    order: Order,
    pending: VecDeque<Entry>,
    slots: Vec<Option<OpenInput>>,
    free_slots: Vec<usize>,
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    active: Option<usize>,
    /// The active input may emit while its timestamp is at most this.
    limit: u64,
    open: usize,
    max_open: usize,
    /// Newest timestamp emitted so far.
    newest: u64,
    /// Files given back to `pending` after they were authorized (opened again without asking).
    authorized: HashSet<u64>,
    /// Counters for stats.
    pub stats: MergeStats,
}

impl Merge {
    /// An empty merge. `max_open` bounds the inputs open at once.
    pub fn new(order: Order, max_open: usize) -> Self {
        Merge {
            order,
            pending: VecDeque::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            heap: BinaryHeap::new(),
            active: None,
            limit: 0,
            open: 0,
            max_open: max_open.max(1),
            newest: 0,
            authorized: HashSet::new(),
            stats: MergeStats::default(),
        }
    }

    /// Adds files. In time order they are kept sorted by first packet time; a file that starts before
    /// packets already emitted is merged from now on (its earlier packets count as out of order).
    pub fn add(&mut self, entries: impl IntoIterator<Item = Entry>) {
        self.pending.extend(entries);
        if self.order == Order::Time {
            self.pending
                .make_contiguous()
                .sort_by_key(|e| (e.first_ts.unwrap_or(0), e.seq));
        }
        self.update_limit();
    }

    /// Inputs open now.
    pub fn open_inputs(&self) -> impl Iterator<Item = &OpenInput> {
        self.slots.iter().flatten()
    }

    /// True when no file is open or pending.
    pub fn is_idle(&self) -> bool {
        self.open == 0 && self.pending.is_empty()
    }

    /// The packet chosen by the last [`Merge::next`].
    #[inline(always)]
    pub fn packet(&self, slot: usize) -> Packet<'_> {
        self.slots[slot].as_ref().unwrap().capture.packet()
    }

    /// The packet chosen by the last [`Merge::next`], and its record as read when it can be
    /// written out unchanged.
    #[inline(always)]
    pub fn record(&self, slot: usize) -> (Packet<'_>, Option<Verbatim<'_>>) {
        let capture = &self.slots[slot].as_ref().unwrap().capture;
        (capture.packet(), capture.verbatim())
    }

    /// The input of `slot` (the one that gave the last packet).
    pub fn input(&self, slot: usize) -> &OpenInput {
        self.slots[slot].as_ref().unwrap()
    }

    /// Chooses the next packet; returns its slot, or `None` when every known file is done.
    #[inline]
    pub fn next<H: MergeHooks>(&mut self, hooks: &mut H) -> crate::error::Result<Option<usize>> {
        // The active input's current packet was emitted: advance it first.
        if let Some(slot) = self.active.take() {
            let input = self.slots[slot].as_mut().unwrap();
            match input.capture.advance() {
                Ok(true) => {
                    let ts = input.capture.ts();
                    if ts <= self.limit {
                        input.packets += 1;
                        self.note_ts(ts);
                        self.active = Some(slot);
                        return Ok(Some(slot));
                    }
                    let key = Reverse((ts, input.entry.seq, slot));
                    if let Some(next) = self.swap_with_earliest(key) {
                        return Ok(Some(next));
                    }
                    self.heap.push(key);
                }
                Ok(false) => self.close(slot, FileEnd::Complete, hooks),
                Err(e) => self.close(slot, FileEnd::Damaged(e), hooks),
            }
        }
        self.select(hooks)
    }

    /// Overlapping inputs (several sensors) take turns every few packets. When the active input
    /// (now at `key`) has passed the earliest waiting one and no pending file is due before that
    /// one, the two swap places in the heap: one sift instead of a push and a pop. Returns the
    /// new active slot, or `None` (nothing changed) when the full selection is needed.
    #[inline]
    fn swap_with_earliest(&mut self, key: Reverse<(u64, u64, usize)>) -> Option<usize> {
        let mut top = self.heap.peek_mut()?;
        let earliest = top.0 .0;
        let due = self
            .pending
            .front()
            .is_some_and(|f| f.first_ts.unwrap_or(0) <= earliest);
        if due || key > *top {
            return None;
        }
        let Reverse((ts, _, slot)) = std::mem::replace(&mut *top, key);
        drop(top);
        self.active = Some(slot);
        self.update_limit();
        self.slots[slot].as_mut().unwrap().packets += 1;
        self.note_ts(ts);
        Some(slot)
    }

    #[cold]
    fn select<H: MergeHooks>(&mut self, hooks: &mut H) -> crate::error::Result<Option<usize>> {
        loop {
            self.open_due(hooks)?;
            let Some(Reverse((ts, _, slot))) = self.heap.pop() else {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                continue;
            };
            self.active = Some(slot);
            self.update_limit();
            let input = self.slots[slot].as_mut().unwrap();
            input.packets += 1;
            self.note_ts(ts);
            return Ok(Some(slot));
        }
    }

    /// Opens pending files whose first packet is due (in given order: the next file when none is open).
    fn open_due<H: MergeHooks>(&mut self, hooks: &mut H) -> crate::error::Result<()> {
        while let Some(front) = self.pending.front() {
            let due = match self.order {
                Order::Given => self.open == 0,
                Order::Time => match self.heap.peek() {
                    None => true,
                    Some(Reverse((ts, _, _))) => front.first_ts.unwrap_or(0) <= *ts,
                },
            };
            if !due {
                break;
            }
            // Read buffers grown for large records count too: fewer files open, not more memory.
            if (self.open >= self.max_open || buffer::memory_tight()) && !self.heap.is_empty() {
                self.stats.open_limit_hits += 1;
                break;
            }
            let entry = self.pending.pop_front().unwrap();
            if let Some(entry) = self.open_one(entry, hooks)? {
                // Its first record did not fit in the buffer memory left: again once a file closes.
                self.pending.push_front(entry);
                self.stats.open_limit_hits += 1;
                break;
            }
        }
        Ok(())
    }

    /// Opens one file and puts it into the merge (or reports how it ended). Gives the entry back
    /// when its first record does not fit in the buffer memory other open files hold.
    fn open_one<H: MergeHooks>(
        &mut self,
        entry: Entry,
        hooks: &mut H,
    ) -> crate::error::Result<Option<Entry>> {
        if !self.authorized.remove(&entry.seq) && !hooks.opening(&entry)? {
            hooks.finished(&entry, 0, FileEnd::Skipped("not authorized".into()));
            return Ok(None);
        }
        let mut capture = match open_cataloged(&entry) {
            Ok(Some(c)) => c,
            Ok(None) => {
                hooks.finished(
                    &entry,
                    0,
                    FileEnd::Skipped("no longer a capture file".into()),
                );
                return Ok(None);
            }
            Err(end) => {
                hooks.finished(&entry, 0, end);
                return Ok(None);
            }
        };
        let first = match hooks.resume_offset(&entry) {
            Some(offset) => capture.skip_to(offset),
            None => capture.advance(),
        };
        match first {
            Ok(true) => {}
            Ok(false) => {
                report_end(hooks, &entry, &capture, 0, FileEnd::Complete);
                return Ok(None);
            }
            Err(e)
                if e.source.as_deref().is_some_and(buffer::is_memory_limit)
                    && !self.heap.is_empty() =>
            {
                self.authorized.insert(entry.seq);
                return Ok(Some(entry));
            }
            Err(e) => {
                report_end(hooks, &entry, &capture, 0, FileEnd::Damaged(e));
                return Ok(None);
            }
        }
        let key = (capture.ts(), entry.seq);
        let input = OpenInput {
            entry,
            capture,
            packets: 0,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s] = Some(input);
                s
            }
            None => {
                self.slots.push(Some(input));
                self.slots.len() - 1
            }
        };
        self.open += 1;
        self.stats.max_open_seen = self.stats.max_open_seen.max(self.open);
        self.heap.push(Reverse((key.0, key.1, slot)));
        Ok(None)
    }

    fn close<H: MergeHooks>(&mut self, slot: usize, end: FileEnd, hooks: &mut H) {
        let input = self.slots[slot].take().unwrap();
        self.free_slots.push(slot);
        self.open -= 1;
        report_end(hooks, &input.entry, &input.capture, input.packets, end);
    }

    /// Counts a packet older than the newest emitted before it.
    #[inline(always)]
    fn note_ts(&mut self, ts: u64) {
        if ts < self.newest {
            self.stats.out_of_order += 1;
        } else {
            self.newest = ts;
        }
    }

    fn update_limit(&mut self) {
        self.limit = match self.order {
            Order::Given => u64::MAX,
            Order::Time => {
                let heap_min = self.heap.peek().map_or(u64::MAX, |Reverse((ts, _, _))| *ts);
                let next_file = self
                    .pending
                    .front()
                    .map_or(u64::MAX, |e| e.first_ts.unwrap_or(0));
                heap_min.min(next_file)
            }
        };
    }

    /// Each open input with the offset to resume it from (for the journal): records that start
    /// before the offset were emitted. The active input's current record was emitted, so its
    /// offset points one byte into that record.
    pub fn resume_points(&self) -> Vec<(&Entry, u64)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| s.as_ref().map(|i| (slot, i)))
            .map(|(slot, i)| {
                let off = i.capture.record_offset();
                (
                    &i.entry,
                    if self.active == Some(slot) {
                        off + 1
                    } else {
                        off
                    },
                )
            })
            .collect()
    }
}
