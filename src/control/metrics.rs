//! `--metrics-listen ADDR:PORT`: the run's and the shipper's figures in Prometheus' text exposition
//! format, served over HTTP on a thread of its own. It reads the snapshots the stats already take
//! (published at each service tick); the packet path is not touched.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::thread;

use crate::control::stats::{Snapshot, State};
use crate::error::{Error, Result};
use shardcap_ship::stats::ShipSnapshot;

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the server shows: the dispatcher's latest snapshot and Redis' reachability (`run`), or
/// the shipper's latest snapshot (`ship`).
#[derive(Default)]
pub struct Published {
    run: Mutex<Option<(Snapshot, Option<bool>)>>,
    ship: Option<Arc<Mutex<ShipSnapshot>>>,
}

impl Published {
    /// For `run`: filled by [`Published::run`] at each service tick.
    pub fn for_run() -> Arc<Self> {
        Arc::new(Published::default())
    }

    /// For `ship`: shows the shipper's snapshot as it refreshes it.
    pub fn for_ship(latest: Arc<Mutex<ShipSnapshot>>) -> Arc<Self> {
        Arc::new(Published {
            run: Mutex::new(None),
            ship: Some(latest),
        })
    }

    /// The dispatcher's latest figures; `redis_up` is Redis' reachability for a Redis-fed run.
    pub fn run(&self, snap: &Snapshot, redis_up: Option<bool>) {
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = Some((snap.clone(), redis_up));
    }

    /// The whole exposition.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        out.family(
            "shardcap_build_info",
            "gauge",
            "The version of shardcap serving these metrics.",
        );
        out.sample(
            "shardcap_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((snap, redis_up)) = &run {
            run_metrics(&mut out, snap, *redis_up);
        }
        let ship = match (&self.ship, &run) {
            (Some(latest), _) => Some(latest.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            (None, Some((snap, _))) => snap.ship.clone(),
            (None, None) => None,
        };
        if let Some(s) = &ship {
            ship_metrics(&mut out, s);
        }
        out.text
    }
}

/// Starts serving `published` on `addr` (`HOST:PORT`); a port that cannot be bound is a usage
/// error naming the flag. The thread lives as long as the process.
pub fn serve(addr: &str, published: Arc<Published>) -> Result<()> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| Error::usage(format!("--metrics-listen {addr}: {e}")))?;
    log::info!("metrics for Prometheus at http://{addr}/metrics");
    thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                .expect("a valid header");
            for request in server.incoming_requests() {
                let response = match (request.method(), request.url()) {
                    (tiny_http::Method::Get, "/metrics" | "/") => {
                        tiny_http::Response::from_string(published.render())
                            .with_header(header.clone())
                    }
                    _ => tiny_http::Response::from_string("only GET /metrics\n")
                        .with_status_code(404),
                };
                if let Err(e) = request.respond(response) {
                    log::debug!("metrics: answering a scrape: {e}");
                }
            }
        })?;
    Ok(())
}

/// The exposition text being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of a metric family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per label value.
    fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: &[(&str, f64)],
    ) {
        self.family(name, kind, help);
        for (v, x) in values {
            self.sample(name, &[(label, v)], *x);
        }
    }
}

const STATES: [(State, &str); 6] = [
    (State::Starting, "starting"),
    (State::Running, "running"),
    (State::Suspended, "suspended"),
    (State::Waiting, "waiting"),
    (State::Stopping, "stopping"),
    (State::Done, "done"),
];

fn run_metrics(out: &mut Exposition, s: &Snapshot, redis_up: Option<bool>) {
    let c = "counter";
    out.single(
        "shardcap_start_time_seconds",
        "gauge",
        "When the run started, in seconds since the epoch.",
        s.start_time as f64,
    );
    let states: Vec<(&str, f64)> = STATES
        .iter()
        .map(|(st, name)| (*name, f64::from(u8::from(*st == s.state))))
        .collect();
    out.labelled(
        "shardcap_state",
        "gauge",
        "The dispatcher's state (1 for the current one).",
        "state",
        &states,
    );
    out.single(
        "shardcap_suspensions_total",
        c,
        "Suspensions by SIGUSR1.",
        s.suspensions as f64,
    );
    out.single(
        "shardcap_suspended_seconds_total",
        c,
        "Time spent suspended.",
        s.suspended_s,
    );
    out.single(
        "shardcap_packets_total",
        c,
        "Packets written to the shards.",
        s.packets as f64,
    );
    out.single(
        "shardcap_packets_uncopied_total",
        c,
        "Packets written from the buffer they were read into, without a copy.",
        s.packets_uncopied as f64,
    );
    out.single(
        "shardcap_packet_bytes_total",
        c,
        "Captured bytes of the packets written (caplen).",
        s.cap_lengths as f64,
    );
    out.single(
        "shardcap_wire_bytes_total",
        c,
        "Original lengths of the packets written.",
        s.lengths as f64,
    );
    out.single(
        "shardcap_input_read_bytes_total",
        c,
        "Input bytes read (compressed size for compressed files).",
        s.input_bytes_done as f64,
    );
    out.single(
        "shardcap_input_file_bytes_read_total",
        c,
        "Bytes read from input files by every reader (heads, tails, streams, ranges, duplicates).",
        s.input_bytes_read as f64,
    );
    out.single(
        "shardcap_input_decompressed_bytes_total",
        c,
        "Bytes gzip and zstd decompression of input files produced.",
        s.input_bytes_decompressed as f64,
    );
    out.single(
        "shardcap_intake_read_bytes_total",
        c,
        "Capture bytes the looks at the intake read on the dispatch thread (heads and tails).",
        s.intake_bytes_read as f64,
    );
    out.single(
        "shardcap_intake_longest_seconds",
        "gauge",
        "Longest time one look at the intake for new files held the shards while packets flowed.",
        s.longest_intake_ms as f64 / 1e3,
    );
    out.single(
        "shardcap_input_known_bytes",
        "gauge",
        "Size of every input file known so far.",
        s.input_bytes_total as f64,
    );
    out.single(
        "shardcap_input_files",
        "gauge",
        "Input files known so far.",
        s.files_total as f64,
    );
    out.single(
        "shardcap_files_opened_total",
        c,
        "Input files opened.",
        s.files_opened as f64,
    );
    out.labelled(
        "shardcap_files_total",
        c,
        "Input files finished, by outcome (streamed whole, or skipped as unreadable or damaged).",
        "outcome",
        &[
            ("streamed", s.files_done as f64),
            ("skipped", s.files_skipped as f64),
        ],
    );
    out.single(
        "shardcap_out_of_order_packets_total",
        c,
        "Packets written with a timestamp before that of a packet written earlier.",
        s.out_of_order as f64,
    );
    out.labelled(
        "shardcap_linktype_packets_total",
        c,
        "Packets of a link type the stream cannot carry: dropped, or converted to Ethernet.",
        "action",
        &[
            ("dropped", s.dropped_linktype as f64),
            ("converted", s.normalised_linktype as f64),
        ],
    );
    out.single(
        "shardcap_merge_open_limit_hits_total",
        c,
        "Times a due input could not be opened because --max-open inputs were open.",
        s.merge.open_limit_hits as f64,
    );
    let f = &s.flow;
    out.labelled(
        "shardcap_flow_packets_total",
        c,
        "Packets by how the flow stage keyed or held them.",
        "stage",
        &[
            ("non_ip", f.non_ip as f64),
            ("icmp_error", f.icmp_errors as f64),
            ("tunnelled", f.tunnelled as f64),
            ("fragment", f.fragments as f64),
            ("fragment_held", f.frag_held as f64),
            ("delayed", f.delayed as f64),
            ("fragment_unmatched", f.frag_unmatched as f64),
        ],
    );
    out.single(
        "shardcap_flow_fragment_evictions_total",
        c,
        "Fragment-table entries evicted while still in use.",
        f.frag_evicted as f64,
    );
    let r = &s.reorder;
    out.labelled(
        "shardcap_reorder_packets_total",
        c,
        "Packets the reorder window put back in order, found too late, or released early.",
        "result",
        &[
            ("repaired", r.repaired as f64),
            ("too_late", r.too_late as f64),
            ("forced", r.forced as f64),
        ],
    );
    let shard = |k: usize| k.to_string();
    let per_shard = |out: &mut Exposition, name: &str, help: &str, v: &dyn Fn(usize) -> f64| {
        out.family(name, c, help);
        for sh in &s.shards {
            out.sample(name, &[("shard", &shard(sh.shard))], v(sh.shard));
        }
    };
    per_shard(
        out,
        "shardcap_shard_packets_total",
        "Packets written to a shard.",
        &|k| s.shards[k].packets as f64,
    );
    per_shard(
        out,
        "shardcap_shard_bytes_total",
        "Bytes written to a shard (records with their headers).",
        &|k| s.shards[k].bytes as f64,
    );
    per_shard(
        out,
        "shardcap_shard_blocked_seconds_total",
        "Time a shard's writer waited for its reader.",
        &|k| s.shards[k].blocked_ms as f64 / 1e3,
    );
    if let Some(up) = redis_up {
        out.single(
            "shardcap_redis_up",
            "gauge",
            "1 while the Redis queue answers, 0 while it is unreachable.",
            f64::from(u8::from(up)),
        );
    }
}

fn ship_metrics(out: &mut Exposition, s: &ShipSnapshot) {
    let c = "counter";
    out.labelled(
        "shardcap_ship_records_total",
        c,
        "Log records by result: indexed, found already indexed, or dead-lettered.",
        "result",
        &[
            ("indexed", s.records_shipped as f64),
            ("existing", s.records_existing as f64),
            ("dead_lettered", s.dead_lettered as f64),
        ],
    );
    out.single(
        "shardcap_ship_bytes_total",
        c,
        "Log bytes whose records are all acknowledged.",
        s.bytes_shipped as f64,
    );
    out.single(
        "shardcap_ship_lag_bytes",
        "gauge",
        "Log bytes on disk whose records are not acknowledged yet.",
        s.lag_bytes as f64,
    );
    out.single(
        "shardcap_ship_files",
        "gauge",
        "Log files followed.",
        s.files as f64,
    );
    out.single(
        "shardcap_ship_requests_total",
        c,
        "Bulk requests sent.",
        s.requests as f64,
    );
    out.single(
        "shardcap_ship_retries_total",
        c,
        "Bulk requests retried.",
        s.retries as f64,
    );
    out.single(
        "shardcap_ship_requests_in_flight",
        "gauge",
        "Bulk requests in flight.",
        s.in_flight as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_declared_before_its_samples() {
        let p = Published::for_ship(Arc::new(Mutex::new(ShipSnapshot {
            records_shipped: 7,
            ..ShipSnapshot::default()
        })));
        let text = p.render();
        assert!(text.contains("shardcap_build_info{version=\""), "{text}");
        assert!(text.contains("shardcap_ship_records_total{result=\"indexed\"} 7\n"));
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{line}");
            }
        }
    }
}
