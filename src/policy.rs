//! The policy model (version 1): what the validator produces and the
//! compiler consumes. See `validate` for how a file becomes a [`Policy`].

use crate::action::ip::IpMode;
use crate::action::normalize::Normalize;
use crate::action::scan::Scan;
use crate::action::url::UrlRule;
use crate::consent::Consent;
use crate::event::Calls;
use crate::format::Format;
use crate::path::Step;
use crate::structural::Shape;

/// What an allowlist rule does with the value at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the value unchanged, its strings scanned as `scan` says.
    Allow { scan: ScanRule },
    /// Send the value ID-masked (HMAC-SHA256 hex of every scalar leaf),
    /// normalized first if asked.
    Mask(Option<Normalize>),
    /// Send nothing (documents a decision; overrides a rule above).
    Drop,
    /// A URL reduced by the rule at this index of [`Policy::urls`].
    Url(u16),
    /// An IP address truncated or zeroed.
    Ip(IpMode),
    /// A US ZIP code as its first three digits.
    Zip3,
    /// A date as its year.
    Year,
    /// An age, 90 and over as "90+".
    Age,
    /// A string sent as it is only when it has this shape (the default
    /// `context` rules; never written in a policy).
    Shape(Shape),
}

impl Action {
    /// `"allow"` with the policy-wide scan.
    pub const ALLOW: Action = Action::Allow {
        scan: ScanRule::Default,
    };
}

/// Whether an `allow` rule scans its strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanRule {
    /// As the policy's top-level `scan` says (no scan without one).
    Default,
    /// `"scan": false`: never.
    Off,
    /// Its own scan.
    On(Scan),
}

/// What happens to an identity field (`userId`, …) for restricted
/// destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdAction {
    Mask,
    Allow,
    Drop,
}

/// The four identity fields, in the order [`Identifiers`] stores them.
pub const IDENTIFIER_KEYS: [&str; 4] = ["userId", "anonymousId", "groupId", "previousId"];

/// The action for each of [`IDENTIFIER_KEYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identifiers(pub [IdAction; 4]);

impl Default for Identifiers {
    fn default() -> Self {
        Identifiers([IdAction::Mask; 4])
    }
}

/// The allowlists, by the part of the event they govern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    EventProperties,
    UserProperties,
    GroupProperties,
    Context,
    /// Object members of `integrations` (its boolean members always pass).
    Integrations,
}

impl List {
    pub const ALL: [List; 5] = [
        List::EventProperties,
        List::UserProperties,
        List::GroupProperties,
        List::Context,
        List::Integrations,
    ];

    /// The list's key in the policy file.
    pub fn key(self) -> &'static str {
        match self {
            List::EventProperties => "event_properties",
            List::UserProperties => "user_properties",
            List::GroupProperties => "group_properties",
            List::Context => "context",
            List::Integrations => "integrations",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The path as written in the policy.
    pub path: String,
    pub steps: Vec<Step>,
    pub action: Action,
}

/// Rules for each [`List`], indexed by [`List::index`], in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlists(pub [Vec<Rule>; 5]);

impl Allowlists {
    pub fn list(&self, list: List) -> &[Rule] {
        &self.0[list.index()]
    }

    /// These lists with `overrides` added; for the same path the override
    /// wins.
    pub fn merged_with(&self, overrides: &Allowlists) -> Allowlists {
        let mut merged = self.clone();
        for (base, extra) in merged.0.iter_mut().zip(&overrides.0) {
            for rule in extra {
                match base.iter_mut().find(|r| r.steps == rule.steps) {
                    Some(existing) => existing.action = rule.action,
                    None => base.push(rule.clone()),
                }
            }
        }
        merged
    }
}

/// The context entries a policy gets when it names no `context` list:
/// leaves sent only as strings of their [`Shape`] ([`Action::Shape`]), so
/// free text, objects and arrays under them are not sent.
pub const DEFAULT_CONTEXT: [(&str, Shape); 4] = [
    ("library.name", Shape::SdkName),
    ("library.version", Shape::SdkVersion),
    ("locale", Shape::Locale),
    ("timezone", Shape::Timezone),
];

/// What the `events` map does with an event, page or screen name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameRule {
    /// The name is sent as it is.
    Allow,
    /// The event is not sent to the destination at all.
    Drop,
    /// The name is replaced by this one.
    Rename(String),
}

/// An `events` map: names (and `*`, the rule for names not listed) to
/// rules, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(pub Vec<(String, NameRule)>);

/// The key of the rule for names an `events` map does not list.
pub const ANY_NAME: &str = "*";

impl Names {
    /// These rules with `overrides` added; for the same name the override
    /// wins.
    pub fn merged_with(&self, overrides: &Names) -> Names {
        let mut merged = self.clone();
        for (name, rule) in &overrides.0 {
            match merged.0.iter_mut().find(|(n, _)| n == name) {
                Some(existing) => existing.1 = rule.clone(),
                None => merged.0.push((name.clone(), rule.clone())),
            }
        }
        merged
    }

    /// Whether a `*` rule decides names not listed.
    pub fn has_default(&self) -> bool {
        self.0.iter().any(|(n, _)| n == ANY_NAME)
    }
}

/// How the destination is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// The edge forwards events to it.
    ServerSide,
    /// The browser talks to it directly; the edge never forwards to it.
    ClientSide,
}

/// One destination, with its restriction resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub name: String,
    pub connection: Connection,
    /// Where the edge POSTs the sanitized batch (server-side only).
    pub endpoint: Option<String>,
    /// Whether PHI is restricted (ID masking and enforced allowlists).
    pub restricted: bool,
    /// Its Business Associate Agreement, as the policy records it.
    pub baa: Baa,
    /// The destination's own entries (they add to the environment's).
    pub allowlists: Allowlists,
    /// Its own `events` entries (they add to the environment's).
    pub events: Names,
    /// The call types it receives.
    pub calls: Calls,
    /// The name `integrations` routing knows it by (`"Google Analytics
    /// 4"`): its `integration` option, or else its own name.
    pub integration: String,
    /// Its key scope (`mask_scope`): masks with a key derived for it.
    pub mask_scope: Option<String>,
    /// What its endpoint speaks (`format`, default `segment`).
    pub format: Format,
    /// The purposes (of the policy's `consent` section) the visitor must
    /// have granted for it to receive an event; empty: not gated.
    pub consent: Vec<String>,
}

/// A destination's Business Associate Agreement (`baa`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baa {
    /// `false` or absent: no BAA.
    None,
    /// `true`: a BAA, with no date or reference recorded.
    Undated,
    /// `{"signed": …, "ref": …}`: a BAA signed on `signed` (YYYY-MM-DD,
    /// a real calendar date) under the contract reference `reference` (one
    /// line of at most 200 characters).
    Signed { signed: String, reference: String },
}

impl Baa {
    /// Whether a BAA is recorded (in either form): what
    /// `"restrict_phi": false` requires.
    pub fn recorded(&self) -> bool {
        !matches!(self, Baa::None)
    }
}

/// One line of a policy's BAA register: a destination under a BAA, with
/// the date and reference when the policy records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaaEntry {
    pub destination: String,
    pub signed: Option<String>,
    pub reference: Option<String>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub environment: String,
    pub hipaa: bool,
    pub identifiers: Identifiers,
    pub allowlists: Allowlists,
    pub events: Names,
    /// The top-level `scan`: for `allow` rules that set none.
    pub scan: Option<Scan>,
    /// The options of every `url` rule, by [`Action::Url`] index.
    pub urls: Vec<UrlRule>,
    pub destinations: Vec<Destination>,
    /// The `consent` section: purposes, mode, GPC and regions.
    pub consent: Option<Consent>,
    /// What happens to a bot's events (`bots`, default `allow`).
    pub bots: crate::bots::Mode,
}

impl Policy {
    /// The lists that govern `destination`: the environment's with the
    /// destination's own added.
    pub fn lists_for(&self, destination: &Destination) -> Allowlists {
        self.allowlists.merged_with(&destination.allowlists)
    }

    /// The `events` map that governs `destination`.
    pub fn names_for(&self, destination: &Destination) -> Names {
        self.events.merged_with(&destination.events)
    }

    /// The BAA register: every destination (server- or client-side) whose
    /// `baa` is recorded, in policy order.
    pub fn baa_register(&self) -> Vec<BaaEntry> {
        self.destinations
            .iter()
            .filter_map(|d| {
                let (signed, reference) = match &d.baa {
                    Baa::None => return None,
                    Baa::Undated => (None, None),
                    Baa::Signed { signed, reference } => {
                        (Some(signed.clone()), Some(reference.clone()))
                    }
                };
                Some(BaaEntry {
                    destination: d.name.clone(),
                    signed,
                    reference,
                })
            })
            .collect()
    }

    /// Whether some destination the edge forwards to needs the masking key:
    /// every restricted one may mask (its `messageId` is always masked,
    /// whatever the lists say).
    pub fn needs_key(&self) -> bool {
        self.destinations
            .iter()
            .any(|d| d.connection == Connection::ServerSide && d.restricted)
    }
}

/// A problem found in a policy, at a JSON path such as
/// `destinations.ads.connection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl crate::message::Describe for Problem {
    fn describe(&self, out: &mut String) {
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
    }
}

crate::message::display_by_describe!(Problem);

/// Everything validation found: errors make the policy unusable, warnings
/// point at legal but suspicious settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}
