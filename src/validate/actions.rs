//! Validation of an allowlist entry's action: a short string (`"allow"`,
//! `"zip3"`) or an object `{"action": NAME, ...options}`; and of `scan`.

use super::{join, Checker};
use crate::action::ip::IpMode;
use crate::action::normalize::Normalize;
use crate::action::scan::{OnMatch, Scan};
use crate::action::url::{Segments, UrlRule};
use crate::detect::{Detector, Detectors};
use crate::policy::{Action, ScanRule};
use crate::tree::Value;

/// Action names, and the options each takes.
const ACTIONS: [(&str, &[&str]); 8] = [
    ("allow", &["scan", "on_match"]),
    ("mask", &["normalize"]),
    ("drop", &[]),
    ("url", &["query", "paths", "segments"]),
    ("ip", &["mode"]),
    ("zip3", &[]),
    ("year", &[]),
    ("age", &[]),
];

fn action_names() -> String {
    ACTIONS.map(|(n, _)| format!("\"{n}\"")).join(", ")
}

/// `"a", "b" or "c"` for messages.
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl Checker {
    /// The action of the entry at `path`, or `None` (and errors).
    pub(super) fn action(&mut self, value: &Value, path: &str) -> Option<Action> {
        match value {
            Value::String(name) => self.action_named(name, path, &[], path),
            Value::Object(_) => {
                let members = self.object(value, path, None)?;
                let name = match members.iter().find(|(k, _)| k == "action") {
                    Some((_, Value::String(name))) => name.clone(),
                    Some((_, other)) => {
                        self.error(
                            &join(path, "action"),
                            format!(
                                "must be a string, not {}; expected one of {}",
                                other.type_name(),
                                action_names()
                            ),
                        );
                        return None;
                    }
                    None => {
                        self.error(
                            &join(path, "action"),
                            format!("missing; expected one of {}", action_names()),
                        );
                        return None;
                    }
                };
                let options: Vec<(String, Value)> = members
                    .iter()
                    .filter(|(k, _)| k != "action")
                    .cloned()
                    .collect();
                self.action_named(&name, &join(path, "action"), &options, path)
            }
            other => {
                self.error(
                    path,
                    format!(
                        "action must be a string or an object, not {}; expected one of {}",
                        other.type_name(),
                        action_names()
                    ),
                );
                None
            }
        }
    }

    /// The action `name` with its options; `name_path` is where the name
    /// stands, `path` the entry's.
    fn action_named(
        &mut self,
        name: &str,
        name_path: &str,
        options: &[(String, Value)],
        path: &str,
    ) -> Option<Action> {
        let Some((_, allowed)) = ACTIONS.iter().find(|(n, _)| *n == name) else {
            self.error(
                name_path,
                format!(
                    "unknown action {}; expected one of {}",
                    crate::message::quoted(name),
                    action_names()
                ),
            );
            return None;
        };
        let mut ok = true;
        for (key, _) in options {
            if !allowed.contains(&key.as_str()) {
                let expected = if allowed.is_empty() {
                    format!("\"{name}\" takes no options")
                } else {
                    format!("expected {}", one_of(allowed))
                };
                self.error(
                    &join(path, key),
                    format!("unknown option of \"{name}\"; {expected}"),
                );
                ok = false;
            }
        }
        let get = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let action = match name {
            "allow" => {
                let scan = match get("scan") {
                    None => ScanRule::Default,
                    Some(v) => match self.scan(v, &join(path, "scan"))? {
                        None => ScanRule::Off,
                        Some(detectors) => ScanRule::On(Scan {
                            detectors,
                            on_match: OnMatch::Redact,
                        }),
                    },
                };
                let scan = match (get("on_match"), scan) {
                    (None, scan) => scan,
                    (Some(v), ScanRule::On(s)) => ScanRule::On(Scan {
                        on_match: self.choice(
                            v,
                            &join(path, "on_match"),
                            &OnMatch::ALL.map(|o| (o.name(), o)),
                        )?,
                        ..s
                    }),
                    (Some(_), _) => {
                        self.error(
                            &join(path, "on_match"),
                            "applies only with \"scan\" on this rule",
                        );
                        return None;
                    }
                };
                Action::Allow { scan }
            }
            "mask" => Action::Mask(match get("normalize") {
                None => None,
                Some(v) => Some(self.choice(
                    v,
                    &join(path, "normalize"),
                    &Normalize::ALL.map(|n| (n.name(), n)),
                )?),
            }),
            "drop" => Action::Drop,
            "url" => {
                // All checked before any can stop, so every problem is told.
                let query = self.strings(get("query"), &join(path, "query"), query_name);
                let paths = self.strings(get("paths"), &join(path, "paths"), path_template);
                let segments = self.segments(get("segments"), &join(path, "segments"));
                let rule = UrlRule {
                    query: query?,
                    paths: paths?
                        .iter()
                        .map(|t| t.split('/').map(String::from).collect())
                        .collect(),
                    segments: segments?,
                };
                if ok {
                    self.url_warnings(&rule, path);
                }
                let index = u16::try_from(self.urls.len()).ok()?;
                self.urls.push(rule);
                Action::Url(index)
            }
            "ip" => Action::Ip(match get("mode") {
                None => IpMode::Truncate,
                Some(v) => self.choice(
                    v,
                    &join(path, "mode"),
                    &[("truncate", IpMode::Truncate), ("zero", IpMode::Zero)],
                )?,
            }),
            "zip3" => Action::Zip3,
            "year" => Action::Year,
            _ => Action::Age,
        };
        ok.then_some(action)
    }

    /// A list of strings that each pass `check` (else its message);
    /// absent: empty.
    fn strings(
        &mut self,
        value: Option<&Value>,
        path: &str,
        check: fn(&str) -> Result<(), &'static str>,
    ) -> Option<Vec<String>> {
        let Some(value) = value else {
            return Some(Vec::new());
        };
        let Value::Array(items) = value else {
            self.error(
                path,
                format!("must be an array of strings, not {}", value.type_name()),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let here = format!("{path}[{i}]");
            match item {
                Value::String(s) => match check(s) {
                    Ok(()) => out.push(s.clone()),
                    Err(message) => {
                        self.error(&here, message);
                        ok = false;
                    }
                },
                other => {
                    self.error(
                        &here,
                        format!("must be a string, not {}", other.type_name()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `segments`: `"*"`, or a list of segments (the site's vocabulary);
    /// absent: none.
    fn segments(&mut self, value: Option<&Value>, path: &str) -> Option<Segments> {
        match value {
            None => Some(Segments::None),
            Some(Value::String(s)) if s == "*" => Some(Segments::Any),
            Some(Value::String(_)) => {
                self.error(
                    path,
                    "must be an array of path segments ([\"services\", \"book\"]) or \"*\"",
                );
                None
            }
            Some(v) => self
                .strings(Some(v), path, vocabulary_word)
                .map(Segments::Words),
        }
    }

    /// What a `url` rule cannot keep, told at `path`.
    fn url_warnings(&mut self, rule: &UrlRule, path: &str) {
        let vocabulary = match &rule.segments {
            Segments::Any => {
                self.warn(
                    &join(path, "segments"),
                    "\"*\" keeps every path segment that does not look like an identifier: names, conditions and searches in paths (/patients/jane-doe, /search/chest-pain) are sent; list the site's segments and \"paths\" templates instead",
                );
                return;
            }
            Segments::None => false,
            Segments::Words(words) => !words.is_empty(),
        };
        if !vocabulary && rule.paths.is_empty() {
            self.warn(
                path,
                "url rule with neither \"paths\" nor \"segments\": only origins and placeholders are sent (every path segment becomes :seg or :id); add \"paths\" templates or a \"segments\" vocabulary to keep the site's own segments",
            );
        }
    }

    /// One of `choices`, by name.
    fn choice<T: Copy>(&mut self, value: &Value, path: &str, choices: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        if let Value::String(s) = value {
            if let Some((_, c)) = choices.iter().find(|(n, _)| n == s) {
                return Some(*c);
            }
        }
        self.error(path, format!("must be {}", one_of(&names)));
        None
    }

    /// A `scan` value: `true` (the default detectors), `false` (none), or a
    /// list of detector names. `Some(None)` is `false`.
    pub(super) fn scan(&mut self, value: &Value, path: &str) -> Option<Option<Detectors>> {
        let names = Detector::ALL.map(Detector::name);
        let expected = format!("true, false or a list of {}", one_of(&names));
        match value {
            Value::Bool(true) => Some(Some(Detectors::DEFAULT)),
            Value::Bool(false) => Some(None),
            Value::Array(items) if !items.is_empty() => {
                let mut set = Detectors::default();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) if Detector::parse(s).is_some() => {
                            set = set.with(Detector::parse(s)?);
                        }
                        _ => {
                            self.error(
                                &format!("{path}[{i}]"),
                                format!("unknown detector; expected {}", one_of(&names)),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(Some(set))
            }
            _ => {
                self.error(path, format!("must be {expected}"));
                None
            }
        }
    }
}

/// A kept query parameter: a name, or a prefix ending in `*`.
fn query_name(name: &str) -> Result<(), &'static str> {
    let stem = name.strip_suffix('*').unwrap_or(name);
    if stem.is_empty() || stem.contains(['*', '&', '=', '#']) || stem.chars().any(char::is_control)
    {
        return Err("must be a parameter name, or a prefix ending in '*' (\"utm_*\")");
    }
    Ok(())
}

/// A path template: `/` then segments, each literal or `:name`.
fn path_template(template: &str) -> Result<(), &'static str> {
    const BAD: &str = "must be a path template such as \"/patients/:id\": '/' then segments, each literal or ':' and a name of letters, digits and '_'";
    let Some(rest) = template.strip_prefix('/') else {
        return Err(BAD);
    };
    let ok = rest
        .split('/')
        .all(|segment| match segment.strip_prefix(':') {
            Some(name) => {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            None => !segment.contains(['?', '#', ' ']) && !segment.chars().any(char::is_control),
        });
    if ok {
        Ok(())
    } else {
        Err(BAD)
    }
}

/// A vocabulary segment: one path segment as decoded text.
fn vocabulary_word(word: &str) -> Result<(), &'static str> {
    if word.is_empty() || word == "*" || word.contains('/') || word.chars().any(char::is_control) {
        return Err("must be one path segment: not empty, no '/', not \"*\" (a list's entries are segments; \"segments\": \"*\" is the heuristic)");
    }
    Ok(())
}
