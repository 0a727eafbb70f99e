//! `run --cluster`: nodes claim a job's partitions through leases in a real redis-server and
//! together write what one run with `-n M*N` writes, byte for byte, when a node is killed (a
//! standby takes over), stopped past its lease (it writes nothing when resumed), or Redis restarts
//! mid-run; `ctl status` shows the job; TLS and Sentinel connections work; with `--ids suricata
//! --ship` into the noida-db stand-in, the nodes index the documents of one `-n M` run although one
//! died with its Suricata.

mod common;
mod redis_support;
mod ship_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    address_pair, files, finish, pile, read_stream, spawn, wait_for, wait_until, ChildGuard, Run,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use redis_support::{expect_exit, watch_stderr, RedisServer, TlsRedis};
use serde_json::Value;
use ship_support::{Kind, Server};

/// Partitions, and shards a partition.
const M: u32 = 3;
const N: usize = 2;
/// The nodes' lease.
const LEASE: &str = "2s";
const LEASE_S: f64 = 2.0;

/// A job: its pile, the reference run's shards, and where the nodes write.
struct Job {
    tmp: tempfile::TempDir,
    url: String,
    name: String,
    /// Extra Redis options of every command (a CA...).
    redis_args: Vec<String>,
    want: BTreeMap<String, Vec<u8>>,
    packets: u64,
}

impl Job {
    /// A pile cataloged (one batch, sealed) for job `name` at `url`, and the shards of one run
    /// with `-n M*N` over the same files.
    fn new(url: &str, name: &str, redis_args: &[&str], size: u64) -> Job {
        let job = Job::uncataloged(url, name, redis_args, size);
        let r = job.enqueue(&[job.pile().display().to_string()], true);
        assert!(r.contains("cataloged 9 files as batch 0"), "{r}");
        job
    }

    /// A pile for job `name` (its catalog left empty), and the shards of one run with `-n M*N`
    /// over it.
    fn uncataloged(url: &str, name: &str, redis_args: &[&str], size: u64) -> Job {
        let mut job = Job::bare(url, name, redis_args);
        let inputs = pile(&job.pile(), size, 11);
        let whole = job.tmp.path().join("whole");
        fs::create_dir_all(&whole).unwrap();
        let o = format!("file:{}/g{{shard}}.pcap", whole.display());
        let total = (M as usize * N).to_string();
        let mut args = vec!["run", "-n", &total, "-o", &o];
        args.extend(inputs.iter().map(String::as_str));
        let r = common::shardcap(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        job.want = files(&whole);
        job.packets = (job.want.keys())
            .map(|f| read_stream(&whole.join(f)).unwrap().packets.len() as u64)
            .sum();
        job
    }

    /// Job `name` with nothing in its temp dir but the nodes' output directory.
    fn bare(url: &str, name: &str, redis_args: &[&str]) -> Job {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("parts")).unwrap();
        Job {
            tmp,
            url: url.to_string(),
            name: name.to_string(),
            redis_args: redis_args.iter().map(|s| s.to_string()).collect(),
            want: BTreeMap::new(),
            packets: 0,
        }
    }

    fn pile(&self) -> PathBuf {
        self.tmp.path().join("pile")
    }

    /// `ctl enqueue [--seal] PATHS`, which must succeed; returns its stdout.
    fn enqueue(&self, paths: &[String], seal: bool) -> String {
        let mut args = vec!["enqueue"];
        args.extend(paths.iter().map(String::as_str));
        if seal {
            args.push("--seal");
        }
        let r = self.ctl(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    }

    fn parts(&self) -> PathBuf {
        self.tmp.path().join("parts")
    }

    /// `shardcap ctl --cluster URL --job NAME ARGS`.
    fn ctl(&self, args: &[&str]) -> Run {
        let mut all = vec!["ctl", "--cluster", &self.url, "--job", &self.name];
        all.extend(self.redis_args.iter().map(String::as_str));
        all.extend(args);
        finish(spawn(&all))
    }

    /// `ctl status --json`.
    fn status(&self) -> Value {
        let r = self.ctl(&["status", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// A node `id` of the job writing its shards to files, with extra run options (pacing...).
    fn node(&self, id: &str, extra: &[&str]) -> ChildGuard {
        let o = format!("file:{}/g{{global}}.pcap", self.parts().display());
        self.member(id, N, &[&["-o", &o], extra].concat())
    }

    /// A node `id` of the job with `shards` shards a partition and extra run options.
    fn member(&self, id: &str, shards: usize, extra: &[&str]) -> ChildGuard {
        let state = self.tmp.path().join("state");
        let partitions = M.to_string();
        let n = shards.to_string();
        let mut args = vec![
            "run",
            "--cluster",
            &self.url,
            "--job",
            &self.name,
            "--partitions",
            &partitions,
            "-n",
            &n,
            "--state",
            state.to_str().unwrap(),
            "--lease",
            LEASE,
            "--node-id",
            id,
            "--checkpoint-interval",
            "50ms",
        ];
        args.extend(self.redis_args.iter().map(String::as_str));
        args.extend(extra);
        spawn(&args)
    }

    /// The nodes' shards are the reference run's, byte for byte, and every address pair (the flow
    /// key) is on one partition.
    fn check_outputs(&self) {
        let got = files(&self.parts());
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            self.want.keys().collect::<Vec<_>>()
        );
        for (name, bytes) in &self.want {
            assert!(
                got[name] == *bytes,
                "{name}: the cluster's file differs from the -n {} run's",
                M as usize * N
            );
        }
        let mut nodes: HashMap<(Vec<u8>, Vec<u8>), BTreeSet<usize>> = HashMap::new();
        for g in 0..M as usize * N {
            let stream = read_stream(&self.parts().join(format!("g{g}.pcap"))).unwrap();
            for p in &stream.packets {
                if let Some(pair) = address_pair(&p.data) {
                    nodes.entry(pair).or_default().insert(g / N);
                }
            }
        }
        assert!(nodes.len() > 20, "{} flows", nodes.len());
        assert!(
            nodes.values().all(|n| n.len() == 1),
            "a flow on several partitions"
        );
    }

    /// The partition `k`'s entry in a status.
    fn part(status: &Value, k: u32) -> &Value {
        &status["parts"][k as usize]
    }

    /// Waits until some partition is held with packets written, not done; returns it and its node.
    fn busy_partition(&self) -> (u32, String) {
        wait_for("a partition under way", || {
            let s = self.status();
            (0..M).find_map(|k| {
                let p = Self::part(&s, k);
                (p["state"] == "held" && p["packets"].as_u64() > Some(0))
                    .then(|| (k, p["node"].as_str().unwrap().to_string()))
            })
        })
    }

    /// Waits, at most `bound`, until partition `k` is held or done by `node` under `fence`.
    fn wait_owner(&self, k: u32, node: &str, fence: u64, bound: Duration) -> Duration {
        let what = format!("{node} under fence {fence}");
        self.wait_claim(k, &what, bound, |p| {
            p["node"] == node && p["fence"].as_u64() == Some(fence)
        })
        .1
    }

    /// Waits, at most `bound`, until partition `k`'s entry in the status satisfies `claimed`
    /// (`what` it is); returns the entry and the time it took.
    fn wait_claim(
        &self,
        k: u32,
        what: &str,
        bound: Duration,
        claimed: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let start = Instant::now();
        loop {
            let s = self.status();
            let p = Self::part(&s, k);
            if claimed(p) {
                return (p.clone(), start.elapsed());
            }
            assert!(
                start.elapsed() < bound,
                "partition {k} not claimed by {what} within {bound:?}: {p}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts nodes `ids` of `job`, with extra options.
fn nodes(job: &Job, ids: &[&str], extra: &[&str]) -> BTreeMap<String, ChildGuard> {
    ids.iter()
        .map(|id| (id.to_string(), job.node(id, extra)))
        .collect()
}

/// Waits for every node's end; each must exit 0. Returns their stderr by node.
fn all_succeed(nodes: BTreeMap<String, ChildGuard>) -> BTreeMap<String, String> {
    nodes
        .into_iter()
        .map(|(id, child)| {
            let r = finish(child);
            assert_eq!(r.code, 0, "node {id}: {}", r.stderr);
            (id, r.stderr)
        })
        .collect()
}

/// Pacing that keeps a partition busy for a few seconds (every packet of the pile is merged by
/// every node).
const PACED: [&str; 2] = ["--max-pps", "300"];

#[test]
fn three_nodes_and_a_standby_write_what_one_run_writes() {
    let redis = RedisServer::start();
    let job = Job::new(&redis.url(), "union", &[], 512 << 10);
    let before = job.status();
    assert_eq!(before["partitions"], Value::Null, "{before}");
    assert_eq!(before["catalog_files"], 9);
    assert_eq!(before["sealed"], true);
    let started = nodes(&job, &["a", "b", "c", "standby"], &["--max-pps", "4000"]);
    let logs = all_succeed(started);
    job.check_outputs();
    let claimed: Vec<&String> = (logs.iter())
        .filter(|(_, l)| l.contains("claimed"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(claimed.len(), M as usize, "one partition a node: {logs:?}");
    assert!(
        logs.values().any(|l| l.contains("standing by")),
        "one node stood by: {logs:?}"
    );

    // Status: every partition done, the figures of the run.
    let s = job.status();
    assert_eq!(
        (s["partitions"].as_u64(), s["shards"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(s["done"], 3, "{s}");
    let mut packets = 0;
    for k in 0..M {
        let p = Job::part(&s, k);
        assert_eq!(p["state"], "done", "{p}");
        assert_eq!(p["fence"], 1, "{p}");
        assert_eq!(
            (p["batches"].as_u64(), p["lag_batches"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(p["files"], 9, "{p}");
        assert!(claimed.contains(&&p["node"].as_str().unwrap().to_string()));
        packets += p["packets"].as_u64().unwrap();
    }
    assert_eq!(packets, job.packets, "every packet on one partition");
    let text = job.ctl(&["status"]);
    assert!(
        text.stdout
            .contains("job union: 3 partitions, 3 done; catalog 9 files in 1 batches, sealed"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("partition 2: done"), "{}", text.stdout);

    // The job's shape is fixed: a node with another -n is refused, naming both.
    let o = format!("file:{}/x{{global}}.pcap", job.tmp.path().display());
    let state = job.tmp.path().join("state");
    let url = redis.url();
    let node = |n: &str, extra: &[&str]| {
        let mut argv = vec![
            "run",
            "--cluster",
            &url,
            "--job",
            "union",
            "--partitions",
            "3",
            "-n",
            n,
            "-o",
            &o,
            "--state",
            state.to_str().unwrap(),
        ];
        argv.extend_from_slice(extra);
        finish(spawn(&argv))
    };
    let r = node("4", &[]);
    expect_exit(&r, 2);
    assert!(r.stderr.contains("-n 2 (this node: 4)"), "{}", r.stderr);
    // Files come from the catalog only.
    let r = node("2", &["/tmp"]);
    expect_exit(&r, 2);
    assert!(r.stderr.contains("catalog"), "{}", r.stderr);
    // A sealed catalog takes no more.
    let r = job.ctl(&["enqueue", job.pile().to_str().unwrap()]);
    expect_exit(&r, 2);
    assert!(r.stderr.contains("sealed"), "{}", r.stderr);
}

#[test]
fn a_killed_node_is_taken_over_by_the_standby() {
    let redis = RedisServer::start();
    let job = Job::new(&redis.url(), "kill", &[], 512 << 10);
    let mut running = nodes(&job, &["a", "b", "c"], &PACED);
    let (k, victim) = job.busy_partition();
    let standby = job.node("standby", &PACED);
    // A lease held with progress recorded: what status shows of a partition under way.
    let s = job.status();
    let p = Job::part(&s, k);
    assert_eq!(
        (p["node"].as_str(), p["fence"].as_u64()),
        (Some(victim.as_str()), Some(1))
    );
    assert!(p["lease_left_s"].as_f64().unwrap() <= LEASE_S, "{p}");
    assert!(p["checkpoint_age_s"].as_f64().is_some(), "{p}");
    running.get_mut(&victim).unwrap().kill();
    running.remove(&victim);
    // The lease lapses within LEASE; the standby looks every third of it.
    let took = job.wait_owner(k, "standby", 2, Duration::from_secs_f64(3.0 * LEASE_S));
    eprintln!("partition {k} taken over {took:?} after node {victim} was killed");
    running.insert("standby".into(), standby);
    let logs = all_succeed(running);
    assert!(logs["standby"].contains(&format!("partition {k}/3 claimed (fence 2)")));
    job.check_outputs();
    assert_eq!(job.status()["done"], 3);
}

/// SIGTERM stops a node gracefully and releases its lease at once: a node started later claims
/// the partition without waiting for a lapse and resumes it from its journal.
#[test]
fn a_node_stopped_by_sigterm_releases_its_partition() {
    let redis = RedisServer::start();
    let job = Job::new(&redis.url(), "term", &[], 512 << 10);
    let mut running = nodes(&job, &["a", "b", "c"], &PACED);
    let (k, victim) = job.busy_partition();
    let stopped = running.remove(&victim).unwrap();
    stopped.signal(Signal::SIGTERM);
    let r = finish(stopped);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = job.status();
    let p = Job::part(&s, k);
    assert_eq!(p["state"], "free", "released at the stop: {p}");
    running.insert("late".into(), job.node("late", &PACED));
    let logs = all_succeed(running);
    assert!(logs["late"].contains(&format!("partition {k}/3 claimed (fence 2)")));
    job.check_outputs();
}

#[test]
fn a_node_stopped_past_its_lease_writes_nothing_when_resumed() {
    let redis = RedisServer::start();
    let job = Job::new(&redis.url(), "stop", &[], 512 << 10);
    let mut running = nodes(&job, &["a", "b", "c"], &PACED);
    let (k, victim) = job.busy_partition();
    let standby = job.node("standby", &PACED);
    let paused = running.remove(&victim).unwrap();
    paused.signal(Signal::SIGSTOP);
    job.wait_owner(k, "standby", 2, Duration::from_secs_f64(3.0 * LEASE_S));
    running.insert("standby".into(), standby);
    wait_for("the standby to finish the partition", || {
        (Job::part(&job.status(), k)["state"] == "done").then_some(())
    });
    let mine = |n: usize| job.parts().join(format!("g{}.pcap", k as usize * N + n));
    let before: Vec<Vec<u8>> = (0..N).map(|n| fs::read(mine(n)).unwrap()).collect();
    paused.signal(Signal::SIGCONT);
    let r = finish(paused);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = format!(
        "partition {k}: lease lost to standby (fence 2 > ours 1); stopping without writing"
    );
    assert!(r.stderr.contains(&line), "{}", r.stderr);
    let after: Vec<Vec<u8>> = (0..N).map(|n| fs::read(mine(n)).unwrap()).collect();
    assert!(
        before == after,
        "the resumed node wrote to its old partition's files"
    );
    all_succeed(running);
    job.check_outputs();
}

#[test]
fn nodes_wait_through_a_redis_restart_and_carry_on() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--save", ""]);
    let job = Job::new(&redis.url(), "outage", &[], 512 << 10);
    let running = nodes(&job, &["a", "b", "c"], &PACED);
    job.busy_partition();
    // Longer than the lease: the leases expire in Redis and are taken again by their nodes.
    redis.outage(Duration::from_secs_f64(1.5 * LEASE_S));
    let logs = all_succeed(running);
    assert!(
        logs.values().any(|l| l.contains("unreachable")),
        "the nodes saw Redis go: {logs:?}"
    );
    job.check_outputs();
    let s = job.status();
    assert_eq!(s["done"], 3, "{s}");
    for k in 0..M {
        assert_eq!(
            Job::part(&s, k)["fence"],
            1,
            "no partition changed hands: {s}"
        );
    }
}

/// `--ids suricata --ship` into the noida-db stand-in: three nodes of one Suricata each and a
/// standby index the documents of one `-n 3` run, with the same `_id`s, although one node died
/// with its Suricata (`kill -9`, a dead machine) after some of its records were indexed: the
/// standby replays the partition from its start into a fresh Suricata, and the records indexed
/// before the death are not indexed twice.
#[test]
fn a_killed_node_with_suricata_and_shipping_indexes_what_one_run_indexes() {
    let server = Server::start(Kind::Noida);
    let redis = RedisServer::start();
    let job = Job::bare(&redis.url(), "ship", &[]);
    let pile = common::pile(&job.pile(), 1 << 20, 5);
    job.enqueue(&pile, true);
    let shipping = ship_support::suricata_shipping(&server);
    let shipping: Vec<&str> = shipping.iter().map(String::as_str).collect();

    // The reference: one node, -n M.
    let single = job.tmp.path().join("single");
    let total = M.to_string();
    let mut args = vec![
        "run",
        "-n",
        &total,
        "--index-prefix",
        "single-",
        "--log-dir",
    ];
    args.extend([single.to_str().unwrap()].iter().chain(&shipping));
    args.extend(pile.iter().map(String::as_str));
    let r = common::shardcap(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = ship_support::documents(&server, "single-*");
    assert!(
        want.len() > 500,
        "too few records to prove anything: {}",
        want.len()
    );

    // Nodes of one Suricata each, paced so that a partition takes seconds.
    let logs = job.tmp.path().join("part-{partition}/logs");
    let node = |id: &str| {
        let mut extra = vec!["--log-dir", logs.to_str().unwrap(), "--run-id", id];
        extra.extend(["--index-prefix", "cluster-", "--max-pps", "600"]);
        extra.extend(&shipping);
        let mut child = job.member(id, 1, &extra);
        let stderr = watch_stderr(&mut child);
        (child, stderr)
    };
    let mut running: BTreeMap<String, _> = ["a", "b", "c"]
        .into_iter()
        .map(|id| (id.to_string(), node(id)))
        .collect();
    let start = Instant::now();
    let (k, victim) = job.busy_partition();
    let standby = node("standby");
    let mine = format!("/part-{k}/");
    wait_until("some of the busy partition's records indexed", || {
        server.docs("cluster-*").iter().any(|d| {
            d["_source"]["shardcap"]["file"]
                .as_str()
                .unwrap()
                .contains(&mine)
        })
    });
    eprintln!(
        "killing node {victim} {:?} after the start",
        start.elapsed()
    );
    // A dead machine: the node and its Suricata.
    let (mut dead, _) = running.remove(&victim).unwrap();
    let suricata = common::children(dead.pid());
    assert_eq!(suricata.len(), 1, "one Suricata: {suricata:?}");
    dead.kill();
    kill(Pid::from_raw(suricata[0]), Signal::SIGKILL).unwrap();
    assert_eq!(
        Job::part(&job.status(), k)["state"],
        "held",
        "killed before its end"
    );
    // The standby, or a node done with its own partition.
    let bound = Duration::from_secs_f64(3.0 * LEASE_S);
    let (p, after) = job.wait_claim(k, "another node", bound, |p| {
        p["fence"] == 2 && p["node"] != victim.as_str()
    });
    let taker = p["node"].as_str().unwrap().to_string();
    eprintln!("partition {k} taken over by {taker} {after:?} after node {victim} died");
    running.insert("standby".into(), standby);
    let mut ended = BTreeMap::new();
    for (id, (child, stderr)) in running {
        let code = finish(child).code;
        let stderr = stderr.lock().unwrap().clone();
        assert_eq!(code, 0, "node {id}: {stderr}");
        ended.insert(id, stderr);
    }
    let took = &ended[&taker];
    assert!(
        took.contains(&format!("partition {k}/3 claimed (fence 2)")),
        "{took}"
    );
    assert!(
        took.contains("replayed from its start into fresh instances"),
        "{took}"
    );
    let part = job.tmp.path().join(format!("part-{k}/logs"));
    assert!(
        part.join(".replaced-1/shard-0/eve.json").is_file(),
        "the killed node's logs are set aside"
    );
    assert_eq!(job.status()["done"], 3);

    let got = ship_support::documents(&server, "cluster-*");
    assert_eq!(
        got.len(),
        want.len(),
        "the nodes' document count differs from one run's"
    );
    assert!(
        got.keys().eq(want.keys()),
        "the nodes' _ids differ from one run's"
    );
    let by = |run: &str| {
        (got.values())
            .filter(|(dir, _, r)| *dir == format!("part-{k}") && r == run)
            .count()
    };
    assert!(
        by(&victim) > 0,
        "nothing indexed before the kill: the replay proved nothing"
    );
    assert!(by(&taker) > 0, "nothing indexed after the takeover");
    eprintln!(
        "{} documents; partition {k}: {} indexed by node {victim} before its death, {} by {taker}",
        got.len(),
        by(&victim),
        by(&taker)
    );
    let dirs: BTreeSet<&String> = got.values().map(|d| &d.0).collect();
    assert_eq!(
        dirs.len(),
        M as usize,
        "documents of every partition: {dirs:?}"
    );
}

/// One node over TLS does every partition, one after another.
#[test]
fn a_node_over_tls_does_every_partition() {
    let tls = TlsRedis::start("pw");
    let url = format!("rediss://127.0.0.1:{}", tls.tls_port);
    let ca = tls.ca.clone();
    let pw = tls.path("pw");
    fs::write(&pw, "pw\n").unwrap();
    let job = Job::new(
        &url,
        "tls",
        &["--redis-ca", &ca, "--redis-password-file", &pw],
        256 << 10,
    );
    let logs = all_succeed(nodes(&job, &["solo"], &[]));
    assert_eq!(
        logs["solo"].matches("claimed").count(),
        M as usize,
        "{logs:?}"
    );
    job.check_outputs();
}

/// A Sentinel of the redis-server binary names the master the nodes use.
#[test]
fn nodes_find_redis_through_sentinel() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let conf = dir.path().join("sentinel.conf");
    fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor main 127.0.0.1 {} 1\n",
            dir.path().display(),
            redis.port
        ),
    )
    .unwrap();
    let mut sentinel = ChildGuard::start(
        std::process::Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(std::process::Stdio::null()),
    );
    let sentinel_url = format!("redis://127.0.0.1:{port}");
    wait_for("the Sentinel to know the master", || {
        assert!(
            sentinel.running(),
            "`redis-server --sentinel` exited: this redis-server build cannot run a Sentinel"
        );
        let mut c = redis::Client::open(sentinel_url.as_str())
            .ok()?
            .get_connection()
            .ok()?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("main")
            .query::<Vec<String>>(&mut c)
            .ok()
            .filter(|a| a.len() == 2)
    });
    let url = format!("redis+sentinel://127.0.0.1:{port}/main");
    let job = Job::new(&url, "sentinel", &[], 256 << 10);
    all_succeed(nodes(&job, &["x", "y"], &[]));
    job.check_outputs();
    // The job's keys are on the master.
    let mut c = redis.con();
    let done: u64 = redis::cmd("SCARD")
        .arg("PCAPDJ:job:sentinel:done")
        .query(&mut c)
        .unwrap();
    assert_eq!(done, u64::from(M));
}

/// A catalog filled while the nodes run, in two batches: the nodes write what one node writes
/// with every shard (`--partitions 1 -n M*N`) over the same batches, whatever the timing.
#[test]
fn batches_added_while_nodes_run_give_the_same_streams() {
    let redis = RedisServer::start();
    let mut job = Job::uncataloged(&redis.url(), "batches", &[], 256 << 10);
    let mut names: Vec<String> = fs::read_dir(job.pile())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    names.sort();
    let (first, second) = names.split_at(4);

    // The reference: one node, one partition of M*N shards, both batches cataloged beforehand.
    let one = Job::bare(&redis.url(), "one-node", &[]);
    one.enqueue(first, false);
    one.enqueue(second, true);
    let o = format!("file:{}/g{{global}}.pcap", one.parts().display());
    let state = one.tmp.path().join("state");
    let total = (M as usize * N).to_string();
    let r = finish(spawn(&[
        "run",
        "--cluster",
        &one.url,
        "--job",
        &one.name,
        "--partitions",
        "1",
        "-n",
        &total,
        "-o",
        &o,
        "--state",
        state.to_str().unwrap(),
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    job.want = files(&one.parts());
    assert_eq!(job.want.len(), M as usize * N);

    job.enqueue(first, false);
    let running = nodes(&job, &["a", "b", "c"], &[]);
    wait_for("every partition to stream the first batch", || {
        let s = job.status();
        (s["partitions"] == M && (0..M).all(|k| Job::part(&s, k)["batches"] == 1)).then_some(())
    });
    let s = job.status();
    assert_eq!(
        s["done"], 0,
        "an open catalog keeps every partition going: {s}"
    );
    job.enqueue(second, true);
    all_succeed(running);
    job.check_outputs();
    let s = job.status();
    assert_eq!(s["catalog_batches"], 2, "{s}");
    for k in 0..M {
        assert_eq!(Job::part(&s, k)["batches"], 2, "{s}");
    }
}
