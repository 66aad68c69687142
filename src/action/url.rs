//! `url`: an absolute http(s) URL, a path or a query string, reduced to
//! what analytics needs: scheme, host and port; the path with record
//! numbers and other identifier-like segments replaced; only the query
//! parameters the rule names (and none whose value holds PHI); no user
//! info, no fragment.

use crate::detect::{self, Detectors};

/// The options of one `url` rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlRule {
    /// Query parameter names kept; a name ending in `*` is a prefix.
    pub query: Vec<String>,
    /// Path templates (`/patients/:id`), split into segments.
    pub paths: Vec<Vec<String>>,
}

/// How many times percent-decoding is repeated (double-encoded PHI).
const DECODE_ROUNDS: usize = 3;

impl UrlRule {
    /// The reduced URL, or `None` for anything that is not an http(s)
    /// URL, a path or a query string.
    pub fn apply(&self, url: &[u8]) -> Option<String> {
        let url = std::str::from_utf8(url).ok()?;
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return None;
        }
        // The fragment never goes.
        let url = url.split('#').next().unwrap_or_default();
        let (origin, rest) = if url.starts_with('/') || url.starts_with('?') {
            (String::new(), url)
        } else {
            origin(url)?
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut out = origin;
        out.push_str(&self.path(path));
        if let Some(q) = query.map(|q| self.query_of(q)).filter(|q| !q.is_empty()) {
            out.push('?');
            out.push_str(&q);
        }
        Some(out)
    }

    /// The path with template names or `:id` in place of identifiers.
    fn path(&self, path: &str) -> String {
        if path.is_empty() {
            return String::new();
        }
        let segments: Vec<&str> = path.split('/').collect();
        for template in &self.paths {
            if template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    t.starts_with(':') && !s.is_empty() || decoded(s).as_deref() == Some(t.as_str())
                })
            {
                return joined(template.iter().map(String::as_str), '/');
            }
        }
        joined(
            segments
                .iter()
                .map(|s| if identifier_like(s) { ":id" } else { s }),
            '/',
        )
    }

    /// The parameters the rule keeps, as written, in their order.
    fn query_of(&self, query: &str) -> String {
        let kept = query.split('&').filter(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            // A prefix keeps names it cannot vouch for, so names are
            // checked for PHI like values.
            let clean = |s: &str| {
                decoded(&s.replace('+', " "))
                    .filter(|d| !detect::any(d.as_bytes(), Detectors::DEFAULT) && !d.contains('@'))
            };
            clean(name).is_some_and(|n| self.keeps(&n)) && clean(value).is_some()
        });
        joined(kept, '&')
    }

    fn keeps(&self, name: &str) -> bool {
        self.query.iter().any(|q| match q.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => q == name,
        })
    }
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

/// `scheme://host[:port]` of an absolute http(s) URL (user info removed),
/// and the rest.
fn origin(url: &str) -> Option<(String, &str)> {
    // By hand rather than `split_once("://")`, whose substring search
    // weighs on the Worker; http(s) schemes hold no ':'.
    let colon = url.find(':')?;
    let (scheme, after) = (url.get(..colon)?, url.get(colon + 1..)?.strip_prefix("//")?);
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host_port = match authority.rfind('@') {
        Some(at) => authority.get(at + 1..).unwrap_or_default(),
        None => authority,
    };
    if host_port.is_empty() || host_port.starts_with(':') {
        return None;
    }
    Some((
        [&scheme, "://", &host_port.to_ascii_lowercase()].concat(),
        rest,
    ))
}

/// Percent-decoded, repeated while it changes (at most [`DECODE_ROUNDS`]
/// times); `None` when it is not valid encoding or keeps changing.
fn decoded(s: &str) -> Option<String> {
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

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a path segment looks like it identifies someone: after
/// decoding, an `@`, 5 or more digits in a row, a UUID, 16 or more hex
/// digits in a row, or a detector match. Undecodable segments count too.
fn identifier_like(segment: &str) -> bool {
    let Some(s) = decoded(segment) else {
        return true;
    };
    let b = s.as_bytes();
    let run = |pred: fn(&u8) -> bool| b.split(|c| !pred(c)).map(<[u8]>::len).max().unwrap_or(0);
    s.contains('@')
        || run(u8::is_ascii_digit) >= 5
        || run(u8::is_ascii_hexdigit) >= 16
        || has_uuid(b)
        || detect::any(b, Detectors::DEFAULT)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> UrlRule {
        UrlRule {
            query: vec!["utm_*".into(), "page".into(), "q".into()],
            paths: vec![
                "/patients/:patient/results/:result"
                    .split('/')
                    .map(String::from)
                    .collect(),
                "/doctors/:doctor".split('/').map(String::from).collect(),
            ],
        }
    }

    fn url(s: &str) -> Option<String> {
        rule().apply(s.as_bytes())
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
            ("/u/jane%2540x.com/x", "/u/:id/x"),
            ("/t/0123456789abcdef0/x", "/t/:id/x"),
            ("/services/hiv-testing?q=free%20clinic", "/services/hiv-testing?q=free%20clinic"),
            ("?q=jane%40x.com&page=1", "?page=1"),
            ("?q=call+617-555-0100", ""),
            ("/a/%zz/b", "/a/:id/b"),
            ("/a/%25252540/b", "/a/:id/b"),
            ("https://clinic.example", "https://clinic.example"),
            ("/orders/1234/ok", "/orders/1234/ok"),
        ] {
            assert_eq!(url(input).as_deref(), Some(want), "{input}");
        }
        for bad in [
            "mailto:jane@x.com",
            "javascript:alert(1)",
            "clinic.example/x",
            "ftp://x/y",
            "https://",
            "https:///x",
            "/a b",
            "",
        ] {
            assert_eq!(url(bad), None, "{bad}");
        }
    }
}
