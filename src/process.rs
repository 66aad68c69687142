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

use crate::error::{Error, EventError};
use crate::format::{Format, Item, Sanitized};
use crate::mask::Memo;
use crate::report::Tally;
use crate::request::{read_events, Call, Read, RequestError, MAX_OUTPUT_BYTES};
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
}

/// One event as written for a class of destinations: its text, counts,
/// and where each top-level member stands in it (for other classes to
/// copy the members they write alike).
struct Written {
    text: String,
    tally: Tally,
    members: Vec<MemberOut>,
}

/// One destination's items so far, with the request index of each.
#[derive(Default)]
struct Pending {
    items: Vec<Item>,
    indexes: Vec<usize>,
    tallies: Vec<Tally>,
    unmapped: u32,
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
        let text = crate::request::utf8(body)?;
        let request = read_events(text, call)?;
        let dests = &self.destinations;
        let memo = RefCell::new(Memo::default());
        let mut pending: Vec<Pending> = dests.iter().map(|_| Pending::default()).collect();
        let mut rejected = Vec::new();
        let mut accepted = 0;
        // Per destination class, this event's output (None: not written);
        // per destination, whether it receives the event.
        let mut written: Vec<Option<Written>> = dests.iter().map(|_| None).collect();
        let mut receives = vec![false; dests.len()];
        let limits: Vec<usize> = dests
            .iter()
            .map(|d| d.format.body_limit(max_body_bytes))
            .collect();
        let mut items = Vec::with_capacity(dests.len());
        let mut output = 0usize;
        for (index, event) in request.events.iter().enumerate() {
            let read = match event {
                Ok(read) => read,
                Err(e) => {
                    rejected.push((index, Error::Event(e.clone())));
                    continue;
                }
            };
            written.iter_mut().for_each(|w| *w = None);
            let mapped = self
                .write_all(read, text, &memo, &mut written, &mut receives)
                .and_then(|()| self.map_formats(&written, &receives, &limits, &mut items));
            match mapped {
                Ok(()) => {
                    accepted += 1;
                    output = output.saturating_add(add_items(index, &mut items, &mut pending));
                    // Checked as it grows: memory stays bounded, whatever the request.
                    if output > MAX_OUTPUT_BYTES {
                        return Err(RequestError::OutputTooLarge);
                    }
                }
                Err(e) => rejected.push((index, e)),
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
        })
    }

    /// Writes one event for each class of destination that receives it:
    /// `written[class]`. Any error refuses the event for all.
    fn write_all(
        &self,
        read: &Read<'_>,
        body: &str,
        memo: &RefCell<Memo>,
        written: &mut [Option<Written>],
        receives: &mut [bool],
    ) -> Result<(), Error> {
        // read_events validated the JSON of every event it returns.
        let event = read.event(body)?;
        for (dest, receives) in self.destinations.iter().zip(receives.iter_mut()) {
            *receives = self.gate(&event, dest).is_ok();
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
            let mut members = Vec::with_capacity(event.members.len());
            let (text, tally, _, _) =
                self.write_sent(&event, dest, None, Some(memo), &reuse, Some(&mut members))?;
            drop(reuse);
            written[dest.class] = Some(Written {
                text,
                tally,
                members,
            });
        }
        Ok(())
    }

    /// Each receiving destination's item of one event, into `items` (by
    /// destination index; `None`: its format has no mapping for it); each
    /// sanitized text is parsed at most once, for all native formats.
    ///
    /// # Errors
    /// [`EventError::TooLargeFor`] when an item fits no body of its
    /// server-side destination (`limits`): the event then goes to none.
    fn map_formats(
        &self,
        written: &[Option<Written>],
        receives: &[bool],
        limits: &[usize],
        items: &mut Vec<(usize, Option<Item>, Tally)>,
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
            ) = (*receives, &written[dest.class])
            else {
                continue;
            };
            let item = if dest.format.is_passthrough() {
                Some(dest.format.passthrough_item(text))
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
                    .and_then(|e| dest.format.native_item(e))
            };
            let limit = limits.get(at).copied().unwrap_or(0);
            if let Some(item) = item.as_ref().filter(|_| dest.is_server_side()) {
                if !dest.format.fits(item, limit) {
                    return Err(Error::Event(EventError::TooLargeFor {
                        destination: dest.name.clone(),
                        limit,
                    }));
                }
            }
            items.push((at, item, *tally));
        }
        Ok(())
    }
}

/// Adds one accepted event's items (from [`Sanitizer::map_formats`]) to
/// what each destination is sent; `index` is the event's in the request.
/// Returns the bytes they added.
fn add_items(
    index: usize,
    items: &mut Vec<(usize, Option<Item>, Tally)>,
    pending: &mut [Pending],
) -> usize {
    let mut added = 0usize;
    for (at, item, tally) in items.drain(..) {
        let Some(p) = pending.get_mut(at) else {
            continue;
        };
        match item {
            Some(item) => {
                added = added.saturating_add(item.text.len() + item.shared.len());
                p.items.push(item);
                p.indexes.push(index);
                p.tallies.push(tally);
            }
            None => p.unmapped += 1,
        }
    }
    added
}

/// Gathers a destination's items into bodies and counts.
fn deliver(format: Format, name: &str, p: Pending, max_bytes: usize) -> Delivery {
    // Every item fits a body (map_formats refused the events that do
    // not), so none is left out here.
    let (bodies, _) = format.bodies_within(&p.items, max_bytes);
    let mut delivery = Delivery {
        destination: name.to_owned(),
        unmapped: p.unmapped,
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
        delivery.bodies.push(body.text);
    }
    delivery
}
