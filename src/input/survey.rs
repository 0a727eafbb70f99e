//! What a capture holds, read to its end: format, link types, time range, packets, problems
//! (`shardcap scan` prints it; continuous mode reads a completed file's time range from it).

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
}

/// Reads one capture to its end.
pub fn scan_file(path: &std::path::Path) -> ScanReport {
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
