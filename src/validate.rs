//! Policy validation: turns a policy file into a [`Policy`], reporting
//! every problem at once, each at its JSON path.

mod actions;
pub(crate) mod baa;
mod consent;
mod destination;
mod lists;
mod names;

use crate::action::scan::{OnMatch, Scan};
use crate::action::url::UrlRule;
use crate::path;
use crate::policy::{
    Action, Allowlists, Connection, Destination, IdAction, Identifiers, List, Names, Policy,
    Problem, Report, Rule, DEFAULT_CONTEXT, IDENTIFIER_KEYS,
};
use crate::tree::{self, Value};
use destination::Environment;

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// Validates a policy given as JSON text.
///
/// Returns the policy when there are no errors, and the report (errors and
/// warnings) in every case.
///
/// # Examples
/// ```
/// let (policy, report) = phimask::validate_policy(r#"{"version": 2}"#);
/// assert!(policy.is_none());
/// assert_eq!(report.errors[0].to_string(), "version: unsupported version 2; expected 1");
/// ```
pub fn validate_policy(text: &str) -> (Option<Policy>, Report) {
    let mut c = Checker::default();
    let policy = if text.len() > MAX_POLICY_BYTES {
        c.error(
            "",
            format!("policy is larger than {MAX_POLICY_BYTES} bytes"),
        );
        None
    } else {
        match tree::parse(text) {
            Ok(value) => c.policy(&value),
            Err(e) => {
                let (line, column) = tree::line_column(text, e.offset);
                c.error(
                    "",
                    format!(
                        "policy is not valid JSON: {} at line {line}, column {column}",
                        e.reason
                    ),
                );
                None
            }
        }
    };
    let report = Report {
        errors: c.errors,
        warnings: c.warnings,
    };
    (policy.filter(|_| report.is_valid()), report)
}

#[derive(Default)]
struct Checker {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    /// The options of the `url` rules met so far (`Action::Url` indexes).
    urls: Vec<UrlRule>,
    /// The purposes the `consent` section names (`None`: it has none), for
    /// checking destinations' `consent`.
    purposes: Option<Vec<String>>,
}

fn join(parent: &str, key: &str) -> String {
    if key.is_empty() {
        format!("{parent}.\"\"")
    } else if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

const POLICY_KEYS: [&str; 10] = [
    "version",
    "environment",
    "hipaa",
    "identifiers",
    "allowlists",
    "events",
    "scan",
    "destinations",
    "consent",
    "bots",
];

impl Checker {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// The members of an object, after reporting duplicate keys and keys
    /// not in `allowed` (when given). `None` (and an error) for non-objects.
    fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        allowed: Option<&[&str]>,
    ) -> Option<&'v [(String, Value)]> {
        let Value::Object(members) = value else {
            let what = if path.is_empty() { "policy" } else { "value" };
            self.error(
                path,
                format!("{what} must be an object, not {}", value.type_name()),
            );
            return None;
        };
        for ((key, _), repeated) in members.iter().zip(repeats(members)) {
            let here = join(path, key);
            if repeated {
                self.error(&here, "duplicate key");
            } else if let Some(allowed) = allowed {
                if !allowed.contains(&key.as_str()) {
                    self.error(
                        &here,
                        format!("unknown key; expected one of: {}", allowed.join(", ")),
                    );
                }
            }
        }
        Some(members)
    }

    fn policy(&mut self, root: &Value) -> Option<Policy> {
        let members = self.object(root, "", Some(&POLICY_KEYS))?;
        let get = |key: &str| members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        self.version(get("version"));
        let environment = self.environment(get("environment"));
        let hipaa = self.hipaa(get("hipaa"));
        let identifiers = match get("identifiers") {
            Some(v) => self.identifiers(v, hipaa),
            None => Identifiers::default(),
        };
        let mut allowlists = match get("allowlists") {
            Some(v) => self.allowlists(v, "allowlists"),
            None => Allowlists::default(),
        };
        let has_context = matches!(
            get("allowlists"),
            Some(Value::Object(m)) if m.iter().any(|(k, _)| k == "context")
        );
        if !has_context {
            allowlists.0[List::Context.index()] = default_context();
        }
        let scan = match get("scan") {
            Some(v) => self.scan(v, "scan").flatten().map(|detectors| Scan {
                detectors,
                on_match: OnMatch::Redact,
            }),
            None => None,
        };
        let events = match get("events") {
            Some(v) => self.names(v, "events"),
            None => Names::default(),
        };
        let consent = get("consent").and_then(|v| self.consent(v));
        let bots = get("bots").map_or(crate::bots::Mode::Allow, |v| self.bots(v));
        let env = Environment {
            hipaa,
            events: &events,
        };
        let destinations = match get("destinations") {
            Some(v) => self.destinations(v, &env),
            None => {
                self.error("destinations", "missing; name at least one destination");
                Vec::new()
            }
        };
        if let Some(c) = &consent {
            self.gpc_needed(c, &destinations);
        }
        if bots == crate::bots::Mode::Flag {
            self.flag_unseen(&destinations);
        } else {
            self.bot_unowned(&allowlists, &destinations);
        }
        Some(Policy {
            environment,
            hipaa,
            identifiers,
            allowlists,
            events,
            scan,
            urls: std::mem::take(&mut self.urls),
            destinations,
            consent,
            bots,
        })
    }

    /// `bots`: `"drop"`, `"flag"` or `"allow"`, exactly.
    fn bots(&mut self, value: &Value) -> crate::bots::Mode {
        const EXPECTED: &str = "must be \"drop\", \"flag\" or \"allow\"";
        match value {
            Value::String(s) => match crate::bots::Mode::parse(s) {
                Some(mode) => return mode,
                None => self.error("bots", EXPECTED),
            },
            v => self.error("bots", format!("{EXPECTED}, not {}", v.type_name())),
        }
        crate::bots::Mode::Allow
    }

    /// Warns of each server-side destination in a native format under
    /// `"bots": "flag"`: those formats send no `context`, so it receives
    /// bots' events unmarked, as under `allow`.
    fn flag_unseen(&mut self, destinations: &[Destination]) {
        for d in destinations {
            if d.connection == Connection::ServerSide && !d.format.is_passthrough() {
                self.warn(
                    &join(&join("destinations", &d.name), "format"),
                    format!(
                        "the {} format sends no context, so this destination receives bots' events without context.bot, as if \"bots\" were \"allow\"; use \"drop\" to keep them out",
                        d.format.name()
                    ),
                );
            }
        }
    }

    /// Warns of each `allow` rule for `context.bot` while `bots` is not
    /// `flag`: phimask then does not own that field, and the rule sends
    /// whatever text a client puts there.
    fn bot_unowned(&mut self, top: &Allowlists, destinations: &[Destination]) {
        let restricted = destinations.iter().filter(|d| d.restricted);
        let lists = std::iter::once(("allowlists".to_owned(), top)).chain(restricted.map(|d| {
            (
                join(&join("destinations", &d.name), "allowlists"),
                &d.allowlists,
            )
        }));
        for (at, lists) in lists {
            for rule in lists.list(List::Context) {
                if rule.path == "bot" && matches!(rule.action, Action::Allow { .. }) {
                    self.warn(
                        &join(&join(&at, "context"), &rule.path),
                        "without \"bots\": \"flag\", context.bot is whatever the client sends, and \"allow\" sends it in clear; set \"bots\": \"flag\" for phimask to own it",
                    );
                }
            }
        }
    }

    fn version(&mut self, value: Option<&Value>) {
        match value {
            None => self.error("version", "missing; expected 1"),
            Some(Value::Number(n)) if n == "1" => {}
            Some(Value::Number(n)) => {
                self.error("version", format!("unsupported version {n}; expected 1"))
            }
            Some(v) => self.error(
                "version",
                format!("must be the number 1, not {}", v.type_name()),
            ),
        }
    }

    fn environment(&mut self, value: Option<&Value>) -> String {
        match value {
            Some(Value::String(s)) if !s.trim().is_empty() => return s.clone(),
            Some(Value::String(_)) => self.error("environment", "must not be empty"),
            Some(v) => self.error(
                "environment",
                format!("must be a string, not {}", v.type_name()),
            ),
            None => self.error(
                "environment",
                "missing; name the environment, e.g. \"production\"",
            ),
        }
        String::new()
    }

    /// `hipaa`; when it is unusable, true (the stricter reading).
    fn hipaa(&mut self, value: Option<&Value>) -> bool {
        match value {
            Some(Value::Bool(true)) => true,
            Some(Value::Bool(false)) => {
                self.warn(
                    "hipaa",
                    "false: destinations receive events unchanged unless they set \"restrict_phi\": true",
                );
                false
            }
            Some(v) => {
                self.error(
                    "hipaa",
                    format!("must be true or false, not {}", v.type_name()),
                );
                true
            }
            None => {
                self.error(
                    "hipaa",
                    "missing; set true when the account handles PHI (destinations then restrict PHI by default)",
                );
                true
            }
        }
    }

    fn identifiers(&mut self, value: &Value, hipaa: bool) -> Identifiers {
        let mut ids = Identifiers::default();
        let Some(members) = self.object(value, "identifiers", Some(&IDENTIFIER_KEYS)) else {
            return ids;
        };
        for (key, v) in members {
            let Some(slot) = IDENTIFIER_KEYS.iter().position(|k| k == key) else {
                continue;
            };
            let here = join("identifiers", key);
            ids.0[slot] = match v {
                Value::String(s) if s == "mask" => IdAction::Mask,
                Value::String(s) if s == "drop" => IdAction::Drop,
                Value::String(s) if s == "allow" => {
                    if hipaa {
                        self.warn(
                            &here,
                            format!("\"allow\" sends {key} in clear to every restricted destination; it identifies the patient, so HIPAA policies usually mask it"),
                        );
                    }
                    IdAction::Allow
                }
                _ => {
                    self.error(&here, "must be \"mask\", \"allow\" or \"drop\"");
                    IdAction::Drop
                }
            };
        }
        ids
    }
}

/// The `context` rules of a policy that has no `context` list: leaves
/// sent only as strings of their shape.
fn default_context() -> Vec<Rule> {
    DEFAULT_CONTEXT
        .iter()
        .filter_map(|(p, shape)| {
            Some(Rule {
                path: (*p).to_owned(),
                steps: path::parse(p).ok()?,
                action: Action::Shape(*shape),
            })
        })
        .collect()
}

/// For each member, whether an earlier member has its key: in one pass
/// with a set, so a list of thousands of rules validates in linear time.
pub(crate) fn repeats(members: &[(String, Value)]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    members
        .iter()
        .map(|(key, _)| !seen.insert(key.as_str()))
        .collect()
}
