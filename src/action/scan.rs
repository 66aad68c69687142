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

/// Scans `text` (UTF-8; matches fall on ASCII boundaries).
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
}
