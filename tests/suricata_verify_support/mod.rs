//! A runner of suricata-verify test cases (OISF/suricata-verify, copied into the corpus), after
//! that project's run.py: a case's `test.yaml` (requires, args, checks), its pcap, rules and
//! suricata.yaml become a Suricata command line, and its `filter` checks are counted over eve
//! records. Whatever this runner does not understand panics, so that no case passes by accident.

#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Suricata's configuration when a case brings none.
pub const DEFAULT_CONFIG: &str = "/etc/suricata/suricata.yaml";
/// Where the classification and reference files of the installed Suricata live.
const ETC: &str = "/etc/suricata";
/// Eve fields whose values differ from process to process (packet numbers, flow ids): a check on
/// their value is not evaluated over the records of several instances.
pub const PER_PROCESS_KEYS: [&str; 2] = ["pcap_cnt", "flow_id"];

/// A Suricata version, as run.py parses it (missing parts are 0).
pub type Version = (u64, u64, u64);

/// The installed Suricata: its version and build features.
#[derive(Debug)]
pub struct Suricata {
    pub version: Version,
    pub features: BTreeSet<String>,
}

impl Suricata {
    /// Asks `suricata -V` and `suricata --build-info`; panics if Suricata is not installed.
    pub fn probe() -> Suricata {
        let run = |arg: &str| {
            let out = Command::new("suricata")
                .arg(arg)
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "suricata {arg}: {e}: Suricata 7 must be installed \
                     (scripts/ci/install-deps installs it)"
                    )
                });
            assert!(out.status.success(), "suricata {arg}: {}", out.status);
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let version_text = run("-V");
        let version = parse_version(
            version_text
                .split("version ")
                .nth(1)
                .unwrap_or_else(|| panic!("suricata -V said {version_text:?}")),
        );
        let mut features = BTreeSet::new();
        let info = run("--build-info");
        for line in info.lines() {
            if let Some(list) = line.strip_prefix("Features:") {
                features.extend(list.split_whitespace().map(str::to_string));
            }
            // run.py also counts each "X support: yes" line as feature X.
            if let Some((name, val)) = line.split_once(" support:") {
                if val.trim().starts_with("yes") {
                    features.insert(name.trim().to_string());
                }
            }
        }
        Suricata { version, features }
    }

    /// The reason `requires` (a test's or a check's) is not met, if it is not.
    fn unmet(&self, requires: &Value, case_dir: &Path) -> Option<String> {
        let Some(map) = requires.as_object() else {
            assert!(requires.is_null(), "requires is not a map: {requires}");
            return None;
        };
        for (key, want) in map {
            let version = || parse_version(&scalar(want));
            let strings = || -> Vec<String> {
                match want {
                    Value::Array(items) => items.iter().map(scalar).collect(),
                    other => vec![scalar(other)],
                }
            };
            let reason = match key.as_str() {
                "min-version" => (self.version < version())
                    .then(|| format!("requires at least version {}", scalar(want))),
                "lt-version" => (self.version >= version())
                    .then(|| format!("for versions before {}", scalar(want))),
                "gt-version" => (self.version <= version())
                    .then(|| format!("for versions after {}", scalar(want))),
                "version" => {
                    let want = scalar(want);
                    let parts: Vec<u64> = want.split('.').map(|p| p.parse().unwrap()).collect();
                    let have = [self.version.0, self.version.1, self.version.2];
                    (parts != have[..parts.len()]).then(|| format!("only for version {want}"))
                }
                "features" => strings()
                    .into_iter()
                    .find(|f| !self.features.contains(f))
                    .map(|f| format!("requires feature {f}")),
                "files" => strings()
                    .into_iter()
                    .find(|f| !case_dir.join(f).exists())
                    .map(|f| format!("requires file {f}")),
                "env" => strings()
                    .into_iter()
                    .find(|v| std::env::var_os(v).is_none())
                    .map(|v| format!("requires environment variable {v}")),
                "os" => (!std::env::consts::OS.starts_with(&scalar(want).to_lowercase()))
                    .then(|| format!("requires os {}", scalar(want))),
                "arch" => (!std::env::consts::ARCH.starts_with(&scalar(want).to_lowercase()))
                    .then(|| format!("requires arch {}", scalar(want))),
                "script" | "lambda" => Some(format!("requires a {key} (not run by this runner)")),
                // Whether a pcap is needed is decided with the pcap itself.
                "pcap" => None,
                other => panic!("unknown requirement {other:?} in {}", case_dir.display()),
            };
            if reason.is_some() {
                return reason;
            }
        }
        None
    }
}

/// run.py's version parse: up to three dotted numbers, missing ones 0.
fn parse_version(text: &str) -> Version {
    let mut parts = text.trim().split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next(), next())
}

/// A YAML scalar as text (numbers as YAML wrote them, so 7.0 stays "7.0").
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => panic!("expected a scalar, got {other}"),
    }
}

/// A case ready to run.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub pcap: PathBuf,
    /// Arguments before `-r PCAP -l LOGDIR`, in run.py's order.
    pub args: Vec<String>,
    pub checks: Vec<Check>,
}

/// What the runner does with a case directory.
#[derive(Debug)]
pub enum Plan {
    Run(Case),
    /// Not run, with the reason (an unmet requirement, nothing to feed).
    Skip(String),
}

/// One entry of `checks:`.
#[derive(Debug)]
pub enum Check {
    /// A `filter` check to evaluate.
    Filter(Filter),
    /// Listed, not evaluated, with the reason.
    NotEvaluated { what: String, reason: String },
}

/// A `filter` check: `count` eve records of `filename` match every matcher.
#[derive(Debug)]
pub struct Filter {
    pub filename: String,
    pub count: u64,
    pub matchers: Vec<(String, Value)>,
    /// The filter as the test wrote it (for messages).
    pub text: String,
}

/// The case in `dir`, read as run.py reads it, or why it is skipped.
pub fn load(dir: &Path, suricata: &Suricata) -> Plan {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let text = fs::read_to_string(dir.join("test.yaml"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let yaml: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{name}: test.yaml does not parse: {e}"));
    let test = yaml.as_object().expect("test.yaml is a map");
    for key in test.keys() {
        match key.as_str() {
            "requires" | "args" | "checks" | "pcap" | "rules" | "skip" | "command"
            | "exit-code" | "setup" | "pre-check" | "unix-commands" | "env" | "count" | "retry" => {
            }
            // Misplaced outside `requires:` in some cases; honoured as a requirement.
            "min-version" | "lt-version" => {}
            other => panic!("{name}: test.yaml key {other:?} is not understood"),
        }
    }
    let requires = test.get("requires").cloned().unwrap_or(Value::Null);
    if let Some(reason) = suricata.unmet(&requires, dir) {
        return Plan::Skip(reason);
    }
    for key in ["min-version", "lt-version"] {
        if let Some(v) = test.get(key) {
            let req = serde_json::json!({ key: v });
            if let Some(reason) = suricata.unmet(&req, dir) {
                return Plan::Skip(reason);
            }
        }
    }
    if let Some(reason) = skipped_by(test.get("skip"), suricata) {
        return Plan::Skip(reason);
    }
    for (key, reason) in [
        (
            "command",
            "runs its own command instead of Suricata on a pcap",
        ),
        ("setup", "needs a setup script"),
        ("pre-check", "needs a pre-check script"),
        ("unix-commands", "drives Suricata through its unix socket"),
    ] {
        if test.contains_key(key) {
            return Plan::Skip(reason.into());
        }
    }
    for key in ["env", "count", "retry"] {
        assert!(
            !test.contains_key(key),
            "{name}: test.yaml key {key:?} is not supported"
        );
    }
    if let Some(code) = test.get("exit-code") {
        assert_eq!(code.as_u64(), Some(0), "{name}: exit-code is not supported");
    }

    let pcap = match test.get("pcap") {
        Some(Value::String(p)) => Some(dir.join(p)),
        Some(Value::Bool(false)) => None,
        Some(other) => panic!("{name}: pcap: {other} is not understood"),
        None => {
            let mut found: Vec<PathBuf> = files_ending(dir, &[".pcap", ".pcapng"]);
            assert!(found.len() <= 1, "{name}: more than one pcap: {found:?}");
            found.pop()
        }
    };
    let Some(pcap) = pcap else {
        return Plan::Skip("no pcap: nothing to shard".into());
    };

    let mut args: Vec<String> = Vec::new();
    for arg in test
        .get("args")
        .map(|a| a.as_array().expect("args is a list").clone())
        .unwrap_or_default()
    {
        let arg = scalar(&arg);
        assert!(
            !arg.contains(['$', '\'', '"', '\\']),
            "{name}: argument {arg:?} needs a shell or variable expansion: not supported"
        );
        args.extend(arg.split_whitespace().map(str::to_string));
    }
    let etc = Path::new(ETC);
    for (key, file) in [
        ("classification-file", "classification.config"),
        ("reference-config-file", "reference.config"),
    ] {
        if etc.join(file).exists() {
            args.push("--set".into());
            args.push(format!("{key}={}", etc.join(file).display()));
        }
    }
    args.push("--init-errors-fatal".into());
    // Several instances run at once: none may claim the configuration's fixed command socket.
    args.extend(["--set".into(), "unix-command.enabled=no".into()]);
    if name.contains("ips") {
        args.push("--simulate-ips".into());
    }
    // Checksum validation off unless the case says otherwise: Suricata's automatic mode decides
    // from the share of bad checksums each process sees.
    if !args.iter().any(|a| a == "-k") {
        args.extend(["-k".into(), "none".into()]);
    }
    // One packet thread: cheap to start; a case that names its run mode keeps it.
    if !args.iter().any(|a| a.contains("runmode")) {
        args.extend(["--runmode".into(), "single".into()]);
    }
    let config = if dir.join("suricata.yaml").exists() {
        dir.join("suricata.yaml")
    } else {
        PathBuf::from(DEFAULT_CONFIG)
    };
    args.push("-c".into());
    args.push(config.display().to_string());
    args.extend(rules_args(&name, dir, test.get("rules"), suricata));

    let checks = test
        .get("checks")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{name}: no checks"))
        .iter()
        .map(|c| check(&name, c, dir, suricata))
        .collect();
    Plan::Run(Case {
        name,
        dir: dir.to_path_buf(),
        pcap,
        args,
        checks,
    })
}

/// The reason a `skip:` entry applies, if one does.
fn skipped_by(skip: Option<&Value>, suricata: &Suricata) -> Option<String> {
    match skip? {
        Value::Bool(true) => Some("skipped by default".into()),
        Value::Bool(false) => None,
        Value::Array(entries) => entries.iter().find_map(|e| {
            let msg = e.get("msg").map(scalar);
            if let Some(uid) = e.get("uid").and_then(Value::as_u64) {
                let me = nix::unistd::getuid().as_raw() as u64;
                return (me == uid).then(|| msg.unwrap_or_else(|| format!("not for uid {uid}")));
            }
            if let Some(f) = e.get("feature").map(scalar) {
                return suricata
                    .features
                    .contains(&f)
                    .then(|| msg.unwrap_or_else(|| format!("not for feature {f}")));
            }
            panic!("skip entry {e} is not understood")
        }),
        other => panic!("skip: {other} is not understood"),
    }
}

/// The files of `dir` whose names end in one of `endings`, sorted.
fn files_ending(dir: &Path, endings: &[&str]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            endings.iter().any(|e| n.ends_with(e))
        })
        .collect();
    found.sort();
    found
}

/// run.py's rule selection: the `rules:` file, else the one `*.rules` file of the case (a file
/// named `minV.rules` only from version V on), else detection off.
fn rules_args(name: &str, dir: &Path, rules: Option<&Value>, suricata: &Suricata) -> Vec<String> {
    let files = match rules {
        Some(Value::String(f)) => vec![dir.join(f)],
        Some(Value::Null | Value::Bool(false)) => Vec::new(),
        Some(other) => panic!("{name}: rules: {other} is not understood"),
        None => files_ending(dir, &[".rules"]),
    };
    match files.as_slice() {
        [] => vec!["--disable-detection".into()],
        [file] => {
            let base = file.file_name().unwrap().to_string_lossy();
            let usable = match base.strip_prefix("min") {
                Some(v) => suricata.version >= parse_version(v.trim_end_matches(".rules")),
                None => true,
            };
            assert!(
                !base.ends_with("firewall.rules"),
                "{name}: firewall rules are not supported"
            );
            if usable {
                vec!["-S".into(), file.display().to_string()]
            } else {
                vec!["--disable-detection".into()]
            }
        }
        more => panic!("{name}: more than one rules file: {more:?}"),
    }
}

/// One entry of `checks:`.
fn check(name: &str, entry: &Value, dir: &Path, suricata: &Suricata) -> Check {
    let map = entry.as_object().expect("a check is a map");
    assert_eq!(map.len(), 1, "{name}: check {entry} has several kinds");
    let (kind, body) = map.iter().next().unwrap();
    let not_evaluated = |reason: &str| Check::NotEvaluated {
        what: format!("{kind}: {body}"),
        reason: reason.into(),
    };
    match kind.as_str() {
        "filter" => {}
        "stats" => return not_evaluated("stats counters are per process"),
        "shell" => return not_evaluated("shell checks are not run"),
        "file-compare" => return not_evaluated("file-compare checks are not run"),
        other => panic!("{name}: check kind {other:?} is not understood"),
    }
    let f = body.as_object().expect("a filter is a map");
    for key in f.keys() {
        assert!(
            ["count", "match", "filename", "requires", "comment"].contains(&key.as_str()),
            "{name}: filter key {key:?} is not understood"
        );
    }
    if let Some(reason) = f.get("requires").and_then(|r| suricata.unmet(r, dir)) {
        return not_evaluated(&format!("skipped: {reason}"));
    }
    let count = f
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{name}: filter without a count: {body}"));
    let matchers = f
        .get("match")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{name}: filter without a match map: {body}"))
        .iter()
        .map(|(k, v)| {
            validate_key(name, k);
            (k.clone(), v.clone())
        })
        .collect();
    let filename = f.get("filename").map_or("eve.json".into(), scalar);
    assert!(
        !Path::new(&filename).is_absolute(),
        "{name}: absolute filename {filename}"
    );
    let mut shown = f.get("match").unwrap().clone();
    if let Some(o) = shown.as_object_mut() {
        for v in o.values_mut() {
            // Long expected strings (payloads) are cut for the messages.
            if let Value::String(s) = v {
                if s.chars().count() > 80 {
                    *v = Value::String(format!("{}...", s.chars().take(60).collect::<String>()));
                }
            }
        }
    }
    let text = if filename == "eve.json" {
        shown.to_string()
    } else {
        format!("{filename}: {shown}")
    };
    Check::Filter(Filter {
        filename,
        count,
        matchers,
        text,
    })
}

/// Operators a match key may end in, after run.py.
const STRING_OPS: [&str; 4] = ["__contains", "__find", "__startswith", "__endswith"];
const NUMBER_OPS: [&str; 4] = ["__gt", "__gte", "__lt", "__lte"];

/// Panics on a match key this runner would misread.
fn validate_key(name: &str, key: &str) {
    if key == "has-key" || key == "not-has-key" {
        return;
    }
    for part in key.split('.') {
        let bare = part.split('[').next().unwrap();
        assert!(
            !bare.starts_with("__")
                || bare == "__len"
                || STRING_OPS.contains(&bare)
                || NUMBER_OPS.contains(&bare),
            "{name}: match key {key:?}: {bare} is not understood"
        );
        if let Some((_, idx)) = part.split_once('[') {
            assert!(
                idx.strip_suffix(']')
                    .is_some_and(|i| i.parse::<usize>().is_ok()),
                "{name}: match key {key:?}: index {part} is not understood"
            );
        }
    }
}

/// run.py's find_value: a dotted path with `[N]` indexes; `__len` yields the length (-1 for what
/// has none); an operator suffix stops the walk.
fn find_value(path: &str, event: &Value) -> Option<Value> {
    let mut obj = event;
    for part in path.split('.') {
        if part == "__len" {
            let len = match obj {
                Value::String(s) => s.chars().count() as i64,
                Value::Array(a) => a.len() as i64,
                Value::Object(o) => o.len() as i64,
                _ => -1,
            };
            return Some(Value::from(len));
        }
        if STRING_OPS.contains(&part) || NUMBER_OPS.contains(&part) {
            break;
        }
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
            None => (part, None),
        };
        obj = obj.as_object()?.get(name)?;
        if let Some(i) = index {
            obj = obj.as_array()?.get(i)?;
        }
    }
    Some(obj.clone())
}

/// Python's `==` on JSON-like values: numbers compare by value (1 == 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// How a set of eve records is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// As run.py judges one Suricata's output.
    Exact,
    /// Over several instances' records: values of [`PER_PROCESS_KEYS`] are not compared.
    Union,
}

impl Filter {
    /// The match keys `judge` leaves out.
    pub fn ignored(&self, judge: Judge) -> Vec<&str> {
        self.matchers
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| judge == Judge::Union && is_per_process(k))
            .collect()
    }

    /// run.py's FilterCheck.match.
    fn matches(&self, event: &Value, judge: Judge) -> bool {
        self.matchers.iter().all(|(key, expected)| {
            let has = |k: &Value| find_value(&scalar(k), event).is_some_and(|v| !v.is_null());
            let keys = || match expected {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            if key == "has-key" {
                return keys().iter().all(has);
            }
            if key == "not-has-key" {
                return !keys().iter().any(has);
            }
            if judge == Judge::Union && is_per_process(key) {
                return true;
            }
            let val = find_value(key, event).unwrap_or(Value::Null);
            let suffix = key.rsplit('.').next().unwrap();
            let text = |v: &Value| v.as_str().map(str::to_string);
            match suffix {
                "__find" | "__startswith" | "__endswith" => {
                    let (Some(v), Some(e)) = (text(&val), text(expected)) else {
                        return false;
                    };
                    match suffix {
                        "__find" => v.contains(&e),
                        "__startswith" => v.starts_with(&e),
                        _ => v.ends_with(&e),
                    }
                }
                "__contains" => match (&val, text(expected)) {
                    (Value::String(v), Some(e)) => v.contains(&e),
                    (Value::Array(items), _) => items.iter().any(|i| same(i, expected)),
                    (Value::Object(o), Some(e)) => o.contains_key(&e),
                    _ => false,
                },
                "__gt" | "__gte" | "__lt" | "__lte" => {
                    let (Some(v), Some(e)) = (val.as_f64(), expected.as_f64()) else {
                        return false;
                    };
                    match suffix {
                        "__gt" => v > e,
                        "__gte" => v >= e,
                        "__lt" => v < e,
                        _ => v <= e,
                    }
                }
                _ => same(&val, expected),
            }
        })
    }

    /// How many of `events` match.
    pub fn count(&self, events: &[Value], judge: Judge) -> u64 {
        events.iter().filter(|e| self.matches(e, judge)).count() as u64
    }
}

/// A match key whose value is per process.
fn is_per_process(key: &str) -> bool {
    let head = key.split(['.', '[']).next().unwrap();
    PER_PROCESS_KEYS.contains(&head)
}

/// The outcome of a case's checks over one set of output directories.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Filters evaluated.
    pub evaluated: usize,
    /// Each failed filter: what it expected and got.
    pub failures: Vec<String>,
    /// Keys left out of the comparison (per-process values), once each.
    pub ignored: BTreeSet<String>,
}

impl Verdict {
    /// True when every evaluated filter held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Evaluates `case`'s filters over the union of the records in `dirs` (one directory per
/// Suricata instance). A file that no directory holds fails the filters that name it.
pub fn evaluate(case: &Case, dirs: &[PathBuf], judge: Judge) -> Verdict {
    let mut verdict = Verdict::default();
    for check in &case.checks {
        let Check::Filter(f) = check else { continue };
        verdict.evaluated += 1;
        verdict
            .ignored
            .extend(f.ignored(judge).into_iter().map(str::to_string));
        let Some(events) = read_records(dirs, &f.filename) else {
            verdict
                .failures
                .push(format!("{} does not exist; filter {}", f.filename, f.text));
            continue;
        };
        let got = f.count(&events, judge);
        if got != f.count {
            verdict
                .failures
                .push(format!("expected {} got {got}: {}", f.count, f.text));
        }
    }
    verdict
}

/// The JSON lines of `filename` in every one of `dirs` that has it, or None if none has it.
fn read_records(dirs: &[PathBuf], filename: &str) -> Option<Vec<Value>> {
    let mut found = false;
    let mut events = Vec::new();
    for d in dirs {
        let path = d.join(filename);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        found = true;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            events.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display())),
            );
        }
    }
    found.then_some(events)
}

/// `s` as one `sh` word.
pub fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The `--exec` template that runs `case` on a shard as run.py runs it on its pcap: in the case
/// directory, reading `{input}` and logging to `{logdir}`.
pub fn exec_template(case: &Case) -> String {
    let mut cmd = format!(
        "cd {} && exec suricata",
        shell_word(&case.dir.to_string_lossy())
    );
    for a in &case.args {
        cmd.push(' ');
        cmd.push_str(&shell_word(a));
    }
    cmd.push_str(" -r {input} -l {logdir}");
    cmd
}
