//! Record timestamps: Zeek's epoch seconds and Suricata's ISO 8601 with a UTC offset, normalised to
//! UTC for `@timestamp` and for the day in an index name.

use std::io::Write;

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
        let days = days_from_civil(y, mo as u32, d as u32);
        Some(UtcTime {
            secs: days * 86_400 + h * 3600 + mi * 60 + se - offset,
            nanos,
        })
    }

    /// Writes RFC 3339 in UTC with microseconds (or nanoseconds when they are not whole
    /// microseconds): `2024-03-01T00:00:00.123456Z`.
    pub fn write_rfc3339(&self, out: &mut Vec<u8>) {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        );
        let _ = if self.nanos % 1000 == 0 {
            write!(out, ".{:06}Z", self.nanos / 1000)
        } else {
            write!(out, ".{:09}Z", self.nanos)
        };
    }

    /// Writes the UTC day as index names carry it: `2024.03.01`.
    pub fn write_day(&self, out: &mut Vec<u8>) {
        let (y, m, d) = civil_from_days(self.secs.div_euclid(86_400));
        let _ = write!(out, "{y:04}.{m:02}.{d:02}");
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-719_468, -1, 0, 59, 60, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
