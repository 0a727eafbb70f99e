//! Shipping real Suricata output and Zeek logs (TSV and JSON) into the Elasticsearch stand-ins:
//! every record indexed once, into the right index, with the right mapping; replays index nothing
//! twice; a per-item 429 is retried until it succeeds.

mod common;
mod ship_support;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use ship_support::*;

/// Suricata's eve.json from a real run (shard-0) and both Zeek fixture sets (shard-1).
struct Logs {
    dir: tempfile::TempDir,
    eve: usize,
    zeek_tsv: usize,
    zeek_json: usize,
}

fn logs() -> Logs {
    let dir = tempfile::tempdir().unwrap();
    let eve = suricata_eve(
        "pcapplusplus/realistic-mixed-http-dns-2013.pcap",
        &dir.path().join("shard-0/suricata"),
    );
    let zeek_tsv = copy_fixtures("zeek-tsv", &dir.path().join("shard-1/zeek-tsv"));
    let zeek_json = copy_fixtures("zeek-json", &dir.path().join("shard-1/zeek-json"));
    Logs {
        dir,
        eve,
        zeek_tsv,
        zeek_json,
    }
}

fn source_without_provenance(doc: &Value) -> Value {
    let mut s = doc["_source"].clone();
    let o = s.as_object_mut().unwrap();
    o.remove("shardcap");
    o.remove("log");
    s
}

fn check_everything_indexed(kind: Kind) {
    let server = Server::start(kind);
    let logs = logs();
    let state = tempfile::tempdir().unwrap();
    let stats_path = state.path().join("stats.json");
    let dir = logs.dir.path().to_str().unwrap();
    let stats_file = stats_path.to_str().unwrap();
    let ship_once = |args: &[&str]| {
        let (code, err) = ship_to(&server, state.path(), &[args, &[dir]].concat());
        assert_eq!(code, 0, "{err}");
    };
    ship_once(&["--ecs", "--sensor", "lab-1", "--stats-file", stats_file]);

    // Every record once: the counts equal the records written.
    assert_eq!(server.count("suricata-*"), logs.eve as u64);
    assert_eq!(
        server.count("zeek-*"),
        (logs.zeek_tsv + logs.zeek_json) as u64
    );
    assert_eq!(server.distinct_ids("suricata-*"), logs.eve);
    let s = stats(&stats_path).unwrap();
    assert_eq!(
        s["records_shipped"],
        (logs.eve + logs.zeek_tsv + logs.zeek_json) as u64
    );
    assert_eq!(s["dead_lettered"], 0);
    assert_eq!(s["lag_bytes"], 0);
    assert!(dead_letters(state.path()).is_empty());

    // An index per log type and (record) day.
    let zeek = server.indices("zeek-*");
    assert_eq!(
        zeek,
        [
            "zeek-conn-2013.05.02",
            "zeek-dns-2013.05.02",
            "zeek-http-2013.05.02"
        ]
    );
    let suricata = server.indices("suricata-*");
    for name in ["alert", "dns", "flow", "http", "fileinfo"] {
        let want = format!("suricata-{name}-2013.05.02");
        assert!(suricata.contains(&want), "{want} missing from {suricata:?}");
    }

    // The templates made addresses `ip` and timestamps `date`.
    let m = server.call("GET", "/zeek-conn-2013.05.02/_mapping", None);
    let p = &m["zeek-conn-2013.05.02"]["mappings"]["properties"];
    assert_eq!(p["id"]["properties"]["orig_h"]["type"], "ip");
    assert_eq!(p["ts"]["type"], "date");
    assert_eq!(p["@timestamp"]["type"], "date");
    assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
    let m = server.call("GET", "/suricata-flow-2013.05.02/_mapping", None);
    let p = &m["suricata-flow-2013.05.02"]["mappings"]["properties"];
    assert_eq!(p["dest_ip"]["type"], "ip");
    assert_eq!(p["timestamp"]["type"], "date");

    // ECS fields and provenance.
    let alerts = server.docs("suricata-alert-*");
    let a = alerts
        .iter()
        .find(|d| d["_source"]["alert"]["signature_id"] == 9_000_001)
        .expect("an HTTP alert");
    let src = &a["_source"];
    assert_eq!(src["rule"]["id"], "9000001");
    assert_eq!(src["event"]["kind"], "alert");
    assert_eq!(src["network"]["transport"], "tcp");
    assert_eq!(src["network"]["community_id"], src["community_id"]);
    assert_eq!(src["source"]["ip"], src["src_ip"]);
    assert_eq!(src["shardcap"]["sensor"], "lab-1");
    assert_eq!(src["shardcap"]["shard"], 0);
    let conn = server.docs("zeek-conn-*");
    let c = &conn[0]["_source"];
    assert_eq!(c["event"]["dataset"], "zeek.conn");
    assert_eq!(c["source"]["ip"], c["id.orig_h"]);
    assert_eq!(c["destination"]["port"], c["id.resp_p"]);
    assert_eq!(c["shardcap"]["shard"], 1);
    assert!(c["@timestamp"].as_str().unwrap().starts_with("2013-05-02T"));

    // The TSV and JSON forms of each Zeek record became the same document.
    for log in ["conn", "dns", "http"] {
        let mut by_record: HashMap<String, Vec<Value>> = HashMap::new();
        for d in server.docs(&format!("zeek-{log}-*")) {
            let s = &d["_source"];
            let key = format!(
                "{}|{}|{}|{}",
                s["uid"], s["ts"], s["trans_depth"], s["trans_id"]
            );
            by_record.entry(key).or_default().push(d);
        }
        assert!(!by_record.is_empty());
        for (key, docs) in by_record {
            assert_eq!(docs.len(), 2, "{log} {key}: one document from each format");
            let (a, b) = (
                source_without_provenance(&docs[0]),
                source_without_provenance(&docs[1]),
            );
            assert_eq!(a, b, "{log} {key}: TSV and JSON differ");
        }
    }
    let http = server.docs("zeek-http-*");
    let uris: Vec<&str> = http
        .iter()
        .filter_map(|d| d["_source"]["uri"].as_str())
        .collect();
    assert!(uris.iter().any(|u| u.ends_with("?q=a\tb")), "\\x09 decoded");
    assert!(
        http.iter().any(|d| d["_source"]["referrer"] == "-"),
        "\\x2d decoded"
    );
    assert!(
        http.iter().any(|d| d["_source"]["host"] == ""),
        "(empty) string"
    );

    // Shipping again adds nothing; a replay from scratch indexes nothing twice (409 on create).
    ship_once(&[]);
    std::fs::remove_file(state.path().join("checkpoints.json")).unwrap();
    ship_once(&["--stats-file", stats_file]);
    let s = stats(&stats_path).unwrap();
    assert_eq!(s["records_shipped"], 0);
    assert_eq!(
        s["records_existing"],
        (logs.eve + logs.zeek_tsv + logs.zeek_json) as u64
    );
    assert_eq!(
        server.count("*"),
        (logs.eve + logs.zeek_tsv + logs.zeek_json) as u64
    );
}

#[test]
fn every_record_indexed_once_in_noida() {
    check_everything_indexed(Kind::Noida);
}

#[test]
fn every_record_indexed_once_in_osmem() {
    check_everything_indexed(Kind::Osmem);
}

/// A flood-stage block makes the server refuse items with 429 (as Elasticsearch does when its disk
/// fills): the shipper keeps retrying them, and once the block is lifted everything is indexed.
#[test]
fn per_item_429_is_retried_until_accepted() {
    let server = Server::start(Kind::Noida);
    let dir = tempfile::tempdir().unwrap();
    let n = copy_fixtures("zeek-tsv", &dir.path().join("zeek"));
    let state = tempfile::tempdir().unwrap();
    let stats_path = state.path().join("stats.json");
    server.call("PUT", "/zeek-conn-2013.05.02", None);
    server.call(
        "PUT",
        "/zeek-conn-2013.05.02/_settings",
        Some(serde_json::json!({"index.blocks.read_only_allow_delete": true})),
    );
    let proc = Proc::spawn(shardcap([
        "ship",
        "--es",
        &server.url,
        "--state",
        state.path().to_str().unwrap(),
        "--retry-max",
        "200ms",
        "--stats-file",
        stats_path.to_str().unwrap(),
        "--stats-interval",
        "50ms",
        dir.path().to_str().unwrap(),
    ]));
    wait_until("the shipper retries the refused items", || {
        stats(&stats_path).is_some_and(|s| s["retries"].as_u64() > Some(0))
    });
    assert_eq!(server.count("zeek-conn-*"), 0, "blocked");
    server.call(
        "PUT",
        "/zeek-conn-2013.05.02/_settings",
        Some(serde_json::json!({"index.blocks.read_only_allow_delete": null})),
    );
    let (status, err) = proc.wait();
    assert!(status.success(), "{err}");
    assert!(err.contains("429"), "the retries are logged: {err}");
    assert_eq!(server.count("zeek-*"), n as u64);
    assert!(dead_letters(state.path()).is_empty());
    assert!(Path::new(&stats_path).exists());
}
