//! Refusals and the ways in: mapping conflicts and unreadable lines in the dead-letter file, basic
//! auth, API keys and TLS through a real nginx in front of the server, 403 in the middle of a run,
//! data streams, the NDJSON output without a server, and `shardcap run --ship`.

mod common;
mod ship_support;

use std::fs;
use std::process::Command;

use nix::sys::signal::Signal;
use ship_support::*;

fn dead_letter_check(kind: Kind) {
    let server = Server::start(kind);
    let logs = tempfile::tempdir().unwrap();
    let good = [
        r#"{"ts":1367526033.491822,"uid":"CAbc1","id.orig_h":"10.0.0.6","id.orig_p":21536,"id.resp_h":"10.0.0.138","id.resp_p":53,"proto":"udp"}"#,
        r#"{"ts":1367526034.1,"uid":"CAbc2","id.orig_h":"10.0.0.6","id.orig_p":21537,"id.resp_h":"10.0.0.138","id.resp_p":53,"proto":"udp"}"#,
        r#"{"ts":1367526035.2,"uid":"CAbc3","id.orig_h":"fe80::1","id.orig_p":5353,"id.resp_h":"ff02::fb","id.resp_p":5353,"proto":"udp"}"#,
    ];
    let conflict = r#"{"ts":1367526036.3,"uid":"CAbc4","id.orig_h":"not-an-address","id.orig_p":1,"id.resp_h":"10.0.0.1","id.resp_p":2,"proto":"tcp"}"#;
    let broken = r#"{"ts":1367526037.4,"uid":"CAbc5","id.orig_h":"10.0"#;
    let text = format!(
        "{}\n{}\n{conflict}\n\n{broken}\n{}\n",
        good[0], good[1], good[2]
    );
    fs::write(logs.path().join("conn.log"), text).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (code, err) = ship_to(&server, state.path(), &[logs.path().to_str().unwrap()]);
    assert_eq!(code, 3, "dead letters end with exit 3: {err}");
    assert!(err.contains("dead-lettered"), "{err}");
    assert_eq!(server.count("zeek-*"), 3);
    let dl = dead_letters(state.path());
    assert_eq!(dl.len(), 2, "{dl:?}");
    let server_side = dl
        .iter()
        .find(|d| d["status"] == 400)
        .expect("the mapping conflict");
    let reason = server_side["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not-an-address"),
        "the server's reason: {reason}"
    );
    assert_eq!(server_side["document"]["uid"], "CAbc4");
    assert!(server_side["action"]["create"]["_index"]
        .as_str()
        .unwrap()
        .starts_with("zeek-conn-2013.05.02"));
    let offset = format!("{}\n{}\n", good[0], good[1]).len();
    assert_eq!(server_side["offset"], offset);
    let unparsed = dl
        .iter()
        .find(|d| d["error"]["type"] == "unparsed_record")
        .unwrap();
    assert_eq!(unparsed["line"], broken);
    assert!(unparsed["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
    // Dead letters are final: a second run neither retries nor repeats them.
    let (code, _) = ship_to(&server, state.path(), &[logs.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(dead_letters(state.path()).len(), 2);
}

#[test]
fn mapping_conflicts_and_broken_lines_are_dead_lettered_noida() {
    dead_letter_check(Kind::Noida);
}

#[test]
fn mapping_conflicts_and_broken_lines_are_dead_lettered_osmem() {
    dead_letter_check(Kind::Osmem);
}

/// nginx terminating TLS in front of the server: basic auth on one port, an API key on another.
struct Nginx {
    proc: Proc,
    dir: tempfile::TempDir,
    basic_port: u16,
    key_port: u16,
}

impl Nginx {
    fn start(upstream: u16, api_key_b64: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        common::shell(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=shardcap test CA' \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
             -keyout ca.key -out ca.crt 2>/dev/null && \
             openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key -out server.csr 2>/dev/null && \
             printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext && \
             openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out server.crt 2>/dev/null && \
             printf 'elastic:%s\\n' \"$(openssl passwd -apr1 changeme)\" > htpasswd && mkdir tmp",
            d,
        );
        let (basic_port, key_port) = (free_port(), free_port());
        let p = d.display();
        let conf = format!(
            "user root;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_max_body_size 200m;\n\
             client_body_temp_path {p}/tmp/body; proxy_temp_path {p}/tmp/proxy; fastcgi_temp_path {p}/tmp/fcgi;\n\
             uwsgi_temp_path {p}/tmp/uwsgi; scgi_temp_path {p}/tmp/scgi;\n\
             ssl_certificate {p}/server.crt; ssl_certificate_key {p}/server.key;\n\
             server {{ listen 127.0.0.1:{basic_port} ssl;\n  auth_basic es; auth_basic_user_file {p}/htpasswd;\n\
               location / {{ proxy_pass http://127.0.0.1:{upstream}; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n\
             server {{ listen 127.0.0.1:{key_port} ssl;\n\
               location / {{ if ($http_authorization != \"ApiKey {api_key_b64}\") {{ return 401 '{{\"error\":{{\"type\":\"security_exception\",\"reason\":\"unable to authenticate with provided credentials\"}},\"status\":401}}'; }}\n\
                 proxy_pass http://127.0.0.1:{upstream}; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n}}\n"
        );
        fs::write(d.join("nginx.conf"), conf).unwrap();
        let mut nginx = Command::new("nginx");
        nginx
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .args(["-g", "daemon off;"]);
        let proc = Proc::spawn(nginx);
        wait_until("nginx listens", || {
            std::net::TcpStream::connect(("127.0.0.1", key_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", basic_port)).is_ok()
        });
        Nginx {
            proc,
            dir,
            basic_port,
            key_port,
        }
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.crt").display().to_string()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master stops its workers, then exits.
        self.proc.terminate(Signal::SIGTERM);
    }
}

#[test]
fn basic_auth_api_key_and_tls_through_nginx() {
    let server = Server::start(Kind::Noida);
    // base64("shardcap-test:k3y") as Elasticsearch issues encoded keys.
    let nginx = Nginx::start(server.port, "c2hhcmRjYXAtdGVzdDprM3k=");
    let logs = tempfile::tempdir().unwrap();
    let n = copy_fixtures("zeek-tsv", logs.path()) as u64;
    let dir = logs.path().to_str().unwrap();
    let ca = nginx.ca();
    let basic = format!("https://127.0.0.1:{}", nginx.basic_port);
    let keyed = format!("https://127.0.0.1:{}", nginx.key_port);
    let state = |name: &str| {
        logs.path()
            .join(format!(".state-{name}"))
            .display()
            .to_string()
    };

    let wrong = format!("https://elastic:wrong@127.0.0.1:{}", nginx.basic_port);
    let (code, err) = ship(&["--es", &wrong, "--es-ca", &ca, "--state", &state("a"), dir]);
    assert_eq!(code, 2, "bad credentials fail at start: {err}");
    assert!(err.contains("401"), "{err}");

    let with_password = |extra: &[&str]| {
        let args = [
            "--es",
            &basic,
            "--es-user",
            "elastic",
            "--es-password",
            "changeme",
        ];
        ship(&[&args[..], extra, &[dir]].concat())
    };
    let (code, err) = with_password(&["--state", &state("b")]);
    assert_eq!(code, 2, "an unknown CA fails at start: {err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let (code, err) = with_password(&["--es-ca", &ca, "--state", &state("c")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.count("zeek-*"), n);

    let in_url = format!("https://elastic:changeme@127.0.0.1:{}", nginx.basic_port);
    let (code, err) = ship(&["--es", &in_url, "--es-ca", &ca, "--state", &state("d"), dir]);
    assert_eq!(code, 0, "credentials in the URL: {err}");

    let stats_path = logs.path().join("stats.json");
    let (code, err) = ship(&[
        "--es",
        &keyed,
        "--es-api-key",
        "shardcap-test:k3y",
        "--es-ca",
        &ca,
        "--state",
        &state("e"),
        "--stats-file",
        stats_path.to_str().unwrap(),
        dir,
    ]);
    assert_eq!(code, 0, "API key: {err}");
    let s = stats(&stats_path).unwrap();
    assert_eq!(
        s["records_existing"], n,
        "same files, same ids: nothing indexed twice"
    );
    let (code, err) = ship(&[
        "--es",
        &keyed,
        "--es-api-key",
        "bm9wZQ==",
        "--es-ca",
        &ca,
        "--state",
        &state("f"),
        dir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(server.count("zeek-*"), n);
}

#[test]
fn forbidden_in_the_middle_stops_with_exit_1() {
    let server = Server::start(Kind::Osmem);
    let logs = tempfile::tempdir().unwrap();
    let first = copy_fixtures("zeek-tsv", &logs.path().join("a")) as u64;
    let state = tempfile::tempdir().unwrap();
    let proc = Proc::spawn(follow(
        &server,
        state.path(),
        logs.path(),
        &["--scan-interval", "100ms", "--batch-wait", "50ms"],
    ));
    wait_until("the first logs are indexed", || {
        server.count("zeek-*") == first
    });
    // A frozen osmem base answers every write with 403, as a role without write privilege would.
    server.call("POST", "/_osmem/base/freeze", None);
    copy_fixtures("zeek-json", &logs.path().join("b"));
    let (status, err) = proc.wait();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("a restart resumes there"), "{err}");
    assert_eq!(server.count("zeek-*"), first);
}

#[test]
fn data_streams() {
    let noida = Server::start(Kind::Noida);
    let logs = tempfile::tempdir().unwrap();
    let n = copy_fixtures("zeek-tsv", logs.path()) as u64;
    let dir = logs.path().to_str().unwrap();
    let st = tempfile::tempdir().unwrap();
    let (code, err) = ship_to(&noida, st.path(), &["--data-streams", "--ecs", dir]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(noida.count("logs-zeek.*"), n);
    assert_eq!(
        noida.indices("logs-zeek.*"),
        [
            "logs-zeek.conn-default",
            "logs-zeek.dns-default",
            "logs-zeek.http-default"
        ]
    );
    let t = noida.call("GET", "/_index_template/shardcap-logs-zeek", None);
    assert!(
        t["index_templates"][0]["index_template"]["data_stream"].is_object(),
        "{t}"
    );

    // osmem has no data streams: every record is refused, none is lost.
    let osmem = Server::start(Kind::Osmem);
    let st = tempfile::tempdir().unwrap();
    let (code, err) = ship_to(&osmem, st.path(), &["--data-streams", dir]);
    assert_eq!(code, 3, "{err}");
    let dl = dead_letters(st.path());
    assert_eq!(dl.len() as u64, n);
    assert!(
        dl[0]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("data streams"),
        "{}",
        dl[0]
    );
}

#[test]
fn ndjson_output_without_a_server() {
    let logs = tempfile::tempdir().unwrap();
    let n = copy_fixtures("zeek-tsv", &logs.path().join("tsv"))
        + copy_fixtures("zeek-json", &logs.path().join("json"));
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("bulk.ndjson");
    let (code, err) = ship(&[
        "--out",
        file.to_str().unwrap(),
        logs.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2 * n);
    let mut ids = std::collections::HashSet::new();
    for pair in lines.chunks(2) {
        let c = &pair[0]["create"];
        assert!(c["_index"].as_str().unwrap().starts_with("zeek-"));
        assert!(ids.insert(c["_id"].as_str().unwrap().to_string()));
        assert!(pair[1]["@timestamp"].is_string());
    }
    assert!(!logs.path().join(".ship").exists(), "no state without --es");

    let piped = common::shardcap(["ship", logs.path().to_str().unwrap()]);
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert_eq!(piped.stdout.lines().count(), 2 * n);
}

#[test]
fn run_with_ship_ships_the_log_dir_before_exiting() {
    let server = Server::start(Kind::Noida);
    let logs = tempfile::tempdir().unwrap();
    let n = copy_fixtures("zeek-tsv", &logs.path().join("shard-0")) as u64
        + copy_fixtures("zeek-json", &logs.path().join("shard-1")) as u64;
    let out = tempfile::tempdir().unwrap();
    let capture = corpus("pcapplusplus/tcp-three-http-streams.pcap");
    let pattern = format!("file:{}/s{{shard}}.pcap", out.path().display());
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-n", "2", "-o", &pattern];
        args.extend(extra);
        args.push(capture.to_str().unwrap());
        common::shardcap(args)
    };
    let stats = out.path().join("stats.json");
    let r = run(&[
        "--log-dir",
        logs.path().to_str().unwrap(),
        "--ship",
        &server.url,
        "--stats-file",
        stats.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.count("zeek-*"), n);
    // The run's own stats carry the shipper's figures (as of the run's end, before the final
    // catch-up of the shipper).
    let st: serde_json::Value = serde_json::from_slice(&fs::read(&stats).unwrap()).unwrap();
    let ship = &st["ship"];
    assert!(ship.is_object(), "the run's stats include shipping: {st}");
    assert!(ship["records_shipped"].as_u64().unwrap() <= n);
    assert!(logs.path().join(".ship/checkpoints.json").exists());
    let docs = server.docs("zeek-conn-*");
    let shards: std::collections::HashSet<_> = docs
        .iter()
        .map(|d| d["_source"]["shardcap"]["shard"].clone())
        .collect();
    assert_eq!(
        shards.len(),
        2,
        "the shard comes from the shard-K directory"
    );

    let r = run(&["--ship", &server.url]);
    assert_eq!(r.code, 2, "--ship needs --log-dir");
}
