//! The shapes in which fields outside the allowlists may reach a restricted
//! destination: only shapes that cannot carry PHI.

use crate::detect::{self, Detectors};

/// Longest `messageId` sent as it is.
pub const MAX_MESSAGE_ID: usize = 100;

/// Whether a `messageId` may be sent unchanged: 1 to 100 characters of
/// `A–Z a–z 0–9 . _ : -` in which no detector matches. Any other id is
/// masked, so destinations can still deduplicate on it.
pub fn plain_message_id(id: &[u8]) -> bool {
    (1..=MAX_MESSAGE_ID).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        && !detect::any(id, Detectors::DEFAULT)
}

/// Longest key of an `integrations` member passed with its boolean.
pub const MAX_INTEGRATION_NAME: usize = 100;

/// Whether an `integrations` key looks like an integration's name
/// (`Google Analytics 4`, `Segment.io`, `Amplitude (Actions)`): letters,
/// digits, spaces and `. _ - ( ) /`, at most 100 bytes, no detector match.
pub fn integration_name(name: &[u8]) -> bool {
    (1..=MAX_INTEGRATION_NAME).contains(&name.len())
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-' | b'(' | b')' | b'/')
        })
        && !detect::any(name, Detectors::DEFAULT)
}

/// Whether `channel` is one of Segment's: `browser`, `server`, `mobile`.
pub fn channel(value: &[u8]) -> bool {
    matches!(value, b"browser" | b"server" | b"mobile")
}

/// Whether a `version` number's JSON text is an integer of at most six
/// digits (longer runs could hold a record number).
pub fn version(number: &[u8]) -> bool {
    let digits = number.strip_prefix(b"-").unwrap_or(number);
    (1..=6).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
}

/// Whether `s` is an RFC 3339 date-time: `2026-11-23T14:05:11Z`,
/// `2026-11-23T14:05:11.000+01:00` (`T` and `Z` in either case; a real
/// calendar date; seconds up to 60 for leap seconds; at most nine
/// fractional digits).
pub fn rfc3339(s: &[u8]) -> bool {
    let Some((date, time)) = split_at_t(s) else {
        return false;
    };
    date_ok(date) && time_ok(time)
}

fn split_at_t(s: &[u8]) -> Option<(&[u8], &[u8])> {
    if s.len() < 20 || !matches!(s[10], b'T' | b't') {
        return None;
    }
    Some((&s[..10], &s[11..]))
}

/// The value of `n` ASCII digits, or `None`.
fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0')))
}

/// `YYYY-MM-DD` with a day that exists in that month (leap years too).
pub fn date_ok(d: &[u8]) -> bool {
    date_parts(d).is_some()
}

/// The year, month and day of a `YYYY-MM-DD` date that exists.
pub fn date_parts(d: &[u8]) -> Option<(u32, u32, u32)> {
    if d.len() != 10 || d[4] != b'-' || d[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(&d[..4])?, num(&d[5..7])?, num(&d[8..10])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&day).then_some((year, month, day))
}

/// `HH:MM:SS[.frac](Z|±HH:MM)`.
fn time_ok(t: &[u8]) -> bool {
    time_parts(t).is_some()
}

/// Milliseconds into the UTC day (a leap second counts as the last
/// millisecond of its minute) and the offset east of UTC in minutes, of
/// `HH:MM:SS[.frac](Z|±HH:MM)`.
fn time_parts(t: &[u8]) -> Option<(i64, i64)> {
    if t.len() < 9 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let (h, m, sec) = (num(&t[..2])?, num(&t[3..5])?, num(&t[6..8])?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut millis = 0;
    let mut rest = &t[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        // The first three digits, padded: ".5" is 500 ms.
        millis = (0..3).fold(0, |v, i| {
            v * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |d| i64::from(d - b'0'))
        });
        rest = &frac[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let (oh, om) = (num(&[*oh1, *oh2])?, num(&[*om1, *om2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let (sec, millis) = if sec == 60 { (59, 999) } else { (sec, millis) };
    let day_millis = ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(sec)) * 1000 + millis;
    Some((day_millis, offset))
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time, or `None`
/// when it is not one.
pub fn epoch_millis(s: &[u8]) -> Option<i64> {
    let (date, time) = split_at_t(s)?;
    let (year, month, day) = date_parts(date)?;
    let (day_millis, offset) = time_parts(time)?;
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000 + day_millis - offset * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_milliseconds() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-11-23T10:00:00Z", 1_795_428_000_000),
            ("2026-11-23T10:00:00.5Z", 1_795_428_000_500),
            ("2026-11-23T10:00:00.123456789Z", 1_795_428_000_123),
            ("2026-11-23T11:30:00+01:30", 1_795_428_000_000),
            ("2026-11-23T05:00:00-05:00", 1_795_428_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("1969-12-31T23:59:59Z", -1000),
            ("2016-12-31T23:59:60Z", 1_483_228_799_999),
            ("2000-03-01T00:00:00z", 951_868_800_000),
        ] {
            assert_eq!(epoch_millis(text.as_bytes()), Some(ms), "{text}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00:00",
            "1795428000000",
        ] {
            assert_eq!(epoch_millis(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn message_ids() {
        for ok in [
            "ajs-next-1732270000-7e1f",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "m-1",
            "node-next-1732270000000-a1b2:c3",
        ] {
            assert!(plain_message_id(ok.as_bytes()), "{ok}");
        }
        let long = "a".repeat(101);
        for masked in [
            "",
            "jane@x.com",
            "SSN 123-45-6789",
            "123-45-6789",
            "555-123-4567",
            "203.0.113.7",
            "id with spaces",
            "é",
            long.as_str(),
        ] {
            assert!(!plain_message_id(masked.as_bytes()), "{masked}");
        }
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2026-11-23T14:05:11.000Z",
            "2026-11-23T14:05:11Z",
            "2026-11-23t14:05:11z",
            "2026-11-23T14:05:11+01:00",
            "2026-11-23T14:05:11.123456789-05:30",
            "2024-02-29T00:00:00Z",
            "2016-12-31T23:59:60Z",
        ] {
            assert!(rfc3339(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "SSN 123-45-6789",
            "2026-11-23",
            "2026-11-23 14:05:11Z",
            "2026-11-23T14:05:11",
            "2026-11-23T14:05Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T14:05:11.Z",
            "2026-11-23T14:05:11.0000000000Z",
            "2026-11-23T14:05:11+0100",
            "2026-11-23T14:05:11Zjane",
            "1732270000",
        ] {
            assert!(!rfc3339(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn versions_and_channels() {
        assert!(version(b"2") && version(b"123456") && version(b"-1"));
        assert!(!version(b"1234567") && !version(b"1.5") && !version(b"1e3") && !version(b""));
        assert!(channel(b"server") && !channel(b"web") && !channel(b"Server"));
    }

    #[test]
    fn integration_names() {
        for ok in [
            "All",
            "Google Analytics 4",
            "Segment.io",
            "Amplitude (Actions)",
        ] {
            assert!(integration_name(ok.as_bytes()), "{ok}");
        }
        for bad in ["jane@x.com", "555-123-4567", "", "a\"b", "x\u{e9}"] {
            assert!(!integration_name(bad.as_bytes()), "{bad}");
        }
    }
}
