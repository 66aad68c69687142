//! Destination formats: a sanitized event (the JSON text the sanitizer
//! wrote) as the item a destination's own API takes, and items gathered
//! into request bodies within that API's limits.
//!
//! The mapping reads only the sanitized event, so it cannot bring back
//! anything the policy removed: every value it writes is one the event
//! already carries (or a fixed name, a time computed from a sanitized
//! timestamp, or a hash of a sanitized value).

use sha2::{Digest, Sha256};

use std::borrow::Cow;
use std::cell::OnceCell;

use crate::event::MAX_DEPTH;
use crate::json::{write_string, Kind, Reader};
use crate::structural::epoch_millis;

/// What a destination's endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"batch": [event, ...]}` (Segment's batch API).
    Segment,
    /// Amplitude HTTP V2 (`/2/httpapi`): `{"api_key", "events": [...]}`
    /// (`api_key` added when sending).
    Amplitude,
    /// Mixpanel `/import`: `[{"event", "properties"}, ...]`.
    Mixpanel,
    /// GA4 Measurement Protocol (`/mp/collect`): `{"client_id", "user_id",
    /// "events": [{"name", "params"}]}`, one user per request.
    Ga4,
    /// PostHog `/batch/`: `{"api_key", "batch": [...]}` (`api_key` added
    /// when sending).
    Posthog,
    /// One sanitized event a line.
    Ndjson,
}

/// A GA4 body's opening, around the members its events share.
const GA4_OPEN: (&str, &str) = ("{", ",\"events\":[");

/// A format's limits per request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub events: usize,
    pub bytes: usize,
}

/// What a format sends for one event: its JSON text, and the members its
/// request shares with the other events of the same body (GA4's IDs: one
/// user per request), empty for the other formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub shared: String,
    pub text: String,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Segment,
        Format::Amplitude,
        Format::Mixpanel,
        Format::Ga4,
        Format::Posthog,
        Format::Ndjson,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Segment => "segment",
            Format::Amplitude => "amplitude",
            Format::Mixpanel => "mixpanel",
            Format::Ga4 => "ga4",
            Format::Posthog => "posthog",
            Format::Ndjson => "ndjson",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Each API's documented limits per request.
    pub fn limits(self) -> Limits {
        match self {
            // Segment: 500 KB a batch request.
            Format::Segment | Format::Ndjson => Limits {
                events: usize::MAX,
                bytes: 512_000,
            },
            // Amplitude HTTP V2: 2,000 events, and requests kept under 1 MB.
            Format::Amplitude => Limits {
                events: 2000,
                bytes: 1_000_000,
            },
            // Mixpanel /import: 2,000 events; 2 MB uncompressed (the
            // smaller of the figures its documentation gives).
            Format::Mixpanel => Limits {
                events: 2000,
                bytes: 2_000_000,
            },
            // GA4 Measurement Protocol: 25 events, a body under 130 kB.
            Format::Ga4 => Limits {
                events: 25,
                bytes: 130_000,
            },
            // PostHog /batch/: kept well under its 20 MB request limit.
            Format::Posthog => Limits {
                events: 2000,
                bytes: 1_000_000,
            },
        }
    }

    /// Whether the format writes the sanitized event itself, unchanged.
    pub fn is_passthrough(self) -> bool {
        matches!(self, Format::Segment | Format::Ndjson)
    }

    /// The item this format sends for a sanitized event (its JSON text),
    /// or `None` when it sends nothing for it (a call type it has no
    /// mapping for, no user or device ID where the API needs one, or text
    /// that is not an event).
    pub fn item(self, event: &str) -> Option<Item> {
        if self.is_passthrough() {
            return Some(Item {
                shared: String::new(),
                text: event.to_owned(),
            });
        }
        self.native_item(&Sanitized::parse(event)?)
    }

    /// As [`Format::item`], for an event already parsed (so several
    /// formats share one parse). For the native formats only.
    pub fn native_item(self, e: &Sanitized<'_>) -> Option<Item> {
        let mut out = Out(Vec::with_capacity(e.text.len() + 64));
        let mut shared = String::new();
        match self {
            Format::Amplitude => amplitude(e, &mut out)?,
            Format::Mixpanel => mixpanel(e, &mut out)?,
            Format::Posthog => posthog(e, &mut out)?,
            Format::Ga4 => shared = ga4(e, &mut out)?,
            Format::Segment | Format::Ndjson => return None,
        }
        Some(Item {
            shared,
            text: String::from_utf8(out.0).ok()?,
        })
    }

    /// The opening of a body, up to its first item. No credential: the
    /// sender inserts Amplitude's and PostHog's `api_key` after the `{`
    /// (bodies wait in queues and dead letters).
    fn open(self, shared: &str) -> Cow<'static, str> {
        match self {
            Format::Segment | Format::Posthog => Cow::Borrowed("{\"batch\":["),
            Format::Ndjson => Cow::Borrowed(""),
            Format::Mixpanel => Cow::Borrowed("["),
            Format::Amplitude => Cow::Borrowed("{\"events\":["),
            Format::Ga4 => Cow::Owned([GA4_OPEN.0, shared, GA4_OPEN.1].concat()),
        }
    }

    /// The length of [`Format::open`], without making it.
    fn open_len(self, shared: &str) -> usize {
        match self {
            Format::Ga4 => GA4_OPEN.0.len() + shared.len() + GA4_OPEN.1.len(),
            _ => self.open("").len(),
        }
    }

    /// What ends a body, and what goes between two items.
    fn close_and_separator(self) -> (&'static str, &'static str) {
        match self {
            Format::Ndjson => ("\n", "\n"),
            Format::Mixpanel => ("]", ","),
            _ => ("]}", ","),
        }
    }

    /// The most bytes a body of this format may hold as phimask makes it:
    /// the API's limit less the room its body credential takes when the
    /// sender adds it, and no more than `max_bytes` (a queue message's).
    pub fn body_limit(self, max_bytes: usize) -> usize {
        let api = self
            .limits()
            .bytes
            .saturating_sub(crate::credential::body_member_room(self));
        api.min(max_bytes)
    }

    /// Whether `item` fits a body of its own within `limit` bytes (from
    /// [`Format::body_limit`]); one that does not cannot be sent at all.
    pub fn fits(self, item: &Item, limit: usize) -> bool {
        let (close, _) = self.close_and_separator();
        self.open_len(&item.shared) + item.text.len() + close.len() <= limit
    }

    /// `items` (from [`Format::item`]) as request bodies within the limits,
    /// in order (GA4: grouped by user, each user's in order), with room
    /// left for the credential the sender adds. Each body comes with the
    /// indexes of its items. Items too large for any body are left out
    /// and their indexes returned.
    pub fn bodies(self, items: &[Item]) -> (Vec<Body>, Vec<usize>) {
        self.bodies_within(items, usize::MAX)
    }

    /// As [`Format::bodies`], with no body over `max_bytes` either (a
    /// queue message's size): an item too large for it is refused too.
    pub fn bodies_within(self, items: &[Item], max_bytes: usize) -> (Vec<Body>, Vec<usize>) {
        let limits = Limits {
            events: self.limits().events,
            bytes: self.body_limit(max_bytes),
        };
        let (close, separator) = self.close_and_separator();
        // Groups of items sharing a request, in order of first appearance
        // (found by a hash first: GA4 has one per user).
        let hash = |s: &str| {
            s.bytes().fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            })
        };
        let mut groups: Vec<(u32, &str, Vec<usize>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let h = hash(&item.shared);
            match groups
                .iter_mut()
                .find(|(gh, s, _)| *gh == h && *s == item.shared)
            {
                Some((_, _, list)) => list.push(i),
                None => groups.push((h, &item.shared, vec![i])),
            }
        }
        let mut bodies = Vec::new();
        let mut too_large = Vec::new();
        for (_, shared, list) in groups {
            let open = self.open(shared);
            let mut body = Body::default();
            for i in list {
                let item = &items[i].text;
                if open.len() + item.len() + close.len() > limits.bytes {
                    too_large.push(i);
                    continue;
                }
                let count = body.items.len();
                if count > 0
                    && (count == limits.events
                        || body.text.len() + separator.len() + item.len() + close.len()
                            > limits.bytes)
                {
                    body.text.push_str(close);
                    bodies.push(std::mem::take(&mut body));
                }
                body.text.push_str(if body.items.is_empty() {
                    open.as_ref()
                } else {
                    separator
                });
                body.text.push_str(item);
                body.items.push(i);
            }
            if !body.items.is_empty() {
                body.text.push_str(close);
                bodies.push(body);
            }
        }
        (bodies, too_large)
    }
}

/// One request body, and the indexes (into the items given to
/// [`Format::bodies`]) of the events it carries, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    pub text: String,
    pub items: Vec<usize>,
}

/// A member of a sanitized object: its key decoded, and the JSON text of
/// its key and value as the sanitizer wrote them.
struct Field<'a> {
    key: Cow<'a, [u8]>,
    raw_key: &'a str,
    value: &'a str,
    kind: Kind,
}

impl<'a> Field<'a> {
    /// The member's string, decoded, if it is a non-empty string.
    fn text(&self) -> Option<Cow<'a, str>> {
        (self.kind == Kind::String && self.value.len() > 2).then(|| decode(self.value))?
    }
}

/// The content of a JSON string's text (quotes included), unescaped.
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    let mut r = Reader::validated(raw.as_bytes(), 0, 1);
    let span = r.string().ok()?;
    match r.decode(span).ok()? {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(b) => String::from_utf8(b).ok().map(Cow::Owned),
    }
}

/// The members of the JSON object `text` (valid JSON: the sanitizer's
/// output, or text checked before), each through `each`; `None` when it
/// is not an object.
fn each_member<'a>(text: &'a str, mut each: impl FnMut(Field<'a>)) -> Option<()> {
    let src = text.as_bytes();
    let mut r = Reader::validated(src, 0, MAX_DEPTH);
    if r.peek_kind().ok()? != Kind::Object {
        return None;
    }
    r.begin_object(1).ok()?;
    let mut first = true;
    while let Some(key) = r.next_key(&mut first).ok()? {
        let kind = r.peek_kind().ok()?;
        let (start, end) = r.skip_value(2).ok()?;
        each(Field {
            key: r.decode(key).ok()?,
            raw_key: text.get(key.start..key.end)?,
            value: text.get(start..end)?,
            kind,
        });
    }
    Some(())
}

/// A sanitized event, read once for every native format: its top-level
/// members, whose values are taken as the sanitizer wrote them (so they
/// are copied, not rebuilt).
pub struct Sanitized<'a> {
    members: Vec<Field<'a>>,
    /// Per key of [`KNOWN`], the index + 1 of its first member (0: none).
    known: [u16; KNOWN.len()],
    text: &'a str,
    // Worked out once for all the formats of the event.
    millis: OnceCell<Option<i64>>,
    traits: OnceCell<Option<&'a str>>,
}

/// The top-level keys the formats read, found once per event.
const KNOWN: [&str; 13] = [
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "event",
    "name",
    "properties",
    "traits",
    "context",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
];
const TYPE: usize = 0;
const USER_ID: usize = 1;
const ANONYMOUS_ID: usize = 2;
const MESSAGE_ID: usize = 3;
const EVENT: usize = 4;
const NAME: usize = 5;
const PROPERTIES: usize = 6;
const TRAITS: usize = 7;
const CONTEXT: usize = 8;
const TIMESTAMP: usize = 9;
const ORIGINAL_TIMESTAMP: usize = 10;
const SENT_AT: usize = 11;
const RECEIVED_AT: usize = 12;

impl<'a> Sanitized<'a> {
    /// Reads the sanitizer's output; `None` for text that is not an
    /// event object.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut check = Reader::new(text.as_bytes(), MAX_DEPTH);
        check.skip_value(1).ok()?;
        check.finish().ok()?;
        Self::parse_valid(text)
    }

    /// As [`Sanitized::parse`], for text known to be valid JSON (what the
    /// sanitizer just wrote).
    pub fn parse_valid(text: &'a str) -> Option<Self> {
        let mut e = Sanitized::empty(text);
        each_member(text, |f| e.push(f))?;
        Some(e)
    }

    /// The event the sanitizer just wrote, from where it wrote each
    /// member: (key start, value start, value end) in `text`, so nothing
    /// is read again.
    pub(crate) fn from_spans(
        text: &'a str,
        spans: impl Iterator<Item = (usize, usize, usize)>,
    ) -> Option<Self> {
        let mut e = Sanitized::empty(text);
        for (key_at, start, end) in spans {
            let raw_key = text.get(key_at..start.checked_sub(1)?)?;
            let value = text.get(start..end)?;
            let mut r = Reader::validated(raw_key.as_bytes(), 0, 1);
            let span = r.string().ok()?;
            let kind = Reader::validated(value.as_bytes(), 0, 1).peek_kind().ok()?;
            e.push(Field {
                key: r.decode(span).ok()?,
                raw_key,
                value,
                kind,
            });
        }
        Some(e)
    }

    fn empty(text: &'a str) -> Self {
        Sanitized {
            members: Vec::with_capacity(16),
            known: [0; KNOWN.len()],
            text,
            millis: OnceCell::new(),
            traits: OnceCell::new(),
        }
    }

    fn push(&mut self, f: Field<'a>) {
        if let Some(k) = KNOWN.iter().position(|k| *f.key == *k.as_bytes()) {
            if self.known[k] == 0 {
                self.known[k] = u16::try_from(self.members.len() + 1).unwrap_or(0);
            }
        }
        self.members.push(f);
    }

    /// The first member of a known key (one of [`KNOWN`]).
    fn get(&self, key: usize) -> Option<&Field<'a>> {
        let at = usize::from(*self.known.get(key)?).checked_sub(1)?;
        self.members.get(at)
    }

    /// The decoded string of `key`, if it is a non-empty string.
    fn string(&self, key: usize) -> Option<Cow<'a, str>> {
        self.get(key)?.text()
    }

    /// The JSON text of `key` when it is a non-empty string (to copy).
    fn raw_string(&self, key: usize) -> Option<&'a str> {
        let f = self.get(key)?;
        (f.kind == Kind::String && f.value.len() > 2).then_some(f.value)
    }

    /// The JSON text of `key` when it is an object.
    fn object(&self, key: usize) -> Option<&'a str> {
        let f = self.get(key)?;
        (f.kind == Kind::Object).then_some(f.value)
    }

    fn call(&self) -> &[u8] {
        match self.get(TYPE) {
            Some(f) if f.kind == Kind::String => f.value.as_bytes(),
            _ => b"",
        }
    }

    fn is(&self, call: &str) -> bool {
        let raw = self.call();
        raw.len() == call.len() + 2 && raw[1..raw.len() - 1] == *call.as_bytes()
    }

    /// The event's time: the first of its timestamps that is RFC 3339.
    fn millis(&self) -> Option<i64> {
        *self.millis.get_or_init(|| {
            [TIMESTAMP, ORIGINAL_TIMESTAMP, SENT_AT, RECEIVED_AT]
                .into_iter()
                .find_map(|k| self.string(k).and_then(|s| epoch_millis(s.as_bytes())))
        })
    }

    /// The traits: `traits` (identify) or else `context.traits`.
    fn traits(&self) -> Option<&'a str> {
        *self.traits.get_or_init(|| {
            self.object(TRAITS).or_else(|| {
                let mut found = None;
                each_member(self.object(CONTEXT)?, |f| {
                    if found.is_none() && *f.key == *b"traits" && f.kind == Kind::Object {
                        found = Some(f.value);
                    }
                })?;
                found
            })
        })
    }

    /// The name a page or screen view is sent under (Segment's own
    /// convention): "Viewed NAME Page", or "Loaded a Page" without a name.
    fn view_name(&self, kind: &str) -> String {
        match self.string(NAME) {
            Some(name) => ["Viewed ", &name, " ", kind].concat(),
            None => ["Loaded a ", kind].concat(),
        }
    }

    /// A stable dedup id for APIs that take at most 36 characters of
    /// `[A-Za-z0-9-]`: `messageId` when it is one; a masked `messageId`
    /// (64 hex digits, what restricted destinations receive): its first
    /// 36; or else the first 36 hex digits of the SHA-256 of `messageId`
    /// (or of the whole sanitized event, which is the same on every retry).
    fn dedup_id(&self) -> String {
        let id = self.string(MESSAGE_ID);
        if let Some(id) = &id {
            if id.len() <= 36 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return id.to_string();
            }
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return id.chars().take(36).collect();
            }
        }
        let source = id.unwrap_or(Cow::Borrowed(self.text));
        let digest = Sha256::digest(source.as_bytes());
        digest
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .take(36)
            .map(|n| char::from(b"0123456789abcdef"[usize::from(n)]))
            .collect()
    }
}

/// JSON text being written.
struct Out(Vec<u8>);

impl Out {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn string(&mut self, s: &str) {
        write_string(&mut self.0, s);
    }

    /// `,"key":` (no comma before the first member).
    fn key(&mut self, key: &str) {
        self.comma();
        self.string(key);
        self.0.push(b':');
    }

    fn comma(&mut self) {
        if !matches!(self.0.last(), None | Some(b'{' | b'[')) {
            self.0.push(b',');
        }
    }

    /// A member as the sanitizer wrote it.
    fn member(&mut self, f: &Field<'_>) {
        self.comma();
        self.raw(f.raw_key);
        self.0.push(b':');
        self.raw(f.value);
    }

    /// The members of `object` (JSON text), leaving out `reserved` keys
    /// (the format's own).
    fn members(&mut self, object: &str, reserved: &[&str]) {
        each_member(object, |f| {
            if !reserved.iter().any(|r| *f.key == *r.as_bytes()) {
                self.member(&f);
            }
        });
    }

    fn number(&mut self, n: i64) {
        if n < 0 {
            self.0.push(b'-');
        }
        let mut digits = [0u8; 20];
        let at = crate::message::decimal(n.unsigned_abs(), &mut digits);
        self.0.extend_from_slice(&digits[at..]);
    }
}

/// Amplitude: track as its event, page and screen as "Viewed NAME Page",
/// identify as `$identify` setting the traits; group and alias are not
/// sent (Amplitude takes them on other APIs). Needs a user or device ID.
fn amplitude(e: &Sanitized, out: &mut Out) -> Option<()> {
    let (user, device) = (e.raw_string(USER_ID), e.raw_string(ANONYMOUS_ID));
    if user.is_none() && device.is_none() {
        return None;
    }
    out.raw("{");
    out.key("event_type");
    if e.is("track") {
        out.raw(e.raw_string(EVENT)?);
    } else if e.is("page") {
        out.string(&e.view_name("Page"));
    } else if e.is("screen") {
        out.string(&e.view_name("Screen"));
    } else if e.is("identify") {
        out.string("$identify");
    } else {
        return None;
    }
    for (key, value) in [("user_id", user), ("device_id", device)] {
        if let Some(value) = value {
            out.key(key);
            out.raw(value);
        }
    }
    if let Some(ms) = e.millis() {
        out.key("time");
        out.number(ms);
    }
    if let Some(id) = e.raw_string(MESSAGE_ID) {
        out.key("insert_id");
        out.raw(id);
    }
    if !e.is("identify") {
        if let Some(props) = e.object(PROPERTIES) {
            out.key("event_properties");
            out.raw(props);
        }
    }
    if let Some(traits) = e.traits() {
        out.key("user_properties");
        out.raw("{");
        out.key("$set");
        out.raw(traits);
        out.raw("}");
    }
    out.raw("}");
    Some(())
}

/// The members Mixpanel's format writes itself; same-named properties of
/// the event are left out.
const MIXPANEL_RESERVED: [&str; 5] = [
    "time",
    "distinct_id",
    "$insert_id",
    "$user_id",
    "$device_id",
];

/// Mixpanel: track as its event, page and screen as "Viewed NAME Page";
/// identify, group and alias are not sent (profiles are another API).
/// Needs a time.
fn mixpanel(e: &Sanitized, out: &mut Out) -> Option<()> {
    if !(e.is("track") || e.is("page") || e.is("screen")) {
        return None;
    }
    let time = e.millis()?;
    let (user, device) = (e.raw_string(USER_ID), e.raw_string(ANONYMOUS_ID));
    out.raw("{");
    out.key("event");
    if e.is("track") {
        out.raw(e.raw_string(EVENT)?);
    } else {
        out.string(&e.view_name(if e.is("page") { "Page" } else { "Screen" }));
    }
    out.key("properties");
    out.raw("{");
    out.key("time");
    out.number(time);
    out.key("distinct_id");
    out.raw(user.or(device).unwrap_or("\"\""));
    out.key("$insert_id");
    out.string(&e.dedup_id());
    for (key, value) in [("$user_id", user), ("$device_id", device)] {
        if let Some(value) = value {
            out.key(key);
            out.raw(value);
        }
    }
    if let Some(props) = e.object(PROPERTIES) {
        out.members(props, &MIXPANEL_RESERVED);
    }
    out.raw("}}");
    Some(())
}

/// PostHog: track as its event, page as `$pageview`, screen as `$screen`
/// (with `$screen_name`), identify as `$identify` setting the traits;
/// group and alias are not sent. Needs a user or anonymous ID.
fn posthog(e: &Sanitized, out: &mut Out) -> Option<()> {
    let distinct = e.raw_string(USER_ID).or(e.raw_string(ANONYMOUS_ID));
    out.raw("{");
    out.key("event");
    if e.is("track") {
        out.raw(e.raw_string(EVENT)?);
    } else if e.is("page") {
        out.string("$pageview");
    } else if e.is("screen") {
        out.string("$screen");
    } else if e.is("identify") {
        out.string("$identify");
    } else {
        return None;
    }
    out.key("distinct_id");
    out.raw(distinct?);
    out.key("properties");
    out.raw("{");
    if let Some(props) = e.object(PROPERTIES).filter(|_| !e.is("identify")) {
        out.members(props, &["$set", "$screen_name"]);
    }
    if e.is("screen") {
        if let Some(name) = e.raw_string(NAME) {
            out.key("$screen_name");
            out.raw(name);
        }
    }
    if let Some(traits) = e.traits().filter(|_| e.is("identify")) {
        out.key("$set");
        out.raw(traits);
    }
    out.raw("}");
    if let Some(ts) = e.get(TIMESTAMP).filter(|f| {
        f.text()
            .is_some_and(|t| epoch_millis(t.as_bytes()).is_some())
    }) {
        out.key("timestamp");
        out.raw(ts.value);
    }
    out.raw("}");
    Some(())
}

/// GA4's own event names (automatically collected and reserved for the
/// Measurement Protocol): an event of the same name is renamed.
const GA4_RESERVED_NAMES: [&str; 44] = [
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_impression",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_install",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_update",
    "app_upgrade",
    "click",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "file_download",
    "first_open",
    "first_visit",
    "form_start",
    "form_submit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "page_view",
    "screen_view",
    "scroll",
    "session_start",
    "user_engagement",
    "video_complete",
    "video_progress",
    "video_start",
    "view_search_results",
    "session_start_with_rollout",
];

/// Name prefixes GA4 keeps for itself (`gtag.` cannot survive the
/// character rule, which turns `.` into `_`).
const GA4_RESERVED_PREFIXES: [&str; 4] = ["_", "firebase_", "ga_", "google_"];

/// Longest event or parameter name, and parameter string value, GA4 takes.
const GA4_NAME_CHARS: usize = 40;
const GA4_VALUE_CHARS: usize = 100;
/// Most parameters an event may carry.
const GA4_PARAMS: usize = 25;

/// A name within GA4's rules: characters other than ASCII letters, digits
/// and `_` become `_`; a name that does not start with a letter, starts
/// with a reserved prefix or (for events) is reserved gets `prefix`; the
/// result is cut to 40 characters.
pub fn ga4_name(raw: &str, prefix: &str, event: bool) -> String {
    ga4_name_cow(raw, prefix, event).into_owned()
}

/// [`ga4_name`], borrowing `raw` when it is within the rules already (the
/// usual case: `appointment_type`).
fn ga4_name_cow<'r>(raw: &'r str, prefix: &str, event: bool) -> Cow<'r, str> {
    let bytes = raw.as_bytes();
    let plain = bytes.len() <= GA4_NAME_CHARS
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !GA4_RESERVED_PREFIXES.iter().any(|p| raw.starts_with(p))
        && !(event && GA4_RESERVED_NAMES.contains(&raw));
    if plain {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(ga4_name_owned(raw, prefix, event))
}

fn ga4_name_owned(raw: &str, prefix: &str, event: bool) -> String {
    // One `_` per character that is not an ASCII letter or digit (its
    // UTF-8 continuation bytes are skipped).
    let mut name = String::with_capacity(prefix.len() + raw.len());
    name.extend(raw.bytes().filter(|b| b & 0xc0 != 0x80).map(|b| {
        if b.is_ascii_alphanumeric() {
            char::from(b)
        } else {
            '_'
        }
    }));
    // All ASCII now: compared without a lower-cased copy.
    let bytes = name.as_bytes();
    let reserved = GA4_RESERVED_PREFIXES.iter().any(|p| {
        bytes
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
    }) || (event
        && GA4_RESERVED_NAMES
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n)));
    if reserved || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, prefix);
    }
    name.truncate(GA4_NAME_CHARS);
    name
}

/// GA4: track as its event (name within GA4's rules), page as
/// `page_viewed` and screen as `screen_viewed` (GA4 reserves `page_view`
/// and `screen_view`) with the view's name as `page_name` /
/// `screen_name`; identify, group and alias are not sent. Needs a client
/// ID. Returns the members every event of its request shares.
fn ga4<'a>(e: &Sanitized<'a>, out: &mut Out) -> Option<String> {
    let (name, view) = if e.is("track") {
        (ga4_name(&e.string(EVENT)?, "e_", true), None)
    } else if e.is("page") {
        ("page_viewed".to_owned(), Some("page_name"))
    } else if e.is("screen") {
        ("screen_viewed".to_owned(), Some("screen_name"))
    } else {
        return None;
    };
    let user = e.raw_string(USER_ID);
    let client = e.raw_string(ANONYMOUS_ID).or(user)?;
    let mut shared = Out(Vec::new());
    shared.key("client_id");
    shared.raw(client);
    if let Some(user) = user {
        shared.key("user_id");
        shared.raw(user);
    }
    out.raw("{");
    out.key("name");
    out.string(&name);
    out.key("params");
    out.raw("{");
    let mut written: Vec<Cow<'a, str>> = Vec::new();
    let mut param = |out: &mut Out, key: Cow<'a, str>, f: &Field<'a>| {
        let fits = match f.kind {
            // Characters, not bytes: UTF-8 continuation bytes do not count.
            Kind::String => {
                f.value.len() <= GA4_VALUE_CHARS + 2
                    || decode(f.value).is_some_and(|s| {
                        s.bytes().filter(|b| b & 0xc0 != 0x80).count() <= GA4_VALUE_CHARS
                    })
            }
            Kind::Number => true,
            _ => false,
        };
        if !fits || written.contains(&key) || written.len() == GA4_PARAMS {
            return;
        }
        out.key(&key);
        out.raw(f.value);
        written.push(key);
    };
    if let (Some(view), Some(f)) = (view, e.get(NAME)) {
        param(out, Cow::Borrowed(view), f);
    }
    if let Some(props) = e.object(PROPERTIES) {
        each_member(props, |f| {
            let key = match &f.key {
                Cow::Borrowed(raw) => std::str::from_utf8(raw)
                    .ok()
                    .map(|k| ga4_name_cow(k, "p_", false)),
                Cow::Owned(raw) => std::str::from_utf8(raw)
                    .ok()
                    .map(|k| Cow::Owned(ga4_name(k, "p_", false))),
            };
            if let Some(key) = key {
                param(out, key, &f);
            }
        });
    }
    out.raw("}");
    if let Some(ms) = e.millis() {
        out.key("timestamp_micros");
        out.number(ms.saturating_mul(1000));
    }
    out.raw("}");
    String::from_utf8(shared.0).ok()
}
