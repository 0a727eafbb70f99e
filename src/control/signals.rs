//! Signal flags: SIGUSR1 toggles suspend (and the shard writers' brake at once), SIGUSR2 asks for stats, SIGTERM/SIGINT stop gracefully.
//! A second SIGTERM/SIGINT exits at once with status 130 and the message "second stop signal,
//! exiting now without saving state": outputs stay `NAME.partial`, and the journal keeps its last
//! checkpoint, from which a restart resumes. Handlers only touch atomics (and write(2)/_exit(2) for
//! the second stop); the dispatcher polls one flag a packet.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

/// Flags set by signal handlers.
#[derive(Clone)]
pub struct Signals {
    /// Set by any handled signal: the hot loop checks only this.
    pub attention: Arc<AtomicBool>,
    /// A stop was asked for.
    pub stop: Arc<AtomicBool>,
    /// Count of SIGUSR1 received (odd: suspended).
    pub toggles: Arc<AtomicUsize>,
    /// Stats were asked for.
    pub stats: Arc<AtomicBool>,
    /// Set while suspended and not stopping: shard writers hand nothing more to their outputs.
    pub brake: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        let s = Signals {
            attention: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            toggles: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(AtomicBool::new(false)),
            brake: Arc::new(AtomicBool::new(false)),
        };
        for sig in [SIGTERM, SIGINT] {
            let (stop, attention, brake) = (s.stop.clone(), s.attention.clone(), s.brake.clone());
            // SAFETY: the handler only uses atomics, write(2) and _exit(2), all async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    if stop.swap(true, Ordering::SeqCst) {
                        let msg =
                            b"shardcap: second stop signal, exiting now without saving state\n";
                        libc::write(2, msg.as_ptr().cast(), msg.len());
                        libc::_exit(130);
                    }
                    // A stop writes out what is held: outputs end as complete streams.
                    brake.store(false, Ordering::SeqCst);
                    attention.store(true, Ordering::SeqCst);
                })?;
            }
        }
        let (toggles, attention) = (s.toggles.clone(), s.attention.clone());
        let (stop, brake) = (s.stop.clone(), s.brake.clone());
        // SAFETY: atomics only.
        unsafe {
            signal_hook::low_level::register(SIGUSR1, move || {
                let odd = toggles.fetch_add(1, Ordering::SeqCst) % 2 == 0;
                brake.store(odd && !stop.load(Ordering::SeqCst), Ordering::SeqCst);
                attention.store(true, Ordering::SeqCst);
            })?;
        }
        signal_hook::flag::register(SIGUSR2, s.stats.clone())?;
        signal_hook::flag::register(SIGUSR2, s.attention.clone())?;
        Ok(s)
    }

    /// Flags not connected to any signal (tests, library use).
    pub fn detached() -> Self {
        Signals {
            attention: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            toggles: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(AtomicBool::new(false)),
            brake: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True when suspended (an odd number of SIGUSR1).
    pub fn suspended(&self) -> bool {
        self.toggles.load(Ordering::SeqCst) % 2 == 1
    }

    /// How many times SIGUSR1 suspended the run, counted as the signals come.
    pub fn suspensions(&self) -> u64 {
        self.toggles.load(Ordering::SeqCst).div_ceil(2) as u64
    }
}
