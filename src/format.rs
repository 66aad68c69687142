//! Destination formats: a sanitized event (the JSON text the sanitizer
//! wrote) as the item a destination's own API takes, and items gathered
//! into request bodies within that API's limits.
//!
//! The mapping reads only the sanitized event, so it cannot bring back
//! anything the policy removed: every value it writes is one the event
//! already carries (or a fixed name, a time computed from a sanitized
//! timestamp, or a hash of a sanitized value).

use sha2::{Digest, Sha256};

use crate::json::write_string;
use crate::structural::epoch_millis;
use crate::tree::{self, Value};

/// What a destination's endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"batch": [event, ...]}` (Segment's batch API).
    Segment,
    /// Amplitude HTTP V2 (`/2/httpapi`): `{"api_key", "events": [...]}`.
    Amplitude,
    /// Mixpanel `/import`: `[{"event", "properties"}, ...]`.
    Mixpanel,
    /// PostHog `/batch/`: `{"api_key", "batch": [...]}`.
    Posthog,
    /// One sanitized event a line.
    Ndjson,
}

/// A format's limits per request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub events: usize,
    pub bytes: usize,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Segment,
        Format::Amplitude,
        Format::Mixpanel,
        Format::Posthog,
        Format::Ndjson,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Segment => "segment",
            Format::Amplitude => "amplitude",
            Format::Mixpanel => "mixpanel",
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
            // PostHog /batch/: kept well under its 20 MB request limit.
            Format::Posthog => Limits {
                events: 2000,
                bytes: 1_000_000,
            },
        }
    }

    /// The item this format sends for a sanitized event, or `None` when it
    /// sends nothing for it (a call type it has no mapping for, no user or
    /// device ID where the API needs one, or text that is not an event).
    pub fn item(self, event: &str) -> Option<String> {
        if matches!(self, Format::Segment | Format::Ndjson) {
            return Some(event.to_owned());
        }
        let Ok(Value::Object(members)) = tree::parse(event) else {
            return None;
        };
        let e = Event {
            members: &members,
            text: event,
        };
        let mut out = Out(Vec::with_capacity(event.len() + 64));
        match self {
            Format::Amplitude => amplitude(&e, &mut out)?,
            Format::Mixpanel => mixpanel(&e, &mut out)?,
            Format::Posthog => posthog(&e, &mut out)?,
            Format::Segment | Format::Ndjson => return None,
        }
        String::from_utf8(out.0).ok()
    }

    /// `items` (from [`Format::item`]) as request bodies within the limits,
    /// in order; `credential` goes where the API takes it in the body
    /// (`api_key` of Amplitude and PostHog). Items too large for any body
    /// are left out and their indexes returned.
    pub fn bodies(self, items: &[String], credential: Option<&str>) -> (Vec<String>, Vec<usize>) {
        let limits = self.limits();
        let (open, close, separator): (String, &str, &str) = match self {
            Format::Segment => ("{\"batch\":[".into(), "]}", ","),
            Format::Ndjson => (String::new(), "\n", "\n"),
            Format::Mixpanel => ("[".into(), "]", ","),
            Format::Amplitude | Format::Posthog => {
                let mut head = Out(b"{\"api_key\":".to_vec());
                head.string(credential.unwrap_or(""));
                head.raw(if self == Format::Amplitude {
                    ",\"events\":["
                } else {
                    ",\"batch\":["
                });
                (String::from_utf8(head.0).unwrap_or_default(), "]}", ",")
            }
        };
        let mut bodies = Vec::new();
        let mut too_large = Vec::new();
        let mut body = String::new();
        let mut count = 0;
        for (i, item) in items.iter().enumerate() {
            let fixed = open.len() + close.len();
            if fixed + item.len() > limits.bytes {
                too_large.push(i);
                continue;
            }
            if count > 0
                && (count == limits.events
                    || body.len() + separator.len() + item.len() + close.len() > limits.bytes)
            {
                body.push_str(close);
                bodies.push(std::mem::take(&mut body));
                count = 0;
            }
            if count == 0 {
                body.push_str(&open);
            } else {
                body.push_str(separator);
            }
            body.push_str(item);
            count += 1;
        }
        if count > 0 {
            body.push_str(close);
            bodies.push(body);
        }
        (bodies, too_large)
    }
}

/// A sanitized event's members.
struct Event<'a> {
    members: &'a [(String, Value)],
    text: &'a str,
}

impl Event<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn string(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    fn object(&self, key: &str) -> Option<&[(String, Value)]> {
        match self.get(key) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    fn call(&self) -> &str {
        self.string("type").unwrap_or("")
    }

    /// The event's time: the first of its timestamps that is RFC 3339.
    fn millis(&self) -> Option<i64> {
        ["timestamp", "originalTimestamp", "sentAt", "receivedAt"]
            .iter()
            .find_map(|k| self.string(k).and_then(|s| epoch_millis(s.as_bytes())))
    }

    /// The traits: `traits` (identify) or else `context.traits`.
    fn traits(&self) -> Option<&[(String, Value)]> {
        self.object("traits").or_else(|| {
            let context = self.object("context")?;
            match context.iter().find(|(k, _)| k == "traits") {
                Some((_, Value::Object(m))) => Some(m.as_slice()),
                _ => None,
            }
        })
    }

    /// The name a page or screen view is sent under (Segment's own
    /// convention): "Viewed NAME Page", or "Loaded a Page" without a name.
    fn view_name(&self, kind: &str) -> String {
        match self.string("name") {
            Some(name) => format!("Viewed {name} {kind}"),
            None => format!("Loaded a {kind}"),
        }
    }

    /// A stable dedup id for APIs that take at most 36 characters of
    /// `[A-Za-z0-9-]`: `messageId` when it is one, or else the first 36
    /// hex digits of the SHA-256 of `messageId` (or of the whole sanitized
    /// event, which is the same on every retry).
    fn dedup_id(&self) -> String {
        if let Some(id) = self.string("messageId") {
            if id.len() <= 36 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return id.to_owned();
            }
        }
        let source = self.string("messageId").unwrap_or(self.text);
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
        if !matches!(self.0.last(), Some(b'{' | b'[')) {
            self.0.push(b',');
        }
        self.string(key);
        self.0.push(b':');
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.raw("null"),
            Value::Bool(b) => self.raw(if *b { "true" } else { "false" }),
            Value::Number(n) => self.raw(n),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.0.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.0.push(b',');
                    }
                    self.value(item);
                }
                self.0.push(b']');
            }
            Value::Object(members) => self.object(members),
        }
    }

    fn object(&mut self, members: &[(String, Value)]) {
        self.0.push(b'{');
        self.members(members, &[]);
        self.0.push(b'}');
    }

    /// Members, leaving out `reserved` keys (the format's own).
    fn members(&mut self, members: &[(String, Value)], reserved: &[&str]) {
        for (k, v) in members {
            if !reserved.contains(&k.as_str()) {
                self.key(k);
                self.value(v);
            }
        }
    }

    fn number(&mut self, n: i64) {
        self.raw(&n.to_string());
    }
}

/// Amplitude: track as its event, page and screen as "Viewed NAME Page",
/// identify as `$identify` setting the traits; group and alias are not
/// sent (Amplitude takes them on other APIs). Needs a user or device ID.
fn amplitude(e: &Event, out: &mut Out) -> Option<()> {
    let event_type = match e.call() {
        "track" => e.string("event")?.to_owned(),
        "page" => e.view_name("Page"),
        "screen" => e.view_name("Screen"),
        "identify" => "$identify".to_owned(),
        _ => return None,
    };
    let (user, device) = (e.string("userId"), e.string("anonymousId"));
    if user.is_none() && device.is_none() {
        return None;
    }
    out.raw("{");
    out.key("event_type");
    out.string(&event_type);
    for (key, value) in [("user_id", user), ("device_id", device)] {
        if let Some(value) = value {
            out.key(key);
            out.string(value);
        }
    }
    if let Some(ms) = e.millis() {
        out.key("time");
        out.number(ms);
    }
    if let Some(id) = e.string("messageId") {
        out.key("insert_id");
        out.string(id);
    }
    if e.call() != "identify" {
        if let Some(props) = e.object("properties") {
            out.key("event_properties");
            out.object(props);
        }
    }
    if let Some(traits) = e.traits() {
        out.key("user_properties");
        out.raw("{");
        out.key("$set");
        out.object(traits);
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
fn mixpanel(e: &Event, out: &mut Out) -> Option<()> {
    let event = match e.call() {
        "track" => e.string("event")?.to_owned(),
        "page" => e.view_name("Page"),
        "screen" => e.view_name("Screen"),
        _ => return None,
    };
    let time = e.millis()?;
    let (user, device) = (e.string("userId"), e.string("anonymousId"));
    out.raw("{");
    out.key("event");
    out.string(&event);
    out.key("properties");
    out.raw("{");
    out.key("time");
    out.number(time);
    out.key("distinct_id");
    out.string(user.or(device).unwrap_or(""));
    out.key("$insert_id");
    out.string(&e.dedup_id());
    for (key, value) in [("$user_id", user), ("$device_id", device)] {
        if let Some(value) = value {
            out.key(key);
            out.string(value);
        }
    }
    if let Some(props) = e.object("properties") {
        out.members(props, &MIXPANEL_RESERVED);
    }
    out.raw("}}");
    Some(())
}

/// PostHog: track as its event, page as `$pageview`, screen as `$screen`
/// (with `$screen_name`), identify as `$identify` setting the traits;
/// group and alias are not sent. Needs a user or anonymous ID.
fn posthog(e: &Event, out: &mut Out) -> Option<()> {
    let event = match e.call() {
        "track" => e.string("event")?,
        "page" => "$pageview",
        "screen" => "$screen",
        "identify" => "$identify",
        _ => return None,
    };
    let distinct = e.string("userId").or(e.string("anonymousId"))?;
    out.raw("{");
    out.key("event");
    out.string(event);
    out.key("distinct_id");
    out.string(distinct);
    out.key("properties");
    out.raw("{");
    if let Some(props) = e.object("properties").filter(|_| e.call() != "identify") {
        out.members(props, &["$set", "$screen_name"]);
    }
    if e.call() == "screen" {
        if let Some(name) = e.string("name") {
            out.key("$screen_name");
            out.string(name);
        }
    }
    if let Some(traits) = e.traits().filter(|_| e.call() == "identify") {
        out.key("$set");
        out.object(traits);
    }
    out.raw("}");
    if let Some(ts) = e
        .string("timestamp")
        .filter(|t| epoch_millis(t.as_bytes()).is_some())
    {
        out.key("timestamp");
        out.string(ts);
    }
    out.raw("}");
    Some(())
}
