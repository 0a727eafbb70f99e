//! Shared by the tests/redis_*.rs tests, beside `common`: a real redis-server on a free loopback
//! port in a temp dir (killed on drop), shardcap and the scripts/ as guarded children, a controller
//! thread, and packet sequences read by the independent reader.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::common::{self, ChildGuard, Rec, Run};

/// Corpus captures (Ethernet, microsecond pcap, undamaged, years apart).
pub const SMALL: [&str; 4] = [
    "arkime/sctp-http.pcap",
    "zeek/tls-sslv3-session.pcap",
    "zeek/wikipedia-http-browse.pcap",
    "pcapplusplus/udp-dns-packets.pcap",
];
/// A 6.8 MB corpus capture, larger than everything a shard can buffer.
pub const BIG: &str = "zeek/echo-connections-82k-packets.pcap";

/// A corpus file by its manifest path, without `..` in it (it is queued by name).
pub fn corpus(rel: &str) -> PathBuf {
    common::corpus(rel)
        .canonicalize()
        .unwrap_or_else(|e| panic!("corpus file {rel}: {e}"))
}

/// A path as the name queued in Redis.
pub fn name(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[allow(unused_imports)]
pub use crate::common::{finish, free_port, spawn, wait_for};

/// A redis-server child in its own temp dir.
pub struct RedisServer {
    child: ChildGuard,
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    password: Option<String>,
}

impl RedisServer {
    /// No persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// No persistence, requiring `password`, with extra redis-server arguments (TLS...).
    pub fn start_with_password(password: &str, extra: &[&str]) -> Self {
        let mut args = vec![
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
        ];
        args.extend_from_slice(extra);
        Self::start_with(&args)
    }

    /// With extra redis-server arguments (persistence, password, TLS...).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .map(|i| extra[i + 1].to_string());
        let mut args: Vec<String> = vec!["--port".into(), port.to_string()];
        args.extend(["--bind", "127.0.0.1"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = RedisServer {
            child: ChildGuard(None),
            port,
            dir: tempfile::tempdir().unwrap(),
            args,
            password,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        self.child = ChildGuard::start(
            Command::new("redis-server")
                .args(&self.args)
                .arg("--dir")
                .arg(self.dir.path())
                .stdout(Stdio::null()),
        );
        wait_for("redis-server to answer", || {
            let mut c = redis::Client::open(self.url())
                .ok()?
                .get_connection()
                .ok()?;
            redis::cmd("PING").query::<String>(&mut c).ok()
        });
    }

    /// redis://[:password@]127.0.0.1:port
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A fresh connection.
    pub fn con(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Down for `d` (SIGKILL), then up again on the same port, directory and arguments.
    pub fn outage(&mut self, d: Duration) {
        self.kill();
        thread::sleep(d);
        self.launch();
    }

    /// A list's items.
    pub fn list(&self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(&mut self.con())
            .unwrap()
    }

    /// A string key's value.
    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(key).query(&mut self.con()).unwrap()
    }

    /// Appends names to a list.
    pub fn rpush(&self, key: &str, names: &[String]) {
        redis::cmd("RPUSH")
            .arg(key)
            .arg(names)
            .exec(&mut self.con())
            .unwrap()
    }
}

/// `shardcap run --auth redis` against `url`, writing the one shard to the file `out`, with more
/// `args`.
pub fn dispatcher(url: &str, out: &Path, args: &[&str]) -> ChildGuard {
    let spec = format!("file:{}", out.display());
    let mut all = vec!["run", "--auth", "redis", "--redis", url, "-o", &spec];
    all.extend_from_slice(args);
    spawn(&all)
}

/// Queues `names` in `PCAPDJ_IN_QUEUE` and starts `shardcap run --auth redis --order given` on
/// them, writing the one shard to `s.pcap` in the returned directory.
pub fn dispatch_in_order(redis: &RedisServer, names: &[String]) -> (tempfile::TempDir, ChildGuard) {
    redis.rpush("PCAPDJ_IN_QUEUE", names);
    let out = tempfile::tempdir().unwrap();
    let run = dispatcher(
        &redis.url(),
        &out.path().join("s.pcap"),
        &["--order", "given"],
    );
    (out, run)
}

/// A scripts/ Python script with `args`.
pub fn script(script: &str, args: &[&str]) -> ChildGuard {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    ChildGuard::start(
        Command::new("python3")
            .arg(path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

/// Reads the child's stdout as it comes, into the returned buffer.
pub fn watch_stdout(child: &mut ChildGuard) -> Arc<Mutex<String>> {
    watch(child.0.as_mut().unwrap().stdout.take().unwrap())
}

/// Reads the child's stderr as it comes, into the returned buffer.
pub fn watch_stderr(child: &mut ChildGuard) -> Arc<Mutex<String>> {
    watch(child.0.as_mut().unwrap().stderr.take().unwrap())
}

fn watch(mut out: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let sink = seen.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}

/// Asserts the exit code, showing stderr when it is not `want`.
pub fn expect_exit(run: &Run, want: i32) {
    assert_eq!(run.code, want, "stderr:\n{}", run.stderr);
}

/// A controller thread: every name announced in `next` is authorized in the `auth` set, through
/// Redis outages, until stopped.
pub struct Authorizer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl Authorizer {
    pub fn start(url: String, next: &str, auth: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (next, auth) = (next.to_string(), auth.to_string());
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut granted = Vec::new();
            let client = redis::Client::open(url).unwrap();
            while !flag.load(Ordering::SeqCst) {
                let Ok(mut c) = client.get_connection() else {
                    thread::sleep(Duration::from_millis(50));
                    continue;
                };
                while !flag.load(Ordering::SeqCst) {
                    match redis::cmd("LPOP")
                        .arg(&next)
                        .query::<Option<String>>(&mut c)
                    {
                        Ok(Some(n)) => {
                            if redis::cmd("SADD").arg(&auth).arg(&n).exec(&mut c).is_err() {
                                break;
                            }
                            granted.push(n);
                        }
                        Ok(None) => thread::sleep(Duration::from_millis(20)),
                        Err(_) => break,
                    }
                }
            }
            granted
        });
        Authorizer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns what was authorized, in order.
    pub fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Authorizer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An input's packets, up to its first damage, by the independent reader.
pub fn packets(path: &Path) -> Vec<Rec> {
    common::read_capture(path).recs()
}

/// A shard stream's packets, read strictly (one header, whole records).
pub fn output(path: &Path) -> Vec<Rec> {
    common::read_stream(path).unwrap().packets
}

/// The packets of several files, one file after the other.
pub fn concat(paths: &[PathBuf]) -> Vec<Rec> {
    paths.iter().flat_map(|p| packets(p)).collect()
}

/// Bytes packets take in a pcap stream (record headers included).
pub fn stream_bytes(pkts: &[Rec]) -> u64 {
    pkts.iter().map(|p| 16 + p.data.len() as u64).sum()
}

/// Asserts two packet sequences are equal, in order, saying where they first differ.
pub fn assert_same_packets(got: &[Rec], want: &[Rec], what: &str) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!("{what}: packet {i} differs");
    }
    assert_eq!(got.len(), want.len(), "{what}: packet counts differ");
}

/// `shardcap run --auth redis --order given` against `url`, its one shard to the FIFO `fifo`
/// (read by a consumer the test starts), with more `args` (and -v: its progress on stderr).
pub fn fifo_dispatcher(url: &str, fifo: &Path, args: &[&str]) -> ChildGuard {
    let spec = format!("fifo:{}", fifo.display());
    let mut all = vec!["run", "-v", "--auth", "redis", "--redis", url, "-o", &spec];
    all.extend_from_slice(&["--order", "given"]);
    all.extend_from_slice(args);
    spawn(&all)
}

/// A consumer reading a FIFO in a thread at a set pace (bytes a second, 0: as fast as it can),
/// keeping what it read. The pace can change while it reads.
pub struct PacedReader {
    /// Bytes read so far.
    pub count: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes a second.
    pub rate: Arc<std::sync::atomic::AtomicU64>,
    /// Set whenever the reader found the pipe empty (FIONREAD 0) before a read; cleared by reads.
    pub empty: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<u8>>>,
}

impl PacedReader {
    /// Opens `fifo` for reading (waiting until the dispatcher has created it) and reads to its end.
    pub fn start(fifo: &Path, rate: u64) -> Self {
        use std::os::unix::fs::FileTypeExt;
        use std::os::unix::io::AsRawFd;
        use std::sync::atomic::AtomicU64;
        use std::time::Instant;
        wait_for("the FIFO", || {
            std::fs::metadata(fifo)
                .ok()
                .filter(|m| m.file_type().is_fifo())
        });
        let count = Arc::new(AtomicU64::new(0));
        let pace = Arc::new(AtomicU64::new(rate));
        let empty = Arc::new(AtomicBool::new(false));
        let (n, r, e, path) = (
            count.clone(),
            pace.clone(),
            empty.clone(),
            fifo.to_path_buf(),
        );
        let thread = thread::spawn(move || {
            let mut f = std::fs::File::open(path).unwrap();
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            let started = Instant::now();
            let mut base = (0u64, started);
            let mut last_rate = r.load(Ordering::SeqCst);
            loop {
                let mut unread: libc::c_int = 0;
                // SAFETY: FIONREAD writes one int through the pointer, which is to a live local.
                unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut unread) };
                if unread == 0 {
                    e.store(true, Ordering::SeqCst);
                }
                let got = match f.read(&mut buf) {
                    Ok(0) | Err(_) => return all,
                    Ok(k) => k,
                };
                e.store(false, Ordering::SeqCst);
                all.extend_from_slice(&buf[..got]);
                let total = n.fetch_add(got as u64, Ordering::SeqCst) + got as u64;
                let rate = r.load(Ordering::SeqCst);
                if rate != last_rate {
                    base = (total, Instant::now());
                    last_rate = rate;
                }
                if rate > 0 {
                    let due = Duration::from_secs_f64((total - base.0) as f64 / rate as f64);
                    let ahead = due.saturating_sub(base.1.elapsed());
                    thread::sleep(ahead);
                }
            }
        });
        PacedReader {
            count,
            rate: pace,
            empty,
            thread: Some(thread),
        }
    }

    /// Bytes read so far.
    pub fn read(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits for the end of the stream; returns every byte read.
    pub fn finish(mut self) -> Vec<u8> {
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Every command a redis-server runs, as MONITOR shows them, collected in a thread.
pub struct Monitor {
    pub lines: Arc<Mutex<String>>,
    sock: std::net::TcpStream,
}

impl Monitor {
    pub fn start(port: u16) -> Self {
        use std::io::Write;
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = sock.try_clone().unwrap();
        let lines = Arc::new(Mutex::new(String::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        wait_for("MONITOR to start", || {
            lines.lock().unwrap().starts_with("+OK").then_some(())
        });
        Monitor { lines, sock }
    }

    /// The commands seen so far, one a line.
    pub fn seen(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// A redis-server requiring `password`, listening with TLS on `tls_port` (and in plain text on its
/// usual port), with its CA at `ca` and its certificates in a temp dir of their own.
pub struct TlsRedis {
    pub server: RedisServer,
    pub tls_port: u16,
    pub ca: String,
    certs: tempfile::TempDir,
}

impl TlsRedis {
    /// Makes the certificates and starts the server.
    pub fn start(password: &str) -> Self {
        let certs = tempfile::tempdir().unwrap();
        certificates(certs.path());
        let tls_port = free_port();
        let file = |n: &str| certs.path().join(n).to_str().unwrap().to_string();
        let port = tls_port.to_string();
        let server = RedisServer::start_with_password(
            password,
            &[
                "--tls-port",
                &port,
                "--tls-cert-file",
                &file("server.pem"),
                "--tls-key-file",
                &file("server.key"),
                "--tls-ca-cert-file",
                &file("ca.pem"),
                "--tls-auth-clients",
                "no",
            ],
        );
        TlsRedis {
            server,
            tls_port,
            ca: file("ca.pem"),
            certs,
        }
    }

    /// A file beside the certificates.
    pub fn path(&self, name: &str) -> String {
        self.certs.path().join(name).to_str().unwrap().to_string()
    }
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl command.
pub fn certificates(dir: &Path) {
    let sh = |script: &str| common::shell(script, dir);
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
        -days 2 -extfile ext.cnf");
}
