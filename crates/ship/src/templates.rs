//! Index templates installed at start (`PUT _index_template/…`), so that every new daily index or
//! data stream maps timestamps as `date`, addresses as `ip`, ports and counters as `long`, and other
//! strings as `keyword`, instead of whatever dynamic mapping guesses from the first document.

use serde_json::{json, Value};

use crate::client::{EsClient, Failure};
use crate::naming::{Family, Naming};

/// Above Elasticsearch's built-in `logs-*-*` template (priority 100).
const PRIORITY: u32 = 200;

/// Mappings shared by both families: `@timestamp`, provenance and the ECS fields.
fn common_properties() -> serde_json::Map<String, Value> {
    let endpoint = json!({"properties": {
        "ip": {"type": "ip"}, "port": {"type": "long"},
        "bytes": {"type": "long"}, "packets": {"type": "long"}
    }});
    let mut p = serde_json::Map::new();
    p.insert("@timestamp".into(), json!({"type": "date"}));
    p.insert(
        "shardcap".into(),
        json!({"properties": {
            "run_id": {"type": "keyword"}, "sensor": {"type": "keyword"},
            "shard": {"type": "integer"}, "file": {"type": "keyword"}, "offset": {"type": "long"}
        }}),
    );
    p.insert("source".into(), endpoint.clone());
    p.insert("destination".into(), endpoint);
    p.insert(
        "network".into(),
        json!({"properties": {
            "transport": {"type": "keyword"}, "protocol": {"type": "keyword"},
            "community_id": {"type": "keyword"}, "bytes": {"type": "long"}, "packets": {"type": "long"}
        }}),
    );
    p.insert(
        "event".into(),
        json!({"properties": {"duration": {"type": "long"}, "severity": {"type": "long"}}}),
    );
    p.insert(
        "log".into(),
        json!({"properties": {"file": {"properties": {"path": {"type": "keyword"}}}, "offset": {"type": "long"}}}),
    );
    p
}

/// The template for one family's indices or data streams.
pub fn template(naming: &Naming, family: Family) -> Value {
    let mut props = common_properties();
    match family {
        Family::Zeek => {
            props.insert(
                "ts".into(),
                json!({"type": "date", "format": "epoch_second||strict_date_optional_time"}),
            );
            props.insert(
                "id".into(),
                json!({"properties": {
                    "orig_h": {"type": "ip"}, "resp_h": {"type": "ip"},
                    "orig_p": {"type": "long"}, "resp_p": {"type": "long"}
                }}),
            );
        }
        Family::Suricata => {
            props.insert("timestamp".into(), json!({"type": "date"}));
            props.insert("src_ip".into(), json!({"type": "ip"}));
            props.insert("dest_ip".into(), json!({"type": "ip"}));
            props.insert("src_port".into(), json!({"type": "long"}));
            props.insert("dest_port".into(), json!({"type": "long"}));
        }
    }
    let mut t = json!({
        "index_patterns": [naming.pattern(family)],
        "priority": PRIORITY,
        "template": {"mappings": {
            "dynamic_templates": [{"strings_as_keyword": {
                "match_mapping_type": "string",
                "mapping": {"type": "keyword", "ignore_above": 1024}
            }}],
            "properties": props
        }},
        "_meta": {"managed_by": "shardcap"}
    });
    if naming.data_streams {
        t["data_stream"] = json!({});
    }
    t
}

/// The template's name for one family.
pub fn name(naming: &Naming, family: Family) -> String {
    if naming.data_streams {
        format!("shardcap-logs-{}", family.name())
    } else {
        format!("{}shardcap-{}", naming.prefix, family.name())
    }
}

/// Installs (or replaces) both templates.
pub fn install(client: &EsClient, naming: &Naming) -> Result<(), Failure> {
    for family in [Family::Zeek, Family::Suricata] {
        let body = serde_json::to_vec(&template(naming, family)).expect("a JSON value serialises");
        let path = format!("/_index_template/{}", name(naming, family));
        client.request("PUT", &path, Some((&body, "application/json")))?;
        log::info!("index template {} installed", name(naming, family));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_types() {
        let mut n = Naming {
            prefix: "lab-".into(),
            data_streams: false,
            namespace: "default".into(),
        };
        let z = template(&n, Family::Zeek);
        assert_eq!(z["index_patterns"][0], "lab-zeek-*");
        let p = &z["template"]["mappings"]["properties"];
        assert_eq!(p["id"]["properties"]["orig_h"]["type"], "ip");
        assert_eq!(p["@timestamp"]["type"], "date");
        assert!(z.get("data_stream").is_none());
        n.data_streams = true;
        let s = template(&n, Family::Suricata);
        assert_eq!(s["index_patterns"][0], "logs-suricata.*-*");
        assert_eq!(
            s["template"]["mappings"]["properties"]["dest_ip"]["type"],
            "ip"
        );
        assert!(s.get("data_stream").is_some());
        assert_eq!(name(&n, Family::Suricata), "shardcap-logs-suricata");
    }
}
