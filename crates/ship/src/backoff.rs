//! Exponential backoff with jitter between retries, interruptible by a stop flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardcap_flow::hash::mix64;

/// How long to wait before the next retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

/// The waits of one sender: doubling from `initial` to `max`, each drawn at random from its upper
/// half so that senders that failed together do not retry together.
pub struct Backoff {
    policy: RetryPolicy,
    next: Duration,
    rng: u64,
}

impl Backoff {
    /// A fresh backoff (seeded from the clock and `salt`).
    pub fn new(policy: RetryPolicy, salt: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Backoff {
            policy,
            next: policy.initial,
            rng: mix64(now ^ mix64(salt)) | 1,
        }
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }

    /// The next wait, and doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let span = self.next.as_nanos() as u64 / 2;
        let wait = Duration::from_nanos(span + self.rng % (span + 1));
        self.next = (self.next * 2).min(self.policy.max);
        wait
    }

    /// Sleeps the next wait; returns false (early) when `stop` is set.
    pub fn sleep(&mut self, stop: &AtomicBool) -> bool {
        let until = Instant::now() + self.next_wait();
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        !stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_within_bounds_and_reset() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
        };
        let mut b = Backoff::new(policy, 1);
        let mut cap = policy.initial;
        for _ in 0..6 {
            let w = b.next_wait();
            assert!(
                w >= cap / 2 && w <= cap,
                "{w:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
            cap = (cap * 2).min(policy.max);
        }
        b.reset();
        assert!(b.next_wait() <= policy.initial);
        let stop = AtomicBool::new(true);
        assert!(!b.sleep(&stop));
    }
}
