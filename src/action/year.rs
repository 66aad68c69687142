//! `year`: a date or date-time reduced to its year (Safe Harbor): a year
//! 90 or more years before the event's time is indicative of an age over
//! 89, so it is sent as one category, [`AGGREGATED`], never as itself.

use std::borrow::Cow;

use super::{Input, Output};
use crate::event::{Event, Field, MAX_DEPTH};
use crate::json::{Kind, Reader};
use crate::structural::{date_parts, rfc3339, utc_year};

/// What a year 90 or more years before the event's time becomes (like
/// `age`'s `"90+"`): the same for every such year, so it reveals none.
pub const AGGREGATED: &str = "90+ years";

/// How many years before the event's time a year is aggregated.
pub const AGGREGATE_AFTER: i64 = 90;

/// `1987-04-12` or an RFC 3339 date-time: the year as written, as a
/// string, or [`AGGREGATED`] when it is 90 or more years before
/// `event_year`; a date that does not exist, anything else, or no event
/// year to compare with (no clock): `None`.
pub fn apply(input: Input<'_>, event_year: Option<i64>) -> Option<Output> {
    let Input::Text(t) = input else {
        return None;
    };
    let valid = if t.len() == 10 {
        date_parts(t).is_some()
    } else {
        rfc3339(t)
    };
    let (year, _, _) = date_parts(t.get(..10)?).filter(|_| valid)?;
    if event_year? - i64::from(year) >= AGGREGATE_AFTER {
        return Some(Output::Text(AGGREGATED.into()));
    }
    Some(Output::Text(format!("{year:04}")))
}

/// The year `year` compares with: that of the event's `timestamp` (as
/// written, the sender's calendar), else of its `receivedAt`, when one is
/// an RFC 3339 date-time; else the current year in UTC from `now`
/// (milliseconds since the Unix epoch), if there is a clock.
pub fn event_year(event: &Event<'_>, now: impl FnOnce() -> Option<i64>) -> Option<i64> {
    ["timestamp", "receivedAt"]
        .into_iter()
        .find_map(|key| {
            let text = time_member(event, key)?;
            rfc3339(&text)
                .then(|| date_parts(text.get(..10)?))
                .flatten()
        })
        .map(|(year, _, _)| i64::from(year))
        .or_else(|| now().map(utc_year))
}

/// The decoded string of the event's top-level member `key` (one of the
/// time fields), if it is a string.
fn time_member<'a>(event: &Event<'a>, key: &str) -> Option<Cow<'a, [u8]>> {
    event.members.iter().find_map(|m| {
        if m.field != Field::Timestamp || m.kind != Kind::String {
            return None;
        }
        let mut r = Reader::validated(event.src, m.value, MAX_DEPTH);
        if *r.decode(m.key).ok()? != *key.as_bytes() {
            return None;
        }
        let span = r.string().ok()?;
        r.decode(span).ok()
    })
}

/// The time now in milliseconds since the Unix epoch: the JavaScript
/// clock in WebAssembly (the Worker's is that of the request), the
/// system's elsewhere; `None` when there is none.
pub fn clock() -> Option<i64> {
    #[cfg(target_arch = "wasm32")]
    {
        let ms = js_sys::Date::now();
        // A NaN or infinite clock gives no year (the value is dropped).
        ms.is_finite().then_some(ms as i64)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        i64::try_from(since.as_millis()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn year(s: &str, event_year: i64) -> Option<Output> {
        apply(Input::Text(s.as_bytes()), Some(event_year))
    }

    #[test]
    fn years() {
        let out = Some(Output::Text("1987".into()));
        assert_eq!(year("1987-04-12", 2026), out);
        assert_eq!(year("1987-04-12T08:00:00Z", 2026), out);
        assert_eq!(
            year("1987-12-31T23:30:00-05:00", 2026),
            out,
            "the year as written, not in UTC"
        );
        assert_eq!(year("2024-02-29", 2026), Some(Output::Text("2024".into())));
        // A future date is no age over 89: its year as written.
        assert_eq!(year("2090-01-01", 2026), Some(Output::Text("2090".into())));
        for bad in [
            "2023-02-29",
            "1987-13-01",
            "1987-04",
            "1987",
            "04/12/1987",
            "1987-04-12T08:00",
            "1925-03-14 Jane Doe",
            "",
        ] {
            assert_eq!(year(bad, 2026), None, "{bad}");
        }
        assert_eq!(apply(Input::Number(b"1987"), Some(2026)), None);
        assert_eq!(apply(Input::Text(b"1987-04-12"), None), None, "no clock");
    }

    #[test]
    fn ninety_years_before_the_event_are_one_category() {
        let aggregated = Some(Output::Text(AGGREGATED.into()));
        // 89 years before: the year; 90 or more: the category.
        assert_eq!(year("1937-01-01", 2026), Some(Output::Text("1937".into())));
        assert_eq!(year("1937-12-31T23:59:59Z", 2026), year("1937-01-01", 2026));
        for old in [
            "1936-12-31",
            "1936-01-01T00:00:00Z",
            "1925-03-14",
            "1066-10-14",
            "0001-01-01",
        ] {
            assert_eq!(year(old, 2026), aggregated, "{old}");
        }
        assert_eq!(year("1925-03-14", 2014), Some(Output::Text("1925".into())));
        assert_eq!(year("1925-03-14", 2015), aggregated);
    }

    #[test]
    fn the_event_year() {
        let year_of = |event: &str| {
            let e = Event::read(event.as_bytes()).unwrap();
            event_year(&e, || Some(1_795_428_000_000)) // 2026-11-23
        };
        let ev =
            |extra: &str| format!(r#"{{"type":"track","event":"e","anonymousId":"a"{extra}}}"#);
        assert_eq!(year_of(&ev("")), Some(2026), "now");
        assert_eq!(
            year_of(&ev(r#","receivedAt":"2001-01-01T00:00:00Z""#)),
            Some(2001)
        );
        assert_eq!(
            year_of(&ev(
                r#","receivedAt":"2001-01-01T00:00:00Z","timestamp":"1999-12-31T23:00:00-05:00""#
            )),
            Some(1999),
            "timestamp first, as written"
        );
        assert_eq!(
            year_of(&ev(
                r#","timestamp":"Jane Doe","receivedAt":"2001-01-01T00:00:00Z""#
            )),
            Some(2001)
        );
        assert_eq!(
            year_of(&ev(r#","time\u0073tamp":"1990-05-05T00:00:00Z""#)),
            Some(1990)
        );
        assert_eq!(
            year_of(&ev(
                r#","sentAt":"1990-05-05T00:00:00Z","originalTimestamp":"1990-05-05T00:00:00Z""#
            )),
            Some(2026),
            "only timestamp and receivedAt count"
        );
        let text = ev("");
        let e = Event::read(text.as_bytes()).unwrap();
        assert_eq!(event_year(&e, || None), None);
    }
}
