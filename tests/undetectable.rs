//! Property: PHI that no detector can recognise — a name, a diagnosis, a
//! slug like `jane-doe` — planted in every place the allowlists do not
//! govern (message ids, `integrations` keys, the default `context`
//! leaves, structural fields, URL paths, queries, user info and ports,
//! keys under `mask`, keys no rule names) never reaches a restricted
//! destination: not through `sanitize_json`, not in any native format of
//! `process_request` (a batch's shared `context` included), and not in
//! the paths `explain` prints.
//!
//! The planted words all begin with `zq`, which no masked value (hex), no
//! placeholder (`:seg`, `[key]`) and nothing in the policies holds, so a
//! single case-insensitive search finds any of them that got through.

mod common;

use phimask::{Call, Sanitizer};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEY: &[u8] = b"undetectable-phi-property-key-0123456789";
const MARK: &str = "zq";

/// A name, diagnosis or slug no detector recognises: one to three words
/// of `Zq` and 3–8 letters, joined as free text, slugs or dotted ids.
/// No word fits a shape DESIGN lets through (a locale subtag, a timezone
/// area, a version), so none may pass.
fn phi() -> impl Strategy<Value = String> {
    let word = ("[a-z]{3,8}", any::<bool>()).prop_map(|(rest, upper)| {
        let head = if upper { "Zq" } else { "zq" };
        format!("{head}{rest}")
    });
    (
        prop::collection::vec(word, 1..4),
        prop::sample::select(vec![" ", "-", ".", "_", " \u{e9} "]),
    )
        .prop_map(|(words, sep)| words.join(sep))
}

/// Where the PHI goes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    MessageId,
    IntegrationTrue,
    IntegrationFalse,
    IntegrationObject,
    /// A default context leaf (`library.name`, …) or any other context path.
    Context(usize),
    Version,
    Channel,
    Timestamp,
    EventName,
    /// A path segment of a URL under a `url` rule.
    UrlSegment,
    UrlQueryValue,
    UrlQueryName,
    UrlFragment,
    UrlUserInfo,
    /// `https://clinic.example\patients\PHI`: the WHATWG parse reads `\`
    /// as `/`, so the PHI is a path segment, never the host.
    UrlBackslash,
    UrlPort,
    /// A key inside an object under `mask`.
    MaskedKey,
    /// A key no rule names (dropped; `explain` lists its path).
    UnlistedKey,
    /// A key in `context` no rule names.
    ContextKey,
    /// A key inside an array element under a rule on a deeper path.
    ElementKey,
    /// A key the policy does not name in an object under a value
    /// transform (`link` is `url`, `link.label` is listed): a transform
    /// cannot mask a key, so a member whose key is not a field name goes.
    TransformKey,
}

const CONTEXT_PATHS: [&[&str]; 8] = [
    &["library", "name"],
    &["library", "version"],
    &["locale"],
    &["timezone"],
    &["userAgent"],
    &["page", "title"],
    &["campaign", "name"],
    &["traits", "name"],
];

fn slot() -> impl Strategy<Value = Slot> {
    prop_oneof![
        Just(Slot::MessageId),
        Just(Slot::IntegrationTrue),
        Just(Slot::IntegrationFalse),
        Just(Slot::IntegrationObject),
        (0..CONTEXT_PATHS.len()).prop_map(Slot::Context),
        Just(Slot::Version),
        Just(Slot::Channel),
        Just(Slot::Timestamp),
        Just(Slot::EventName),
        Just(Slot::UrlSegment),
        Just(Slot::UrlQueryValue),
        Just(Slot::UrlQueryName),
        Just(Slot::UrlFragment),
        Just(Slot::UrlUserInfo),
        Just(Slot::UrlBackslash),
        Just(Slot::UrlPort),
        Just(Slot::MaskedKey),
        Just(Slot::UnlistedKey),
        Just(Slot::ContextKey),
        Just(Slot::ElementKey),
        Just(Slot::TransformKey),
    ]
}

/// One destination per format, all restricted (HIPAA mode), one in a key
/// scope of its own and one named by an `integration` option. Without a
/// `context` list, so the default context shapes govern `context`.
fn policy() -> Value {
    let url = json!({ "action": "url", "paths": ["/patients/:patient/results"],
                      "segments": ["services", "cardiology", "book"], "query": ["utm_*", "page"] });
    json!({
        "version": 1, "environment": "test", "hipaa": true,
        "allowlists": {
            "event_properties": { "plan": "allow", "answers": "mask", "link": url,
                                  "link.label": "allow", "items[].sku": "allow" },
            "user_properties": { "plan": "allow" }
        },
        "events": { "Appointment Booked": "allow", "*": { "rename": "Other Event" } },
        "destinations": {
            "seg": { "connection": "server-side", "endpoint": "https://seg.example/v1/batch" },
            "amp": { "connection": "server-side", "endpoint": "https://amp.example/2/httpapi", "format": "amplitude" },
            "mix": { "connection": "server-side", "endpoint": "https://mix.example/import", "format": "mixpanel",
                     "mask_scope": "mixpanel" },
            "ga": { "connection": "server-side", "endpoint": "https://ga.example/mp/collect", "format": "ga4",
                    "integration": "Google Analytics 4" },
            "ph": { "connection": "server-side", "endpoint": "https://ph.example/batch/", "format": "posthog" },
            "nd": { "connection": "server-side", "endpoint": "https://nd.example/in", "format": "ndjson" }
        }
    })
}

fn sanitizer() -> Sanitizer {
    let mut s = Sanitizer::new(&policy().to_string(), Some(KEY)).unwrap();
    s.connect("amp", Some("0123456789abcdef0123456789abcdef"))
        .unwrap();
    s.connect("ph", Some("phc_abcdefgh12345678")).unwrap();
    s
}

/// A track event with the PHI planted; ordinary values everywhere else.
/// Into `shared` go the context plants meant for a batch's shared
/// `context` (when `via_batch`).
fn plant(plants: &[(Slot, String)], via_batch: bool, shared: &mut Map<String, Value>) -> Value {
    let mut ev = Map::new();
    ev.insert("type".into(), json!("track"));
    ev.insert("event".into(), json!("Appointment Booked"));
    ev.insert("userId".into(), json!("u-1"));
    ev.insert("anonymousId".into(), json!("a-1"));
    ev.insert("timestamp".into(), json!("2026-11-23T10:00:00Z"));
    let mut props = Map::new();
    props.insert("plan".into(), json!("pro"));
    let mut integrations = Map::new();
    let mut context = Map::new();
    let mut link = String::from("https://clinic.example/services/cardiology");
    let mut link_key = None;
    for (slot, phi) in plants {
        let slug = phi.replace([' ', '\u{e9}'], "");
        match slot {
            Slot::MessageId => {
                ev.insert("messageId".into(), json!(phi));
            }
            Slot::IntegrationTrue => {
                integrations.insert(phi.clone(), json!(true));
            }
            Slot::IntegrationFalse => {
                integrations.insert(phi.clone(), json!(false));
            }
            Slot::IntegrationObject => {
                integrations.insert(phi.clone(), json!({ "session_id": 1 }));
            }
            Slot::Context(c) => {
                let target = if via_batch {
                    &mut *shared
                } else {
                    &mut context
                };
                common::insert_path(target, CONTEXT_PATHS[*c], json!(phi));
            }
            Slot::Version => {
                ev.insert("version".into(), json!(phi));
            }
            Slot::Channel => {
                ev.insert("channel".into(), json!(phi));
            }
            Slot::Timestamp => {
                ev.insert("sentAt".into(), json!(phi));
            }
            Slot::EventName => {
                ev.insert("event".into(), json!(phi));
            }
            Slot::UrlSegment => link = format!("https://clinic.example/services/{slug}/book"),
            Slot::UrlQueryValue => link = format!("https://clinic.example/book?q={slug}&page=2"),
            Slot::UrlQueryName => link = format!("https://clinic.example/book?{slug}=1&page=2"),
            Slot::UrlFragment => link = format!("https://clinic.example/book#{slug}"),
            Slot::UrlUserInfo => link = format!("https://{slug}:pw@clinic.example/book"),
            Slot::UrlBackslash => link = format!("https://clinic.example\\patients\\{slug}"),
            Slot::UrlPort => link = format!("https://clinic.example:{slug}/book"),
            Slot::MaskedKey => {
                let key = free_text_key(phi);
                props.insert(
                    "answers".into(),
                    json!({ key.clone(): "yes", "q1": { key: 2 } }),
                );
            }
            Slot::UnlistedKey => {
                props.insert(phi.clone(), json!(1));
            }
            Slot::ContextKey => {
                context.insert(phi.clone(), json!({ "x": 1 }));
            }
            Slot::ElementKey => {
                props.insert("items".into(), json!([{ "sku": "A-1", phi.clone(): "x" }]));
            }
            Slot::TransformKey => link_key = Some(free_text_key(phi)),
        }
    }
    match link_key {
        Some(key) => props.insert(
            "link".into(),
            json!({ key: link, "home": link, "label": "x" }),
        ),
        None => props.insert("link".into(), json!(link)),
    };
    ev.insert("properties".into(), Value::Object(props));
    if !integrations.is_empty() {
        ev.insert("integrations".into(), Value::Object(integrations));
    }
    if !context.is_empty() {
        ev.insert("context".into(), Value::Object(context));
    }
    Value::Object(ev)
}

/// The PHI as a key that is not a field name: a key shaped like a field
/// name passes `mask` and transforms as written (DESIGN's Keys rule);
/// free text is what must not.
fn free_text_key(phi: &str) -> String {
    if field_name(phi) {
        format!("{phi} notes")
    } else {
        phi.to_owned()
    }
}

/// DESIGN's "looks like a field name": 1–64 ASCII letters, digits, `_`,
/// `-`, `.`, `$` (the planted words hold nothing a detector finds).
fn field_name(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'))
}

fn leaks(text: &str) -> bool {
    text.to_lowercase().contains(MARK)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn undetectable_phi_never_reaches_a_restricted_destination(
        plants in prop::collection::vec((slot(), phi()), 1..5),
        via_batch in any::<bool>(),
    ) {
        let s = sanitizer();
        let mut shared = Map::new();
        let event = plant(&plants, via_batch, &mut shared);
        let text = event.to_string();

        // One event at a time, as the JavaScript API and the command do.
        if !via_batch {
            for destination in ["seg", "amp", "mix", "ga", "ph", "nd"] {
                match s.sanitize_json(&text, destination) {
                    Ok(Some(out)) => prop_assert!(!leaks(&out), "{destination} received PHI: {out}"),
                    Ok(None) => {}
                    Err(e) => prop_assert!(!leaks(&e.to_string()), "an error named PHI: {e}"),
                }
            }
            // Explain prints keys shaped like field names as written (the
            // policy's author needs them); any other key only as `[key]`.
            // A word that a field-name plant also holds may be printed as
            // part of that key (`zqab` and `zqab é zqcd`, both planted).
            let shown: Vec<&str> =
                plants.iter().map(|(_, phi)| phi.as_str()).filter(|phi| field_name(phi)).collect();
            let hidden: Vec<&str> = plants
                .iter()
                .filter(|(_, phi)| !field_name(phi))
                .flat_map(|(_, phi)| phi.split([' ', '-', '.', '_']))
                .filter(|word| word.len() > 3 && !shown.iter().any(|s| s.contains(word)))
                .collect();
            match s.explain(&text) {
                Ok(explained) => {
                    for e in explained {
                        let paths = format!("{:?}", e.paths);
                        for word in &hidden {
                            prop_assert!(!paths.contains(word), "explain printed {word}: {paths}");
                        }
                    }
                }
                Err(e) => prop_assert!(!leaks(&e.to_string()), "an error named PHI: {e}"),
            }
        }

        // The Worker's path: every native format's bodies.
        let body = if via_batch {
            json!({ "writeKey": "wk", "context": shared, "batch": [event, event] })
        } else {
            json!({ "writeKey": "wk", "batch": [event] })
        };
        let processed = s
            .process_request(body.to_string().as_bytes(), Call::parse("batch").unwrap())
            .unwrap();
        for (index, error) in &processed.rejected {
            prop_assert!(!leaks(&error.to_string()), "refusal {index} named PHI: {error}");
        }
        // No plant makes an event invalid: the PHI must be removed from
        // what is sent, not kept out by refusing or not sending the event.
        let events = if via_batch { 2 } else { 1 };
        prop_assert_eq!(processed.accepted, events, "refused: {:?}", processed.rejected);
        for name in ["seg", "nd"] {
            let sent = processed.deliveries.iter().find(|d| d.destination == name);
            prop_assert!(
                sent.is_some_and(|d| !d.bodies.is_empty()),
                "{} received nothing",
                name
            );
        }
        for delivery in &processed.deliveries {
            for b in &delivery.bodies {
                prop_assert!(!leaks(b), "{} received PHI: {b}", delivery.destination);
            }
        }
    }
}

/// Ordinary analytics values in the same places still arrive: the
/// property above would also pass if nothing were sent.
#[test]
fn ordinary_values_still_arrive() {
    let s = sanitizer();
    let event = json!({
        "type": "track", "event": "Appointment Booked", "userId": "u-1",
        "messageId": "ajs-next-1732270000-7e1f", "timestamp": "2026-11-23T10:00:00Z",
        "version": 2, "channel": "browser",
        "integrations": { "All": false, "Amplitude": true, "Google Analytics 4": true, "seg": true },
        "context": { "library": { "name": "analytics.js", "version": "npm:next-1.84.3" },
                     "locale": "en-US", "timezone": "America/New_York" },
        "properties": { "plan": "pro", "link": "https://clinic.example/services/cardiology/book?utm_source=google&page=2",
                        "answers": { "q1": "yes" }, "items": [{ "sku": "A-1" }] }
    });
    let out: Value =
        serde_json::from_str(&s.sanitize_json(&event.to_string(), "seg").unwrap().unwrap())
            .unwrap();
    assert_eq!(out["event"], "Appointment Booked");
    assert_eq!(out["timestamp"], "2026-11-23T10:00:00Z");
    assert_eq!(out["version"], 2);
    assert_eq!(out["channel"], "browser");
    // Only `All` and the policy's own integration names keep their switch.
    assert_eq!(
        out["integrations"],
        json!({ "All": false, "Google Analytics 4": true, "seg": true })
    );
    assert_eq!(
        out["context"]["library"],
        json!({ "name": "analytics.js", "version": "npm:next-1.84.3" })
    );
    assert_eq!(out["context"]["locale"], "en-US");
    assert_eq!(out["context"]["timezone"], "America/New_York");
    assert_eq!(
        out["properties"]["link"],
        "https://clinic.example/services/cardiology/book?utm_source=google&page=2"
    );
    assert_eq!(out["properties"]["items"], json!([{ "sku": "A-1" }]));
    // The message id is masked (destinations deduplicate on the mask).
    let id = out["messageId"].as_str().unwrap();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    // The answers' key looks like a field name, so it stays as written.
    assert!(out["properties"]["answers"]["q1"].as_str().unwrap().len() == 64);
}
