//! Validation of `events` maps: event, page and screen names (or `*`) to
//! `"allow"`, `"drop"` or `{"rename": NAME}`.

use super::{join, Checker};
use crate::policy::{NameRule, Names};
use crate::tree::Value;

const EXPECTED: &str = "expected \"allow\", \"drop\" or {\"rename\": \"New Name\"}";

impl Checker {
    pub(super) fn names(&mut self, value: &Value, path: &str) -> Names {
        let mut names = Names::default();
        let Some(members) = self.object(value, path, None) else {
            return names;
        };
        for ((name, v), repeated) in members.iter().zip(super::repeats(members)) {
            if repeated {
                continue;
            }
            let here = join(path, name);
            if name.is_empty() {
                self.error(&here, "event name must not be empty");
                continue;
            }
            if let Some(rule) = self.name_rule(v, &here) {
                names.0.push((name.clone(), rule));
            }
        }
        names
    }

    fn name_rule(&mut self, value: &Value, path: &str) -> Option<NameRule> {
        match value {
            Value::String(s) if s == "allow" => Some(NameRule::Allow),
            Value::String(s) if s == "drop" => Some(NameRule::Drop),
            Value::String(s) => {
                self.error(
                    path,
                    format!("unknown action {}; {EXPECTED}", crate::message::quoted(s)),
                );
                None
            }
            Value::Object(_) => {
                let members = self.object(value, path, Some(&["rename"]))?;
                let here = join(path, "rename");
                match members.iter().find(|(k, _)| k == "rename").map(|(_, v)| v) {
                    Some(Value::String(to))
                        if !to.trim().is_empty() && !to.chars().any(char::is_control) =>
                    {
                        Some(NameRule::Rename(to.clone()))
                    }
                    Some(Value::String(_)) => {
                        self.error(
                            &here,
                            "the new name must not be empty or hold control characters",
                        );
                        None
                    }
                    Some(other) => {
                        self.error(
                            &here,
                            format!("must be a string, not {}", other.type_name()),
                        );
                        None
                    }
                    None => {
                        self.error(&here, "missing; the name to send instead");
                        None
                    }
                }
            }
            other => {
                self.error(
                    path,
                    format!(
                        "must be a string or an object, not {}; {EXPECTED}",
                        other.type_name()
                    ),
                );
                None
            }
        }
    }
}
