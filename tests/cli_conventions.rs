//! The command line as a whole: every numeric and duration flag of every subcommand (enumerated
//! from clap's definition, so a new flag is covered without touching this file) refuses extreme
//! values with a usage error naming it and never panics on the values it accepts; shell
//! completions and manual pages are generated.

mod common;

use std::any::TypeId;
use std::time::Duration;

use clap::CommandFactory;
use shardcap::cli::Cli;

/// One numeric or duration flag: the subcommand path to it, its long name and its value's type.
struct Flag {
    path: Vec<String>,
    long: String,
    ty: TypeId,
}

fn numeric_types() -> Vec<(TypeId, &'static str)> {
    vec![
        (TypeId::of::<u8>(), "255"),
        (TypeId::of::<u16>(), "65535"),
        (TypeId::of::<u32>(), "4294967295"),
        (TypeId::of::<u64>(), "18446744073709551615"),
        (TypeId::of::<usize>(), "18446744073709551615"),
        (TypeId::of::<Duration>(), "876000h"),
    ]
}

/// Every numeric and duration flag, found in clap's definition of the command line.
fn flags() -> Vec<Flag> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Flag>) {
        let types = numeric_types();
        for arg in cmd.get_arguments() {
            let (Some(long), true) = (arg.get_long(), arg.get_action().takes_values()) else {
                continue;
            };
            let parser = arg.get_value_parser().type_id();
            if let Some((ty, _)) = types.iter().find(|(t, _)| parser == *t) {
                out.push(Flag {
                    path: path.clone(),
                    long: format!("--{long}"),
                    ty: *ty,
                });
            }
        }
        for sub in cmd.get_subcommands() {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut out);
    out
}

fn assert_no_panic(what: &str, run: &common::Run) {
    assert_ne!(run.code, 101, "{what}: panicked\n{}", run.stderr);
    assert!(
        !run.stderr.contains("panicked"),
        "{what}: panicked\n{}",
        run.stderr
    );
}

#[test]
fn extreme_values_are_usage_errors_naming_the_flag() {
    let flags = flags();
    for known in [
        "--reorder-window",
        "--shards",
        "--segment-size",
        "--batch-docs",
        "--timeout",
        "--size",
        "--max-pps",
    ] {
        assert!(
            flags.iter().any(|f| f.long == known),
            "{known} not found among the numeric flags: the sweep lost track of clap's definition"
        );
    }
    let extreme = [
        "-1",
        "-5s",
        "NaN",
        "inf",
        "-inf",
        "1e400",
        "99999999999999999999999",
        "99999999999999999999999h",
        "18446744073709551616",
        "99999999999999999999999999G",
        "",
        "0x10",
        "1.5.5",
    ];
    let mut checked = 0;
    for f in &flags {
        for v in extreme {
            let mut args = f.path.clone();
            args.push(format!("{}={v}", f.long));
            let run = common::shardcap(&args);
            let what = args.join(" ");
            assert_no_panic(&what, &run);
            assert_eq!(run.code, 2, "{what}: a usage error\n{}", run.stderr);
            assert!(
                run.stderr.contains(&f.long),
                "{what}: the error names the flag\n{}",
                run.stderr
            );
            checked += 1;
        }
    }
    eprintln!("{} flags, {checked} extreme values refused", flags.len());
}

/// The arguments that make `path` do real but bounded work, with `flag` left out.
fn context(path: &[String], flag: &str, tmp: &std::path::Path) -> Vec<String> {
    let t = |p: &str| tmp.join(p).display().to_string();
    let mut args: Vec<String> = path.to_vec();
    let base: Vec<String> = match path.first().map(String::as_str) {
        Some("run") => vec![
            "-o".into(),
            format!("file:{}", t("s-{shard}.pcap")),
            "samples/sensorA.pcap".into(),
        ],
        Some("ship") => vec!["--out".into(), t("o.ndjson"), "tests/data/ship".into()],
        Some("ctl") => vec!["--redis".into(), "redis://127.0.0.1:1".into()],
        Some("generate") => {
            let mut g = vec!["--out".to_string(), t("gen")];
            for (k, v) in [
                ("--sensors", "1"),
                ("--files-per-sensor", "1"),
                ("--size", "4K"),
                ("--duration", "1s"),
            ] {
                if k != flag {
                    g.extend([k.to_string(), v.to_string()]);
                }
            }
            g
        }
        _ => Vec::new(),
    };
    args.extend(base);
    args
}

#[test]
fn accepted_extremes_never_panic() {
    // Flags whose largest value asks for unbounded work (it is honoured, not refused).
    let unbounded_at_max = ["--files-per-sensor", "--size"];
    let types = numeric_types();
    for f in flags() {
        let max = types.iter().find(|(t, _)| *t == f.ty).unwrap().1;
        let mut values = vec!["0"];
        if !unbounded_at_max.contains(&f.long.as_str()) {
            values.push(max);
        }
        for v in values {
            let tmp = tempfile::tempdir().unwrap();
            let mut args = context(&f.path, &f.long, tmp.path());
            args.push(format!("{}={v}", f.long));
            let what = args.join(" ");
            eprintln!("{what}");
            let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = common::finish(common::spawn(&arg_refs));
            assert_no_panic(&what, &run);
            assert!(
                [0, 1, 2, 3].contains(&run.code),
                "{what}: exit {}\n{}",
                run.code,
                run.stderr
            );
            if run.code == 2 {
                assert!(
                    run.stderr.contains(&f.long),
                    "{what}: a refusal names the flag\n{}",
                    run.stderr
                );
            }
        }
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef shardcap"),
        ("fish", "complete -c shardcap"),
    ] {
        let run = common::shardcap(["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(
            run.stdout.contains(marker),
            "{shell} script:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("reorder-window") && run.stdout.contains("metrics-listen"),
            "{shell}: the flags are completed"
        );
    }
    let run = common::shardcap(["completions", "bash"]);
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("shardcap.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    common::shell(&format!("bash -n {}", script.display()), tmp.path());
}

#[test]
fn manual_pages() {
    let run = common::shardcap(["man"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(".TH shardcap 1"), "{}", run.stdout);
    let dir = tempfile::tempdir().unwrap();
    let run = common::shardcap(["man".as_ref(), dir.path().as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for page in [
        "shardcap.1",
        "shardcap-run.1",
        "shardcap-ship.1",
        "shardcap-ctl.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let run_page = std::fs::read_to_string(dir.path().join("shardcap-run.1")).unwrap();
    assert!(
        run_page.contains("allow\\-root"),
        "run's page lists its flags"
    );
}
