//! Zeek's tab-separated log format: the `#separator`/`#fields`/`#types` header, and data lines turned
//! into the same JSON Zeek's own JSON writer produces (typed values, unset fields left out, empty
//! containers as `[]`, `\xHH` escapes decoded).

use std::borrow::Cow;

use crate::json_text::{is_number, write_bytes, write_key};
use crate::meta::{Meta, Taken};
use crate::timestamp::UtcTime;

/// A Zeek log field type, as `#types` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ZeekType {
    Bool,
    /// `count`, `int`, `port`.
    Integer,
    /// `double`, `time`, `interval`.
    Real,
    /// `string`, `enum`, `addr`, `subnet` and anything else written as text.
    Text,
    /// `set[T]`, `table[T]`, `vector[T]`.
    List(Box<ZeekType>),
}

impl ZeekType {
    fn parse(s: &str) -> ZeekType {
        for open in ["set[", "vector[", "table["] {
            if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(']')) {
                return ZeekType::List(Box::new(ZeekType::parse(inner)));
            }
        }
        match s {
            "bool" => ZeekType::Bool,
            "count" | "int" | "port" => ZeekType::Integer,
            "double" | "time" | "interval" => ZeekType::Real,
            _ => ZeekType::Text,
        }
    }
}

/// What a `#` line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Part of the header.
    Header,
    /// `#close`: Zeek finished the file.
    Close,
}

/// Column positions of the fields the shipper reads for `Meta`.
#[derive(Debug, Default, Clone)]
struct MetaColumns {
    ts: Option<usize>,
    uid: Option<usize>,
    orig_h: Option<usize>,
    orig_p: Option<usize>,
    resp_h: Option<usize>,
    resp_p: Option<usize>,
    proto: Option<usize>,
    service: Option<usize>,
    community_id: Option<usize>,
    duration: Option<usize>,
    orig_ip_bytes: Option<usize>,
    resp_ip_bytes: Option<usize>,
    orig_pkts: Option<usize>,
    resp_pkts: Option<usize>,
}

/// A Zeek TSV header, built from the `#` lines at the top of a file (and again at any later header).
#[derive(Debug, Clone)]
pub struct TsvHeader {
    separator: u8,
    set_separator: Vec<u8>,
    empty: Vec<u8>,
    unset: Vec<u8>,
    /// `#path`: the log type.
    pub path: Option<String>,
    names: Vec<String>,
    /// `"name":` of every field, escaped once.
    keys: Vec<Vec<u8>>,
    types: Vec<ZeekType>,
    columns: MetaColumns,
    taken: Taken,
    /// Where the columns of the current line start and end.
    cols: Vec<(usize, usize)>,
}

impl Default for TsvHeader {
    fn default() -> Self {
        TsvHeader {
            separator: b'\t',
            set_separator: b",".to_vec(),
            empty: b"(empty)".to_vec(),
            unset: b"-".to_vec(),
            path: None,
            names: Vec::new(),
            keys: Vec::new(),
            types: Vec::new(),
            columns: MetaColumns::default(),
            taken: Taken::default(),
            cols: Vec::new(),
        }
    }
}

/// Decodes Zeek's `\xHH` escapes (anything else stays as written).
fn unescape(v: &[u8]) -> Cow<'_, [u8]> {
    if !v.windows(2).any(|w| w == b"\\x") {
        return Cow::Borrowed(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 4 <= v.len() && v[i + 1] == b'x' {
            let hex = std::str::from_utf8(&v[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    Cow::Owned(out)
}

impl TsvHeader {
    /// True once `#fields` and `#types` agree, so data lines can be read.
    pub fn ready(&self) -> bool {
        !self.names.is_empty() && self.names.len() == self.types.len()
    }

    /// Applies a `#` line (`line` without its newline).
    pub fn directive(&mut self, line: &[u8]) -> Result<Directive, String> {
        if let Some(v) = line.strip_prefix(b"#separator ") {
            let sep = unescape(v);
            if sep.len() != 1 {
                return Err(format!(
                    "#separator {:?} is not one byte; only single-byte separators are supported",
                    String::from_utf8_lossy(&sep)
                ));
            }
            self.separator = sep[0];
            return Ok(Directive::Header);
        }
        let sep = self.separator;
        let (word, value) = match line.iter().position(|&b| b == sep) {
            Some(p) => (&line[..p], &line[p + 1..]),
            None => (line, &b""[..]),
        };
        match word {
            b"#set_separator" => self.set_separator = unescape(value).into_owned(),
            b"#empty_field" => self.empty = unescape(value).into_owned(),
            b"#unset_field" => self.unset = unescape(value).into_owned(),
            b"#path" => self.path = Some(String::from_utf8_lossy(&unescape(value)).into_owned()),
            b"#fields" => self.set_fields(value),
            b"#types" => {
                self.types = value
                    .split(|&b| b == sep)
                    .map(|t| ZeekType::parse(&String::from_utf8_lossy(t)))
                    .collect();
            }
            b"#close" => return Ok(Directive::Close),
            _ => {}
        }
        Ok(Directive::Header)
    }

    fn set_fields(&mut self, value: &[u8]) {
        self.names = value
            .split(|&b| b == self.separator)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        self.keys = self
            .names
            .iter()
            .map(|n| {
                let mut k = Vec::with_capacity(n.len() + 3);
                write_key(&mut k, n);
                k
            })
            .collect();
        let find = |name: &str| self.names.iter().position(|n| n == name);
        self.columns = MetaColumns {
            ts: find("ts"),
            uid: find("uid"),
            orig_h: find("id.orig_h"),
            orig_p: find("id.orig_p"),
            resp_h: find("id.resp_h"),
            resp_p: find("id.resp_p"),
            proto: find("proto"),
            service: find("service"),
            community_id: find("community_id"),
            duration: find("duration"),
            orig_ip_bytes: find("orig_ip_bytes"),
            resp_ip_bytes: find("resp_ip_bytes"),
            orig_pkts: find("orig_pkts"),
            resp_pkts: find("resp_pkts"),
        };
        self.taken = Taken::default();
        for n in &self.names {
            let top = n.split('.').next().unwrap_or(n);
            if let Some(t) = Taken::of_key(top) {
                self.taken.insert(t);
            }
        }
    }

    /// Writes the fields of one data line as JSON members (`"k":v,...`, no braces) to `out` and
    /// fills `meta`. Returns how many members were written.
    pub fn write_members<'a>(
        &mut self,
        line: &'a [u8],
        out: &mut Vec<u8>,
        meta: &mut Meta<'a>,
    ) -> Result<usize, String> {
        if !self.ready() {
            return Err(format!(
                "a data line before a complete header ({} #fields, {} #types)",
                self.names.len(),
                self.types.len()
            ));
        }
        self.cols.clear();
        let mut start = 0;
        for (i, &b) in line.iter().enumerate() {
            if b == self.separator {
                self.cols.push((start, i));
                start = i + 1;
            }
        }
        self.cols.push((start, line.len()));
        if self.cols.len() != self.names.len() {
            return Err(format!(
                "{} fields where the header names {}",
                self.cols.len(),
                self.names.len()
            ));
        }
        let mut written = 0;
        for (i, &(a, b)) in self.cols.iter().enumerate() {
            let raw = &line[a..b];
            if raw == self.unset.as_slice() {
                continue;
            }
            if written > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.keys[i]);
            self.write_value(&self.types[i], raw, out)
                .map_err(|e| format!("field {}: {e}", self.names[i]))?;
            written += 1;
        }
        self.fill_meta(line, meta);
        Ok(written)
    }

    fn write_value(&self, ty: &ZeekType, raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match ty {
            ZeekType::List(inner) => {
                out.push(b'[');
                if raw != self.empty.as_slice() {
                    for (k, el) in split_on(raw, &self.set_separator).enumerate() {
                        if k > 0 {
                            out.push(b',');
                        }
                        if el == self.unset.as_slice() {
                            out.extend_from_slice(b"null");
                        } else {
                            self.write_value(inner, el, out)?;
                        }
                    }
                }
                out.push(b']');
            }
            ZeekType::Bool => match raw {
                b"T" => out.extend_from_slice(b"true"),
                b"F" => out.extend_from_slice(b"false"),
                _ => return Err(format!("{:?} is not a bool (T or F)", lossy(raw))),
            },
            ZeekType::Integer => {
                // A port may carry its protocol (`80/tcp`).
                let n = raw.split(|&b| b == b'/').next().unwrap_or(raw);
                let (negative, digits) = match n.split_first() {
                    Some((b'-', d)) => (true, d),
                    _ => (false, n),
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(format!("{:?} is not an integer", lossy(raw)));
                }
                if negative {
                    out.push(b'-');
                }
                out.extend_from_slice(trim_zeros(digits));
            }
            ZeekType::Real => {
                if is_number(raw) {
                    out.extend_from_slice(raw);
                } else {
                    match std::str::from_utf8(raw)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                    {
                        Some(f) if f.is_finite() => out.extend_from_slice(f.to_string().as_bytes()),
                        Some(_) => out.extend_from_slice(b"null"),
                        None => return Err(format!("{:?} is not a number", lossy(raw))),
                    }
                }
            }
            ZeekType::Text => {
                if raw == self.empty.as_slice() {
                    out.extend_from_slice(b"\"\"");
                } else {
                    write_bytes(out, &unescape(raw));
                }
            }
        }
        Ok(())
    }

    fn fill_meta<'a>(&self, line: &'a [u8], meta: &mut Meta<'a>) {
        let text = |c: Option<usize>| -> Option<Cow<'a, str>> {
            let (a, b) = self.cols[c?];
            let raw = &line[a..b];
            if raw == self.unset.as_slice() || raw == self.empty.as_slice() {
                return None;
            }
            match unescape(raw) {
                Cow::Borrowed(r) => std::str::from_utf8(r).ok().map(Cow::Borrowed),
                Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
            }
        };
        let num = |c: Option<usize>| text(c).and_then(|t| t.split('/').next()?.parse::<u64>().ok());
        let c = &self.columns;
        meta.ts = text(c.ts).and_then(|t| UtcTime::from_epoch_text(&t));
        meta.session_id = text(c.uid);
        meta.src_ip = text(c.orig_h);
        meta.src_port = num(c.orig_p);
        meta.dst_ip = text(c.resp_h);
        meta.dst_port = num(c.resp_p);
        meta.transport = text(c.proto);
        meta.protocol = text(c.service);
        meta.community_id = text(c.community_id);
        meta.duration = text(c.duration).and_then(|t| t.parse().ok());
        meta.src_bytes = num(c.orig_ip_bytes);
        meta.dst_bytes = num(c.resp_ip_bytes);
        meta.src_packets = num(c.orig_pkts);
        meta.dst_packets = num(c.resp_pkts);
        meta.taken = self.taken;
    }
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// `007` → `7` (JSON numbers have no leading zeros).
fn trim_zeros(n: &[u8]) -> &[u8] {
    let start = n.iter().position(|&b| b != b'0').unwrap_or(n.len() - 1);
    &n[start..]
}

/// Splits on a (possibly multi-byte) separator.
fn split_on<'a>(v: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(v);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len().max(1)).position(|w| w == sep) {
            Some(p) if !sep.is_empty() => {
                rest = Some(&r[p + sep.len()..]);
                Some(&r[..p])
            }
            _ => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2024-03-01-00-00-00\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\tlocal_orig\ttunnel_parents\thistory\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tbool\tset[string]\tstring\n";

    fn header() -> TsvHeader {
        let mut h = TsvHeader::default();
        for l in HEADER.lines() {
            assert_eq!(h.directive(l.as_bytes()).unwrap(), Directive::Header);
        }
        assert!(h.ready());
        h
    }

    fn members(h: &mut TsvHeader, line: &str) -> Result<String, String> {
        let mut out = vec![b'{'];
        let mut meta = Meta::default();
        h.write_members(line.as_bytes(), &mut out, &mut meta)?;
        out.push(b'}');
        let s = String::from_utf8(out).unwrap();
        serde_json::from_str::<serde_json::Value>(&s).expect("valid JSON");
        Ok(s)
    }

    #[test]
    fn typed_values_as_zeek_json_writes_them() {
        let mut h = header();
        assert_eq!(h.path.as_deref(), Some("conn"));
        let s = members(
            &mut h,
            "1709251200.123456\tCHhAvVGS1DHFjwGM9\t10.0.0.6\t21536\t10.0.0.138\t53\tudp\tdns\t0.018988\tT\t(empty)\tDd",
        )
        .unwrap();
        assert_eq!(
            s,
            r#"{"ts":1709251200.123456,"uid":"CHhAvVGS1DHFjwGM9","id.orig_h":"10.0.0.6","id.orig_p":21536,"id.resp_h":"10.0.0.138","id.resp_p":53,"proto":"udp","service":"dns","duration":0.018988,"local_orig":true,"tunnel_parents":[],"history":"Dd"}"#
        );
        let s = members(
            &mut h,
            "1709251200.5\tC1\tfe80::1\t1\t::1\t2\ttcp\t-\t-\t-\tCa,Cb\t\\x2d",
        )
        .unwrap();
        assert!(s.contains(r#""tunnel_parents":["Ca","Cb"]"#), "{s}");
        assert!(s.contains(r#""history":"-""#), "escaped unset marker: {s}");
        assert!(!s.contains("service"), "unset fields are left out: {s}");
        let s = members(
            &mut h,
            "1.0\tC2\t1.2.3.4\t1\t1.2.3.5\t2\ttcp\t(empty)\t-\tF\t-\ta\\x09b\\xff",
        )
        .unwrap();
        assert!(s.contains(r#""service":"""#), "(empty) string: {s}");
        assert!(s.contains(r#""history":"a\tb\\xff""#), "{s}");
    }

    #[test]
    fn meta_and_errors() {
        let mut h = header();
        let line =
            "1709251200.000001\tC3\t10.0.0.1\t5\t10.0.0.2\t80\ttcp\thttp\t1.5\tF\t(empty)\tS";
        let mut out = Vec::new();
        let mut meta = Meta::default();
        h.write_members(line.as_bytes(), &mut out, &mut meta)
            .unwrap();
        assert_eq!(meta.ts.unwrap().nanos, 1000);
        assert_eq!(meta.src_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(meta.dst_port, Some(80));
        assert_eq!(meta.protocol.as_deref(), Some("http"));
        assert_eq!(meta.duration, Some(1.5));
        let err = members(&mut h, "1.0\tC4").unwrap_err();
        assert!(err.contains("2 fields where the header names 12"), "{err}");
        let err = members(
            &mut h,
            "1.0\tC2\t1.2.3.4\tx\t1.2.3.5\t2\ttcp\t-\t-\tF\t-\t-",
        )
        .unwrap_err();
        assert!(err.contains("id.orig_p"), "{err}");
        assert_eq!(
            h.directive(b"#close\t2024-03-01-01-00-00").unwrap(),
            Directive::Close
        );
        let mut fresh = TsvHeader::default();
        assert!(members(&mut fresh, "x")
            .unwrap_err()
            .contains("before a complete header"));
    }
}
