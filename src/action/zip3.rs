//! `zip3`: a US ZIP code reduced to its first three digits (Safe Harbor),
//! or `000` where those three digits cover 20,000 people or fewer.

use super::{Input, Output};

/// The three-digit ZIP prefixes of 20,000 or fewer people (45 CFR
/// 164.514(b)(2)(i)(B), with the Census figures HHS publishes).
pub const RESTRICTED: [&[u8; 3]; 17] = [
    b"036", b"059", b"063", b"102", b"203", b"556", b"692", b"790", b"821", b"823", b"830", b"831",
    b"878", b"879", b"884", b"890", b"893",
];

/// `12345` or `12345-6789` (a string), or a five-digit number: the first
/// three digits as a string; anything else `None`.
pub fn apply(input: Input<'_>) -> Option<Output> {
    let zip = match input {
        Input::Text(t) => match t.len() {
            5 => t,
            10 if t[5] == b'-' && t[6..].iter().all(u8::is_ascii_digit) => &t[..5],
            _ => return None,
        },
        // A number cannot keep a leading zero, so only five digits fit.
        Input::Number(n) if n.len() == 5 => n,
        Input::Number(_) => return None,
    };
    if !zip.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let prefix: &[u8; 3] = zip[..3].try_into().ok()?;
    let out = if RESTRICTED.contains(&prefix) {
        b"000"
    } else {
        prefix
    };
    Some(Output::Text(out.iter().map(|&b| char::from(b)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_zips() {
        let text = |s: &str| apply(Input::Text(s.as_bytes()));
        let out = |s: &str| Some(Output::Text(s.into()));
        assert_eq!(text("02134"), out("021"));
        assert_eq!(text("02134-1234"), out("021"));
        assert_eq!(text("03601"), out("000"));
        assert_eq!(text("89301-0001"), out("000"));
        assert_eq!(apply(Input::Number(b"90210")), out("902"));
        for bad in [
            "2134",
            "021345",
            "02134-12",
            "0213a",
            "02134 1234",
            "",
            "02134-123x",
        ] {
            assert_eq!(text(bad), None, "{bad}");
        }
        assert_eq!(apply(Input::Number(b"2134")), None);
        assert_eq!(apply(Input::Number(b"90210.5")), None);
    }
}
