//! Progress: a bar on stderr (files, bytes, rate, ETA), or without a terminal a periodic info log
//! line.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use super::stats::{Snapshot, State};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, otherwise a log line every stats interval.
    Auto,
    /// Always a bar (on stderr).
    Always,
    /// No bar and no progress lines.
    Never,
}

/// Shows how far the run is.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Interval of log lines (no bar).
    log_every: Option<Duration>,
    last_log: Instant,
}

impl Progress {
    /// A bar (`always`, or `auto` on a terminal), log lines every `interval` (`auto` without a
    /// terminal), or nothing (`never`).
    pub fn new(mode: ProgressMode, interval: Duration) -> Self {
        let tty = io::stderr().is_terminal();
        let target = match mode {
            ProgressMode::Never => None,
            ProgressMode::Auto if !tty => None,
            ProgressMode::Auto => Some(ProgressDrawTarget::stderr()),
            ProgressMode::Always if tty => Some(ProgressDrawTarget::stderr()),
            ProgressMode::Always => Some(ProgressDrawTarget::term_like(Box::new(AnsiStderr))),
        };
        let bar = target.map(|t| {
            let bar = ProgressBar::with_draw_target(Some(0), t);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                    .expect("progress template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress {
            log_every: (mode == ProgressMode::Auto && !tty).then_some(interval),
            bar,
            last_log: Instant::now(),
        }
    }

    /// Shows `s`: redraws the bar, or logs a line when the interval has passed.
    pub fn update(&mut self, s: &Snapshot) {
        if let Some(bar) = &self.bar {
            bar.set_length(s.input_bytes_total);
            bar.set_position(s.input_bytes_done.min(s.input_bytes_total));
            bar.set_message(Summary(s).to_string());
        } else if let Some(every) = self.log_every {
            if self.last_log.elapsed() >= every {
                self.last_log = Instant::now();
                log::info!("progress: {}", Summary(s));
            }
        }
    }

    /// Leaves the last state of the bar on screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

/// Files, rate and ETA of a snapshot, as progress shows them.
struct Summary<'a>(&'a Snapshot);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(
            f,
            "files {}/{}, {:.1}/{:.1} MB, {:.0} packets/s, {:.1} MB/s, ETA ",
            s.files_done,
            s.files_total,
            s.input_bytes_done as f64 / 1e6,
            s.input_bytes_total as f64 / 1e6,
            s.packets_per_s,
            s.mbytes_per_s
        )?;
        match s.eta_s {
            Some(eta) => {
                let eta = eta as u64;
                write!(f, "{}:{:02}:{:02}", eta / 3600, eta / 60 % 60, eta % 60)?;
            }
            None => f.write_str("unknown")?,
        }
        if s.state == State::Suspended {
            f.write_str(" (suspended)")?;
        }
        Ok(())
    }
}

/// Stderr driven with ANSI sequences whether or not it is a terminal (`--progress always`).
#[derive(Debug)]
struct AnsiStderr;

impl AnsiStderr {
    fn put(&self, s: &str) -> io::Result<()> {
        io::stderr().lock().write_all(s.as_bytes())
    }

    /// Moves the cursor `n` steps (`A` up, `B` down, `C` right, `D` left).
    fn step(&self, n: usize, direction: char) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}{direction}"))
    }
}

impl TermLike for AnsiStderr {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.step(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.step(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.step(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.step(n, 'D')
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.put(s)?;
        self.put("\n")
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> io::Result<()> {
        io::stderr().flush()
    }
}
