//! The paths that arrive in a request's events and that no rule of the
//! policy names: where a new field (perhaps carrying PHI) shows up before
//! anyone wrote a rule for it. Paths and counts only, never a value; a key
//! that does not look like a field name is `[key]`.
//!
//! One walk per accepted event, guided by the union of every list of the
//! policy (the environment's and each destination's): a member under a
//! rule is skipped whole (a rule covers everything under it), one no rule
//! reaches is noted once at its own path (not each leaf under it), and
//! only members on the way to deeper rules are entered.
//!
//! On the hot path of every request: a key is shown as a path (which runs
//! the detectors on it, for `[key]`) only the first time the request
//! holds it at a place; after that, the key's bytes as written and the
//! rule node it stands under find its path's entry in one lookup.

use std::collections::HashMap;

use crate::compile::Node;
use crate::event::{Event, Field, MAX_DEPTH};
use crate::json::{Kind, Reader, StrSpan, SyntaxError};
use crate::key_name::push_inventory_key;
use crate::sanitize::CallType;

/// Most distinct paths one request reports; the rest are counted together
/// under [`MORE_PATHS`].
pub const MAX_PATHS: usize = 256;
/// Longest path reported, in bytes; a longer one is cut and ends with `…`.
pub const MAX_PATH_BYTES: usize = 200;
/// Where the paths beyond [`MAX_PATHS`] are counted: the number of events
/// that held at least one of them.
pub const MORE_PATHS: &str = "[more paths]";

/// The union of the policy's lists, per part of the event (`context`
/// with `traits` under the user properties').
#[derive(Debug, Clone, Default)]
pub(crate) struct Named {
    pub(crate) event: Node,
    pub(crate) user: Node,
    pub(crate) group: Node,
    pub(crate) context: Node,
}

/// Keys remembered per request with the entry they count for; past this,
/// a key is shown again each time (memory stays bounded, whatever the
/// request).
const REMEMBERED: usize = 4096;

/// The entry of the paths beyond [`MAX_PATHS`].
const MORE: u32 = u32::MAX;

/// The paths seen so far in a request.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    /// Each path, the events it occurred in, and the last event (by
    /// number) it was counted for: once per event.
    seen: Vec<(String, u32, u32)>,
    at: HashMap<Box<str>, u32>,
    /// The entry of a key at a place: the rule node it stands under (its
    /// address: one per path that leads to it) and the key as written.
    keys: HashMap<Box<[u8]>, u32>,
    /// Events that held a path beyond the cap, and the last one counted.
    more: (u32, u32),
    /// The number of the event being walked (from 1).
    event: u32,
    /// Where the walk stands: the top-level member, then each key
    /// entered (`None`: the elements of an array).
    root: &'static str,
    steps: Vec<Option<StrSpan>>,
    scratch: Vec<u8>,
    path: String,
}

/// Stands for an array's elements in a remembered key: JSON text never
/// holds a raw NUL.
const ELEMENTS: &[u8] = b"\0[]";

impl Inventory {
    /// Notes the unnamed paths of one accepted event. A reader error
    /// (never, for a validated event) ends the walk of that member: the
    /// inventory is evidence, not a gate.
    pub(crate) fn walk_event(&mut self, event: &Event<'_>, named: &Named) {
        self.event = self.event.saturating_add(1);
        for m in &event.members {
            let mut r = Reader::validated(event.src, m.value, MAX_DEPTH);
            let (root, node) = match (m.field, event.call) {
                (Field::Properties, CallType::Track | CallType::Page | CallType::Screen) => {
                    ("properties", &named.event)
                }
                (Field::Traits, CallType::Identify) => ("traits", &named.user),
                (Field::Traits, CallType::Group) => ("traits", &named.group),
                (Field::Context, _) => ("context", &named.context),
                // A top-level key no fixed rule governs (`writeKey` never
                // gets here: the request's read cuts it out).
                (Field::Other, _) => {
                    self.root = "";
                    self.steps.clear();
                    let _ = self.unnamed(&r, 0, Some(m.key));
                    continue;
                }
                // Structural fields, identifiers, names and `integrations`
                // have fixed rules; `properties` or `traits` of a call that
                // never sends them are dropped by one too.
                _ => continue,
            };
            self.root = root;
            self.steps.clear();
            let _ = self.walk(&mut r, node, 2);
        }
    }

    /// Walks the value at `r`, at a path that rules reach deeper into
    /// (`node` has no rule of its own: one would cover it all).
    fn walk(&mut self, r: &mut Reader<'_>, node: &Node, depth: usize) -> Result<(), SyntaxError> {
        let place = node as *const Node as usize;
        match r.peek_kind()? {
            Kind::Object => {
                r.begin_object(depth)?;
                let mut first = true;
                while let Some(key) = r.next_key(&mut first)? {
                    let child = node.child(&r.decode(key)?);
                    match child {
                        Some(c) if c.action.is_some() => {}
                        Some(c) => {
                            self.steps.push(Some(key));
                            self.walk(r, c, depth + 1)?;
                            self.steps.pop();
                            continue;
                        }
                        None => self.unnamed(r, place, Some(key))?,
                    }
                    r.skip_value(depth + 1)?;
                }
            }
            Kind::Array => {
                let elements = node.elements.as_deref();
                if elements.is_some_and(|e| e.action.is_some()) {
                    r.skip_value(depth)?;
                    return Ok(());
                }
                r.begin_array(depth)?;
                let mut first = true;
                match elements {
                    Some(e) => {
                        self.steps.push(None);
                        while r.next_element(&mut first)? {
                            self.walk(r, e, depth + 1)?;
                        }
                        self.steps.pop();
                    }
                    // Elements where rules name only members: no rule
                    // reaches them (noted once for the array).
                    None => {
                        let mut noted = false;
                        while r.next_element(&mut first)? {
                            if !noted {
                                self.unnamed(r, place, None)?;
                                noted = true;
                            }
                            r.skip_value(depth + 1)?;
                        }
                    }
                }
            }
            // A scalar where rules name only deeper members: the path is
            // named, and the value is dropped.
            _ => {
                r.skip_value(depth)?;
            }
        }
        Ok(())
    }

    /// Counts, for the current event, the key `key` (`None`: the elements
    /// of an array) that no rule names, at the place `place` of the walk.
    fn unnamed(
        &mut self,
        r: &Reader<'_>,
        place: usize,
        key: Option<StrSpan>,
    ) -> Result<(), SyntaxError> {
        let src = r.src();
        self.scratch.clear();
        self.scratch.extend_from_slice(&place.to_le_bytes());
        match key {
            Some(k) => self
                .scratch
                .extend_from_slice(src.get(k.start..k.end).unwrap_or_default()),
            None => self.scratch.extend_from_slice(ELEMENTS),
        }
        if let Some(&entry) = self.keys.get(self.scratch.as_slice()) {
            self.count(entry);
            return Ok(());
        }
        self.show(r, key)?;
        let entry = self.entry();
        if self.keys.len() < REMEMBERED {
            self.keys.insert(self.scratch.as_slice().into(), entry);
        }
        self.count(entry);
        Ok(())
    }

    /// Writes the path of the walk's place and `key` to `path`, keys shown
    /// as [`push_inventory_key`] shows them, and cut to [`MAX_PATH_BYTES`].
    fn show(&mut self, r: &Reader<'_>, key: Option<StrSpan>) -> Result<(), SyntaxError> {
        self.path.clear();
        self.path.push_str(self.root);
        for step in self.steps.iter().copied().chain([key]) {
            match step {
                Some(k) => push_inventory_key(&mut self.path, &r.decode(k)?),
                None => self.path.push_str("[]"),
            }
        }
        if self.path.len() > MAX_PATH_BYTES {
            let mut end = MAX_PATH_BYTES - '…'.len_utf8();
            while !self.path.is_char_boundary(end) {
                end -= 1;
            }
            self.path.truncate(end);
            self.path.push('…');
        }
        Ok(())
    }

    /// The entry of `path` (added when new, [`MORE`] past the cap).
    fn entry(&mut self) -> u32 {
        if let Some(&i) = self.at.get(self.path.as_str()) {
            return i;
        }
        if self.seen.len() >= MAX_PATHS {
            return MORE;
        }
        let i = self.seen.len() as u32;
        self.at.insert(self.path.as_str().into(), i);
        self.seen.push((self.path.clone(), 0, 0));
        i
    }

    /// Counts an entry for the current event (once per event).
    fn count(&mut self, entry: u32) {
        let event = self.event;
        let (count, last) = match self.seen.get_mut(entry as usize) {
            Some((_, count, last)) => (count, last),
            None => (&mut self.more.0, &mut self.more.1),
        };
        if *last != event {
            *last = event;
            *count += 1;
        }
    }

    /// The paths in the order first seen, each with the number of events
    /// it occurred in; then [`MORE_PATHS`] when the cap was reached.
    pub(crate) fn into_paths(self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self.seen.into_iter().map(|(p, n, _)| (p, n)).collect();
        if self.more.0 > 0 {
            out.push((MORE_PATHS.to_owned(), self.more.0));
        }
        out
    }
}
