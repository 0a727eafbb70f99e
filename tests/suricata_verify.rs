//! The suricata-verify test cases of the corpus (OISF/suricata-verify, 47 cases) as the judge of
//! shardcap's fidelity: every case runs with Suricata once over its pcap, as suricata-verify's
//! run.py runs it, and through `shardcap run --exec` with 1, 2, 4 and 7 Suricata instances; the
//! case's `filter` checks are counted over the eve records of the one instance and over the union
//! of the shards' records. A case that passes directly must pass through shardcap at every N.
//!
//! Each case and N gets a line (failures list every differing check), then a summary. Cases and
//! checks skipped by their `requires:` are listed with the reason; `stats` checks (per-process
//! counters) are listed as not evaluated; over several instances the values of `pcap_cnt` and
//! `flow_id` (numbered per process) are not compared.

mod common;
mod ids_support;
mod suricata_verify_support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use common::{corpus_dir, finish, spawn, ChildGuard, Run};
use ids_support::shard_dirs;
use suricata_verify_support::{
    evaluate, exec_template, load, Case, Check, Judge, Plan, Suricata, Verdict,
};

/// Shard counts each case runs with.
const SHARDS: [usize; 4] = [1, 2, 4, 7];
/// Cases run at the same time (each runs up to 7 Suricata instances at once).
const WORKERS: usize = 3;
/// Fewer direct passes than this means the runner, not Suricata, is at fault (45 of the 47 cases
/// run with Suricata 7.0.10, two need Suricata 8, and all 45 pass).
const MIN_DIRECT_PASSES: usize = 40;

/// What happened to one case.
enum Outcome {
    Skipped(String),
    FailsDirectly,
    /// Passed directly; whether each N in [`SHARDS`] passed.
    Compared(Vec<bool>),
}

/// One case's report lines and outcome.
struct Report {
    name: String,
    lines: String,
    outcome: Outcome,
}

/// The last lines of a process's stderr, for a message.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n      ")
}

/// Appends each failed check of `verdict` to `lines`.
fn list_failures(lines: &mut String, verdict: &Verdict) {
    for f in &verdict.failures {
        writeln!(lines, "      {f}").unwrap();
    }
}

/// Suricata run as run.py runs it: in the case directory, over the pcap, logging to `out`.
fn direct(case: &Case, out: &Path) -> Run {
    std::fs::create_dir_all(out).unwrap();
    let mut cmd = Command::new("suricata");
    cmd.current_dir(&case.dir)
        .args(&case.args)
        .arg("-r")
        .arg(&case.pcap)
        .arg("-l")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    finish(ChildGuard::start(&mut cmd))
}

/// The same Suricata command on each of `n` shards: `shardcap run -n N --exec ...` with the
/// defaults (flow key, tunnels); the shard log directories.
fn through_shardcap(
    case: &Case,
    n: usize,
    log_dir: &Path,
) -> Result<(Vec<PathBuf>, &'static str), String> {
    let template = exec_template(case);
    let (n_text, log_text) = (n.to_string(), log_dir.display().to_string());
    let pcap = case.pcap.display().to_string();
    let args = [
        "run",
        "-n",
        &n_text,
        "--exec",
        &template,
        "--log-dir",
        &log_text,
        &pcap,
    ];
    let run = finish(spawn(&args));
    // Exit 3: done, with damaged input reported and skipped (as Suricata skips it too).
    if run.code != 0 && run.code != 3 {
        return Err(format!(
            "shardcap exited {}:\n      {}",
            run.code,
            tail(&run.stderr, 6)
        ));
    }
    let note = if run.code == 3 {
        " (damaged input skipped: exit 3)"
    } else {
        ""
    };
    Ok((shard_dirs(log_dir, n), note))
}

/// Runs one case directory: directly, then through shardcap at every N.
fn run_case(dir: &Path, suricata: &Suricata) -> Report {
    let started = Instant::now();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut lines = String::new();
    let case = match load(dir, suricata) {
        Plan::Skip(reason) => {
            writeln!(lines, "{name}: skipped: {reason}").unwrap();
            return Report {
                name,
                lines,
                outcome: Outcome::Skipped(reason),
            };
        }
        Plan::Run(case) => case,
    };
    for check in &case.checks {
        if let Check::NotEvaluated { what, reason } = check {
            let what: String = what.chars().take(120).collect();
            writeln!(lines, "{name}: not evaluated ({reason}): {what}").unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("direct");
    let run = direct(&case, &out);
    if run.code != 0 {
        writeln!(
            lines,
            "{name}: direct FAIL: suricata exited {}:\n      {}",
            run.code,
            tail(&run.stderr, 6)
        )
        .unwrap();
        return Report {
            name,
            lines,
            outcome: Outcome::FailsDirectly,
        };
    }
    let verdict = evaluate(&case, &[out], Judge::Exact);
    if !verdict.passed() {
        writeln!(
            lines,
            "{name}: direct FAIL ({} of {} filters)",
            verdict.failures.len(),
            verdict.evaluated
        )
        .unwrap();
        list_failures(&mut lines, &verdict);
        return Report {
            name,
            lines,
            outcome: Outcome::FailsDirectly,
        };
    }
    writeln!(lines, "{name}: direct pass ({} filters)", verdict.evaluated).unwrap();
    let mut passes = Vec::new();
    for n in SHARDS {
        let log_dir = tmp.path().join(format!("shardcap-n{n}"));
        match through_shardcap(&case, n, &log_dir) {
            Err(why) => {
                writeln!(lines, "{name}: N={n} FAIL: {why}").unwrap();
                passes.push(false);
            }
            Ok((dirs, note)) => {
                let v = evaluate(&case, &dirs, Judge::Union);
                let ignored = if v.ignored.is_empty() {
                    String::new()
                } else {
                    let keys: Vec<&str> = v.ignored.iter().map(String::as_str).collect();
                    format!(" ({} not compared)", keys.join(", "))
                };
                if v.passed() {
                    writeln!(lines, "{name}: N={n} pass{ignored}{note}").unwrap();
                } else {
                    writeln!(
                        lines,
                        "{name}: N={n} FAIL ({} of {} filters){ignored}{note}",
                        v.failures.len(),
                        v.evaluated
                    )
                    .unwrap();
                    list_failures(&mut lines, &v);
                }
                passes.push(v.passed());
            }
        }
    }
    writeln!(lines, "{name}: {:.1} s", started.elapsed().as_secs_f64()).unwrap();
    Report {
        name,
        lines,
        outcome: Outcome::Compared(passes),
    }
}

#[test]
fn suricata_verify_cases_pass_through_shardcap_as_they_pass_directly() {
    let started = Instant::now();
    let suricata = Suricata::probe();
    let root = corpus_dir().join("suricata-verify");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("test.yaml").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases under {}", root.display());

    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(dir) = dirs.get(i) else { break };
                let report = run_case(dir, &suricata);
                eprint!("{}", report.lines);
                reports.lock().unwrap().push(report);
            });
        }
    });
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by(|a, b| a.name.cmp(&b.name));

    let (v, elapsed) = (suricata.version, started.elapsed().as_secs_f64());
    let mut summary = format!(
        "\nsuricata-verify through shardcap: {} cases, Suricata {}.{}.{}, {elapsed:.0} s\n",
        reports.len(),
        v.0,
        v.1,
        v.2
    );
    let names = |pick: &dyn Fn(&Outcome) -> bool| -> Vec<&str> {
        reports
            .iter()
            .filter(|r| pick(&r.outcome))
            .map(|r| r.name.as_str())
            .collect()
    };
    let direct_passes = names(&|o| matches!(o, Outcome::Compared(_)));
    let direct_fails = names(&|o| matches!(o, Outcome::FailsDirectly));
    writeln!(summary, "  pass directly: {}", direct_passes.len()).unwrap();
    writeln!(
        summary,
        "  fail directly: {} {direct_fails:?}",
        direct_fails.len()
    )
    .unwrap();
    for r in &reports {
        if let Outcome::Skipped(reason) = &r.outcome {
            writeln!(summary, "  skipped: {} ({reason})", r.name).unwrap();
        }
    }
    writeln!(
        summary,
        "  {:>3} | {:>4} | {:>4} | failing",
        "N", "pass", "fail"
    )
    .unwrap();
    let mut any_failure = false;
    for (i, n) in SHARDS.iter().enumerate() {
        let failing = names(&|o| matches!(o, Outcome::Compared(p) if !p[i]));
        any_failure |= !failing.is_empty();
        writeln!(
            summary,
            "  {n:>3} | {:>4} | {:>4} | {}",
            direct_passes.len() - failing.len(),
            failing.len(),
            failing.join(" ")
        )
        .unwrap();
    }
    eprint!("{summary}");

    assert!(
        direct_passes.len() >= MIN_DIRECT_PASSES,
        "only {} cases pass directly (at least {MIN_DIRECT_PASSES} expected): the runner or the \
         Suricata installation is at fault{summary}",
        direct_passes.len()
    );
    assert!(
        !any_failure,
        "cases that pass with one Suricata fail through shardcap{summary}"
    );
}
