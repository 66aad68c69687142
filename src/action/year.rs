//! `year`: a date or date-time reduced to its year (Safe Harbor).

use super::{Input, Output};
use crate::structural::{date_ok, rfc3339};

/// `1987-04-12` or an RFC 3339 date-time: the year as a string; a date
/// that does not exist, or anything else, `None`.
pub fn apply(input: Input<'_>) -> Option<Output> {
    let Input::Text(t) = input else {
        return None;
    };
    let valid = if t.len() == 10 {
        date_ok(t)
    } else {
        rfc3339(t)
    };
    valid.then(|| Output::Text(t[..4].iter().map(|&b| char::from(b)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years() {
        let year = |s: &str| apply(Input::Text(s.as_bytes()));
        let out = Some(Output::Text("1987".into()));
        assert_eq!(year("1987-04-12"), out);
        assert_eq!(year("1987-04-12T08:00:00Z"), out);
        assert_eq!(
            year("1987-12-31T23:30:00-05:00"),
            out,
            "the year as written, not in UTC"
        );
        assert_eq!(year("2024-02-29"), Some(Output::Text("2024".into())));
        for bad in [
            "2023-02-29",
            "1987-13-01",
            "1987-04",
            "1987",
            "04/12/1987",
            "1987-04-12T08:00",
            "",
        ] {
            assert_eq!(year(bad), None, "{bad}");
        }
        assert_eq!(apply(Input::Number(b"1987")), None);
    }
}
