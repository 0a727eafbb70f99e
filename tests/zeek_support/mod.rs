//! Helpers of the Zeek tests (beside tests/common and tests/ids_support): the installed Zeek 8.2
//! and 8.0 (LTS), the `pcapdir::` plugin built against each, one Zeek over a capture, and Zeek's
//! logs read into comparable sets.

#![allow(dead_code)] // each test file uses its own part

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::ids_support::repo;

/// The logs compared between one Zeek and N.
pub const COMPARED_LOGS: [&str; 7] = ["conn", "dns", "http", "ssl", "files", "weird", "notice"];

/// conn.log fields compared: the flow, its service, packets and IP bytes each way, history.
const CONN_FIELDS: [&str; 10] = [
    "ts",
    "community_id",
    "proto",
    "service",
    "conn_state",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "history",
];

/// Fields that differ between Zeek processes for the same traffic (random identifiers, the
/// node name, write times); dropped from every other log.
const PER_PROCESS_FIELDS: [&str; 12] = [
    "uid",
    "uids",
    "fuid",
    "fuids",
    "conn_uids",
    "orig_fuids",
    "resp_fuids",
    "cert_chain_fuids",
    "client_cert_chain_fuids",
    "peer",
    "_node",
    "_write_ts",
];

/// An installed Zeek the tests run.
#[derive(Debug, Clone)]
pub struct ZeekInstall {
    /// `bin/zeek`.
    pub bin: PathBuf,
    /// The 8.0 LTS build, which needs ZEEKPATH (it is relocated).
    pub lts: bool,
}

impl ZeekInstall {
    /// Zeek 8.2: `SHARDCAP_TEST_ZEEK`, default /opt/zeek/bin/zeek.
    pub fn latest() -> Self {
        Self::find("SHARDCAP_TEST_ZEEK", "/opt/zeek/bin/zeek", false)
    }

    /// Zeek 8.0 (LTS): `SHARDCAP_TEST_ZEEK_LTS`, default /opt/zeek-8.0/bin/zeek.
    pub fn lts() -> Self {
        Self::find("SHARDCAP_TEST_ZEEK_LTS", "/opt/zeek-8.0/bin/zeek", true)
    }

    fn find(var: &str, default: &str, lts: bool) -> Self {
        let bin = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
        assert!(
            bin.is_file(),
            "Zeek not found at {} (set {var}; scripts/ci/install-deps installs Zeek 8.2 at \
             /opt/zeek and 8.0 at /opt/zeek-8.0 from ../shared/zeek)",
            bin.display()
        );
        ZeekInstall { bin, lts }
    }

    /// The installation prefix (`bin/..`).
    pub fn prefix(&self) -> PathBuf {
        self.bin.parent().unwrap().parent().unwrap().to_path_buf()
    }

    /// Puts this Zeek first in `cmd`'s PATH (shardcap's preset runs `zeek` from PATH), with the
    /// ZEEKPATH the relocated LTS build needs, and no inherited plugin path.
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin.parent().unwrap().to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap())
            .env_remove("ZEEK_PLUGIN_PATH");
        if self.lts {
            let p = self.prefix().join("share/zeek");
            let p = p.display();
            let zeekpath = format!(".:{p}:{p}/policy:{p}/site:{p}/builtin-plugins");
            cmd.env("ZEEKPATH", zeekpath)
        } else {
            cmd.env_remove("ZEEKPATH")
        }
    }

    /// A `zeek` command of this install.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        self.apply(&mut cmd);
        cmd
    }

    /// The `pcapdir::` plugin built against this Zeek with its own `configure` and CMake (once
    /// per test binary and install), checked with `zeek -N`.
    pub fn plugin(&self) -> PathBuf {
        static BUILT: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        let built = built.get_or_insert_with(HashMap::new);
        if let Some(dir) = built.get(&self.bin) {
            return dir.clone();
        }
        let src = repo().join("zeek-plugin");
        // One build directory per checkout and Zeek: CMake refuses a cache made for another source.
        let mut h = DefaultHasher::new();
        (&src, &self.bin).hash(&mut h);
        let build =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("zeek-plugin-{:016x}", h.finish()));
        let mut configure = Command::new("sh");
        configure
            .arg(src.join("configure"))
            .arg(format!("--builddir={}", build.display()))
            .current_dir(&src);
        let mut make = Command::new("cmake");
        make.arg("--build").arg(&build).arg("-j2");
        for cmd in [&mut configure, &mut make] {
            let out = self
                .apply(cmd)
                .output()
                .unwrap_or_else(|e| panic!("{cmd:?}: {e} (cmake, make and g++ are needed)"));
            assert!(
                out.status.success(),
                "building zeek-plugin/ against {}: {cmd:?} failed:\n{}{}",
                self.bin.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = self
            .command()
            .args(["-N", "Shardcap::PcapDir"])
            .env("ZEEK_PLUGIN_PATH", &build)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Shardcap::PcapDir") && text.contains("dynamic"),
            "{} -N does not list the built plugin:\n{text}{}",
            self.bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        built.insert(self.bin.clone(), build.clone());
        build
    }

    /// One Zeek over `input` as shardcap's preset runs it (JSON logs, community-id), logging to
    /// `dir`.
    pub fn once(&self, input: &Path, dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        let out = self
            .command()
            .arg("-C")
            .arg("-r")
            .arg(input)
            .args([
                "LogAscii::use_json=T",
                "policy/protocols/conn/community-id-logging",
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} -r {}: {}\n{}",
            self.bin.display(),
            input.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What a set of Zeek instances logged: per log, each record's projection with its count.
#[derive(Debug, Default)]
pub struct ZeekLogs {
    pub logs: BTreeMap<&'static str, BTreeMap<String, usize>>,
}

impl ZeekLogs {
    /// Reads the [`COMPARED_LOGS`] (JSON) in each of `dirs`; a log that is absent has no records.
    pub fn read(dirs: &[PathBuf]) -> ZeekLogs {
        let mut logs = ZeekLogs::default();
        for name in COMPARED_LOGS {
            let records = logs.logs.entry(name).or_default();
            for d in dirs {
                let path = d.join(format!("{name}.log"));
                let Ok(f) = File::open(&path) else { continue };
                for line in BufReader::new(f).lines() {
                    let line = line.unwrap();
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()));
                    *records.entry(project(name, v)).or_default() += 1;
                }
            }
        }
        logs
    }

    /// Records in log `name`.
    pub fn count(&self, name: &str) -> usize {
        self.logs.get(name).map_or(0, |r| r.values().sum())
    }

    /// Records in all compared logs.
    pub fn total(&self) -> usize {
        COMPARED_LOGS.iter().map(|n| self.count(n)).sum()
    }

    /// Prints every difference from `reference` and returns how many records differ.
    pub fn diff(&self, reference: &ZeekLogs, label: &str) -> usize {
        let mut total = 0;
        let empty = BTreeMap::new();
        for name in COMPARED_LOGS {
            let mine = self.logs.get(name).unwrap_or(&empty);
            let theirs = reference.logs.get(name).unwrap_or(&empty);
            let mut differ = 0;
            for (side, a, b) in [("the reference", theirs, mine), (label, mine, theirs)] {
                for (rec, &n) in a {
                    let m = b.get(rec).copied().unwrap_or(0);
                    if n > m {
                        eprintln!("  {label}: {name}.log: {}x only in {side}: {rec}", n - m);
                        differ += n - m;
                    }
                }
            }
            eprintln!(
                "{label}: {name}.log {} records, reference {}, {differ} differences",
                self.count(name),
                reference.count(name)
            );
            total += differ;
        }
        total
    }
}

/// The comparable projection of one record of log `name`, as canonical JSON (sorted keys).
fn project(name: &str, v: serde_json::Value) -> String {
    let serde_json::Value::Object(mut map) = v else {
        panic!("{name}.log: not a JSON object: {v}")
    };
    if name == "conn" {
        map.retain(|k, _| CONN_FIELDS.contains(&k.as_str()));
    } else {
        map.retain(|k, _| !PER_PROCESS_FIELDS.contains(&k.as_str()));
    }
    let sorted: BTreeMap<String, serde_json::Value> = map.into_iter().collect();
    serde_json::to_string(&sorted).unwrap()
}
