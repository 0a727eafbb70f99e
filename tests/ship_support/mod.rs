//! Shared by the tests/ship_*.rs tests, beside `common`: the Elasticsearch stand-ins (noida-db
//! 0.2.3, osmem-server 0.1.6, installed by .ci/run) started on free loopback ports and killed on
//! drop, real Suricata runs over corpus captures, the Zeek fixtures, and shardcap as a guarded child.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, ChildGuard};

pub use crate::common::{command as shardcap, corpus, free_port, wait_until};

/// Which stand-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// noida-db: imitates Elasticsearch 8.15 (per-item 201/409/400/429, `_count`, templates).
    Noida,
    /// osmem-server: imitates OpenSearch 3 (stricter whole-request errors, no data streams).
    Osmem,
}

fn python_path(code: &str, what: &str) -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", code])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to find {what}: {e}"));
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success() && p.is_file(),
        "{what} is not installed (pip install noida-db==0.2.3 osmem-server==0.1.6; .ci/run does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// The server binary: `SHARDCAP_TEST_NOIDA_DB` / `SHARDCAP_TEST_OSMEM_SERVER`, else the one the
/// Python package bundles.
fn binary(kind: Kind) -> PathBuf {
    let (var, code, what) = match kind {
        Kind::Noida => (
            "SHARDCAP_TEST_NOIDA_DB",
            "import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), 'noida-db'))",
            "noida-db 0.2.3",
        ),
        Kind::Osmem => (
            "SHARDCAP_TEST_OSMEM_SERVER",
            "import osmem_server; print(osmem_server.resolve_binary())",
            "osmem-server 0.1.6",
        ),
    };
    std::env::var_os(var).map_or_else(|| python_path(code, what), PathBuf::from)
}

/// An Elasticsearch stand-in on loopback, killed on drop.
pub struct Server {
    pub kind: Kind,
    child: ChildGuard,
    pub port: u16,
    pub url: String,
    data: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Server {
    /// Starts one on a free port and waits until it answers.
    pub fn start(kind: Kind) -> Server {
        let mut s = Server {
            kind,
            child: ChildGuard(None),
            port: free_port(),
            url: String::new(),
            data: tempfile::tempdir().unwrap(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        };
        s.url = format!("http://127.0.0.1:{}", s.port);
        s.launch();
        s
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(binary(self.kind));
        match self.kind {
            Kind::Noida => {
                cmd.arg("start")
                    .arg("--data-dir")
                    .arg(self.data.path())
                    .args(["--only", "elasticsearch", "--elasticsearch-port"])
                    .arg(self.port.to_string());
            }
            Kind::Osmem => {
                cmd.args(["--addr", &format!("127.0.0.1:{}", self.port), "--no-ja"]);
            }
        }
        self.child = ChildGuard::start(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_until(&format!("{:?} to answer", self.kind), || {
            self.agent.get(&self.url).call().is_ok()
        });
    }

    /// Stops it the way a node is restarted (SIGTERM: noida-db saves its data) and waits.
    pub fn stop(&mut self) {
        self.child.stop(nix::sys::signal::Signal::SIGTERM);
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.launch();
    }

    /// A JSON request; panics on failure.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.url))
            .set("Content-Type", "application/json");
        let resp = match body {
            Some(b) => req.send_string(&b.to_string()),
            None => req.call(),
        };
        match resp {
            Ok(r) => r.into_json().unwrap_or(Value::Null),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// Documents in the indices matching `pattern`, after a refresh.
    pub fn count(&self, pattern: &str) -> u64 {
        self.call("POST", "/_refresh", None);
        let v = self.call(
            "GET",
            &format!("/{pattern}/_count?allow_no_indices=true"),
            None,
        );
        v["count"].as_u64().unwrap_or(0)
    }

    /// Every document (up to 10,000) of the indices matching `pattern`.
    pub fn docs(&self, pattern: &str) -> Vec<Value> {
        self.call("POST", "/_refresh", None);
        let v = self.call(
            "POST",
            &format!("/{pattern}/_search"),
            Some(serde_json::json!({"size": 10000, "query": {"match_all": {}}})),
        );
        v["hits"]["hits"].as_array().cloned().unwrap_or_default()
    }

    /// The distinct `_id`s among those documents.
    pub fn distinct_ids(&self, pattern: &str) -> usize {
        self.docs(pattern)
            .iter()
            .map(|d| d["_id"].as_str().unwrap().to_string())
            .collect::<HashSet<_>>()
            .len()
    }

    /// Index names matching `pattern`.
    pub fn indices(&self, pattern: &str) -> Vec<String> {
        let v = self.call("GET", &format!("/_cat/indices/{pattern}?format=json"), None);
        let mut names: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["index"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// A guarded child process (shardcap, nginx) with its stderr captured.
pub struct Proc(ChildGuard);

impl Proc {
    /// Starts `cmd` with stderr captured.
    pub fn spawn(mut cmd: Command) -> Proc {
        Proc(ChildGuard::start(
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()),
        ))
    }

    /// Starts `cmd` with stdout and stderr captured.
    pub fn spawn_piped(mut cmd: Command) -> Proc {
        Proc(ChildGuard::start(
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()),
        ))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Reads stdout lines up to and including the first one that starts with `last`.
    pub fn read_stdout_until(&mut self, last: &str) -> Vec<String> {
        let child = self.0 .0.as_mut().expect("running");
        let mut reader = BufReader::new(child.stdout.as_mut().expect("stdout is piped"));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "stdout ended: {lines:?}"
            );
            let done = line.starts_with(last);
            lines.push(line.trim_end().to_string());
            if done {
                return lines;
            }
        }
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        self.0.signal(sig);
    }

    /// Sends `sig` and reaps the process.
    pub fn terminate(&mut self, sig: nix::sys::signal::Signal) {
        self.0.stop(sig);
    }

    /// Waits for the exit; returns the status and stderr.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let mut err = String::new();
        if let Some(e) = self.0 .0.as_mut().and_then(|c| c.stderr.take()) {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                err.push_str(&line);
                err.push('\n');
            }
        }
        (self.0.wait(), err)
    }
}

/// Runs `shardcap ship ARGS` to the end; returns the exit code and stderr.
pub fn ship(args: &[&str]) -> (i32, String) {
    let run = common::shardcap(["ship"].iter().chain(args));
    (run.code, run.stderr)
}

/// Runs `shardcap ship --es SERVER --state STATE ARGS` to the end; returns the exit code and
/// stderr.
pub fn ship_to(server: &Server, state: &Path, args: &[&str]) -> (i32, String) {
    let state = state.to_str().unwrap();
    ship(&[&["--es", &server.url, "--state", state], args].concat())
}

/// `shardcap ship --follow --es SERVER --state STATE ARGS LOGS`: the shipper following `logs`.
pub fn follow(server: &Server, state: &Path, logs: &Path, args: &[&str]) -> Command {
    let mut cmd = shardcap(["ship", "--follow", "--es", &server.url, "--state"]);
    cmd.arg(state).args(args).arg(logs);
    cmd
}

/// The rules the Suricata runs load: an alert on every HTTP GET and DNS query.
pub fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ship/test.rules")
}

/// Runs the real Suricata over a corpus capture into `dir` (eve.json with community ids, plus its
/// own text logs) and returns the number of eve records.
pub fn suricata_eve(capture: &str, dir: &Path) -> usize {
    fs::create_dir_all(dir).unwrap();
    let out = Command::new("suricata")
        .arg("-r")
        .arg(corpus(capture))
        .arg("-l")
        .arg(dir)
        .args(["-k", "none", "--runmode", "single", "-S"])
        .arg(rules_file())
        .args(["--set", "outputs.1.eve-log.community-id=true"])
        .output()
        .expect("run suricata (installed by .ci/run)");
    assert!(
        out.status.success(),
        "suricata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    records(&dir.join("eve.json"))
}

/// The Zeek fixtures (`zeek-tsv/` and `zeek-json/`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ship")
}

/// Copies one fixture directory into `dir`; returns the records it holds.
pub fn copy_fixtures(which: &str, dir: &Path) -> usize {
    fs::create_dir_all(dir).unwrap();
    let mut n = 0;
    for e in fs::read_dir(fixtures().join(which)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        n += records(&e.path());
    }
    n
}

/// Records in a log file: lines that are not blank and not Zeek `#` lines.
pub fn records(path: &Path) -> usize {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
}

/// Reads a JSON stats file when it is there (it appears after the first stats interval).
pub fn stats(path: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The dead-letter entries in a state directory.
pub fn dead_letters(state: &Path) -> Vec<Value> {
    fs::read_to_string(state.join("dead-letter.ndjson"))
        .map(|t| {
            t.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// The options of a run whose Suricata instances' logs are shipped to `server` as they are
/// written (`--ids suricata --ship URL`, short batch and retry delays, `-v`).
pub fn suricata_shipping(server: &Server) -> Vec<String> {
    let opts = ["-v", "--ids", "suricata", "--ship", &server.url];
    let delays = ["--batch-wait", "100ms", "--retry-max", "500ms"];
    opts.iter().chain(&delays).map(|s| s.to_string()).collect()
}

/// The documents of the indices matching `pattern`: `_id` -> (the directory above the log
/// directory's shard directories, event type, run id), after asserting that no `_id` is in two
/// indices (two documents for one record).
pub fn documents(server: &Server, pattern: &str) -> BTreeMap<String, (String, String, String)> {
    let docs = server.docs(pattern);
    let mut by_id = BTreeMap::new();
    for d in &docs {
        let id = d["_id"].as_str().unwrap().to_string();
        let s: &Value = &d["_source"];
        let file = s["shardcap"]["file"].as_str().unwrap();
        let node = Path::new(file)
            .ancestors()
            .nth(3)
            .and_then(|p| p.file_name())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let doc = (
            node,
            s["event_type"].as_str().unwrap().to_string(),
            s["shardcap"]["run_id"].as_str().unwrap().to_string(),
        );
        assert!(
            by_id.insert(id.clone(), doc).is_none(),
            "{pattern}: _id {id} is in two indices"
        );
    }
    assert_eq!(docs.len() as u64, server.count(pattern), "{pattern}");
    by_id
}
