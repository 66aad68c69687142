//! Validation of the `consent` section (purposes and their category ids,
//! mode, GPC, regions) and of a destination's `consent` purposes; and the
//! warning for an advertising tool that no consent gates.

use super::{join, Checker};
use crate::consent::{is_region, Consent, Mode, Purpose};
use crate::policy::{Connection, Destination};
use crate::tree::Value;

const CONSENT_KEYS: [&str; 4] = ["mode", "categories", "gpc", "regions"];

const MODE_EXPECTED: &str = "must be \"opt-in\" or \"opt-out\"";

/// Longest category id accepted (OneTrust's are `C0004`; TCF purposes and
/// custom CMP ids are short too).
const MAX_ID_BYTES: usize = 128;

/// Whether `name` may name a purpose: it is shown in explanations and data
/// maps, so a field-name-like word.
fn is_purpose_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Checker {
    /// The `consent` section. Its purpose names are kept in
    /// `self.purposes` even when something else in it is wrong, so
    /// destinations are checked against them without a cascade of errors.
    pub(super) fn consent(&mut self, value: &Value) -> Option<Consent> {
        self.purposes = Some(Vec::new());
        let members = self.object(value, "consent", Some(&CONSENT_KEYS))?;
        let get = |key: &str| members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let errors = self.errors.len();
        let mode = match get("mode") {
            Some(v) => self.mode(v, "consent.mode"),
            None => Some(Mode::OptIn),
        };
        let purposes = match get("categories") {
            Some(v) => self.categories(v),
            None => {
                self.error(
                    "consent.categories",
                    "missing; map each purpose to the consent category ids that stand for it, e.g. {\"advertising\": [\"C0004\"]}",
                );
                Vec::new()
            }
        };
        let names: Vec<String> = purposes.iter().map(|p| p.name.clone()).collect();
        self.purposes = Some(names.clone());
        let gpc = match get("gpc") {
            Some(v) => self.purpose_list(v, "consent.gpc", &names, false),
            None => Vec::new(),
        };
        if gpc.is_empty() && !names.is_empty() {
            self.warn(
                "consent.gpc",
                "no purpose is denied by a Global Privacy Control signal (Sec-GPC); California's and Colorado's laws require honouring it as an opt-out of sale, sharing and targeted advertising: list those purposes here",
            );
        }
        let regions = match get("regions") {
            Some(v) => self.regions(v),
            None => Vec::new(),
        };
        (self.errors.len() == errors).then_some(Consent {
            mode: mode?,
            purposes,
            gpc,
            regions,
        })
    }

    fn mode(&mut self, value: &Value, path: &str) -> Option<Mode> {
        let mode = match value {
            Value::String(s) => Mode::parse(s),
            _ => None,
        };
        if mode.is_none() {
            self.error(path, MODE_EXPECTED);
        }
        mode
    }

    /// `categories`: purpose name to its non-empty list of category ids.
    fn categories(&mut self, value: &Value) -> Vec<Purpose> {
        let path = "consent.categories";
        let mut out = Vec::new();
        let Some(members) = self.object(value, path, None) else {
            return out;
        };
        if members.is_empty() {
            self.error(path, "no purposes; name at least one");
        }
        for ((name, ids), repeated) in members.iter().zip(super::repeats(members)) {
            if repeated {
                continue;
            }
            let here = join(path, name);
            if !is_purpose_name(name) {
                self.error(
                    &here,
                    "purpose name must be 1 to 64 letters, digits, '_', '-' and '.'",
                );
                continue;
            }
            out.push(Purpose {
                name: name.clone(),
                ids: self.category_ids(ids, &here),
            });
        }
        out
    }

    fn category_ids(&mut self, value: &Value, path: &str) -> Vec<String> {
        let Value::Array(items) = value else {
            self.error(
                path,
                format!(
                    "must be an array of consent category ids (e.g. [\"C0004\", \"Advertising\"]), not {}",
                    value.type_name()
                ),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                path,
                "empty; list the consent category ids that stand for this purpose",
            );
        }
        let mut ids: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let here = format!("{path}[{i}]");
            match item {
                Value::String(id) if id.trim().is_empty() => {
                    self.error(&here, "category id must not be empty")
                }
                Value::String(id) if id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) => {
                    self.error(
                        &here,
                        format!("category id must be at most {MAX_ID_BYTES} bytes, without control characters"),
                    )
                }
                Value::String(id) if ids.contains(id) => self.error(&here, "listed twice"),
                Value::String(id) => ids.push(id.clone()),
                other => self.error(
                    &here,
                    format!(
                        "category id must be a string, not {}",
                        other.type_name()
                    ),
                ),
            }
        }
        ids
    }

    /// A list of purpose names, each of `known`; `required`: not empty.
    pub(super) fn purpose_list(
        &mut self,
        value: &Value,
        path: &str,
        known: &[String],
        required: bool,
    ) -> Vec<String> {
        let Value::Array(items) = value else {
            self.error(
                path,
                format!(
                    "must be an array of purpose names, not {}",
                    value.type_name()
                ),
            );
            return Vec::new();
        };
        if required && items.is_empty() {
            self.error(
                path,
                "empty; name the purposes it needs, or leave \"consent\" out for a destination that needs none",
            );
        }
        let mut out: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let here = format!("{path}[{i}]");
            match item {
                Value::String(name) if out.contains(name) => self.error(&here, "listed twice"),
                Value::String(name) if known.contains(name) => out.push(name.clone()),
                Value::String(name) => {
                    let expected = if known.is_empty() {
                        "the top-level \"consent\" section defines no purposes".to_owned()
                    } else {
                        format!("expected one of {}", known.join(", "))
                    };
                    self.error(
                        &here,
                        format!(
                            "unknown purpose {} (not in consent.categories); {expected}",
                            crate::message::quoted(name)
                        ),
                    )
                }
                other => self.error(
                    &here,
                    format!("must be a purpose name, not {}", other.type_name()),
                ),
            }
        }
        out
    }

    /// `regions`: region code to `{"mode": …}`.
    fn regions(&mut self, value: &Value) -> Vec<(String, Mode)> {
        let path = "consent.regions";
        let mut out = Vec::new();
        let Some(members) = self.object(value, path, None) else {
            return out;
        };
        for ((code, v), repeated) in members.iter().zip(super::repeats(members)) {
            if repeated {
                continue;
            }
            let here = join(path, code);
            if !is_region(code) {
                self.error(
                    &here,
                    "must be an ISO 3166-2 code in upper case such as \"US-WA\", or a country code such as \"US\"",
                );
                continue;
            }
            let Some(settings) = self.object(v, &here, Some(&["mode"])) else {
                continue;
            };
            match settings.iter().find(|(k, _)| k == "mode") {
                Some((_, mode)) => {
                    if let Some(mode) = self.mode(mode, &join(&here, "mode")) {
                        out.push((code.clone(), mode));
                    }
                }
                None => self.error(
                    &join(&here, "mode"),
                    "missing; \"opt-in\" or \"opt-out\" for visitors there",
                ),
            }
        }
        out
    }

    /// Warns of each purpose `gpc` lists that no server-side destination
    /// needs: a GPC signal then changes nothing that is sent.
    pub(super) fn gpc_needed(&mut self, consent: &Consent, destinations: &[Destination]) {
        for (i, purpose) in consent.gpc.iter().enumerate() {
            let needed = destinations
                .iter()
                .any(|d| d.connection == Connection::ServerSide && d.consent.contains(purpose));
            if !needed {
                self.warn(
                    &format!("consent.gpc[{i}]"),
                    format!(
                        "no server-side destination needs {}: a Global Privacy Control signal changes nothing that is sent, and /.well-known/gpc.json says GPC is not honoured; gate the destinations that sell or share data on it",
                        crate::message::quoted(purpose)
                    ),
                );
            }
        }
    }

    /// A destination's `consent`: the purposes it needs.
    pub(super) fn destination_consent(&mut self, value: &Value, path: &str) -> Vec<String> {
        match self.purposes.clone() {
            Some(known) => self.purpose_list(value, path, &known, true),
            None => {
                self.error(
                    path,
                    "no top-level \"consent\" section defines purposes; add one with \"categories\"",
                );
                Vec::new()
            }
        }
    }
}

/// Host names and name words of advertising tools: a destination that
/// sends to one should be gated on the visitor's consent.
const AD_HOSTS: [&str; 16] = [
    "facebook.com",
    "facebook.net",
    "tiktok.com",
    "snapchat.com",
    "linkedin.com",
    "pinterest.com",
    "ads-api.twitter.com",
    "ads-api.x.com",
    "ads-api.reddit.com",
    "googleads.googleapis.com",
    "googleadservices.com",
    "doubleclick.net",
    "bing.com",
    "criteo.com",
    "adsrvr.org",
    "amazon-adsystem.com",
];

const AD_WORDS: [&str; 16] = [
    "ads",
    "ad",
    "adwords",
    "advertising",
    "facebook",
    "meta",
    "capi",
    "pixel",
    "tiktok",
    "snapchat",
    "snap",
    "pinterest",
    "linkedin",
    "reddit",
    "criteo",
    "doubleclick",
];

/// What makes a destination look like an advertising tool (its endpoint's
/// host, or a word of its name or integration name), if anything does.
pub(super) fn advertising_tool(
    name: &str,
    integration: Option<&str>,
    endpoint: Option<&str>,
) -> Option<String> {
    let host = endpoint.and_then(|e| e.split_once("://")).map(|(_, rest)| {
        let end = rest.find(['/', '?', ':']).unwrap_or(rest.len());
        rest[..end].to_ascii_lowercase()
    });
    if let Some(host) = host {
        if let Some(ad) = AD_HOSTS
            .iter()
            .find(|ad| host == **ad || host.ends_with(&format!(".{ad}")))
        {
            return Some(format!("its endpoint is on {ad}"));
        }
    }
    for text in [Some(name), integration].into_iter().flatten() {
        let lower = text.to_ascii_lowercase();
        if let Some(word) = lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find(|w| AD_WORDS.contains(w))
        {
            return Some(format!(
                "its name {} says {}",
                crate::message::quoted(text),
                crate::message::quoted(word)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::advertising_tool;

    #[test]
    fn advertising_tools() {
        assert!(advertising_tool("ads", None, None).is_some());
        assert!(advertising_tool("meta_capi", None, None).is_some());
        assert!(advertising_tool("x", Some("Facebook Conversions API"), None).is_some());
        assert!(advertising_tool(
            "conv",
            None,
            Some("https://graph.facebook.com/v19.0/1/events")
        )
        .is_some());
        assert!(advertising_tool("t", None, Some("https://business-api.tiktok.com/x")).is_some());
        for plain in ["amplitude", "warehouse", "metadata", "loads", "mixpanel"] {
            assert_eq!(
                advertising_tool(plain, None, Some("https://api2.amplitude.com/2/httpapi")),
                None,
                "{plain}"
            );
        }
    }
}
