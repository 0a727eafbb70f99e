//! Selecting what a run streams: a packet-time range (editcap's `-A`/`-B`), a libpcap filter and
//! the removal of packets that several sensors captured alike. Applied to the merged packets,
//! before sharding; every packet left out is counted.

pub mod bpf;
pub mod dedup;

use std::time::Duration;

use serde::Serialize;

use shardcap_capture::Packet;

/// Packets at or after `since` and before `until` (nanoseconds since the epoch), as editcap's
/// `-A since -B until` keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub since: u64,
    pub until: u64,
}

/// On which side of a range a whole file lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Before,
    After,
}

impl TimeRange {
    /// Every packet time.
    pub const ALL: TimeRange = TimeRange {
        since: 0,
        until: u64::MAX,
    };

    /// True when the range leaves nothing out.
    pub fn is_all(&self) -> bool {
        *self == Self::ALL
    }

    /// Where a file starting at `first` lies, when wholly outside the range: after it by its
    /// first packet alone; before it when `last` (asked only then) is before `since`.
    pub fn outside(&self, first: u64, last: impl FnOnce() -> Option<u64>) -> Option<Side> {
        if first >= self.until {
            return Some(Side::After);
        }
        if first >= self.since {
            return None;
        }
        last().filter(|&l| l < self.since).map(|_| Side::Before)
    }
}

/// What to select.
#[derive(Debug, Clone)]
pub struct SelectConfig {
    pub range: TimeRange,
    /// A libpcap filter expression.
    pub filter: Option<String>,
    /// Packet-time window of duplicate removal.
    pub dedup: Option<Duration>,
}

impl SelectConfig {
    /// True when every packet is kept (no selection at all).
    pub fn is_none(&self) -> bool {
        self.range.is_all() && self.filter.is_none() && self.dedup.is_none()
    }
}

/// What the selection left out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SelectStats {
    /// Files wholly outside the time range, never read past their first packet (or read to
    /// their end once to learn their last packet time).
    pub files_outside_range: u64,
    /// Packets read (of files straddling a bound) before `--since`.
    pub packets_before_range: u64,
    /// Packets read at or after `--until`.
    pub packets_after_range: u64,
    /// Packets the `--filter` did not match.
    pub packets_filtered: u64,
    /// Packets dropped as duplicates.
    pub packets_duplicate: u64,
    /// Packets that left the duplicate window before their time because it was full.
    pub dedup_evicted_early: u64,
}

/// The selection applied to the merged packets.
pub struct Selector {
    range: TimeRange,
    filter: Option<bpf::Filter>,
    dedup: Option<dedup::Dedup>,
    /// The counters.
    pub stats: SelectStats,
}

impl Selector {
    /// A selector for `cfg`, or `None` when it selects nothing. A filter that compiles for none of
    /// the usual link types is refused here (its expression in the message).
    pub fn new(cfg: &SelectConfig) -> Result<Option<Self>, String> {
        if cfg.is_none() {
            return Ok(None);
        }
        let filter = cfg.filter.as_deref().map(bpf::Filter::new).transpose()?;
        let dedup = cfg.dedup.map(dedup::Dedup::new);
        if let (Some(d), Some(window)) = (&dedup, cfg.dedup) {
            log::info!(
                "--dedup {window:?}: the window takes {} KiB",
                d.bytes() >> 10
            );
        }
        Ok(Some(Selector {
            range: cfg.range,
            filter,
            dedup,
            stats: SelectStats::default(),
        }))
    }

    /// Compiles the filter for `linktypes` (the link types of the files being admitted).
    pub fn prepare(&mut self, linktypes: impl IntoIterator<Item = u32>) -> Result<(), String> {
        match &mut self.filter {
            Some(f) => linktypes.into_iter().try_for_each(|lt| f.prepare(lt)),
            None => Ok(()),
        }
    }

    /// The time range.
    pub fn range(&self) -> TimeRange {
        self.range
    }

    /// True when `pkt` is kept; a packet left out is counted.
    #[inline]
    pub fn keep(&mut self, pkt: &Packet) -> bool {
        if pkt.ts_ns < self.range.since {
            self.stats.packets_before_range += 1;
            return false;
        }
        if pkt.ts_ns >= self.range.until {
            self.stats.packets_after_range += 1;
            return false;
        }
        if let Some(f) = &mut self.filter {
            if !f.matches(pkt) {
                self.stats.packets_filtered += 1;
                return false;
            }
        }
        if let Some(d) = &mut self.dedup {
            if d.seen(pkt) {
                self.stats.packets_duplicate += 1;
                return false;
            }
        }
        true
    }

    /// The counters, with the duplicate window's.
    pub fn stats(&self) -> SelectStats {
        SelectStats {
            dedup_evicted_early: self.dedup.as_ref().map_or(0, |d| d.evicted_early),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_files_outside_are_told_by_their_first_and_last_packet() {
        let r = TimeRange {
            since: 10,
            until: 20,
        };
        let never = || -> Option<u64> { panic!("last packet time asked needlessly") };
        assert_eq!(r.outside(20, never), Some(Side::After));
        assert_eq!(r.outside(10, never), None);
        assert_eq!(r.outside(5, || Some(9)), Some(Side::Before));
        assert_eq!(r.outside(5, || Some(10)), None);
        assert_eq!(r.outside(5, || None), None);
    }

    #[test]
    fn packets_left_out_are_counted() {
        let cfg = SelectConfig {
            range: TimeRange {
                since: 10,
                until: 20,
            },
            filter: None,
            dedup: None,
        };
        let mut s = Selector::new(&cfg).unwrap().unwrap();
        let pkt = |ts_ns| Packet {
            ts_ns,
            len: 0,
            linktype: 1,
            data: &[],
        };
        let kept: Vec<u64> = (5..25).filter(|&t| s.keep(&pkt(t))).collect();
        assert_eq!(kept, (10..20).collect::<Vec<_>>());
        assert_eq!(s.stats().packets_before_range, 5);
        assert_eq!(s.stats().packets_after_range, 5);
        let none = SelectConfig {
            range: TimeRange::ALL,
            ..cfg
        };
        assert!(Selector::new(&none).unwrap().is_none());
    }
}
