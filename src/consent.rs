//! Consent: which purposes a visitor granted, from the consent objects
//! Segment's and RudderStack's SDKs stamp on events and from the request's
//! signals (Global Privacy Control, the visitor's region); and whether a
//! destination that needs purposes may receive an event.
//!
//! Fail closed: a purpose is granted only when the event says so (or the
//! region's mode is opt-out and the event says nothing of it); any denial
//! wins over any grant, and GPC denies its purposes whatever the event says.

use std::borrow::Cow;

use crate::event::Event;
use crate::json::{Kind, Reader, SyntaxError};

/// What an undetermined purpose counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Denied until the visitor grants it.
    OptIn,
    /// Granted until the visitor denies it.
    OptOut,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::OptIn, Mode::OptOut];

    pub fn name(self) -> &'static str {
        match self {
            Mode::OptIn => "opt-in",
            Mode::OptOut => "opt-out",
        }
    }

    pub fn parse(name: &str) -> Option<Mode> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A purpose and the consent category ids (a CMP's, such as OneTrust's
/// `C0004`) that stand for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    pub name: String,
    pub ids: Vec<String>,
}

/// The policy's `consent` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub mode: Mode,
    pub purposes: Vec<Purpose>,
    /// The purposes a Global Privacy Control signal denies.
    pub gpc: Vec<String>,
    /// Region codes (`US-WA`, or a country `US`) and their mode.
    pub regions: Vec<(String, Mode)>,
}

impl Consent {
    /// The index of a purpose by name.
    pub fn purpose(&self, name: &str) -> Option<usize> {
        self.purposes.iter().position(|p| p.name == name)
    }

    /// The mode for a visitor in `region` (`US-WA`): its subdivision's,
    /// else its country's, else the policy's; with the index in
    /// `regions` of the one that decided, if one did.
    pub fn mode_in(&self, region: Option<&str>) -> (Mode, Option<usize>) {
        let Some(region) = region else {
            return (self.mode, None);
        };
        let country = region.split('-').next().unwrap_or(region);
        [region, country]
            .into_iter()
            .find_map(|code| {
                let i = self.regions.iter().position(|(c, _)| c == code)?;
                Some((self.regions[i].1, Some(i)))
            })
            .unwrap_or((self.mode, None))
    }
}

/// Whether `code` is a region code a policy and a request may name: an
/// ISO 3166-1 country (`US`) or an ISO 3166-2 subdivision (`US-WA`),
/// upper case.
pub fn is_region(code: &str) -> bool {
    let b = code.as_bytes();
    let part = |p: &[u8], len: std::ops::RangeInclusive<usize>| {
        len.contains(&p.len())
            && p.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    match code.split_once('-') {
        Some((country, sub)) => part(country.as_bytes(), 2..=2) && part(sub.as_bytes(), 1..=3),
        None => part(b, 2..=2),
    }
}

/// What a request says of the visitor beyond its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// A Global Privacy Control signal (`Sec-GPC: 1`).
    pub gpc: bool,
    /// The visitor's region (`US-WA`, or a country `US`), upper case.
    pub region: Option<String>,
}

impl Signals {
    /// A region given by a caller, in any case: upper-cased, or why not.
    ///
    /// # Errors
    /// A message saying what a region must be.
    pub fn region_code(region: &str) -> Result<String, String> {
        let upper = region.to_ascii_uppercase();
        if is_region(&upper) {
            Ok(upper)
        } else {
            Err("region must be an ISO 3166-2 code such as \"US-WA\", or a country code such as \"US\"".into())
        }
    }
}

/// Where a purpose's decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// A Global Privacy Control signal denied it.
    Gpc,
    /// Segment's `context.consent.categoryPreferences`.
    CategoryPreferences,
    /// RudderStack's `context.consentManagement.deniedConsentIds`.
    DeniedConsentIds,
    /// RudderStack's `context.consentManagement.allowedConsentIds`.
    AllowedConsentIds,
    /// The event says nothing of it: the mode decided.
    Mode(Mode),
    /// The event's consent could not be read (never for a valid event):
    /// nothing is granted.
    Unread,
}

impl By {
    pub fn name(self) -> &'static str {
        match self {
            By::Gpc => "gpc",
            By::CategoryPreferences => "categoryPreferences",
            By::DeniedConsentIds => "deniedConsentIds",
            By::AllowedConsentIds => "allowedConsentIds",
            By::Mode(mode) => mode.name(),
            By::Unread => "unread",
        }
    }
}

/// The decision on one purpose for one event: compact, since a request
/// decides every purpose of every event (indexes, not text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub granted: bool,
    pub by: By,
    /// The index, in the purpose's ids, of the category id that decided.
    id: Option<usize>,
    /// The index, in the section's regions, of the region whose mode
    /// decided an undetermined purpose.
    region: Option<usize>,
}

impl Verdict {
    /// Denied, for want of a decision.
    pub fn unknown() -> Self {
        Verdict {
            granted: false,
            by: By::Unread,
            id: None,
            region: None,
        }
    }
}

/// A purpose's decision as explanations show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub purpose: String,
    pub granted: bool,
    pub by: By,
    /// The category id that decided (for `categoryPreferences` and the
    /// consent id lists).
    pub id: Option<String>,
    /// The region code whose mode decided an undetermined purpose.
    pub region: Option<String>,
}

/// What an event's consent objects say: Segment's preferences (id, and
/// whether it is `true`) and RudderStack's allowed and denied ids. A
/// malformed object is absent: `consent` or its `categoryPreferences` not
/// an object, `consentManagement` not an object or either of its lists
/// not an array.
#[derive(Debug, Default)]
pub struct Stamps<'a> {
    preferences: Vec<(Cow<'a, [u8]>, bool)>,
    allowed: Vec<Cow<'a, [u8]>>,
    denied: Vec<Cow<'a, [u8]>>,
}

impl<'a> Stamps<'a> {
    /// Reads the stamps of an event: `context.consent.categoryPreferences`
    /// and `context.consentManagement`.
    ///
    /// # Errors
    /// Only a reader error on text read before (never for valid events).
    pub fn read(event: &Event<'a>) -> Result<Self, SyntaxError> {
        let mut stamps = Stamps::default();
        let Some(mut r) = event.context_reader()? else {
            return Ok(stamps);
        };
        let mut first = true;
        while let Some(key) = r.next_key(&mut first)? {
            let key = r.decode(key)?;
            match (&*key, r.peek_kind()?) {
                (b"consent", Kind::Object) => stamps.read_segment(&mut r)?,
                (b"consentManagement", Kind::Object) => stamps.read_rudderstack(&mut r)?,
                _ => {
                    r.skip_value(3)?;
                }
            }
        }
        Ok(stamps)
    }

    /// `consent`: its `categoryPreferences` object, id to value.
    fn read_segment(&mut self, r: &mut Reader<'a>) -> Result<(), SyntaxError> {
        r.begin_object(3)?;
        let mut first = true;
        while let Some(key) = r.next_key(&mut first)? {
            let key = r.decode(key)?;
            if &*key != b"categoryPreferences" || r.peek_kind()? != Kind::Object {
                r.skip_value(4)?;
                continue;
            }
            r.begin_object(4)?;
            let mut first_id = true;
            while let Some(id) = r.next_key(&mut first_id)? {
                let id = r.decode(id)?;
                let granted = r.peek_kind()? == Kind::True;
                r.skip_value(5)?;
                self.preferences.push((id, granted));
            }
        }
        Ok(())
    }

    /// `consentManagement`: its `allowedConsentIds` and
    /// `deniedConsentIds` arrays (strings in them; other elements skipped).
    /// A list of the wrong type makes the whole object malformed, and so
    /// absent: neither list is read (a grant beside a garbled denial is
    /// not believed).
    fn read_rudderstack(&mut self, r: &mut Reader<'a>) -> Result<(), SyntaxError> {
        r.begin_object(3)?;
        let (mut allowed, mut denied) = (Vec::new(), Vec::new());
        let mut malformed = false;
        let mut first = true;
        while let Some(key) = r.next_key(&mut first)? {
            let key = r.decode(key)?;
            let list = match &*key {
                b"allowedConsentIds" => &mut allowed,
                b"deniedConsentIds" => &mut denied,
                _ => {
                    r.skip_value(4)?;
                    continue;
                }
            };
            if r.peek_kind()? != Kind::Array {
                malformed = true;
                r.skip_value(4)?;
                continue;
            }
            r.begin_array(4)?;
            let mut first_item = true;
            while r.next_element(&mut first_item)? {
                if r.peek_kind()? == Kind::String {
                    let span = r.string()?;
                    list.push(r.decode(span)?);
                } else {
                    r.skip_value(5)?;
                }
            }
        }
        if !malformed {
            self.allowed = allowed;
            self.denied = denied;
        }
        Ok(())
    }

    /// The decision on a purpose with these `ids`, before GPC and the
    /// mode: denied (any id present and not granted), granted, or `None`.
    fn decide(&self, ids: &[Box<[u8]>]) -> Option<(bool, By, usize)> {
        let denial = ids.iter().enumerate().find_map(|(i, id)| {
            if self.preferences.iter().any(|(p, on)| **p == **id && !on) {
                Some((false, By::CategoryPreferences, i))
            } else if self.denied.iter().any(|d| **d == **id) {
                Some((false, By::DeniedConsentIds, i))
            } else {
                None
            }
        });
        denial.or_else(|| {
            ids.iter().enumerate().find_map(|(i, id)| {
                if self.preferences.iter().any(|(p, on)| **p == **id && *on) {
                    Some((true, By::CategoryPreferences, i))
                } else if self.allowed.iter().any(|a| **a == **id) {
                    Some((true, By::AllowedConsentIds, i))
                } else {
                    None
                }
            })
        })
    }
}

/// A consent section compiled for deciding: each purpose's ids as bytes
/// and whether GPC denies it.
#[derive(Debug, Clone)]
pub struct Gate {
    consent: Consent,
    ids: Vec<Vec<Box<[u8]>>>,
    gpc: Vec<bool>,
}

impl Gate {
    pub fn new(consent: &Consent) -> Self {
        Gate {
            ids: consent
                .purposes
                .iter()
                .map(|p| p.ids.iter().map(|id| id.as_bytes().into()).collect())
                .collect(),
            gpc: consent
                .purposes
                .iter()
                .map(|p| consent.gpc.contains(&p.name))
                .collect(),
            consent: consent.clone(),
        }
    }

    /// The index of a purpose by name.
    pub fn purpose(&self, name: &str) -> Option<usize> {
        self.consent.purpose(name)
    }

    /// A purpose's verdict (by the purpose's index), as explanations
    /// show it: names, ids and region codes written out.
    pub fn decision(&self, purpose: usize, v: &Verdict) -> Decision {
        let p = self.consent.purposes.get(purpose);
        Decision {
            purpose: p.map_or_else(String::new, |p| p.name.clone()),
            granted: v.granted,
            by: v.by,
            id: v.id.and_then(|i| p?.ids.get(i).cloned()),
            region: v
                .region
                .and_then(|i| self.consent.regions.get(i))
                .map(|(code, _)| code.clone()),
        }
    }

    /// The decision on every purpose (by index) for an event so stamped
    /// and a request with these signals.
    pub fn decide(&self, stamps: &Stamps<'_>, signals: &Signals) -> Vec<Verdict> {
        let (mode, region) = self.consent.mode_in(signals.region.as_deref());
        self.ids
            .iter()
            .zip(&self.gpc)
            .map(|(ids, &gpc)| {
                if gpc && signals.gpc {
                    return Verdict {
                        granted: false,
                        by: By::Gpc,
                        id: None,
                        region: None,
                    };
                }
                match stamps.decide(ids) {
                    Some((granted, by, i)) => Verdict {
                        granted,
                        by,
                        id: Some(i),
                        region: None,
                    },
                    None => Verdict {
                        granted: mode == Mode::OptOut,
                        by: By::Mode(mode),
                        id: None,
                        region,
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_codes() {
        for ok in ["US", "US-WA", "GB-ENG", "FR-75", "T1", "US-1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "", "U", "USA", "us-wa", "US-", "US-WASH", "-WA", "US WA", "US-W-A",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
        assert_eq!(Signals::region_code("us-wa").as_deref(), Ok("US-WA"));
        assert!(Signals::region_code("Washington").is_err());
    }

    #[test]
    fn region_mode_prefers_the_subdivision_then_the_country() {
        let c = Consent {
            mode: Mode::OptIn,
            purposes: Vec::new(),
            gpc: Vec::new(),
            regions: vec![("US".into(), Mode::OptOut), ("US-WA".into(), Mode::OptIn)],
        };
        assert_eq!(c.mode_in(Some("US-WA")), (Mode::OptIn, Some(1)));
        assert_eq!(c.mode_in(Some("US-TX")), (Mode::OptOut, Some(0)));
        assert_eq!(c.mode_in(Some("DE")), (Mode::OptIn, None));
        assert_eq!(c.mode_in(None), (Mode::OptIn, None));
    }
}
