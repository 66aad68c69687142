//! `url`: an absolute http(s) URL, a path or a query string, parsed as
//! browsers parse it (the WHATWG URL Standard, through servo's `url`
//! crate, so the engine reads the same host and path a browser would) and
//! reduced, failing closed, to what cannot carry PHI: the scheme, a
//! checked host and the port; the path through the policy's templates and
//! vocabulary, every other segment a placeholder; only the query
//! parameters the rule names, and none that looks like an identifier or a
//! date. User info and fragment never go.

use url::{Host, Url};

use crate::detect::{self, Detectors};

/// Which path segments pass as written outside a template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Segments {
    /// Option absent: none (every segment a placeholder).
    #[default]
    None,
    /// The site's vocabulary: these segments (compared after
    /// percent-decoding) pass.
    Words(Vec<String>),
    /// `"*"`: every segment that is not identifier-like passes (a
    /// heuristic: slugs such as `jane-doe` go through).
    Any,
}

/// The options of one `url` rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlRule {
    /// Query parameter names kept; a name ending in `*` is a prefix.
    pub query: Vec<String>,
    /// Path templates (`/patients/:id`), split at `/` (so each starts
    /// with an empty element, as a path split at `/` does).
    pub paths: Vec<Vec<String>>,
    /// Segments that pass as written outside a template.
    pub segments: Segments,
}

/// How many times percent-decoding is repeated (double-encoded PHI).
const DECODE_ROUNDS: usize = 3;

/// The host relative inputs are parsed against; never in the output.
const BASE_HOST: &str = "phimask.invalid";

/// The placeholder of a segment that looks like an identifier.
const ID: &str = ":id";
/// The placeholder of any other segment the policy does not list.
const SEG: &str = ":seg";

impl UrlRule {
    /// The reduced URL, or `None` for anything that is not an http(s)
    /// URL, a path (`/…`) or a query (`?…`), or whose host may identify
    /// someone.
    pub fn apply(&self, url: &[u8]) -> Option<String> {
        let input = cleaned(std::str::from_utf8(url).ok()?);
        let mut out = String::new();
        let parsed = match input.as_bytes() {
            // `//host/…` (and `\\`, `/\`, `\/`, which WHATWG reads alike)
            // names a host the page did not: refused like any other
            // non-URL.
            [b'/' | b'\\', b'/' | b'\\', ..] => return None,
            [b'/' | b'\\' | b'?', ..] => {
                let base = if input.starts_with('?') { "/" } else { "" };
                let parsed = Url::parse(&["https://", BASE_HOST, base, &input].concat()).ok()?;
                // Defence in depth: the relative part cannot have moved
                // the authority.
                let same = parsed.host_str() == Some(BASE_HOST)
                    && parsed.port().is_none()
                    && parsed.username().is_empty()
                    && parsed.password().is_none();
                if !same {
                    return None;
                }
                parsed
            }
            _ => {
                let parsed = Url::parse(&input).ok()?;
                out.push_str(&origin(&parsed)?);
                parsed
            }
        };
        if !input.starts_with('?') {
            out.push_str(&self.path(parsed.path()));
        }
        if let Some(q) = parsed.query().map(|q| self.query_of(q)) {
            if !q.is_empty() {
                out.push('?');
                out.push_str(&q);
            }
        }
        Some(out)
    }

    /// The path: a template it fits, else segment by segment.
    fn path(&self, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        if let Some(template) = self.paths.iter().find(|t| fits(t, &segments)) {
            return joined(template.iter().map(String::as_str), '/');
        }
        joined(segments.iter().map(|s| self.segment(s)), '/')
    }

    /// One segment outside a template: a vocabulary word, or a
    /// placeholder (as written only under `"segments": "*"`).
    fn segment<'a>(&'a self, segment: &'a str) -> &'a str {
        if segment.is_empty() {
            return segment;
        }
        let Some(plain) = decoded(segment) else {
            return ID;
        };
        if let Segments::Words(words) = &self.segments {
            if let Some(word) = words.iter().find(|w| **w == plain) {
                return word;
            }
        }
        if identifier_like(&plain) {
            ID
        } else if self.segments == Segments::Any {
            segment
        } else {
            SEG
        }
    }

    /// The parameters the rule keeps, as written, in their order.
    fn query_of(&self, query: &str) -> String {
        joined(query.split('&').filter(|pair| self.keeps_pair(pair)), '&')
    }

    /// A listed name, and neither name nor value identifier-like or a date.
    fn keeps_pair(&self, pair: &str) -> bool {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // A prefix keeps names it cannot vouch for, so names are checked
        // like values.
        let clean = |s: &str| decoded(&s.replace('+', " ")).filter(|d| !identifier_like(d));
        match (clean(name), clean(value)) {
            (Some(name), Some(_)) => self.keeps(&name),
            _ => false,
        }
    }

    fn keeps(&self, name: &str) -> bool {
        self.query.iter().any(|q| match q.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => q == name,
        })
    }
}

/// Whether a path (split at `/`) fits a template (split alike): literal
/// segments equal after decoding, a `:name` any non-empty segment.
fn fits(template: &[String], segments: &[&str]) -> bool {
    template.len() == segments.len()
        && template.iter().zip(segments).all(|(t, s)| {
            if t.starts_with(':') {
                !s.is_empty()
            } else {
                decoded(s).as_deref() == Some(t.as_str())
            }
        })
}

/// The input as WHATWG reads it: leading and trailing C0 controls and
/// spaces trimmed, tabs and newlines anywhere removed.
fn cleaned(s: &str) -> String {
    s.trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// `scheme://host[:port]` of an absolute http(s) URL, or `None` when the
/// scheme is another, or the host is an IP address, not a DNS name, or
/// has a label that may identify someone.
fn origin(url: &Url) -> Option<String> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    // An address is at best a development server and at worst a
    // visitor's or device's: the `ip` detector's match, dropped.
    let Some(Host::Domain(host)) = url.host() else {
        return None;
    };
    // The detectors once on the whole host: `.` is a boundary for each.
    if !dns_name(host)
        || host.split('.').any(shaped_like_identifier)
        || detect::any(host.as_bytes(), Detectors::DEFAULT)
    {
        return None;
    }
    let mut out = [scheme, "://", host].concat();
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    Some(out)
}

/// A DNS name as the parser leaves it (lower-case ASCII): labels of 1–63
/// letters, digits and `-`, at most 253 characters. WHATWG allows more
/// (`_`, `!`, `*`, a trailing dot); none of it is a web site's name.
fn dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The parts with `separator` between them.
pub(crate) fn joined<'s>(parts: impl Iterator<Item = &'s str>, separator: char) -> String {
    let mut out = String::new();
    for (i, part) in parts.enumerate() {
        if i > 0 {
            out.push(separator);
        }
        out.push_str(part);
    }
    out
}

/// Percent-decoded, repeated while it changes (at most [`DECODE_ROUNDS`]
/// times); `None` when it is not valid encoding or keeps changing.
fn decoded(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let mut current = s.to_owned();
    for _ in 0..DECODE_ROUNDS {
        let next = percent_decode(&current)?;
        if next == current {
            return Some(current);
        }
        current = next;
    }
    (percent_decode(&current)? == current).then_some(current)
}

/// One round of percent-decoding; `None` for a `%` without two hex
/// digits or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Whether decoded text looks like it identifies someone: an `@` (or its
/// fullwidth and small forms), 5 or more digits in all (any script's
/// digits, in a row or not: `123_45_6789`), 16 or more hex digits in a
/// row, a UUID, a numeric date or a detector match.
pub(crate) fn identifier_like(s: &str) -> bool {
    shaped_like_identifier(s) || detect::any(s.as_bytes(), Detectors::DEFAULT)
}

/// [`identifier_like`] but for the detectors.
fn shaped_like_identifier(s: &str) -> bool {
    let digits = s.chars().filter(|c| c.is_numeric()).count();
    // The length and digit tests first skip scans that cannot match (this
    // runs for every segment, label and parameter on the Worker).
    s.contains(['@', '＠', '﹫'])
        || digits >= 5
        || (s.len() >= 16 && longest_run(s.as_bytes(), u8::is_ascii_hexdigit) >= 16)
        || (s.len() >= 36 && has_uuid(s.as_bytes()))
        || (digits >= 3 && holds_date(s))
}

fn longest_run(b: &[u8], pred: fn(&u8) -> bool) -> usize {
    b.split(|c| !pred(c)).map(<[u8]>::len).max().unwrap_or(0)
}

/// A UUID (8-4-4-4-12 hex digits) anywhere in `b`.
fn has_uuid(b: &[u8]) -> bool {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    (0..b.len()).any(|start| {
        let mut at = start;
        SHAPE.iter().enumerate().all(|(i, &n)| {
            let ok = b
                .get(at..at + n)
                .is_some_and(|g| g.iter().all(u8::is_ascii_hexdigit))
                && (i == 4 || b.get(at + n) == Some(&b'-'));
            at += n + 1;
            ok
        })
    })
}

/// A numeric date: three runs of digits joined by the same `-`, `/` or
/// `.`, shaped year-month-day (`1962-03-14`) or day-month-year / month-
/// day-year (`03/14/1962`, `14.03.1962`, `3/14/62`; a two-digit year not
/// with `.`, which versions such as `10.4.12` use).
fn holds_date(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    // Maximal runs of digits, as (start, end).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while chars.get(i).is_some_and(|c| c.is_numeric()) {
            i += 1;
        }
        if i > start {
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs.windows(3).any(|w| {
        let [a, b, c] = w else { return false };
        let sep = chars.get(a.1).copied();
        let joined = b.0 == a.1 + 1
            && c.0 == b.1 + 1
            && sep == chars.get(b.1).copied()
            && matches!(sep, Some('-' | '/' | '.'));
        let (la, lb, lc) = (a.1 - a.0, b.1 - b.0, c.1 - c.0);
        let ymd = la == 4 && (1..=2).contains(&lb) && (1..=2).contains(&lc);
        let dmy = (1..=2).contains(&la)
            && (1..=2).contains(&lb)
            && (lc == 4 || (lc == 2 && sep != Some('.')));
        joined && (ymd || dmy)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(template: &str) -> Vec<String> {
        template.split('/').map(String::from).collect()
    }

    fn rule(segments: Segments) -> UrlRule {
        UrlRule {
            query: vec!["utm_*".into(), "page".into(), "q".into()],
            paths: vec![
                split("/patients/:patient/results/:result"),
                split("/doctors/:doctor"),
            ],
            segments,
        }
    }

    fn words() -> Segments {
        Segments::Words(
            [
                "patients", "results", "services", "visits", "notes", "orders", "ok",
            ]
            .map(String::from)
            .to_vec(),
        )
    }

    fn url(s: &str) -> Option<String> {
        rule(words()).apply(s.as_bytes())
    }

    #[test]
    fn reduces_urls() {
        for (input, want) in [
            (
                "https://clinic.example/patients/483920/results?email=jane%40x.com&utm_source=ad&page=2#top",
                "https://clinic.example/patients/:id/results?utm_source=ad&page=2",
            ),
            (
                "https://clinic.example/patients/483920/results/77",
                "https://clinic.example/patients/:patient/results/:result",
            ),
            ("HTTPS://jane:pw@Clinic.Example:8443/doctors/alan-grant", "https://clinic.example:8443/doctors/:doctor"),
            ("/visits/f47ac10b-58cc-4372-a567-0e02b2c3d479/notes", "/visits/:id/notes"),
            ("/u/jane%2540x.com/x", "/:seg/:id/:seg"),
            ("/t/0123456789abcdef0/x", "/:seg/:id/:seg"),
            ("/services/hiv-testing?q=free%20clinic", "/services/:seg?q=free%20clinic"),
            ("/%73ervices", "/services"),
            ("?q=jane%40x.com&page=1", "?page=1"),
            ("?q=call+617-555-0100", ""),
            ("/a/%zz/b", "/:seg/:id/:seg"),
            ("/a/%25252540/b", "/:seg/:id/:seg"),
            ("https://clinic.example", "https://clinic.example/"),
            ("/orders/1234/ok", "/orders/:seg/ok"),
            ("https://clinic.example\\patients\\483920", "https://clinic.example/patients/:id"),
            ("\\patients\\jane-doe", "/patients/:seg"),
            ("  https://clinic.example/pat\tients\n/x  ", "https://clinic.example/patients/:seg"),
            ("https:clinic.example/patients", "https://clinic.example/patients"),
            ("/", "/"),
            ("/patients/", "/patients/"),
        ] {
            assert_eq!(url(input).as_deref(), Some(want), "{input}");
        }
        for bad in [
            "mailto:jane@x.com",
            "javascript:alert(1)",
            "clinic.example/x",
            "ftp://x/y",
            "https://",
            "//clinic.example/patients",
            "\\\\clinic.example/patients",
            "/\\clinic.example/patients",
            "https://clinic%2Fexample/x",
            "https://jane%40clinic.example/x",
            "https://clinic.example:80a/x",
            "https://[::1]/x",
            "https://10.0.0.1/x",
            "https://mrn483920.clinic.example/x",
            "https://a_b.example/x",
            "https://example.com./x",
            "",
            "   ",
        ] {
            assert_eq!(url(bad), None, "{bad}");
        }
    }

    #[test]
    fn segments_modes() {
        let none = rule(Segments::None);
        let any = rule(Segments::Any);
        let path = "/services/jane-doe/483920";
        assert_eq!(
            none.apply(path.as_bytes()).as_deref(),
            Some("/:seg/:seg/:id")
        );
        assert_eq!(
            any.apply(path.as_bytes()).as_deref(),
            Some("/services/jane-doe/:id")
        );
        assert_eq!(url(path).as_deref(), Some("/services/:seg/:id"));
        // A template wins over the vocabulary, whole.
        assert_eq!(
            url("/patients/jane-doe/results/x").as_deref(),
            Some("/patients/:patient/results/:result")
        );
    }

    #[test]
    fn identifiers_and_dates() {
        for s in [
            "1962-03-14",
            "03/14/1962",
            "14.03.1962",
            "3-14-62",
            "dob 3/14/62",
            "123_45_6789",
            "１２３４５",
            "jane＠x",
            "F47AC10B-58CC-4372-A567-0E02B2C3D479",
            "abcdefabcdefabcd",
            "617-555-0100",
        ] {
            assert!(identifier_like(s), "{s}");
        }
        for s in [
            "google",
            "spring_sale_2026",
            "1.4.12",
            "v2",
            "cpc",
            "hiv-testing",
            "1234",
        ] {
            assert!(!identifier_like(s), "{s}");
        }
    }
}
