//! Reads a tracking request of the edge Worker (the body of `POST /v1/track`
//! or `/v1/batch`) into the texts of its events, as the client wrote them.
//!
//! Nothing is re-serialized: numbers keep their exact text (`1.50` masks as
//! `"1.50"`, an integer beyond 2^53 stays exact) and strings their escapes,
//! so the edge sends what the engine would for the same event sent
//! directly. Only the request's own parts are rewritten: the path's `type`,
//! `writeKey` members (removed at any depth: the client's secret), and a
//! batch's shared `context`/`integrations`. A key written twice anywhere
//! refuses the whole request (parsers disagree on which copy wins).
//!
//! One pass validates the whole body and notes, for each event of a batch,
//! its members, how deep it nests and whether a `writeKey` stands in it.
//! The engine ([`crate::process`]) reads an event the request leaves as
//! it is from those notes, where it stands in the body; only an event the
//! request rewrites is copied ([`read_request`] gives every event's text).

use std::borrow::Cow;

use crate::event::{CallType, Event, EventError, MAX_DEPTH};
use crate::json::{Keys, Kind, Reader, StrSpan, SyntaxError, SyntaxReason};

/// Largest batch request accepted, in bytes of JSON (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// The most a request may make, sanitized, for all its destinations
/// together: masked values are longer than the clear ones (a masked
/// number is 64 hex digits), so without it one 500 KB batch could make
/// hundreds of MB, past a Worker's 128 MB.
pub const MAX_OUTPUT_BYTES: usize = 12 * 1024 * 1024;

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
    /// A key written twice in one object, anywhere in the request: where
    /// (keys shown as [`crate::key_name::push_key`] shows them).
    DuplicateKey(String),
    /// A batch whose events, with its shared `context` and `integrations`
    /// merged into each, would exceed [`MAX_BATCH_BYTES`].
    TooLarge,
    /// A request whose events, sanitized for every destination, would
    /// exceed [`MAX_OUTPUT_BYTES`] together.
    OutputTooLarge,
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::InvalidJson { .. } => "invalid_json",
            RequestError::TooDeep => "event_too_deep",
            RequestError::InvalidBody(_) => "invalid_body",
            RequestError::DuplicateKey(_) => "duplicate_key",
            RequestError::TooLarge | RequestError::OutputTooLarge => "batch_too_large",
        }
    }
}

impl crate::message::Describe for RequestError {
    fn describe(&self, out: &mut String) {
        match self {
            RequestError::InvalidJson { offset, reason } => {
                out.push_str("request body is not valid JSON: ");
                reason.describe(out);
                out.push_str(" at byte ");
                crate::message::push_number(out, *offset as u64);
            }
            RequestError::TooDeep => {
                out.push_str("request nests deeper than ");
                crate::message::push_number(out, MAX_REQUEST_DEPTH as u64);
                out.push_str(" levels");
            }
            RequestError::InvalidBody(why) => out.push_str(why),
            RequestError::DuplicateKey(place) => {
                out.push_str("request has ");
                out.push_str(place);
            }
            RequestError::TooLarge => {
                out.push_str("batch is larger than ");
                crate::message::push_number(out, MAX_BATCH_BYTES as u64);
                out.push_str(" bytes once its shared \"context\" and \"integrations\" are added to each event");
            }
            RequestError::OutputTooLarge => {
                out.push_str("request would be larger than ");
                crate::message::push_number(out, MAX_OUTPUT_BYTES as u64);
                out.push_str(" bytes once sanitized for its destinations (masked values are longer than the clear ones): send smaller batches");
            }
        }
    }
}

crate::message::display_by_describe!(RequestError);

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
pub(crate) struct Member<'a> {
    name: Cow<'a, [u8]>,
    key: StrSpan,
    value: (usize, usize),
}

/// What the first read notes besides members: where `writeKey` members
/// below the top level of an event stand, as byte ranges of the body (with
/// their comma) to leave out of the copies, in order, none inside another;
/// and the deepest an object or array it read stands (a batch's events
/// are read with no other pass over their values to find theirs).
#[derive(Default)]
struct Cuts {
    spans: Vec<(usize, usize)>,
    deepest: usize,
}

impl Cuts {
    fn new() -> Self {
        Cuts::default()
    }

    fn push(&mut self, cut: (usize, usize)) {
        self.spans.push(cut);
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn truncate(&mut self, len: usize) {
        self.spans.truncate(len);
    }

    fn enter(&mut self, depth: usize) {
        self.deepest = self.deepest.max(depth);
    }
}

/// The request's first read: validates the object at the reader whole (a
/// key written twice at any depth refused), notes the `writeKey` members
/// inside its values in `cuts`, and returns its members.
fn read_top<'a>(
    r: &mut Reader<'a>,
    cuts: &mut Cuts,
    mut batch: Option<&mut Vec<Element<'a>>>,
) -> Result<Vec<Member<'a>>, SyntaxError> {
    let mut out = Vec::new();
    let mut each = |r: &mut Reader<'a>, name: &[u8], cuts: &mut Cuts| match &mut batch {
        Some(elements) if name == b"batch" && r.peek_kind()? == Kind::Array => {
            Ok(Some(read_batch(r, cuts, elements)?))
        }
        _ => Ok(None),
    };
    read_object(r, 1, cuts, &mut each, &mut |m| out.push(m))?;
    Ok(out)
}

/// A batch's element as its first read found it, so nothing reads it
/// again to find its members.
enum Element<'a> {
    /// An event refused for a key written twice inside it (the batch keeps
    /// its other events): where it and its duplicate start in the body.
    Refused {
        at: usize,
        offset: usize,
    },
    NotObject,
    /// An event: its members, and the span of its text in the body.
    Object {
        members: Vec<Member<'a>>,
        span: (usize, usize),
        /// Whether it nests deeper than an event may.
        too_deep: bool,
    },
}

/// Reads a batch's array as [`read_value`] does, noting each element in
/// `elements`; an event with a key written twice is refused alone (its
/// syntax still checked).
fn read_batch<'a>(
    r: &mut Reader<'a>,
    cuts: &mut Cuts,
    elements: &mut Vec<Element<'a>>,
) -> Result<(usize, usize), SyntaxError> {
    let start = r.pos();
    r.begin_array(2)?;
    let mut first = true;
    while r.next_element(&mut first)? {
        let kind = r.peek_kind()?;
        let (at, before) = (r.pos(), cuts.len());
        cuts.deepest = 0;
        let mut members = Vec::new();
        let read = if kind == Kind::Object {
            read_object(r, 3, cuts, &mut |_, _, _| Ok(None), &mut |m| {
                members.push(m);
            })
            .map(|()| (at, r.pos()))
        } else {
            read_value(r, 3, cuts)
        };
        match read {
            Err(e) if e.reason == SyntaxReason::DuplicateKey => {
                cuts.truncate(before);
                let mut again = Reader::at(r.src(), at, MAX_REQUEST_DEPTH).allowing_duplicates();
                again.skip_value(3)?;
                *r = Reader::at(r.src(), again.pos(), MAX_REQUEST_DEPTH);
                elements.push(Element::Refused {
                    at,
                    offset: e.offset,
                });
            }
            read => {
                let span = read?;
                elements.push(match kind {
                    // The event is level 1 here, 3 in the request.
                    Kind::Object => Element::Object {
                        members,
                        span,
                        too_deep: cuts.deepest > MAX_DEPTH + 2,
                    },
                    _ => Element::NotObject,
                });
            }
        }
    }
    Ok((start, r.pos()))
}

/// Reads a member's value itself (`Some` of its span) instead of
/// [`read_value`], or leaves it (`None`).
type Special<'s, 'a> = dyn FnMut(&mut Reader<'a>, &[u8], &mut Cuts) -> Result<Option<(usize, usize)>, SyntaxError>
    + 's;

/// Reads the object at the reader as [`read_top`] does; each member to
/// `each`. A `writeKey` member is cut with the comma before it (or, the
/// first, up to the next key).
fn read_object<'a>(
    r: &mut Reader<'a>,
    depth: usize,
    cuts: &mut Cuts,
    special: &mut Special<'_, 'a>,
    each: &mut dyn FnMut(Member<'a>),
) -> Result<(), SyntaxError> {
    cuts.enter(depth);
    r.begin_object(depth)?;
    let opened = r.pos();
    let mut previous_end = opened;
    let mut first_cut = None;
    let mut keys = Keys::default();
    while let Some(key) = r.next_unique_key(&mut keys)? {
        if let Some(start) = first_cut.take() {
            cuts.push((start, key.start));
        }
        let name = r.decode(key)?;
        let write_key = *name == *WRITE_KEY;
        let value = if write_key {
            // Cut whole: what it holds needs no cuts of its own.
            r.skip_value(depth + 1)?
        } else if let Some(span) = special(r, &name, cuts)? {
            span
        } else {
            read_value(r, depth + 1, cuts)?
        };
        if write_key {
            if previous_end == opened {
                first_cut = Some(key.start);
            } else {
                cuts.push((previous_end, value.1));
            }
        }
        previous_end = value.1;
        each(Member { name, key, value });
    }
    if let Some(start) = first_cut {
        cuts.push((start, previous_end));
    }
    Ok(())
}

/// Validates the value at the reader (see [`read_top`]); its span.
fn read_value(
    r: &mut Reader<'_>,
    depth: usize,
    cuts: &mut Cuts,
) -> Result<(usize, usize), SyntaxError> {
    let kind = r.peek_kind()?;
    let start = r.pos();
    match kind {
        Kind::Object => read_object(r, depth, cuts, &mut |_, _, _| Ok(None), &mut drop)?,
        Kind::Array => {
            cuts.enter(depth);
            r.begin_array(depth)?;
            let mut first = true;
            while r.next_element(&mut first)? {
                read_value(r, depth + 1, cuts)?;
            }
        }
        _ => return r.skip_value(depth),
    }
    Ok((start, r.pos()))
}

/// The key removed wherever it appears.
const WRITE_KEY: &[u8] = b"writeKey";

/// Reads the members of an object of text [`read_top`] validated.
fn members<'a>(r: &mut Reader<'a>, depth: usize) -> Result<Vec<Member<'a>>, SyntaxError> {
    r.begin_object(depth)?;
    let mut out = Vec::new();
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        let name = r.decode(key)?;
        let value = r.skip_value(depth + 1)?;
        out.push(Member { name, key, value });
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
    let read = read_events(body, call)?;
    let events = read
        .events
        .into_iter()
        .map(|e| e.and_then(|e| e.into_text(body)))
        .collect();
    Ok(Request {
        write_key: read.write_key,
        events,
    })
}

/// A request as the engine reads it: [`Request`] without copying the
/// events the request leaves as they are.
pub(crate) struct Events<'a> {
    pub(crate) write_key: Option<String>,
    pub(crate) events: Vec<Result<Read<'a>, EventError>>,
}

/// One event of a request: its members where they stand in the body
/// (nothing of it rewritten: no `writeKey` inside it, nothing shared
/// merged in), or its text as the request rewrites it.
pub(crate) enum Read<'a> {
    InBody {
        members: Vec<Member<'a>>,
        too_deep: bool,
    },
    Copied(String),
}

impl<'a> Read<'a> {
    /// The event read and checked ([`Event`]); its members in the body are
    /// not read again, only what an event must be beyond JSON is checked.
    pub(crate) fn event<'s>(&'s self, body: &'a str) -> Result<Event<'s>, EventError> {
        match self {
            Read::Copied(text) => Event::read_validated(text.as_bytes()),
            Read::InBody { members, too_deep } => Event::read_members(
                body.as_bytes(),
                members.iter().map(|m| (m.name.as_ref(), m.key, m.value)),
                *too_deep,
            ),
        }
    }

    /// The event's text, as [`read_request`] gives it: an event in the
    /// body is its members copied, with nothing between them.
    fn into_text(self, body: &str) -> Result<String, EventError> {
        let members = match self {
            Read::Copied(text) => return Ok(text),
            Read::InBody { members, .. } => members,
        };
        let src = Source {
            text: body.as_bytes(),
            cuts: &[],
        };
        let span = members
            .first()
            .zip(members.last())
            .map_or(0, |(a, b)| b.value.1 - a.key.start);
        let mut out = Out::new(src, span);
        for m in &members {
            out.member(m);
        }
        out.finish()
    }
}

/// [`read_request`], keeping the events the request leaves as they are in
/// the body.
pub(crate) fn read_events(body: &str, call: Call) -> Result<Events<'_>, RequestError> {
    let src = body.as_bytes();
    let mut cuts = Cuts::new();
    let mut elements = Vec::new();
    let batch = (call == Call::Batch).then_some(&mut elements);
    let top = read_body(src, &mut cuts, batch).map_err(|e| request_error(src, e))?;
    let Some(top) = top else {
        return Err(RequestError::InvalidBody(
            "request body must be a JSON object",
        ));
    };
    let write_key = write_key_of(src, &top);
    let src = Source {
        text: src,
        cuts: &cuts.spans,
    };

    match call {
        Call::Single(call) => Ok(Events {
            write_key,
            events: vec![single(src, &top, call).map(Read::Copied)],
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
                    let mut sr = Reader::validated(src.text, m.value.0, MAX_REQUEST_DEPTH);
                    if sr.peek_kind()? != Kind::Object {
                        return Err(RequestError::InvalidBody(
                            "a batch's \"context\" and \"integrations\" must be objects",
                        ));
                    }
                    shared.push((name, members(&mut sr, 2)?));
                }
            }
            let mut br = Reader::validated(src.text, batch.value.0, MAX_REQUEST_DEPTH);
            if br.peek_kind()? != Kind::Array {
                return Err(RequestError::InvalidBody(
                    "batch requests need \"batch\": an array of events",
                ));
            }
            check_materialized(batch.value, elements.len(), &shared)?;
            let mut events = Vec::with_capacity(elements.len());
            let mut first_key = None;
            for element in elements {
                let event = match element {
                    Element::Refused { at, offset } => {
                        let event = src.text.get(at..).unwrap_or_default();
                        let place = crate::key_name::duplicate(event, offset.saturating_sub(at));
                        Err(EventError::DuplicateKey(place))
                    }
                    Element::NotObject => Err(EventError::NotObject),
                    Element::Object {
                        members,
                        span,
                        too_deep,
                    } => {
                        if events.is_empty() {
                            first_key = write_key_of(src.text, &members);
                        }
                        if shared.is_empty() && !src.cut_inside(span) {
                            Ok(Read::InBody { members, too_deep })
                        } else {
                            batched(src, &members, &shared)?.map(Read::Copied)
                        }
                    }
                };
                events.push(event);
            }
            if events.is_empty() {
                return Err(RequestError::InvalidBody("batch has no events"));
            }
            Ok(Events {
                write_key: write_key.or(first_key),
                events,
            })
        }
    }
}

/// The write key a tracking request body carries, by the rules of
/// [`read_request`] (the top-level `writeKey`, else a batch's first
/// event's, a non-empty string), found without building any event: the
/// edge checks it before it spends anything on the events. The body is
/// validated as [`read_request`] validates it.
///
/// # Errors
/// [`RequestError`] when the body is not UTF-8 JSON text (as
/// [`read_request`] would refuse it); `Ok(None)` when it carries no key.
pub fn request_write_key(body: &[u8], call: Call) -> Result<Option<String>, RequestError> {
    let src = utf8(body)?.as_bytes();
    let mut cuts = Cuts::new();
    let mut elements = Vec::new();
    let batch = (call == Call::Batch).then_some(&mut elements);
    let top = read_body(src, &mut cuts, batch).map_err(|e| request_error(src, e))?;
    let Some(top) = top else {
        return Ok(None);
    };
    if let Some(key) = write_key_of(src, &top) {
        return Ok(Some(key));
    }
    // A batch's elements are noted only for a batch call whose `batch`
    // is an array.
    match elements.first() {
        Some(Element::Object { members, .. }) => Ok(write_key_of(src, members)),
        _ => Ok(None),
    }
}

/// The body as text, or where it stops being UTF-8.
pub(crate) fn utf8(body: &[u8]) -> Result<&str, RequestError> {
    std::str::from_utf8(body).map_err(|e| RequestError::InvalidJson {
        offset: e.valid_up_to(),
        reason: SyntaxReason::UnexpectedByte("UTF-8 text"),
    })
}

/// A syntax error of the first read, as the request's error.
fn request_error(src: &[u8], e: SyntaxError) -> RequestError {
    match e.reason {
        SyntaxReason::DuplicateKey => {
            RequestError::DuplicateKey(crate::key_name::duplicate(src, e.offset))
        }
        _ => RequestError::from(e),
    }
}

/// Refuses a batch whose events, each with the batch's shared members
/// merged in, would together exceed [`MAX_BATCH_BYTES`]: a small body with
/// a large shared `context` and thousands of events would otherwise grow
/// in memory without bound. Counted before any event is built, as an
/// upper bound (every event taken to receive every shared member).
fn check_materialized(
    batch: (usize, usize),
    events: usize,
    shared: &[(&str, Vec<Member<'_>>)],
) -> Result<(), RequestError> {
    let per_event: usize = shared
        .iter()
        .flat_map(|(_, members)| members.iter())
        .map(|m| m.value.1.saturating_sub(m.key.start) + 1)
        .sum();
    if per_event == 0 {
        return Ok(());
    }
    let built = (batch.1 - batch.0).saturating_add(events.saturating_mul(per_event));
    if built > MAX_BATCH_BYTES {
        return Err(RequestError::TooLarge);
    }
    Ok(())
}

/// A batch's own objects that apply to each of its events (Segment).
const SHARED: [&str; 2] = ["context", "integrations"];

/// The first read of a body: validated whole, its `writeKey` members noted
/// in `cuts`; the members of the object it is, or `None` for another value.
fn read_body<'a>(
    src: &'a [u8],
    cuts: &mut Cuts,
    batch: Option<&mut Vec<Element<'a>>>,
) -> Result<Option<Vec<Member<'a>>>, SyntaxError> {
    let mut r = Reader::new(src, MAX_REQUEST_DEPTH);
    if r.peek_kind()? != Kind::Object {
        r.skip_value(1)?;
        r.finish()?;
        return Ok(None);
    }
    let top = read_top(&mut r, cuts, batch)?;
    r.finish()?;
    Ok(Some(top))
}

/// The body, and the `writeKey` members to leave out of what is copied.
#[derive(Clone, Copy)]
struct Source<'a> {
    text: &'a [u8],
    cuts: &'a [(usize, usize)],
}

impl Source<'_> {
    /// Whether a `writeKey` member is cut from within `span`.
    fn cut_inside(&self, (start, end): (usize, usize)) -> bool {
        let at = self.cuts.partition_point(|c| c.0 < start);
        self.cuts.get(at).is_some_and(|c| c.1 <= end)
    }
}

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

/// Writes an event from members of the request, copied as written but
/// for `writeKey` members.
struct Out<'a> {
    src: Source<'a>,
    out: Vec<u8>,
}

impl<'a> Out<'a> {
    fn new(src: Source<'a>, capacity: usize) -> Self {
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
        self.out
            .extend_from_slice(&self.src.text[m.key.start..m.key.end]);
        self.out.push(b':');
    }

    /// The member as written (its nested `writeKey` members cut); nothing
    /// for a `writeKey` member.
    fn member(&mut self, m: &Member) {
        if *m.name == *WRITE_KEY {
            return;
        }
        self.key(m);
        self.value(m.value);
    }

    /// The text from `start` to `end`, but for the cuts inside it (most
    /// values have none: one copy).
    fn value(&mut self, (start, end): (usize, usize)) {
        let cuts = self.src.cuts;
        let inside = cuts
            .get(cuts.partition_point(|c| c.0 < start)..)
            .unwrap_or(&[]);
        let mut at = start;
        for &(cut, after) in inside.iter().take_while(|c| c.1 <= end) {
            // Cuts never overlap; the check only keeps this panic-free.
            if cut >= at {
                self.out
                    .extend_from_slice(self.src.text.get(at..cut).unwrap_or_default());
                at = after;
            }
        }
        self.out.extend_from_slice(&self.src.text[at..end]);
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
fn single(src: Source, top: &[Member], call: CallType) -> Result<String, EventError> {
    let mut out = Out::new(src, src.text.len() + 24);
    out.raw(b"\"type\":\"");
    out.raw(call.name().as_bytes());
    out.raw(b"\"");
    for m in top.iter().filter(|m| *m.name != *b"type") {
        out.member(m);
    }
    out.finish()
}

/// An event of a batch: no write key; the batch's shared `context` under
/// its own (its keys win; added whole when it has none, or one that is
/// not an object); the batch's `integrations` only when it has none (its
/// own routing decides alone).
fn batched(
    src: Source,
    own: &[Member],
    shared: &[(&str, Vec<Member>)],
) -> Result<Result<String, EventError>, SyntaxError> {
    let span = own
        .first()
        .zip(own.last())
        .map_or(0, |(a, b)| b.value.1 - a.key.start);
    let mut out = Out::new(src, span);
    for m in own.iter() {
        let extra = shared
            .iter()
            .find(|(name, _)| *name == "context" && m.name == name.as_bytes());
        let mut r = Reader::validated(src.text, m.value.0, MAX_REQUEST_DEPTH);
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
            // An own context that is not an object has no keys to win: the
            // shared one stands whole, so a consent denial the batch stamps
            // on every event is not lost to a malformed context.
            Some((_, common)) => {
                out.key(m);
                out.raw(b"{");
                for c in common {
                    out.member(c);
                }
                out.raw(b"}");
            }
            None => out.member(m),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The request rewrites nothing of a plain event, so it is read where
    /// it stands; a `writeKey` inside, or a shared `context`, copies it.
    #[test]
    fn plain_events_are_read_in_place_rewritten_ones_copied() {
        let plain = r#"{"type":"track","event":"E","userId":"u"}"#;
        let keyed = r#"{"writeKey":"w","type":"track","event":"E","userId":"u"}"#;
        let body = format!(r#"{{"writeKey":"wk","batch":[{plain}, {keyed}]}}"#);
        let Ok(read) = read_events(&body, Call::Batch) else {
            panic!("a valid request");
        };
        assert!(matches!(read.events[0], Ok(Read::InBody { .. })));
        assert!(matches!(read.events[1], Ok(Read::Copied(_))));
        let shared = format!(r#"{{"batch":[{plain}],"context":{{"a":1}}}}"#);
        let Ok(read) = read_events(&shared, Call::Batch) else {
            panic!("a valid request");
        };
        assert!(matches!(read.events[0], Ok(Read::Copied(_))));
    }
}
