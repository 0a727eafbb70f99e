//! What a shard hands its writer thread at once: whole records in stream order, each either copied
//! into the batch's own bytes or left where its reader read it (an input [`Chunk`] the batch pins),
//! so that most packets reach the output without a copy in user space.

use std::io::{self, IoSlice};

use shardcap_capture::buffer::Chunk;
use shardcap_capture::format::{record_len, StreamHeader, RECORD_HEADER_LEN};
use shardcap_capture::{Packet, Verbatim};
use shardcap_flow::reframe::Reframe;

/// Most input chunks one batch pins: a shard that gets a packet now and then copies its records
/// rather than keep many chunks alive for a few records each.
const CHUNKS_MAX: usize = 8;
/// Most buffers one vectored write takes (the kernel's `IOV_MAX`).
pub const PARTS_MAX: usize = 1024;

/// A run of whole records in stream order.
#[derive(Clone, Copy)]
enum Part {
    /// `bytes[start..end]` of the batch.
    Own { start: usize, end: usize },
    /// Bytes of `chunks[chunk]`.
    Pinned {
        chunk: usize,
        ptr: *const u8,
        len: usize,
    },
}

/// Whole records, copied or pinned, in stream order.
pub struct Batch {
    bytes: Vec<u8>,
    parts: Vec<Part>,
    chunks: Vec<Chunk>,
    len: usize,
}

// SAFETY: the only pointers a batch holds point into the chunks it holds itself (shared,
// reference-counted buffers that nobody writes while they are shared).
unsafe impl Send for Batch {}

impl Batch {
    /// An empty batch with room for `size` bytes of copied records.
    pub fn with_capacity(size: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(size),
            parts: Vec::new(),
            chunks: Vec::with_capacity(CHUNKS_MAX),
            len: 0,
        }
    }

    /// Bytes of records in it.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it holds no record.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `pkt` as a record of the stream `header` describes (copied).
    #[inline(always)]
    pub fn copy(&mut self, header: &StreamHeader, pkt: &Packet) {
        let start = self.bytes.len();
        header.append_record(&mut self.bytes, pkt);
        self.own(start);
    }

    /// Appends `pkt` as an Ethernet frame, `r.header` in place of its link header (copied).
    /// Returns its captured and original lengths.
    pub fn copy_reframed(
        &mut self,
        header: &StreamHeader,
        pkt: &Packet,
        r: &Reframe,
    ) -> (usize, u32) {
        let start = self.bytes.len();
        let lengths = r.append(header, &mut self.bytes, pkt);
        self.own(start);
        lengths
    }

    /// Counts the bytes appended to `bytes` from `start` on as the next part.
    #[inline(always)]
    fn own(&mut self, start: usize) {
        let end = self.bytes.len();
        self.len += end - start;
        match self.parts.last_mut() {
            Some(Part::Own { end: last, .. }) if *last == start => *last = end,
            _ => self.parts.push(Part::Own { start, end }),
        }
    }

    /// Appends the record `v` where it lies, pinning its chunk. False (nothing appended) when no
    /// further chunk may be pinned: the caller copies the record instead.
    #[inline(always)]
    pub fn pin(&mut self, v: &Verbatim) -> bool {
        let chunk = match self.chunks.last() {
            Some(c) if c.same(v.chunk) => self.chunks.len() - 1,
            _ => match self.hold(v.chunk) {
                Some(k) => k,
                None => return false,
            },
        };
        let (ptr, len) = (v.record.as_ptr(), v.record.len());
        self.len += len;
        match self.parts.last_mut() {
            // Only within one chunk: two buffers may lie side by side in memory.
            Some(Part::Pinned {
                chunk: c,
                ptr: p,
                len: l,
            }) if *c == chunk && p.wrapping_add(*l) == ptr => *l += len,
            _ => self.parts.push(Part::Pinned { chunk, ptr, len }),
        }
        true
    }

    /// Where the batch holds `chunk` (its last one is another), pinning it if need be; `None`
    /// when it may not.
    fn hold(&mut self, chunk: &Chunk) -> Option<usize> {
        if let Some(k) = self.chunks.iter().position(|c| c.same(chunk)) {
            return Some(k);
        }
        if self.chunks.len() == CHUNKS_MAX {
            return None;
        }
        self.chunks.push(chunk.pin()?);
        Some(self.chunks.len() - 1)
    }

    /// The records, in stream order, as runs of whole records.
    pub fn runs(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.parts.iter().map(move |p| match *p {
            Part::Own { start, end } => &self.bytes[start..end],
            // SAFETY: `ptr..ptr + len` lies in one of `self.chunks`, alive as long as `self`.
            Part::Pinned { ptr, len, .. } => unsafe { std::slice::from_raw_parts(ptr, len) },
        })
    }

    /// The records as one buffer: the batch's own bytes when nothing is pinned, otherwise
    /// gathered into `scratch`.
    pub fn contiguous<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        if self.chunks.is_empty() {
            return &self.bytes;
        }
        scratch.clear();
        for run in self.runs() {
            scratch.extend_from_slice(run);
        }
        scratch
    }

    /// Empties it for reuse (letting its chunks go), back to `size` bytes if a large record grew
    /// it.
    pub fn clear(&mut self, size: usize) {
        self.bytes.clear();
        self.bytes.shrink_to(size);
        self.parts.clear();
        self.chunks.clear();
        self.len = 0;
    }
}

/// Groups `runs` (whole records each) into the buffers of successive writes of at most `limit`
/// bytes and [`PARTS_MAX`] buffers each; a run is split between records where it must, and a
/// record longer than `limit` goes alone. `write` gets each group.
pub fn write_grouped<'a>(
    runs: impl Iterator<Item = &'a [u8]>,
    limit: usize,
    mut write: impl FnMut(&mut [IoSlice<'a>]) -> io::Result<()>,
) -> io::Result<()> {
    let mut iov = Vec::with_capacity(64);
    let mut room = limit;
    for mut run in runs {
        while !run.is_empty() {
            let take = match run.len() <= room {
                true => run.len(),
                false => fit(run, room, iov.is_empty())?,
            };
            if take > 0 {
                iov.push(IoSlice::new(&run[..take]));
                room -= take.min(room);
                run = &run[take..];
            }
            if !run.is_empty() || iov.len() == PARTS_MAX || room < RECORD_HEADER_LEN {
                write(&mut iov)?;
                iov.clear();
                room = limit;
            }
        }
    }
    if !iov.is_empty() {
        write(&mut iov)?;
    }
    Ok(())
}

/// Bytes of the whole records at the start of `run` (longer than `room`) that fit in `room`; the
/// first record whatever its length when it would go `alone`.
pub fn fit(run: &[u8], room: usize, alone: bool) -> io::Result<usize> {
    let mut end = 0;
    loop {
        let next = end + record_len(run, end)?;
        if next > room {
            return Ok(if end == 0 && alone { next } else { end });
        }
        end = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardcap_capture::buffer::ReadBuffer;
    use std::io::Cursor;

    /// A record of `caplen` data bytes, all `fill`.
    fn rec(caplen: usize, fill: u8) -> Vec<u8> {
        let mut r = vec![fill; RECORD_HEADER_LEN + caplen];
        r[..8].fill(0);
        r[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        r[12..16].copy_from_slice(&(caplen as u32).to_le_bytes());
        r
    }

    /// The sizes of the buffers of each write of `runs` grouped under `limit`, and their bytes.
    fn grouped(runs: &[&[u8]], limit: usize) -> (Vec<Vec<usize>>, Vec<u8>) {
        let (mut sizes, mut all) = (Vec::new(), Vec::new());
        write_grouped(runs.iter().copied(), limit, |iov| {
            sizes.push(iov.iter().map(|s| s.len()).collect());
            iov.iter().for_each(|s| all.extend_from_slice(s));
            Ok(())
        })
        .unwrap();
        (sizes, all)
    }

    #[test]
    fn groups_end_at_record_boundaries() {
        let run = [rec(10, 1), rec(30, 2), rec(100, 3), rec(4, 4)].concat();
        let (sizes, all) = grouped(&[&run], 1 << 20);
        assert_eq!(
            (sizes, all.as_slice()),
            (vec![vec![run.len()]], run.as_slice())
        );
        let (sizes, all) = grouped(&[&run], 80);
        assert_eq!(sizes, [vec![26 + 46], vec![116], vec![20]]);
        assert_eq!(all, run);
        // A record longer than the limit goes alone.
        let (sizes, _) = grouped(&[&run], 10);
        assert_eq!(sizes, [vec![26], vec![46], vec![116], vec![20]]);
        // Runs are joined into one write while they fit, and split where they must.
        let (a, b) = (rec(10, 5), [rec(20, 6), rec(20, 7)].concat());
        let (sizes, all) = grouped(&[&a, &b, &a], 70);
        assert_eq!(sizes, [vec![26, 36], vec![36, 26]]);
        assert_eq!(all, [&a[..], &b[..], &a[..]].concat());
        // A run split between records is walked: a cut record is found.
        let mut cut = rec(100, 8);
        cut.truncate(90);
        let e = write_grouped([&run[..], &cut[..]].into_iter(), 80, |_| Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn copied_and_pinned_records_go_out_in_stream_order() {
        let header = StreamHeader {
            linktype: 1,
            nanos: false,
            snaplen: 65535,
        };
        // Three records as a reader holds them: the first two adjacent in one chunk.
        let records: Vec<Vec<u8>> = (0..3).map(|i| rec(40 + i, i as u8 + 1)).collect();
        let mut buf = ReadBuffer::new(Box::new(Cursor::new(records.concat())), 1 << 20);
        assert!(buf.ensure(records.concat().len()).unwrap());
        let mut batch = Batch::with_capacity(1 << 10);
        let mut expect = Vec::new();
        let mut at = 0;
        for (i, r) in records.iter().enumerate() {
            let record = &buf.data()[at..at + r.len()];
            let data = &record[RECORD_HEADER_LEN..];
            let pkt = Packet {
                ts_ns: 0,
                len: data.len() as u32,
                linktype: 1,
                data,
            };
            if i == 1 {
                batch.copy(&header, &pkt);
            } else {
                let v = Verbatim {
                    chunk: buf.chunk(),
                    record,
                    nanos: false,
                };
                assert!(batch.pin(&v));
            }
            expect.extend_from_slice(r);
            at += r.len();
        }
        assert_eq!(batch.len(), expect.len());
        assert_eq!(batch.runs().count(), 3);
        let mut scratch = Vec::new();
        assert_eq!(batch.contiguous(&mut scratch), expect);
        let (_, all) = grouped(&batch.runs().collect::<Vec<_>>(), usize::MAX);
        assert_eq!(all, expect);
        batch.clear(1 << 10);
        assert!(batch.is_empty() && batch.runs().next().is_none());
    }
}
