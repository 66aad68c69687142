//! Validation of a destination's `baa`: `true`, `false`, or the register
//! form `{"signed": "YYYY-MM-DD", "ref": "…"}`. Pure: a date is checked
//! against the calendar, never against the clock, so a policy validates
//! the same on every day.

use super::{join, Checker};
use crate::policy::Baa;
use crate::tree::Value;

const BAA_KEYS: [&str; 2] = ["signed", "ref"];

/// The longest `ref`, in characters.
pub const MAX_REF_CHARS: usize = 200;

impl Checker {
    /// The `baa` at `path`, or `None` (with errors) when it is neither a
    /// boolean nor a valid register object.
    pub(super) fn baa(&mut self, value: &Value, path: &str) -> Option<Baa> {
        let members = match value {
            Value::Bool(true) => return Some(Baa::Undated),
            Value::Bool(false) => return Some(Baa::None),
            Value::Object(members) => members,
            v => {
                self.error(
                    path,
                    format!(
                        "must be true, false or {{\"signed\": \"YYYY-MM-DD\", \"ref\": \"…\"}}, not {}",
                        v.type_name()
                    ),
                );
                return None;
            }
        };
        let before = self.errors.len();
        self.object(value, path, Some(&BAA_KEYS));
        let get = |key: &str| members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let signed = self.signed(get("signed"), &join(path, "signed"));
        let reference = self.reference(get("ref"), &join(path, "ref"));
        if self.errors.len() > before {
            return None;
        }
        Some(Baa::Signed {
            signed: signed?,
            reference: reference?,
        })
    }

    fn signed(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        match value {
            None => {
                self.error(
                    path,
                    "missing; the day the BAA was signed, as \"YYYY-MM-DD\"",
                );
                None
            }
            Some(Value::String(s)) if is_date(s) => Some(s.clone()),
            Some(Value::String(_)) => {
                self.error(
                    path,
                    "must be a calendar date written YYYY-MM-DD (\"2026-01-15\")",
                );
                None
            }
            Some(v) => {
                self.error(
                    path,
                    format!(
                        "must be a date string \"YYYY-MM-DD\", not {}",
                        v.type_name()
                    ),
                );
                None
            }
        }
    }

    /// The contract reference. Not PHI, but printed in data maps and
    /// reports: one short line, so it cannot smuggle a block of text.
    fn reference(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        let message = match value {
            None => "missing; the BAA's contract reference (\"MSA-2026-014\")".to_owned(),
            Some(Value::String(s)) => match reference_problem(s) {
                None => return Some(s.clone()),
                Some(problem) => problem,
            },
            Some(v) => format!("must be a string, not {}", v.type_name()),
        };
        self.error(path, message);
        None
    }
}

/// What is wrong with `reference` as a BAA's `ref`, if anything.
pub(crate) fn reference_problem(reference: &str) -> Option<String> {
    if reference.trim().is_empty() {
        Some("must not be empty".to_owned())
    } else if reference.chars().count() > MAX_REF_CHARS {
        Some(format!("must be at most {MAX_REF_CHARS} characters"))
    } else if reference
        .chars()
        .any(|c| c.is_control() || is_line_break(c))
    {
        Some("must be one line without control characters".to_owned())
    } else {
        None
    }
}

/// Whether a prepared policy's BAA is one validation accepts (the
/// loader reads prepared files without the validator).
pub(crate) fn is_valid(baa: &Baa) -> bool {
    match baa {
        Baa::None | Baa::Undated => true,
        Baa::Signed { signed, reference } => {
            is_date(signed) && reference_problem(reference).is_none()
        }
    }
}

/// Line and paragraph separators that are not control characters.
fn is_line_break(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// Whether `s` is exactly `YYYY-MM-DD` naming a real day of the proleptic
/// Gregorian calendar (years 0001 to 9999).
pub fn is_date(s: &str) -> bool {
    crate::structural::date_parts(s.as_bytes()).is_some_and(|(year, _, _)| year >= 1)
}

#[cfg(test)]
mod tests {
    use super::is_date;

    #[test]
    fn calendar_dates() {
        for ok in [
            "2026-01-15",
            "2024-02-29",
            "2000-02-29",
            "2026-12-31",
            "0001-01-01",
        ] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "2026-02-29",
            "1900-02-29",
            "2026-02-30",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "2026-04-31",
            "2026-1-5",
            "26-01-15",
            "2026/01/15",
            "2026-01-15T00:00:00Z",
            "0000-01-01",
            "２０２６-01-15",
            "+026-01-15",
            "2026-01-1 ",
            "",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
