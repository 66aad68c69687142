//! Destination formats: each native item is made from the sanitized event
//! only (nothing the policy removed comes back), maps IDs, time and names
//! as documented, and bodies stay within each API's limits.

mod common;

use phimask::format::{ga4_name, Format, Item};
use phimask::Sanitizer;
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn sanitizer() -> Sanitizer {
    let policy = json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": {
            "event_properties": {"plan": "allow", "mrn": "mask"},
            "user_properties": {"tier": "allow", "email": "mask"}
        },
        "destinations": {"d": {"connection": "server-side", "endpoint": "https://d.example/"}}
    });
    Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap()
}

fn sanitized(event: &Value) -> String {
    sanitizer()
        .sanitize_json(&event.to_string(), "d")
        .unwrap()
        .unwrap()
}

fn item(format: Format, event: &Value) -> Option<Value> {
    format
        .item(&sanitized(event))
        .map(|t| serde_json::from_str(&t.text).unwrap())
}

/// An item without shared members (every format but GA4).
fn plain(text: &str) -> Item {
    Item {
        shared: String::new(),
        text: text.to_owned(),
    }
}

fn texts(bodies: &[phimask::format::Body]) -> Vec<&str> {
    bodies.iter().map(|b| b.text.as_str()).collect()
}

fn track() -> Value {
    json!({"type": "track", "event": "Order Completed", "userId": "u-1", "anonymousId": "a-1",
           "messageId": "m-1", "timestamp": "2026-11-23T10:00:00.250Z",
           "properties": {"plan": "pro", "mrn": "483920", "diagnosis": "flu"},
           "context": {"traits": {"tier": "gold", "email": "jane@x.com", "name": "Jane"}}})
}

#[test]
fn amplitude_maps_ids_time_dedup_and_properties() {
    let out = sanitized(&track());
    let s: Value = serde_json::from_str(&out).unwrap();
    let a = item(Format::Amplitude, &track()).unwrap();
    assert_eq!(a["event_type"], "Order Completed");
    assert_eq!(a["user_id"], s["userId"]);
    assert_eq!(a["device_id"], s["anonymousId"]);
    assert_eq!(a["time"], 1_795_428_000_250_i64);
    assert_eq!(a["insert_id"], s["messageId"]);
    assert_eq!(
        a["insert_id"],
        common::hmac_hex(KEY, b"m-1"),
        "the masked messageId"
    );
    assert_eq!(a["event_properties"], s["properties"]);
    assert_eq!(
        a["user_properties"],
        json!({"$set": s["context"]["traits"]})
    );
    assert_eq!(a["event_properties"].get("diagnosis"), None);
}

#[test]
fn call_types_map_as_documented() {
    let base = |t: &str| json!({"type": t, "userId": "u-1", "messageId": "m-1", "timestamp": "2026-11-23T10:00:00Z"});
    let mut page = base("page");
    page["name"] = json!("Pricing");
    let named = |f: Format, e: &Value| {
        item(f, e).map(|i| {
            i[if f == Format::Amplitude {
                "event_type"
            } else {
                "event"
            }]
            .clone()
        })
    };
    assert_eq!(
        named(Format::Amplitude, &page),
        Some(json!("Viewed Pricing Page"))
    );
    assert_eq!(
        named(Format::Mixpanel, &page),
        Some(json!("Viewed Pricing Page"))
    );
    assert_eq!(named(Format::Posthog, &page), Some(json!("$pageview")));
    assert_eq!(
        named(Format::Amplitude, &base("screen")),
        Some(json!("Loaded a Screen"))
    );
    let mut identify = base("identify");
    identify["traits"] = json!({"tier": "gold"});
    assert_eq!(
        item(Format::Amplitude, &identify).unwrap()["user_properties"],
        json!({"$set": {"tier": "gold"}})
    );
    assert_eq!(
        item(Format::Posthog, &identify).unwrap()["properties"]["$set"],
        json!({"tier": "gold"})
    );
    assert_eq!(
        item(Format::Mixpanel, &identify),
        None,
        "profiles are another Mixpanel API"
    );
    let mut group = base("group");
    group["groupId"] = json!("g-1");
    let mut alias = base("alias");
    alias["previousId"] = json!("p-1");
    for f in [Format::Amplitude, Format::Mixpanel, Format::Posthog] {
        assert_eq!(item(f, &group), None, "{f:?} group");
        assert_eq!(item(f, &alias), None, "{f:?} alias");
    }
    for f in [Format::Segment, Format::Ndjson] {
        assert!(item(f, &group).is_some() && item(f, &alias).is_some());
    }
}

#[test]
fn mixpanel_needs_a_time_and_gets_a_short_insert_id() {
    let m = item(Format::Mixpanel, &track()).unwrap();
    let p = &m["properties"];
    assert_eq!(p["time"], 1_795_428_000_250_i64);
    assert_eq!(p["plan"], "pro");
    // The masked messageId's first 36 hex digits: restricted destinations
    // never see the clear id.
    assert_eq!(p["$insert_id"], common::hmac_hex(KEY, b"m-1")[..36]);
    // An event not sanitized (a BAA destination's): a long id that does
    // not fit becomes the SHA-256 of it, the same on every retry.
    let mut long = track();
    long["messageId"] = json!("ajs-next-1732270000-7e1f.with:colons_and_more_than_36");
    let raw = long.to_string();
    let id = |text: &str| -> String {
        let m: Value = serde_json::from_str(&Format::Mixpanel.item(text).unwrap().text).unwrap();
        m["properties"]["$insert_id"].as_str().unwrap().to_owned()
    };
    let first = id(&raw);
    assert!(
        first.len() == 36 && first.bytes().all(|b| b.is_ascii_hexdigit()),
        "{first}"
    );
    assert_eq!(id(&raw), first, "stable");
    assert!(!first.contains("ajs"));
    let mut untimed = track();
    untimed.as_object_mut().unwrap().remove("timestamp");
    assert_eq!(item(Format::Mixpanel, &untimed), None);
    // An event property named like a reserved member does not replace it.
    let clash = r#"{"type":"track","event":"E","userId":"u-1","timestamp":"1970-01-01T00:00:01Z","properties":{"distinct_id":"other","time":5,"plan":"pro"}}"#;
    let m: Value = serde_json::from_str(&Format::Mixpanel.item(clash).unwrap().text).unwrap();
    assert_eq!(
        m["properties"],
        json!({"time": 1000, "distinct_id": "u-1", "$insert_id": m["properties"]["$insert_id"], "$user_id": "u-1", "plan": "pro"})
    );
}

#[test]
fn without_ids_amplitude_and_posthog_send_nothing() {
    let policy = json!({"version": 1, "environment": "t", "hipaa": true,
        "identifiers": {"userId": "drop", "anonymousId": "drop"},
        "destinations": {"d": {"connection": "server-side", "endpoint": "https://d.example/"}}});
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    let out = s.sanitize_json(&track().to_string(), "d").unwrap().unwrap();
    for f in [Format::Amplitude, Format::Posthog, Format::Ga4] {
        assert_eq!(f.item(&out), None, "{f:?}");
    }
}

#[test]
fn hostile_text_is_no_item() {
    for bad in [
        "",
        "[]",
        "{",
        "null",
        "{\"type\":1}",
        "{\"type\":\"track\"}",
        "{\"type\":\"track\",\"event\":{}}",
    ] {
        for f in [
            Format::Amplitude,
            Format::Mixpanel,
            Format::Posthog,
            Format::Ga4,
        ] {
            assert_eq!(f.item(bad), None, "{f:?} {bad}");
        }
    }
}

#[test]
fn bodies_respect_count_and_byte_limits() {
    let items: Vec<Item> = (0..4500)
        .map(|i| {
            plain(&format!(
                "{{\"event_type\":\"E\",\"device_id\":\"d-{i:05}\"}}"
            ))
        })
        .collect();
    let (bodies, too_large) = Format::Amplitude.bodies(&items);
    assert!(too_large.is_empty());
    let counts: Vec<usize> = bodies
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(&b.text).unwrap();
            assert_eq!(v.get("api_key"), None, "the sender adds the credential");
            v["events"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(counts, [2000, 2000, 500]);

    let big = format!(
        "{{\"event\":\"E\",\"properties\":{{\"p\":\"{}\"}}}}",
        "x".repeat(300_000)
    );
    let items = vec![plain(&big); 14];
    let (bodies, _) = Format::Mixpanel.bodies(&items);
    assert!(bodies.iter().all(|b| b.text.len() <= 2_000_000));
    let total: usize = bodies
        .iter()
        .map(|b| serde_json::from_str::<Vec<Value>>(&b.text).unwrap().len())
        .sum();
    assert_eq!(total, 14, "every item in exactly one body");
    let listed: Vec<usize> = bodies.iter().flat_map(|b| b.items.clone()).collect();
    assert_eq!(
        listed,
        (0..14).collect::<Vec<_>>(),
        "each body lists its items, in order"
    );

    let huge = "x".repeat(600_000);
    let (bodies, too_large) = Format::Segment.bodies(&[
        plain(r#"{"a":1}"#),
        plain(&format!("\"{huge}\"")),
        plain(r#"{"b":2}"#),
    ]);
    assert_eq!(too_large, [1]);
    assert_eq!(texts(&bodies), [r#"{"batch":[{"a":1},{"b":2}]}"#]);
    assert_eq!(bodies[0].items, [0, 2]);
    // Within a queue message's size: bodies split further, and an item too
    // large for it alone is refused, as one over the API's limit is.
    let items: Vec<Item> = (0..30)
        .map(|i| plain(&format!("{{\"i\":{i},\"x\":\"{}\"}}", "y".repeat(90))))
        .chain([plain(&format!("\"{}\"", "z".repeat(2_000)))])
        .collect();
    for format in [Format::Segment, Format::Amplitude, Format::Ndjson] {
        let (bodies, too_large) = format.bodies_within(&items, 1_000);
        assert_eq!(too_large, [30], "{format:?}");
        assert!(bodies.len() > 3, "{format:?}: {} bodies", bodies.len());
        assert!(bodies.iter().all(|b| b.text.len() <= 1_000), "{format:?}");
        let listed: Vec<usize> = bodies.iter().flat_map(|b| b.items.clone()).collect();
        assert_eq!(listed, (0..30).collect::<Vec<_>>(), "{format:?}");
        // A limit above the API's changes nothing.
        assert_eq!(
            format.bodies_within(&items, usize::MAX),
            format.bodies(&items)
        );
    }
    let (bodies, _) = Format::Ndjson.bodies(&[plain("{\"a\":1}"), plain("{\"b\":2}")]);
    assert_eq!(texts(&bodies), ["{\"a\":1}\n{\"b\":2}\n"]);
    let (bodies, _) = Format::Posthog.bodies(&[plain("{}")]);
    assert_eq!(
        texts(&bodies),
        ["{\"batch\":[{}]}"],
        "no credential in a body"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// PHI planted anywhere the policy removes it never comes back in any
    /// format's item.
    #[test]
    fn nothing_removed_comes_back(call in prop::sample::select(vec!["track", "page", "screen", "identify"]),
                                  marker in "[A-Z]{6}", nested in any::<bool>()) {
        let phi = format!("PHI{marker}");
        let mut e = json!({"type": call, "event": "E", "name": "N", "userId": "u-1", "anonymousId": "a-1",
            "messageId": "m-1", "timestamp": "2026-11-23T10:00:00Z",
            "properties": {"plan": "pro", "diagnosis": &phi, "mrn": &phi},
            "traits": {"tier": "gold", "email": &phi, "address": {"street": &phi}},
            "context": {"ip": &phi, "traits": {"name": &phi}, "page": {"url": format!("https://x/{phi}")}},
            "integrations": {"All": true}, "unknownField": &phi});
        if nested {
            e["properties"]["diagnosis"] = json!({"inner": [&phi]});
        }
        let out = sanitized(&e);
        prop_assert!(!out.contains(&phi));
        for f in Format::ALL {
            if let Some(item) = f.item(&out) {
                prop_assert!(!item.text.contains(&phi) && !item.shared.contains(&phi), "{:?}: {:?}", f, item);
            }
        }
    }
}

#[test]
fn ga4_maps_ids_names_params_and_time() {
    let out = sanitized(&track());
    let s: Value = serde_json::from_str(&out).unwrap();
    let item = Format::Ga4.item(&out).unwrap();
    let shared: Value = serde_json::from_str(&format!("{{{}}}", item.shared)).unwrap();
    assert_eq!(
        shared,
        json!({"client_id": s["anonymousId"], "user_id": s["userId"]})
    );
    let e: Value = serde_json::from_str(&item.text).unwrap();
    assert_eq!(e["name"], "Order_Completed");
    assert_eq!(
        e["params"],
        json!({"plan": "pro", "mrn": s["properties"]["mrn"]})
    );
    assert_eq!(e["timestamp_micros"], 1_795_428_000_250_000_i64);

    // Without an anonymousId, the masked userId is the client ID too.
    let mut known = track();
    known.as_object_mut().unwrap().remove("anonymousId");
    let item = Format::Ga4.item(&sanitized(&known)).unwrap();
    let shared: Value = serde_json::from_str(&format!("{{{}}}", item.shared)).unwrap();
    assert_eq!(shared["client_id"], shared["user_id"]);

    // page and screen are renamed views (GA4 reserves page_view and
    // screen_view); identify, group and alias are not sent.
    let page = r#"{"type":"page","name":"Pricing","anonymousId":"a","properties":{"path":"/p"}}"#;
    let e: Value = serde_json::from_str(&Format::Ga4.item(page).unwrap().text).unwrap();
    assert_eq!(
        e,
        json!({"name": "page_viewed", "params": {"page_name": "Pricing", "path": "/p"}})
    );
    let screen = r#"{"type":"screen","name":"Home","anonymousId":"a"}"#;
    let e: Value = serde_json::from_str(&Format::Ga4.item(screen).unwrap().text).unwrap();
    assert_eq!(e["name"], "screen_viewed");
    assert_eq!(e["params"]["screen_name"], "Home");
    for call in ["identify", "group", "alias"] {
        let text = format!(
            r#"{{"type":"{call}","userId":"u","anonymousId":"a","groupId":"g","previousId":"p"}}"#
        );
        assert_eq!(Format::Ga4.item(&text), None, "{call}");
    }
}

#[test]
fn ga4_naming_rules_rename_or_drop() {
    // Names: letters, digits and _ only; a letter first; reserved names and
    // prefixes renamed; 40 characters at most.
    assert_eq!(ga4_name("Order Completed", "e_", true), "Order_Completed");
    assert_eq!(ga4_name("page_view", "e_", true), "e_page_view");
    assert_eq!(ga4_name("Session_Start", "e_", true), "e_Session_Start");
    assert_eq!(
        ga4_name("page_view", "p_", false),
        "page_view",
        "only events are reserved by name"
    );
    assert_eq!(ga4_name("_private", "p_", false), "p__private");
    assert_eq!(ga4_name("firebase_x", "p_", false), "p_firebase_x");
    assert_eq!(ga4_name("google_y", "e_", true), "e_google_y");
    assert_eq!(ga4_name("gtag.z", "p_", false), "gtag_z");
    assert_eq!(ga4_name("1st visit", "e_", true), "e_1st_visit");
    assert_eq!(ga4_name("Début", "e_", true), "D_but");
    assert_eq!(ga4_name(&"x".repeat(60), "e_", true).len(), 40);

    // Params: at most 25, strings of at most 100 characters, numbers;
    // booleans, nulls, objects and arrays are not params; a name taken
    // twice after renaming keeps the first.
    let mut props = serde_json::Map::new();
    props.insert("a b".into(), json!("first"));
    props.insert("a_b".into(), json!("second"));
    props.insert("long".into(), json!("é".repeat(101)));
    props.insert("fits".into(), json!("é".repeat(100)));
    props.insert("flag".into(), json!(true));
    props.insert("obj".into(), json!({"x": 1}));
    props.insert("list".into(), json!([1]));
    props.insert("none".into(), json!(null));
    for i in 0..40 {
        props.insert(format!("n{i:02}"), json!(i));
    }
    let event = json!({"type": "track", "event": "E", "anonymousId": "a", "properties": props});
    let e: Value =
        serde_json::from_str(&Format::Ga4.item(&event.to_string()).unwrap().text).unwrap();
    let params = e["params"].as_object().unwrap();
    assert_eq!(params.len(), 25);
    assert_eq!(params["a_b"], "first");
    assert_eq!(params["fits"], json!("é".repeat(100)));
    for gone in ["long", "flag", "obj", "list", "none", "n23"] {
        assert!(!params.contains_key(gone), "{gone}");
    }
    assert_eq!(params["n22"], 22);
}

#[test]
fn ga4_bodies_hold_one_user_and_at_most_25_events() {
    let event = |user: &str, i: usize| {
        format!(
            r#"{{"type":"track","event":"E{i}","anonymousId":"{user}","properties":{{"i":{i}}}}}"#
        )
    };
    let items: Vec<Item> = (0..60)
        .map(|i| {
            Format::Ga4
                .item(&event(if i % 2 == 0 { "a-1" } else { "b-2" }, i))
                .unwrap()
        })
        .collect();
    let (bodies, too_large) = Format::Ga4.bodies(&items);
    assert!(too_large.is_empty());
    let mut seen = Vec::new();
    for b in &bodies {
        let v: Value = serde_json::from_str(&b.text).unwrap();
        let events = v["events"].as_array().unwrap();
        assert!(events.len() <= 25 && b.text.len() < 130_000);
        let client = v["client_id"].as_str().unwrap();
        for (e, &i) in events.iter().zip(&b.items) {
            assert_eq!(
                client,
                if i % 2 == 0 { "a-1" } else { "b-2" },
                "one user per request"
            );
            assert_eq!(e["params"]["i"], i);
            seen.push(i);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..60).collect::<Vec<_>>());
    assert_eq!(bodies.len(), 4, "30 events of each user: 25 + 5, twice");
}

/// NDJSON sends an event a line: line breaks between an event's tokens
/// (which JSON allows) become spaces, so a value cannot end the line and
/// plant an event of its own; other formats keep the text as written.
#[test]
fn ndjson_items_hold_one_event_a_line() {
    let event = "{\"type\":\"track\",\"properties\":{\"plan\":[\r\n{\"type\":\"track\",\"userId\":\"victim\"}\n]}}";
    let Some(item) = Format::Ndjson.item(event) else {
        panic!("an NDJSON item for every event");
    };
    assert!(!item.text.contains(['\n', '\r']), "{}", item.text);
    let parsed: Value = serde_json::from_str(&item.text).unwrap_or(Value::Null);
    let original: Value = serde_json::from_str(event).unwrap_or(Value::Bool(false));
    assert_eq!(
        parsed, original,
        "the same JSON, only its white space changed"
    );
    let Some(segment) = Format::Segment.item(event) else {
        panic!("a Segment item for every event");
    };
    assert_eq!(segment.text, event);
}
