//! Reads an event once, whatever the destinations: validates all of it
//! (syntax, size, depth, type, keys written twice at any depth, the fields Segment's
//! spec requires) and notes where each top-level member stands, its event
//! or page name and its `integrations` routing. Writers for each
//! destination then walk only the members they may send.
//!
//! An event of a request the request's first read validated is not read
//! again as JSON: [`Event::read_members`] takes the members that read
//! found where they stand in the body and checks only what an event must
//! be beyond JSON.

use std::borrow::Cow;

use crate::json::{Keys, Kind, Reader, StrSpan, SyntaxError, SyntaxReason};
use crate::policy::IDENTIFIER_KEYS;

mod error;
pub use error::EventError;

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
    pub const ALL: [CallType; 6] = [
        CallType::Track,
        CallType::Identify,
        CallType::Group,
        CallType::Page,
        CallType::Screen,
        CallType::Alias,
    ];

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

    pub fn parse(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name().as_bytes() == name)
    }

    /// The names of all six, for messages: `track, identify, …, alias`.
    pub fn list() -> String {
        let mut out = String::new();
        for (i, call) in Self::ALL.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(call.name());
        }
        out
    }
}

/// A set of call types (a destination's `calls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls(u8);

impl Calls {
    pub const ALL: Calls = Calls(0b11_1111);
    pub const NONE: Calls = Calls(0);

    pub fn with(self, call: CallType) -> Self {
        Calls(self.0 | 1 << call as u8)
    }

    pub fn has(self, call: CallType) -> bool {
        self.0 & 1 << call as u8 != 0
    }

    /// The set as bits (for a prepared policy).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set these bits name, or `None` if a bit names no call type.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits & !Calls::ALL.0 == 0).then_some(Calls(bits))
    }
}

impl Default for Calls {
    fn default() -> Self {
        Calls::ALL
    }
}

/// Which name of the event a member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameField {
    /// `event` of a track call.
    Event,
    /// `name` of a page or screen call.
    Name,
    /// `category` of a page or screen call.
    Category,
}

impl NameField {
    /// Whether Segment's spec gives this name to `call`.
    pub fn belongs_to(self, call: CallType) -> bool {
        match self {
            NameField::Event => call == CallType::Track,
            NameField::Name | NameField::Category => {
                matches!(call, CallType::Page | CallType::Screen)
            }
        }
    }
}

/// What a top-level key of an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Type,
    MessageId,
    /// `timestamp`, `originalTimestamp`, `sentAt`, `receivedAt`.
    Timestamp,
    Channel,
    Version,
    Name(NameField),
    Integrations,
    /// An index into [`IDENTIFIER_KEYS`].
    Identifier(usize),
    Properties,
    Traits,
    Context,
    Other,
}

/// Known top-level keys, in the order of their bit in the set of keys seen.
const KNOWN: [(&str, Field); 19] = [
    ("type", Field::Type),
    ("messageId", Field::MessageId),
    ("timestamp", Field::Timestamp),
    ("originalTimestamp", Field::Timestamp),
    ("sentAt", Field::Timestamp),
    ("receivedAt", Field::Timestamp),
    ("channel", Field::Channel),
    ("version", Field::Version),
    ("event", Field::Name(NameField::Event)),
    ("name", Field::Name(NameField::Name)),
    ("category", Field::Name(NameField::Category)),
    ("integrations", Field::Integrations),
    ("properties", Field::Properties),
    ("traits", Field::Traits),
    ("context", Field::Context),
    (IDENTIFIER_KEYS[0], Field::Identifier(0)),
    (IDENTIFIER_KEYS[1], Field::Identifier(1)),
    (IDENTIFIER_KEYS[2], Field::Identifier(2)),
    (IDENTIFIER_KEYS[3], Field::Identifier(3)),
];

impl Field {
    /// What `key` is.
    fn of(key: &[u8]) -> Field {
        KNOWN
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map_or(Field::Other, |&(_, field)| field)
    }
}

/// One top-level member: what it is, its key as written, and where its
/// value starts.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub field: Field,
    pub key: StrSpan,
    pub value: usize,
    /// Where the value ends.
    pub end: usize,
    pub kind: Kind,
}

/// An `integrations` member read for routing: its key, and whether it
/// turns the destination on (`true` or an object).
#[derive(Debug, Clone)]
struct Switch<'a> {
    key: Cow<'a, [u8]>,
    on: bool,
}

/// An event read and validated, ready to be written for each destination.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The event's text; or, when [`Event::read_members`] read it, the
    /// request body its members stand in.
    pub src: &'a [u8],
    /// Whether `src` is the event's text whole.
    whole: bool,
    pub call: CallType,
    pub members: Vec<Member>,
    /// The `event`, `name` and `category` strings, decoded (by
    /// [`NameField`] order).
    names: [Option<Cow<'a, [u8]>>; 3],
    switches: Vec<Switch<'a>>,
}

/// The event error for a syntax error of the reader.
pub(crate) fn syntax(e: SyntaxError) -> EventError {
    match e.reason {
        SyntaxReason::TooDeep(_) => EventError::TooDeep,
        reason => EventError::InvalidJson {
            offset: e.offset,
            reason,
        },
    }
}

/// What the read found out along the way, checked once it is complete.
#[derive(Default)]
struct Findings {
    call: Option<CallType>,
    type_error: Option<EventError>,
    integrations_error: bool,
    /// Which of [`IDENTIFIER_KEYS`] hold a usable id.
    ids: [bool; 4],
}

impl<'a> Event<'a> {
    /// Reads and validates the event text `src`.
    ///
    /// # Errors
    /// Why the event was refused: it is then sent to no destination.
    pub fn read(src: &'a [u8]) -> Result<Self, EventError> {
        Self::read_from(Reader::new(src, MAX_DEPTH))
    }

    /// As [`Event::read`], for text that is valid JSON already (an event
    /// of a request [`crate::read_request`] read): only what an event must
    /// be beyond JSON is checked (its depth, shape and fields).
    ///
    /// # Errors
    /// As [`Event::read`].
    pub fn read_validated(src: &'a [u8]) -> Result<Self, EventError> {
        Self::read_from(Reader::validated(src, 0, MAX_DEPTH))
    }

    /// A reader inside the event's `context` object, its `{` read; `None`
    /// when the event has no `context` object (bots and consent read
    /// their members from it).
    ///
    /// # Errors
    /// Only a reader error on text read before (never for valid events).
    pub(crate) fn context_reader(&self) -> Result<Option<Reader<'a>>, SyntaxError> {
        let Some(context) = self
            .members
            .iter()
            .find(|m| m.field == Field::Context && m.kind == Kind::Object)
        else {
            return Ok(None);
        };
        let mut r = Reader::validated(self.src, context.value, MAX_DEPTH);
        r.begin_object(2)?;
        Ok(Some(r))
    }

    fn read_from(r: Reader<'a>) -> Result<Self, EventError> {
        let src = r.src();
        Self::read_all(r).map_err(|e| match e {
            EventError::InvalidJson {
                offset,
                reason: SyntaxReason::DuplicateKey,
            } => EventError::DuplicateKey(crate::key_name::duplicate(src, offset)),
            e => e,
        })
    }

    fn read_all(mut r: Reader<'a>) -> Result<Self, EventError> {
        let src = r.src();
        if src.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge);
        }
        if r.peek_kind().map_err(syntax)? != Kind::Object {
            // Read it all the same, so bad JSON is reported as such.
            r.skip_value(1).map_err(syntax)?;
            r.finish().map_err(syntax)?;
            return Err(EventError::NotObject);
        }
        r.begin_object(1).map_err(syntax)?;
        let mut event = Event {
            src,
            whole: true,
            call: CallType::Track,
            members: Vec::new(),
            names: [None, None, None],
            switches: Vec::new(),
        };
        let mut found = Findings::default();
        let mut keys = Keys::default();
        while let Some(key) = r.next_unique_key(&mut keys).map_err(syntax)? {
            let field = Field::of(&r.decode(key).map_err(syntax)?);
            let kind = r.peek_kind().map_err(syntax)?;
            let value = r.pos();
            event.read_member(&mut r, field, kind, &mut found)?;
            event.members.push(Member {
                field,
                key,
                value,
                end: r.pos(),
                kind,
            });
        }
        r.finish().map_err(syntax)?;
        let named = event.name(NameField::Event).is_some_and(|n| !n.is_empty());
        event.call = found.check(named)?;
        Ok(event)
    }

    /// Reads an event from its members as a request's first read found
    /// them in `body` (validated whole, no key written twice at any
    /// depth): `(decoded key, key, value span)`. The event is their text
    /// copied with nothing between them (as [`crate::read_request`] gives
    /// it); only what an event must be beyond JSON is checked, from the
    /// members that say something of it (`too_deep`: the first read found
    /// it nests deeper than [`MAX_DEPTH`]), so the others are not read.
    ///
    /// # Errors
    /// As [`Event::read`].
    pub(crate) fn read_members<'k>(
        body: &'a [u8],
        members: impl ExactSizeIterator<Item = (&'k [u8], StrSpan, (usize, usize))> + Clone,
        too_deep: bool,
    ) -> Result<Self, EventError> {
        // `{`, `}`, and each member's `"key":value` with a comma between.
        let len = members
            .clone()
            .fold(1 + members.len().max(1), |n, (_, key, value)| {
                n + (key.end - key.start) + 1 + (value.1 - value.0)
            });
        if len > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge);
        }
        if too_deep {
            return Err(EventError::TooDeep);
        }
        let mut event = Event {
            src: body,
            whole: false,
            call: CallType::Track,
            members: Vec::with_capacity(members.len()),
            names: [None, None, None],
            switches: Vec::new(),
        };
        let mut found = Findings::default();
        for (name, key, (value, end)) in members {
            let field = Field::of(name);
            let mut r = Reader::validated(body, value, MAX_DEPTH);
            let kind = r.peek_kind().map_err(syntax)?;
            // The others' values say nothing of what an event must be.
            if matches!(
                field,
                Field::Type | Field::Name(_) | Field::Identifier(_) | Field::Integrations
            ) {
                event.read_member(&mut r, field, kind, &mut found)?;
            }
            event.members.push(Member {
                field,
                key,
                value,
                end,
                kind,
            });
        }
        let named = event.name(NameField::Event).is_some_and(|n| !n.is_empty());
        event.call = found.check(named)?;
        Ok(event)
    }

    /// The event's text (as [`crate::read_request`] gives it).
    pub(crate) fn text(&self) -> Cow<'a, [u8]> {
        if self.whole {
            return Cow::Borrowed(self.src);
        }
        let mut out = Vec::with_capacity(self.len());
        out.push(b'{');
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.src[m.key.start..m.key.end]);
            out.push(b':');
            out.extend_from_slice(&self.src[m.value..m.end]);
        }
        out.push(b'}');
        Cow::Owned(out)
    }

    /// The length of [`Event::text`].
    pub(crate) fn len(&self) -> usize {
        if self.whole {
            return self.src.len();
        }
        let members = self
            .members
            .iter()
            .map(|m| (m.key.end - m.key.start) + 1 + (m.end - m.value));
        members.sum::<usize>() + 1 + self.members.len().max(1)
    }

    /// Reads one member's value, keeping what later checks need.
    fn read_member(
        &mut self,
        r: &mut Reader<'a>,
        field: Field,
        kind: Kind,
        found: &mut Findings,
    ) -> Result<(), EventError> {
        match (field, kind) {
            (Field::Type, Kind::String) => {
                let span = r.string().map_err(syntax)?;
                found.call = CallType::parse(&r.decode(span).map_err(syntax)?);
                found.type_error = found.call.is_none().then_some(EventError::UnknownType);
            }
            (Field::Type, _) => {
                r.skip_value(2).map_err(syntax)?;
                found.type_error = Some(EventError::TypeNotString);
            }
            (Field::Name(which), Kind::String) => {
                let span = r.string().map_err(syntax)?;
                self.names[which as usize] = Some(r.decode(span).map_err(syntax)?);
            }
            (Field::Identifier(i), Kind::String) => {
                let span = r.string().map_err(syntax)?;
                found.ids[i] = span.end - span.start > 2;
            }
            (Field::Identifier(i), Kind::Number) => {
                r.number().map_err(syntax)?;
                found.ids[i] = true;
            }
            (Field::Integrations, Kind::Object) => self.read_switches(r)?,
            (Field::Integrations, Kind::Null) => r.skip_value(2).map(drop).map_err(syntax)?,
            (Field::Integrations, _) => {
                r.skip_value(2).map_err(syntax)?;
                found.integrations_error = true;
            }
            _ => {
                r.skip_value(2).map_err(syntax)?;
            }
        }
        Ok(())
    }

    /// Reads the members of `integrations` for routing.
    fn read_switches(&mut self, r: &mut Reader<'a>) -> Result<(), EventError> {
        r.begin_object(2).map_err(syntax)?;
        let mut keys = Keys::default();
        while let Some(key) = r.next_unique_key(&mut keys).map_err(syntax)? {
            let on = matches!(r.peek_kind().map_err(syntax)?, Kind::True | Kind::Object);
            r.skip_value(3).map_err(syntax)?;
            self.switches.push(Switch {
                key: r.decode(key).map_err(syntax)?,
                on,
            });
        }
        Ok(())
    }

    /// The decoded string of a name field, if the event has one.
    pub fn name(&self, which: NameField) -> Option<&[u8]> {
        self.names[which as usize].as_deref()
    }

    /// Whether Segment's routing sends this event to the destination known
    /// to `integrations` as `integration`: its own member if it has one
    /// (`true` or an object: yes; anything else: no), else `All` (absent
    /// or `true`: yes). Names compare ASCII case-insensitively; when
    /// members disagree, no.
    pub fn routed_to(&self, integration: &str) -> bool {
        let matching = |name: &str| {
            let mut any = false;
            let mut all_on = true;
            for s in self
                .switches
                .iter()
                .filter(|s| s.key.eq_ignore_ascii_case(name.as_bytes()))
            {
                any = true;
                all_on &= s.on;
            }
            any.then_some(all_on)
        };
        matching(integration)
            .or_else(|| matching("All"))
            .unwrap_or(true)
    }
}

impl Findings {
    /// The call type, once the fields the spec requires are there
    /// (`named`: the event has a non-empty `event` string).
    fn check(&self, named: bool) -> Result<CallType, EventError> {
        if let Some(e) = &self.type_error {
            return Err(e.clone());
        }
        let call = self.call.ok_or(EventError::MissingType)?;
        if self.integrations_error {
            return Err(EventError::IntegrationsNotObject);
        }
        let [user, anonymous, group, previous] = self.ids;
        let missing = if !user && !anonymous {
            Some(Required::UserOrAnonymousId)
        } else if call == CallType::Track && !named {
            Some(Required::EventName)
        } else if call == CallType::Group && !group {
            Some(Required::GroupId)
        } else if call == CallType::Alias && !previous {
            Some(Required::PreviousId)
        } else {
            None
        };
        match missing {
            Some(what) => Err(EventError::Incomplete(what)),
            None => Ok(call),
        }
    }
}

/// What Segment's spec requires of a call that it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    /// Every call: `userId` or `anonymousId`.
    UserOrAnonymousId,
    /// A track call: `event`.
    EventName,
    /// A group call: `groupId`.
    GroupId,
    /// An alias call: `previousId`.
    PreviousId,
}

impl Required {
    /// What is missing, as a message.
    pub fn text(self) -> &'static str {
        match self {
            Required::UserOrAnonymousId => {
                "event has neither \"userId\" nor \"anonymousId\" (a non-empty string or a number); every call needs one"
            }
            Required::EventName => "track event has no \"event\" name (a non-empty string)",
            Required::GroupId => {
                "group event has no \"groupId\" (a non-empty string or a number)"
            }
            Required::PreviousId => {
                "alias event has no \"previousId\" (a non-empty string or a number)"
            }
        }
    }
}

impl std::fmt::Display for Required {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}
