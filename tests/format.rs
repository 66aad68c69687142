//! Destination formats: each native item is made from the sanitized event
//! only (nothing the policy removed comes back), maps IDs, time and names
//! as documented, and bodies stay within each API's limits.

use phimask::format::Format;
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
        .map(|t| serde_json::from_str(&t).unwrap())
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
    assert_eq!(p["$insert_id"], "m-1");
    let mut long = track();
    long["messageId"] = json!("ajs-next-1732270000-7e1f.with:colons_and_more_than_36");
    let id = item(Format::Mixpanel, &long).unwrap()["properties"]["$insert_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(
        item(Format::Mixpanel, &long).unwrap()["properties"]["$insert_id"],
        id.as_str(),
        "stable"
    );
    let mut untimed = track();
    untimed.as_object_mut().unwrap().remove("timestamp");
    assert_eq!(item(Format::Mixpanel, &untimed), None);
    // An event property named like a reserved member does not replace it.
    let clash = r#"{"type":"track","event":"E","userId":"u-1","timestamp":"1970-01-01T00:00:01Z","properties":{"distinct_id":"other","time":5,"plan":"pro"}}"#;
    let m: Value = serde_json::from_str(&Format::Mixpanel.item(clash).unwrap()).unwrap();
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
    assert_eq!(Format::Amplitude.item(&out), None);
    assert_eq!(Format::Posthog.item(&out), None);
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
        for f in [Format::Amplitude, Format::Mixpanel, Format::Posthog] {
            assert_eq!(f.item(bad), None, "{f:?} {bad}");
        }
    }
}

#[test]
fn bodies_respect_count_and_byte_limits() {
    let items: Vec<String> = (0..4500)
        .map(|i| format!("{{\"event_type\":\"E\",\"device_id\":\"d-{i:05}\"}}"))
        .collect();
    let (bodies, too_large) = Format::Amplitude.bodies(&items, Some("key-1"));
    assert!(too_large.is_empty());
    let counts: Vec<usize> = bodies
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            assert_eq!(v["api_key"], "key-1");
            v["events"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(counts, [2000, 2000, 500]);

    let big = format!(
        "{{\"event\":\"E\",\"properties\":{{\"p\":\"{}\"}}}}",
        "x".repeat(300_000)
    );
    let items = vec![big.clone(); 14];
    let (bodies, _) = Format::Mixpanel.bodies(&items, None);
    assert!(bodies.iter().all(|b| b.len() <= 2_000_000));
    let total: usize = bodies
        .iter()
        .map(|b| serde_json::from_str::<Vec<Value>>(b).unwrap().len())
        .sum();
    assert_eq!(total, 14, "every item in exactly one body");

    let huge = "x".repeat(600_000);
    let (bodies, too_large) = Format::Segment.bodies(
        &[
            r#"{"a":1}"#.into(),
            format!("\"{huge}\""),
            r#"{"b":2}"#.into(),
        ],
        None,
    );
    assert_eq!(too_large, [1]);
    assert_eq!(bodies, [r#"{"batch":[{"a":1},{"b":2}]}"#]);
    let (bodies, _) = Format::Ndjson.bodies(&["{\"a\":1}".into(), "{\"b\":2}".into()], None);
    assert_eq!(bodies, ["{\"a\":1}\n{\"b\":2}\n"]);
    // A credential is written as a JSON string, whatever it holds.
    let (bodies, _) = Format::Posthog.bodies(&["{}".into()], Some("k\"}, \"x\": \"y"));
    let v: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(v["api_key"], "k\"}, \"x\": \"y");
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
                prop_assert!(!item.contains(&phi), "{:?}: {}", f, item);
            }
        }
    }
}
