//! Sanitizes Segment-spec events for each destination.
//!
//! An event is read and validated once ([`Event::read`]); then, for each
//! destination, the writer walks only the members it may receive, guided
//! by the compiled tries, and writes the output directly: dropped subtrees
//! are skipped without allocating, allowed ones copied as they stand.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::HashSet;

use crate::action::normalize::Normalize;
use crate::action::scan::{self, Scan, Scanned};
use crate::action::url::UrlRule;
use crate::action::{age, ip, year, zip3, Input, Output};
use crate::bots::{self, Agent, Mode as BotMode, Why};
use crate::compile::{NameTable, Node, Tries};
use crate::consent::{Gate, Signals, Stamps, Verdict};
use crate::credential::{self, Target};
use crate::error::{Error, EventError};
use crate::event::{Calls, Event, Field, Member, NameField};
use crate::format::Format;
use crate::inventory::Named;
use crate::json::{self, Kind, Reader, StrSpan, SyntaxError};
use crate::key_name;
use crate::mask::{transform_tag, KeyError, Masker, Memo};
use crate::policy::{
    Action, BaaEntry, Connection, IdAction, Identifiers, NameRule, Policy, Problem, ScanRule,
};
#[cfg(feature = "full")]
use crate::report::Explanation;
use crate::report::{Done, Reason, Tally, Trail};
use crate::structural::{self, Shape};
use crate::validate::validate_policy;

pub use crate::event::{CallType, MAX_DEPTH, MAX_EVENT_BYTES};

/// Copies a value as it stands (the writer's own fields: type, names,
/// routing flags, allowed identifiers).
const COPY: Action = Action::Allow {
    scan: ScanRule::Off,
};

fn syntax(e: SyntaxError) -> Error {
    Error::Event(crate::event::syntax(e))
}

/// How a destination is served.
#[derive(Debug, Clone)]
enum Route {
    /// The browser talks to it; the edge sends it nothing.
    ClientSide,
    /// Under a BAA with PHI restriction off: the event unchanged.
    Unrestricted,
    /// ID masking, enforced allowlists and the `events` map.
    Restricted(Box<Restricted>),
}

#[derive(Debug, Clone)]
struct Restricted {
    tries: Tries,
    names: NameTable,
}

#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) name: String,
    endpoint: Option<String>,
    integration: String,
    calls: Calls,
    /// Index of its masker (key scope) in [`Sanitizer::maskers`].
    scope: usize,
    route: Route,
    pub(crate) format: Format,
    /// The first destination (index) whose sanitized events are always
    /// the same as this one's (same lists, names and key scope), so a
    /// request writes each event once for all of them.
    pub(crate) class: usize,
    /// Where its requests go, once its credential is set.
    pub(crate) target: Option<Target>,
    /// Per [`MemberKind`], the first restricted destination (index) that
    /// writes members of that kind exactly as this one does (same rules
    /// for them, same key scope): a request copies such members from it.
    pub(crate) shares: [usize; MEMBER_KINDS],
    /// The purposes (indexes in the policy's consent section) the visitor
    /// must have granted for it to receive an event; empty: not gated.
    purposes: Vec<usize>,
    /// Its `events` map, for the ledger's labels (an unrestricted
    /// destination's too, which it does not apply).
    pub(crate) names: NameTable,
}

/// What a top-level member's output depends on, besides the event: the
/// list (or names table) that governs it. Members of the same kind are
/// written alike by destinations with equal rules for that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberKind {
    /// Governed by no list: structural fields, identifiers, and members
    /// the call type never sends.
    Fixed,
    EventProperties,
    UserProperties,
    GroupProperties,
    Context,
    Integrations,
    Names,
}

pub(crate) const MEMBER_KINDS: usize = 7;

impl MemberKind {
    /// The kind of a member of an event of type `call`.
    pub(crate) fn of(field: Field, call: CallType) -> Self {
        match field {
            Field::Name(_) => MemberKind::Names,
            Field::Integrations => MemberKind::Integrations,
            Field::Context => MemberKind::Context,
            Field::Properties
                if matches!(call, CallType::Track | CallType::Page | CallType::Screen) =>
            {
                MemberKind::EventProperties
            }
            Field::Traits if call == CallType::Identify => MemberKind::UserProperties,
            Field::Traits if call == CallType::Group => MemberKind::GroupProperties,
            _ => MemberKind::Fixed,
        }
    }
}

/// One top-level member as written for a destination: where its value
/// stands in that output, the counts it added, and whether it was kept.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MemberOut {
    /// Where its key starts (the opening quote).
    pub(crate) key: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
    tally: Tally,
    pub(crate) kept: bool,
}

/// Members another destination wrote for this event, per member, that the
/// one being written may copy: that output and the member's place in it.
pub(crate) type Reuse<'b> = [Option<(&'b [u8], MemberOut)>];

impl Compiled {
    /// Whether it applies its `events` map (renames included).
    pub(crate) fn applies_names(&self) -> bool {
        matches!(self.route, Route::Restricted(_))
    }

    /// Whether the edge sends it anything.
    pub(crate) fn is_server_side(&self) -> bool {
        !matches!(self.route, Route::ClientSide)
    }
}

/// A policy compiled for sanitizing, with its masking key.
///
/// # Examples
/// ```
/// let policy = r#"{
///   "version": 1, "environment": "production", "hipaa": true,
///   "allowlists": { "event_properties": { "plan": "allow", "email": "mask" } },
///   "events": { "Signed Up": "allow", "*": "drop" },
///   "destinations": { "amplitude": { "connection": "server-side",
///                                    "endpoint": "https://api2.amplitude.example/batch" } }
/// }"#;
/// let key = b"an example key of at least 32 bytes!";
/// let s = phimask::Sanitizer::new(policy, Some(key)).unwrap();
/// let out = s
///     .sanitize_json(
///         r#"{"type":"track","event":"Signed Up","userId":"u1","properties":{"plan":"pro","email":"jane@x.com","diagnosis":"flu"}}"#,
///         "amplitude",
///     )
///     .unwrap()
///     .unwrap();
/// assert!(out.starts_with(r#"{"type":"track","event":"Signed Up","userId":""#));
/// assert!(!out.contains("jane") && !out.contains("diagnosis"));
/// ```
#[derive(Debug, Clone)]
pub struct Sanitizer {
    identifiers: Identifiers,
    /// The default scope's masker first, then one per `mask_scope` name;
    /// empty without a key.
    maskers: Vec<Masker>,
    /// The options of the policy's `url` rules.
    urls: Vec<UrlRule>,
    /// The integration names of all the policy's destinations: the keys
    /// under which a boolean `integrations` member may pass.
    integrations: Vec<String>,
    /// The time `year` compares with for an event without one, when fixed
    /// ([`Sanitizer::fix_now`]); else the clock's.
    now: Option<i64>,
    pub(crate) destinations: Vec<Compiled>,
    /// The consent section, when some destination needs a purpose.
    consent: Option<Gate>,
    /// What happens to a bot's events.
    pub(crate) bots: BotMode,
    /// The policy's BAA register (for evidence reports).
    baa: Vec<BaaEntry>,
    /// What the policy's lists name, all together (for the inventory of
    /// paths none does).
    pub(crate) named: Named,
}

impl Sanitizer {
    /// Validates and compiles `policy` (JSON text) with the masking key.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] listing every problem; [`Error::KeyTooShort`]
    /// for a key under 32 bytes; [`Error::MissingKey`] when no key is given
    /// but some server-side destination restricts PHI (and so may mask).
    pub fn new(policy: &str, key: Option<&[u8]>) -> Result<Self, Error> {
        match validate_policy(policy) {
            (Some(policy), _) => Self::from_policy(&policy, key),
            (None, report) => Err(Error::InvalidPolicy(report.errors)),
        }
    }

    /// Loads a policy prepared by [`crate::prepare_policy`] and compiles it
    /// with the masking key.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] when the bytes are not a prepared policy of
    /// this engine; otherwise as [`Sanitizer::new`], for the key.
    pub fn from_prepared(prepared: &[u8], key: Option<&[u8]>) -> Result<Self, Error> {
        match crate::prepared::load(prepared) {
            Some(policy) => Self::from_policy(&policy, key),
            None => Err(Error::InvalidPolicy(vec![Problem {
                path: String::new(),
                message: "not a policy prepared by this build of phimask (prepare it again with check-policy)".into(),
            }])),
        }
    }

    /// Compiles a validated policy with the masking key.
    ///
    /// # Errors
    /// As [`Sanitizer::new`], for the key.
    pub fn from_policy(policy: &Policy, key: Option<&[u8]>) -> Result<Self, Error> {
        let base = match key {
            Some(key) => Some(Masker::new(key).map_err(|KeyError::TooShort| Error::KeyTooShort)?),
            None if policy.needs_key() => return Err(Error::MissingKey),
            None => None,
        };
        let mut scopes: Vec<Option<String>> = vec![None];
        for d in &policy.destinations {
            if !scopes.contains(&d.mask_scope) {
                scopes.push(d.mask_scope.clone());
            }
        }
        let maskers = match &base {
            Some(base) => scopes.iter().map(|s| scoped(base, s.as_deref())).collect(),
            None => Vec::new(),
        };
        // Destinations whose output is the same for every event: unrestricted
        // ones all, restricted ones with equal lists, names and scope.
        let same = |a: &crate::policy::Destination, b: &crate::policy::Destination| {
            a.connection == Connection::ServerSide
                && b.connection == Connection::ServerSide
                && a.restricted == b.restricted
                && (!a.restricted
                    || (a.mask_scope == b.mask_scope
                        && policy.lists_for(a) == policy.lists_for(b)
                        && policy.names_for(a) == policy.names_for(b)))
        };
        let gate = policy
            .consent
            .as_ref()
            .filter(|_| policy.destinations.iter().any(|d| !d.consent.is_empty()))
            .map(Gate::new);
        let mut destinations: Vec<Compiled> = policy
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| Compiled {
                format: d.format,
                class: policy.destinations[..i]
                    .iter()
                    .position(|other| same(other, d))
                    .unwrap_or(i),
                target: None,
                shares: [usize::MAX; MEMBER_KINDS],
                name: d.name.clone(),
                endpoint: d.endpoint.clone(),
                integration: d.integration.clone(),
                calls: d.calls,
                scope: scopes.iter().position(|s| *s == d.mask_scope).unwrap_or(0),
                purposes: d
                    .consent
                    .iter()
                    // A purpose the section lacks (never, once validated)
                    // is one no event can grant: the gate stays shut.
                    .map(|p| {
                        gate.as_ref()
                            .and_then(|g| g.purpose(p))
                            .unwrap_or(usize::MAX)
                    })
                    .collect(),
                names: NameTable::new(&policy.names_for(d)),
                route: match (d.connection, d.restricted) {
                    (Connection::ClientSide, _) => Route::ClientSide,
                    (Connection::ServerSide, false) => Route::Unrestricted,
                    (Connection::ServerSide, true) => Route::Restricted(Box::new(Restricted {
                        tries: Tries::new(&policy.lists_for(d), policy.scan),
                        names: NameTable::new(&policy.names_for(d)),
                    })),
                },
            })
            .collect();
        for i in 0..destinations.len() {
            destinations[i].shares = shares(&destinations, i);
        }
        Ok(Sanitizer {
            identifiers: policy.identifiers,
            maskers,
            urls: policy.urls.clone(),
            integrations: policy
                .destinations
                .iter()
                .map(|d| d.integration.clone())
                .collect(),
            now: None,
            destinations,
            consent: gate,
            bots: policy.bots,
            baa: policy.baa_register(),
            named: crate::compile::named(policy),
        })
    }

    /// Fixes the time (milliseconds since the Unix epoch) that `year`
    /// compares with for events that carry no `timestamp` or `receivedAt`
    /// of their own, instead of the clock's: for reproducible output
    /// (tests, replays of archives).
    pub fn fix_now(&mut self, millis: i64) {
        self.now = Some(millis);
    }

    /// Names of the server-side destinations the edge forwards to, in
    /// policy order.
    pub fn destinations(&self) -> impl Iterator<Item = &str> {
        self.destinations
            .iter()
            .filter(|d| d.is_server_side())
            .map(|d| d.name.as_str())
    }

    /// The policy's BAA register: every destination (client-side ones
    /// too) under a BAA, in policy order, with its signing date and
    /// contract reference when the policy records them.
    pub fn baa_register(&self) -> &[BaaEntry] {
        &self.baa
    }

    /// The format a destination's endpoint speaks.
    pub fn format(&self, destination: &str) -> Option<Format> {
        Some(self.find(destination).ok()?.format)
    }

    /// Whether a destination's events are restricted (`restrict_phi`):
    /// `Some(false)` for one under a BAA, whose events keep their PHI.
    pub fn restricts(&self, destination: &str) -> Option<bool> {
        let d = self.find(destination).ok()?;
        Some(matches!(d.route, Route::Restricted(_)))
    }

    /// The endpoint of a destination, if it has one.
    pub fn endpoint(&self, destination: &str) -> Option<&str> {
        self.find(destination).ok()?.endpoint.as_deref()
    }

    /// Checks a destination's credential (its `AUTH_<NAME>` secret) for its
    /// format and places it: the URL, `Authorization` header and body key
    /// its requests carry from now on.
    ///
    /// # Errors
    /// [`Error::UnknownDestination`], or [`Error::InvalidCredential`]
    /// saying what the secret must be (never quoting it).
    pub fn connect(&mut self, destination: &str, secret: Option<&str>) -> Result<&Target, Error> {
        let index = self
            .destinations
            .iter()
            .position(|d| d.name == destination)
            .ok_or_else(|| Error::UnknownDestination(destination.to_owned()))?;
        let dest = &mut self.destinations[index];
        let endpoint = dest.endpoint.as_deref().unwrap_or("");
        let target = credential::target(dest.format, endpoint, secret).map_err(|message| {
            Error::InvalidCredential {
                destination: destination.to_owned(),
                message,
            }
        })?;
        Ok(dest.target.insert(target))
    }

    fn find(&self, destination: &str) -> Result<&Compiled, Error> {
        self.destinations
            .iter()
            .find(|d| d.name == destination)
            .ok_or_else(|| Error::UnknownDestination(destination.to_owned()))
    }

    /// Sanitizes one event (JSON text) for `destination`: the JSON text to
    /// send, or `None` when nothing may be sent (a client-side destination,
    /// a call type it does not take, an event `integrations` does not
    /// route to it or its `events` map drops).
    ///
    /// # Errors
    /// [`Error::UnknownDestination`], or [`Error::Event`] saying why the
    /// event was refused; a refused event is sent to no destination.
    pub fn sanitize_json(&self, event: &str, destination: &str) -> Result<Option<String>, Error> {
        Ok(self
            .sanitize_json_tallied(event, destination, &Signals::default())?
            .0)
    }

    /// As [`Sanitizer::sanitize_json`], for a request with these signals
    /// (Global Privacy Control, the visitor's region): `None` also when
    /// the destination needs a purpose the visitor has not granted.
    ///
    /// # Errors
    /// As [`Sanitizer::sanitize_json`].
    pub fn sanitize_json_with(
        &self,
        event: &str,
        destination: &str,
        signals: &Signals,
    ) -> Result<Option<String>, Error> {
        Ok(self.sanitize_json_tallied(event, destination, signals)?.0)
    }

    /// As [`Sanitizer::sanitize_json_with`], with the counts of paths
    /// dropped, masked and transformed.
    ///
    /// # Errors
    /// As [`Sanitizer::sanitize_json`].
    pub fn sanitize_json_tallied(
        &self,
        event: &str,
        destination: &str,
        signals: &Signals,
    ) -> Result<(Option<String>, Tally), Error> {
        self.sanitize_json_from(event, destination, signals, &Agent::default())
    }

    /// As [`Sanitizer::sanitize_json_tallied`], for a request from this
    /// agent: under the policy's `bots`, a bot's event is sent nowhere
    /// (`drop`) or carries `context.bot: true` (`flag`).
    ///
    /// # Errors
    /// As [`Sanitizer::sanitize_json`].
    pub fn sanitize_json_from(
        &self,
        event: &str,
        destination: &str,
        signals: &Signals,
        agent: &Agent,
    ) -> Result<(Option<String>, Tally), Error> {
        let dest = self.find(destination)?;
        let event = Event::read(event.as_bytes())?;
        let (bot, text) = self.judged(&event, self.request_bot(agent), &mut None)?;
        if bot.is_some() && self.bots == BotMode::Drop {
            return Ok((None, Tally::default()));
        }
        let flagged;
        let event = match &text {
            Some(text) => {
                flagged = Event::read_validated(text.as_bytes())?;
                &flagged
            }
            None => &event,
        };
        let verdicts = self.verdicts(event, signals);
        let (out, tally, _) = self.write(event, dest, &verdicts, None, None)?;
        Ok((out, tally))
    }

    /// Whether the request is a bot's, by its agent (`None` unless the
    /// policy looks for bots).
    pub(crate) fn request_bot(&self, agent: &Agent) -> Option<Why> {
        match self.bots {
            BotMode::Allow => None,
            BotMode::Flag | BotMode::Drop => agent.judge(),
        }
    }

    /// Whether an event is a bot's (the request's verdict `request`, else
    /// its own `context.userAgent`), and under `flag` the event's text with
    /// phimask's `context.bot` (`None`: as it is). `last` remembers the
    /// previous event's user agent and verdict: a batch's events mostly
    /// share one.
    ///
    /// # Errors
    /// Only for an event not read before (never for a validated one).
    #[allow(clippy::type_complexity)]
    pub(crate) fn judged(
        &self,
        event: &Event<'_>,
        request: Option<Why>,
        last: &mut Option<(Vec<u8>, Option<&'static str>)>,
    ) -> Result<(Option<Why>, Option<String>), Error> {
        if self.bots == BotMode::Allow {
            return Ok((None, None));
        }
        let context = bots::Context::read(event).map_err(syntax)?;
        let bot = request.or_else(|| {
            let ua = context.user_agent.as_deref()?;
            let token = match last {
                Some((seen, token)) if seen.as_slice() == ua => *token,
                _ => {
                    let token = bots::token(ua);
                    *last = Some((ua.to_vec(), token));
                    token
                }
            };
            token.map(Why::EventUserAgent)
        });
        let text = match self.bots {
            BotMode::Flag => bots::flagged(event, bot.is_some(), context.bot).map_err(syntax)?,
            _ => None,
        };
        Ok((bot, text))
    }

    /// The decision on each purpose of the consent section for an event
    /// and a request's signals (empty when no destination needs one).
    pub(crate) fn verdicts(&self, event: &Event<'_>, signals: &Signals) -> Vec<Verdict> {
        let Some(gate) = &self.consent else {
            return Vec::new();
        };
        match Stamps::read(event) {
            Ok(stamps) => gate.decide(&stamps, signals),
            // Never for a validated event; in doubt, nothing is granted.
            Err(_) => Vec::new(),
        }
    }

    /// For every destination of the policy, whether the event is sent,
    /// why, and which paths are dropped, masked or transformed (paths
    /// only, never values).
    ///
    /// # Errors
    /// [`Error::Event`] saying why the event is refused (for every
    /// destination).
    #[cfg(feature = "full")]
    pub fn explain(&self, event: &str) -> Result<Vec<Explanation>, Error> {
        self.explain_with(event, &Signals::default())
    }

    /// As [`Sanitizer::explain`], for a request with these signals; a
    /// destination that needs purposes is told the decision on each.
    ///
    /// # Errors
    /// As [`Sanitizer::explain`].
    #[cfg(feature = "full")]
    pub fn explain_with(&self, event: &str, signals: &Signals) -> Result<Vec<Explanation>, Error> {
        self.explain_from(event, signals, &Agent::default())
    }

    /// As [`Sanitizer::explain_with`], for a request from this agent: a
    /// bot's event is explained as the policy's `bots` treats it, with
    /// why it is a bot's (never the user agent itself).
    ///
    /// # Errors
    /// As [`Sanitizer::explain`].
    #[cfg(feature = "full")]
    pub fn explain_from(
        &self,
        event: &str,
        signals: &Signals,
        agent: &Agent,
    ) -> Result<Vec<Explanation>, Error> {
        let event = Event::read(event.as_bytes())?;
        let (bot, text) = self.judged(&event, self.request_bot(agent), &mut None)?;
        let dropped = bot.is_some() && self.bots == BotMode::Drop;
        let flagged;
        let event = match &text {
            Some(text) => {
                flagged = Event::read_validated(text.as_bytes())?;
                &flagged
            }
            None => &event,
        };
        let verdicts = self.verdicts(event, signals);
        self.destinations
            .iter()
            .map(|dest| {
                let (_, _, (reason, trail)) = if dropped {
                    (None, Tally::default(), (Reason::Bot, None))
                } else {
                    self.write(event, dest, &verdicts, Some(Trail::default()), None)?
                };
                let consent = dest
                    .purposes
                    .iter()
                    .filter_map(|&p| {
                        let verdict = verdicts.get(p).copied().unwrap_or_else(Verdict::unknown);
                        Some(self.consent.as_ref()?.decision(p, &verdict))
                    })
                    .collect();
                Ok(Explanation {
                    destination: dest.name.clone(),
                    reason,
                    paths: trail.map(|t| t.paths).unwrap_or_default(),
                    consent,
                    bot,
                })
            })
            .collect()
    }

    /// Writes an event read by [`Event::read`] for one destination; with
    /// a trail, notes the paths too.
    #[allow(clippy::type_complexity)]
    fn write(
        &self,
        event: &Event<'_>,
        dest: &Compiled,
        verdicts: &[Verdict],
        trail: Option<Trail>,
        memo: Option<&RefCell<Memo>>,
    ) -> Result<(Option<String>, Tally, (Reason, Option<Trail>)), Error> {
        if let Err(reason) = self.gate(event, dest, verdicts) {
            return Ok((None, Tally::default(), (reason, None)));
        }
        let (out, tally, reason, trail) =
            self.write_sent(event, dest, trail, memo, &[], None, Vec::new())?;
        Ok((Some(out), tally, (reason, trail)))
    }

    /// Whether `dest` receives the event at all, or why not; `verdicts`
    /// are [`Sanitizer::verdicts`] of the event.
    pub(crate) fn gate(
        &self,
        event: &Event<'_>,
        dest: &Compiled,
        verdicts: &[Verdict],
    ) -> Result<(), Reason> {
        if !dest.calls.has(event.call) {
            return Err(Reason::CallType);
        }
        if !event.routed_to(&dest.integration) {
            return Err(Reason::Routing);
        }
        match &dest.route {
            Route::ClientSide => return Err(Reason::ClientSide),
            Route::Restricted(r) if dropped_by_name(event, &r.names) => {
                return Err(Reason::EventName)
            }
            _ => {}
        }
        // A purpose without a verdict is not granted.
        let granted = |p: &usize| verdicts.get(*p).is_some_and(|v| v.granted);
        if dest.purposes.iter().all(granted) {
            Ok(())
        } else {
            Err(Reason::Consent)
        }
    }

    /// Writes the event for a destination [`Sanitizer::gate`] let through;
    /// masked values are looked up in (and added to) `memo`.
    ///
    /// Members `reuse` holds are copied from another destination's output
    /// instead of being written again; with `record`, where each member
    /// stands in this output is noted for the next. The output is written
    /// into `buf` (emptied first: a buffer kept from an earlier event
    /// saves allocating one per event).
    // Each argument is one of the writer's inputs; a struct for them
    // would only be taken apart here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_sent(
        &self,
        event: &Event<'_>,
        dest: &Compiled,
        trail: Option<Trail>,
        memo: Option<&RefCell<Memo>>,
        reuse: &Reuse<'_>,
        record: Option<&mut Vec<MemberOut>>,
        mut buf: Vec<u8>,
    ) -> Result<(String, Tally, Reason, Option<Trail>), Error> {
        buf.clear();
        let restricted = match &dest.route {
            Route::Restricted(r) => r,
            _ => {
                // Read from a &str, so UTF-8; the check keeps this panic-free.
                let text = event.text();
                let text = std::str::from_utf8(&text).map_err(|_| EventError::NotObject)?;
                // An empty buffer is UTF-8: only its room is kept.
                let mut out = String::from_utf8(buf).unwrap_or_default();
                out.push_str(text.trim());
                return Ok((out, Tally::default(), Reason::Unrestricted, None));
            }
        };
        buf.reserve(event.len());
        let mut w = Writer {
            src: event.src,
            out: buf,
            masker: self.maskers.get(dest.scope).map(|m| (dest.scope, m)),
            memo,
            urls: &self.urls,
            integrations: &self.integrations,
            event,
            now: self.now,
            event_year: OnceCell::new(),
            tally: Tally::default(),
            trail,
        };
        w.event(event, restricted, &self.identifiers, reuse, record)?;
        // The output holds input slices cut at JSON token boundaries and
        // ASCII, so it is UTF-8; the check only keeps this panic-free.
        let out = String::from_utf8(w.out).map_err(|_| Error::Event(EventError::NotObject))?;
        Ok((out, w.tally, Reason::Sanitized, w.trail))
    }
}

/// For each member kind, the first restricted destination (up to `i`)
/// whose rules for it and key scope equal destination `i`'s; `usize::MAX`
/// for a destination that is not restricted.
fn shares(destinations: &[Compiled], i: usize) -> [usize; MEMBER_KINDS] {
    let mut out = [usize::MAX; MEMBER_KINDS];
    let Route::Restricted(mine) = &destinations[i].route else {
        return out;
    };
    let same = |kind: MemberKind, a: &Restricted, b: &Restricted| match kind {
        MemberKind::Fixed => true,
        MemberKind::EventProperties => a.tries.event == b.tries.event,
        MemberKind::UserProperties => a.tries.user == b.tries.user,
        MemberKind::GroupProperties => a.tries.group == b.tries.group,
        MemberKind::Context => a.tries.context == b.tries.context,
        MemberKind::Integrations => a.tries.integrations == b.tries.integrations,
        MemberKind::Names => a.names == b.names,
    };
    let kinds = [
        MemberKind::Fixed,
        MemberKind::EventProperties,
        MemberKind::UserProperties,
        MemberKind::GroupProperties,
        MemberKind::Context,
        MemberKind::Integrations,
        MemberKind::Names,
    ];
    for kind in kinds {
        out[kind as usize] = destinations[..=i]
            .iter()
            .position(|d| match &d.route {
                Route::Restricted(other) => {
                    d.scope == destinations[i].scope && same(kind, other, mine)
                }
                _ => false,
            })
            .unwrap_or(i);
    }
    out
}

/// The masker of a key scope: the deployment key's own for the default
/// scope, else keyed with HMAC-SHA256(key, "phimask-scope:" + NAME).
fn scoped(base: &Masker, scope: Option<&str>) -> Masker {
    match scope {
        None => base.clone(),
        Some(name) => {
            let key = base.digest(["phimask-scope:", name].concat().as_bytes());
            Masker::with_any_key(&key)
        }
    }
}

/// Whether the `events` map drops the event: one of its names (those the
/// call type has) is ruled `drop`.
fn dropped_by_name(event: &Event<'_>, names: &NameTable) -> bool {
    [NameField::Event, NameField::Name, NameField::Category]
        .into_iter()
        .filter(|which| which.belongs_to(event.call))
        .filter_map(|which| event.name(which))
        .any(|name| *names.rule(name) == NameRule::Drop)
}

/// The kinds of transform the request's memo remembers, and the bit that
/// tells a number's text from a string's content.
const TAG_URL: u8 = 1;
const TAG_IP: u8 = 2;
const TAG_SCAN: u8 = 3;
const TAG_NUMBER: u64 = 1 << 47;

/// Writes what a restricted destination may receive of one event.
struct Writer<'a> {
    src: &'a [u8],
    out: Vec<u8>,
    /// The key scope's index and masker.
    masker: Option<(usize, &'a Masker)>,
    /// Masked values already computed in this request.
    memo: Option<&'a RefCell<Memo>>,
    urls: &'a [UrlRule],
    /// The integration names of the policy's destinations.
    integrations: &'a [String],
    event: &'a Event<'a>,
    /// The fixed time, if any ([`Sanitizer::fix_now`]).
    now: Option<i64>,
    /// The year `year` rules compare with, worked out when first needed.
    event_year: OnceCell<Option<i64>>,
    tally: Tally,
    /// The paths, when explaining.
    trail: Option<Trail>,
}

impl<'a> Writer<'a> {
    /// The year of the event's time (see [`year::event_year`]).
    fn event_year(&self) -> Option<i64> {
        *self
            .event_year
            .get_or_init(|| year::event_year(self.event, || self.now.or_else(year::clock)))
    }

    /// Counts what was done at the current path (and notes the path).
    fn note(&mut self, done: Done) {
        match done {
            Done::Dropped => self.tally.dropped += 1,
            Done::Masked => self.tally.masked += 1,
            Done::Transformed => self.tally.transformed += 1,
        }
        if let Some(t) = self.trail() {
            t.note(done);
        }
    }

    /// The trail, when explaining; only the whole package explains, so
    /// the Worker's build carries none of its code.
    fn trail(&mut self) -> Option<&mut Trail> {
        if cfg!(feature = "full") {
            self.trail.as_mut()
        } else {
            None
        }
    }

    /// Steps the trail into member `name` (when explaining).
    fn enter(&mut self, name: &[u8]) -> usize {
        self.trail().map_or(0, |t| t.enter(name))
    }

    fn enter_elements(&mut self) -> usize {
        self.trail().map_or(0, Trail::enter_elements)
    }

    fn leave(&mut self, mark: usize) {
        if let Some(t) = self.trail() {
            t.leave(mark);
        }
    }

    /// Writes the event, member by member, in the order of the input.
    fn event(
        &mut self,
        event: &Event<'a>,
        dest: &Restricted,
        ids: &Identifiers,
        reuse: &Reuse<'_>,
        mut record: Option<&mut Vec<MemberOut>>,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        for (i, m) in event.members.iter().enumerate() {
            // Event::read validated all of it.
            let mut r = Reader::validated(self.src, m.value, MAX_DEPTH);
            let mark = self.out.len();
            let at = match self.trail() {
                Some(_) => self.enter(&r.decode(m.key).map_err(syntax)?),
                None => 0,
            };
            self.key(m.key);
            let (start, before) = (self.out.len(), self.tally);
            let copied = reuse
                .get(i)
                .copied()
                .flatten()
                .and_then(|(out, done)| Some((out.get(done.start..done.end)?, done)));
            let kept = match copied {
                Some((bytes, done)) => {
                    self.out.extend_from_slice(bytes);
                    self.tally.add(done.tally);
                    done.kept
                }
                None => self.member(&mut r, m, event, dest, ids)?,
            };
            if let Some(record) = record.as_deref_mut() {
                record.push(MemberOut {
                    key: start - 1 - (m.key.end - m.key.start),
                    start,
                    end: self.out.len(),
                    tally: self.tally.since(before),
                    kept,
                });
            }
            if !kept {
                self.out.truncate(mark);
                self.note(Done::Dropped);
            }
            self.leave(at);
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Writes `,"key":` (no comma right after an opening brace).
    fn key(&mut self, key: StrSpan) {
        if self.out.last() != Some(&b'{') {
            self.out.push(b',');
        }
        self.out.extend_from_slice(&self.src[key.start..key.end]);
        self.out.push(b':');
    }

    /// Writes one top-level member's value as the destination may receive
    /// it; `false` when nothing of it may be sent.
    fn member(
        &mut self,
        r: &mut Reader<'a>,
        m: &Member,
        event: &Event<'a>,
        dest: &Restricted,
        ids: &Identifiers,
    ) -> Result<bool, Error> {
        let tries = &dest.tries;
        match m.field {
            Field::Type => self.apply(r, Some(COPY), 2),
            Field::MessageId => self.message_id(r, m.kind),
            Field::Timestamp => self.text_if(r, m.kind, structural::rfc3339),
            Field::Channel => self.text_if(r, m.kind, structural::channel),
            Field::Version => self.version(r, m.kind),
            Field::Name(which) => self.name(r, m.kind, event, which, &dest.names),
            Field::Integrations => self.integrations(r, m.kind, &tries.integrations),
            Field::Identifier(i) => {
                let action = match ids.0[i] {
                    IdAction::Mask => Some(Action::Mask(None)),
                    IdAction::Allow => Some(COPY),
                    IdAction::Drop => None,
                };
                let scalar = matches!(m.kind, Kind::String | Kind::Number | Kind::Null);
                self.apply(r, action.filter(|_| scalar), 2)
            }
            Field::Properties => match event.call {
                CallType::Track | CallType::Page | CallType::Screen => {
                    self.walk(r, Some(&tries.event), None, 2)
                }
                _ => Ok(false),
            },
            Field::Traits => match event.call {
                CallType::Identify => self.walk(r, Some(&tries.user), None, 2),
                CallType::Group => self.walk(r, Some(&tries.group), None, 2),
                _ => Ok(false),
            },
            Field::Context => self.walk(r, Some(&tries.context), None, 2),
            Field::Other => Ok(false),
        }
    }

    /// `messageId`: always masked (whatever it holds, it could be free
    /// text), so destinations still deduplicate on it; not sent when it is
    /// not a string, number or boolean.
    fn message_id(&mut self, r: &mut Reader<'a>, kind: Kind) -> Result<bool, Error> {
        match kind {
            Kind::String | Kind::Number | Kind::True | Kind::False => {
                self.apply(r, Some(Action::Mask(None)), 2)
            }
            _ => Ok(false),
        }
    }

    /// A string whose decoded text passes `fits`, as written; else nothing.
    fn text_if(
        &mut self,
        r: &mut Reader<'a>,
        kind: Kind,
        fits: fn(&[u8]) -> bool,
    ) -> Result<bool, Error> {
        if kind != Kind::String {
            return Ok(false);
        }
        let span = r.string().map_err(syntax)?;
        if !fits(&r.decode(span).map_err(syntax)?) {
            return Ok(false);
        }
        self.out.extend_from_slice(&self.src[span.start..span.end]);
        Ok(true)
    }

    /// `version`: a small integer only.
    fn version(&mut self, r: &mut Reader<'a>, kind: Kind) -> Result<bool, Error> {
        if kind != Kind::Number {
            return Ok(false);
        }
        let (start, end) = r.number().map_err(syntax)?;
        let text = &self.src[start..end];
        let fits = structural::version(text);
        if fits {
            self.out.extend_from_slice(text);
        }
        Ok(fits)
    }

    /// `event` of a track, `name` and `category` of a page or screen, as
    /// the `events` map says (a `drop` was handled before writing began).
    fn name(
        &mut self,
        r: &mut Reader<'a>,
        kind: Kind,
        event: &Event<'a>,
        which: NameField,
        names: &NameTable,
    ) -> Result<bool, Error> {
        let name = event.name(which).filter(|_| which.belongs_to(event.call));
        let (Some(name), Kind::String) = (name, kind) else {
            return Ok(false);
        };
        match names.rule(name) {
            NameRule::Allow => self.apply(r, Some(COPY), 2),
            NameRule::Rename(to) => {
                json::write_string(&mut self.out, to);
                r.skip_value(2).map_err(syntax)?;
                self.note(Done::Transformed);
                Ok(true)
            }
            NameRule::Drop => Ok(false),
        }
    }

    /// `integrations`: boolean members under `All` or one of the policy's
    /// integration names, and object members only as the `integrations`
    /// list names them.
    fn integrations(&mut self, r: &mut Reader<'a>, kind: Kind, node: &Node) -> Result<bool, Error> {
        if kind != Kind::Object {
            return Ok(false);
        }
        let names = self.integrations;
        self.object(
            r,
            2,
            |_| false,
            |w, r, name| match r.peek_kind().map_err(syntax)? {
                // A switch, under a name routing knows, and never by a list rule.
                Kind::True | Kind::False => {
                    let switch = structural::integration_switch(name, names);
                    w.apply(r, Some(COPY).filter(|_| switch), 3)
                }
                _ => w.walk(r, node.child(name), None, 3),
            },
        )?;
        Ok(true)
    }

    /// Writes the object at `r`, each member through `each` (which writes
    /// its value and says whether it did; members it refuses are left out).
    /// A key for which `masked` holds is masked unless it looks like a
    /// field name (DESIGN's "Keys").
    fn object(
        &mut self,
        r: &mut Reader<'a>,
        depth: usize,
        masked: impl Fn(&[u8]) -> bool,
        mut each: impl FnMut(&mut Self, &mut Reader<'a>, &[u8]) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        r.begin_object(depth).map_err(syntax)?;
        self.out.push(b'{');
        let mut first = true;
        while let Some(key) = r.next_key(&mut first).map_err(syntax)? {
            let mark = self.out.len();
            let name: Cow<'a, [u8]> = r.decode(key).map_err(syntax)?;
            let at = self.enter(&name);
            if masked(&name) && !key_name::looks_like_field_name(&name) {
                // The key is the event's, under `mask`: it may be PHI.
                if self.out.last() != Some(&b'{') {
                    self.out.push(b',');
                }
                self.hex(&name)?;
                self.out.push(b':');
            } else {
                self.key(key);
            }
            if !each(self, r, &name)? {
                self.out.truncate(mark);
                self.note(Done::Dropped);
            }
            self.leave(at);
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Writes the array at `r`, each element through `each` (an element it
    /// refuses becomes `null`, so the others keep their positions).
    fn array(
        &mut self,
        r: &mut Reader<'a>,
        depth: usize,
        mut each: impl FnMut(&mut Self, &mut Reader<'a>) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        r.begin_array(depth).map_err(syntax)?;
        self.out.push(b'[');
        let mut first = true;
        let at = self.enter_elements();
        while r.next_element(&mut first).map_err(syntax)? {
            if self.out.last() != Some(&b'[') {
                self.out.push(b',');
            }
            if !each(self, r)? {
                self.out.extend_from_slice(b"null");
                self.note(Done::Dropped);
            }
        }
        self.leave(at);
        self.out.push(b']');
        Ok(())
    }

    /// Writes the value at `r` as the rules allow: `node` is the trie node
    /// at this path (if any), `inherited` the action of the nearest rule
    /// above. Returns whether anything was written (else the caller drops
    /// the member, or writes `null` for an array element).
    fn walk(
        &mut self,
        r: &mut Reader<'a>,
        node: Option<&Node>,
        inherited: Option<Action>,
        depth: usize,
    ) -> Result<bool, Error> {
        let action = node.and_then(|n| n.action).or(inherited);
        let Some(node) = node.filter(|n| !n.is_leaf()) else {
            return self.apply(r, action, depth);
        };
        match r.peek_kind().map_err(syntax)? {
            Kind::Object if node.has_keys() => {
                // A key the policy does not name is the event's own: under
                // an inherited `mask` it is masked like its value; under a
                // value transform (url, ip, zip3, year, age), which cannot
                // mask it, its member is dropped unless it looks like a
                // field name. Under `allow` it passes as the value does.
                let masks = matches!(action, Some(Action::Mask(_)));
                let transforms = matches!(
                    action,
                    Some(
                        Action::Url(_) | Action::Ip(_) | Action::Zip3 | Action::Year | Action::Age
                    )
                );
                self.object(
                    r,
                    depth,
                    |name| masks && node.child(name).is_none(),
                    |w, r, name| {
                        let child = node.child(name);
                        if transforms && child.is_none() && !key_name::looks_like_field_name(name) {
                            r.skip_value(depth + 1).map_err(syntax)?;
                            return Ok(false);
                        }
                        w.walk(r, child, action, depth + 1)
                    },
                )?;
                Ok(true)
            }
            Kind::Array if node.elements.is_some() => {
                let elements = node.elements.as_deref();
                self.array(r, depth, |w, r| w.walk(r, elements, action, depth + 1))?;
                Ok(true)
            }
            // The shape does not fit the deeper rules: the nearest rule
            // above covers the whole value, or nothing does.
            _ => self.apply(r, action, depth),
        }
    }

    /// Writes the whole value at `r` under one action (or skips it);
    /// whether anything was written.
    fn apply(
        &mut self,
        r: &mut Reader<'a>,
        action: Option<Action>,
        depth: usize,
    ) -> Result<bool, Error> {
        match action {
            Some(Action::Allow { scan }) => match scan {
                ScanRule::On(scan) => self.scanned(r, depth, scan),
                ScanRule::Default | ScanRule::Off => {
                    let (start, end) = r.skip_value(depth).map_err(syntax)?;
                    self.out.extend_from_slice(&self.src[start..end]);
                    Ok(true)
                }
            },
            Some(Action::Mask(normalize)) => self.mask(r, depth, normalize),
            Some(Action::Url(i)) => {
                let rule = self.urls.get(usize::from(i));
                let tag = transform_tag(TAG_URL, u64::from(i));
                self.transform(r, depth, Some(tag), &|v| match (v, rule) {
                    (Input::Text(text), Some(rule)) => rule.apply(text).map(Output::Text),
                    _ => None,
                })
            }
            Some(Action::Ip(mode)) => {
                let tag = transform_tag(TAG_IP, mode as u64);
                self.transform(r, depth, Some(tag), &|v| ip::apply(v, mode))
            }
            // Cheaper to compute than to look up.
            Some(Action::Zip3) => self.transform(r, depth, None, &zip3::apply),
            Some(Action::Year) => {
                let event_year = self.event_year();
                self.transform(r, depth, None, &|v| year::apply(v, event_year))
            }
            Some(Action::Shape(shape)) => self.shaped(r, depth, shape),
            Some(Action::Age) => self.transform(r, depth, None, &age::apply),
            Some(Action::Drop) | None => {
                r.skip_value(depth).map_err(syntax)?;
                Ok(false)
            }
        }
    }

    /// A string of the shape, as written; anything else is not sent.
    fn shaped(&mut self, r: &mut Reader<'a>, depth: usize, shape: Shape) -> Result<bool, Error> {
        if r.peek_kind().map_err(syntax)? != Kind::String {
            r.skip_value(depth).map_err(syntax)?;
            return Ok(false);
        }
        let span = r.string().map_err(syntax)?;
        if !shape.fits(&r.decode(span).map_err(syntax)?) {
            return Ok(false);
        }
        self.out.extend_from_slice(&self.src[span.start..span.end]);
        Ok(true)
    }

    /// A string or number through a value action; anything else, or a value
    /// the action cannot take, is not sent. With a `tag`, each distinct
    /// value is transformed once per request.
    fn transform(
        &mut self,
        r: &mut Reader<'a>,
        depth: usize,
        tag: Option<u64>,
        action: &dyn Fn(Input<'_>) -> Option<Output>,
    ) -> Result<bool, Error> {
        let put = |out: &mut Vec<u8>, output: Option<Output>| match output {
            Some(Output::Text(text)) => {
                json::write_string(out, &text);
                1
            }
            Some(Output::Number(number)) => {
                out.extend_from_slice(number.as_bytes());
                1
            }
            None => 0,
        };
        let code = match r.peek_kind().map_err(syntax)? {
            Kind::String => {
                let span = r.string().map_err(syntax)?;
                let text = r.decode(span).map_err(syntax)?;
                self.remembered(tag, &text, &mut |out| put(out, action(Input::Text(&text))))
            }
            Kind::Number => {
                let (start, end) = r.number().map_err(syntax)?;
                let number = &self.src[start..end];
                let tag = tag.map(|t| t | TAG_NUMBER);
                self.remembered(tag, number, &mut |out| {
                    put(out, action(Input::Number(number)))
                })
            }
            _ => {
                r.skip_value(depth).map_err(syntax)?;
                0
            }
        };
        if code == 0 {
            return Ok(false);
        }
        self.note(Done::Transformed);
        Ok(true)
    }

    /// Appends what `compute` appends for `bytes` (and returns its code),
    /// through the request's memo when there is one and `tag` is set.
    fn remembered(
        &mut self,
        tag: Option<u64>,
        bytes: &[u8],
        compute: &mut dyn FnMut(&mut Vec<u8>) -> u8,
    ) -> u8 {
        match (self.memo, tag) {
            (Some(memo), Some(tag)) => memo.borrow_mut().write(tag, bytes, &mut self.out, compute),
            _ => compute(&mut self.out),
        }
    }

    /// The value with its strings — keys included — and numbers scanned:
    /// matches redacted or masked, or the string or number (a key: its
    /// member) dropped.
    fn scanned(&mut self, r: &mut Reader<'a>, depth: usize, scan: Scan) -> Result<bool, Error> {
        let (scope, masker) = match self.masker {
            Some((scope, m)) => (scope as u64, Some(m)),
            None => (0x7fff_ffff, None),
        };
        let options = u64::from(scan.detectors.bits()) << 8 | scan.on_match as u64;
        let tag = transform_tag(TAG_SCAN, scope << 16 | options);
        match r.peek_kind().map_err(syntax)? {
            Kind::String => {
                let span = r.string().map_err(syntax)?;
                let text = r.decode(span).map_err(syntax)?;
                let kept = self.scanned_scalar(tag, &text, (span.start, span.end), &|| {
                    scan::apply(&text, scan, masker)
                });
                if !kept {
                    return Ok(false);
                }
            }
            Kind::Object => {
                r.begin_object(depth).map_err(syntax)?;
                self.out.push(b'{');
                let mut first = true;
                // The keys written so far that a redaction could equal: two
                // keys redacted alike ("[email]") would be a key written
                // twice, which parsers read differently; the later member is
                // dropped. A replaced key holds a `[` (redact) or 64 hex
                // digits (mask), so only clean keys like that are kept here:
                // the others cost no allocation.
                let mut written_keys: HashSet<Vec<u8>> = HashSet::new();
                while let Some(key) = r.next_key(&mut first).map_err(syntax)? {
                    let mark = self.out.len();
                    if self.out.last() != Some(&b'{') {
                        self.out.push(b',');
                    }
                    let name = r.decode(key).map_err(syntax)?;
                    let at = self.enter(&name);
                    let kept = match scan::apply(&name, scan, self.masker.map(|(_, m)| m)) {
                        Scanned::Clean => {
                            self.out.extend_from_slice(&self.src[key.start..key.end]);
                            let like_a_redaction = name.contains(&b'[') || name.len() >= 64;
                            !like_a_redaction || written_keys.insert(name.to_vec())
                        }
                        Scanned::Replaced(s) => {
                            json::write_string(&mut self.out, &s);
                            self.note(Done::Transformed);
                            written_keys.insert(s.into_bytes())
                        }
                        Scanned::Drop => false,
                    };
                    self.out.push(b':');
                    let written = if kept {
                        self.scanned(r, depth + 1, scan)?
                    } else {
                        r.skip_value(depth + 1).map_err(syntax)?;
                        false
                    };
                    if !written {
                        self.out.truncate(mark);
                        self.note(Done::Dropped);
                    }
                    self.leave(at);
                }
                self.out.push(b'}');
            }
            Kind::Array => self.array(r, depth, |w, r| w.scanned(r, depth + 1, scan))?,
            // A number is scanned as its decimal text: a card or an SSN's
            // digits sent as a number are found too.
            Kind::Number => {
                let (start, end) = r.number().map_err(syntax)?;
                let number = &self.src[start..end];
                let kept = self.scanned_scalar(tag | TAG_NUMBER, number, (start, end), &|| {
                    scan::apply_number(number, scan, masker)
                });
                if !kept {
                    return Ok(false);
                }
            }
            _ => {
                let (start, end) = r.skip_value(depth).map_err(syntax)?;
                self.out.extend_from_slice(&self.src[start..end]);
            }
        }
        Ok(true)
    }

    /// Writes one scanned scalar through the request's memo: as written
    /// (`written`, its own escapes) when clean, so the memo keeps only that
    /// it was clean; the replacement when something matched; `false` when
    /// it is dropped.
    fn scanned_scalar(
        &mut self,
        tag: u64,
        key: &[u8],
        written: (usize, usize),
        apply: &dyn Fn() -> Scanned,
    ) -> bool {
        let code = self.remembered(Some(tag), key, &mut |out| match apply() {
            Scanned::Clean => 1,
            Scanned::Replaced(s) => {
                json::write_string(out, &s);
                2
            }
            Scanned::Drop => 0,
        });
        match code {
            0 => return false,
            1 => self.out.extend_from_slice(&self.src[written.0..written.1]),
            _ => self.note(Done::Transformed),
        }
        true
    }

    /// Writes the value with every scalar leaf masked (normalized first,
    /// if asked) and its shape kept; a leaf that does not normalize is
    /// left out (`null` in an array).
    fn mask(
        &mut self,
        r: &mut Reader<'a>,
        depth: usize,
        normalize: Option<Normalize>,
    ) -> Result<bool, Error> {
        let clear: Cow<'a, [u8]> = match r.peek_kind().map_err(syntax)? {
            Kind::Object => {
                self.object(
                    r,
                    depth,
                    |_| true,
                    |w, r, _| w.mask(r, depth + 1, normalize),
                )?;
                return Ok(true);
            }
            Kind::Array => {
                self.array(r, depth, |w, r| w.mask(r, depth + 1, normalize))?;
                return Ok(true);
            }
            Kind::String => {
                let span = r.string().map_err(syntax)?;
                r.decode(span).map_err(syntax)?
            }
            Kind::Number => {
                let (start, end) = r.number().map_err(syntax)?;
                Cow::Borrowed(&self.src[start..end])
            }
            Kind::True => {
                r.literal(b"true").map_err(syntax)?;
                Cow::Borrowed(b"true")
            }
            Kind::False => {
                r.literal(b"false").map_err(syntax)?;
                Cow::Borrowed(b"false")
            }
            Kind::Null => {
                r.literal(b"null").map_err(syntax)?;
                self.out.extend_from_slice(b"null");
                return Ok(true);
            }
        };
        match normalize {
            None => self.hex(&clear)?,
            Some(n) => match n.apply(&clear) {
                Some(normalized) => self.hex(&normalized)?,
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    /// Writes the masked form of `clear` as a JSON string.
    fn hex(&mut self, clear: &[u8]) -> Result<(), Error> {
        let (scope, masker) = self.masker.ok_or(Error::MissingKey)?;
        self.note(Done::Masked);
        self.out.push(b'"');
        match self.memo {
            Some(memo) => memo
                .borrow_mut()
                .write_hex(scope, masker, clear, &mut self.out),
            None => masker.write_hex(clear, &mut self.out),
        }
        self.out.push(b'"');
        Ok(())
    }
}
