//! What the fuzz targets share: a policy that uses every action, and the
//! checks every output must pass.

use std::sync::OnceLock;

use phimask::Sanitizer;

/// A masking key for the targets (never a deployment's).
pub const KEY: &[u8] = b"fuzzing-key-0123456789abcdefghijklmnop";

/// Every action and option on the fields events carry, for a restricted
/// destination in each native format, one in its own key scope, and one
/// under a BAA; two gated on consent.
pub const POLICY: &str = r#"{
  "version": 1, "environment": "fuzz", "hipaa": true, "scan": ["email", "ssn"],
  "allowlists": {
    "event_properties": {
      "plan": "allow", "value": "allow", "email": {"action": "mask", "normalize": "email"},
      "phone": {"action": "mask", "normalize": "phone"}, "name": {"action": "mask", "normalize": "text"},
      "mrn": "mask", "zip": "zip3", "birthday": "year", "age": "age", "ip": {"action": "ip", "mode": "zero"},
      "notes": {"action": "allow", "scan": true, "on_match": "mask"}, "comment": {"action": "allow", "scan": ["id", "card"], "on_match": "drop"},
      "url": {"action": "url", "query": ["utm_*", "q"], "paths": ["/patients/:patient/visits/:visit"], "segments": ["patients", "visits", "book"]},
      "items[].sku": "allow", "items[].price": "allow", "address": "allow", "address.street": "drop", "nested.deep[].x": "mask"
    },
    "user_properties": {"plan": "allow", "email": "mask", "birthday": "year", "address.postalCode": "zip3"},
    "group_properties": {"name": "allow"},
    "context": {"ip": "ip", "locale": "allow", "page.url": "url", "page.path": {"action": "url", "segments": "*"}, "library.name": "allow"},
    "integrations": {"Amplitude.session_id": "allow"}
  },
  "events": {"Signed Up": "allow", "Viewed Results": {"rename": "Viewed Page"}, "Secret": "drop"},
  "destinations": {
    "restricted": {"connection": "server-side", "endpoint": "https://r.example/in"},
    "scoped": {"connection": "server-side", "endpoint": "https://s.example/in", "mask_scope": "other",
               "allowlists": {"event_properties": {"plan": "mask"}}, "consent": ["analytics"]},
    "amplitude": {"connection": "server-side", "endpoint": "https://a.example/2/httpapi", "format": "amplitude"},
    "mixpanel": {"connection": "server-side", "endpoint": "https://m.example/import", "format": "mixpanel"},
    "ga4": {"connection": "server-side", "endpoint": "https://g.example/mp/collect", "format": "ga4",
            "consent": ["analytics", "advertising"]},
    "posthog": {"connection": "server-side", "endpoint": "https://p.example/batch/", "format": "posthog"},
    "lines": {"connection": "server-side", "endpoint": "https://n.example/in", "format": "ndjson"},
    "baa": {"connection": "server-side", "endpoint": "https://b.example/in", "restrict_phi": false, "baa": true}
  },
  "consent": {"mode": "opt-out", "categories": {"analytics": ["C0002", "Analytics"], "advertising": ["C0004"]},
              "gpc": ["advertising"], "regions": {"US-WA": {"mode": "opt-in"}, "DE": {"mode": "opt-in"}}}
}"#;

/// The destinations of [`POLICY`] that consent gates, and those GPC closes.
pub const GATED: [&str; 2] = ["scoped", "ga4"];
pub const GPC_GATED: [&str; 1] = ["ga4"];

/// The sanitizer of [`POLICY`], with every destination's credential set.
pub fn permissive() -> &'static Sanitizer {
    static S: OnceLock<Sanitizer> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = Sanitizer::new(POLICY, Some(KEY)).expect("the fuzz policy is valid");
        for (d, secret) in [
            ("amplitude", Some("0123456789abcdef0123456789abcdef")),
            ("mixpanel", Some("fuzz-project-secret")),
            ("ga4", Some("G-FUZZ1234:fuzz-secret")),
            ("posthog", Some("phc_fuzzprojectkey12345")),
        ] {
            s.connect(d, secret)
                .expect("the fuzz credentials are valid");
        }
        s
    })
}

/// Panics unless `text` is one JSON value.
pub fn check_json(text: &str) {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        panic!("output is not valid JSON ({e}): {text}");
    }
}

/// Panics unless every body of a request is valid JSON in its format (one
/// value, or one per line for NDJSON).
pub fn check_bodies(done: &phimask::process::Processed) {
    for d in &done.deliveries {
        for body in &d.bodies {
            if d.destination == "lines" {
                body.lines().for_each(check_json);
            } else {
                check_json(body);
            }
        }
    }
}
