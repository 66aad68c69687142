//! Destination credentials: the `AUTH_<NAME>` secret of a destination,
//! checked against what its format's API takes and placed where that API
//! wants it (a header, the body's `api_key`, query parameters). Request
//! bodies are made without it (they wait in queues and dead letters): a
//! body credential is a member the sender adds. Errors say what form was
//! expected and never quote the secret; `Debug` shows nothing of it.

use crate::format::Format;

/// Amplitude's API key: 32 hexadecimal digits.
const AMPLITUDE_KEY_CHARS: usize = 32;
/// PostHog's project key: `phc_` and 8 to 128 letters and digits.
const POSTHOG_KEY_PREFIX: &str = "phc_";
const POSTHOG_KEY_MAX_CHARS: usize = 128;
/// `"api_key":"` and `",` around the key.
const API_KEY_MEMBER_BYTES: usize = "\"api_key\":\"\",".len();

/// The most bytes a format's body credential adds to a body (its
/// [`Target::body_member`]): bodies are made this much under the API's
/// limit, so they stay within it once the credential is added.
pub fn body_member_room(format: Format) -> usize {
    match format {
        Format::Amplitude => API_KEY_MEMBER_BYTES + AMPLITUDE_KEY_CHARS,
        Format::Posthog => API_KEY_MEMBER_BYTES + POSTHOG_KEY_PREFIX.len() + POSTHOG_KEY_MAX_CHARS,
        Format::Segment | Format::Ndjson | Format::Mixpanel | Format::Ga4 => 0,
    }
}

/// `"api_key":KEY,` for a key already checked to be letters, digits and
/// `_` (nothing to escape); `None` if it would not fit its room.
fn api_key_member(format: Format, key: &str) -> Option<String> {
    let member = ["\"api_key\":\"", key, "\","].concat();
    (member.len() <= body_member_room(format)).then_some(member)
}

/// Where a destination's requests go and what authenticates them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The endpoint, with any query parameters the credential adds.
    pub url: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON member to insert right after a body's opening `{` when
    /// sending it (`"api_key":"…",` of Amplitude and PostHog): never in
    /// the bodies phimask makes, which may be stored.
    pub body_member: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Target(<credential hidden>)")
    }
}

/// The Worker secret holding a destination's credential: `AUTH_` and the
/// name upper-cased, anything but letters and digits as `_`
/// (`amplitude-eu` → `AUTH_AMPLITUDE_EU`).
pub fn secret_name(destination: &str) -> String {
    let mut name = String::from("AUTH_");
    name.extend(destination.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    name
}

/// What each format's credential must be, for the error message.
fn expected(format: Format) -> &'static str {
    match format {
        Format::Segment | Format::Ndjson => {
            "must be unset, or the Authorization header to send (printable ASCII)"
        }
        Format::Amplitude => "must be the Amplitude project's API key (32 hexadecimal digits)",
        Format::Mixpanel => {
            "must be a Mixpanel service account as USERNAME:SECRET (with project_id in the endpoint), or the project's API secret"
        }
        Format::Ga4 => {
            "must be MEASUREMENT_ID:API_SECRET, e.g. G-ABC123XYZ:secret (from the GA4 data stream's Measurement Protocol API secrets)"
        }
        Format::Posthog => "must be the PostHog project API key (phc_…), not a personal API key (phx_…)",
    }
}

fn token(s: &str, min: usize, max: usize, also: &[u8]) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || also.contains(&b))
}

/// The query parameter `name`'s value in `url`, if present.
fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// `url` with `param` appended to its query.
fn with_query(url: &str, param: &str) -> String {
    let (base, fragment) = url.split_once('#').unwrap_or((url, ""));
    let mut out = String::from(base);
    out.push(if base.contains('?') { '&' } else { '?' });
    out.push_str(param);
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Checks `secret` for `format` and places it for requests to `endpoint`.
///
/// # Errors
/// What the credential (or, for Mixpanel and GA4, the endpoint's query)
/// must be; never the secret itself.
pub fn target(
    format: Format,
    endpoint: &str,
    secret: Option<&str>,
) -> Result<Target, &'static str> {
    let mut target = Target {
        url: endpoint.to_owned(),
        ..Target::default()
    };
    let secret = secret.filter(|s| !s.is_empty());
    match format {
        Format::Segment | Format::Ndjson => {
            if let Some(s) = secret {
                if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) || s.trim().is_empty() {
                    return Err(expected(format));
                }
                target.authorization = Some(s.to_owned());
            }
        }
        Format::Amplitude => match secret {
            Some(s)
                if s.len() == AMPLITUDE_KEY_CHARS && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                target.body_member = Some(api_key_member(format, s).ok_or(expected(format))?);
            }
            _ => return Err(expected(format)),
        },
        Format::Posthog => {
            match secret.zip(secret.and_then(|s| s.strip_prefix(POSTHOG_KEY_PREFIX))) {
                Some((s, rest)) if token(rest, 8, POSTHOG_KEY_MAX_CHARS, b"") => {
                    target.body_member = Some(api_key_member(format, s).ok_or(expected(format))?);
                }
                _ => return Err(expected(format)),
            }
        }
        Format::Mixpanel => {
            let s = secret.ok_or(expected(format))?;
            let pair = match s.split_once(':') {
                Some((user, pass))
                    if token(user, 1, 256, b"._-@") && token(pass, 1, 256, b"._-") =>
                {
                    if query_param(endpoint, "project_id").is_none() {
                        return Err("is a service account (USERNAME:SECRET), which needs project_id=… in the destination's endpoint");
                    }
                    s.to_owned()
                }
                None if token(s, 1, 256, b"._-") => [s, ":"].concat(),
                _ => return Err(expected(format)),
            };
            target.authorization = Some(["Basic ", &base64(pair.as_bytes())].concat());
            // strict=1 makes /import validate each event and name the ones
            // it refused (failed_records) instead of dropping them quietly.
            match query_param(endpoint, "strict") {
                None => target.url = with_query(endpoint, "strict=1"),
                Some("1") => {}
                Some(_) => return Err("needs an endpoint without strict=0 (phimask reads Mixpanel's per-event answers, given with strict=1)"),
            }
        }
        Format::Ga4 => {
            if query_param(endpoint, "api_secret").is_some()
                || query_param(endpoint, "measurement_id").is_some()
            {
                return Err("holds the measurement ID and API secret: remove them from the destination's endpoint");
            }
            let (id, api_secret) = secret
                .and_then(|s| s.split_once(':'))
                .ok_or(expected(format))?;
            let id_ok = id
                .strip_prefix("G-")
                .is_some_and(|rest| token(rest, 4, 20, b""));
            if !id_ok || !token(api_secret, 8, 128, b"_-") {
                return Err(expected(format));
            }
            let query = ["measurement_id=", id, "&api_secret=", api_secret].concat();
            target.url = with_query(endpoint, &query);
        }
    }
    Ok(target)
}

/// Standard base64 with padding (HTTP Basic credentials).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        for (clear, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
            ("user:secret", "dXNlcjpzZWNyZXQ="),
        ] {
            assert_eq!(base64(clear.as_bytes()), encoded);
        }
    }

    #[test]
    fn secret_names() {
        assert_eq!(secret_name("amplitude"), "AUTH_AMPLITUDE");
        assert_eq!(secret_name("ga4-web.eu"), "AUTH_GA4_WEB_EU");
    }
}
