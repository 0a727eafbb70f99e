//! The shipper's figures: records and bytes shipped, rate, lag, dead letters, retries; printed as
//! `[STATS]` lines on SIGUSR2 and written as JSON to `--stats-file`, like `shardcap run`.

use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Counters kept by the shipper's loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShipCounters {
    /// Indexed by this run (201).
    pub shipped: u64,
    /// Found already indexed (409 on create): replays after a restart or retry.
    pub existing: u64,
    pub dead_lettered: u64,
    /// Log bytes whose records are all acknowledged.
    pub bytes_shipped: u64,
}

/// A snapshot of the shipper, as stats show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShipSnapshot {
    pub start_time: u64,
    pub uptime_s: f64,
    pub state: String,
    pub files: usize,
    pub records_shipped: u64,
    pub records_existing: u64,
    pub records_per_s: f64,
    pub bytes_shipped: u64,
    pub mbytes_per_s: f64,
    /// Log bytes present on disk whose records are not acknowledged yet.
    pub lag_bytes: u64,
    pub dead_lettered: u64,
    pub requests: u64,
    pub retries: u64,
    pub in_flight: usize,
}

/// Start times, for rates.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    started: Instant,
    start_wall: SystemTime,
}

impl Clock {
    /// Now.
    pub fn start() -> Self {
        Clock {
            started: Instant::now(),
            start_wall: SystemTime::now(),
        }
    }

    /// Seconds since the start (never zero).
    pub fn uptime(&self) -> f64 {
        self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// The start as seconds since the epoch.
    pub fn start_secs(&self) -> u64 {
        self.start_wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl ShipSnapshot {
    /// Fills the derived fields from counters.
    pub fn new(clock: &Clock, state: &str, c: &ShipCounters) -> Self {
        let up = clock.uptime();
        ShipSnapshot {
            start_time: clock.start_secs(),
            uptime_s: up,
            state: state.to_string(),
            records_shipped: c.shipped,
            records_existing: c.existing,
            records_per_s: c.shipped as f64 / up,
            bytes_shipped: c.bytes_shipped,
            mbytes_per_s: c.bytes_shipped as f64 / up / 1e6,
            dead_lettered: c.dead_lettered,
            ..ShipSnapshot::default()
        }
    }

    /// `[STATS] Key:Value` lines: start, uptime and state first as `run` prints them, then the
    /// shipper's own.
    pub fn write_lines(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut l = |k: &str, v: String| writeln!(out, "[STATS] {k}:{v}");
        l("Start time", self.start_time.to_string())?;
        l("Uptime", format!("{:.0} (seconds)", self.uptime_s))?;
        l("Internal state", self.state.clone())?;
        l("Log files", self.files.to_string())?;
        l("Records shipped", self.records_shipped.to_string())?;
        l("Records already indexed", self.records_existing.to_string())?;
        l("Records per second", format!("{:.0}", self.records_per_s))?;
        l("Bytes shipped", self.bytes_shipped.to_string())?;
        l("MB per second", format!("{:.1}", self.mbytes_per_s))?;
        l("Lag (bytes)", self.lag_bytes.to_string())?;
        l("Dead-lettered", self.dead_lettered.to_string())?;
        l("Requests", self.requests.to_string())?;
        l("Retries", self.retries.to_string())?;
        l("Requests in flight", self.in_flight.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_back() {
        let c = ShipCounters {
            shipped: 10,
            existing: 2,
            dead_lettered: 1,
            bytes_shipped: 2000,
        };
        let mut s = ShipSnapshot::new(&Clock::start(), "Running", &c);
        s.lag_bytes = 5;
        let mut out = Vec::new();
        s.write_lines(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("[STATS] Start time:"));
        assert!(text.contains("[STATS] Records shipped:10\n"));
        assert!(text.contains("[STATS] Dead-lettered:1\n"));
        assert!(text.contains("[STATS] Lag (bytes):5\n"));
    }
}
