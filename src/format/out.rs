//! JSON text as the native formats write it.

use super::sanitized::Field;
use crate::json::write_string;

/// JSON text being written: a `String` built only from `&str` pieces, so
/// no UTF-8 check of the result is needed.
pub(super) struct Out(pub(super) String);

impl Out {
    pub(super) fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }

    pub(super) fn string(&mut self, s: &str) {
        write_string(&mut self.0, s);
    }

    /// `,"key":` (no comma before the first member).
    pub(super) fn key(&mut self, key: &str) {
        self.comma();
        self.string(key);
        self.0.push(':');
    }

    pub(super) fn comma(&mut self) {
        if !matches!(self.0.as_bytes().last(), None | Some(b'{' | b'[')) {
            self.0.push(',');
        }
    }

    /// A member as the sanitizer wrote it.
    pub(super) fn member(&mut self, f: &Field<'_>) {
        self.comma();
        self.raw(f.raw_key);
        self.0.push(':');
        self.raw(f.value);
    }

    /// `fields` (an object's members), leaving out `reserved` keys (the
    /// format's own).
    pub(super) fn members(&mut self, fields: &[Field<'_>], reserved: &[&str]) {
        for f in fields {
            if !reserved.iter().any(|r| *f.key == *r.as_bytes()) {
                self.member(f);
            }
        }
    }

    pub(super) fn number(&mut self, n: i64) {
        if n < 0 {
            self.0.push('-');
        }
        let mut digits = [0u8; 20];
        let at = crate::message::decimal(n.unsigned_abs(), &mut digits);
        // ASCII digits: the check cannot fail.
        let digits = digits.get(at..).unwrap_or_default();
        self.0
            .push_str(std::str::from_utf8(digits).unwrap_or_default());
    }
}
