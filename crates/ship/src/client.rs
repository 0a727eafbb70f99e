//! The HTTP side of Elasticsearch: one agent with keep-alive, basic auth (in the URL or by flags) or
//! an API key, TLS with a CA file, gzip request bodies, and every failure sorted into retry, stop or
//! reject.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Largest response body read (a bulk response of a large batch with errors).
const MAX_RESPONSE: u64 = 512 << 20;

/// How to reach Elasticsearch.
#[derive(Debug, Clone)]
pub struct EsTarget {
    /// `http[s]://[user[:password]@]host:port[/prefix]`.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The `id:key` pair or its base64 encoding, as Elasticsearch issues it.
    pub api_key: Option<String>,
    /// PEM file with the CA certificate(s) that signed the server's certificate.
    pub ca: Option<PathBuf>,
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later: connection refused or reset, timeout, 429, 5xx.
    Retry(String),
    /// 401 or 403: credentials are wrong or lack a privilege.
    Auth(String),
    /// The server refused this request as it is (another 4xx): status and reason.
    Rejected { status: u16, reason: String },
    /// Cannot work at all (a TLS failure, a bad URL).
    Fatal(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Retry(m) | Failure::Auth(m) | Failure::Fatal(m) => f.write_str(m),
            Failure::Rejected { status, reason } => write!(f, "HTTP {status}: {reason}"),
        }
    }
}

/// One item's answer in a bulk response.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemReply {
    pub status: u16,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Deserialize)]
struct ItemAction {
    #[serde(alias = "index")]
    create: Option<ItemReply>,
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Vec<ItemAction>,
}

/// A client for one Elasticsearch endpoint.
pub struct EsClient {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
}

/// Parses an http(s) URL and splits its `user:password@` off (percent-decoded); returns the
/// URL without credentials and without a trailing slash. Anything else is a usage error.
fn split_userinfo(text: &str) -> Result<(String, Option<(String, String)>)> {
    let bad = |why: &str| Error::usage(format!("--es {text}: {why}"));
    let mut url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad("give an http:// or https:// URL"));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let userinfo = (!url.username().is_empty() || url.password().is_some())
        .then(|| (decode(url.username()), decode(url.password().unwrap_or(""))));
    // Both only fail for URLs that cannot have a host, refused above.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url.as_str().trim_end_matches('/').to_string(), userinfo))
}

/// The reason Elasticsearch gives in an error body (`error.reason`, or the body itself).
fn reason_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match &v["error"] {
            Value::Object(e) => {
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
                let why = e.get("reason").and_then(Value::as_str).unwrap_or("");
                format!("{kind}: {why}")
            }
            Value::String(s) => s.clone(),
            _ => text.chars().take(500).collect(),
        },
        Err(_) => text.chars().take(500).collect(),
    }
}

impl EsClient {
    /// Builds the client; a bad URL, unreadable CA file or conflicting credentials are usage errors.
    pub fn new(target: &EsTarget, connections: usize) -> Result<Self> {
        let (base, userinfo) = split_userinfo(&target.url)?;
        let user = match (&target.user, userinfo) {
            (Some(u), _) => Some((u.clone(), target.password.clone().unwrap_or_default())),
            (None, Some(ui)) => Some(ui),
            (None, None) => None,
        };
        let authorization = match (&target.api_key, user) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    "give either --es-api-key or a user (--es-user or in the URL), not both",
                ))
            }
            (Some(key), None) => {
                let key = if key.contains(':') {
                    base64::engine::general_purpose::STANDARD.encode(key)
                } else {
                    key.clone()
                };
                Some(format!("ApiKey {key}"))
            }
            (None, Some((u, p))) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )),
            (None, None) => None,
        };
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(300))
            .timeout_write(Duration::from_secs(300))
            .max_idle_connections_per_host(connections.max(1));
        if let Some(ca) = &target.ca {
            builder = builder.tls_config(Arc::new(tls_config(ca)?));
        }
        Ok(EsClient {
            agent: builder.build(),
            base,
            authorization,
        })
    }

    /// The URL without credentials, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One request; `Ok` only for a 2xx answer, with its body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&[u8], &str)>,
    ) -> std::result::Result<Vec<u8>, Failure> {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(a) = &self.authorization {
            req = req.set("Authorization", a);
        }
        let sent = match body {
            Some((bytes, content_type)) => {
                let mut gz =
                    GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
                gz.write_all(bytes)
                    .and_then(|_| gz.finish())
                    .map_err(|e| Failure::Fatal(format!("gzip: {e}")))
                    .and_then(|z| {
                        req.set("Content-Type", content_type)
                            .set("Content-Encoding", "gzip")
                            .send_bytes(&z)
                            .map_err(|e| self.classify(e))
                    })
            }
            None => req.call().map_err(|e| self.classify(e)),
        }?;
        read_body(sent)
            .map_err(|e| Failure::Retry(format!("{}: reading the answer: {e}", self.base)))
    }

    fn classify(&self, e: ureq::Error) -> Failure {
        match e {
            ureq::Error::Status(status, resp) => {
                let body = read_body(resp).unwrap_or_default();
                let reason = reason_of(&body);
                match status {
                    401 | 403 => Failure::Auth(format!("{}: HTTP {status}: {reason}", self.base)),
                    408 | 429 | 500..=599 => {
                        Failure::Retry(format!("{}: HTTP {status}: {reason}", self.base))
                    }
                    _ => Failure::Rejected { status, reason },
                }
            }
            ureq::Error::Transport(t) => {
                let text = t.to_string();
                let lower = text.to_ascii_lowercase();
                if matches!(
                    t.kind(),
                    ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme
                ) || lower.contains("certificate")
                    || lower.contains("tls")
                {
                    Failure::Fatal(format!("{}: {text}", self.base))
                } else {
                    Failure::Retry(format!("{}: {text}", self.base))
                }
            }
        }
    }

    /// `POST /_bulk` with an NDJSON body: each item's status and error, in order.
    pub fn bulk(&self, body: &[u8]) -> std::result::Result<Vec<ItemReply>, Failure> {
        let answer = self.request(
            "POST",
            "/_bulk?filter_path=errors,items.*.status,items.*.error",
            Some((body, "application/x-ndjson")),
        )?;
        let parsed: BulkResponse = serde_json::from_slice(&answer)
            .map_err(|e| Failure::Retry(format!("{}: unreadable bulk answer: {e}", self.base)))?;
        parsed
            .items
            .into_iter()
            .map(|a| {
                a.create
                    .ok_or_else(|| Failure::Retry("a bulk answer item is not a create".into()))
            })
            .collect()
    }
}

fn read_body(resp: ureq::Response) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_RESPONSE)
        .read_to_end(&mut body)?;
    Ok(body)
}

/// A rustls configuration trusting only the CA certificates in `ca`.
fn tls_config(ca: &PathBuf) -> Result<ureq::rustls::ClientConfig> {
    use ureq::rustls::pki_types::pem::PemObject;
    use ureq::rustls::pki_types::CertificateDer;
    let bad = |what: String| Error::usage(format!("--es-ca {}: {what}", ca.display()));
    let pem = fs::read(ca).map_err(|e| bad(e.to_string()))?;
    let mut roots = ureq::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE block in the file".into()));
    }
    let provider = Arc::new(ureq::rustls::crypto::ring::default_provider());
    Ok(ureq::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url() {
        let (base, ui) = split_userinfo("https://el%40stic:p%3Ass@es.lan:9200/x/").unwrap();
        assert_eq!(base, "https://es.lan:9200/x");
        assert_eq!(ui, Some(("el@stic".into(), "p:ss".into())));
        assert_eq!(
            split_userinfo("http://u@h:9200").unwrap().1,
            Some(("u".into(), String::new()))
        );
        assert_eq!(
            split_userinfo("http://h:9200").unwrap(),
            ("http://h:9200".into(), None)
        );
        for bad in ["h:9200", "ftp://h", "http://", "http://[::1"] {
            assert!(split_userinfo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_reasons() {
        let body = br#"{"error":{"type":"security_exception","reason":"missing authentication"},"status":401}"#;
        assert_eq!(
            reason_of(body),
            "security_exception: missing authentication"
        );
        assert_eq!(reason_of(b"Forbidden"), "Forbidden");
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        let t = |url: &str, key: Option<&str>| EsTarget {
            url: url.into(),
            user: None,
            password: None,
            api_key: key.map(str::to_string),
            ca: None,
        };
        assert!(EsClient::new(&t("localhost:9200", None), 1).is_err());
        assert!(EsClient::new(&t("http://u:p@h:1", Some("a:b")), 1).is_err());
        let c = EsClient::new(&t("http://h:1", Some("id:key")), 1).unwrap();
        assert_eq!(c.authorization.as_deref(), Some("ApiKey aWQ6a2V5"));
    }
}
