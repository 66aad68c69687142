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
        for ((key, v), repeated) in members.iter().zip(super::repeats(members)) {
            if repeated {
                continue;
            }
            let here = join(path, key);
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

    /// Warns when an `allow` rule sends a field that commonly holds PHI,
    /// naming the action that would keep it useful without the PHI.
    fn warn_if_phi(&mut self, here: &str, list: List, rule_path: &str) {
        if list == List::Context {
            for (field, what, instead) in SENSITIVE_CONTEXT {
                let covers = rule_path == field
                    || field.starts_with(&format!("{rule_path}."))
                    || rule_path.starts_with(&format!("{field}."));
                if covers {
                    self.warn(
                        here,
                        format!("\"allow\" sends context.{field} in clear: {what}; {instead}"),
                    );
                    return;
                }
            }
            return;
        }
        if list == List::GroupProperties || list == List::Integrations {
            // Groups are organizations (a clinic, an employer), not patients.
            return;
        }
        let last = rule_path.rsplit('.').next().unwrap_or(rule_path);
        let normalized: String = last
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if let Some((_, instead)) = SENSITIVE_NAMES
            .iter()
            .find(|(names, _)| names.contains(&normalized.as_str()))
        {
            self.warn(
                here,
                format!("\"allow\" sends \"{last}\" in clear, and such fields commonly hold PHI; {instead}"),
            );
        }
    }
}

const LEAVE_OFF: &str = "consider leaving it off the list";
const URL: &str = "use {\"action\": \"url\"} (with the \"query\" parameters, \"paths\" templates and \"segments\" you need) to send it reduced";

/// Context fields that hold identifiers, why, and what to do instead.
const SENSITIVE_CONTEXT: [(&str, &str, &str); 14] = [
    (
        "ip",
        "the visitor's IP address is a HIPAA identifier",
        "use \"ip\" to send it truncated, or leave it off the list",
    ),
    (
        "userAgent",
        "the user agent fingerprints the device",
        LEAVE_OFF,
    ),
    (
        "page.url",
        "page URLs carry query strings and record numbers",
        URL,
    ),
    ("page.path", "page paths carry record numbers", URL),
    (
        "page.search",
        "query strings carry emails, names and conditions",
        URL,
    ),
    (
        "page.referrer",
        "referrer URLs carry query strings and record numbers",
        URL,
    ),
    (
        "page.title",
        "page titles name conditions and patients",
        "leave it off the list, or allow it with \"scan\"",
    ),
    (
        "referrer",
        "referrer URLs carry query strings and record numbers",
        URL,
    ),
    (
        "location",
        "the visitor's location is geography smaller than a state",
        LEAVE_OFF,
    ),
    (
        "device.id",
        "device identifiers are HIPAA identifiers",
        "use \"mask\", or leave it off the list",
    ),
    (
        "device.advertisingId",
        "advertising IDs are HIPAA identifiers",
        "use \"mask\", or leave it off the list",
    ),
    (
        "device.token",
        "device tokens are HIPAA identifiers",
        "use \"mask\", or leave it off the list",
    ),
    ("campaign.term", "search terms name conditions", LEAVE_OFF),
    ("traits", "traits repeat the user's identity", LEAVE_OFF),
];

/// Property names (lower-cased, letters and digits only) that commonly hold
/// PHI, and what to use instead of `allow`.
const SENSITIVE_NAMES: [(&[&str], &str); 8] = [
    (
        &["email", "emailaddress"],
        "use {\"action\": \"mask\", \"normalize\": \"email\"}, or leave it off the list",
    ),
    (
        &["phone", "phonenumber", "mobile", "fax"],
        "use {\"action\": \"mask\", \"normalize\": \"phone\"}, or leave it off the list",
    ),
    (
        &["zip", "zipcode", "postalcode"],
        "use \"zip3\", or leave it off the list",
    ),
    (
        &["dob", "birthday", "birthdate", "dateofbirth"],
        "use \"year\", or leave it off the list",
    ),
    (&["age"], "use \"age\" (90 and over become \"90+\")"),
    (&["ip", "ipaddress"], "use \"ip\", or leave it off the list"),
    (
        &[
            "url",
            "currenturl",
            "referrer",
            "initialreferrer",
            "search",
            "href",
        ],
        URL,
    ),
    (
        &[
            "name",
            "firstname",
            "lastname",
            "fullname",
            "address",
            "street",
            "streetaddress",
            "city",
            "ssn",
            "socialsecuritynumber",
            "mrn",
            "medicalrecordnumber",
            "diagnosis",
            "condition",
        ],
        "consider \"mask\" or leaving it off the list",
    ),
];
