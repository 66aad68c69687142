//! One tracking request in one call: the body read once, each event read
//! once, written once per group of destinations that always receive the
//! same (equal lists and key scope), each masked value computed once per
//! key scope, and every destination's request bodies made in its own
//! format within its API's limits.
//!
//! The pipeline: [`read_events`] validates the body in one pass; an event
//! it leaves as it is stays where it stands in the body (no copy), its
//! members as that pass found them; the writer walks what the lists name
//! and notes where it put each member, so the native formats take the
//! written members from there (an event's `properties` read once for all
//! of them) rather than parsing the written event again; each
//! destination's items are then joined into bodies sized once.

use std::cell::RefCell;

use crate::bots::{Agent, Mode as BotMode};
use crate::consent::Signals;
use crate::error::{Error, EventError};
use crate::event::Event;
use crate::format::{Format, Sanitized};
use crate::inventory::Inventory;
use crate::ledger::{self, Label, Ledger, NotSent};
use crate::mask::Memo;
use crate::report::{Reason, Tally};
use crate::request::{read_events, Call, RequestError, MAX_OUTPUT_BYTES};
use crate::sanitize::{MemberKind, MemberOut, Sanitizer};

/// A request processed: what every destination is sent.
#[derive(Debug)]
pub struct Processed {
    /// The write key the body carried (`writeKey`), if any.
    pub write_key: Option<String>,
    /// Events sanitized for every destination (sent to those that take
    /// them).
    pub accepted: usize,
    /// Events refused, by index in the request, with why; nothing of
    /// them goes anywhere (an event too large for one destination's
    /// bodies included).
    pub rejected: Vec<(usize, Error)>,
    /// One per server-side destination, in policy order.
    pub deliveries: Vec<Delivery>,
    /// Accepted events that are a bot's (when the policy's `bots` looks
    /// for them): sent nowhere under `drop`, flagged under `flag`.
    pub bots: usize,
    /// Paths in the accepted events that no rule of the policy names,
    /// each with the number of events it occurred in, in the order first
    /// seen; at most [`crate::inventory::MAX_PATHS`], then
    /// [`crate::inventory::MORE_PATHS`] for the events that held more.
    pub inventory: Vec<(String, u32)>,
}

/// What one destination is sent of a request.
#[derive(Debug, Default)]
pub struct Delivery {
    pub destination: String,
    /// Request bodies in the destination's format, without its body
    /// credential (added when sending: [`crate::credential::Target`]).
    pub bodies: Vec<String>,
    /// For each body, the indexes in the request of its events, in order.
    pub events: Vec<Vec<usize>>,
    /// Events sent, and the paths dropped, masked and transformed in them.
    pub sent: u32,
    pub tally: Tally,
    /// Events it would receive that its format has no mapping for (a call
    /// type the API does not take, no user or device ID).
    pub unmapped: u32,
    /// Accepted events not sent to it because it needs a purpose the
    /// visitor has not granted.
    pub consent: u32,
    /// The distinct labels of the request's events for it (call type and
    /// name as sent, when its `events` map lists the name).
    pub labels: Vec<Label>,
    /// Parallel to `events`: each sent event's label (in `labels`).
    pub labels_of: Vec<Vec<u32>>,
    /// Events not sent to it, by label and reason: with the events sent,
    /// every event of the request exactly once.
    pub not_sent: Vec<(u32, NotSent, u32)>,
}

/// One event as written for a class of destinations: its text, counts,
/// and where each top-level member stands in it (for other classes to
/// copy the members they write alike).
struct Written {
    text: String,
    tally: Tally,
    members: Vec<MemberOut>,
}

/// Buffers of an earlier event's [`Written`], for the next to write in.
type Spare = (Vec<u8>, Vec<MemberOut>);

/// One destination's items so far, with the request index of each. The
/// items' texts (and GA4's shared members) stand one after another in
/// `texts`, written there by the formats: no allocation per item.
#[derive(Default)]
struct Pending {
    texts: String,
    items: Vec<Span>,
    indexes: Vec<usize>,
    tallies: Vec<Tally>,
    unmapped: u32,
    /// Accepted events consent kept from it.
    consent: u32,
    ledger: Ledger,
    /// Each item's label, parallel to `items`.
    labels: Vec<u32>,
}

/// Where one item stands in its [`Pending::texts`]: its text from
/// `start` to `shared`, then its shared members up to `end`.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    shared: usize,
    end: usize,
}

impl Pending {
    /// An item's shared members and text.
    fn item(&self, i: usize) -> (&str, &str) {
        let Some(s) = self.items.get(i) else {
            return ("", "");
        };
        (
            self.texts.get(s.shared..s.end).unwrap_or_default(),
            self.texts.get(s.start..s.shared).unwrap_or_default(),
        )
    }

    /// Appends one event's item for this destination's format to `texts`
    /// (`None`: the format has no mapping for it; nothing appended).
    fn write_item(
        &mut self,
        format: Format,
        text: &str,
        parsed: Option<&Sanitized<'_>>,
    ) -> Option<Span> {
        let start = self.texts.len();
        if format.is_passthrough() {
            format.push_passthrough(text, &mut self.texts);
        } else {
            let shared = format.native_item_into(parsed?, &mut self.texts)?;
            let at = self.texts.len();
            self.texts.push_str(&shared);
            return Some(Span {
                start,
                shared: at,
                end: self.texts.len(),
            });
        }
        let end = self.texts.len();
        Some(Span {
            start,
            shared: end,
            end,
        })
    }
}

impl Sanitizer {
    /// Processes a tracking request body (`call` from the path): reads it,
    /// sanitizes each event for every server-side destination, and makes
    /// each destination's request bodies in its format. An event that
    /// cannot be sanitized for every destination goes to none of them.
    ///
    /// # Errors
    /// [`RequestError`] when the body as a whole is unusable (not UTF-8,
    /// not JSON, not a request); an event unusable on its own is refused
    /// in [`Processed::rejected`] instead.
    pub fn process_request(&self, body: &[u8], call: Call) -> Result<Processed, RequestError> {
        self.process_request_within(body, call, usize::MAX)
    }

    /// As [`Sanitizer::process_request`], with no request body over
    /// `max_body_bytes` (the Worker's queue messages hold one body each).
    /// An event that fits no body of some destination (over this or its
    /// API's limit) is refused for all, with
    /// [`EventError::TooLargeFor`].
    ///
    /// # Errors
    /// As [`Sanitizer::process_request`].
    pub fn process_request_within(
        &self,
        body: &[u8],
        call: Call,
        max_body_bytes: usize,
    ) -> Result<Processed, RequestError> {
        self.process_request_with(body, call, max_body_bytes, &Signals::default())
    }

    /// As [`Sanitizer::process_request_within`], for a request with these
    /// signals (Global Privacy Control, the visitor's region): a
    /// destination that needs a purpose the visitor has not granted is
    /// sent nothing of the event ([`Delivery::consent`] counts them).
    ///
    /// # Errors
    /// As [`Sanitizer::process_request`].
    pub fn process_request_with(
        &self,
        body: &[u8],
        call: Call,
        max_body_bytes: usize,
        signals: &Signals,
    ) -> Result<Processed, RequestError> {
        self.process_request_from(body, call, max_body_bytes, signals, &Agent::default())
    }

    /// As [`Sanitizer::process_request_with`], for a request from this
    /// agent (its user agent, Cloudflare's bot score): under the policy's
    /// `bots`, a bot's event (by the agent, or by its own
    /// `context.userAgent`) is accepted and sent nowhere (`drop`), or
    /// carries `context.bot: true` (`flag`); [`Processed::bots`] counts
    /// them.
    ///
    /// # Errors
    /// As [`Sanitizer::process_request`].
    pub fn process_request_from(
        &self,
        body: &[u8],
        call: Call,
        max_body_bytes: usize,
        signals: &Signals,
        agent: &Agent,
    ) -> Result<Processed, RequestError> {
        let request_bot = self.request_bot(agent);
        let mut last_agent = None;
        let mut bots = 0;
        let text = crate::request::utf8(body)?;
        let request = read_events(text, call)?;
        let dests = &self.destinations;
        let memo = RefCell::new(Memo::default());
        // Each destination's items take about what the events took in the
        // body: room for that once, rather than grown by copying.
        let mut pending: Vec<Pending> = dests
            .iter()
            .map(|_| Pending {
                texts: String::with_capacity(text.len()),
                ..Pending::default()
            })
            .collect();
        let mut rejected = Vec::new();
        let mut accepted = 0;
        // Per destination class, this event's output (None: not written);
        // per destination, whether it receives the event.
        let mut written: Vec<Option<Written>> = dests.iter().map(|_| None).collect();
        let mut receives = vec![false; dests.len()];
        // Per destination, why its gates kept this event from it.
        let mut why: Vec<Option<Reason>> = vec![None; dests.len()];
        // Per destination, this event's label in its ledger.
        let mut labels = vec![0u32; dests.len()];
        let mut inventory = Inventory::default();
        let mut spare: Vec<Spare> = Vec::new();
        let limits: Vec<usize> = dests
            .iter()
            .map(|d| d.format.body_limit(max_body_bytes))
            .collect();
        let mut items: Vec<Mapped> = Vec::with_capacity(dests.len());
        let mut output = 0usize;
        for (index, event) in request.events.iter().enumerate() {
            // read_events validated the JSON of every event it returns.
            let read = event.as_ref().map_err(Clone::clone);
            let original = match read.and_then(|read| read.event(text)) {
                Ok(event) => event,
                Err(e) => {
                    self.unlabelled(&mut pending, &mut labels);
                    self.not_sent(&mut pending, &labels, &why, Some(NotSent::Refused));
                    rejected.push((index, Error::Event(e)));
                    continue;
                }
            };
            self.label(&original, &mut pending, &mut labels);
            let (bot, flagged) = match self.judged(&original, request_bot, &mut last_agent) {
                Ok(judged) => judged,
                Err(e) => {
                    self.not_sent(&mut pending, &labels, &why, Some(NotSent::Refused));
                    rejected.push((index, e));
                    continue;
                }
            };
            // Decided before routing and consent: a dropped bot's event
            // is accepted (its sender has nothing to send again) and
            // written for no destination.
            if bot.is_some() && self.bots == BotMode::Drop {
                accepted += 1;
                bots += 1;
                self.not_sent(&mut pending, &labels, &why, Some(NotSent::Bot));
                inventory.walk_event(&original, &self.named);
                continue;
            }
            let flagged_event;
            let event = match &flagged {
                Some(text) => match Event::read_validated(text.as_bytes()) {
                    Ok(e) => {
                        flagged_event = e;
                        &flagged_event
                    }
                    Err(e) => {
                        self.not_sent(&mut pending, &labels, &why, Some(NotSent::Refused));
                        rejected.push((index, Error::Event(e)));
                        continue;
                    }
                },
                None => &original,
            };
            // Last event's outputs: their buffers are written again.
            for w in written.iter_mut().filter_map(Option::take) {
                spare.push((w.text.into_bytes(), w.members));
            }
            let mut gates = Gates {
                signals,
                receives: &mut receives,
                why: &mut why,
            };
            let mapped = self
                .write_all(event, &memo, &mut written, &mut gates, &mut spare)
                .and_then(|()| {
                    self.map_formats(&written, &receives, &limits, &mut pending, &mut items)
                });
            match mapped {
                Ok(()) => {
                    accepted += 1;
                    bots += usize::from(bot.is_some());
                    for (p, why) in pending.iter_mut().zip(&why) {
                        p.consent += u32::from(*why == Some(Reason::Consent));
                    }
                    self.not_sent(&mut pending, &labels, &why, None);
                    inventory.walk_event(&original, &self.named);
                    let added = add_items(index, &mut items, &mut pending, &labels);
                    output = output.saturating_add(added);
                    // Checked as it grows: memory stays bounded, whatever the request.
                    if output > MAX_OUTPUT_BYTES {
                        return Err(RequestError::OutputTooLarge);
                    }
                }
                Err(e) => {
                    self.not_sent(&mut pending, &labels, &why, Some(NotSent::Refused));
                    rejected.push((index, e));
                }
            }
        }
        let deliveries = dests
            .iter()
            .zip(pending)
            .filter(|(d, _)| d.is_server_side())
            .map(|(d, p)| deliver(d.format, &d.name, p, max_body_bytes))
            .collect();
        Ok(Processed {
            write_key: request.write_key,
            accepted,
            rejected,
            deliveries,
            bots,
            inventory: inventory.into_paths(),
        })
    }

    /// Each server-side destination's label of an event (in `labels`).
    fn label(&self, event: &Event<'_>, pending: &mut [Pending], labels: &mut [u32]) {
        for ((d, p), label) in self.destinations.iter().zip(pending).zip(labels) {
            if d.is_server_side() {
                let key = ledger::key(event, &d.names);
                *label = p.ledger.label(key, &d.names, d.applies_names());
            }
        }
    }

    /// Counts one event not sent: to every server-side destination for
    /// `all`; else to each whose gates kept it (`why`). Client-side
    /// destinations keep no ledger (the edge sends them nothing).
    fn not_sent(
        &self,
        pending: &mut [Pending],
        labels: &[u32],
        why: &[Option<Reason>],
        all: Option<NotSent>,
    ) {
        let each = pending.iter_mut().zip(labels).zip(why);
        for (d, ((p, &label), why)) in self.destinations.iter().zip(each) {
            let reason = match (all, why) {
                _ if !d.is_server_side() => continue,
                (Some(all), _) => all,
                (None, Some(why)) => NotSent::of(*why),
                (None, None) => continue,
            };
            p.ledger.not_sent(label, reason);
        }
    }

    /// Each server-side destination's label of an event refused before
    /// its type was known.
    fn unlabelled(&self, pending: &mut [Pending], labels: &mut [u32]) {
        for ((d, p), label) in self.destinations.iter().zip(pending).zip(labels) {
            if d.is_server_side() {
                *label = p.ledger.label(ledger::UNKNOWN, &d.names, false);
            }
        }
    }

    /// Writes one event for each class of destination that receives it:
    /// `written[class]`. Any error refuses the event for all.
    fn write_all(
        &self,
        event: &Event<'_>,
        memo: &RefCell<Memo>,
        written: &mut [Option<Written>],
        gates: &mut Gates<'_>,
        spare: &mut Vec<Spare>,
    ) -> Result<(), Error> {
        let verdicts = self.verdicts(event, gates.signals);
        let each = gates.receives.iter_mut().zip(gates.why.iter_mut());
        for (dest, (receives, why)) in self.destinations.iter().zip(each) {
            let gate = self.gate(event, dest, &verdicts);
            *why = gate.err();
            *receives = gate.is_ok();
            if !*receives || written[dest.class].is_some() {
                continue;
            }
            // Members an earlier class wrote by the same rules are copied
            // (`shares` names the first destination with those rules).
            let reuse: Vec<_> = event
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let first = dest.shares[MemberKind::of(m.field, event.call) as usize];
                    let w = written.get(self.destinations.get(first)?.class)?.as_ref()?;
                    Some((w.text.as_bytes(), *w.members.get(i)?))
                })
                .collect();
            let (buf, mut members) = spare.pop().unwrap_or_default();
            members.clear();
            members.reserve(event.members.len());
            let (text, tally, _, _) = self.write_sent(
                event,
                dest,
                None,
                Some(memo),
                &reuse,
                Some(&mut members),
                buf,
            )?;
            drop(reuse);
            written[dest.class] = Some(Written {
                text,
                tally,
                members,
            });
        }
        Ok(())
    }

    /// Each receiving destination's item of one event, written at the end
    /// of its [`Pending::texts`] and listed in `items` (by destination
    /// index; `None`: its format has no mapping for it); each sanitized
    /// text is parsed at most once, for all native formats.
    ///
    /// # Errors
    /// [`EventError::TooLargeFor`] when an item fits no body of its
    /// server-side destination (`limits`): the event then goes to none,
    /// and the items written for it are taken back.
    fn map_formats(
        &self,
        written: &[Option<Written>],
        receives: &[bool],
        limits: &[usize],
        pending: &mut [Pending],
        items: &mut Vec<Mapped>,
    ) -> Result<(), Error> {
        items.clear();
        let mut parsed: Vec<Option<Option<Sanitized<'_>>>> = written.iter().map(|_| None).collect();
        for (at, (dest, receives)) in self.destinations.iter().zip(receives).enumerate() {
            let (
                true,
                Some(Written {
                    text,
                    tally,
                    members,
                }),
                Some(p),
            ) = (*receives, &written[dest.class], pending.get_mut(at))
            else {
                continue;
            };
            let sanitized = if dest.format.is_passthrough() {
                None
            } else {
                parsed[dest.class]
                    .get_or_insert_with(|| {
                        // An unrestricted destination's event is as it came
                        // (its members were not written one by one).
                        if members.is_empty() {
                            return Sanitized::parse_valid(text);
                        }
                        let kept = members.iter().filter(|m| m.kept);
                        Sanitized::from_spans(text, kept.map(|m| (m.key, m.start, m.end)))
                    })
                    .as_ref()
            };
            let span = p.write_item(dest.format, text, sanitized);
            items.push((at, span, *tally));
            let limit = limits.get(at).copied().unwrap_or(0);
            if let Some(span) = span.filter(|_| dest.is_server_side()) {
                let shared = p.texts.get(span.shared..span.end).unwrap_or_default();
                if !dest
                    .format
                    .fits_parts(shared, span.shared - span.start, limit)
                {
                    take_back(items, pending);
                    return Err(Error::Event(EventError::TooLargeFor {
                        destination: dest.name.clone(),
                        limit,
                    }));
                }
            }
        }
        Ok(())
    }
}

/// The request's signals, and per destination whether it receives the
/// event being written and, if not, why.
struct Gates<'a> {
    signals: &'a Signals,
    receives: &'a mut [bool],
    why: &'a mut [Option<Reason>],
}

/// One destination's item of an event: its index, where the item stands
/// (`None`: not mapped), and the event's counts for it.
type Mapped = (usize, Option<Span>, Tally);

/// Removes the items of a refused event from the texts they were written
/// to (each destination holds at most one item of an event).
fn take_back(items: &mut Vec<Mapped>, pending: &mut [Pending]) {
    for (at, span, _) in items.drain(..) {
        if let (Some(span), Some(p)) = (span, pending.get_mut(at)) {
            p.texts.truncate(span.start);
        }
    }
}

/// Adds one accepted event's items (from [`Sanitizer::map_formats`]) to
/// what each destination is sent; `index` is the event's in the request.
/// Returns the bytes they added.
fn add_items(
    index: usize,
    items: &mut Vec<Mapped>,
    pending: &mut [Pending],
    labels: &[u32],
) -> usize {
    let mut added = 0usize;
    for (at, span, tally) in items.drain(..) {
        let (Some(p), Some(&label)) = (pending.get_mut(at), labels.get(at)) else {
            continue;
        };
        match span {
            Some(span) => {
                added = added.saturating_add(span.end - span.start);
                p.items.push(span);
                p.indexes.push(index);
                p.tallies.push(tally);
                p.labels.push(label);
            }
            None => {
                p.unmapped += 1;
                p.ledger.not_sent(label, NotSent::Unmapped);
            }
        }
    }
    added
}

/// Gathers a destination's items into bodies and counts.
fn deliver(format: Format, name: &str, p: Pending, max_bytes: usize) -> Delivery {
    // Every item fits a body (map_formats refused the events that do
    // not), so none is left out here.
    let (bodies, _) = format.bodies_of(p.items.len(), |i| p.item(i), max_bytes);
    let mut delivery = Delivery {
        destination: name.to_owned(),
        unmapped: p.unmapped,
        consent: p.consent,
        labels: p.ledger.labels,
        not_sent: p.ledger.not_sent,
        ..Delivery::default()
    };
    for body in bodies {
        for &i in &body.items {
            delivery.sent += 1;
            delivery.tally.add(p.tallies[i]);
        }
        delivery
            .events
            .push(body.items.iter().map(|&i| p.indexes[i]).collect());
        delivery
            .labels_of
            .push(body.items.iter().map(|&i| p.labels[i]).collect());
        delivery.bodies.push(body.text);
    }
    delivery
}
