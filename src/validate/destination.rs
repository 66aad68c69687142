//! Validation of `destinations`: connection, endpoint, PHI restriction and
//! BAA, and each destination's own lists, `events`, `calls` and
//! `integration` name, and `format`.

use super::{join, Checker};
use crate::event::{CallType, Calls};
use crate::format::Format;
use crate::policy::{Allowlists, Baa, Connection, Destination, Names};
use crate::tree::Value;

const DESTINATION_KEYS: [&str; 11] = [
    "connection",
    "endpoint",
    "restrict_phi",
    "baa",
    "allowlists",
    "events",
    "calls",
    "integration",
    "mask_scope",
    "format",
    "consent",
];

const EVENTS_WARNING: &str = "no \"*\" rule here or in the top-level \"events\": names not listed pass unchanged, and event and page names can carry PHI (\"Viewed HIV Results\"); add \"*\": \"drop\" or a rename";

/// What the policy says outside `destinations` that a destination's checks
/// need.
pub(super) struct Environment<'p> {
    pub hipaa: bool,
    pub events: &'p Names,
}

/// A destination's members, looked up by key.
struct Members<'v>(&'v [(String, Value)]);

impl<'v> Members<'v> {
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Names that a JavaScript object does not hold as an own, plain data
/// member when set (`__proto__` sets the prototype): within the letters,
/// digits, `_`, `-` and `.` a name may hold, the only one.
const JS_RESERVED_NAMES: [&str; 1] = ["__proto__"];

impl Checker {
    pub(super) fn destinations(&mut self, value: &Value, env: &Environment) -> Vec<Destination> {
        let mut out = Vec::new();
        let Some(members) = self.object(value, "destinations", None) else {
            return out;
        };
        if members.is_empty() {
            self.error("destinations", "no destinations; name at least one");
        }
        for ((name, v), repeated) in members.iter().zip(super::repeats(members)) {
            if repeated {
                continue;
            }
            let here = join("destinations", name);
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
            if JS_RESERVED_NAMES.contains(&name.as_str()) {
                self.error(
                    &here,
                    "destination name is reserved in JavaScript (an object keyed by destination names, as the Worker's, cannot hold it as its own member); choose another name",
                );
                continue;
            }
            if let Some(d) = self.destination(v, &here, name, env) {
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
        env: &Environment,
    ) -> Option<Destination> {
        let members = Members(self.object(value, path, Some(&DESTINATION_KEYS))?);
        let baa = match members.get("baa") {
            Some(v) => self.baa(v, &join(path, "baa")),
            None => Some(Baa::None),
        };
        let restricted = self.restriction(&members, path, env.hipaa, baa.as_ref());
        let connection = self.connection(&members, path, restricted);
        let endpoint = self.endpoint(&members, path, connection);
        let unrestricted_note = |c: &mut Self, key: &str| {
            if !restricted {
                c.warn(
                    &join(path, key),
                    "ignored: this destination is unrestricted and receives events unchanged",
                );
            }
        };
        let allowlists = match members.get("allowlists") {
            Some(v) => {
                let lists = self.allowlists(v, &join(path, "allowlists"));
                unrestricted_note(self, "allowlists");
                lists
            }
            None => Allowlists::default(),
        };
        let events = match members.get("events") {
            Some(v) => {
                let names = self.names(v, &join(path, "events"));
                unrestricted_note(self, "events");
                names
            }
            None => Names::default(),
        };
        if restricted
            && connection == Some(Connection::ServerSide)
            && !env.events.merged_with(&events).has_default()
        {
            self.warn(&join(path, "events"), EVENTS_WARNING);
        }
        let calls = match members.get("calls") {
            Some(v) => self.calls(v, &join(path, "calls")),
            None => Calls::ALL,
        };
        let integration = match members.get("integration") {
            Some(v) => self.integration(v, &join(path, "integration")),
            None => None,
        };
        let mask_scope = match members.get("mask_scope") {
            Some(v) => self.mask_scope(v, &join(path, "mask_scope")),
            None => None,
        };
        let format = match members.get("format") {
            Some(v) => {
                let format = self.format(v, &join(path, "format"));
                if connection == Some(Connection::ClientSide) {
                    self.warn(
                        &join(path, "format"),
                        "ignored: the edge sends nothing to a client-side destination",
                    );
                }
                format
            }
            None => Some(Format::Segment),
        };
        let consent = match members.get("consent") {
            Some(v) => {
                let purposes = self.destination_consent(v, &join(path, "consent"));
                if connection == Some(Connection::ClientSide) {
                    self.warn(
                        &join(path, "consent"),
                        "ignored: the edge sends nothing to a client-side destination; its consent is the browser's business",
                    );
                }
                purposes
            }
            None => Vec::new(),
        };
        if env.hipaa
            && connection == Some(Connection::ServerSide)
            && members.get("consent").is_none()
        {
            let integration = match members.get("integration") {
                Some(Value::String(s)) => Some(s.as_str()),
                _ => None,
            };
            if let Some(why) =
                super::consent::advertising_tool(name, integration, endpoint.as_deref())
            {
                self.warn(
                    &join(path, "consent"),
                    format!("this looks like an advertising tool ({why}) and no consent gates it: sharing health data with advertisers needs the visitor's consent (Washington's My Health My Data Act, state privacy laws); add \"consent\": [\"advertising\"] with a top-level \"consent\" section"),
                );
            }
        }
        Some(Destination {
            name: name.to_owned(),
            connection: connection?,
            endpoint,
            restricted,
            baa: baa?,
            allowlists,
            events,
            calls,
            integration: integration.unwrap_or_else(|| name.to_owned()),
            mask_scope,
            format: format?,
            consent,
        })
    }

    /// Whether the destination restricts PHI; `restrict_phi: false` needs
    /// a BAA, in either form (an invalid `baa` counts as none).
    fn restriction(
        &mut self,
        members: &Members,
        path: &str,
        hipaa: bool,
        baa: Option<&Baa>,
    ) -> bool {
        let restrict_phi = self.flag(members, path, "restrict_phi");
        if restrict_phi == Some(false) && !baa.is_some_and(Baa::recorded) {
            self.error(
                &join(path, "restrict_phi"),
                "false requires \"baa\": true (a signed Business Associate Agreement with this destination)",
            );
        }
        restrict_phi.unwrap_or(hipaa)
    }

    fn flag(&mut self, members: &Members, path: &str, key: &str) -> Option<bool> {
        match members.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.error(
                    &join(path, key),
                    format!("must be true or false, not {}", v.type_name()),
                );
                None
            }
        }
    }

    fn connection(
        &mut self,
        members: &Members,
        path: &str,
        restricted: bool,
    ) -> Option<Connection> {
        let here = join(path, "connection");
        let connection = match members.get("connection") {
            Some(Value::String(s)) if s == "server-side" => Some(Connection::ServerSide),
            Some(Value::String(s)) if s == "client-side" => Some(Connection::ClientSide),
            Some(_) => {
                self.error(&here, "must be \"server-side\" or \"client-side\"");
                None
            }
            None => {
                self.error(
                    &here,
                    "missing; expected \"server-side\" or \"client-side\"",
                );
                None
            }
        };
        if connection == Some(Connection::ClientSide) && restricted {
            self.error(&here, "client-side destinations cannot restrict PHI");
        }
        connection
    }

    fn endpoint(
        &mut self,
        members: &Members,
        path: &str,
        connection: Option<Connection>,
    ) -> Option<String> {
        let here = join(path, "endpoint");
        match members.get("endpoint") {
            None => {
                if connection == Some(Connection::ServerSide) {
                    self.error(
                        &here,
                        "missing; a server-side destination needs the https URL the edge sends its events to",
                    );
                }
                None
            }
            Some(Value::String(url)) => {
                if let Err(message) = check_endpoint(url) {
                    self.error(&here, message);
                }
                Some(url.clone())
            }
            Some(v) => {
                self.error(
                    &here,
                    format!("must be a URL string, not {}", v.type_name()),
                );
                None
            }
        }
    }

    /// `calls`: the call types the destination receives.
    fn calls(&mut self, value: &Value, path: &str) -> Calls {
        let expected = || format!("expected one of {}", CallType::list());
        let Value::Array(items) = value else {
            self.error(
                path,
                format!(
                    "must be an array of call types, not {}; {}",
                    value.type_name(),
                    expected()
                ),
            );
            return Calls::NONE;
        };
        if items.is_empty() {
            self.warn(path, "empty: this destination receives no events");
        }
        let mut calls = Calls::NONE;
        for (i, item) in items.iter().enumerate() {
            let here = format!("{path}[{i}]");
            match item {
                Value::String(s) => match CallType::parse(s.as_bytes()) {
                    Some(call) => calls = calls.with(call),
                    None => self.error(
                        &here,
                        format!(
                            "unknown call type {}; {}",
                            crate::message::quoted(s),
                            expected()
                        ),
                    ),
                },
                other => self.error(
                    &here,
                    format!(
                        "must be a call type, not {}; {}",
                        other.type_name(),
                        expected()
                    ),
                ),
            }
        }
        calls
    }

    /// `mask_scope`: the name of its key scope.
    fn mask_scope(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s)
                if (1..=64).contains(&s.len())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
            {
                Some(s.clone())
            }
            _ => {
                self.error(
                    path,
                    "must be a scope name of 1 to 64 letters, digits, '_', '-' and '.'",
                );
                None
            }
        }
    }

    /// `format`: what its endpoint speaks.
    fn format(&mut self, value: &Value, path: &str) -> Option<Format> {
        let found = match value {
            Value::String(s) => Format::parse(s),
            _ => None,
        };
        if found.is_none() {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
            self.error(path, format!("must be one of {}", names.join(", ")));
        }
        found
    }

    /// `integration`: the name `integrations` routing uses for it.
    fn integration(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s)
                if !s.trim().is_empty() && s.len() <= 100 && !s.chars().any(char::is_control) =>
            {
                Some(s.clone())
            }
            Value::String(_) => {
                self.error(
                    path,
                    "must be a name of 1 to 100 characters without control characters, e.g. \"Google Analytics 4\"",
                );
                None
            }
            other => {
                self.error(path, format!("must be a string, not {}", other.type_name()));
                None
            }
        }
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
