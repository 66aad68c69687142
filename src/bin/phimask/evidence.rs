//! `phimask evidence`: fetches the Worker's evidence report (`GET
//! /evidence`, with the operator key as a bearer) and writes its bytes
//! unchanged. Everything that can be checked is checked before any
//! connection; a redirect is never followed (it would carry the key
//! elsewhere); an answer that is not the report writes nothing.

use std::path::PathBuf;
use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Proxy};
use url::{Host, Url};

use crate::failure::{Failure, Outcome, IO, REFUSED, USAGE};
use crate::operator_key;
use crate::output;

/// The largest report taken (a year of a busy deployment's ledger is far
/// smaller); a larger answer is refused, not cut.
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

/// The most of an error answer read: the Worker's JSON errors are short.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// How much of the Worker's error text a message repeats.
const MAX_ERROR_CHARS: usize = 300;

/// The report's forms, as the route's `format` parameter names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Html,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }

    /// The media type the Worker answers this form with.
    fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Markdown => "text/markdown",
            Format::Html => "text/html",
        }
    }
}

pub struct Options {
    pub url: String,
    pub from: String,
    pub to: String,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub timeout: u64,
}

pub fn run(o: &Options) -> Outcome {
    check_dates(&o.from, &o.to)?;
    let target = endpoint(&o.url, &o.from, &o.to, o.format)?;
    if let Some(file) = &o.output {
        output::check_directory(file)?;
    }
    let key = operator_key::load()?;
    let report = fetch(&target, &key, o.format, Duration::from_secs(o.timeout))
        // A hostile answer could repeat the key: no message carries it.
        .map_err(|f| Failure::new(f.code, f.message.replace(&key, "[operator key]")))?;
    output::replace(&report, o.output.as_deref())?;
    Ok(0)
}

/// Both dates real days written `YYYY-MM-DD`, the first not after the
/// second.
fn check_dates(from: &str, to: &str) -> Result<(), Failure> {
    let day = |flag: &str, d: &str| {
        phimask::structural::date_parts(d.as_bytes())
            .filter(|&(year, _, _)| year >= 1)
            .ok_or_else(|| {
                Failure::new(
                    USAGE,
                    format!("{flag} must be a calendar date written YYYY-MM-DD (\"2026-01-15\")"),
                )
            })
    };
    if day("--from", from)? > day("--to", to)? {
        return Err(Failure::new(
            USAGE,
            format!("--from {from} is after --to {to}"),
        ));
    }
    Ok(())
}

/// Where the request goes: `--url` (the Worker's address) with
/// `/evidence` and the query added.
struct Target {
    url: Url,
    /// `host[:port]`, the only part of the URL messages show.
    host: String,
}

fn endpoint(given: &str, from: &str, to: &str, format: Format) -> Result<Target, Failure> {
    let usage = |m: &str| Failure::new(USAGE, format!("--url {m}"));
    // url's errors name what is wrong, never the input.
    let mut url = Url::parse(given).map_err(|e| {
        usage(&format!(
            "is not a URL ({e}): write the Worker's address as https://HOST"
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(usage(
            "must start with https:// (or http:// for a Worker on this machine)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(usage(&format!(
            "must not hold a user name or password: the operator key comes from {}",
            operator_key::VAR
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(usage(
            "must not have a query (?…) or a fragment (#…): the command adds from, to and format",
        ));
    }
    let host = url[url::Position::BeforeHost..url::Position::AfterPort].to_owned();
    if url.scheme() == "http" && !is_loopback(url.host()) {
        return Err(usage(&format!(
            "http://{host} would send the operator key unencrypted: use https:// (http:// is for a Worker on this machine: localhost, 127.0.0.1, [::1])"
        )));
    }
    // The Worker routes on the whole path, so a path before /evidence
    // could never reach it.
    if url.path() != "/" {
        return Err(usage(
            "must be the Worker's address without a path (https://HOST): the command adds /evidence",
        ));
    }
    url.set_path("/evidence");
    url.query_pairs_mut()
        .append_pair("from", from)
        .append_pair("to", to)
        .append_pair("format", format.name());
    Ok(Target { url, host })
}

fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|a| a.is_loopback())
        }
        None => false,
    }
}

/// The report's bytes, or why there are none.
fn fetch(
    target: &Target,
    key: &str,
    format: Format,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let https = target.url.scheme() == "https";
    let agent: Agent = Agent::config_builder()
        // A 4xx or 5xx is an answer to read (the Worker's JSON error).
        .http_status_as_error(false)
        // A redirect is reported, not followed: following it would send
        // the bearer to wherever it points.
        .max_redirects(0)
        .timeout_connect(Some(timeout.min(Duration::from_secs(30))))
        .timeout_global(Some(timeout))
        // HTTPS goes through a proxy of the environment (HTTPS_PROXY…)
        // inside a CONNECT tunnel, so the proxy never sees the key; plain
        // http is for loopback only, where a proxy would see it in clear.
        .proxy(if https { Proxy::try_from_env() } else { None })
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::WebPki)
                .build(),
        )
        .user_agent(format!("phimask/{}", env!("CARGO_PKG_VERSION")))
        .accept(format.media_type())
        .build()
        .into();
    let host = &target.host;
    let mut answer = agent
        .get(target.url.as_str())
        .header("Authorization", format!("Bearer {key}"))
        .call()
        .map_err(|e| unreadable(host, &e, timeout))?;
    let status = answer.status().as_u16();
    if (300..400).contains(&status) {
        return Err(Failure::new(
            REFUSED,
            format!("{host} answered {status}, a redirect{}: not followed, since it would carry the operator key elsewhere; give --url the Worker's own address", elsewhere(&answer)),
        ));
    }
    if status != 200 {
        let text = answer
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BYTES)
            .read_to_vec()
            .ok();
        return Err(Failure::new(
            REFUSED,
            format!(
                "the Worker refused the request: {}",
                refusal(status, text.as_deref())
            ),
        ));
    }
    let media = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some(format.media_type()) {
        return Err(Failure::new(
            REFUSED,
            format!(
                "{host} answered 200 but not with the {} report (Content-Type {}): is --url the Worker's address?",
                format.name(),
                media.map_or_else(|| "missing".to_owned(), |m| clean(&m, 80)),
            ),
        ));
    }
    // Nothing asked for compression: a compressed answer is not the
    // report's bytes.
    if let Some(coding) = answer
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().eq_ignore_ascii_case("identity"))
    {
        return Err(Failure::new(
            REFUSED,
            format!(
                "{host} answered 200 with a compressed body (Content-Encoding {}) nobody asked for: not written",
                clean(coding, 40)
            ),
        ));
    }
    if answer
        .body()
        .content_length()
        .is_some_and(|n| n > MAX_REPORT_BYTES)
    {
        return Err(too_large(host));
    }
    answer
        .body_mut()
        .with_config()
        .limit(MAX_REPORT_BYTES)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => too_large(host),
            e => unreadable(host, &e, timeout),
        })
}

fn too_large(host: &str) -> Failure {
    Failure::new(
        IO,
        format!(
            "{host} answered with more than {} MB: refused, nothing written (ask for a shorter range of dates)",
            MAX_REPORT_BYTES >> 20
        ),
    )
}

/// ` to HOST` for a redirect whose Location names a host, else nothing.
fn elsewhere(answer: &ureq::http::Response<ureq::Body>) -> String {
    answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Url::parse(v).ok())
        .and_then(|u| u.host_str().map(|h| format!(" to {}", clean(h, 100))))
        .unwrap_or_default()
}

/// `STATUS CODE: TEXT` from the Worker's JSON error
/// (`{"success":false,"code":…,"error":…}`), or the status alone with
/// what the answer was, never its content otherwise.
fn refusal(status: u16, body: Option<&[u8]>) -> String {
    let error = body.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    let field = |name: &str| {
        error
            .as_ref()
            .and_then(|e| e.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    match (field("code"), field("error")) {
        (Some(code), Some(text)) => format!(
            "{status} {}: {}",
            clean(&code, 64),
            clean(&text, MAX_ERROR_CHARS)
        ),
        _ => format!("{status}, without the Worker's JSON error (is --url the Worker's address?)"),
    }
}

/// `text` safe to print: control and formatting characters (terminal
/// escapes, bidirectional overrides) as spaces, at most `most` characters.
fn clean(text: &str, most: usize) -> String {
    let mut out: String = text
        .chars()
        .take(most)
        .map(|c| {
            if c.is_control() || is_format(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    if text.chars().nth(most).is_some() {
        out.push('…');
    }
    out
}

/// Unicode's invisible formatting characters that reorder or hide text.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Why no answer could be read from `host`.
fn unreadable(host: &str, e: &ureq::Error, timeout: Duration) -> Failure {
    use std::io::ErrorKind;
    let why = match e {
        ureq::Error::Timeout(_) => format!(
            "no complete answer within {} s (--timeout)",
            timeout.as_secs()
        ),
        ureq::Error::HostNotFound => "the host name does not resolve".to_owned(),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted => {
                "the connection closed before a complete answer".to_owned()
            }
            _ => crate::input::reason(io),
        },
        ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
            "the answer is not HTTP the command can read".to_owned()
        }
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => format!("TLS failed: {e}"),
        ureq::Error::ConnectProxyFailed(_) | ureq::Error::InvalidProxyUrl => {
            format!("the proxy of the environment (HTTPS_PROXY, ALL_PROXY) failed: {e}")
        }
        e => e.to_string(),
    };
    Failure::new(
        IO,
        format!("cannot get the report from {host}: {}", clean(&why, 300)),
    )
}
