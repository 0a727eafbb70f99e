//! Helpers shared by the integration tests: the corpus and its manifest, running the real binary
//! (to its end, or as a guarded child killed on drop), free loopback ports, waiting for a
//! condition, shell steps, an independent reader of captures (the pcap-file crate), a small pcap
//! writer and synthetic packets.
//!
//! Every test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{Endianness, PcapError, TsResolution};

/// Address space a shardcap run may use: a runaway allocation fails the run, not the machine.
const ADDRESS_SPACE_LIMIT: u64 = 2 << 30;

/// The shared test corpus (`SHARDCAP_CORPUS`, default `../shared/corpus` beside the crate).
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("SHARDCAP_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "test corpus not found at {} (set SHARDCAP_CORPUS)",
        dir.display()
    );
    dir
}

/// A corpus file by its manifest path.
pub fn corpus(rel: &str) -> PathBuf {
    corpus_dir().join(rel)
}

/// One row of MANIFEST.tsv.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: String,
    pub link_types: String,
    pub format: String,
    pub packets: usize,
    /// The row lists PROBLEMS: damaged or irregular.
    pub damaged: bool,
}

impl Row {
    /// Absolute path of the capture.
    pub fn file(&self) -> PathBuf {
        corpus(&self.path)
    }

    /// The link-type numbers the manifest names (`NAME(n)`), without FCS bits.
    pub fn link_type_numbers(&self) -> Vec<u32> {
        let declared = self.link_types.split(';').next().unwrap_or("");
        declared
            .split_whitespace()
            .filter_map(|w| w.rsplit_once('(')?.1.strip_suffix(')')?.parse().ok())
            .collect()
    }

    /// True when the manifest says timestamps are finer than microseconds.
    pub fn sub_micro(&self) -> bool {
        self.format.contains(" ns") || self.format.contains("=ns")
    }
}

/// Every capture of the corpus, as the manifest lists them.
pub fn manifest() -> Vec<Row> {
    let text = fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).expect("read MANIFEST.tsv");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).expect(name);
    let (path, lt, format, packets, notes) = (
        col("path"),
        col("link_types"),
        col("format"),
        col("packets"),
        col("notable_features"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                path: f[path].to_string(),
                link_types: f[lt].to_string(),
                format: f[format].to_string(),
                packets: f[packets].parse().expect("packets column"),
                damaged: f[notes].contains("PROBLEMS"),
            }
        })
        .collect()
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// pcapdj's display_stats(): its `[STATS]` keys, in its order.
pub const PCAPDJ_STATS_KEYS: [&str; 8] = [
    "Start time",
    "Uptime",
    "Internal state",
    "Number of suspensions",
    "Number of files",
    "Number of packets",
    "Number of cap_lengths",
    "Number of lengths",
];

/// A `shardcap` command with its address space bounded.
pub fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardcap"));
    cmd.args(args).env_remove("SHARDCAP_LOG");
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE_LIMIT,
                rlim_max: ADDRESS_SPACE_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `shardcap ARGS` to its end.
pub fn shardcap<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = command(args)
        .stdin(Stdio::null())
        .output()
        .expect("run shardcap");
    finished(out)
}

/// Runs `shardcap ARGS` to its end under the address-space limit; returns the run and its peak
/// resident set size in bytes.
pub fn shardcap_peak<I, S>(args: I) -> (Run, u64)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    // Reaped by wait4 below, which also gives its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = command(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("run shardcap");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; both pointers are to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status),
        "process died: wait status {status:#x}\nstderr:\n{stderr}"
    );
    let run = Run {
        code: libc::WEXITSTATUS(status),
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr,
    };
    (run, usage.ru_maxrss as u64 * 1024)
}

/// The [`Run`] of a finished process; a death by signal (a crash) fails the test.
pub fn finished(out: Output) -> Run {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let Some(code) = out.status.code() else {
        panic!("process died: {:?}\nstderr:\n{stderr}", out.status);
    };
    Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, panicking with `what` after a generous bound (a hang guard,
/// not a timing assertion).
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `cond` holds ([`wait_for`] for a condition).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, || cond().then_some(()));
}

/// Runs a `sh -c` script in `dir` (certificates and the like), insisting it succeeds.
pub fn shell(script: &str, dir: &Path) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `shardcap ARGS` as a guarded child (address space bounded, stdout and stderr piped).
pub fn spawn(args: &[&str]) -> ChildGuard {
    let child = command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shardcap");
    ChildGuard(Some(child))
}

/// Waits for a shardcap child's end (killing it after a generous bound, so a hang fails the test).
pub fn finish(child: ChildGuard) -> Run {
    let pid = child.nix_pid();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(180);
        while !flag.load(Ordering::SeqCst) {
            if Instant::now() > until {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let out = child.output();
    done.store(true, Ordering::SeqCst);
    watchdog.join().unwrap();
    finished(out)
}

/// The processes that process `pid` started (IDS instances...), from /proc.
pub fn children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().map(|p| p.parse::<i32>().unwrap()));
        }
    }
    out
}

/// Kills and reaps a child process when dropped, so a failing test leaves nothing running.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Guards `cmd`, started.
    pub fn start(cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()));
        ChildGuard(Some(child))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    fn nix_pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.pid() as i32)
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.nix_pid(), sig).expect("signal the child");
    }

    /// Sends `sig` and reaps the child, if it is still guarded.
    pub fn stop(&mut self, sig: nix::sys::signal::Signal) {
        if let Some(mut c) = self.0.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
            let _ = c.wait();
        }
    }

    /// Kills the child at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.stop(nix::sys::signal::Signal::SIGKILL);
    }

    /// True while the child has not exited.
    pub fn running(&mut self) -> bool {
        let child = self.0.as_mut().unwrap();
        child.try_wait().expect("poll child").is_none()
    }

    /// Waits for the child's end.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.0.take().unwrap().wait().expect("wait for child")
    }

    /// Waits for the child's end and collects its output.
    pub fn output(mut self) -> Output {
        self.0
            .take()
            .unwrap()
            .wait_with_output()
            .expect("wait for child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One packet record: what conservation compares (caplen is `data.len()`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rec {
    pub ts_ns: u64,
    pub len: u32,
    pub data: Vec<u8>,
}

impl Rec {
    /// The record as a microsecond-resolution stream stores it.
    pub fn at_micros(&self) -> Rec {
        Rec {
            ts_ns: self.ts_ns / 1000 * 1000,
            ..self.clone()
        }
    }
}

/// A capture as the independent reader sees it.
#[derive(Debug, Default)]
pub struct Capture {
    /// Each packet with the link type of its interface.
    pub packets: Vec<(u32, Rec)>,
    /// Distinct link types of every interface, in first-seen order.
    pub linktypes: Vec<u32>,
    /// Distinct link types declared before the first packet.
    pub linktypes_before_first: Vec<u32>,
    /// Some interface (or the file header) has a resolution finer than microseconds.
    pub sub_micro: bool,
    /// Where the reader gave up, if it did.
    pub error: Option<String>,
}

impl Capture {
    /// The packets without their link types.
    pub fn recs(&self) -> Vec<Rec> {
        self.packets.iter().map(|(_, r)| r.clone()).collect()
    }

    fn declare(&mut self, linktype: u32) {
        if !self.linktypes.contains(&linktype) {
            self.linktypes.push(linktype);
        }
        if self.packets.is_empty() && !self.linktypes_before_first.contains(&linktype) {
            self.linktypes_before_first.push(linktype);
        }
    }
}

/// Reads a pcap, modified-pcap or pcapng file with the pcap-file crate (uncompressed only).
pub fn read_capture(path: &Path) -> Capture {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match bytes.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => read_pcapng(&bytes),
        Some([0x34, 0xcd, 0xb2, 0xa1]) => read_modified_pcap(&bytes),
        _ => read_pcap(&bytes),
    }
}

fn read_pcap(bytes: &[u8]) -> Capture {
    let mut cap = Capture::default();
    let (mut rest, parser) = match PcapParser::new(bytes) {
        Ok(p) => p,
        Err(e) => {
            cap.error = Some(format!("header: {e}"));
            return cap;
        }
    };
    let header = parser.header();
    let frac_ns = match header.ts_resolution {
        TsResolution::MicroSecond => 1000,
        TsResolution::NanoSecond => 1,
    };
    cap.sub_micro = frac_ns == 1;
    cap.declare(u32::from(header.datalink));
    while !rest.is_empty() {
        match parser.next_raw_packet(rest) {
            Ok((r, p)) => {
                let rec = Rec {
                    ts_ns: u64::from(p.ts_sec) * 1_000_000_000 + u64::from(p.ts_frac) * frac_ns,
                    len: p.orig_len,
                    data: p.data.into_owned(),
                };
                cap.packets.push((u32::from(header.datalink), rec));
                rest = r;
            }
            Err(e) => {
                cap.error = Some(format!("at {}: {e}", bytes.len() - rest.len()));
                break;
            }
        }
    }
    cap
}

/// Kuznetzov's modified pcap (magic a1b2cd34, little-endian here): 24-byte record headers.
fn read_modified_pcap(bytes: &[u8]) -> Capture {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut cap = Capture::default();
    cap.declare(u32_at(20));
    let mut at = 24;
    while at < bytes.len() {
        if at + 24 > bytes.len() || at + 24 + u32_at(at + 8) as usize > bytes.len() {
            cap.error = Some(format!("at {at}: record cut short"));
            break;
        }
        let caplen = u32_at(at + 8) as usize;
        let rec = Rec {
            ts_ns: u64::from(u32_at(at)) * 1_000_000_000 + u64::from(u32_at(at + 4)) * 1000,
            len: u32_at(at + 12),
            data: bytes[at + 24..at + 24 + caplen].to_vec(),
        };
        cap.packets.push((u32_at(20), rec));
        at += 24 + caplen;
    }
    cap
}

/// Nanoseconds of `ticks` of an interface, by the pcapng rules for if_tsresol and if_tsoffset.
fn pcapng_ts(iface: &InterfaceDescriptionBlock, ticks: u64) -> u64 {
    let mut resol = 6u8;
    let mut offset_s = 0i64;
    for opt in &iface.options {
        match opt {
            InterfaceDescriptionOption::IfTsResol(r) => resol = *r,
            InterfaceDescriptionOption::IfTsOffset(o) => offset_s = *o as i64,
            _ => {}
        }
    }
    let ticks = u128::from(ticks);
    let ns = if resol & 0x80 != 0 {
        (ticks * 1_000_000_000) >> (resol & 0x7f)
    } else if resol <= 9 {
        ticks * 10u128.pow(9 - u32::from(resol))
    } else {
        ticks / 10u128.pow(u32::from(resol) - 9)
    };
    (ns as i128 + i128::from(offset_s) * 1_000_000_000) as u64
}

fn sub_micro(iface: &InterfaceDescriptionBlock) -> bool {
    iface.options.iter().any(|o| match o {
        InterfaceDescriptionOption::IfTsResol(r) if r & 0x80 != 0 => r & 0x7f >= 20,
        InterfaceDescriptionOption::IfTsResol(r) => *r > 6,
        _ => false,
    })
}

fn read_pcapng(bytes: &[u8]) -> Capture {
    let mut cap = Capture::default();
    let (mut rest, mut parser) = match PcapNgParser::new(bytes) {
        Ok(p) => p,
        Err(e) => {
            cap.error = Some(format!("section header: {e}"));
            return cap;
        }
    };
    // A simple packet block has no timestamp: it takes the previous packet's.
    let mut last_ts = 0;
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let (r, block) = match parser.next_block(rest) {
            Ok(b) => b,
            Err(PcapError::IncompleteBuffer) => {
                cap.error = Some(format!("at {at}: block cut short"));
                break;
            }
            Err(e) => {
                cap.error = Some(format!("at {at}: {e}"));
                break;
            }
        };
        rest = r;
        let ifaces = parser.interfaces();
        let iface_of = |id: usize| {
            ifaces
                .get(id)
                .ok_or_else(|| format!("at {at}: packet on undefined interface {id}"))
        };
        let (iface, rec) = match block {
            Block::InterfaceDescription(idb) => {
                cap.declare(u32::from(idb.linktype));
                cap.sub_micro |= sub_micro(&idb);
                continue;
            }
            Block::EnhancedPacket(p) => {
                let Ok(iface) = iface_of(p.interface_id as usize).map_err(|e| cap.error = Some(e))
                else {
                    break;
                };
                let ts = pcapng_ts(iface, p.timestamp.as_nanos() as u64);
                let rec = Rec {
                    ts_ns: ts,
                    len: p.original_len,
                    data: p.data.into_owned(),
                };
                (iface, rec)
            }
            Block::Packet(p) => {
                let Ok(iface) =
                    iface_of(usize::from(p.interface_id)).map_err(|e| cap.error = Some(e))
                else {
                    break;
                };
                let rec = Rec {
                    ts_ns: pcapng_ts(iface, p.timestamp),
                    len: p.original_len,
                    data: p.data.into_owned(),
                };
                (iface, rec)
            }
            Block::SimplePacket(p) => {
                let Ok(iface) = iface_of(0).map_err(|e| cap.error = Some(e)) else {
                    break;
                };
                let mut caplen = (p.original_len as usize).min(p.data.len());
                if iface.snaplen > 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                let rec = Rec {
                    ts_ns: last_ts,
                    len: p.original_len,
                    data: p.data[..caplen].to_vec(),
                };
                (iface, rec)
            }
            _ => continue,
        };
        last_ts = rec.ts_ns;
        let lt = u32::from(iface.linktype);
        cap.packets.push((lt, rec));
    }
    cap
}

/// A pcap stream that shardcap wrote.
#[derive(Debug)]
pub struct Stream {
    pub linktype: u32,
    pub nanos: bool,
    pub snaplen: u32,
    pub packets: Vec<Rec>,
}

/// Reads one output stream strictly: little-endian pcap magic, one header, whole records to the
/// last byte.
pub fn read_stream(path: &Path) -> Result<Stream, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    read_stream_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`read_stream`] over bytes in memory.
pub fn read_stream_bytes(bytes: &[u8]) -> Result<Stream, String> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| format!("header: {e}"))?;
    let h = parser.header();
    if h.endianness != Endianness::Little || (h.version_major, h.version_minor) != (2, 4) {
        return Err(format!("unexpected header {h:?}"));
    }
    let nanos = h.ts_resolution == TsResolution::NanoSecond;
    let mut packets = Vec::new();
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let (r, p) = parser
            .next_raw_packet(rest)
            .map_err(|e| format!("record at byte {at}: {e}"))?;
        let limit = if nanos { 1_000_000_000 } else { 1_000_000 };
        if p.ts_frac >= limit || p.incl_len > h.snaplen.max(262_144) {
            return Err(format!("record at byte {at} is malformed: {:?}", p));
        }
        let frac_ns = if nanos { 1 } else { 1000 };
        packets.push(Rec {
            ts_ns: u64::from(p.ts_sec) * 1_000_000_000 + u64::from(p.ts_frac) * frac_ns,
            len: p.orig_len,
            data: p.data.into_owned(),
        });
        rest = r;
    }
    Ok(Stream {
        linktype: u32::from(h.datalink),
        nanos,
        snaplen: h.snaplen,
        packets,
    })
}

/// The shard outputs `DIR/PREFIX-{k}.pcap` for k in 0..n, each read strictly.
pub fn read_shards(dir: &Path, prefix: &str, n: usize) -> Result<Vec<Stream>, String> {
    (0..n)
        .map(|k| read_stream(&dir.join(format!("{prefix}-{k}.pcap"))))
        .collect()
}

/// Compares two packet multisets; `Err` describes the first differences.
pub fn same_packets(mut expected: Vec<Rec>, mut got: Vec<Rec>) -> Result<(), String> {
    expected.sort_unstable();
    got.sort_unstable();
    if expected == got {
        return Ok(());
    }
    let mut counts: BTreeMap<&Rec, i64> = BTreeMap::new();
    for r in &expected {
        *counts.entry(r).or_default() += 1;
    }
    for r in &got {
        *counts.entry(r).or_default() -= 1;
    }
    let diff: Vec<String> = counts
        .iter()
        .filter(|(_, &n)| n != 0)
        .take(4)
        .map(|(r, n)| {
            let what = if *n > 0 { "missing" } else { "extra" };
            format!(
                "{what} x{}: ts {} caplen {} len {}",
                n.abs(),
                r.ts_ns,
                r.data.len(),
                r.len
            )
        })
        .collect();
    Err(format!(
        "expected {} packets, got {}; {}",
        expected.len(),
        got.len(),
        diff.join("; ")
    ))
}

/// True when timestamps never go backwards.
pub fn non_decreasing(recs: &[Rec]) -> bool {
    recs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns)
}

/// The JSON stats file a run wrote.
pub fn stats(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("stats JSON")
}

/// Writes a little-endian pcap file (microsecond or nanosecond magic).
pub fn write_pcap(path: &Path, linktype: u32, nanos: bool, recs: &[Rec]) {
    let mut out = Vec::new();
    let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    out.extend(magic.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0; 8]);
    out.extend(65_535u32.to_le_bytes());
    out.extend(linktype.to_le_bytes());
    for r in recs {
        let frac = r.ts_ns % 1_000_000_000;
        out.extend(((r.ts_ns / 1_000_000_000) as u32).to_le_bytes());
        out.extend((if nanos { frac } else { frac / 1000 } as u32).to_le_bytes());
        out.extend((r.data.len() as u32).to_le_bytes());
        out.extend(r.len.to_le_bytes());
        out.extend(&r.data);
    }
    fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Writes a little-endian pcapng file: one section, one interface of `linktype` with nanosecond
/// resolution, and an enhanced packet block per record.
pub fn write_pcapng(path: &Path, linktype: u16, recs: &[Rec]) {
    fn block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
        let len = (12 + body.len().next_multiple_of(4)) as u32;
        out.extend(ty.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(body);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend(len.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend([0xff; 8]);
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = linktype.to_le_bytes().to_vec();
    idb.extend([0, 0]);
    idb.extend(65_535u32.to_le_bytes());
    // if_tsresol 9, then the end of options.
    idb.extend([9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    block(&mut out, 1, &idb);
    for r in recs {
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend(((r.ts_ns >> 32) as u32).to_le_bytes());
        epb.extend((r.ts_ns as u32).to_le_bytes());
        epb.extend((r.data.len() as u32).to_le_bytes());
        epb.extend(r.len.to_le_bytes());
        epb.extend(&r.data);
        block(&mut out, 6, &epb);
    }
    fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// One endpoint of a synthetic IPv4 conversation.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub ip: [u8; 4],
    pub port: u16,
}

/// An Ethernet/IPv4 frame carrying TCP (`flags`, `seq`) or, with `tcp` false, UDP.
pub fn ipv4_frame(src: Endpoint, dst: Endpoint, tcp: Option<(u8, u32)>, payload: &[u8]) -> Vec<u8> {
    let l4_len = if tcp.is_some() { 20 } else { 8 };
    let mut f = Vec::new();
    f.extend([0x02, 0, 0, 0, 0, dst.ip[3]]);
    f.extend([0x02, 0, 0, 0, 0, src.ip[3]]);
    f.extend(0x0800u16.to_be_bytes());
    f.extend([0x45, 0]);
    f.extend(((20 + l4_len + payload.len()) as u16).to_be_bytes());
    f.extend([0, 1, 0x40, 0, 64, if tcp.is_some() { 6 } else { 17 }, 0, 0]);
    f.extend(src.ip);
    f.extend(dst.ip);
    f.extend(src.port.to_be_bytes());
    f.extend(dst.port.to_be_bytes());
    match tcp {
        Some((flags, seq)) => {
            f.extend(seq.to_be_bytes());
            f.extend(0u32.to_be_bytes());
            f.extend([0x50, flags]);
            f.extend(65_535u16.to_be_bytes());
            f.extend([0; 4]);
        }
        None => {
            f.extend(((8 + payload.len()) as u16).to_be_bytes());
            f.extend([0; 2]);
        }
    }
    f.extend(payload);
    f
}

/// A whole frame as a record at `ts_ns`.
pub fn rec(ts_ns: u64, data: Vec<u8>) -> Rec {
    Rec {
        ts_ns,
        len: data.len() as u32,
        data,
    }
}

/// A TCP session between `client` and `server` starting at `t0` (ns), `step` ns apart: handshake,
/// `exchanges` data segments each way, then FIN both ways and the last ACK.
pub fn tcp_session(
    client: Endpoint,
    server: Endpoint,
    t0: u64,
    step: u64,
    exchanges: usize,
) -> Vec<Rec> {
    let mut frames = vec![
        ipv4_frame(client, server, Some((SYN, 100)), b""),
        ipv4_frame(server, client, Some((SYN | ACK, 500)), b""),
        ipv4_frame(client, server, Some((ACK, 101)), b""),
    ];
    for i in 0..exchanges {
        let ask = format!("request {i} from {}", client.port);
        let answer = format!("answer {i} to {}", client.port);
        frames.push(ipv4_frame(
            client,
            server,
            Some((PSH | ACK, 101 + i as u32)),
            ask.as_bytes(),
        ));
        frames.push(ipv4_frame(
            server,
            client,
            Some((PSH | ACK, 501 + i as u32)),
            answer.as_bytes(),
        ));
    }
    frames.push(ipv4_frame(client, server, Some((FIN | ACK, 900)), b""));
    frames.push(ipv4_frame(server, client, Some((FIN | ACK, 950)), b""));
    frames.push(ipv4_frame(client, server, Some((ACK, 901)), b""));
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| rec(t0 + i as u64 * step, f))
        .collect()
}

/// A generated multi-sensor pile in `dir`: overlapping sensors, rotated files.
pub fn pile(dir: &Path, size: u64, seed: u64) -> Vec<String> {
    shardcap_gen::generate(&shardcap_gen::GenerateConfig {
        out: dir.to_path_buf(),
        sensors: 3,
        files_per_sensor: 3,
        size,
        seed,
        nanos: false,
        gzip: false,
        zstd: false,
        duration: Duration::from_secs(30),
    })
    .unwrap();
    vec![dir.display().to_string()]
}

/// Every file of `dir` by name, with its bytes.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The unordered address pair of an Ethernet frame's IP packet (through VLAN tags), unless it is
/// ICMP (errors go with the flow they quote, not their own addresses).
pub fn address_pair(frame: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        at += 4;
        ethertype = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    }
    let ip = frame.get(at + 2..)?;
    let (proto, a, b) = match ethertype {
        0x0800 => (ip.get(9)?, ip.get(12..16)?, ip.get(16..20)?),
        0x86dd => (ip.get(6)?, ip.get(8..24)?, ip.get(24..40)?),
        _ => return None,
    };
    if *proto == 1 || *proto == 58 {
        return None;
    }
    Some((a.min(b).to_vec(), a.max(b).to_vec()))
}
