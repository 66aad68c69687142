//! Detectors applied to the strings under an `allow` rule: each match is
//! redacted (`[email]`) or masked, or the whole value is dropped.

use crate::detect::{self, Detectors};
use crate::mask::Masker;

/// What happens when a detector matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMatch {
    /// Each match replaced by `[email]`, `[ssn]`, …
    Redact,
    /// Each match replaced by its masked value.
    Mask,
    /// The whole value dropped.
    Drop,
}

impl OnMatch {
    pub const ALL: [OnMatch; 3] = [OnMatch::Redact, OnMatch::Mask, OnMatch::Drop];

    pub fn name(self) -> &'static str {
        match self {
            OnMatch::Redact => "redact",
            OnMatch::Mask => "mask",
            OnMatch::Drop => "drop",
        }
    }
}

/// A scan: which detectors, and what a match does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    pub detectors: Detectors,
    pub on_match: OnMatch,
}

/// A string after the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// Nothing matched: send it as it is.
    Clean,
    /// Matches replaced: send this text.
    Replaced(String),
    /// Send nothing.
    Drop,
}

/// Scans `text` (UTF-8; matches are ranges of whole characters of it).
pub fn apply(text: &[u8], scan: Scan, masker: Option<&Masker>) -> Scanned {
    let found = detect::find_all(text, scan.detectors);
    if found.is_empty() {
        return Scanned::Clean;
    }
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut at = 0;
    for f in &found {
        out.extend_from_slice(&text[at..f.start]);
        match (scan.on_match, masker) {
            (OnMatch::Drop, _) | (OnMatch::Mask, None) => return Scanned::Drop,
            (OnMatch::Redact, _) => {
                out.push(b'[');
                out.extend_from_slice(f.what.name().as_bytes());
                out.push(b']');
            }
            (OnMatch::Mask, Some(m)) => m.write_hex(&text[f.start..f.end], &mut out),
        }
        at = f.end;
    }
    out.extend_from_slice(&text[at..]);
    match String::from_utf8(out) {
        Ok(s) => Scanned::Replaced(s),
        Err(_) => Scanned::Drop,
    }
}

/// Scans a JSON number as its decimal text (an exponent written out:
/// `4.111111111111111e15` is `4111111111111111`). On a match, `redact`
/// drops the number (a number cannot hold `[card]`), `drop` drops it, and
/// `mask` sends a string with each match masked. A number too long to
/// write out is taken for a match.
pub fn apply_number(number: &[u8], scan: Scan, masker: Option<&Masker>) -> Scanned {
    let Some(text) = decimal(number) else {
        return match (scan.on_match, masker) {
            (OnMatch::Mask, Some(m)) => {
                let mut out = Vec::new();
                m.write_hex(number, &mut out);
                String::from_utf8(out).map_or(Scanned::Drop, Scanned::Replaced)
            }
            _ => Scanned::Drop,
        };
    };
    match apply(text.as_bytes(), scan, masker) {
        Scanned::Replaced(_) if scan.on_match == OnMatch::Redact => Scanned::Drop,
        scanned => scanned,
    }
}

/// The longest decimal text of a number that is written out.
const DECIMAL_MAX: usize = 100;

/// A JSON number's value in plain decimal digits: no exponent, no
/// leading zeros, no trailing zeros after the point (`1.23456789e8` →
/// `123456789`, `-0.50` → `-0.5`); `None` when that is longer than
/// [`DECIMAL_MAX`] digits (or `number` is not a JSON number).
pub fn decimal(number: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(number).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all = format!("{int}{frac}");
    let significant = all.trim_start_matches('0');
    // The point's place in the significant digits.
    let lead = i64::try_from(all.len() - significant.len()).ok()?;
    let point = i64::try_from(int.len())
        .ok()?
        .checked_add(exp)?
        .checked_sub(lead)?;
    let digits = significant.trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".into());
    }
    let len = i64::try_from(digits.len()).ok()?;
    let room = i64::try_from(DECIMAL_MAX).ok()?;
    if point > room || point < -room {
        return None;
    }
    let zeros = |n: i64| "0".repeat(usize::try_from(n).unwrap_or(0));
    let plain = if point <= 0 {
        format!("0.{}{digits}", zeros(-point))
    } else if point >= len {
        format!("{digits}{}", zeros(point - len))
    } else {
        let (a, b) = digits.split_at(usize::try_from(point).ok()?);
        format!("{a}.{b}")
    };
    let sign = if negative { "-" } else { "" };
    (plain.len() <= DECIMAL_MAX).then(|| format!("{sign}{plain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_masks_and_drops() {
        let scan = |on_match| Scan {
            detectors: Detectors::DEFAULT,
            on_match,
        };
        let text = "Call me at 617-555-0100 or jane@x.com, ok?".as_bytes();
        assert_eq!(
            apply(text, scan(OnMatch::Redact), None),
            Scanned::Replaced("Call me at [phone] or [email], ok?".into())
        );
        let m = Masker::new(&[7; 32]).unwrap();
        match apply(text, scan(OnMatch::Mask), Some(&m)) {
            Scanned::Replaced(s) => {
                assert!(
                    s.starts_with("Call me at ")
                        && s.contains(&m.mask("jane@x.com"))
                        && !s.contains("jane")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(apply(text, scan(OnMatch::Drop), None), Scanned::Drop);
        assert_eq!(
            apply(b"nothing here 19.99", scan(OnMatch::Redact), None),
            Scanned::Clean
        );
    }

    #[test]
    fn numbers_are_written_out() {
        for (number, want) in [
            ("4111111111111111", Some("4111111111111111")),
            ("4.111111111111111e15", Some("4111111111111111")),
            ("4111111111111111.0", Some("4111111111111111")),
            ("1.23456789e8", Some("123456789")),
            ("1.23456789E+8", Some("123456789")),
            ("123456789e-2", Some("1234567.89")),
            ("-0.50", Some("-0.5")),
            ("0", Some("0")),
            ("-0", Some("0")),
            ("0e5", Some("0")),
            ("00012", Some("12")),
            ("1.5e-7", Some("0.00000015")),
            ("19.99", Some("19.99")),
            ("1e99", Some(&*format!("1{}", "0".repeat(99)))),
            ("1e100", None),
            ("1e100000", None),
            ("1e-100000", None),
            ("1e99999999999999999999999", None),
            ("1e", None),
            ("abc", None),
            ("", None),
            ("-", None),
        ] {
            assert_eq!(decimal(number.as_bytes()).as_deref(), want, "{number}");
        }
    }

    #[test]
    fn numbers_that_match_are_not_sent_as_numbers() {
        let scan = |on_match| Scan {
            detectors: Detectors::DEFAULT,
            on_match,
        };
        let card = b"4.111111111111111e15";
        assert_eq!(
            apply_number(card, scan(OnMatch::Redact), None),
            Scanned::Drop
        );
        assert_eq!(apply_number(card, scan(OnMatch::Drop), None), Scanned::Drop);
        let m = Masker::new(&[7; 32]).unwrap();
        assert_eq!(
            apply_number(card, scan(OnMatch::Mask), Some(&m)),
            Scanned::Replaced(m.mask("4111111111111111"))
        );
        assert_eq!(apply_number(card, scan(OnMatch::Mask), None), Scanned::Drop);
        // Too long to write out: taken for a match.
        assert_eq!(
            apply_number(b"1e400", scan(OnMatch::Redact), None),
            Scanned::Drop
        );
        assert_eq!(
            apply_number(b"1e400", scan(OnMatch::Mask), Some(&m)),
            Scanned::Replaced(m.mask("1e400"))
        );
        for clean in [
            &b"19.99"[..],
            b"123456",
            b"1732270000000",
            b"0.4111111111111111",
            b"-3",
        ] {
            assert_eq!(
                apply_number(clean, scan(OnMatch::Drop), None),
                Scanned::Clean
            );
        }
        // A record number as a number: found by `id`.
        let ids = Scan {
            detectors: Detectors::default().with(crate::detect::Detector::Id),
            on_match: OnMatch::Redact,
        };
        assert_eq!(apply_number(b"123456789", ids, None), Scanned::Drop);
    }
}
