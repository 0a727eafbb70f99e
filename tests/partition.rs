//! `--partition K/M`: M runs over the same inputs write together what one run with `-n M*N`
//! writes, byte for byte, each flow on one node; a partition stopped or killed mid-run resumes
//! from its `--state`, which refuses another partition; the example Kubernetes and Slurm
//! manifests run command lines shardcap accepts.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use common::{address_pair, files, pile, read_stream, shardcap, spawn, wait_for, ChildGuard};
use nix::sys::signal::Signal;
use shardcap::cli::{Cli, Command};
use shardcap_flow::Partition;

/// Partitions and shards a partition in the union tests.
const M: u32 = 3;
const N: usize = 2;

/// Corpus captures (Ethernet, microseconds): mixed applications, IPv4 and IPv6 fragments, a
/// fragrouted session, an ICMP error quoting a flow, tunnels.
fn corpus_inputs() -> Vec<String> {
    [
        "pcapplusplus/realistic-mixed-http-dns-2013.pcap",
        "ndpi/realistic-mixed-apps-1kxun.pcap",
        "pcapplusplus/ipv4-fragments-http-request.pcap",
        "pcapplusplus/ipv6-fragments.pcap",
        "tcpreplay/fragroute-rewritten-http.pcap",
        "zeek/icmp-destunreach-quoting-udp.pcap",
        "suricata-verify/vxlan-decoder-02/vxlan.pcap",
        "suricata-verify/bug-5633-gre-02/gre-sample.pcap",
    ]
    .iter()
    .map(|p| common::corpus(p).display().to_string())
    .collect()
}

/// `shardcap run ARGS INPUTS`, which must succeed.
fn run_ok(args: &[&str], inputs: &[String]) {
    let mut all: Vec<String> = vec!["run".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(inputs.iter().cloned());
    let r = shardcap(&all);
    assert_eq!(r.code, 0, "shardcap {all:?}\n{}", r.stderr);
}

/// The M partitions of `-n N` together write what one `-n M*N` run writes: the same global shard
/// files, byte for byte; each partition writes only its own; the stats count the rest as skipped;
/// every address pair (the default flow key) is on exactly one node.
fn partitions_equal_one_run(inputs: &[String], tmp: &Path) {
    let whole = tmp.join("whole");
    let parts = tmp.join("parts");
    fs::create_dir_all(&whole).unwrap();
    fs::create_dir_all(&parts).unwrap();
    let total = (M as usize * N).to_string();
    let stats = tmp.join("whole.json");
    let o = format!("file:{}/g{{shard}}.pcap", whole.display());
    run_ok(
        &[
            "-n",
            &total,
            "-o",
            &o,
            "--stats-file",
            stats.to_str().unwrap(),
        ],
        inputs,
    );
    let packets = common::stats(&stats)["packets"].as_u64().unwrap();
    let n = N.to_string();
    let o = format!("file:{}/g{{global}}.pcap", parts.display());
    let mut written = 0;
    for k in 0..M {
        let before: BTreeSet<String> = files(&parts).into_keys().collect();
        let part = format!("{k}/{M}");
        let stats = tmp.join(format!("part-{k}.json"));
        run_ok(
            &[
                "--partition",
                &part,
                "-n",
                &n,
                "-o",
                &o,
                "--stats-file",
                stats.to_str().unwrap(),
            ],
            inputs,
        );
        let new: BTreeSet<String> = files(&parts)
            .into_keys()
            .filter(|f| !before.contains(f))
            .collect();
        let own: BTreeSet<String> = (0..N)
            .map(|s| format!("g{}.pcap", k as usize * N + s))
            .collect();
        assert_eq!(new, own, "partition {part} writes its own global shards");
        let v = common::stats(&stats);
        let mine = v["packets"].as_u64().unwrap();
        assert_eq!(
            v["flow"]["partition_skipped"].as_u64().unwrap(),
            packets - mine,
            "{part}"
        );
        written += mine;
    }
    assert_eq!(written, packets, "every packet on one partition");
    let (want, got) = (files(&whole), files(&parts));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        assert!(
            got[name] == *bytes,
            "{name}: the partition's file differs from the -n {total} run's"
        );
    }
    // Every flow on exactly one node.
    let mut nodes: HashMap<(Vec<u8>, Vec<u8>), BTreeSet<usize>> = HashMap::new();
    for g in 0..M as usize * N {
        let stream = read_stream(&parts.join(format!("g{g}.pcap"))).unwrap();
        for p in &stream.packets {
            if let Some(pair) = address_pair(&p.data) {
                nodes.entry(pair).or_default().insert(g / N);
            }
        }
    }
    assert!(nodes.len() > 20, "{} flows", nodes.len());
    let used: BTreeSet<usize> = nodes.values().flatten().copied().collect();
    assert_eq!(used.len(), M as usize, "flows on every node");
    let split: Vec<_> = nodes.iter().filter(|(_, n)| n.len() > 1).collect();
    assert!(
        split.is_empty(),
        "flows on several nodes: {:?}",
        &split[..split.len().min(3)]
    );
}

#[test]
fn partitions_of_a_generated_pile_equal_one_run_with_every_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = pile(&tmp.path().join("pile"), 512 << 10, 7);
    partitions_equal_one_run(&inputs, tmp.path());
}

#[test]
fn partitions_of_corpus_captures_equal_one_run_with_every_shard() {
    let tmp = tempfile::tempdir().unwrap();
    partitions_equal_one_run(&corpus_inputs(), tmp.path());
}

/// One partition (`0/1`) is a plain run, byte for byte, whatever the placeholders.
#[test]
fn one_partition_is_a_plain_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut inputs = pile(&tmp.path().join("pile"), 256 << 10, 3);
    inputs.extend(corpus_inputs());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    run_ok(
        &[
            "-n",
            "3",
            "-o",
            &format!("file:{}/s{{shard}}.pcap", a.display()),
        ],
        &inputs,
    );
    let o = format!("file:{}/s{{global}}.pcap", b.display());
    run_ok(&["--partition", "0/1", "-n", "3", "-o", &o], &inputs);
    assert_eq!(files(&a).len(), 3);
    assert!(
        files(&a) == files(&b),
        "--partition 0/1 differs from a plain run"
    );
}

/// A partition run: `shardcap run --partition 1/3 -n 2` into `out`, with extra options.
fn partition_args(out: &Path, inputs: &[String], extra: &[&str]) -> Vec<String> {
    let o = format!("file:{}/g{{global}}.pcap", out.display());
    let head = ["run", "--partition", "1/3", "-n", "2", "-o", &o];
    (head.iter().chain(extra))
        .map(|s| s.to_string())
        .chain(inputs.iter().cloned())
        .collect()
}

/// Packets a running partition wrote, from its stats file.
fn written(stats: &Path) -> Option<u64> {
    let text = fs::read_to_string(stats).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["packets"].as_u64()
}

/// A partition stopped (SIGTERM) or killed (SIGKILL) mid-run, restarted on the same `--state`,
/// ends with the outputs of an uninterrupted run of the partition: nothing lost, nothing
/// repeated. Its state refuses another partition or another partition count.
#[test]
fn a_stopped_partition_resumes_from_its_state() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = pile(&tmp.path().join("pile"), 1 << 20, 5);
    let reference = tmp.path().join("reference");
    fs::create_dir_all(&reference).unwrap();
    let r = shardcap(partition_args(&reference, &inputs, &[]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = files(&reference);
    let total: u64 = want
        .keys()
        .map(|f| read_stream(&reference.join(f)).unwrap().packets.len() as u64)
        .sum();
    for (i, sig) in [Signal::SIGTERM, Signal::SIGKILL].into_iter().enumerate() {
        let out = tmp.path().join(format!("out-{i}"));
        let state = tmp.path().join(format!("state-{i}"));
        let stats = tmp.path().join(format!("stats-{i}.json"));
        fs::create_dir_all(&out).unwrap();
        let state_args = [
            "--state",
            state.to_str().unwrap(),
            "--checkpoint-interval",
            "50ms",
        ];
        let paced = [
            "--max-pps",
            "4000",
            "--stats-interval",
            "20ms",
            "--stats-file",
            stats.to_str().unwrap(),
        ];
        let args = partition_args(&out, &inputs, &[&state_args[..], &paced[..]].concat());
        let mut run: ChildGuard = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let at = wait_for("a third of the partition's packets", || {
            written(&stats).filter(|&n| n >= total / 3)
        });
        run.stop(sig);
        assert!(at < total, "{sig}: stopped before the end");
        let r = shardcap(partition_args(&out, &inputs, &state_args));
        assert_eq!(r.code, 0, "{sig}: restart\n{}", r.stderr);
        let got = files(&out);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{sig}"
        );
        for (name, bytes) in &want {
            assert!(
                got[name] == *bytes,
                "{sig}: {name} differs from an uninterrupted run's"
            );
        }
        for other in ["2/3", "1/4"] {
            let o = format!("file:{}/g{{global}}.pcap", out.display());
            let mut args = vec!["run", "--partition", other, "-n", "2", "-o", &o];
            args.extend(state_args);
            args.extend(inputs.iter().map(String::as_str));
            let r = shardcap(&args);
            assert_eq!(r.code, 2, "{other}: {}", r.stderr);
            assert!(
                r.stderr.contains("--partition 1/3")
                    && r.stderr.contains(&format!("--partition {other}")),
                "{}",
                r.stderr
            );
        }
    }
}

/// The run arguments of a manifest as shardcap's parser sees them: partition and `--state`.
fn parsed(argv: &[String]) -> (Partition, PathBuf, Vec<String>) {
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Command::Run(run) = cli.command else {
        panic!("{argv:?}: not a run")
    };
    let state = run
        .state
        .clone()
        .unwrap_or_else(|| panic!("{argv:?}: no --state"));
    (run.partition, state, run.inputs.clone())
}

/// Checks the command lines of partitions `0..m`: each is accepted, runs its own partition of
/// `m`, keeps its journal apart under `shared`, and reads inputs from `shared`.
fn check_partitions(m: u32, shared: &str, argv: impl Fn(u32) -> Vec<String>) {
    let mut states = BTreeSet::new();
    for k in 0..m {
        let (partition, state, inputs) = parsed(&argv(k));
        assert_eq!(partition, Partition::new(k, m).unwrap());
        assert!(
            state.starts_with(shared),
            "{}: on the shared storage",
            state.display()
        );
        assert!(
            !inputs.is_empty() && inputs.iter().all(|i| i.starts_with(shared)),
            "{inputs:?}"
        );
        states.insert(state);
    }
    assert_eq!(
        states.len(),
        m as usize,
        "one --state directory a partition"
    );
}

fn script(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_kubernetes_indexed_job_runs_every_partition() {
    let job: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&script("k8s-indexed-job.yaml")).unwrap();
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let m = spec["completions"].as_u64().expect("completions") as u32;
    assert_eq!(
        spec["parallelism"].as_u64(),
        Some(m as u64),
        "every partition at once"
    );
    assert!(m > 1);
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let env = container["env"].as_sequence().expect("env");
    assert!(env
        .iter()
        .any(|e| e["name"].as_str() == Some("JOB_COMPLETION_INDEX")));
    let mount = container["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("a volume mount");
    let volume = container["volumeMounts"][0]["name"].as_str().unwrap();
    let shared = (pod["volumes"].as_sequence().expect("volumes").iter())
        .find(|v| v["name"].as_str() == Some(volume))
        .expect("the mounted volume");
    assert!(
        shared["persistentVolumeClaim"]["claimName"].is_string(),
        "a shared claim"
    );
    let words: Vec<String> = (container["command"].as_sequence().into_iter().flatten())
        .chain(container["args"].as_sequence().into_iter().flatten())
        .map(|w| w.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(words[0], "shardcap");
    check_partitions(m, mount, |k| {
        let index = k.to_string();
        words
            .iter()
            .map(|w| w.replace("$(JOB_COMPLETION_INDEX)", &index))
            .collect()
    });
}

/// `$NAME` and `${NAME}` of `vars` expanded, then split into words (double quotes group).
fn shell_words(line: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let mut expanded = String::new();
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        expanded.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let (name, after) = match tail.strip_prefix('{') {
            Some(t) => t.split_at(t.find('}').expect("closing brace")),
            None => tail.split_at(
                tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len()),
            ),
        };
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("${name} is not set"));
        expanded.push_str(value);
        rest = after.strip_prefix('}').unwrap_or(after);
    }
    expanded.push_str(rest);
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in expanded.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

#[test]
fn the_slurm_array_runs_every_partition() {
    let text = script("slurm-array.sh").replace("\\\n", " ");
    let array = (text.lines())
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .expect("an #SBATCH --array directive");
    let (first, last) = array.split_once('-').expect("--array=0-(M-1)");
    assert_eq!(first, "0");
    let m: u32 = last.trim().parse::<u32>().unwrap() + 1;
    assert!(m > 1);
    // The directives come before the first command, as sbatch reads them.
    let first_command = text
        .lines()
        .position(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert!(text
        .lines()
        .skip(first_command)
        .all(|l| !l.starts_with("#SBATCH")));
    check_partitions(m, "/shared", |k| {
        let mut vars = HashMap::from([("SLURM_ARRAY_TASK_ID".to_string(), k.to_string())]);
        for line in text.lines().skip(first_command) {
            let line = line.trim();
            if let Some((name, value)) = line.split_once('=').filter(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            }) {
                let value = shell_words(value, &vars).join(" ");
                vars.insert(name.to_string(), value);
            } else if let Some(cmd) = line.strip_prefix("exec ") {
                let words = shell_words(cmd, &vars);
                assert_eq!(words[..2], ["shardcap", "run"]);
                return words;
            }
        }
        panic!("no `exec shardcap run` line")
    });
    assert!(
        text.contains("--partition \"$K/$M\""),
        "the partition from the array index"
    );
}

/// Every partition reads every input: a Redis queue (one file to one node) and a retention that
/// removes watched files are refused.
#[test]
fn intakes_that_take_files_from_other_partitions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (spool, out) = (
        tmp.path().join("spool"),
        tmp.path().join("out-{shard}.pcap"),
    );
    fs::create_dir_all(&spool).unwrap();
    let o = format!("file:{}", out.display());
    let (spool, o) = (spool.to_str().unwrap(), o.as_str());
    let cases: [&[&str]; 3] = [
        &["--auth", "redis"],
        &["--watch", spool, "--retention", "delete"],
        &["--watch", spool, "--retain-age", "1h"],
    ];
    for extra in cases {
        let mut args = vec!["run", "--partition", "1/2", "-n", "2", "-o", o];
        args.extend(extra);
        let r = shardcap(&args);
        assert_eq!(r.code, 2, "{extra:?}: {}", r.stderr);
        assert!(r.stderr.contains("--partition 1/2"), "{}", r.stderr);
    }
}
