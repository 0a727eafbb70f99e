//! One log line to one bulk item: the `create` action line (target, `_id`) and the document, which is
//! the record as the IDS wrote it (TSV turned into Zeek's JSON) plus `@timestamp`, the `shardcap`
//! provenance object (run id, sensor, shard, file, offset) and, with `--ecs`, the ECS fields.

use std::path::Path;

use crate::ecs::{self, Origin};
use crate::identity::{write_doc_id, DocId};
use crate::json_line;
use crate::json_text::{write_bytes, write_str, ObjectWriter};
use crate::logformat::{self, LogFormat};
use crate::meta::{Meta, Taken};
use crate::naming::Naming;
use crate::zeek_tsv::{Directive, TsvHeader};

/// A log file as a source of documents: its format, header state and constant provenance.
#[derive(Debug, Clone)]
pub struct LogSource {
    pub format: LogFormat,
    /// The Zeek TSV header read so far.
    pub header: TsvHeader,
    /// The log type when the record does not name it (Zeek: from the file name).
    default_type: String,
    shard: Option<u32>,
    /// The path as a JSON string literal.
    path_json: Vec<u8>,
}

impl LogSource {
    /// A source for the file at `path` (its current name).
    pub fn new(format: LogFormat, path: &Path) -> Self {
        let mut path_json = Vec::new();
        write_bytes(&mut path_json, path.as_os_str().as_encoded_bytes());
        LogSource {
            format,
            header: TsvHeader::default(),
            default_type: match format {
                LogFormat::Eve => "eve".into(),
                _ => logformat::zeek_type_from_name(path),
            },
            shard: logformat::shard_of(path),
            path_json,
        }
    }

    /// The shard of its `shard-K` directory, if it is in one.
    pub fn shard(&self) -> Option<u32> {
        self.shard
    }

    /// Follows a rename: provenance names the file as it is called now.
    pub fn renamed(&mut self, path: &Path) {
        self.path_json.clear();
        write_bytes(&mut self.path_json, path.as_os_str().as_encoded_bytes());
    }
}

/// What a line became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// A bulk item was appended; the document starts at this position of the body. `ts_ns`: the
    /// record's own time (ns since the epoch; 0 when it has none).
    Item { doc_start: usize, ts_ns: u64 },
    /// Nothing to ship (blank line, header line).
    Skipped,
    /// Zeek's `#close`: the file is complete.
    Closed,
}

/// Builds bulk items; holds what is the same for every record.
pub struct Encoder {
    naming: Naming,
    ecs: bool,
    /// JSON string literals.
    run_id_json: Vec<u8>,
    sensor: String,
    sensor_json: Vec<u8>,
    doc: Vec<u8>,
}

impl Encoder {
    /// An encoder for this run.
    pub fn new(naming: Naming, ecs: bool, run_id: &str, sensor: &str) -> Self {
        let (mut run_id_json, mut sensor_json) = (Vec::new(), Vec::new());
        write_str(&mut run_id_json, run_id);
        write_str(&mut sensor_json, sensor);
        Encoder {
            naming,
            ecs,
            run_id_json,
            sensor: sensor.to_string(),
            sensor_json,
            doc: Vec::with_capacity(4096),
        }
    }

    /// Appends the bulk item for `line` (without its newline), which starts at byte `offset` of its
    /// file and gets the `_id` `id`, to `out`. On error nothing is appended; the error says what is wrong.
    pub fn encode(
        &mut self,
        src: &mut LogSource,
        line: &[u8],
        offset: u64,
        id: DocId,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.trim_ascii().is_empty() {
            return Ok(Encoded::Skipped);
        }
        self.doc.clear();
        let (meta, members) = match src.format {
            LogFormat::ZeekTsv if line[0] == b'#' => {
                return Ok(match src.header.directive(line)? {
                    Directive::Header => Encoded::Skipped,
                    Directive::Close => Encoded::Closed,
                });
            }
            LogFormat::ZeekTsv => {
                let mut meta = Meta::default();
                self.doc.push(b'{');
                let n = src.header.write_members(line, &mut self.doc, &mut meta)?;
                (meta, n)
            }
            LogFormat::ZeekJson | LogFormat::Eve => {
                let meta = json_line::read(line)?;
                let obj = line.trim_ascii();
                let body = &obj[..obj.len() - 1];
                let empty = body[1..].trim_ascii().is_empty();
                self.doc.extend_from_slice(body.trim_ascii_end());
                (meta, usize::from(!empty))
            }
        };
        let family = src.format.family();
        let log_type: &str = meta
            .log_type
            .as_deref()
            .or(src.header.path.as_deref())
            .unwrap_or(&src.default_type);
        let mut w = ObjectWriter::resume(&mut self.doc, members);
        if let Some(ts) = meta.ts.filter(|_| !meta.taken.contains(Taken::TIMESTAMP)) {
            let v = w.value_of("@timestamp");
            v.push(b'"');
            ts.write_rfc3339(v);
            v.push(b'"');
        }
        if !meta.taken.contains(Taken::SHARDCAP) {
            w.begin("shardcap");
            w.raw("run_id", &self.run_id_json);
            w.raw("sensor", &self.sensor_json);
            if let Some(k) = src.shard {
                w.u64("shard", k.into());
            }
            w.raw("file", &src.path_json);
            w.u64("offset", offset);
            w.end();
        }
        if self.ecs {
            let origin = Origin {
                path_json: &src.path_json,
                offset,
                sensor: &self.sensor,
            };
            ecs::write(&mut w, &meta, family, log_type, &origin);
        }
        w.end();
        out.extend_from_slice(br#"{"create":{"_index":""#);
        self.naming.write_target(out, family, log_type, meta.ts);
        out.extend_from_slice(br#"","_id":""#);
        write_doc_id(out, id);
        out.extend_from_slice(b"\"}}\n");
        let doc_start = out.len();
        out.extend_from_slice(&self.doc);
        out.push(b'\n');
        Ok(Encoded::Item {
            doc_start,
            ts_ns: meta.ts.map_or(0, |t| t.epoch_nanos()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn encoder(ecs: bool) -> Encoder {
        let naming = Naming {
            prefix: String::new(),
            data_streams: false,
            namespace: "default".into(),
        };
        Encoder::new(naming, ecs, "run-1", "lab")
    }

    fn at(key: u64, n: u64) -> DocId {
        DocId { key, n }
    }

    fn item(out: &[u8]) -> (Value, Value) {
        let text = std::str::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let action = serde_json::from_str(lines.next().unwrap()).unwrap();
        let doc = serde_json::from_str(lines.next().unwrap()).unwrap();
        (action, doc)
    }

    #[test]
    fn eve_record_keeps_its_bytes_and_gains_provenance() {
        let mut enc = encoder(true);
        let mut src = LogSource::new(LogFormat::Eve, Path::new("/logs/shard-2/eve.json"));
        let line = br#"{"timestamp":"2024-03-01T01:00:00.000001+0100","event_type":"alert","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP","alert":{"signature_id":7,"signature":"s","category":"c","severity":2}}"#;
        let mut out = Vec::new();
        let r = enc
            .encode(&mut src, line, 4096, at(0xab, 4096), &mut out)
            .unwrap();
        let Encoded::Item { doc_start, ts_ns } = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            ts_ns, 1_709_251_200_000_001_000,
            "the record's time, in UTC"
        );
        assert!(out[doc_start..].starts_with(&line[..line.len() - 1]));
        let (action, doc) = item(&out);
        assert_eq!(action["create"]["_index"], "suricata-alert-2024.03.01");
        assert_eq!(action["create"]["_id"], "00000000000000ab-4096");
        assert_eq!(doc["@timestamp"], "2024-03-01T00:00:00.000001Z");
        assert_eq!(doc["shardcap"]["shard"], 2);
        assert_eq!(doc["shardcap"]["run_id"], "run-1");
        assert_eq!(doc["shardcap"]["offset"], 4096);
        assert_eq!(doc["source"]["ip"], "10.0.0.1");
        assert_eq!(doc["destination"]["port"], 80);
        assert_eq!(doc["network"]["transport"], "tcp");
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["rule"]["id"], "7");
        assert_eq!(doc["log"]["file"]["path"], "/logs/shard-2/eve.json");
    }

    #[test]
    fn zeek_tsv_lines() {
        let mut enc = encoder(false);
        let mut src = LogSource::new(LogFormat::ZeekTsv, Path::new("/l/rotated.log"));
        let mut out = Vec::new();
        for l in [
            "#separator \\x09",
            "#path\tdns",
            "#fields\tts\tuid\tquery\tsource",
            "#types\ttime\tstring\tstring\tstring",
            "",
        ] {
            assert_eq!(
                enc.encode(&mut src, l.as_bytes(), 0, at(1, 0), &mut out),
                Ok(Encoded::Skipped)
            );
        }
        assert!(out.is_empty());
        let r = enc.encode(
            &mut src,
            b"1709251200.0\tC1\texample.com\tx",
            90,
            at(1, 90),
            &mut out,
        );
        assert!(matches!(r, Ok(Encoded::Item { .. })));
        let (action, doc) = item(&out);
        assert_eq!(action["create"]["_index"], "zeek-dns-2024.03.01");
        assert_eq!(doc["query"], "example.com");
        assert_eq!(doc["@timestamp"], "2024-03-01T00:00:00.000000Z");
        assert!(doc.get("event").is_none());
        assert_eq!(
            enc.encode(&mut src, b"#close\tx", 0, at(1, 0), &mut out),
            Ok(Encoded::Closed)
        );
        let before = out.len();
        assert!(enc
            .encode(&mut src, b"1.0\tC2", 120, at(1, 120), &mut out)
            .is_err());
        assert_eq!(out.len(), before, "nothing appended on error");
    }

    #[test]
    fn empty_object_and_taken_keys() {
        let mut enc = encoder(true);
        let mut src = LogSource::new(LogFormat::ZeekJson, Path::new("/l/weird.log"));
        let mut out = Vec::new();
        enc.encode(&mut src, b"{ }", 0, at(1, 0), &mut out).unwrap();
        let (action, doc) = item(&out);
        assert_eq!(action["create"]["_index"], "zeek-weird");
        assert_eq!(doc["event"]["dataset"], "zeek.weird");
        out.clear();
        enc.encode(
            &mut src,
            br#"{"ts":1.0,"event":"mine","shardcap":1}"#,
            0,
            at(1, 0),
            &mut out,
        )
        .unwrap();
        let (_, doc) = item(&out);
        assert_eq!(doc["event"], "mine");
        assert_eq!(doc["shardcap"], 1);
    }
}
