//! The shapes in which fields outside the allowlists may reach a restricted
//! destination: only shapes that cannot carry PHI.

/// Whether a boolean `integrations` member may pass under `key`: `All` or
/// the integration name of one of the policy's destinations, ASCII
/// case-insensitively (as routing reads them). Any other key could be
/// free text (`"Jane Doe HIV positive": true`).
pub fn integration_switch(key: &[u8], names: &[String]) -> bool {
    key.eq_ignore_ascii_case(b"All") || names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(key))
}

/// The shape a leaf of the default `context` must have to be sent (the
/// rules a policy gets when it has no `context` list; never written in a
/// policy). Each is an allowlist of forms, so free text does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `library.name`: one of [`SDK_NAMES`].
    SdkName,
    /// `library.version`: `3.1.0`, `npm:next-1.84.3`, `1.0.0-beta.1`.
    SdkVersion,
    /// `locale`: `en`, `en-US`, `zh-Hant-TW`, `es-419`.
    Locale,
    /// `timezone`: `UTC`, `Etc/GMT+5`, `America/New_York`.
    Timezone,
}

/// The SDK names `library.name` may hold, exactly as SDKs send them.
pub const SDK_NAMES: [&str; 22] = [
    "analytics.js",
    "analytics-next",
    "@segment/analytics-next",
    "@segment/analytics-node",
    "analytics-node",
    "analytics-node-next",
    "analytics-python",
    "analytics-ruby",
    "analytics-go",
    "analytics-java",
    "analytics-kotlin",
    "analytics-swift",
    "analytics-ios",
    "analytics-android",
    "analytics-react-native",
    "analytics-flutter",
    "analytics-php",
    "analytics-csharp",
    "RudderLabs JavaScript SDK",
    "RudderLabs Android SDK",
    "RudderLabs iOS SDK",
    "rudder-sdk-python",
];

/// The IANA areas a `timezone` of the form `Area/Location` may name.
const TZ_AREAS: [&str; 10] = [
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
];

/// The `Etc/` zones without an offset (those with one are `Etc/GMT±N`).
const ETC_ZONES: [&str; 7] = [
    "UTC",
    "UCT",
    "GMT",
    "GMT0",
    "Greenwich",
    "Universal",
    "Zulu",
];

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::SdkName,
        Shape::SdkVersion,
        Shape::Locale,
        Shape::Timezone,
    ];

    /// Whether the decoded string `s` has this shape.
    pub fn fits(self, s: &[u8]) -> bool {
        match self {
            Shape::SdkName => SDK_NAMES.iter().any(|n| n.as_bytes() == s),
            Shape::SdkVersion => sdk_version(s),
            Shape::Locale => locale(s),
            Shape::Timezone => timezone(s),
        }
    }

    /// The shape in words (the data map).
    pub fn describe(self) -> &'static str {
        match self {
            Shape::SdkName => "a known SDK name (analytics.js, @segment/analytics-node, analytics-python, RudderLabs JavaScript SDK, …)",
            Shape::SdkVersion => "an SDK version (3.1.0, npm:next-1.84.3, 1.0.0-beta.1)",
            Shape::Locale => "a locale tag (en, en-US, zh-Hant-TW, es-419)",
            Shape::Timezone => "a time zone name (UTC, Etc/GMT+5, America/New_York)",
        }
    }
}

/// `(npm:|web:)?([a-z]{1,8}-)?N(.N){0,3}([-+]S(.S){0,2})?` with N 1–4
/// digits and S 1–12 ASCII letters or digits.
fn sdk_version(s: &[u8]) -> bool {
    let s = s
        .strip_prefix(b"npm:")
        .or_else(|| s.strip_prefix(b"web:"))
        .unwrap_or(s);
    // A run of lower-case letters is a channel prefix (`next-`).
    let s = match s.iter().position(|b| !b.is_ascii_lowercase()) {
        Some(0) => s,
        Some(n @ 1..=8) => match s.split_at_checked(n) {
            Some((_, [b'-', rest @ ..])) => rest,
            _ => return false,
        },
        _ => return false,
    };
    let (numbers, suffix) = match s.iter().position(|b| matches!(b, b'-' | b'+')) {
        Some(i) => match s.split_at_checked(i) {
            Some((numbers, [_, suffix @ ..])) => (numbers, Some(suffix)),
            _ => return false,
        },
        None => (s, None),
    };
    dotted(numbers, 4, 4, u8::is_ascii_digit)
        && suffix.is_none_or(|s| dotted(s, 3, 12, u8::is_ascii_alphanumeric))
}

/// Whether `text` is 1 to `most` parts joined by `.`, each of 1 to `len`
/// bytes that are all `ok`.
fn dotted(text: &[u8], most: usize, len: usize, ok: fn(&u8) -> bool) -> bool {
    let mut count = 0;
    text.split(|&b| b == b'.').all(|part| {
        count += 1;
        count <= most && (1..=len).contains(&part.len()) && part.iter().all(ok)
    })
}

/// `[a-z]{2,3}` and up to two subtags after `-` or `_`: a script
/// (`Hant`), a region (`US`) or a UN M.49 area (`419`).
fn locale(s: &[u8]) -> bool {
    let mut parts = s.split(|&b| b == b'-' || b == b'_');
    let language = parts.next().unwrap_or_default();
    let subtag = |t: &[u8]| match t {
        [a, rest @ ..] if rest.len() == 3 && a.is_ascii_uppercase() => {
            rest.iter().all(u8::is_ascii_lowercase)
        }
        [a, b] => a.is_ascii_uppercase() && b.is_ascii_uppercase(),
        [_, _, _] => t.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    (2..=3).contains(&language.len())
        && language.iter().all(u8::is_ascii_lowercase)
        && parts
            .try_fold(0, |n, t| (n < 2 && subtag(t)).then_some(n + 1))
            .is_some()
}

/// `UTC`, `GMT`, an `Etc/` zone, or `Area/Location[/Sub]` with one of
/// [`TZ_AREAS`] and locations of ASCII letters, `_` and `-`.
fn timezone(s: &[u8]) -> bool {
    if s == b"UTC" || s == b"GMT" {
        return true;
    }
    if let Some(etc) = s.strip_prefix(b"Etc/") {
        return ETC_ZONES.iter().any(|z| z.as_bytes() == etc) || etc_offset(etc);
    }
    let mut parts = s.split(|&b| b == b'/');
    let area = parts.next().unwrap_or_default();
    let location = |t: &[u8]| {
        !t.is_empty()
            && t.iter()
                .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'-'))
    };
    TZ_AREAS.iter().any(|a| a.as_bytes() == area)
        && parts.try_fold(0, |n, t| (n < 2 && location(t)).then_some(n + 1)) >= Some(1)
}

/// `GMT+N` or `GMT-N`, N from 0 to 14 (the `Etc/` offset zones).
fn etc_offset(s: &[u8]) -> bool {
    match s {
        [b'G', b'M', b'T', b'+' | b'-', digits @ ..] => {
            matches!(digits, [d] if d.is_ascii_digit())
                || matches!(digits, [b'1', d] if (b'0'..=b'4').contains(d))
        }
        _ => false,
    }
}

/// The calendar year (UTC) of a time in milliseconds since the Unix epoch.
pub fn utc_year(millis: i64) -> i64 {
    // H. Hinnant's civil_from_days: eras of 400 years, years from March.
    let days = millis.div_euclid(86_400_000) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let month_from_march = (5 * doy + 2) / 153;
    yoe + era * 400 + i64::from(month_from_march >= 10)
}

/// Whether `channel` is one of Segment's: `browser`, `server`, `mobile`.
pub fn channel(value: &[u8]) -> bool {
    matches!(value, b"browser" | b"server" | b"mobile")
}

/// Whether a `version` number's JSON text is an integer from 0 to 99:
/// one or two digits, no sign, fraction or exponent (a longer number could
/// hold a record number).
pub fn version(number: &[u8]) -> bool {
    (1..=2).contains(&number.len()) && number.iter().all(u8::is_ascii_digit)
}

/// Whether `s` is an RFC 3339 date-time: `2026-11-23T14:05:11Z`,
/// `2026-11-23T14:05:11.000+01:00` (`T` and `Z` in either case; a real
/// calendar date; seconds up to 60 for leap seconds; at most nine
/// fractional digits).
pub fn rfc3339(s: &[u8]) -> bool {
    let Some((date, time)) = split_at_t(s) else {
        return false;
    };
    date_ok(date) && time_ok(time)
}

fn split_at_t(s: &[u8]) -> Option<(&[u8], &[u8])> {
    if s.len() < 20 || !matches!(s[10], b'T' | b't') {
        return None;
    }
    Some((&s[..10], &s[11..]))
}

/// The value of `n` ASCII digits, or `None`.
fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0')))
}

/// `YYYY-MM-DD` with a day that exists in that month (leap years too).
pub fn date_ok(d: &[u8]) -> bool {
    date_parts(d).is_some()
}

/// The year, month and day of a `YYYY-MM-DD` date that exists.
pub fn date_parts(d: &[u8]) -> Option<(u32, u32, u32)> {
    if d.len() != 10 || d[4] != b'-' || d[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(&d[..4])?, num(&d[5..7])?, num(&d[8..10])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&day).then_some((year, month, day))
}

/// `HH:MM:SS[.frac](Z|±HH:MM)`.
fn time_ok(t: &[u8]) -> bool {
    time_parts(t).is_some()
}

/// Milliseconds into the UTC day (a leap second counts as the last
/// millisecond of its minute) and the offset east of UTC in minutes, of
/// `HH:MM:SS[.frac](Z|±HH:MM)`.
fn time_parts(t: &[u8]) -> Option<(i64, i64)> {
    if t.len() < 9 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let (h, m, sec) = (num(&t[..2])?, num(&t[3..5])?, num(&t[6..8])?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut millis = 0;
    let mut rest = &t[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        // The first three digits, padded: ".5" is 500 ms.
        millis = (0..3).fold(0, |v, i| {
            v * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |d| i64::from(d - b'0'))
        });
        rest = &frac[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let (oh, om) = (num(&[*oh1, *oh2])?, num(&[*om1, *om2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let (sec, millis) = if sec == 60 { (59, 999) } else { (sec, millis) };
    let day_millis = ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(sec)) * 1000 + millis;
    Some((day_millis, offset))
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time, or `None`
/// when it is not one.
pub fn epoch_millis(s: &[u8]) -> Option<i64> {
    let (date, time) = split_at_t(s)?;
    let (year, month, day) = date_parts(date)?;
    let (day_millis, offset) = time_parts(time)?;
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000 + day_millis - offset * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_milliseconds() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-11-23T10:00:00Z", 1_795_428_000_000),
            ("2026-11-23T10:00:00.5Z", 1_795_428_000_500),
            ("2026-11-23T10:00:00.123456789Z", 1_795_428_000_123),
            ("2026-11-23T11:30:00+01:30", 1_795_428_000_000),
            ("2026-11-23T05:00:00-05:00", 1_795_428_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("1969-12-31T23:59:59Z", -1000),
            ("2016-12-31T23:59:60Z", 1_483_228_799_999),
            ("2000-03-01T00:00:00z", 951_868_800_000),
        ] {
            assert_eq!(epoch_millis(text.as_bytes()), Some(ms), "{text}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00:00",
            "1795428000000",
        ] {
            assert_eq!(epoch_millis(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2026-11-23T14:05:11.000Z",
            "2026-11-23T14:05:11Z",
            "2026-11-23t14:05:11z",
            "2026-11-23T14:05:11+01:00",
            "2026-11-23T14:05:11.123456789-05:30",
            "2024-02-29T00:00:00Z",
            "2016-12-31T23:59:60Z",
        ] {
            assert!(rfc3339(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "SSN 123-45-6789",
            "2026-11-23",
            "2026-11-23 14:05:11Z",
            "2026-11-23T14:05:11",
            "2026-11-23T14:05Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T14:05:11.Z",
            "2026-11-23T14:05:11.0000000000Z",
            "2026-11-23T14:05:11+0100",
            "2026-11-23T14:05:11Zjane",
            "1732270000",
        ] {
            assert!(!rfc3339(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn utc_years() {
        for (text, year) in [
            ("1970-01-01T00:00:00Z", 1970),
            ("1969-12-31T23:59:59Z", 1969),
            ("2026-12-31T23:59:59.999Z", 2026),
            ("2027-01-01T00:00:00Z", 2027),
            ("2000-02-29T12:00:00Z", 2000),
            ("1900-03-01T00:00:00Z", 1900),
            ("0001-01-01T00:00:00Z", 1),
        ] {
            let millis = epoch_millis(text.as_bytes()).unwrap();
            assert_eq!(utc_year(millis), year, "{text}");
        }
    }

    #[test]
    fn default_context_shapes() {
        let fits = |shape: Shape, s: &str| shape.fits(s.as_bytes());
        // What real SDKs send.
        for name in [
            "@segment/analytics-node",
            "analytics-node",
            "analytics-python",
            "analytics.js",
            "RudderLabs JavaScript SDK",
        ] {
            assert!(fits(Shape::SdkName, name), "{name}");
        }
        for v in [
            "3.1.0",
            "npm:next-1.84.3",
            "next-1.84.3",
            "1.0.0-beta.1",
            "2.0.0+build.7",
            "web:1.2",
            "10",
            "1.2.3.4",
        ] {
            assert!(fits(Shape::SdkVersion, v), "{v}");
        }
        for l in ["en", "en-US", "en_US", "zh-Hant-TW", "es-419", "fil"] {
            assert!(fits(Shape::Locale, l), "{l}");
        }
        for z in [
            "UTC",
            "GMT",
            "Etc/UTC",
            "Etc/GMT+5",
            "Etc/GMT-14",
            "America/New_York",
            "America/Argentina/Buenos_Aires",
            "America/Port-au-Prince",
        ] {
            assert!(fits(Shape::Timezone, z), "{z}");
        }
        // Free text and PHI no detector sees fit no shape.
        for shape in Shape::ALL {
            for h in [
                "Jane Doe",
                "HIV positive",
                "jane-doe",
                "jane.doe@example.com",
                "",
            ] {
                assert!(!fits(shape, h), "{shape:?} {h}");
            }
        }
        for name in [
            "analytics.js ",
            "Analytics.js",
            "analytics-node Jane Doe",
            "analytics",
        ] {
            assert!(!fits(Shape::SdkName, name), "{name}");
        }
        for v in [
            "janedoexy-1.0",
            "1.0.0-Jane Doe",
            "1.0.0-HIVpositive00",
            "12345",
            "483920",
            "1.2.3.4.5",
            "1.0.0-a.b.c.d",
            "v1.0",
            "npm:",
            "1.0.",
            ".1",
            "1.0-",
            "npm:web:1.0",
            "HIV-1.0.0-positive",
        ] {
            assert!(!fits(Shape::SdkVersion, v), "{v}");
        }
        for l in [
            "EN",
            "e",
            "engl",
            "en-us",
            "en-US-CA-X",
            "en-Usa",
            "en--US",
            "en-",
        ] {
            assert!(!fits(Shape::Locale, l), "{l}");
        }
        for z in [
            "utc",
            "Etc/Jane_Doe",
            "Etc/GMT+15",
            "Etc/GMT+05",
            "Jane/Doe",
            "America",
            "America/",
            "America/Jane Doe",
            "America/A/B/C",
            "Europe/Jane.Doe",
            "America//X",
        ] {
            assert!(!fits(Shape::Timezone, z), "{z}");
        }
    }

    #[test]
    fn integration_switches() {
        let names = ["amplitude".to_owned(), "Google Analytics 4".to_owned()];
        for ok in ["All", "all", "Amplitude", "AMPLITUDE", "google analytics 4"] {
            assert!(integration_switch(ok.as_bytes(), &names), "{ok}");
        }
        for bad in [
            "Jane Doe HIV positive",
            "Al",
            "Mixpanel",
            "",
            "amplitude ",
            "amplitudé",
        ] {
            assert!(!integration_switch(bad.as_bytes(), &names), "{bad}");
        }
    }

    #[test]
    fn versions_and_channels() {
        assert!(version(b"0") && version(b"2") && version(b"99"));
        for bad in ["100", "483920", "-1", "1.5", "1e1", "2.0", ""] {
            assert!(!version(bad.as_bytes()), "{bad}");
        }
        assert!(channel(b"server") && !channel(b"web") && !channel(b"Server"));
    }
}
