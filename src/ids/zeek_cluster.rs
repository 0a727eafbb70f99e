//! `--ids zeek-cluster`: the shard instances run as the workers of one Zeek cluster (Broker
//! backend) with a manager, a proxy and a logger on free loopback ports, so the logs come out once,
//! written by the logger in `LOGDIR/logger/`, and cluster-wide scripts see every shard.
//!
//! The layout (`LOGDIR/cluster-layout.zeek`) is written into every node's working directory, where
//! Zeek's cluster framework loads it (`.` leads ZEEKPATH). The manager, proxy and logger start at
//! the start of the run; a worker holds its packets until it is peered with all three (nothing is
//! logged or published before it can reach them) and ends at the end of its trace
//! (`Pcap::file_done`; a cluster worker otherwise waits for ever), flushing its logs to the logger
//! as Zeek terminates. After every worker ended, the three get SIGTERM, the logger last, so it
//! writes what the others logged at their end.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// The cluster's layout, written to the log directory and to each node's directory.
pub const LAYOUT_FILE: &str = "cluster-layout.zeek";
/// Settings of every node, written to the log directory.
pub const SCRIPT_FILE: &str = "shardcap-cluster.zeek";
/// The nodes started at the start of the run, each in `LOGDIR/NAME`; stopped in the reverse
/// order, so that the logger gets everything the proxy and the manager log at their end.
pub const SERVICES: [&str; 3] = ["logger", "manager", "proxy"];
/// Written by each of the manager, logger and proxy in its directory once it is peered with the
/// other two.
pub const READY_FILE: &str = "shardcap-ready";
/// How long the manager, logger and proxy get to peer with each other.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the manager, proxy and logger get to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// Loaded by every node: Broker as the cluster backend, listening on loopback, no log rotation
/// (one set of logs a run, as the plain preset), hosts tracked whatever their network (offline
/// captures have no `Site::local_nets`); the manager, logger and proxy each say when they are
/// peered with the other two ([`READY_FILE`]); workers wait for those three, and end at the end of
/// their trace.
const SCRIPT: &str = r#"@load policy/frameworks/cluster/backend/broker
@load policy/protocols/conn/known-hosts
redef Broker::default_listen_address = "127.0.0.1";
redef Log::default_rotation_interval = 0secs;
redef Known::host_tracking = ALL_HOSTS;

@if ( Cluster::local_node_type() == Cluster::WORKER )
global shardcap_peers = 0;

event zeek_init()
	{
	suspend_processing();
	}

event Cluster::node_up(name: string, id: string) &priority=-10
	{
	if ( name in set("manager", "logger", "proxy") && ++shardcap_peers == 3 )
		continue_processing();
	}

event Pcap::file_done(path: string)
	{
	terminate();
	}
@else
global shardcap_peers: set[string];

event Cluster::node_up(name: string, id: string) &priority=-10
	{
	if ( name in set("manager", "logger", "proxy") )
		add shardcap_peers[name];
	if ( |shardcap_peers| == 2 )
		close(open("shardcap-ready"));
	}
@endif
"#;

/// The node name of shard `k`'s worker.
pub fn worker_name(k: usize) -> String {
    format!("worker-{k}")
}

/// The text of a layout with the manager, logger and proxy on `ports` and `workers` workers.
pub fn layout(ports: [u16; 3], workers: usize) -> String {
    let mut s = String::from("redef Cluster::manager_is_logger = F;\nredef Cluster::nodes = {\n");
    for (name, port) in SERVICES.iter().zip(ports) {
        let manager = match *name {
            "manager" => String::new(),
            _ => ", $manager=\"manager\"".into(),
        };
        s.push_str(&format!(
            "    [\"{name}\"] = [$node_type=Cluster::{}, $ip=127.0.0.1, $p={port}/tcp{manager}],\n",
            name.to_uppercase()
        ));
    }
    for k in 0..workers {
        s.push_str(&format!(
            "    [\"{}\"] = [$node_type=Cluster::WORKER, $ip=127.0.0.1, $manager=\"manager\"],\n",
            worker_name(k)
        ));
    }
    s.push_str("};\n");
    s
}

/// Three free loopback TCP ports (held together while chosen, so they differ).
fn free_ports() -> Result<[u16; 3]> {
    let bind = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| Ok((l.local_addr()?.port(), l)))
            .map_err(|e| Error::usage(format!("--ids zeek-cluster: no free loopback port: {e}")))
    };
    let (a, _la) = bind()?;
    let (b, _lb) = bind()?;
    let (c, _lc) = bind()?;
    Ok([a, b, c])
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text)
        .map_err(|e| Error::usage(format!("{}: cannot write it: {e}", path.display())))
}

/// The cluster of a run: its files, and its manager, logger and proxy once started.
pub struct ZeekCluster {
    log_dir: PathBuf,
    /// The arguments shared by every node after `zeek` (JSON logs, community-id, the script).
    args: Vec<String>,
    nodes: Vec<(String, Child)>,
}

impl ZeekCluster {
    /// Writes the layout (free loopback ports, `workers` workers) and the script to `log_dir`, and
    /// the layout into the directory of each of the manager, logger and proxy (created here).
    pub fn plan(log_dir: &Path, workers: usize, common: &[String]) -> Result<Self> {
        let text = layout(free_ports()?, workers);
        write(&log_dir.join(LAYOUT_FILE), &text)?;
        let script = log_dir.join(SCRIPT_FILE);
        write(&script, SCRIPT)?;
        for name in SERVICES {
            let dir = log_dir.join(name);
            super::prepare_log_dir(&dir, false)?;
            write(&dir.join(LAYOUT_FILE), &text)?;
        }
        let mut args = common.to_vec();
        args.push(script.display().to_string());
        Ok(ZeekCluster {
            log_dir: log_dir.to_path_buf(),
            args,
            nodes: Vec::new(),
        })
    }

    /// The script every node loads (a worker adds it to the plain preset's command line).
    pub fn script(&self) -> String {
        self.log_dir.join(SCRIPT_FILE).display().to_string()
    }

    /// Writes the layout into a worker's directory.
    pub fn prepare_worker(&self, dir: &Path) -> Result<()> {
        fs::copy(self.log_dir.join(LAYOUT_FILE), dir.join(LAYOUT_FILE))
            .map(drop)
            .map_err(|e| Error::usage(format!("{}: cannot copy the layout: {e}", dir.display())))
    }

    /// Starts the manager, logger and proxy (once), each in its directory with its console
    /// output in `zeek.out` there, and waits until they are peered with each other (else a
    /// record the proxy or the manager logs before the logger is peered would be lost).
    pub fn start(&mut self) -> Result<()> {
        if !self.nodes.is_empty() {
            return Ok(());
        }
        for name in SERVICES {
            let dir = self.log_dir.join(name);
            let out = dir.join("zeek.out");
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out)
                .map_err(Error::file(&out, "cannot open"))?;
            let err = log.try_clone().map_err(Error::file(&out, "cannot open"))?;
            let child = Command::new("zeek")
                .args(&self.args)
                .env("CLUSTER_NODE", name)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .process_group(0)
                .spawn()
                .map_err(|e| Error::runtime(format!("cannot start the Zeek {name}: {e}")))?;
            log::info!("started the Zeek cluster's {name} (pid {})", child.id());
            self.nodes.push((name.to_string(), child));
        }
        let until = Instant::now() + READY_TIMEOUT;
        for (name, child) in &mut self.nodes {
            let ready = self.log_dir.join(name.as_str()).join(READY_FILE);
            let out = self.log_dir.join(name.as_str()).join("zeek.out");
            while !ready.exists() {
                let ended = child.try_wait().ok().flatten();
                if ended.is_some() || Instant::now() >= until {
                    let how = ended.map_or_else(
                        || format!("is not peered after {READY_TIMEOUT:?}"),
                        |s| format!("ended at its start ({s})"),
                    );
                    return Err(Error::runtime(format!(
                        "the Zeek cluster's {name} {how}; see {}",
                        out.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        log::info!("the Zeek cluster's manager, logger and proxy are peered");
        Ok(())
    }

    /// SIGTERM to the manager, logger and proxy; waits up to a minute for each (then SIGKILL).
    /// Fails if one had ended before or does not exit cleanly.
    pub fn stop(&mut self) -> Result<()> {
        let mut first_err = None;
        for (name, child) in self.nodes.iter_mut().rev() {
            let before = child.try_wait().ok().flatten();
            if before.is_none() {
                let _ = signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
            let until = Instant::now() + STOP_GRACE;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                }
            };
            let problem = match (before, status) {
                (Some(s), _) => Some(format!("had ended during the run ({s})")),
                (None, Some(s)) if s.success() => None,
                (None, Some(s)) => Some(format!("ended with {s} after SIGTERM")),
                (None, None) => Some(format!("ignored SIGTERM for {STOP_GRACE:?}")),
            };
            if let Some(p) = problem {
                let msg = format!(
                    "the Zeek cluster's {name} {p} (see {})",
                    self.log_dir.join(name.as_str()).join("zeek.out").display()
                );
                log::error!("{msg}");
                first_err.get_or_insert(Error::runtime(msg));
            } else {
                log::info!("the Zeek cluster's {name} finished");
            }
        }
        self.nodes.clear();
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for ZeekCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_every_node() {
        // Ports in SERVICES order: logger, manager, proxy.
        let l = layout([1000, 1001, 1002], 2);
        for node in [
            r#"["logger"] = [$node_type=Cluster::LOGGER, $ip=127.0.0.1, $p=1000/tcp, $manager="manager"],"#,
            r#"["manager"] = [$node_type=Cluster::MANAGER, $ip=127.0.0.1, $p=1001/tcp],"#,
            r#"["proxy"] = [$node_type=Cluster::PROXY, $ip=127.0.0.1, $p=1002/tcp, $manager="manager"],"#,
            r#"["worker-0"] = [$node_type=Cluster::WORKER, $ip=127.0.0.1, $manager="manager"],"#,
            r#"["worker-1"] = [$node_type=Cluster::WORKER, $ip=127.0.0.1, $manager="manager"],"#,
        ] {
            assert!(l.contains(node), "{node} not in {l}");
        }
        assert!(!l.contains("worker-2"), "{l}");
        assert!(
            l.starts_with("redef Cluster::manager_is_logger = F;"),
            "{l}"
        );
        let p = free_ports().unwrap();
        assert!(p[0] != p[1] && p[1] != p[2] && p[0] != p[2], "{p:?}");
    }
}
