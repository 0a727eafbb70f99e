//! Run statistics, printed as pcapdj-compatible `[STATS] Key:Value` lines.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::control::report;
use crate::merge::MergeStats;
use crate::reorder::ReorderStats;
use crate::select::SelectStats;
use crate::sink::writer::ShardCounters;
use shardcap_flow::FlowStats;
use shardcap_ship::stats::ShipSnapshot;

/// The dispatcher's state, as stats show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    Starting,
    Running,
    Suspended,
    Waiting,
    Stopping,
    Done,
}

impl State {
    /// pcapdj's wording: it says `Running` before the first packet and `Feeding fifo buffer` while
    /// packets flow, whatever the output. `Stopping` and `Done` are shardcap's own.
    pub fn label(self) -> &'static str {
        match self {
            State::Starting => "Running",
            State::Running => "Feeding fifo buffer",
            State::Suspended => "Suspended",
            State::Waiting => "Waiting for authorization",
            State::Stopping => "Stopping",
            State::Done => "Done",
        }
    }
}

/// One shard's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStats {
    pub shard: usize,
    pub output: String,
    pub packets: u64,
    pub bytes: u64,
    pub blocked_ms: u64,
}

/// A snapshot of the run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub start_time: u64,
    pub uptime_s: f64,
    pub state: State,
    pub suspensions: u64,
    /// Seconds spent suspended (not counted in rates and ETA).
    pub suspended_s: f64,
    /// Files opened so far (pcapdj's `Number of files`).
    pub files_opened: u64,
    pub files_done: u64,
    pub files_total: u64,
    pub files_skipped: u64,
    /// Files not read: the same packets as another input.
    pub files_duplicate: u64,
    pub current_file: Option<String>,
    pub packets: u64,
    /// Packets written from the buffer they were read into, without a copy in shardcap.
    pub packets_uncopied: u64,
    pub cap_lengths: u64,
    pub lengths: u64,
    pub input_bytes_done: u64,
    pub input_bytes_total: u64,
    /// Bytes read from capture files by every reader (heads, tails, streaming, ranges read to
    /// the end, duplicate checks; compressed bytes for compressed files).
    pub input_bytes_read: u64,
    /// Bytes gzip and zstd decompression produced, by every reader.
    pub input_bytes_decompressed: u64,
    /// Longest time one look at the intake for new files (and their admission) held the shards
    /// while packets were flowing, in milliseconds.
    pub longest_intake_ms: u64,
    /// Capture bytes the looks at the intake read on the dispatch thread (heads, tails; never a
    /// whole file: those are read on threads of their own), decompressed bytes for compressed
    /// files.
    pub intake_bytes_read: u64,
    pub packets_per_s: f64,
    pub mbytes_per_s: f64,
    pub eta_s: Option<f64>,
    pub out_of_order: u64,
    pub dropped_linktype: u64,
    pub normalised_linktype: u64,
    pub merge: MergeStats,
    pub flow: FlowStats,
    pub reorder: ReorderStats,
    /// What `--since`/`--until`, `--filter` and `--dedup` left out (`None` without them).
    pub select: Option<SelectStats>,
    pub shards: Vec<ShardStats>,
    /// The log shipper's figures, when `run --ship` ships while it runs.
    pub ship: Option<ShipSnapshot>,
}

/// Run-wide counters kept by the dispatcher.
#[derive(Debug)]
pub struct RunStats {
    pub started: Instant,
    pub start_wall: SystemTime,
    pub state: State,
    pub suspensions: u64,
    /// Time spent suspended (not counted in rates and ETA).
    pub suspended: Duration,
    /// Files opened so far (pcapdj's `Number of files`).
    pub files_opened: u64,
    pub files_done: u64,
    pub files_total: u64,
    pub files_skipped: u64,
    /// Files not read: the same packets as another input.
    pub files_duplicate: u64,
    pub input_bytes_done: u64,
    pub input_bytes_total: u64,
    /// Longest time one look at the intake held the shards while packets were flowing.
    pub longest_intake: Duration,
    /// Capture bytes the looks at the intake read on the dispatch thread.
    pub intake_bytes_read: u64,
    pub dropped_linktype: u64,
    /// Packets of another link type written as Ethernet frames.
    pub normalised_linktype: u64,
    /// The reorder window's counters, as of the last service tick.
    pub reorder: ReorderStats,
    /// The selection's counters, as of the last service tick.
    pub select: Option<SelectStats>,
}

impl RunStats {
    /// Counters at the start of a run.
    pub fn new() -> Self {
        RunStats {
            started: Instant::now(),
            start_wall: SystemTime::now(),
            state: State::Starting,
            suspensions: 0,
            suspended: Duration::ZERO,
            files_opened: 0,
            files_done: 0,
            files_total: 0,
            files_skipped: 0,
            files_duplicate: 0,
            input_bytes_done: 0,
            input_bytes_total: 0,
            longest_intake: Duration::ZERO,
            intake_bytes_read: 0,
            dropped_linktype: 0,
            normalised_linktype: 0,
            reorder: ReorderStats::default(),
            select: None,
        }
    }

    /// Combines the run's counters with the stages' into one snapshot.
    pub fn snapshot(
        &self,
        current_file: Option<String>,
        in_flight_bytes: u64,
        merge: MergeStats,
        flow: FlowStats,
        shards: &[(String, ShardCounters)],
    ) -> Snapshot {
        let uptime = self.started.elapsed().as_secs_f64();
        let active = (uptime - self.suspended.as_secs_f64()).max(1e-9);
        let packets: u64 = shards.iter().map(|s| s.1.packets).sum();
        let uncopied: u64 = shards.iter().map(|s| s.1.uncopied).sum();
        let bytes: u64 = shards.iter().map(|s| s.1.bytes).sum();
        let wire: u64 = shards.iter().map(|s| s.1.wire_bytes).sum();
        let done = self.input_bytes_done + in_flight_bytes;
        let rate = done as f64 / active;
        let left = self.input_bytes_total.saturating_sub(done) as f64;
        let read = shardcap_capture::stream::read_totals();
        Snapshot {
            start_time: self
                .start_wall
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs(),
            uptime_s: uptime,
            state: self.state,
            suspensions: self.suspensions,
            suspended_s: self.suspended.as_secs_f64(),
            files_opened: self.files_opened,
            files_done: self.files_done,
            files_total: self.files_total,
            files_skipped: self.files_skipped,
            files_duplicate: self.files_duplicate,
            current_file,
            packets,
            packets_uncopied: uncopied,
            cap_lengths: bytes,
            lengths: wire,
            input_bytes_done: done,
            input_bytes_total: self.input_bytes_total,
            input_bytes_read: read.file,
            input_bytes_decompressed: read.decompressed,
            longest_intake_ms: self.longest_intake.as_millis() as u64,
            intake_bytes_read: self.intake_bytes_read,
            packets_per_s: packets as f64 / active,
            mbytes_per_s: rate / 1e6,
            eta_s: (rate > 0.0).then(|| left / rate),
            out_of_order: merge.out_of_order,
            dropped_linktype: self.dropped_linktype,
            normalised_linktype: self.normalised_linktype,
            merge,
            flow,
            reorder: self.reorder,
            select: self.select,
            ship: None,
            shards: shards
                .iter()
                .enumerate()
                .map(|(k, (name, c))| ShardStats {
                    shard: k,
                    output: name.clone(),
                    packets: c.packets,
                    bytes: c.bytes,
                    blocked_ms: c.blocked.as_millis() as u64,
                })
                .collect(),
        }
    }
}

impl Default for RunStats {
    fn default() -> Self {
        Self::new()
    }
}

impl Snapshot {
    /// Writes exactly pcapdj's eight `[STATS]` lines, in its wording and formats.
    pub fn write_pcapdj_lines(&self, out: &mut dyn Write) -> std::io::Result<()> {
        self.write_pcapdj_fields(out)?;
        out.flush()
    }

    fn write_pcapdj_fields(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut l = |k: &str, v: String| report::stat_line(out, k, &v);
        l("Start time", pcapdj_time(self.start_time as i64))?;
        l("Uptime", format!("{} (seconds)", self.uptime_s as u64))?;
        l("Internal state", self.state.label().to_string())?;
        l("Number of suspensions", self.suspensions.to_string())?;
        l("Number of files", self.files_opened.to_string())?;
        l("Number of packets", self.packets.to_string())?;
        l("Number of cap_lengths", self.cap_lengths.to_string())?;
        l("Number of lengths", self.lengths.to_string())
    }

    /// Writes `[STATS] Key:Value` lines: pcapdj's fields first, in its wording and formats (start
    /// time as local `%Y-%d-%m %H:%M:%S`, uptime in whole seconds), then shardcap's.
    pub fn write_lines(&self, out: &mut dyn Write) -> std::io::Result<()> {
        self.write_pcapdj_fields(out)?;
        let mut l = |k: &str, v: String| report::stat_line(out, k, &v);
        l(
            "Current file",
            self.current_file.clone().unwrap_or_default(),
        )?;
        l(
            "Files left",
            (self.files_total.saturating_sub(self.files_done)).to_string(),
        )?;
        l("Files done", self.files_done.to_string())?;
        l("Files skipped", self.files_skipped.to_string())?;
        l("Files duplicate", self.files_duplicate.to_string())?;
        l("Bytes done", self.input_bytes_done.to_string())?;
        l("Bytes total", self.input_bytes_total.to_string())?;
        l("Bytes read", self.input_bytes_read.to_string())?;
        l(
            "Bytes decompressed",
            self.input_bytes_decompressed.to_string(),
        )?;
        l(
            "Longest intake look",
            format!("{} (ms)", self.longest_intake_ms),
        )?;
        l("Intake bytes read", self.intake_bytes_read.to_string())?;
        l("Packets per second", format!("{:.0}", self.packets_per_s))?;
        l("MB per second", format!("{:.1}", self.mbytes_per_s))?;
        l(
            "ETA",
            self.eta_s
                .map_or("unknown".into(), |s| format!("{s:.0} (seconds)")),
        )?;
        l("Out of order", self.out_of_order.to_string())?;
        l("Dropped (link type)", self.dropped_linktype.to_string())?;
        l(
            "Normalised (link type)",
            self.normalised_linktype.to_string(),
        )?;
        l(
            "Suspended for",
            format!("{:.0} (seconds)", self.suspended_s),
        )?;
        if let Some(s) = &self.select {
            l("Files outside range", s.files_outside_range.to_string())?;
            l("Packets before range", s.packets_before_range.to_string())?;
            l("Packets after range", s.packets_after_range.to_string())?;
            l(
                "Packets not matching filter",
                s.packets_filtered.to_string(),
            )?;
            l("Duplicate packets", s.packets_duplicate.to_string())?;
        }
        for s in &self.shards {
            l(&format!("Shard {} packets", s.shard), s.packets.to_string())?;
            l(&format!("Shard {} bytes", s.shard), s.bytes.to_string())?;
            l(
                &format!("Shard {} blocked", s.shard),
                format!("{} (ms)", s.blocked_ms),
            )?;
        }
        if let Some(ship) = &self.ship {
            l("Ship records shipped", ship.records_shipped.to_string())?;
            l(
                "Ship records already indexed",
                ship.records_existing.to_string(),
            )?;
            l(
                "Ship records per second",
                format!("{:.0}", ship.records_per_s),
            )?;
            l("Ship lag (bytes)", ship.lag_bytes.to_string())?;
            l("Ship dead-lettered", ship.dead_lettered.to_string())?;
        }
        out.flush()
    }
}

/// Local time as pcapdj prints its start time: `%Y-%d-%m %H:%M:%S` (year, day, month).
fn pcapdj_time(epoch: i64) -> String {
    match jiff::Timestamp::from_second(epoch) {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%d-%m %H:%M:%S")
            .to_string(),
        Err(_) => epoch.to_string(),
    }
}
