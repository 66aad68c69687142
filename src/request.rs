//! Reads a tracking request of the edge Worker (the body of `POST /v1/track`
//! or `/v1/batch`) into the texts of its events, as the client wrote them.
//!
//! Nothing is re-serialized: numbers keep their exact text (`1.50` masks as
//! `"1.50"`, an integer beyond 2^53 stays exact) and strings their escapes,
//! so the edge sends what the engine would for the same event sent
//! directly. Only the request's own parts are rewritten: the path's `type`,
//! the write key (removed), and a batch's shared `context`/`integrations`.

use std::borrow::Cow;

use crate::error::EventError;
use crate::event::{CallType, MAX_DEPTH};
use crate::json::{Kind, Reader, SyntaxError, SyntaxReason};

/// Largest batch request accepted, in bytes of JSON (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// How deep a request may nest. Deeper than an event may (the engine then
/// refuses that event alone) but bounded, so reading stays shallow.
const MAX_REQUEST_DEPTH: usize = 4 * MAX_DEPTH;

/// What a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// One event; the path decides its type.
    Single(CallType),
    /// `{"batch": [...]}`.
    Batch,
}

impl Call {
    /// The call of a path segment: `track` … `alias` or `batch`.
    pub fn parse(name: &str) -> Option<Self> {
        if name == "batch" {
            return Some(Call::Batch);
        }
        CallType::parse(name.as_bytes()).map(Call::Single)
    }
}

/// A request read: the write key it carries, and each event's text (or why
/// that event alone was refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub write_key: Option<String>,
    pub events: Vec<Result<String, EventError>>,
}

/// Why a whole request was refused. Messages never quote the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Not JSON; `offset` is a byte offset into the body.
    InvalidJson { offset: usize, reason: SyntaxReason },
    /// Nesting deeper than `MAX_REQUEST_DEPTH`.
    TooDeep,
    /// Valid JSON of the wrong shape.
    InvalidBody(&'static str),
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::InvalidJson { .. } => "invalid_json",
            RequestError::TooDeep => "event_too_deep",
            RequestError::InvalidBody(_) => "invalid_body",
        }
    }
}

impl crate::error::Describe for RequestError {
    fn describe(&self, out: &mut String) {
        match self {
            RequestError::InvalidJson { offset, reason } => {
                out.push_str("request body is not valid JSON: ");
                reason.describe(out);
                out.push_str(" at byte ");
                crate::error::push_number(out, *offset as u64);
            }
            RequestError::TooDeep => {
                out.push_str("request nests deeper than ");
                crate::error::push_number(out, MAX_REQUEST_DEPTH as u64);
                out.push_str(" levels");
            }
            RequestError::InvalidBody(why) => out.push_str(why),
        }
    }
}

impl From<SyntaxError> for RequestError {
    fn from(e: SyntaxError) -> Self {
        match e.reason {
            SyntaxReason::TooDeep(_) => RequestError::TooDeep,
            reason => RequestError::InvalidJson {
                offset: e.offset,
                reason,
            },
        }
    }
}

/// One member of an object: its key (decoded, and as written) and the
/// span of its value.
struct Member<'a> {
    name: Cow<'a, [u8]>,
    key: (usize, usize),
    value: (usize, usize),
}

/// Reads the members of the object at the reader (validating all of it).
fn members<'a>(r: &mut Reader<'a>, depth: usize) -> Result<Vec<Member<'a>>, SyntaxError> {
    r.begin_object(depth)?;
    let mut out = Vec::new();
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        let name = r.decode(key)?;
        let value = r.skip_value(depth + 1)?;
        out.push(Member {
            name,
            key: (key.start, key.end),
            value,
        });
    }
    Ok(out)
}

/// Reads a tracking request body.
///
/// # Examples
/// ```
/// use phimask::{read_request, Call};
///
/// let body = r#"{"writeKey":"wk_1","event":"Signed Up","properties":{"value":1.50}}"#;
/// let request = read_request(body, Call::parse("track").unwrap())?;
/// assert_eq!(request.write_key.as_deref(), Some("wk_1"));
/// assert_eq!(
///     request.events,
///     [Ok(r#"{"type":"track","event":"Signed Up","properties":{"value":1.50}}"#.to_string())]
/// );
/// # Ok::<(), phimask::RequestError>(())
/// ```
///
/// # Errors
/// [`RequestError`] when the body as a whole is unusable; an event that is
/// unusable on its own is refused in [`Request::events`] instead.
pub fn read_request(body: &str, call: Call) -> Result<Request, RequestError> {
    let src = body.as_bytes();
    let mut r = Reader::new(src, MAX_REQUEST_DEPTH);
    if r.peek_kind()? != Kind::Object {
        r.skip_value(1)?;
        r.finish()?;
        return Err(RequestError::InvalidBody(
            "request body must be a JSON object",
        ));
    }
    let top = members(&mut r, 1)?;
    r.finish()?;
    let write_key = write_key_of(src, &top);

    match call {
        Call::Single(call) => Ok(Request {
            write_key,
            events: vec![single(src, &top, call)],
        }),
        Call::Batch => {
            let batch =
                top.iter()
                    .find(|m| *m.name == *b"batch")
                    .ok_or(RequestError::InvalidBody(
                        "batch requests need \"batch\": an array of events",
                    ))?;
            let mut shared = Vec::new();
            for name in SHARED {
                if let Some(m) = top.iter().find(|m| m.name == name.as_bytes()) {
                    let mut sr = Reader::validated(src, m.value.0, MAX_REQUEST_DEPTH);
                    if sr.peek_kind()? != Kind::Object {
                        return Err(RequestError::InvalidBody(
                            "a batch's \"context\" and \"integrations\" must be objects",
                        ));
                    }
                    shared.push((name, members(&mut sr, 2)?));
                }
            }
            let mut br = Reader::validated(src, batch.value.0, MAX_REQUEST_DEPTH);
            if br.peek_kind()? != Kind::Array {
                return Err(RequestError::InvalidBody(
                    "batch requests need \"batch\": an array of events",
                ));
            }
            br.begin_array(2)?;
            let mut events = Vec::new();
            let mut first_key = None;
            let mut first = true;
            while br.next_element(&mut first)? {
                if br.peek_kind()? != Kind::Object {
                    br.skip_value(3)?;
                    events.push(Err(EventError::NotObject));
                    continue;
                }
                let own = members(&mut br, 3)?;
                if events.is_empty() {
                    first_key = write_key_of(src, &own);
                }
                events.push(batched(src, &own, &shared)?);
            }
            if events.is_empty() {
                return Err(RequestError::InvalidBody("batch has no events"));
            }
            Ok(Request {
                write_key: write_key.or(first_key),
                events,
            })
        }
    }
}

/// A batch's own objects that apply to each of its events (Segment).
const SHARED: [&str; 2] = ["context", "integrations"];

/// The `writeKey` member's value, if it is a non-empty string.
fn write_key_of(src: &[u8], members: &[Member]) -> Option<String> {
    let m = members.iter().find(|m| *m.name == *b"writeKey")?;
    let mut r = Reader::validated(src, m.value.0, MAX_REQUEST_DEPTH);
    if r.peek_kind().ok()? != Kind::String {
        return None;
    }
    let span = r.string().ok()?;
    let text = String::from_utf8(r.decode(span).ok()?.into_owned()).ok()?;
    (!text.is_empty()).then_some(text)
}

/// Writes an event from members of the request, copied as written.
struct Out<'a> {
    src: &'a [u8],
    out: Vec<u8>,
}

impl<'a> Out<'a> {
    fn new(src: &'a [u8], capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity + 2);
        out.push(b'{');
        Out { src, out }
    }

    /// `"key":` as written, after a comma unless an object was just opened
    /// (no key or value ends with `{`).
    fn key(&mut self, m: &Member) {
        if self.out.last() != Some(&b'{') {
            self.out.push(b',');
        }
        self.out.extend_from_slice(&self.src[m.key.0..m.key.1]);
        self.out.push(b':');
    }

    fn member(&mut self, m: &Member) {
        self.key(m);
        self.out.extend_from_slice(&self.src[m.value.0..m.value.1]);
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Closes the event. Members are cut at ASCII token boundaries of a
    /// UTF-8 body, so this is UTF-8; the check only keeps it panic-free.
    fn finish(mut self) -> Result<String, EventError> {
        self.out.push(b'}');
        String::from_utf8(self.out).map_err(|_| EventError::NotObject)
    }
}

/// The event of a single call: `type` from the path, first; no write key.
fn single(src: &[u8], top: &[Member], call: CallType) -> Result<String, EventError> {
    let mut out = Out::new(src, src.len() + 24);
    out.raw(b"\"type\":\"");
    out.raw(call.name().as_bytes());
    out.raw(b"\"");
    for m in top {
        if *m.name != *b"type" && *m.name != *b"writeKey" {
            out.member(m);
        }
    }
    out.finish()
}

/// An event of a batch: no write key; the batch's shared objects under its
/// own (its keys win; one it lacks is added whole).
fn batched(
    src: &[u8],
    own: &[Member],
    shared: &[(&str, Vec<Member>)],
) -> Result<Result<String, EventError>, SyntaxError> {
    let span = own
        .first()
        .zip(own.last())
        .map_or(0, |(a, b)| b.value.1 - a.key.0);
    let mut out = Out::new(src, span);
    for m in own.iter().filter(|m| *m.name != *b"writeKey") {
        let extra = shared.iter().find(|(name, _)| m.name == name.as_bytes());
        let mut r = Reader::validated(src, m.value.0, MAX_REQUEST_DEPTH);
        match extra {
            Some((_, common)) if r.peek_kind()? == Kind::Object => {
                let mine = members(&mut r, 4)?;
                out.key(m);
                out.raw(b"{");
                for c in common
                    .iter()
                    .filter(|c| !mine.iter().any(|o| o.name == c.name))
                {
                    out.member(c);
                }
                for o in &mine {
                    out.member(o);
                }
                out.raw(b"}");
            }
            _ => out.member(m),
        }
    }
    for (name, common) in shared {
        if !own.iter().any(|m| m.name == name.as_bytes()) {
            if out.out.last() != Some(&b'{') {
                out.raw(b",");
            }
            out.raw(b"\"");
            out.raw(name.as_bytes());
            out.raw(b"\":{");
            for c in common {
                out.member(c);
            }
            out.raw(b"}");
        }
    }
    Ok(out.finish())
}
