//! A write permit with a deadline: shard writers check it before every write to their outputs, so
//! a node whose lease on a partition lapsed (paused, cut off from Redis) writes nothing more.
//!
//! The deadline is on the monotonic clock, which keeps running while a process is stopped: a node
//! resumed after its lease lapsed sees the deadline passed before its next write.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often a held write looks at the fence again.
const HOLD_POLL: Duration = Duration::from_millis(5);

/// Shared by the lease keeper (which extends or revokes it) and the writers (which check it).
#[derive(Clone)]
pub struct Fence {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    base: Instant,
    /// Nanoseconds after `base` until which writes are allowed.
    deadline: AtomicU64,
    /// Revoked for good: another node holds the lease.
    lost: AtomicBool,
    /// Why it was revoked, for the writers' error.
    why: Mutex<String>,
    /// A stop was asked for: a held write gives up instead of waiting.
    stop: Arc<AtomicBool>,
}

impl Fence {
    /// A fence that never closes (runs without a lease).
    pub fn open() -> Self {
        Fence { inner: None }
    }

    /// A fence closed until [`Fence::extend`] opens it; a write held while `stop` is set fails.
    pub fn closed(stop: Arc<AtomicBool>) -> Self {
        Fence {
            inner: Some(Arc::new(Inner {
                base: Instant::now(),
                deadline: AtomicU64::new(0),
                lost: AtomicBool::new(false),
                why: Mutex::new(String::new()),
                stop,
            })),
        }
    }

    /// Allows writes until `until` (never shortens an allowance already given).
    pub fn extend(&self, until: Instant) {
        if let Some(i) = &self.inner {
            let nanos = until.saturating_duration_since(i.base).as_nanos() as u64;
            i.deadline.fetch_max(nanos, Ordering::SeqCst);
        }
    }

    /// Closes the fence for good: every write from now on fails with `why`.
    pub fn revoke(&self, why: String) {
        if let Some(i) = &self.inner {
            *i.why.lock().unwrap_or_else(|e| e.into_inner()) = why;
            i.lost.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the fence was revoked.
    pub fn is_lost(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.lost.load(Ordering::SeqCst))
    }

    /// Whether a write may go now.
    pub fn is_open(&self) -> bool {
        match &self.inner {
            None => true,
            Some(i) => {
                !i.lost.load(Ordering::SeqCst)
                    && (i.base.elapsed().as_nanos() as u64) < i.deadline.load(Ordering::SeqCst)
            }
        }
    }

    /// Waits until a write may go (the lease renewed). Fails once the fence is revoked, or when a
    /// stop is asked for while it is closed (nothing more can be written under the lease then).
    pub fn pass(&self) -> io::Result<()> {
        let Some(i) = &self.inner else {
            return Ok(());
        };
        loop {
            if i.lost.load(Ordering::SeqCst) {
                let why = i.why.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(io::Error::other(why));
            }
            if self.is_open() {
                return Ok(());
            }
            if i.stop.load(Ordering::SeqCst) {
                return Err(io::Error::other(
                    "stopped while the partition's lease was unconfirmed; nothing more written",
                ));
            }
            thread::sleep(HOLD_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pass_only_within_the_deadline_and_never_once_revoked() {
        assert!(Fence::open().pass().is_ok());
        let stop = Arc::new(AtomicBool::new(false));
        let f = Fence::closed(stop.clone());
        assert!(!f.is_open());
        f.extend(Instant::now() + Duration::from_secs(60));
        assert!(f.is_open() && f.pass().is_ok());
        // A shorter allowance does not shorten the one given.
        f.extend(Instant::now());
        assert!(f.is_open());
        f.revoke("lease lost".into());
        let e = f.pass().unwrap_err();
        assert_eq!(e.to_string(), "lease lost");
        let g = Fence::closed(stop.clone());
        stop.store(true, Ordering::SeqCst);
        assert!(g.pass().is_err(), "a stop ends a held write");
    }
}
