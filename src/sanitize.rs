//! Sanitizes Segment-spec events for one destination.
//!
//! Two passes over the event text, no tree: the first validates the whole
//! event (syntax, depth, type) and notes where each top-level member is;
//! the second writes the output directly, walking only the members the
//! destination may receive, guided by the compiled tries.

use std::borrow::Cow;

use crate::compile::{Node, Tries};
use crate::error::{Error, EventError};
use crate::json::{Kind, Reader, StrSpan, SyntaxError, SyntaxReason};
use crate::mask::{KeyError, Masker};
use crate::policy::{Action, Connection, IdAction, Identifiers, Policy, IDENTIFIER_KEYS};
use crate::validate::validate_policy;

/// Largest event accepted, in bytes of JSON text.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Deepest nesting accepted in an event (the event object is level 1).
pub const MAX_DEPTH: usize = 64;

/// The six Segment call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Track,
    Identify,
    Group,
    Page,
    Screen,
    Alias,
}

impl CallType {
    /// The name of the call, as `type` holds it.
    pub fn name(self) -> &'static str {
        match self {
            CallType::Track => "track",
            CallType::Identify => "identify",
            CallType::Group => "group",
            CallType::Page => "page",
            CallType::Screen => "screen",
            CallType::Alias => "alias",
        }
    }

    const ALL: [CallType; 6] = [
        CallType::Track,
        CallType::Identify,
        CallType::Group,
        CallType::Page,
        CallType::Screen,
        CallType::Alias,
    ];

    pub(crate) fn parse(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name().as_bytes() == name)
    }
}

/// What a structural field may hold; anything else is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A string (or null): `event`, `messageId`, timestamps, …
    Text,
    /// A string or a number: `version`.
    TextOrNumber,
    /// An object (or null): `integrations`.
    Object,
}

/// What a top-level key of an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    Structural(Shape),
    Identifier(usize),
    Properties,
    Traits,
    Context,
    Other,
}

const STRUCTURAL: [(&str, Shape); 11] = [
    ("event", Shape::Text),
    ("name", Shape::Text),
    ("category", Shape::Text),
    ("messageId", Shape::Text),
    ("timestamp", Shape::Text),
    ("originalTimestamp", Shape::Text),
    ("sentAt", Shape::Text),
    ("receivedAt", Shape::Text),
    ("channel", Shape::Text),
    ("version", Shape::TextOrNumber),
    ("integrations", Shape::Object),
];

impl Field {
    /// What `key` is, and for known keys their name and a bit of their own
    /// (to find keys written twice).
    fn of(key: &[u8]) -> (Field, Option<(&'static str, u32)>) {
        let (field, name, index) = match key {
            b"type" => (Field::Type, "type", 0),
            b"properties" => (Field::Properties, "properties", 1),
            b"traits" => (Field::Traits, "traits", 2),
            b"context" => (Field::Context, "context", 3),
            _ => {
                if let Some(i) = IDENTIFIER_KEYS.iter().position(|k| k.as_bytes() == key) {
                    (Field::Identifier(i), IDENTIFIER_KEYS[i], 4 + i)
                } else if let Some(i) = STRUCTURAL.iter().position(|(k, _)| k.as_bytes() == key) {
                    (Field::Structural(STRUCTURAL[i].1), STRUCTURAL[i].0, 8 + i)
                } else {
                    return (Field::Other, None);
                }
            }
        };
        (field, Some((name, 1 << index)))
    }
}

/// A `properties` or `traits` member met before `type` (its list depends
/// on the call type): validated, then written once the type is known, at
/// the place it had.
struct Deferred {
    field: Field,
    key: StrSpan,
    value: usize,
    /// Where in the output it belongs.
    at: usize,
}

fn syntax(e: SyntaxError) -> EventError {
    match e.reason {
        SyntaxReason::TooDeep(_) => EventError::TooDeep,
        reason => EventError::InvalidJson {
            offset: e.offset,
            reason,
        },
    }
}

/// How a destination is served.
#[derive(Debug, Clone)]
enum Route {
    /// The browser talks to it; the edge sends it nothing.
    ClientSide,
    /// Under a BAA with PHI restriction off: the event unchanged.
    Unrestricted,
    /// ID masking and enforced allowlists.
    Restricted(Box<Tries>),
}

#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    endpoint: Option<String>,
    route: Route,
}

/// A policy compiled for sanitizing, with its masking key.
///
/// # Examples
/// ```
/// let policy = r#"{
///   "version": 1, "environment": "production", "hipaa": true,
///   "allowlists": { "event_properties": { "plan": "allow", "email": "mask" } },
///   "destinations": { "amplitude": { "connection": "server-side",
///                                    "endpoint": "https://api2.amplitude.example/batch" } }
/// }"#;
/// let key = b"an example key of at least 32 bytes!";
/// let s = phimask::Sanitizer::new(policy, Some(key)).unwrap();
/// let out = s
///     .sanitize_json(
///         r#"{"type":"track","event":"Signed Up","properties":{"plan":"pro","email":"jane@x.com","diagnosis":"flu"}}"#,
///         "amplitude",
///     )
///     .unwrap()
///     .unwrap();
/// assert!(out.starts_with(r#"{"type":"track","event":"Signed Up","properties":{"plan":"pro","email":""#));
/// assert!(!out.contains("jane") && !out.contains("diagnosis"));
/// ```
#[derive(Debug, Clone)]
pub struct Sanitizer {
    identifiers: Identifiers,
    masker: Option<Masker>,
    destinations: Vec<Compiled>,
}

impl Sanitizer {
    /// Validates and compiles `policy` (JSON text) with the masking key.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] listing every problem; [`Error::KeyTooShort`]
    /// for a key under 32 bytes; [`Error::MissingKey`] when no key is given
    /// but some server-side destination needs masking.
    pub fn new(policy: &str, key: Option<&[u8]>) -> Result<Self, Error> {
        match validate_policy(policy) {
            (Some(policy), _) => Self::from_policy(&policy, key),
            (None, report) => Err(Error::InvalidPolicy(report.errors)),
        }
    }

    /// Compiles a validated policy with the masking key.
    ///
    /// # Errors
    /// As [`Sanitizer::new`], for the key.
    pub fn from_policy(policy: &Policy, key: Option<&[u8]>) -> Result<Self, Error> {
        let masker = match key {
            Some(key) => Some(Masker::new(key).map_err(|KeyError::TooShort| Error::KeyTooShort)?),
            None if policy.needs_key() => return Err(Error::MissingKey),
            None => None,
        };
        let destinations = policy
            .destinations
            .iter()
            .map(|d| Compiled {
                name: d.name.clone(),
                endpoint: d.endpoint.clone(),
                route: match (d.connection, d.restricted) {
                    (Connection::ClientSide, _) => Route::ClientSide,
                    (Connection::ServerSide, false) => Route::Unrestricted,
                    (Connection::ServerSide, true) => {
                        Route::Restricted(Box::new(Tries::new(&policy.lists_for(d))))
                    }
                },
            })
            .collect();
        Ok(Sanitizer {
            identifiers: policy.identifiers,
            masker,
            destinations,
        })
    }

    /// Names of the server-side destinations the edge forwards to, in
    /// policy order.
    pub fn destinations(&self) -> impl Iterator<Item = &str> {
        self.destinations
            .iter()
            .filter(|d| !matches!(d.route, Route::ClientSide))
            .map(|d| d.name.as_str())
    }

    /// The endpoint of a destination, if it has one.
    pub fn endpoint(&self, destination: &str) -> Option<&str> {
        self.find(destination).ok()?.endpoint.as_deref()
    }

    fn find(&self, destination: &str) -> Result<&Compiled, Error> {
        self.destinations
            .iter()
            .find(|d| d.name == destination)
            .ok_or_else(|| Error::UnknownDestination(destination.to_owned()))
    }

    /// Sanitizes one event (JSON text) for `destination`: the JSON text to
    /// send, or `None` when nothing may be sent (client-side destinations).
    ///
    /// # Errors
    /// [`Error::UnknownDestination`], or [`Error::Event`] saying why the
    /// event was refused; a refused event is sent to no destination.
    pub fn sanitize_json(&self, event: &str, destination: &str) -> Result<Option<String>, Error> {
        let dest = self.find(destination)?;
        let tries = match &dest.route {
            Route::Restricted(tries) => Some(tries.as_ref()),
            Route::ClientSide | Route::Unrestricted => None,
        };
        let mut w = Writer {
            src: event.as_bytes(),
            out: Vec::with_capacity(if tries.is_some() { event.len() } else { 0 }),
            masker: self.masker.as_ref(),
        };
        // Every event is read whole and validated, whatever the route.
        w.event(tries, &self.identifiers)?;
        match dest.route {
            Route::ClientSide => Ok(None),
            Route::Unrestricted => Ok(Some(event.trim().to_owned())),
            // The output holds input slices cut at JSON token boundaries
            // and ASCII, so it is UTF-8; the check only keeps this
            // panic-free.
            Route::Restricted(_) => String::from_utf8(w.out)
                .map(Some)
                .map_err(|_| Error::Event(EventError::NotObject)),
        }
    }
}

/// Reads an event once, validating all of it, and writes what a
/// destination may receive.
struct Writer<'a> {
    src: &'a [u8],
    out: Vec<u8>,
    masker: Option<&'a Masker>,
}

impl<'a> Writer<'a> {
    fn reader(&self, at: usize) -> Reader<'a> {
        Reader::at(self.src, at, MAX_DEPTH)
    }

    /// Reads the whole event, and with `tries` writes the sanitized event
    /// to `out`; without, only validates it.
    fn event(&mut self, tries: Option<&Tries>, ids: &Identifiers) -> Result<(), Error> {
        if self.src.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge.into());
        }
        let mut r = self.reader(0);
        if r.peek_kind().map_err(syntax)? != Kind::Object {
            // Read it all the same, so bad JSON is reported as such.
            r.skip_value(1).map_err(syntax)?;
            r.finish().map_err(syntax)?;
            return Err(EventError::NotObject.into());
        }
        r.begin_object(1).map_err(syntax)?;
        self.out.push(b'{');
        let mut seen = 0u32;
        let mut call = None;
        let mut type_error = None;
        let mut deferred: Vec<Deferred> = Vec::new();
        let mut first = true;
        while let Some(key) = r.next_key(&mut first).map_err(syntax)? {
            let (field, known) = Field::of(&r.decode(key).map_err(syntax)?);
            if let Some((name, bit)) = known {
                if seen & bit != 0 {
                    return Err(EventError::DuplicateKey(name).into());
                }
                seen |= bit;
            }
            let writing = tries.filter(|_| type_error.is_none());
            if field == Field::Type {
                let start = r.pos();
                if r.peek_kind().map_err(syntax)? == Kind::String {
                    let span = r.string().map_err(syntax)?;
                    call = CallType::parse(&r.decode(span).map_err(syntax)?);
                    type_error = call.is_none().then_some(EventError::UnknownType);
                } else {
                    r.skip_value(2).map_err(syntax)?;
                    type_error = Some(EventError::TypeNotString);
                }
                if writing.is_some() {
                    self.key(key);
                    self.out.extend_from_slice(&self.src[start..r.pos()]);
                }
                continue;
            }
            match writing {
                Some(_) if call.is_none() && matches!(field, Field::Properties | Field::Traits) => {
                    let at = self.out.len();
                    let value = r.pos();
                    r.skip_value(2).map_err(syntax)?;
                    deferred.push(Deferred {
                        field,
                        key,
                        value,
                        at,
                    });
                }
                Some(tries) => self.member(&mut r, key, field, call, tries, ids)?,
                None => {
                    r.skip_value(2).map_err(syntax)?;
                }
            }
        }
        r.finish().map_err(syntax)?;
        if let Some(e) = type_error {
            return Err(e.into());
        }
        if call.is_none() {
            return Err(EventError::MissingType.into());
        }
        if let Some(tries) = tries {
            // From the last to the first, so earlier places do not move.
            for d in deferred.iter().rev() {
                let rest = std::mem::take(&mut self.out);
                let mut r = self.reader(d.value);
                let result = self.member(&mut r, d.key, d.field, call, tries, ids);
                let member = std::mem::replace(&mut self.out, rest);
                result?;
                if member.is_empty() {
                    continue;
                }
                // A comma before it if a member precedes, else after it if
                // one follows.
                let mut bytes = Vec::with_capacity(member.len() + 1);
                if d.at > 1 {
                    bytes.push(b',');
                }
                bytes.extend_from_slice(&member);
                if d.at <= 1 && self.out.len() > d.at {
                    bytes.push(b',');
                }
                self.out.splice(d.at..d.at, bytes);
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Writes `,"key":` (no comma before the first member).
    fn key(&mut self, key: StrSpan) {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        self.out.extend_from_slice(&self.src[key.start..key.end]);
        self.out.push(b':');
    }

    /// Writes one top-level member as the destination may receive it, or
    /// nothing.
    fn member(
        &mut self,
        r: &mut Reader<'a>,
        key: StrSpan,
        field: Field,
        call: Option<CallType>,
        tries: &Tries,
        ids: &Identifiers,
    ) -> Result<(), Error> {
        let kind = r.peek_kind().map_err(syntax)?;
        let (node, action): (Option<&Node>, Option<Action>) = match field {
            Field::Type | Field::Other => (None, None),
            Field::Structural(shape) => {
                let fits = matches!(
                    (shape, kind),
                    (_, Kind::Null)
                        | (Shape::Text | Shape::TextOrNumber, Kind::String)
                        | (Shape::TextOrNumber, Kind::Number)
                        | (Shape::Object, Kind::Object)
                );
                (None, fits.then_some(Action::Allow))
            }
            Field::Identifier(i) => {
                let scalar = matches!(kind, Kind::String | Kind::Number | Kind::Null);
                let action = match ids.0[i] {
                    IdAction::Mask => Some(Action::Mask),
                    IdAction::Allow => Some(Action::Allow),
                    IdAction::Drop => None,
                };
                (None, action.filter(|_| scalar))
            }
            Field::Properties => match call {
                Some(CallType::Track | CallType::Page | CallType::Screen) => {
                    (Some(&tries.event), None)
                }
                _ => (None, None),
            },
            Field::Traits => match call {
                Some(CallType::Identify) => (Some(&tries.user), None),
                Some(CallType::Group) => (Some(&tries.group), None),
                _ => (None, None),
            },
            Field::Context => (Some(&tries.context), None),
        };
        let mark = self.out.len();
        self.key(key);
        if !self.walk(r, node, action, 2)? {
            self.out.truncate(mark);
        }
        Ok(())
    }

    /// Writes the value at `r` as the rules allow: `node` is the trie node
    /// at this path (if any), `inherited` the action of the nearest rule
    /// above. Returns whether anything was written (else the caller drops
    /// the member, or writes `null` for an array element).
    fn walk(
        &mut self,
        r: &mut Reader<'a>,
        node: Option<&Node>,
        inherited: Option<Action>,
        depth: usize,
    ) -> Result<bool, Error> {
        let action = node.and_then(|n| n.action).or(inherited);
        let Some(node) = node.filter(|n| !n.is_leaf()) else {
            return self.apply(r, action, depth);
        };
        match r.peek_kind().map_err(syntax)? {
            Kind::Object if node.has_keys() => {
                r.begin_object(depth).map_err(syntax)?;
                self.out.push(b'{');
                let mut first_in = true;
                let mut first_out = true;
                while let Some(key) = r.next_key(&mut first_in).map_err(syntax)? {
                    let mark = self.out.len();
                    if !first_out {
                        self.out.push(b',');
                    }
                    self.out.extend_from_slice(&self.src[key.start..key.end]);
                    self.out.push(b':');
                    let name: Cow<'_, [u8]> = r.decode(key).map_err(syntax)?;
                    if self.walk(r, node.child(&name), action, depth + 1)? {
                        first_out = false;
                    } else {
                        self.out.truncate(mark);
                    }
                }
                self.out.push(b'}');
                Ok(true)
            }
            Kind::Array if node.elements.is_some() => {
                r.begin_array(depth).map_err(syntax)?;
                self.out.push(b'[');
                let mut first = true;
                while r.next_element(&mut first).map_err(syntax)? {
                    if self.out.last() != Some(&b'[') {
                        self.out.push(b',');
                    }
                    if !self.walk(r, node.elements.as_deref(), action, depth + 1)? {
                        self.out.extend_from_slice(b"null");
                    }
                }
                self.out.push(b']');
                Ok(true)
            }
            // The shape does not fit the deeper rules: the nearest rule
            // above covers the whole value, or nothing does.
            _ => self.apply(r, action, depth),
        }
    }

    /// Writes the whole value at `r` under one action (or skips it).
    fn apply(
        &mut self,
        r: &mut Reader<'a>,
        action: Option<Action>,
        depth: usize,
    ) -> Result<bool, Error> {
        match action {
            None => {
                r.skip_value(depth).map_err(syntax)?;
                Ok(false)
            }
            Some(Action::Allow) => {
                let (start, end) = r.skip_value(depth).map_err(syntax)?;
                self.out.extend_from_slice(&self.src[start..end]);
                Ok(true)
            }
            Some(Action::Mask) => {
                let masker = self.masker.ok_or(Error::MissingKey)?;
                self.mask(r, masker, depth)?;
                Ok(true)
            }
        }
    }

    /// Writes the value with every scalar leaf masked and its shape kept.
    fn mask(&mut self, r: &mut Reader<'a>, masker: &Masker, depth: usize) -> Result<(), Error> {
        match r.peek_kind().map_err(syntax)? {
            Kind::Object => {
                r.begin_object(depth).map_err(syntax)?;
                self.out.push(b'{');
                let mut first = true;
                while let Some(key) = r.next_key(&mut first).map_err(syntax)? {
                    if self.out.last() != Some(&b'{') {
                        self.out.push(b',');
                    }
                    self.out.extend_from_slice(&self.src[key.start..key.end]);
                    self.out.push(b':');
                    self.mask(r, masker, depth + 1)?;
                }
                self.out.push(b'}');
            }
            Kind::Array => {
                r.begin_array(depth).map_err(syntax)?;
                self.out.push(b'[');
                let mut first = true;
                while r.next_element(&mut first).map_err(syntax)? {
                    if self.out.last() != Some(&b'[') {
                        self.out.push(b',');
                    }
                    self.mask(r, masker, depth + 1)?;
                }
                self.out.push(b']');
            }
            Kind::String => {
                let span = r.string().map_err(syntax)?;
                let clear = r.decode(span).map_err(syntax)?;
                self.hex(masker, &clear);
            }
            Kind::Number => {
                let (start, end) = r.number().map_err(syntax)?;
                self.hex(masker, &self.src[start..end]);
            }
            Kind::True => {
                r.literal(b"true").map_err(syntax)?;
                self.hex(masker, b"true");
            }
            Kind::False => {
                r.literal(b"false").map_err(syntax)?;
                self.hex(masker, b"false");
            }
            Kind::Null => {
                r.literal(b"null").map_err(syntax)?;
                self.out.extend_from_slice(b"null");
            }
        }
        Ok(())
    }

    fn hex(&mut self, masker: &Masker, clear: &[u8]) {
        self.out.push(b'"');
        masker.write_hex(clear, &mut self.out);
        self.out.push(b'"');
    }
}
