//! Application content: HTTP/1.1 messages with plausible headers, DNS messages, and the pools of
//! body bytes (HTML, JSON, binary) that responses are cut from.

use std::io::Write;

use super::rng::Rng;

/// Size of each body pool; bodies are windows into a pool (wrapping around).
const POOL_LEN: usize = 1 << 20;

/// What a response body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Html,
    Json,
    Binary,
}

/// Body bytes shared by all sessions.
pub struct Pools {
    html: Vec<u8>,
    json: Vec<u8>,
    binary: Vec<u8>,
}

const WORDS: &[&str] = &[
    "network", "packet", "session", "stream", "capture", "server", "client", "request", "response",
    "protocol", "window", "segment", "latency", "the", "of", "and", "a", "to", "in", "is", "for",
    "with", "on", "data", "flow", "system", "report", "update", "account", "order", "product",
];

impl Pools {
    /// Builds the pools from `rng`.
    pub fn new(rng: &mut Rng) -> Self {
        let mut html = Vec::with_capacity(POOL_LEN + 4096);
        html.extend_from_slice(
            b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        );
        while html.len() < POOL_LEN {
            let tag = *rng.pick(&["p", "div", "li", "span", "h2", "td"]);
            write!(html, "<{tag} class=\"c{}\">", rng.below(40)).unwrap();
            for _ in 0..rng.range(4, 30) {
                html.extend_from_slice(rng.pick(WORDS).as_bytes());
                html.push(b' ');
            }
            writeln!(html, "</{tag}>").unwrap();
        }
        html.truncate(POOL_LEN);
        let mut json = Vec::with_capacity(POOL_LEN + 4096);
        json.push(b'[');
        while json.len() < POOL_LEN {
            writeln!(
                json,
                "{{\"id\":{},\"name\":\"{} {}\",\"price\":{}.{:02},\"tags\":[\"{}\",\"{}\"],\"active\":{}}},",
                rng.below(1_000_000),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.below(500),
                rng.below(100),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.chance(0.8)
            )
            .unwrap();
        }
        json.truncate(POOL_LEN);
        let mut binary = vec![0u8; POOL_LEN];
        rng.fill(&mut binary);
        Pools { html, json, binary }
    }

    /// Appends `len` bytes of `kind` starting at `start` (modulo the pool length).
    pub fn copy(&self, kind: BodyKind, start: u32, len: u32, out: &mut Vec<u8>) {
        let pool = match kind {
            BodyKind::Html => &self.html,
            BodyKind::Json => &self.json,
            BodyKind::Binary => &self.binary,
        };
        let mut pos = start as usize % POOL_LEN;
        let mut left = len as usize;
        while left > 0 {
            let n = left.min(POOL_LEN - pos);
            out.extend_from_slice(&pool[pos..pos + n]);
            left -= n;
            pos = 0;
        }
    }
}

/// What a client asks for; decides the path, the response's type and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Page,
    Script,
    Image,
    Api,
}

impl Resource {
    /// A random resource type, pages and assets being the most common.
    pub fn draw(rng: &mut Rng) -> Self {
        match rng.below(10) {
            0..=2 => Resource::Page,
            3..=4 => Resource::Script,
            5..=7 => Resource::Image,
            _ => Resource::Api,
        }
    }

    /// The body pool and a body size drawn for this resource.
    pub fn body(self, rng: &mut Rng) -> (BodyKind, u32) {
        let (kind, lo, hi) = match self {
            Resource::Page => (BodyKind::Html, 1_500.0, 80_000.0),
            Resource::Script => (BodyKind::Html, 300.0, 120_000.0),
            Resource::Image => (BodyKind::Binary, 500.0, 400_000.0),
            Resource::Api => (BodyKind::Json, 60.0, 20_000.0),
        };
        (kind, rng.log_uniform(lo, hi) as u32)
    }

    fn content_type(self) -> &'static str {
        match self {
            Resource::Page => "text/html; charset=utf-8",
            Resource::Script => "application/javascript",
            Resource::Image => "image/jpeg",
            Resource::Api => "application/json",
        }
    }
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "curl/8.5.0",
    "python-requests/2.31.0",
];

/// Appends an HTTP/1.1 request for `resource` on `host`; a POST to an API carries `body_len` bytes
/// of JSON, which the caller appends. Returns that body length (0 for a GET).
pub fn http_request(rng: &mut Rng, host: &str, resource: Resource, out: &mut Vec<u8>) -> u32 {
    let post = resource == Resource::Api && rng.chance(0.3);
    let method = if post { "POST" } else { "GET" };
    // Pages, images and API calls name a word and a number: before the word, between the two,
    // after the number, and the number's bound.
    let worded = match resource {
        Resource::Page => Some(("/", "/", ".html", 5000)),
        Resource::Image => Some(("/images/", "-", ".jpg", 90000)),
        Resource::Api => Some(("/api/v2/", "?page=", "", 40)),
        Resource::Script => None,
    };
    match worded {
        Some((before, between, after, bound)) => write!(
            out,
            "{method} {before}{}{between}{}{after}",
            rng.pick(WORDS),
            rng.below(bound)
        ),
        None => write!(
            out,
            "{method} /static/js/app.{:08x}.js",
            rng.next_u64() as u32
        ),
    }
    .unwrap();
    write!(
        out,
        " HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept: {}\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate\r\n",
        rng.pick(USER_AGENTS),
        match resource {
            Resource::Page => "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            Resource::Image => "image/avif,image/webp,*/*;q=0.8",
            _ => "*/*",
        }
    )
    .unwrap();
    if rng.chance(0.4) {
        write!(out, "Cookie: sid={:016x}; theme=light\r\n", rng.next_u64()).unwrap();
    }
    let body = if post { rng.range(40, 3000) as u32 } else { 0 };
    if post {
        write!(
            out,
            "Content-Type: application/json\r\nContent-Length: {body}\r\n"
        )
        .unwrap();
    }
    out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
    body
}

/// Appends the header of an HTTP/1.1 response sent at `ts_ns`; returns the body length that follows
/// (the caller appends it), which may be smaller than `body_len` for statuses without a full body.
pub fn http_response(
    rng: &mut Rng,
    ts_ns: u64,
    resource: Resource,
    body_len: u32,
    out: &mut Vec<u8>,
) -> u32 {
    let (status, reason, len, ctype) = match rng.below(100) {
        0..=5 => (304, "Not Modified", 0, None),
        6..=10 => (404, "Not Found", 153, Some("text/html")),
        11..=12 => (301, "Moved Permanently", 169, Some("text/html")),
        13 => (500, "Internal Server Error", 177, Some("text/html")),
        _ => (200, "OK", body_len, Some(resource.content_type())),
    };
    write!(out, "HTTP/1.1 {status} {reason}\r\nDate: ").unwrap();
    http_date(ts_ns / 1_000_000_000, out);
    write!(
        out,
        "\r\nServer: {}\r\n",
        rng.pick(&[
            "nginx/1.24.0",
            "Apache/2.4.58 (Debian)",
            "cloudflare",
            "gws"
        ])
    )
    .unwrap();
    if let Some(ct) = ctype {
        write!(out, "Content-Type: {ct}\r\nContent-Length: {len}\r\n").unwrap();
    }
    if status == 301 {
        write!(
            out,
            "Location: https://www.example.com/{}\r\n",
            rng.pick(WORDS)
        )
        .unwrap();
    }
    write!(
        out,
        "Cache-Control: max-age={}\r\nETag: \"{:x}-{:x}\"\r\nConnection: keep-alive\r\n\r\n",
        rng.pick(&[0, 60, 600, 3600, 86400]),
        rng.below(1 << 20),
        rng.next_u64() as u32
    )
    .unwrap();
    len
}

/// Appends an IMF-fixdate (`Fri, 01 Mar 2024 12:00:00 GMT`) for `secs` since the epoch.
fn http_date(secs: u64, out: &mut Vec<u8>) {
    let t = jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::MAX);
    // `%a` and `%b` are English whatever the locale; `%d` is zero-padded.
    write!(out, "{}", t.strftime("%a, %d %b %Y %H:%M:%S GMT")).unwrap();
}

/// DNS record types the generator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    A = 1,
    Aaaa = 28,
    Txt = 16,
}

/// Appends a DNS query for `name` (with an EDNS0 OPT record advertising `udp_size`).
pub fn dns_query(id: u16, name: &str, qtype: QType, udp_size: u16, out: &mut Vec<u8>) {
    dns_header(id, 0x0100, 1, 0, 1, out);
    dns_question(name, qtype, out);
    dns_opt(udp_size, out);
}

/// An answer of a DNS response.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    A([u8; 4]),
    Aaaa([u8; 16]),
    /// TXT record: `strings` character-strings of `len` bytes each, cut from `text`.
    Txt {
        text: &'a [u8],
        strings: usize,
    },
}

/// Appends a DNS response to a query for `name`: NXDOMAIN when `answers` is empty.
pub fn dns_response(id: u16, name: &str, qtype: QType, answers: &[Answer], out: &mut Vec<u8>) {
    let flags = if answers.is_empty() { 0x8183 } else { 0x8180 };
    dns_header(id, flags, 1, answers.len() as u16, 1, out);
    dns_question(name, qtype, out);
    for a in answers {
        // The owner name points at the question's name (offset 12).
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (typ, ttl) = match a {
            Answer::A(_) => (QType::A, 300u32),
            Answer::Aaaa(_) => (QType::Aaaa, 300),
            Answer::Txt { .. } => (QType::Txt, 3600),
        };
        out.extend_from_slice(&(typ as u16).to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        match a {
            Answer::A(ip) => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(ip);
            }
            Answer::Aaaa(ip) => {
                out.extend_from_slice(&16u16.to_be_bytes());
                out.extend_from_slice(ip);
            }
            Answer::Txt { text, strings } => {
                let each = text.len() / strings.max(&1);
                out.extend_from_slice(&(((each + 1) * strings) as u16).to_be_bytes());
                for s in text.chunks_exact(each).take(*strings) {
                    out.push(each as u8);
                    out.extend_from_slice(s);
                }
            }
        }
    }
    dns_opt(1232, out);
}

fn dns_header(id: u16, flags: u16, qd: u16, an: u16, ar: u16, out: &mut Vec<u8>) {
    for v in [id, flags, qd, an, 0, ar] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn dns_question(name: &str, qtype: QType, out: &mut Vec<u8>) {
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&(qtype as u16).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
}

fn dns_opt(udp_size: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 41]);
    out.extend_from_slice(&udp_size.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        let mut out = Vec::new();
        http_date(1_709_294_400, &mut out);
        assert_eq!(out, b"Fri, 01 Mar 2024 12:00:00 GMT");
        out.clear();
        http_date(951_782_400 + 86_399, &mut out);
        assert_eq!(out, b"Tue, 29 Feb 2000 23:59:59 GMT");
    }

    #[test]
    fn dns_response_counts_match_its_records() {
        let mut out = Vec::new();
        dns_response(
            7,
            "www.example.com",
            QType::A,
            &[Answer::A([192, 0, 2, 1]), Answer::A([192, 0, 2, 2])],
            &mut out,
        );
        assert_eq!(&out[..2], &7u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([out[6], out[7]]), 2);
        // header 12 + question 17+4 + two answers of 16 + OPT 11
        assert_eq!(out.len(), 12 + 21 + 32 + 11);
    }
}
