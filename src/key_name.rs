//! Keys of an event as they may be shown: a key that looks like a field
//! name passes as written, any other (`"Jane Doe HIV positive"`, an email)
//! is masked in a sanitized event and shown as `[key]` in explain output,
//! reports and messages, since an event's keys can carry PHI too.

use crate::detect::{self, Detectors};
use crate::json::{Kind, Reader};

/// How a key that does not look like a field name is shown in paths.
pub const HIDDEN: &str = "[key]";

/// Whether `key` (decoded) looks like a field name: 1–64 ASCII letters,
/// digits, `_`, `-`, `.` or `$`, and no detector match in it.
pub fn looks_like_field_name(key: &[u8]) -> bool {
    (1..=64).contains(&key.len())
        && key
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'))
        && !detect::any(key, Detectors::DEFAULT)
}

/// Appends `key` to the path `path` (`a.b`, `a[].b`): as written when it
/// looks like a field name, else as `[key]`.
pub fn push_key(path: &mut String, key: &[u8]) {
    if !path.is_empty() {
        path.push('.');
    }
    push_shown(path, key);
}

/// Appends `key` to `path` as the evidence inventory shows it: as
/// [`push_key`] does, and `[key]` too for a key without a letter or with
/// four digits in a row (an SSN, a phone number, a birth date or a record
/// number written as a key), since the inventory keeps its paths for years.
pub fn push_inventory_key(path: &mut String, key: &[u8]) {
    if !path.is_empty() {
        path.push('.');
    }
    let letter = key.iter().any(u8::is_ascii_alphabetic);
    let digits = key.split(|b| !b.is_ascii_digit()).any(|run| run.len() >= 4);
    match std::str::from_utf8(key) {
        Ok(text) if letter && !digits && looks_like_field_name(key) => path.push_str(text),
        _ => path.push_str(HIDDEN),
    }
}

/// Appends `key` alone, shown as [`push_key`] shows it.
fn push_shown(out: &mut String, key: &[u8]) {
    match std::str::from_utf8(key) {
        Ok(text) if looks_like_field_name(key) => out.push_str(text),
        _ => out.push_str(HIDDEN),
    }
}

/// Says where the key written twice that starts at `offset` of `src`
/// stands: `the key "plan" written twice in the object at properties`.
/// Keys are shown as [`push_key`] shows them, never a value.
pub fn duplicate(src: &[u8], offset: usize) -> String {
    let mut path = String::new();
    let mut key = Vec::new();
    locate(src, offset, &mut path, &mut key);
    let mut out = String::from("the key \"");
    push_shown(&mut out, &key);
    out.push_str("\" written twice ");
    if path.is_empty() {
        out.push_str("at the top level");
    } else {
        out.push_str("in the object at ");
        out.push_str(&path);
    }
    out
}

/// Walks `src` (valid JSON up to `offset`) to the object that holds the
/// key at `offset`, writing its path and that key; stops quietly on
/// anything unexpected (the message is then less precise, never wrong).
fn locate(src: &[u8], offset: usize, path: &mut String, found: &mut Vec<u8>) {
    let mut r = Reader::validated(src, 0, usize::MAX);
    // Each round enters the container at `r` that holds `offset`.
    loop {
        let Ok(kind) = r.peek_kind() else { return };
        let start = r.pos();
        let mut next = None;
        match kind {
            Kind::Object => {
                if r.begin_object(1).is_err() {
                    return;
                }
                let mut first = true;
                while let Ok(Some(key)) = r.next_key(&mut first) {
                    let Ok(name) = r.decode(key) else { return };
                    if key.start == offset {
                        found.extend_from_slice(&name);
                        return;
                    }
                    if let Some(at) = holds(&mut r, offset) {
                        push_key(path, &name);
                        next = Some(at);
                        break;
                    }
                }
            }
            Kind::Array => {
                if r.begin_array(1).is_err() {
                    return;
                }
                let mut first = true;
                while let Ok(true) = r.next_element(&mut first) {
                    if let Some(at) = holds(&mut r, offset) {
                        path.push_str("[]");
                        next = Some(at);
                        break;
                    }
                }
            }
            _ => return,
        }
        match next {
            Some(at) if at > start => r = Reader::validated(src, at, usize::MAX),
            _ => return,
        }
    }
}

/// Skips the value at `r`; where it starts if `offset` lies inside it (or
/// it cannot be delimited: the text after `offset` need not be valid).
fn holds(r: &mut Reader<'_>, offset: usize) -> Option<usize> {
    r.peek_kind().ok()?;
    let start = r.pos();
    match r.skip_value(1) {
        Ok((_, end)) if offset >= end || offset < start => None,
        _ => Some(start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_pass_and_others_do_not() {
        for key in [
            "plan",
            "utm_source",
            "$price",
            "a.b-c_d",
            "x".repeat(64).as_str(),
        ] {
            assert!(looks_like_field_name(key.as_bytes()), "{key}");
        }
        for key in [
            "",
            "Jane Doe HIV positive",
            "jane.doe@example.com",
            "123-45-6789",
            "naïve",
            "a/b",
            "x".repeat(65).as_str(),
        ] {
            assert!(!looks_like_field_name(key.as_bytes()), "{key}");
        }
    }

    #[test]
    fn the_inventory_hides_numbers_written_as_keys() {
        let shown = |key: &str| {
            let mut path = String::from("properties");
            push_inventory_key(&mut path, key.as_bytes());
            path
        };
        for key in ["plan", "address2", "utm_source", "q4_26", "line1"] {
            assert_eq!(shown(key), format!("properties.{key}"));
        }
        for key in [
            "078051120",
            "5551234567",
            "19800101",
            "123",
            "MRN00482913",
            "dob_19840101",
            "Jane Doe",
            "_",
        ] {
            assert_eq!(shown(key), "properties.[key]", "{key}");
        }
    }

    #[test]
    fn says_where_the_duplicate_is() {
        let src = br#"{"a":1,"properties":{"Jane Doe":{"x":[{"k":1,"k":2}]}}}"#;
        let at = src.windows(4).rposition(|w| w == b"\"k\":").unwrap();
        assert_eq!(
            duplicate(src, at),
            "the key \"k\" written twice in the object at properties.[key].x[]"
        );
        let src = br#"{"a":1,"b":2,"a":3}"#;
        assert_eq!(
            duplicate(src, 13),
            "the key \"a\" written twice at the top level"
        );
    }
}
