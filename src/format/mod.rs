//! Destination formats: a sanitized event (the JSON text the sanitizer
//! wrote) as the item a destination's own API takes, and items gathered
//! into request bodies within that API's limits.
//!
//! The mapping reads only the sanitized event, so it cannot bring back
//! anything the policy removed: every value it writes is one the event
//! already carries (or a fixed name, a time computed from a sanitized
//! timestamp, or a hash of a sanitized value).
//!
//! One file per native format (`amplitude`, `mixpanel`, `posthog`,
//! `ga4`); Segment and NDJSON send the sanitized event as it is. Shared:
//! `sanitized` (the event as the formats read it) and `out` (the JSON
//! they write).

use std::borrow::Cow;

mod amplitude;
mod ga4;
mod mixpanel;
mod out;
mod posthog;
mod sanitized;

pub use ga4::ga4_name;
pub use sanitized::Sanitized;

use out::Out;

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
            return Some(self.passthrough_item(event));
        }
        self.native_item(&Sanitized::parse(event)?)
    }

    /// The item of a format that sends the event itself. NDJSON sends an
    /// event a line: a line break the client wrote between an event's
    /// tokens (JSON allows it there, and only there: inside a string it
    /// must be escaped) becomes a space, so no value can end the line and
    /// start an event of its own.
    pub fn passthrough_item(self, event: &str) -> Item {
        let mut text = String::with_capacity(event.len());
        self.push_passthrough(event, &mut text);
        Item {
            shared: String::new(),
            text,
        }
    }

    /// Appends the text [`Format::passthrough_item`] makes of `event`.
    pub fn push_passthrough(self, event: &str, out: &mut String) {
        if self == Format::Ndjson && event.contains(['\n', '\r']) {
            out.extend(
                event
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
            );
        } else {
            out.push_str(event);
        }
    }

    /// As [`Format::item`], for an event already parsed (so several
    /// formats share one parse). For the native formats only.
    pub fn native_item(self, e: &Sanitized<'_>) -> Option<Item> {
        let mut text = String::with_capacity(e.text.len() + 64);
        let shared = self.native_item_into(e, &mut text)?;
        Some(Item { shared, text })
    }

    /// As [`Format::native_item`], the item's text appended to `text` (so
    /// a destination's items can stand in one buffer); returns the shared
    /// members. `None` leaves `text` as it was.
    pub fn native_item_into(self, e: &Sanitized<'_>, text: &mut String) -> Option<String> {
        let mut out = Out(std::mem::take(text));
        let start = out.0.len();
        let shared = match self {
            Format::Amplitude => amplitude::amplitude(e, &mut out).map(|()| String::new()),
            Format::Mixpanel => mixpanel::mixpanel(e, &mut out).map(|()| String::new()),
            Format::Posthog => posthog::posthog(e, &mut out).map(|()| String::new()),
            Format::Ga4 => ga4::ga4(e, &mut out),
            Format::Segment | Format::Ndjson => None,
        };
        *text = out.0;
        if shared.is_none() {
            text.truncate(start);
        }
        shared
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
        self.fits_parts(&item.shared, item.text.len(), limit)
    }

    /// As [`Format::fits`], for an item given as its shared members and
    /// the length of its text.
    pub fn fits_parts(self, shared: &str, text_len: usize, limit: usize) -> bool {
        let (close, _) = self.close_and_separator();
        self.open_len(shared) + text_len + close.len() <= limit
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
        self.bodies_of(
            items.len(),
            |i| {
                items
                    .get(i)
                    .map_or(("", ""), |it| (it.shared.as_str(), it.text.as_str()))
            },
            max_bytes,
        )
    }

    /// As [`Format::bodies_within`], for `count` items given by `item`
    /// (index to shared members and text), wherever they are kept.
    pub fn bodies_of<'t>(
        self,
        count: usize,
        item: impl Fn(usize) -> (&'t str, &'t str),
        max_bytes: usize,
    ) -> (Vec<Body>, Vec<usize>) {
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
        for i in 0..count {
            let shared = item(i).0;
            let h = hash(shared);
            match groups
                .iter_mut()
                .find(|(gh, s, _)| *gh == h && *s == shared)
            {
                Some((_, _, list)) => list.push(i),
                None => groups.push((h, shared, vec![i])),
            }
        }
        let mut bodies = Vec::new();
        let mut too_large = Vec::new();
        for (_, shared, list) in groups {
            let open = self.open(shared);
            let mut body = Body::default();
            // Bytes and items still to place: each body is sized once, up
            // front, rather than grown by copying as items are added.
            let mut left: usize = list
                .iter()
                .map(|&i| item(i).1.len() + separator.len())
                .sum();
            let mut count_left = list.len();
            for i in list {
                let item = item(i).1;
                if open.len() + item.len() + close.len() > limits.bytes {
                    too_large.push(i);
                    left = left.saturating_sub(item.len() + separator.len());
                    count_left = count_left.saturating_sub(1);
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
                if body.items.is_empty() {
                    body.text
                        .reserve(limits.bytes.min(open.len() + left + close.len()));
                    body.items.reserve(limits.events.min(count_left));
                    body.text.push_str(&open);
                } else {
                    body.text.push_str(separator);
                }
                body.text.push_str(item);
                body.items.push(i);
                left = left.saturating_sub(item.len() + separator.len());
                count_left = count_left.saturating_sub(1);
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
