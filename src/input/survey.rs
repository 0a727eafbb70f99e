//! What a capture holds, read to its end: format, link types, time range, packets, problems
//! (`shardcap scan` prints it), and the time range alone ([`read_range`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use shardcap_capture::capture::Capture;

/// What a capture holds.
#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub path: String,
    pub format: Option<&'static str>,
    pub compression: Option<&'static str>,
    pub link_types: Vec<u32>,
    pub precision: Option<&'static str>,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub packets: u64,
    pub bytes: u64,
    pub out_of_order: u64,
    pub problems: Vec<String>,
    /// An earlier input with the same packets (set by `scan` when it compares the inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// A longer input whose first packets are all of this one's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_of: Option<String>,
}

/// The first and the latest packet time of a capture read to its end (or to damage); `None`
/// when it has no packets or cannot be opened. Reading stops early once `stop` is set.
pub fn read_range(path: &Path, stop: &AtomicBool) -> Option<(u64, u64)> {
    let (mut cap, _, _) = Capture::open(path).ok()??;
    let mut range: Option<(u64, u64)> = None;
    while !stop.load(Ordering::Relaxed) && cap.advance().unwrap_or(false) {
        let ts = cap.ts();
        range = Some(range.map_or((ts, ts), |(first, last)| (first, last.max(ts))));
    }
    range
}

/// Reads one capture to its end.
pub fn scan_file(path: &Path) -> ScanReport {
    let mut r = ScanReport {
        path: path.display().to_string(),
        format: None,
        compression: None,
        link_types: Vec::new(),
        precision: None,
        first_ts: None,
        last_ts: None,
        packets: 0,
        bytes: 0,
        out_of_order: 0,
        problems: Vec::new(),
        duplicate_of: None,
        prefix_of: None,
    };
    let (mut cap, format, compression) = match Capture::open(path) {
        Ok(Some(c)) => c,
        Ok(None) => {
            r.problems
                .push("byte 0: not a pcap or pcapng capture".into());
            return r;
        }
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    r.format = Some(format.name());
    r.compression = compression.name();
    let mut damage = None;
    loop {
        match cap.advance() {
            Ok(true) => {
                let ts = cap.ts();
                r.first_ts.get_or_insert(ts);
                if r.last_ts.is_some_and(|l| ts < l) {
                    r.out_of_order += 1;
                }
                r.last_ts = Some(r.last_ts.map_or(ts, |l| l.max(ts)));
                r.packets += 1;
                r.bytes += cap.packet().data.len() as u64;
            }
            Ok(false) => break,
            Err(e) => {
                damage = Some(e.to_string());
                break;
            }
        }
    }
    r.problems.extend(cap.anomalies().lines());
    r.problems.extend(damage);
    let info = cap.info(format, compression);
    r.link_types = info.linktypes;
    r.precision = Some(if info.nanos { "ns" } else { "us" });
    r
}
