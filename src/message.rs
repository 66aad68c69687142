//! Messages: what was wrong, in words and numbers, never an event value
//! or the masking key. Every error type of the engine describes itself
//! through [`Describe`]; its `Display` is made from that.

/// A message appended to a `String`: errors compose their messages from
/// their parts' (a policy's problems, an event's JSON error) this way.
pub trait Describe {
    /// Appends the message to `out`.
    fn describe(&self, out: &mut String);

    /// The message.
    fn message(&self) -> String {
        let mut out = String::new();
        self.describe(&mut out);
        out
    }
}

/// Appends the decimal digits of `n`.
pub fn push_number(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let at = decimal(n, &mut digits);
    digits[at..].iter().for_each(|&d| out.push(char::from(d)));
}

/// Writes the decimal digits of `n` at the end of `digits`; returns where
/// they start.
pub fn decimal(mut n: u64, digits: &mut [u8; 20]) -> usize {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}

/// Appends each piece in turn: text, or a number.
pub(crate) fn push_all(out: &mut String, pieces: &[Piece<'_>]) {
    for piece in pieces {
        match piece {
            Piece::Text(s) => out.push_str(s),
            Piece::Number(n) => push_number(out, *n),
        }
    }
}

/// A piece of a message.
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Number(u64),
}

pub(crate) use Piece::{Number, Text};

/// `Display` through [`Describe`], for each message type.
macro_rules! display_by_describe {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::message::Describe::message(self))
            }
        }
    )*};
}

pub(crate) use display_by_describe;

/// `s` for a message, quoted, with quotes, backslashes and control
/// characters escaped (as `\u{..}`, the form every message has used).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                out.push_str("\\u{");
                let n = c as u32;
                let mut started = false;
                for shift in (0..8).rev() {
                    let digit = (n >> (shift * 4)) & 0xf;
                    if digit != 0 || started || shift == 0 {
                        started = true;
                        out.push(char::from(b"0123456789abcdef"[digit as usize]));
                    }
                }
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
