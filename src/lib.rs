//! shardcap: merge packet captures by packet time, shard them by symmetric flow hash, feed Zeek and
//! Suricata instances, and ship their logs to Elasticsearch.

pub mod cli;
pub mod cluster;
pub mod control;
pub mod coverage;
pub mod ctl;
pub mod dispatch;
pub mod error;
pub mod ids;
pub mod input;
pub mod merge;
pub mod reorder;
pub mod scan;
pub mod select;
pub mod shipping;
pub mod sink;
pub mod state;
