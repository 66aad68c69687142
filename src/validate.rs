//! Policy validation: turns a policy file into a [`Policy`], reporting
//! every problem at once, each at its JSON path.

use crate::path;
use crate::policy::{
    Action, Allowlists, Connection, Destination, IdAction, Identifiers, List, Policy, Problem,
    Report, Rule, DEFAULT_CONTEXT, IDENTIFIER_KEYS,
};
use crate::tree::{self, Value};

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

const POLICY_KEYS: [&str; 6] = [
    "version",
    "environment",
    "hipaa",
    "identifiers",
    "allowlists",
    "destinations",
];
const DESTINATION_KEYS: [&str; 5] = [
    "connection",
    "endpoint",
    "restrict_phi",
    "baa",
    "allowlists",
];
const LIST_KEYS: [&str; 4] = [
    "event_properties",
    "user_properties",
    "group_properties",
    "context",
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
        for (i, (key, _)) in members.iter().enumerate() {
            let here = join(path, key);
            if members[..i].iter().any(|(k, _)| k == key) {
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

        match get("version") {
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
        let environment = match get("environment") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => {
                self.error("environment", "must not be empty");
                String::new()
            }
            Some(v) => {
                self.error(
                    "environment",
                    format!("must be a string, not {}", v.type_name()),
                );
                String::new()
            }
            None => {
                self.error(
                    "environment",
                    "missing; name the environment, e.g. \"production\"",
                );
                String::new()
            }
        };
        let hipaa = match get("hipaa") {
            Some(Value::Bool(b)) => *b,
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
        };
        if get("hipaa") == Some(&Value::Bool(false)) {
            self.warn(
                "hipaa",
                "false: destinations receive events unchanged unless they set \"restrict_phi\": true",
            );
        }
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
            allowlists.0[List::Context.index()] = DEFAULT_CONTEXT
                .iter()
                .map(|key| Rule {
                    path: (*key).to_owned(),
                    steps: vec![path::Step::Key((*key).to_owned())],
                    action: Action::Allow,
                })
                .collect();
        }
        let destinations = match get("destinations") {
            Some(v) => self.destinations(v, hipaa),
            None => {
                self.error("destinations", "missing; name at least one destination");
                Vec::new()
            }
        };
        Some(Policy {
            environment,
            hipaa,
            identifiers,
            allowlists,
            destinations,
        })
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

    fn allowlists(&mut self, value: &Value, path: &str) -> Allowlists {
        let mut lists = Allowlists::default();
        let Some(members) = self.object(value, path, Some(&LIST_KEYS)) else {
            return lists;
        };
        for list in List::ALL {
            if let Some((_, v)) = members.iter().find(|(k, _)| k == list.key()) {
                lists.0[list.index()] = self.rules(v, &join(path, list.key()), list);
            }
        }
        lists
    }

    fn rules(&mut self, value: &Value, path: &str, list: List) -> Vec<Rule> {
        let mut rules = Vec::new();
        let Some(members) = self.object(value, path, None) else {
            return rules;
        };
        for (i, (key, v)) in members.iter().enumerate() {
            let here = join(path, key);
            if members[..i].iter().any(|(k, _)| k == key) {
                continue;
            }
            let action = match v {
                Value::String(s) if s == "allow" => Some(Action::Allow),
                Value::String(s) if s == "mask" => Some(Action::Mask),
                Value::String(s) => {
                    self.error(
                        &here,
                        format!("unknown action \"{s}\"; expected \"allow\" or \"mask\""),
                    );
                    None
                }
                other => {
                    self.error(
                        &here,
                        format!(
                            "action must be \"allow\" or \"mask\", not {}",
                            other.type_name()
                        ),
                    );
                    None
                }
            };
            let steps = match path::parse(key) {
                Ok(steps) => Some(steps),
                Err(message) => {
                    self.error(&here, message);
                    None
                }
            };
            let (Some(action), Some(steps)) = (action, steps) else {
                continue;
            };
            if list == List::Context && steps.first() == Some(&path::Step::Key("traits".into())) {
                self.error(
                    &here,
                    "context.traits is governed by user_properties; put this rule there",
                );
                continue;
            }
            if action == Action::Allow {
                self.warn_if_phi(&here, list, key);
            }
            rules.push(Rule {
                path: key.clone(),
                steps,
                action,
            });
        }
        rules
    }

    /// Warns when an `allow` rule sends a field that commonly holds PHI.
    fn warn_if_phi(&mut self, here: &str, list: List, rule_path: &str) {
        if list == List::Context {
            for (field, what) in SENSITIVE_CONTEXT {
                let covers = rule_path == field
                    || field.starts_with(&format!("{rule_path}."))
                    || rule_path.starts_with(&format!("{field}."));
                if covers {
                    self.warn(
                        here,
                        format!("\"allow\" sends context.{field} in clear: {what}; consider leaving it off the list"),
                    );
                    return;
                }
            }
            return;
        }
        if list == List::GroupProperties {
            // Groups are organizations (a clinic, an employer), not patients.
            return;
        }
        let last = rule_path.rsplit('.').next().unwrap_or(rule_path);
        let normalized: String = last
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if SENSITIVE_NAMES.contains(&normalized.as_str()) {
            self.warn(
                here,
                format!("\"allow\" sends \"{last}\" in clear, and such fields commonly hold PHI; consider \"mask\" or leaving it off the list"),
            );
        }
    }

    fn destinations(&mut self, value: &Value, hipaa: bool) -> Vec<Destination> {
        let mut out = Vec::new();
        let Some(members) = self.object(value, "destinations", None) else {
            return out;
        };
        if members.is_empty() {
            self.error("destinations", "no destinations; name at least one");
        }
        for (i, (name, v)) in members.iter().enumerate() {
            let here = join("destinations", name);
            if members[..i].iter().any(|(k, _)| k == name) {
                continue;
            }
            if name.is_empty() {
                self.error(&here, "destination name must not be empty");
                continue;
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                self.error(
                    &here,
                    "destination name may hold only letters, digits, '_', '-' and '.'",
                );
            }
            if let Some(d) = self.destination(v, &here, name, hipaa) {
                out.push(d);
            }
        }
        if !out.iter().any(|d| d.connection == Connection::ServerSide) && !members.is_empty() {
            self.warn(
                "destinations",
                "no server-side destination: the edge forwards nothing",
            );
        }
        out
    }

    fn destination(
        &mut self,
        value: &Value,
        path: &str,
        name: &str,
        hipaa: bool,
    ) -> Option<Destination> {
        let members = self.object(value, path, Some(&DESTINATION_KEYS))?;
        let get = |key: &str| members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let flag = |c: &mut Self, key: &str| match get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                c.error(
                    &join(path, key),
                    format!("must be true or false, not {}", v.type_name()),
                );
                None
            }
        };
        let restrict_phi = flag(self, "restrict_phi");
        let baa = flag(self, "baa").unwrap_or(false);
        let restricted = match restrict_phi {
            Some(r) => r,
            None => hipaa,
        };
        if restrict_phi == Some(false) && !baa {
            self.error(
                &join(path, "restrict_phi"),
                "false requires \"baa\": true (a signed Business Associate Agreement with this destination)",
            );
        }
        let connection_path = join(path, "connection");
        let connection = match get("connection") {
            Some(Value::String(s)) if s == "server-side" => Some(Connection::ServerSide),
            Some(Value::String(s)) if s == "client-side" => Some(Connection::ClientSide),
            Some(_) => {
                self.error(
                    &connection_path,
                    "must be \"server-side\" or \"client-side\"",
                );
                None
            }
            None => {
                self.error(
                    &connection_path,
                    "missing; expected \"server-side\" or \"client-side\"",
                );
                None
            }
        };
        if connection == Some(Connection::ClientSide) && restricted {
            self.error(
                &connection_path,
                "client-side destinations cannot restrict PHI",
            );
        }
        let endpoint_path = join(path, "endpoint");
        let endpoint = match get("endpoint") {
            None => None,
            Some(Value::String(url)) => {
                if let Err(message) = check_endpoint(url) {
                    self.error(&endpoint_path, message);
                }
                Some(url.clone())
            }
            Some(v) => {
                self.error(
                    &endpoint_path,
                    format!("must be a URL string, not {}", v.type_name()),
                );
                None
            }
        };
        if connection == Some(Connection::ServerSide) && get("endpoint").is_none() {
            self.error(
                &endpoint_path,
                "missing; a server-side destination needs the https URL the edge sends its events to",
            );
        }
        let allowlists = match get("allowlists") {
            Some(v) => {
                let lists_path = join(path, "allowlists");
                let lists = self.allowlists(v, &lists_path);
                if !restricted {
                    self.warn(
                        &lists_path,
                        "ignored: this destination is unrestricted and receives events unchanged",
                    );
                }
                lists
            }
            None => Allowlists::default(),
        };
        Some(Destination {
            name: name.to_owned(),
            connection: connection?,
            endpoint,
            restricted,
            baa,
            allowlists,
        })
    }
}

/// Checks a destination endpoint: https, or http to this machine only.
fn check_endpoint(url: &str) -> Result<(), String> {
    const BAD: &str =
        "must be an https:// URL (http:// only for localhost or 127.0.0.1, in development)";
    let (scheme, rest) = url.split_once("://").ok_or(BAD)?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain white space or control characters".into());
    }
    if authority.contains('@') {
        return Err(
            "must not contain credentials (user@host); keep secrets out of the policy".into(),
        );
    }
    if rest[authority_end..].contains('#') {
        return Err("must not contain a #fragment".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((inner, port)) => (&authority[..inner.len() + 2], port),
            None => return Err(BAD.into()),
        },
        None => match authority.find(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        },
    };
    if let Some(digits) = port.strip_prefix(':') {
        if digits.is_empty() || digits.len() > 5 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(BAD.into());
        }
    } else if !port.is_empty() {
        return Err(BAD.into());
    }
    if host.is_empty() || host.contains(['%', '\\']) {
        return Err(BAD.into());
    }
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "localhost" | "127.0.0.1" | "[::1]") => Ok(()),
        _ => Err(BAD.into()),
    }
}

/// Context fields that hold identifiers, and why.
const SENSITIVE_CONTEXT: [(&str, &str); 14] = [
    ("ip", "the visitor's IP address is a HIPAA identifier"),
    ("userAgent", "the user agent fingerprints the device"),
    (
        "page.url",
        "page URLs carry query strings and record numbers",
    ),
    ("page.path", "page paths carry record numbers"),
    (
        "page.search",
        "query strings carry emails, names and conditions",
    ),
    (
        "page.referrer",
        "referrer URLs carry query strings and record numbers",
    ),
    ("page.title", "page titles name conditions and patients"),
    (
        "referrer",
        "referrer URLs carry query strings and record numbers",
    ),
    (
        "location",
        "the visitor's location is geography smaller than a state",
    ),
    ("device.id", "device identifiers are HIPAA identifiers"),
    (
        "device.advertisingId",
        "advertising IDs are HIPAA identifiers",
    ),
    ("device.token", "device tokens are HIPAA identifiers"),
    ("campaign.term", "search terms name conditions"),
    ("traits", "traits repeat the user's identity"),
];

/// Property names (lower-cased, letters and digits only) that commonly hold
/// PHI.
const SENSITIVE_NAMES: [&str; 34] = [
    "email",
    "emailaddress",
    "phone",
    "phonenumber",
    "mobile",
    "fax",
    "name",
    "firstname",
    "lastname",
    "fullname",
    "address",
    "street",
    "streetaddress",
    "city",
    "zip",
    "zipcode",
    "postalcode",
    "ssn",
    "socialsecuritynumber",
    "dob",
    "birthday",
    "birthdate",
    "dateofbirth",
    "mrn",
    "medicalrecordnumber",
    "ip",
    "ipaddress",
    "url",
    "currenturl",
    "referrer",
    "initialreferrer",
    "search",
    "diagnosis",
    "condition",
];

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints() {
        for ok in [
            "https://api2.amplitude.com/batch",
            "https://ingest.example:8443/segment?x=1",
            "http://127.0.0.1:9000/sink",
            "http://localhost/x",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://example.com/x",
            "ftp://x",
            "https://",
            "https://user:pw@host/x",
            "api.example.com",
            "https://host:abc/",
            "https://host/x#frag",
            "https://ho st/",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
