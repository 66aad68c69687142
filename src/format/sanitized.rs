//! A sanitized event as the native formats read it: its top-level members
//! found once, their values copied as the sanitizer wrote them.

use sha2::{Digest, Sha256};

use std::borrow::Cow;
use std::cell::OnceCell;

use crate::event::MAX_DEPTH;
use crate::json::{Kind, Reader};
use crate::structural::epoch_millis;

/// A member of a sanitized object: its key decoded, and the JSON text of
/// its key and value as the sanitizer wrote them.
pub(super) struct Field<'a> {
    pub(super) key: Cow<'a, [u8]>,
    pub(super) raw_key: &'a str,
    pub(super) value: &'a str,
    pub(super) kind: Kind,
}

impl<'a> Field<'a> {
    /// The member's string, decoded, if it is a non-empty string.
    pub(super) fn text(&self) -> Option<Cow<'a, str>> {
        (self.kind == Kind::String && self.value.len() > 2).then(|| decode(self.value))?
    }
}

/// The content of a JSON string's text (quotes included), unescaped.
pub(super) fn decode(raw: &str) -> Option<Cow<'_, str>> {
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
pub(super) fn each_member<'a>(text: &'a str, mut each: impl FnMut(Field<'a>)) -> Option<()> {
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
    pub(super) text: &'a str,
    // Worked out once for all the formats of the event.
    millis: OnceCell<Option<i64>>,
    traits: OnceCell<Option<&'a str>>,
    properties: OnceCell<Vec<Field<'a>>>,
}

/// The top-level keys the formats read, found once per event.
pub(super) const KNOWN: [&str; 13] = [
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
pub(super) const TYPE: usize = 0;
pub(super) const USER_ID: usize = 1;
pub(super) const ANONYMOUS_ID: usize = 2;
pub(super) const MESSAGE_ID: usize = 3;
pub(super) const EVENT: usize = 4;
pub(super) const NAME: usize = 5;
pub(super) const PROPERTIES: usize = 6;
pub(super) const TRAITS: usize = 7;
pub(super) const CONTEXT: usize = 8;
pub(super) const TIMESTAMP: usize = 9;
pub(super) const ORIGINAL_TIMESTAMP: usize = 10;
pub(super) const SENT_AT: usize = 11;
pub(super) const RECEIVED_AT: usize = 12;

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

    pub(super) fn empty(text: &'a str) -> Self {
        Sanitized {
            members: Vec::with_capacity(16),
            known: [0; KNOWN.len()],
            text,
            millis: OnceCell::new(),
            traits: OnceCell::new(),
            properties: OnceCell::new(),
        }
    }

    pub(super) fn push(&mut self, f: Field<'a>) {
        if let Some(k) = KNOWN.iter().position(|k| *f.key == *k.as_bytes()) {
            if self.known[k] == 0 {
                self.known[k] = u16::try_from(self.members.len() + 1).unwrap_or(0);
            }
        }
        self.members.push(f);
    }

    /// The first member of a known key (one of [`KNOWN`]).
    pub(super) fn get(&self, key: usize) -> Option<&Field<'a>> {
        let at = usize::from(*self.known.get(key)?).checked_sub(1)?;
        self.members.get(at)
    }

    /// The decoded string of `key`, if it is a non-empty string.
    pub(super) fn string(&self, key: usize) -> Option<Cow<'a, str>> {
        self.get(key)?.text()
    }

    /// The JSON text of `key` when it is a non-empty string (to copy).
    pub(super) fn raw_string(&self, key: usize) -> Option<&'a str> {
        let f = self.get(key)?;
        (f.kind == Kind::String && f.value.len() > 2).then_some(f.value)
    }

    /// The JSON text of `key` when it is an object.
    pub(super) fn object(&self, key: usize) -> Option<&'a str> {
        let f = self.get(key)?;
        (f.kind == Kind::Object).then_some(f.value)
    }

    pub(super) fn call(&self) -> &[u8] {
        match self.get(TYPE) {
            Some(f) if f.kind == Kind::String => f.value.as_bytes(),
            _ => b"",
        }
    }

    pub(super) fn is(&self, call: &str) -> bool {
        let raw = self.call();
        raw.len() == call.len() + 2 && raw[1..raw.len() - 1] == *call.as_bytes()
    }

    /// The event's time: the first of its timestamps that is RFC 3339.
    pub(super) fn millis(&self) -> Option<i64> {
        *self.millis.get_or_init(|| {
            [TIMESTAMP, ORIGINAL_TIMESTAMP, SENT_AT, RECEIVED_AT]
                .into_iter()
                .find_map(|k| self.string(k).and_then(|s| epoch_millis(s.as_bytes())))
        })
    }

    /// The members of `properties` when it is an object (read once for
    /// all the formats that copy them one by one); `None` otherwise.
    pub(super) fn properties(&self) -> Option<&[Field<'a>]> {
        let props = self.object(PROPERTIES)?;
        let fields = self.properties.get_or_init(|| {
            let mut fields = Vec::new();
            let _ = each_member(props, |f| fields.push(f));
            fields
        });
        Some(fields)
    }

    /// The traits: `traits` (identify) or else `context.traits`.
    pub(super) fn traits(&self) -> Option<&'a str> {
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
    pub(super) fn view_name(&self, kind: &str) -> String {
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
    pub(super) fn dedup_id(&self) -> String {
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
