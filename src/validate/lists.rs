//! Validation of allowlists: their keys, rule paths and actions, and
//! warnings for `allow` rules on fields that commonly hold PHI.

use super::{join, Checker};
use crate::path;
use crate::policy::{Action, Allowlists, List, Rule};
use crate::tree::Value;

impl Checker {
    pub(super) fn allowlists(&mut self, value: &Value, path: &str) -> Allowlists {
        let mut lists = Allowlists::default();
        let Some(members) = self.object(value, path, Some(&List::ALL.map(List::key))) else {
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
            let action = self.action(v, &here);
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
            if matches!(action, Action::Allow { .. }) {
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
