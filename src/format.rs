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
    /// GA4 Measurement Protocol (`/mp/collect`): `{"client_id", "user_id",
    /// "events": [{"name", "params"}]}`, one user per request.
    Ga4,
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

    /// The opening of a body, up to its first item.
    fn open(self, shared: &str, api_key: Option<&str>) -> String {
        let mut head = Out(Vec::new());
        match self {
            Format::Segment => head.raw("{\"batch\":["),
            Format::Ndjson => {}
            Format::Mixpanel => head.raw("["),
            Format::Amplitude | Format::Posthog => {
                head.raw("{\"api_key\":");
                head.string(api_key.unwrap_or(""));
                head.raw(if self == Format::Amplitude {
                    ",\"events\":["
                } else {
                    ",\"batch\":["
                });
            }
            Format::Ga4 => {
                head.raw("{");
                head.raw(shared);
                head.raw(",\"events\":[");
            }
        }
        String::from_utf8(head.0).unwrap_or_default()
    }

    /// `items` (from [`Format::item`]) as request bodies within the limits,
    /// in order (GA4: grouped by user, each user's in order); `api_key`
    /// goes where the API takes it in the body (`api_key` of Amplitude and
    /// PostHog). Each body comes with the indexes of its items. Items too
    /// large for any body are left out and their indexes returned.
    pub fn bodies(self, items: &[Item], api_key: Option<&str>) -> (Vec<Body>, Vec<usize>) {
        let limits = self.limits();
        let (close, separator) = match self {
            Format::Ndjson => ("\n", "\n"),
            Format::Mixpanel => ("]", ","),
            _ => ("]}", ","),
        };
        // Groups of items sharing a request, in order of first appearance.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match groups.iter_mut().find(|(s, _)| *s == item.shared) {
                Some((_, list)) => list.push(i),
                None => groups.push((&item.shared, vec![i])),
            }
        }
        let mut bodies = Vec::new();
        let mut too_large = Vec::new();
        for (shared, list) in groups {
            let open = self.open(shared, api_key);
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
                    &open
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

/// A sanitized event, parsed once for every native format.
pub struct Sanitized<'a> {
    members: Vec<(String, Value)>,
    text: &'a str,
}

impl<'a> Sanitized<'a> {
    /// Parses the sanitizer's output; `None` for text that is not an
    /// event object.
    pub fn parse(text: &'a str) -> Option<Self> {
        match tree::parse(text) {
            Ok(Value::Object(members)) => Some(Sanitized { members, text }),
            _ => None,
        }
    }

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
        if !matches!(self.0.last(), None | Some(b'{' | b'[')) {
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
fn amplitude(e: &Sanitized, out: &mut Out) -> Option<()> {
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
fn mixpanel(e: &Sanitized, out: &mut Out) -> Option<()> {
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
fn posthog(e: &Sanitized, out: &mut Out) -> Option<()> {
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
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let lower = name.to_ascii_lowercase();
    let reserved = GA4_RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
        || (event && GA4_RESERVED_NAMES.contains(&lower.as_str()));
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
fn ga4(e: &Sanitized, out: &mut Out) -> Option<String> {
    let (name, view) = match e.call() {
        "track" => (ga4_name(e.string("event")?, "e_", true), None),
        "page" => ("page_viewed".to_owned(), Some("page_name")),
        "screen" => ("screen_viewed".to_owned(), Some("screen_name")),
        _ => return None,
    };
    let user = e.string("userId");
    let client = e.string("anonymousId").or(user)?;
    let mut shared = Out(Vec::new());
    shared.key("client_id");
    shared.string(client);
    if let Some(user) = user {
        shared.key("user_id");
        shared.string(user);
    }
    out.raw("{");
    out.key("name");
    out.string(&name);
    out.key("params");
    out.raw("{");
    let mut written: Vec<String> = Vec::new();
    let view_name = view.and_then(|key| Some((key.to_owned(), e.get("name")?)));
    let properties = e.object("properties").unwrap_or(&[]);
    let params = view_name
        .iter()
        .map(|(k, v)| (ga4_name(k, "p_", false), *v))
        .chain(
            properties
                .iter()
                .map(|(k, v)| (ga4_name(k, "p_", false), v)),
        );
    for (key, value) in params {
        let fits = match value {
            // Characters, not bytes: UTF-8 continuation bytes do not count.
            Value::String(s) => s.bytes().filter(|b| b & 0xc0 != 0x80).count() <= GA4_VALUE_CHARS,
            Value::Number(_) => true,
            _ => false,
        };
        if !fits || written.contains(&key) || written.len() == GA4_PARAMS {
            continue;
        }
        out.key(&key);
        out.value(value);
        written.push(key);
    }
    out.raw("}");
    if let Some(ms) = e.millis() {
        out.key("timestamp_micros");
        out.number(ms.saturating_mul(1000));
    }
    out.raw("}");
    String::from_utf8(shared.0).ok()
}
