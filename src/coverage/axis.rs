//! The time axis: round tick steps and their labels (UTC).

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
const MIN: u64 = 60 * S;
const H: u64 = 60 * MIN;
const D: u64 = 24 * H;

/// Tick steps, from a millisecond to ten years.
const STEPS: [u64; 32] = [
    MS,
    2 * MS,
    5 * MS,
    10 * MS,
    20 * MS,
    50 * MS,
    100 * MS,
    200 * MS,
    500 * MS,
    S,
    2 * S,
    5 * S,
    10 * S,
    15 * S,
    30 * S,
    MIN,
    2 * MIN,
    5 * MIN,
    10 * MIN,
    15 * MIN,
    30 * MIN,
    H,
    2 * H,
    3 * H,
    6 * H,
    12 * H,
    D,
    2 * D,
    7 * D,
    30 * D,
    365 * D,
    3650 * D,
];

/// Ticks (times, labels) across `[t0, t1]`: at most `max` of them, at a round step.
pub fn ticks(t0: u64, t1: u64, max: u64) -> Vec<(u64, String)> {
    let span = t1.saturating_sub(t0).max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max)
        .unwrap_or(STEPS[STEPS.len() - 1]);
    let format = if step < S {
        "%H:%M:%S%.3f"
    } else if step < D && t0 / D == t1 / D {
        "%H:%M:%S"
    } else if step < D {
        "%m-%d %H:%M"
    } else {
        "%Y-%m-%d"
    };
    let mut out = Vec::new();
    let mut t = t0.div_ceil(step) * step;
    while t <= t1 {
        out.push((t, stamp(t, format)));
        t += step;
    }
    out
}

/// Time `ns` (since the epoch) in UTC, as `format` (strftime) says.
pub fn stamp(ns: u64, format: &str) -> String {
    match jiff::Timestamp::from_nanosecond(ns as i128) {
        Ok(t) => t.strftime(format).to_string(),
        Err(_) => ns.to_string(),
    }
}

/// A duration in the largest unit that keeps it readable.
pub fn duration(ns: u64) -> String {
    let s = ns as f64 / S as f64;
    if ns < S {
        format!("{:.1} ms", ns as f64 / MS as f64)
    } else if ns < 2 * MIN {
        format!("{s:.1} s")
    } else if ns < 2 * H {
        format!("{:.1} min", s / 60.0)
    } else if ns < 2 * D {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_few() {
        // 2024-03-01 12:00:00 UTC plus 20 minutes.
        let t0 = 1_709_294_400 * S + 7 * S;
        let t = ticks(t0, t0 + 20 * MIN, 10);
        assert_eq!(t.len(), 10, "{t:?}");
        assert_eq!(t[0].1, "12:02:00");
        assert!(t.iter().all(|(ts, _)| ts % (2 * MIN) == 0));
        let days = ticks(t0, t0 + 20 * D, 10);
        assert_eq!(days[0].1, "2024-03-02");
        assert_eq!(duration(90 * S), "90.0 s");
    }
}
