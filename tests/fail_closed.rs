//! Property: PHI planted in the fields no allowlist governs — structural
//! fields, event and page names, `integrations`, `context` — never reaches
//! a restricted destination in clear, whatever the call type and wherever
//! it is planted.

mod common;

use phimask::Sanitizer;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEY: &str = "fail-closed-property-key-0123456789abcdef";

/// PHI as it turns up in events. Every one of them is detectable, so it
/// may also be planted in an `integrations` key.
const DETECTABLE: [&str; 6] = [
    "jane.doe@example.com",
    "123-45-6789",
    "(555) 123-4567",
    "+15551234567",
    "4111 1111 1111 1111",
    "203.0.113.7",
];
/// PHI no detector can recognize: planted only where nothing free-form
/// is kept.
const UNDETECTABLE: [&str; 3] = ["Jane Doe", "HIV positive", "Viewed HIV Test Results"];

const TYPES: [&str; 6] = ["track", "identify", "group", "page", "screen", "alias"];

/// Where a PHI string is planted.
#[derive(Debug, Clone, Copy)]
enum Slot {
    MessageId,
    Timestamp(usize),
    Channel,
    Version,
    Name(usize),
    IntegrationKey,
    IntegrationValue(usize),
    Context(usize),
    Other,
}

const TIMESTAMPS: [&str; 4] = ["timestamp", "originalTimestamp", "sentAt", "receivedAt"];
const NAMES: [&str; 3] = ["event", "name", "category"];
const CONTEXT_PATHS: [&[&str]; 7] = [
    &["ip"],
    &["userAgent"],
    &["page", "url"],
    &["library", "email"],
    &["location", "city"],
    &["campaign", "term"],
    &["device", "id"],
];

fn slot() -> impl Strategy<Value = Slot> {
    prop_oneof![
        Just(Slot::MessageId),
        (0..TIMESTAMPS.len()).prop_map(Slot::Timestamp),
        Just(Slot::Channel),
        Just(Slot::Version),
        (0..NAMES.len()).prop_map(Slot::Name),
        Just(Slot::IntegrationKey),
        (0usize..3).prop_map(Slot::IntegrationValue),
        (0..CONTEXT_PATHS.len()).prop_map(Slot::Context),
        Just(Slot::Other),
    ]
}

/// The event with PHI planted; returns the planted strings too.
fn plant(ty: &str, plants: &[(Slot, usize)]) -> (Value, Vec<&'static str>) {
    let mut ev = Map::new();
    ev.insert("type".into(), json!(ty));
    ev.insert("anonymousId".into(), json!("anon-1"));
    if ty == "track" {
        ev.insert("event".into(), json!("Appointment Booked"));
    }
    if ty == "group" {
        ev.insert("groupId".into(), json!("g-1"));
    }
    if ty == "alias" {
        ev.insert("previousId".into(), json!("p-1"));
    }
    let mut planted = Vec::new();
    let mut integrations = Map::new();
    let mut context = Map::new();
    for &(slot, i) in plants {
        let detectable = DETECTABLE[i % DETECTABLE.len()];
        let phi = if i < DETECTABLE.len() {
            detectable
        } else {
            UNDETECTABLE[i % UNDETECTABLE.len()]
        };
        match slot {
            Slot::MessageId => {
                ev.insert("messageId".into(), json!(detectable));
                planted.push(detectable);
                continue;
            }
            Slot::Timestamp(t) => ev.insert(TIMESTAMPS[t].into(), json!(phi)),
            Slot::Channel => ev.insert("channel".into(), json!(phi)),
            Slot::Version => ev.insert("version".into(), json!(phi)),
            Slot::Name(n) => ev.insert(NAMES[n].into(), json!(phi)),
            Slot::IntegrationKey => {
                integrations.insert(detectable.into(), json!(true));
                planted.push(detectable);
                continue;
            }
            Slot::IntegrationValue(depth) => {
                let mut v = json!(phi);
                for _ in 0..depth {
                    v = json!({ "note": v });
                }
                integrations.insert("Amplitude".into(), json!({ "user": v }));
                None
            }
            Slot::Context(c) => {
                common::insert_path(&mut context, CONTEXT_PATHS[c], json!(phi));
                None
            }
            Slot::Other => ev.insert("email".into(), json!(phi)),
        };
        planted.push(phi);
    }
    if !integrations.is_empty() {
        ev.insert("integrations".into(), Value::Object(integrations));
    }
    if !context.is_empty() {
        ev.insert("context".into(), Value::Object(context));
    }
    (Value::Object(ev), planted)
}

fn policy(other_names: &Value) -> String {
    json!({
        "version": 1, "environment": "test", "hipaa": true,
        "allowlists": { "event_properties": { "plan": "allow" } },
        "events": { "Appointment Booked": "allow", "*": other_names },
        "destinations": {
            "amplitude": { "connection": "server-side", "endpoint": "https://a.example/" },
            "ga4": { "connection": "server-side", "endpoint": "https://g.example/",
                     "integration": "Google Analytics 4", "calls": ["track", "page", "screen"] }
        }
    })
    .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn planted_phi_never_reaches_a_restricted_destination(
        ty in prop::sample::select(TYPES.to_vec()),
        plants in prop::collection::vec((slot(), 0usize..9), 1..6),
        rename in any::<bool>(),
    ) {
        let other = if rename { json!({ "rename": "Other Event" }) } else { json!("drop") };
        let s = Sanitizer::new(&policy(&other), Some(KEY.as_bytes())).unwrap();
        let (event, planted) = plant(ty, &plants);
        let text = event.to_string();
        for destination in ["amplitude", "ga4"] {
            match s.sanitize_json(&text, destination) {
                Ok(Some(out)) => {
                    for phi in &planted {
                        prop_assert!(!out.contains(phi), "{} reached {} in clear: {}", phi, destination, out);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // A refusal names no value (a name that is not a string
                    // makes a track incomplete).
                    for phi in &planted {
                        prop_assert!(!e.to_string().contains(phi));
                    }
                }
            }
        }
    }
}
