//! `shardcap ship` (and `shardcap run --ship`): follows the Zeek and Suricata logs under log
//! directories and indexes every record into Elasticsearch through the bulk API, checkpointed per
//! file, with deterministic `_id`s so that nothing is lost and nothing is indexed twice.

pub mod backoff;
pub mod batch;
pub mod checkpoint;
pub mod client;
pub mod config;
pub mod content_id;
pub mod deadletter;
pub mod document;
pub mod ecs;
pub mod error;
pub mod handle;
pub mod identity;
pub mod in_order;
pub mod json_line;
pub mod json_text;
pub mod logformat;
pub mod meta;
pub mod naming;
pub mod ndjson_out;
pub mod sender;
pub mod shipper;
pub mod stats;
pub mod tail;
pub mod templates;
pub mod timestamp;
pub mod watch;
pub mod watermark;
pub mod zeek_tsv;

pub use config::{Control, ShipConfig, Target};
pub use error::{Error, Result};
pub use handle::{Halter, ShipHandle};
pub use shipper::{ShipSummary, Shipper};

/// Where `shardcap run --ship` keeps its checkpoints, inside the log directory.
pub const RUN_STATE_DIR: &str = ".ship";

/// The sensor name when none is given: the host name.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// An Elasticsearch target with the URL only (credentials come from the options).
pub fn es(url: &str) -> Target {
    Target::Elasticsearch(client::EsTarget {
        url: url.to_string(),
        user: None,
        password: None,
        api_key: None,
        ca: None,
    })
}
