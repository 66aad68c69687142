//! What a request adds to the delivery ledger, per server-side
//! destination: each event's label (its call type and its name as sent),
//! and for each event not sent, why. Never a value: a label's name is one
//! the policy's `events` map lists for that destination (a name only `*`
//! or nothing governs is `None`, since names can be PHI: "Viewed HIV
//! Testing").
//!
//! Every event of a request is counted once per destination: sent (in
//! [`crate::process::Delivery::labels_of`]) or not sent with one reason.

use crate::compile::NameTable;
use crate::event::{Event, NameField};
use crate::report::Reason;
use crate::sanitize::CallType;

/// An event's call type (`None`: refused before its type was known) and
/// its name as sent to the destination, when the destination's `events`
/// map lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub call: Option<CallType>,
    pub event: Option<String>,
}

/// Why an event was not sent to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotSent {
    /// `integrations` does not route it there.
    Routing,
    /// The destination's `calls` leave out its call type.
    CallType,
    /// The destination's `events` map drops its name.
    EventName,
    /// A purpose the destination needs is not granted.
    Consent,
    /// A bot's event, under `"bots": "drop"`.
    Bot,
    /// The destination's format has no mapping for it.
    Unmapped,
    /// The event was refused (for every destination).
    Refused,
}

impl NotSent {
    pub const ALL: [NotSent; 7] = [
        NotSent::Routing,
        NotSent::CallType,
        NotSent::EventName,
        NotSent::Consent,
        NotSent::Bot,
        NotSent::Unmapped,
        NotSent::Refused,
    ];

    /// The reason as a code: `routing`, `call_type`, …, `refused`.
    pub fn code(self) -> &'static str {
        match self {
            NotSent::Routing => "routing",
            NotSent::CallType => "call_type",
            NotSent::EventName => "event_name",
            NotSent::Consent => "consent",
            NotSent::Bot => "bot",
            NotSent::Unmapped => "unmapped",
            NotSent::Refused => "refused",
        }
    }

    /// Why a destination's gate kept an event from it. The gates of a
    /// server-side destination say nothing else; anything else counts
    /// as the event kept from it for its routing.
    pub(crate) fn of(reason: Reason) -> Self {
        match reason {
            Reason::CallType => NotSent::CallType,
            Reason::EventName => NotSent::EventName,
            Reason::Consent => NotSent::Consent,
            Reason::Bot => NotSent::Bot,
            _ => NotSent::Routing,
        }
    }
}

/// A label as a number: the call type (7: unknown) and the listed name's
/// place in the destination's map (0: none).
type Key = u64;

/// Labels past this many are also found through a map (a batch of many
/// listed names must not cost a scan per event).
const SCANNED: usize = 16;

/// One destination's labels and not-sent counts in a request.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) labels: Vec<Label>,
    keys: Vec<Key>,
    by_key: std::collections::HashMap<Key, u32>,
    pub(crate) not_sent: Vec<(u32, NotSent, u32)>,
}

/// The key of an event refused before its type was known.
pub(crate) const UNKNOWN: Key = 7 << 32;

/// The label key of an event for a destination whose `events` map is
/// `names`.
pub(crate) fn key(event: &Event<'_>, names: &NameTable) -> Key {
    let which = match event.call {
        CallType::Track => Some(NameField::Event),
        CallType::Page | CallType::Screen => Some(NameField::Name),
        _ => None,
    };
    let listed = which
        .and_then(|w| event.name(w))
        .and_then(|name| names.listed(name))
        .map_or(0, |at| at as u64 + 1);
    (event.call as u64) << 32 | listed
}

impl Ledger {
    /// The index of a label in [`Ledger::labels`], added when new.
    /// `renamed`: the destination applies its map's renames.
    pub(crate) fn label(&mut self, key: Key, names: &NameTable, renamed: bool) -> u32 {
        let found = if self.keys.len() <= SCANNED {
            self.keys.iter().position(|&k| k == key).map(|i| i as u32)
        } else {
            self.by_key.get(&key).copied()
        };
        if let Some(i) = found {
            return i;
        }
        let call = CallType::ALL.get((key >> 32) as usize).copied();
        let event = match key & 0xffff_ffff {
            0 => None,
            at => Some(names.listed_name(at as usize - 1, renamed).to_owned()),
        };
        let i = self.labels.len() as u32;
        self.labels.push(Label { call, event });
        self.keys.push(key);
        if self.keys.len() == SCANNED + 1 {
            self.by_key = self.keys.iter().zip(0..).map(|(&k, i)| (k, i)).collect();
        } else if self.keys.len() > SCANNED + 1 {
            self.by_key.insert(key, i);
        }
        i
    }

    /// Counts one event of label `label` not sent, for `why`.
    pub(crate) fn not_sent(&mut self, label: u32, why: NotSent) {
        match self
            .not_sent
            .iter_mut()
            .find(|(l, w, _)| *l == label && *w == why)
        {
            Some((_, _, n)) => *n += 1,
            None => self.not_sent.push((label, why, 1)),
        }
    }
}
