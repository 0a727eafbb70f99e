//! `--max-pps`: holds the stream to a packet rate, for consumers that must not be flooded and for
//! replays at a bounded speed. The dispatcher looks at it every [`Pacer::tick`] packets.

use std::time::{Duration, Instant};

/// Looks at the clock this many times a second when pacing.
const CHECKS_PER_SECOND: u64 = 100;
/// Most time the stream may fall behind its schedule and catch up later (idle periods beyond it
/// do not turn into a burst).
const SLACK: Duration = Duration::from_secs(1);

/// Paces the stream to at most `pps` packets a second (time spent suspended does not count).
pub struct Pacer {
    pps: u64,
    start: Instant,
}

impl Pacer {
    /// A pacer for `pps` packets a second; `None` for 0 (no limit).
    pub fn new(pps: u64) -> Option<Self> {
        (pps > 0).then(|| Pacer {
            pps,
            start: Instant::now(),
        })
    }

    /// Packets between two looks at the pacer, at most `default`.
    pub fn tick(&self, default: u32) -> u32 {
        (self.pps / CHECKS_PER_SECOND).clamp(1, default as u64) as u32
    }

    /// Sleeps until `packets` are due, given that the run spent `suspended` suspended.
    pub fn wait(&mut self, packets: u64, suspended: Duration) {
        let due = Duration::from_secs_f64(packets as f64 / self.pps as f64) + suspended;
        let elapsed = self.start.elapsed();
        match due.checked_sub(elapsed) {
            Some(ahead) => std::thread::sleep(ahead),
            None if elapsed > due + SLACK => self.start += elapsed - due - SLACK,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_rate() {
        let p = Pacer::new(20_000).unwrap();
        assert_eq!(p.tick(1 << 16), 200);
        assert_eq!(Pacer::new(10).unwrap().tick(1 << 16), 1);
        assert!(Pacer::new(0).is_none());
    }

    #[test]
    fn idle_time_beyond_the_slack_is_forgotten() {
        let mut p = Pacer::new(1000).unwrap();
        p.start -= Duration::from_secs(10);
        p.wait(0, Duration::ZERO);
        let behind = p.start.elapsed();
        assert!(
            behind >= SLACK && behind < Duration::from_secs(10),
            "{behind:?}"
        );
    }
}
