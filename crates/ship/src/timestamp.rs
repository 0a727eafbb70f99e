//! Record timestamps: Zeek's epoch seconds and Suricata's ISO 8601 with a UTC offset, normalised to
//! UTC for `@timestamp` and for the day in an index name.

use std::io::Write;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The UTC date and time of `secs` since the epoch, clamped to the years jiff represents
/// (-9999 to 9999).
pub fn utc_civil(secs: i64) -> DateTime {
    let secs = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    TimeZone::UTC.to_datetime(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A point in time, UTC: whole seconds since the epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcTime {
    pub secs: i64,
    pub nanos: u32,
}

impl UtcTime {
    /// Parses Zeek's `time` rendering, decimal seconds since the epoch (`1709251200.123456`),
    /// exactly (no float rounding); exponent forms go through `f64`.
    pub fn from_epoch_text(s: &str) -> Option<UtcTime> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            let secs: i64 = int.parse().ok()?;
            return Some(UtcTime {
                secs,
                nanos: fraction_nanos(frac),
            });
        }
        let f: f64 = s.parse().ok()?;
        Self::from_epoch_f64(f)
    }

    /// From seconds since the epoch as a float (Zeek JSON writes `ts` as a number).
    pub fn from_epoch_f64(f: f64) -> Option<UtcTime> {
        if !f.is_finite() || f.abs() > 1e12 {
            return None;
        }
        let secs = f.floor();
        let nanos = ((f - secs) * 1e9).round().min(999_999_999.0) as u32;
        Some(UtcTime {
            secs: secs as i64,
            nanos,
        })
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH[:]MM]` (Suricata writes `+0000`-style offsets;
    /// no offset means UTC).
    pub fn from_iso8601(s: &str) -> Option<UtcTime> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut nanos = 0;
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            nanos = fraction_nanos(&r[..end]);
            rest = &r[end..];
        }
        let offset = match rest {
            "" | "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let digits: String = rest[1..].chars().filter(|&c| c != ':').collect();
                if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let oh: i64 = digits[..2].parse().ok()?;
                let om: i64 = digits[2..].parse().ok()?;
                sign * (oh * 3600 + om * 60)
            }
        };
        // A leap second (:60) counts as the next second, as before.
        let civil = DateTime::new(
            y as i16,
            mo as i8,
            d as i8,
            h as i8,
            mi as i8,
            se.min(59) as i8,
            0,
        )
        .ok()?;
        let secs = TimeZone::UTC.to_timestamp(civil).ok()?.as_second();
        Some(UtcTime {
            secs: secs + (se - se.min(59)) - offset,
            nanos,
        })
    }

    /// Nanoseconds since the epoch (0 for times before it).
    pub fn epoch_nanos(&self) -> u64 {
        u64::try_from(self.secs).map_or(0, |s| {
            s.saturating_mul(1_000_000_000)
                .saturating_add(u64::from(self.nanos))
        })
    }

    /// Writes RFC 3339 in UTC with microseconds (or nanoseconds when they are not whole
    /// microseconds): `2024-03-01T00:00:00.123456Z`.
    pub fn write_rfc3339(&self, out: &mut Vec<u8>) {
        let t = utc_civil(self.secs);
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let _ = if self.nanos % 1000 == 0 {
            write!(out, ".{:06}Z", self.nanos / 1000)
        } else {
            write!(out, ".{:09}Z", self.nanos)
        };
    }

    /// Writes the UTC day as index names carry it: `2024.03.01`.
    pub fn write_day(&self, out: &mut Vec<u8>) {
        let t = utc_civil(self.secs);
        let _ = write!(out, "{:04}.{:02}.{:02}", t.year(), t.month(), t.day());
    }
}

/// Up to nine fraction digits as nanoseconds (more are cut off).
fn fraction_nanos(frac: &str) -> u32 {
    let mut n = 0u32;
    for i in 0..9 {
        n = n * 10 + frac.as_bytes().get(i).map_or(0, |c| (c - b'0') as u32);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(t: UtcTime) -> String {
        let mut v = Vec::new();
        t.write_rfc3339(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn zeek_epoch_is_exact() {
        let t = UtcTime::from_epoch_text("1709251200.123456").unwrap();
        assert_eq!(
            t,
            UtcTime {
                secs: 1_709_251_200,
                nanos: 123_456_000
            }
        );
        assert_eq!(rfc(t), "2024-03-01T00:00:00.123456Z");
        assert!(UtcTime::from_epoch_text("x").is_none());
        assert_eq!(UtcTime::from_epoch_text("1e9").unwrap().secs, 1_000_000_000);
    }

    #[test]
    fn suricata_offsets_become_utc() {
        let t = UtcTime::from_iso8601("2024-03-01T01:30:00.000001+0130").unwrap();
        assert_eq!(rfc(t), "2024-03-01T00:00:00.000001Z");
        let t = UtcTime::from_iso8601("2024-02-29T23:00:00-01:00").unwrap();
        let mut day = Vec::new();
        t.write_day(&mut day);
        assert_eq!(day, b"2024.03.01");
        assert!(UtcTime::from_iso8601("2024-13-01T00:00:00Z").is_none());
        assert!(UtcTime::from_iso8601("2024-03-01T00:00:00+1").is_none());
        assert!(UtcTime::from_iso8601("2023-02-29T00:00:00Z").is_none());
        let t = UtcTime::from_iso8601("2016-12-31T23:59:60Z").unwrap();
        assert_eq!(rfc(t), "2017-01-01T00:00:00.000000Z");
        let t = UtcTime::from_iso8601("1969-12-31 23:59:59.5").unwrap();
        assert_eq!((t.secs, t.nanos), (-1, 500_000_000));
        assert_eq!(rfc(t), "1969-12-31T23:59:59.500000Z");
    }
}
