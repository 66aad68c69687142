//! `age`: ages of 90 and over become `"90+"` (Safe Harbor); younger ages
//! pass as whole years.

use super::{Input, Output};

/// A number or numeric string (JSON number syntax): below 90 its integer
/// part as a number, 90 or more `"90+"`, negative or not a number `None`.
pub fn apply(input: Input<'_>) -> Option<Output> {
    let text = match input {
        Input::Text(t) | Input::Number(t) => t,
    };
    if !json_number(text) {
        return None;
    }
    let (negative, unsigned) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (&unsigned[..i], exponent_of(&unsigned[i + 1..])?),
        None => (unsigned, 0),
    };
    let point = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let digits: Vec<u8> = mantissa
        .iter()
        .copied()
        .filter(u8::is_ascii_digit)
        .collect();
    let first = digits.iter().position(|&d| d != b'0');
    if negative && first.is_some() {
        return None;
    }
    // Where the decimal point falls among the digits, after the exponent.
    let Some(first) = first else {
        return Some(Output::Number("0".into()));
    };
    let point = point as i64 + exponent;
    let whole_digits = point - first as i64;
    if whole_digits <= 0 {
        return Some(Output::Number("0".into()));
    }
    if whole_digits > 2 {
        return Some(Output::Text("90+".into()));
    }
    let whole = (0..whole_digits as usize).fold(0u32, |v, i| {
        let d = digits.get(first + i).map_or(0, |d| u32::from(d - b'0'));
        v * 10 + d
    });
    Some(if whole >= 90 {
        Output::Text("90+".into())
    } else {
        let mut text = String::new();
        crate::message::push_number(&mut text, u64::from(whole));
        Output::Number(text)
    })
}

/// An exponent's value, saturated far beyond any age.
fn exponent_of(t: &[u8]) -> Option<i64> {
    let (sign, digits) = match t.first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let value = digits
        .iter()
        .fold(0i64, |v, d| (v * 10 + i64::from(d - b'0')).min(1_000_000));
    Some(sign * value)
}

/// Whether `t` follows JSON's number grammar.
fn json_number(t: &[u8]) -> bool {
    // The reader skips white space before a number; a value may not.
    let starts = t.first().is_some_and(|&b| b == b'-' || b.is_ascii_digit());
    let mut r = crate::json::Reader::new(t, 1);
    starts && r.number().is_ok() && r.pos() == t.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let num = |s: &str| apply(Input::Number(s.as_bytes()));
        let text = |s: &str| apply(Input::Text(s.as_bytes()));
        assert_eq!(num("42"), Some(Output::Number("42".into())));
        assert_eq!(num("42.9"), Some(Output::Number("42".into())));
        assert_eq!(text("7"), Some(Output::Number("7".into())));
        assert_eq!(num("0"), Some(Output::Number("0".into())));
        assert_eq!(num("89.99"), Some(Output::Number("89".into())));
        assert_eq!(num("90"), Some(Output::Text("90+".into())));
        assert_eq!(text("104"), Some(Output::Text("90+".into())));
        assert_eq!(num("1e400"), Some(Output::Text("90+".into())));
        assert_eq!(num("4.25e1"), Some(Output::Number("42".into())));
        assert_eq!(num("420e-1"), Some(Output::Number("42".into())));
        assert_eq!(num("0.5"), Some(Output::Number("0".into())));
        assert_eq!(num("-0"), Some(Output::Number("0".into())));
        assert_eq!(num("1e-400"), Some(Output::Number("0".into())));
        assert_eq!(num("900e-1"), Some(Output::Text("90+".into())));
        assert_eq!(num("089"), None);
        for bad in ["-1", "abc", "", " 42", "42 ", "4 2", "0x2A", "NaN", "+42"] {
            assert_eq!(text(bad), None, "{bad}");
        }
    }
}
