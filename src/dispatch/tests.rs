//! The dispatcher's states driven through a scripted intake: files arriving while it runs, an
//! authorization held back, suspend and resume, a stop, a damaged file. Each test waits on what
//! the dispatcher reports (intake calls, its stats file), never on fixed sleeps.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;

use super::Dispatcher;
use crate::cli::{Cli, Command};
use crate::control::signals::Signals;
use crate::error::{Result, EXIT_OK, EXIT_SKIPPED};
use crate::ids::Consumers;
use crate::input::catalog::Entry;
use crate::input::discover::Candidate;
use crate::input::intake::{Arrivals, Gate, Intake};
use crate::input::FileEnd;
use crate::sink::OutputSpec;
use shardcap_capture::capture::Capture;
use shardcap_flow::Partition;

/// The longest any awaited event may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the dispatcher told its intake.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// It asked whether this file may be read (once per file).
    Asked(PathBuf),
    /// The file was read to its end (true) or not (damaged, skipped).
    Finished(PathBuf, bool),
    /// The run ended (stopped or not).
    Closed(bool),
}

/// An intake the test steers: files come when sent and the intake closes when the sender is
/// dropped; a file named in `held` waits for its authorization until released.
struct Scripted {
    files: Receiver<Vec<PathBuf>>,
    held: Vec<PathBuf>,
    releases: Receiver<PathBuf>,
    asked: Vec<PathBuf>,
    events: Sender<Event>,
}

impl Intake for Scripted {
    fn poll(&mut self, wait: Option<Duration>, _signals: &Signals) -> Result<Arrivals> {
        let got = match wait {
            Some(w) => self.files.recv_timeout(w),
            None => self.files.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            }),
        };
        Ok(match got {
            Ok(paths) => Arrivals::Files(
                paths
                    .into_iter()
                    .map(|path| Candidate {
                        path,
                        explicit: true,
                    })
                    .collect(),
            ),
            Err(RecvTimeoutError::Timeout) => Arrivals::Nothing,
            Err(RecvTimeoutError::Disconnected) => Arrivals::Closed,
        })
    }

    fn authorize(&mut self, entry: &Entry, _signals: &Signals) -> Result<Gate> {
        if !self.asked.contains(&entry.path) {
            self.asked.push(entry.path.clone());
            let _ = self.events.send(Event::Asked(entry.path.clone()));
        }
        while let Ok(p) = self.releases.try_recv() {
            self.held.retain(|h| *h != p);
        }
        if !self.held.contains(&entry.path) {
            return Ok(Gate::Open);
        }
        // The intake paces the questions: wait a little for a release.
        if let Ok(p) = self.releases.recv_timeout(Duration::from_millis(20)) {
            self.held.retain(|h| *h != p);
        }
        Ok(Gate::NotYet)
    }

    fn finished(&mut self, entry: &Entry, end: &FileEnd) -> Result<()> {
        let complete = matches!(end, FileEnd::Complete);
        let _ = self
            .events
            .send(Event::Finished(entry.path.clone(), complete));
        Ok(())
    }

    fn close(&mut self, stopped: bool) -> Result<()> {
        let _ = self.events.send(Event::Closed(stopped));
        Ok(())
    }
}

/// A dispatcher running on its own thread, and the test's handles on it.
struct Running {
    files: Option<Sender<Vec<PathBuf>>>,
    releases: Sender<PathBuf>,
    events: Receiver<Event>,
    signals: Signals,
    stats_file: PathBuf,
    outputs: PathBuf,
    thread: JoinHandle<Result<i32>>,
}

impl Running {
    /// Starts a dispatcher with 2 file outputs in `dir`; `held` files wait for a release.
    fn start(dir: &Path, held: &[PathBuf]) -> Running {
        let outputs = dir.join("out");
        std::fs::create_dir_all(&outputs).unwrap();
        let stats_file = dir.join("stats.json");
        let out = format!("file:{}/shard-{{shard}}.pcap", outputs.display());
        let cli = Cli::try_parse_from([
            "shardcap",
            "run",
            "-n",
            "2",
            "-o",
            &out,
            "--stats-file",
            stats_file.to_str().unwrap(),
            "--stats-interval",
            "10ms",
            "--progress",
            "never",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            unreachable!()
        };
        let spec = OutputSpec::parse(&out, 2, Partition::WHOLE).unwrap();
        let (files_tx, files) = mpsc::channel();
        let (releases_tx, releases) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let intake = Scripted {
            files,
            held: held.to_vec(),
            releases,
            asked: Vec::new(),
            events: events_tx,
        };
        let signals = Signals::detached();
        let steer = signals.clone();
        let run = move || {
            Dispatcher::new(
                *args,
                spec,
                Box::new(intake),
                steer,
                None,
                Consumers::none(),
            )
            .run()
        };
        Running {
            files: Some(files_tx),
            releases: releases_tx,
            events,
            signals,
            stats_file,
            outputs,
            thread: std::thread::spawn(run),
        }
    }

    fn send(&self, files: &[PathBuf]) {
        self.files.as_ref().unwrap().send(files.to_vec()).unwrap();
    }

    /// No file will come any more.
    fn close(&mut self) {
        self.files = None;
    }

    /// The next event, which must come.
    fn next(&self) -> Event {
        self.events
            .recv_timeout(PATIENCE)
            .expect("the dispatcher reported nothing")
    }

    /// Waits until the stats file reports `state`.
    fn await_state(&self, state: &str) {
        let deadline = Instant::now() + PATIENCE;
        let want = format!("\"state\": \"{state}\"");
        loop {
            let text = std::fs::read_to_string(&self.stats_file).unwrap_or_default();
            if text.contains(&want) {
                return;
            }
            assert!(Instant::now() < deadline, "never {state}: {text}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn suspend_toggle(&self) {
        let s = &self.signals;
        let odd = s.toggles.fetch_add(1, Ordering::SeqCst) % 2 == 0;
        s.brake.store(odd, Ordering::SeqCst);
        s.attention.store(true, Ordering::SeqCst);
    }

    fn stop(&self) {
        self.signals.stop.store(true, Ordering::SeqCst);
        self.signals.brake.store(false, Ordering::SeqCst);
        self.signals.attention.store(true, Ordering::SeqCst);
    }

    /// Joins the dispatcher; its exit code and the packets of each output (time-ordered).
    fn end(self) -> (i32, u64) {
        let code = self.thread.join().unwrap().unwrap();
        let mut packets = 0;
        for k in 0..2 {
            let p = self.outputs.join(format!("shard-{k}.pcap"));
            packets += read_ordered(&p);
        }
        (code, packets)
    }
}

/// Packets of a complete capture, checking their timestamps never go back.
fn read_ordered(path: &Path) -> u64 {
    let (mut c, _, _) = Capture::open(path).unwrap().expect("a capture");
    let (mut n, mut last) = (0, 0);
    while c.advance().unwrap() {
        assert!(c.ts() >= last, "{}: out of order", path.display());
        last = c.ts();
        n += 1;
    }
    n
}

/// Four small generated captures (two sensors, two files each) and their packet counts.
fn captures(dir: &Path) -> Vec<(PathBuf, u64)> {
    let cfg = shardcap_gen::GenerateConfig {
        out: dir.join("in"),
        sensors: 2,
        files_per_sensor: 2,
        size: 64 * 1024,
        seed: 7,
        nanos: false,
        gzip: false,
        zstd: false,
        duration: Duration::from_secs(4),
    };
    let mut all: Vec<PathBuf> = shardcap_gen::generate(&cfg)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.files)
        .collect();
    all.sort();
    all.into_iter()
        .map(|p| {
            let n = read_ordered(&p);
            (p, n)
        })
        .collect()
}

fn total(files: &[(PathBuf, u64)]) -> u64 {
    files.iter().map(|(_, n)| n).sum()
}

fn paths(files: &[(PathBuf, u64)]) -> Vec<PathBuf> {
    files.iter().map(|(p, _)| p.clone()).collect()
}

#[test]
fn files_arriving_while_running_are_streamed_until_the_intake_closes() {
    let dir = tempfile::tempdir().unwrap();
    let files = captures(dir.path());
    let mut run = Running::start(dir.path(), &[]);
    run.send(&paths(&files[..2]));
    let mut finished = Vec::new();
    while finished.len() < 2 {
        if let Event::Finished(p, complete) = run.next() {
            assert!(complete, "{}", p.display());
            finished.push(p);
        }
    }
    run.send(&paths(&files[2..]));
    while finished.len() < 4 {
        if let Event::Finished(p, _) = run.next() {
            finished.push(p);
        }
    }
    run.close();
    assert_eq!(run.next(), Event::Closed(false));
    run.await_state("Done");
    let (code, packets) = run.end();
    assert_eq!(code, EXIT_OK);
    assert_eq!(packets, total(&files));
}

/// A run given two files of one sensor, one after the other in time, the second held at its
/// authorization; the intake is closed.
fn second_held(dir: &Path) -> (Vec<(PathBuf, u64)>, PathBuf, Running) {
    let files = captures(dir);
    let second = files[1].0.clone();
    let mut run = Running::start(dir, std::slice::from_ref(&second));
    run.send(&[files[0].0.clone(), second.clone()]);
    run.close();
    (files, second, run)
}

#[test]
fn a_held_authorization_waits_and_a_suspension_holds_it_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (files, second, run) = second_held(dir.path());
    assert_eq!(run.next(), Event::Asked(files[0].0.clone()));
    assert_eq!(run.next(), Event::Finished(files[0].0.clone(), true));
    assert_eq!(run.next(), Event::Asked(second.clone()));
    run.await_state("Waiting");
    run.suspend_toggle();
    run.await_state("Suspended");
    // Released while suspended: nothing is read before the resume.
    run.releases.send(second.clone()).unwrap();
    assert!(run.events.recv_timeout(Duration::from_millis(200)).is_err());
    run.suspend_toggle();
    assert_eq!(run.next(), Event::Finished(second, true));
    assert_eq!(run.next(), Event::Closed(false));
    let (code, packets) = run.end();
    assert_eq!(code, EXIT_OK);
    assert_eq!(packets, files[0].1 + files[1].1);
}

#[test]
fn a_stop_while_waiting_ends_with_complete_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (files, second, run) = second_held(dir.path());
    while run.next() != Event::Asked(second.clone()) {}
    run.stop();
    let mut events = Vec::new();
    loop {
        let e = run.next();
        if let Event::Closed(stopped) = e {
            assert!(stopped);
            break;
        }
        events.push(e);
    }
    assert!(
        !events.contains(&Event::Finished(second.clone(), true)),
        "{events:?}"
    );
    let (code, packets) = run.end();
    assert_eq!(code, EXIT_OK);
    assert_eq!(
        packets, files[0].1,
        "the first file whole, nothing of the second"
    );
}

#[test]
fn a_damaged_file_ends_the_run_with_exit_3_and_the_others_stream() {
    let dir = tempfile::tempdir().unwrap();
    let files = captures(dir.path());
    // The second file cut inside a record.
    let raw = std::fs::read(&files[1].0).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &raw[..raw.len() - 7]).unwrap();
    let mut run = Running::start(dir.path(), &[]);
    run.send(&[files[0].0.clone(), cut.clone(), files[2].0.clone()]);
    run.close();
    let mut ends = Vec::new();
    loop {
        match run.next() {
            Event::Finished(p, complete) => ends.push((p, complete)),
            Event::Closed(_) => break,
            Event::Asked(_) => {}
        }
    }
    assert!(ends.contains(&(cut, false)), "{ends:?}");
    assert!(ends.contains(&(files[0].0.clone(), true)), "{ends:?}");
    let (code, packets) = run.end();
    assert_eq!(code, EXIT_SKIPPED);
    assert_eq!(packets, files[0].1 + files[1].1 - 1 + files[2].1);
}

#[test]
fn a_file_swapped_in_after_the_catalog_is_not_read_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let (files, second, run) = second_held(dir.path());
    while run.next() != Event::Asked(second.clone()) {}
    // Cataloged, not yet open: another capture takes its name, behind a symlink.
    std::fs::remove_file(&second).unwrap();
    std::os::unix::fs::symlink(&files[2].0, &second).unwrap();
    run.releases.send(second.clone()).unwrap();
    assert_eq!(run.next(), Event::Finished(second, false));
    assert_eq!(run.next(), Event::Closed(false));
    let (code, packets) = run.end();
    assert_eq!(code, EXIT_SKIPPED);
    assert_eq!(packets, files[0].1, "nothing of the file swapped in");
}
