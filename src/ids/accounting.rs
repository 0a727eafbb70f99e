//! Packet accounting at the end of a run: each IDS instance's own count of the packets it
//! processed (read back from what it wrote) against the packets its shard was sent.

use super::supervise::Outcome;

/// Compares each shard's `outcomes` with the packets `sent` to it; logs every difference and every
/// shard that started no consumer. Returns the number of shards whose counts differ.
pub fn reconcile(outcomes: &[Outcome], sent: &[u64]) -> usize {
    let mut differ = 0;
    let mut idle = Vec::new();
    for (k, (outcome, &sent)) in outcomes.iter().zip(sent).enumerate() {
        match *outcome {
            Outcome::NotStarted => idle.push(k.to_string()),
            Outcome::Finished(Some(seen)) if seen != sent => {
                differ += 1;
                log::warn!(
                    "shard {k}: its IDS instance reports {seen} packets, shardcap sent it {sent}"
                );
            }
            Outcome::Finished(_) => {}
        }
    }
    if !idle.is_empty() {
        log::info!(
            "{} of {} shards got no packets and started no consumer (shards {})",
            idle.len(),
            outcomes.len(),
            idle.join(", ")
        );
    }
    differ
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_count_and_idle_or_silent_shards_do_not() {
        let outcomes = [
            Outcome::Finished(Some(10)),
            Outcome::NotStarted,
            Outcome::Finished(None),
            Outcome::Finished(Some(7)),
        ];
        assert_eq!(reconcile(&outcomes, &[10, 0, 5, 7]), 0);
        assert_eq!(reconcile(&outcomes, &[10, 0, 5, 8]), 1);
        assert_eq!(reconcile(&outcomes, &[11, 0, 5, 8]), 2);
    }
}
