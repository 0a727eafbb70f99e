//! One consumer process per shard: its command line, environment and log directory, spawned with
//! stdout and stderr captured to a file in that directory, waited for, signalled, and asked for the
//! tail of its log when something goes wrong.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// Name of the file in a consumer's log directory that receives its stdout and stderr.
pub const CONSOLE_LOG: &str = "console.log";
/// Bytes read from the end of a log for an error message.
const TAIL_BYTES: u64 = 4096;

/// How a consumer ends once shardcap has written everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It ends by itself at the end of its input (EOF on a FIFO, the spool's end marker).
    AtEndOfInput,
    /// It never ends by itself (Suricata's continuous directory mode): once this directory holds no
    /// segment any more, shardcap sends SIGTERM, and the exit that follows is the normal end.
    TermWhenDrained(PathBuf),
}

/// How shardcap knows a consumer is ready to be fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// It opened its FIFO (the FIFO output's open returns only then).
    OpenedFifo,
    /// This unix socket accepts a connection (Suricata's unix-command socket).
    Socket(PathBuf),
    /// Started is enough (a spool reader finds the segments whenever it looks).
    Started,
}

/// Where a consumer says how many packets it processed, read back at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketReport {
    /// It does not say (`--exec`).
    Silent,
    /// Suricata's final stats record in this eve.json (`stats.decoder.pkts`).
    SuricataEve(PathBuf),
    /// What the preset's script makes Zeek write at `zeek_done` in this log directory.
    Zeek(PathBuf),
}

/// Everything needed to start one shard's consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The shard it reads.
    pub shard: usize,
    /// A short name for messages ("suricata", "zeek", "exec").
    pub name: String,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory (the log directory when `None`).
    pub cwd: Option<PathBuf>,
    /// The consumer's own log directory; its console log goes there.
    pub log_dir: PathBuf,
    /// When it can be fed.
    pub ready: Readiness,
    /// How it ends.
    pub ending: Ending,
    /// Where it reports its packet count.
    pub report: PacketReport,
    /// A file the consumer writes when it found its input damaged (the `pcapdir::` source's
    /// `PATH/shard-K.error`): a run whose consumer left it fails, however the consumer exited.
    pub failure_marker: Option<PathBuf>,
}

impl ConsumerSpec {
    /// The packets the consumer says it processed, once it has ended (`None` when it does not
    /// say, or its report cannot be read: that is logged).
    pub fn packets_seen(&self) -> Option<u64> {
        let read = match &self.report {
            PacketReport::Silent => return None,
            PacketReport::SuricataEve(eve) => super::suricata::packets_seen(eve),
            PacketReport::Zeek(dir) => super::zeek::packets_seen(dir),
        };
        read.unwrap_or_else(|e| {
            log::warn!(
                "shard {}: cannot read {}'s packet count: {e}",
                self.shard,
                self.name
            );
            None
        })
    }

    /// The command line as one shell-like string, for logs.
    pub fn display_command(&self) -> String {
        self.argv.join(" ")
    }

    /// The file that receives its stdout and stderr.
    pub fn console_log(&self) -> PathBuf {
        self.log_dir.join(CONSOLE_LOG)
    }
}

/// How a consumer ended, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub ExitStatus);

impl Exit {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self.0.success()
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.code(), self.0.signal()) {
            (Some(c), _) => write!(f, "exit status {c}"),
            (None, Some(s)) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by signal {s} ({sig})"),
                Err(_) => write!(f, "killed by signal {s}"),
            },
            _ => write!(f, "{}", self.0),
        }
    }
}

/// A running consumer process.
pub struct Consumer {
    spec: ConsumerSpec,
    child: Child,
    exit: Option<Exit>,
}

impl Consumer {
    /// Starts the consumer in its own process group (a Ctrl-C on shardcap's terminal reaches
    /// shardcap, which then ends the streams in order, not the consumers directly), with stdin from
    /// /dev/null and stdout/stderr appended to its console log.
    pub fn spawn(spec: ConsumerSpec) -> io::Result<Self> {
        fs::create_dir_all(&spec.log_dir)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.console_log())?;
        let (program, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let child = Command::new(program)
            .args(args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(spec.cwd.as_deref().unwrap_or(&spec.log_dir))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {program}: {e}")))?;
        log::info!(
            "shard {}: started {} (pid {}): {}",
            spec.shard,
            spec.name,
            child.id(),
            spec.display_command()
        );
        Ok(Consumer {
            spec,
            child,
            exit: None,
        })
    }

    /// What it was started from.
    pub fn spec(&self) -> &ConsumerSpec {
        &self.spec
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, if it has (never blocks).
    pub fn try_wait(&mut self) -> io::Result<Option<Exit>> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait()?.map(Exit);
        }
        Ok(self.exit)
    }

    /// Waits up to `limit` for it to end.
    pub fn wait_for(&mut self, limit: Duration) -> io::Result<Option<Exit>> {
        let until = Instant::now() + limit;
        loop {
            if let Some(e) = self.try_wait()? {
                return Ok(Some(e));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` to its process group (nothing if it has ended), so that the programs a
    /// `sh -c` consumer started get it too.
    pub fn signal(&mut self, sig: Signal) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        match signal::killpg(Pid::from_raw(self.child.id() as i32), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// Ends it: SIGTERM, up to `grace` to exit, then SIGKILL. Returns how it ended.
    pub fn terminate(&mut self, grace: Duration) -> io::Result<Exit> {
        self.signal(Signal::SIGTERM)?;
        if let Some(e) = self.wait_for(grace)? {
            return Ok(e);
        }
        log::warn!(
            "shard {}: {} (pid {}) ignored SIGTERM for {grace:?}; killing it",
            self.spec.shard,
            self.spec.name,
            self.pid()
        );
        self.signal(Signal::SIGKILL)?;
        self.child.wait().map(|s| {
            self.exit = Some(Exit(s));
            Exit(s)
        })
    }

    /// The last lines of its console log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.spec.console_log(), TAIL_BYTES).unwrap_or_default()
    }

    /// A message saying that it ended with `exit`, with the tail of its log.
    pub fn describe_exit(&self, exit: Exit, when: &str) -> String {
        let tail = self.log_tail();
        let mut msg = format!(
            "shard {}: {} (pid {}) ended {when} with {exit} (log: {})",
            self.spec.shard,
            self.spec.name,
            self.pid(),
            self.spec.console_log().display()
        );
        if tail.trim().is_empty() {
            msg.push_str("; its log is empty");
        } else {
            msg.push_str("; its log ends with:");
            for line in tail.lines() {
                msg.push_str("\n    ");
                msg.push_str(line);
            }
        }
        msg
    }
}

/// The whole lines among the last `max` bytes of `path`.
pub fn tail(path: &Path, max: u64) -> io::Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let text = if start > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    Ok(text.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str) -> ConsumerSpec {
        ConsumerSpec {
            shard: 3,
            name: "test".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("SHARDCAP_TEST_VAR".into(), "seen".into())],
            cwd: None,
            log_dir: dir.join("shard-3"),
            ready: Readiness::Started,
            ending: Ending::AtEndOfInput,
            report: PacketReport::Silent,
            failure_marker: None,
        }
    }

    #[test]
    fn output_env_and_cwd_reach_the_console_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Consumer::spawn(spec(
            dir.path(),
            "echo out $SHARDCAP_TEST_VAR; pwd; echo err >&2; exit 7",
        ))
        .unwrap();
        let exit = c.wait_for(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(exit.to_string(), "exit status 7");
        let log = c.log_tail();
        let cwd = dir.path().join("shard-3").canonicalize().unwrap();
        assert!(log.contains("out seen"), "{log}");
        assert!(log.contains(&cwd.display().to_string()), "{log}");
        assert!(log.contains("err"), "{log}");
        let msg = c.describe_exit(exit, "while streaming");
        assert!(msg.starts_with("shard 3: test (pid "), "{msg}");
        assert!(
            msg.contains("exit status 7") && msg.contains("    err"),
            "{msg}"
        );
    }

    #[test]
    fn terminate_escalates_to_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Consumer::spawn(spec(
            dir.path(),
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ))
        .unwrap();
        // Wait until the trap is set (the shell printed after it).
        let t = Instant::now();
        while !c.log_tail().contains("ready") && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let exit = c.terminate(Duration::from_millis(300)).unwrap();
        assert_eq!(exit.0.signal(), Some(libc::SIGKILL), "{exit}");
        assert!(exit.to_string().contains("SIGKILL"), "{exit}");
    }

    #[test]
    fn tail_keeps_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let body: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        fs::write(&p, body).unwrap();
        let t = tail(&p, 30).unwrap();
        assert!(t.ends_with("line 999"), "{t}");
        assert!(t.lines().all(|l| l.starts_with("line ")), "{t}");
    }
}
