//! Prepared policies: a validated [`Policy`] as compact bytes, so that a
//! build of the engine without the policy validator (the edge Worker's,
//! which must stay small) can load a policy the full engine checked at
//! build time.
//!
//! Layout: `MAGIC`, the policy, then the SHA-256 of everything before
//! it. Loading refuses any byte out of place, a bad checksum, or a policy
//! that breaks an invariant the sanitizer relies on (`url` indexes); in
//! doubt nothing is loaded.

use sha2::{Digest, Sha256};

use crate::action::ip::IpMode;
use crate::action::normalize::Normalize;
use crate::action::scan::{OnMatch, Scan};
use crate::action::url::{Segments, UrlRule};
use crate::bots::Mode as BotMode;
use crate::consent::{Consent, Mode, Purpose};
use crate::detect::Detectors;
use crate::event::Calls;
use crate::format::Format;
use crate::path::Step;
use crate::policy::{
    Action, Allowlists, Baa, Connection, Destination, IdAction, Identifiers, NameRule, Names,
    Policy, Rule, ScanRule,
};
use crate::structural::Shape;

/// The format's name and version: a prepared policy of another format
/// version is refused, not misread. Version 2: `"scan": true` holds the
/// `date` detector (a version 1 policy's default set would scan without it).
/// Version 3: the `consent` section and destinations' purposes.
/// Version 4: the `bots` mode.
/// Version 5: a destination's BAA with its signing date and reference.
const MAGIC: &[u8; 8] = b"phimask\x05";

/// `policy` (validated) as prepared bytes.
pub fn prepare(policy: &Policy) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    policy.write_to(&mut out);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The policy in prepared `bytes`, or `None` if they are not exactly what
/// [`prepare`] writes.
pub fn load(bytes: &[u8]) -> Option<Policy> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut r = Reader(body.strip_prefix(MAGIC.as_slice())?);
    let policy = Policy::read_from(&mut r)?;
    let urls = policy.urls.len();
    let in_range = |lists: &Allowlists| {
        lists.0.iter().flatten().all(|rule| match rule.action {
            Action::Url(i) => usize::from(i) < urls,
            _ => true,
        })
    };
    // Every purpose a destination or `gpc` names is defined: a gate that
    // names none would never close.
    let defined = |name: &String| {
        policy
            .consent
            .as_ref()
            .is_some_and(|c| c.purpose(name).is_some())
    };
    let ok = r.0.is_empty()
        && in_range(&policy.allowlists)
        && policy.destinations.iter().all(|d| in_range(&d.allowlists))
        && policy
            .destinations
            .iter()
            .flat_map(|d| &d.consent)
            .all(defined)
        && policy.consent.iter().flat_map(|c| &c.gpc).all(defined)
        // A BAA's date and reference are printed in reports: only what
        // validation accepts.
        && policy
            .destinations
            .iter()
            .all(|d| crate::validate::baa::is_valid(&d.baa));
    ok.then_some(policy)
}

/// Prepared bytes not yet read.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A LEB128 length, at most the bytes left (so a corrupt length cannot
    /// ask for a huge allocation).
    fn len(&mut self) -> Option<usize> {
        let mut n: usize = 0;
        for shift in (0..32).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return (n <= self.0.len()).then_some(n);
            }
        }
        None
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    /// One of `all` by its index.
    fn one_of<T: Copy>(&mut self, all: &[T]) -> Option<T> {
        all.get(usize::from(self.byte()?)).copied()
    }
}

fn put_len(n: usize, out: &mut Vec<u8>) {
    let mut n = n;
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A part of a policy, written and read back.
trait Prepared: Sized {
    fn write_to(&self, out: &mut Vec<u8>);
    fn read_from(r: &mut Reader<'_>) -> Option<Self>;
}

impl Prepared for bool {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        r.one_of(&[false, true])
    }
}

impl Prepared for String {
    fn write_to(&self, out: &mut Vec<u8>) {
        put_len(self.len(), out);
        out.extend_from_slice(self.as_bytes());
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        let n = r.len()?;
        let bytes = r.bytes(n)?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }
}

impl<T: Prepared> Prepared for Vec<T> {
    fn write_to(&self, out: &mut Vec<u8>) {
        put_len(self.len(), out);
        for item in self {
            item.write_to(out);
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        // Every item takes at least one byte, which `len` checks. (A loop:
        // collecting into Option<Vec> costs the Worker kilobytes.)
        let n = r.len()?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(T::read_from(r)?);
        }
        Some(items)
    }
}

impl<T: Prepared> Prepared for Option<T> {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.is_some().write_to(out);
        if let Some(value) = self {
            value.write_to(out);
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        match bool::read_from(r)? {
            true => T::read_from(r).map(Some),
            false => Some(None),
        }
    }
}

impl<A: Prepared, B: Prepared> Prepared for (A, B) {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.0.write_to(out);
        self.1.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some((A::read_from(r)?, B::read_from(r)?))
    }
}

/// Enums without data: their index in a list of all values.
macro_rules! by_index {
    ($($ty:ty => [$($value:expr),+ $(,)?];)+) => {$(
        impl Prepared for $ty {
            fn write_to(&self, out: &mut Vec<u8>) {
                const ALL: &[$ty] = &[$($value),+];
                out.push(ALL.iter().position(|v| v == self).unwrap_or(usize::MAX) as u8);
            }
            fn read_from(r: &mut Reader<'_>) -> Option<Self> {
                r.one_of(&[$($value),+])
            }
        }
    )+};
}

by_index! {
    Format => [Format::Segment, Format::Amplitude, Format::Mixpanel, Format::Ga4, Format::Posthog, Format::Ndjson];
    Normalize => [Normalize::Email, Normalize::Phone, Normalize::Text];
    OnMatch => [OnMatch::Redact, OnMatch::Mask, OnMatch::Drop];
    IpMode => [IpMode::Truncate, IpMode::Zero];
    IdAction => [IdAction::Mask, IdAction::Allow, IdAction::Drop];
    Connection => [Connection::ServerSide, Connection::ClientSide];
    Mode => [Mode::OptIn, Mode::OptOut];
}

impl Prepared for Detectors {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(self.bits());
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Detectors::from_bits(r.byte()?)
    }
}

impl Prepared for Calls {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(self.bits());
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Calls::from_bits(r.byte()?)
    }
}

impl Prepared for Scan {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.detectors.write_to(out);
        self.on_match.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Scan {
            detectors: Detectors::read_from(r)?,
            on_match: OnMatch::read_from(r)?,
        })
    }
}

impl Prepared for ScanRule {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            ScanRule::Default => out.push(0),
            ScanRule::Off => out.push(1),
            ScanRule::On(scan) => {
                out.push(2);
                scan.write_to(out);
            }
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(ScanRule::Default),
            1 => Some(ScanRule::Off),
            2 => Scan::read_from(r).map(ScanRule::On),
            _ => None,
        }
    }
}

impl Prepared for Action {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Action::Allow { scan } => {
                out.push(0);
                scan.write_to(out);
            }
            Action::Mask(normalize) => {
                out.push(1);
                normalize.write_to(out);
            }
            Action::Drop => out.push(2),
            Action::Url(index) => {
                out.push(3);
                out.extend_from_slice(&index.to_le_bytes());
            }
            Action::Ip(mode) => {
                out.push(4);
                mode.write_to(out);
            }
            Action::Zip3 => out.push(5),
            Action::Year => out.push(6),
            Action::Age => out.push(7),
            Action::Shape(shape) => {
                out.push(8);
                out.push(*shape as u8);
            }
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(match r.byte()? {
            0 => Action::Allow {
                scan: ScanRule::read_from(r)?,
            },
            1 => Action::Mask(Option::read_from(r)?),
            2 => Action::Drop,
            3 => {
                let b = r.bytes(2)?;
                Action::Url(u16::from_le_bytes([b[0], b[1]]))
            }
            4 => Action::Ip(IpMode::read_from(r)?),
            5 => Action::Zip3,
            6 => Action::Year,
            7 => Action::Age,
            8 => Action::Shape(r.one_of(&Shape::ALL)?),
            _ => return None,
        })
    }
}

impl Prepared for Step {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Step::Key(key) => {
                out.push(0);
                key.write_to(out);
            }
            Step::Elements => out.push(1),
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => String::read_from(r).map(Step::Key),
            1 => Some(Step::Elements),
            _ => None,
        }
    }
}

impl Prepared for Rule {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.path.write_to(out);
        self.steps.write_to(out);
        self.action.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Rule {
            path: String::read_from(r)?,
            steps: Vec::read_from(r)?,
            action: Action::read_from(r)?,
        })
    }
}

impl Prepared for Allowlists {
    fn write_to(&self, out: &mut Vec<u8>) {
        for list in &self.0 {
            list.write_to(out);
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Allowlists([
            Vec::read_from(r)?,
            Vec::read_from(r)?,
            Vec::read_from(r)?,
            Vec::read_from(r)?,
            Vec::read_from(r)?,
        ]))
    }
}

impl Prepared for NameRule {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            NameRule::Allow => out.push(0),
            NameRule::Drop => out.push(1),
            NameRule::Rename(name) => {
                out.push(2);
                name.write_to(out);
            }
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(NameRule::Allow),
            1 => Some(NameRule::Drop),
            2 => String::read_from(r).map(NameRule::Rename),
            _ => None,
        }
    }
}

impl Prepared for Names {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.0.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Vec::read_from(r).map(Names)
    }
}

impl Prepared for Identifiers {
    fn write_to(&self, out: &mut Vec<u8>) {
        for action in &self.0 {
            action.write_to(out);
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Identifiers([
            IdAction::read_from(r)?,
            IdAction::read_from(r)?,
            IdAction::read_from(r)?,
            IdAction::read_from(r)?,
        ]))
    }
}

impl Prepared for UrlRule {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.query.write_to(out);
        self.paths.write_to(out);
        self.segments.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(UrlRule {
            query: Vec::read_from(r)?,
            paths: Vec::read_from(r)?,
            segments: Segments::read_from(r)?,
        })
    }
}

impl Prepared for Segments {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Segments::None => out.push(0),
            Segments::Words(words) => {
                out.push(1);
                words.write_to(out);
            }
            Segments::Any => out.push(2),
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(Segments::None),
            1 => Vec::read_from(r).map(Segments::Words),
            2 => Some(Segments::Any),
            _ => None,
        }
    }
}

impl Prepared for Baa {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Baa::None => out.push(0),
            Baa::Undated => out.push(1),
            Baa::Signed { signed, reference } => {
                out.push(2);
                signed.write_to(out);
                reference.write_to(out);
            }
        }
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(Baa::None),
            1 => Some(Baa::Undated),
            2 => Some(Baa::Signed {
                signed: String::read_from(r)?,
                reference: String::read_from(r)?,
            }),
            _ => None,
        }
    }
}

impl Prepared for Destination {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.name.write_to(out);
        self.connection.write_to(out);
        self.endpoint.write_to(out);
        self.restricted.write_to(out);
        self.baa.write_to(out);
        self.allowlists.write_to(out);
        self.events.write_to(out);
        self.calls.write_to(out);
        self.integration.write_to(out);
        self.mask_scope.write_to(out);
        self.format.write_to(out);
        self.consent.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Destination {
            name: String::read_from(r)?,
            connection: Connection::read_from(r)?,
            endpoint: Option::read_from(r)?,
            restricted: bool::read_from(r)?,
            baa: Baa::read_from(r)?,
            allowlists: Allowlists::read_from(r)?,
            events: Names::read_from(r)?,
            calls: Calls::read_from(r)?,
            integration: String::read_from(r)?,
            mask_scope: Option::read_from(r)?,
            format: Format::read_from(r)?,
            consent: Vec::read_from(r)?,
        })
    }
}

impl Prepared for Policy {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.environment.write_to(out);
        self.hipaa.write_to(out);
        self.identifiers.write_to(out);
        self.allowlists.write_to(out);
        self.events.write_to(out);
        self.scan.write_to(out);
        self.urls.write_to(out);
        self.destinations.write_to(out);
        self.consent.write_to(out);
        self.bots.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Policy {
            environment: String::read_from(r)?,
            hipaa: bool::read_from(r)?,
            identifiers: Identifiers::read_from(r)?,
            allowlists: Allowlists::read_from(r)?,
            events: Names::read_from(r)?,
            scan: Option::read_from(r)?,
            urls: Vec::read_from(r)?,
            destinations: Vec::read_from(r)?,
            consent: Option::read_from(r)?,
            bots: BotMode::read_from(r)?,
        })
    }
}

impl Prepared for BotMode {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        r.one_of(&BotMode::ALL)
    }
}

impl Prepared for Purpose {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.name.write_to(out);
        self.ids.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Purpose {
            name: String::read_from(r)?,
            ids: Vec::read_from(r)?,
        })
    }
}

impl Prepared for Consent {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.mode.write_to(out);
        self.purposes.write_to(out);
        self.gpc.write_to(out);
        self.regions.write_to(out);
    }
    fn read_from(r: &mut Reader<'_>) -> Option<Self> {
        Some(Consent {
            mode: Mode::read_from(r)?,
            purposes: Vec::read_from(r)?,
            gpc: Vec::read_from(r)?,
            regions: Vec::read_from(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A policy using every kind of value the format holds.
    fn sample() -> Vec<u8> {
        let text = r#"{"version": 1, "environment": "e", "hipaa": true,
          "scan": ["email", "id"],
          "identifiers": {"userId": "allow", "groupId": "drop"},
          "events": {"A": "allow", "B": {"rename": "C"}, "*": "drop"},
          "allowlists": {
            "event_properties": {"a": {"action": "allow", "scan": false}, "b[].c": "mask",
              "n": {"action": "mask", "normalize": "email"}, "u": {"action": "url", "query": ["utm_*"], "paths": ["/p/:id"], "segments": ["p", "book"]},
              "v": {"action": "url", "segments": "*"}, "w": "url",
              "i": {"action": "ip", "mode": "zero"}, "z": "zip3", "y": "year", "g": "age", "d": "drop",
              "s": {"action": "allow", "scan": ["ssn"], "on_match": "drop"}},
            "context": {"ip": "ip"}},
          "destinations": {
            "d": {"connection": "server-side", "endpoint": "https://d.example/", "calls": ["track"],
                  "integration": "D", "mask_scope": "s", "events": {"A": "drop"},
                  "allowlists": {"user_properties": {"e": "mask"}}},
            "w": {"connection": "server-side", "endpoint": "https://w.example/", "restrict_phi": false, "baa": true},
            "c": {"connection": "client-side", "restrict_phi": false, "baa": true},
            "g": {"connection": "server-side", "endpoint": "https://g.example/", "consent": ["ads", "stats"]}},
          "consent": {"mode": "opt-out", "categories": {"stats": ["C0002"], "ads": ["C0004", "Ads"]},
                      "gpc": ["ads"], "regions": {"US-WA": {"mode": "opt-in"}, "DE": {"mode": "opt-in"}}},
          "bots": "flag"}"#;
        let (policy, report) = crate::validate_policy(text);
        prepare(&policy.unwrap_or_else(|| panic!("{:?}", report.errors)))
    }

    #[test]
    fn sample_covers_the_format() {
        let bytes = sample();
        let policy = load(&bytes).unwrap();
        assert_eq!(policy.urls.len(), 3);
        let segments: Vec<&Segments> = policy.urls.iter().map(|u| &u.segments).collect();
        assert_eq!(
            segments,
            [
                &Segments::Words(vec!["p".into(), "book".into()]),
                &Segments::Any,
                &Segments::None
            ]
        );
        assert_eq!(policy.destinations.len(), 4);
        assert_eq!(policy.destinations[3].consent, ["ads", "stats"]);
        let consent = policy.consent.unwrap();
        assert_eq!(consent.mode, Mode::OptOut);
        assert_eq!(consent.purposes[1].ids, ["C0004", "Ads"]);
        assert_eq!(consent.gpc, ["ads"]);
        assert_eq!(consent.regions[1], ("DE".to_owned(), Mode::OptIn));
        assert_eq!(policy.bots, BotMode::Flag);
    }

    proptest! {
        /// Edits inside the checksum (a corrupt file that still sums, or a
        /// bug in the writer): the reader never panics nor reads past the
        /// end, whatever the bytes.
        #[test]
        fn reader_never_panics(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                               cut in any::<prop::sample::Index>()) {
            let bytes = sample();
            let mut body = bytes[..bytes.len() - 32].to_vec();
            for (at, value) in edits {
                let i = MAGIC.len() + at.index(body.len() - MAGIC.len());
                body[i] = value;
            }
            body.truncate(MAGIC.len() + cut.index(body.len() - MAGIC.len() + 1));
            let sum = Sha256::digest(&body);
            body.extend_from_slice(&sum);
            let _ = load(&body);
        }
    }
}
