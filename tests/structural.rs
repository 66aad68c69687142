//! The fields no allowlist governs (issue 22, classes 1, 6 and 7), end to
//! end: PHI no detector recognises ("Jane Doe", "HIV positive",
//! "jane-doe", a six-digit MRN) planted in `messageId`, `version`,
//! `integrations` keys and the default `context` never reaches a
//! restricted destination, through `sanitize_json` and through
//! `process_request` in every format, a batch's shared context included;
//! what real SDKs send still passes; native dedup ids are the masked
//! `messageId` in the destination's key scope.

mod common;

use phimask::{Call, Sanitizer};
use serde_json::{json, Value};

const KEY: &[u8] = b"structural-test-key-0123456789abcdef";
const AMPLITUDE_KEY: &str = "0123456789abcdef0123456789abcdef";

/// PHI that no detector finds, as planted below.
const PHI: [&str; 5] = [
    "Jane Doe",
    "HIV positive",
    "jane-doe",
    "Jane.Doe-HIV-positive",
    "483920",
];

/// One restricted destination per format (one in its own key scope), no
/// `context` list (so the default context applies), and a BAA one.
fn policy() -> Value {
    json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": { "event_properties": { "plan": "allow", "born": "year" } },
        "destinations": {
            "seg": {"connection": "server-side", "endpoint": "https://seg.example/v1/batch"},
            "amp": {"connection": "server-side", "endpoint": "https://amp.example/2/httpapi", "format": "amplitude",
                    "mask_scope": "amp"},
            "mix": {"connection": "server-side", "endpoint": "https://mix.example/import", "format": "mixpanel"},
            "ga": {"connection": "server-side", "endpoint": "https://ga.example/mp/collect", "format": "ga4",
                   "integration": "Google Analytics 4"},
            "ph": {"connection": "server-side", "endpoint": "https://ph.example/batch/", "format": "posthog"},
            "nd": {"connection": "server-side", "endpoint": "https://nd.example/in", "format": "ndjson"},
            "lake": {"connection": "server-side", "endpoint": "https://lake.example/in", "format": "ndjson",
                     "restrict_phi": false, "baa": true}
        }
    })
}

const RESTRICTED: [&str; 6] = ["seg", "amp", "mix", "ga", "ph", "nd"];

fn sanitizer() -> Sanitizer {
    let mut s = Sanitizer::new(&policy().to_string(), Some(KEY)).unwrap();
    s.connect("amp", Some(AMPLITUDE_KEY)).unwrap();
    s.connect("ph", Some("phc_abcdefgh12345678")).unwrap();
    s
}

/// A track with PHI in every structural slot.
fn hostile(n: usize) -> Value {
    json!({
        "type": "track", "event": "Viewed", "anonymousId": format!("a-{n}"),
        "messageId": format!("Jane.Doe-HIV-positive-{n}"),
        "timestamp": "2026-11-23T10:00:00Z",
        "version": 483920,
        "channel": "Jane Doe",
        "integrations": {"All": true, "Jane Doe HIV positive": true, "jane-doe": false,
                         "HIV positive": {"x": 1}},
        "properties": {"plan": "pro", "born": "1925-03-14"},
        "context": {
            "library": {"name": "Jane Doe", "version": "483920", "extra": "HIV positive"},
            "locale": "jane-doe", "timezone": "America/Jane Doe", "page": {"title": "HIV positive"}
        }
    })
}

fn leaks(text: &str) -> Vec<&'static str> {
    PHI.into_iter().filter(|p| text.contains(p)).collect()
}

#[test]
fn undetectable_phi_in_structural_fields_never_reaches_a_restricted_destination() {
    let s = sanitizer();
    let event = hostile(1).to_string();
    for d in RESTRICTED {
        let out = s.sanitize_json(&event, d).unwrap().unwrap();
        assert_eq!(leaks(&out), Vec::<&str>::new(), "{d}: {out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["integrations"], json!({"All": true}), "{d}");
        assert_eq!(v["context"], json!({"library": {}}), "{d}");
        assert_eq!(v.get("version"), None, "{d}");
        assert_eq!(v["properties"]["born"], "90+ years", "{d}");
    }
    // The BAA destination gets the event as it came.
    let lake = s.sanitize_json(&event, "lake").unwrap().unwrap();
    assert_eq!(leaks(&lake).len(), PHI.len());
}

/// The masked value of `clear` in a destination's key scope.
fn masked(scope: Option<&str>, clear: &str) -> String {
    match scope {
        None => common::hmac_hex(KEY, clear.as_bytes()),
        Some(name) => {
            let key = common::hmac_bytes(KEY, format!("phimask-scope:{name}").as_bytes());
            common::hmac_hex(&key, clear.as_bytes())
        }
    }
}

#[test]
fn process_request_sends_no_structural_phi_in_any_format_and_dedups_on_the_masked_id() {
    let s = sanitizer();
    let events: Vec<String> = (0..4).map(|n| hostile(n).to_string()).collect();
    // The batch's shared context and integrations are hostile too.
    let body = format!(
        r#"{{"writeKey":"wk","context":{{"library":{{"name":"Jane Doe","version":"HIV positive"}},"locale":"jane-doe","timezone":"Etc/Jane_Doe"}},"integrations":{{"jane-doe":true}},"batch":[{}]}}"#,
        events.join(",")
    );
    let done = s.process_request(body.as_bytes(), Call::Batch).unwrap();
    assert_eq!(done.accepted, 4);
    for d in &done.deliveries {
        let all = d.bodies.concat();
        if d.destination == "lake" {
            assert!(all.contains("Jane Doe"), "the BAA destination gets it all");
            continue;
        }
        assert!(!d.bodies.is_empty(), "{}", d.destination);
        assert_eq!(leaks(&all), Vec::<&str>::new(), "{}: {all}", d.destination);
    }
    let body_of = |name: &str| -> String {
        let d = done
            .deliveries
            .iter()
            .find(|d| d.destination == name)
            .unwrap();
        d.bodies.concat()
    };
    let id = |n: usize| format!("Jane.Doe-HIV-positive-{n}");
    // Segment and NDJSON: the masked messageId (default scope).
    let seg: Value = serde_json::from_str(&body_of("seg")).unwrap();
    for (n, e) in seg["batch"].as_array().unwrap().iter().enumerate() {
        assert_eq!(e["messageId"], masked(None, &id(n)));
    }
    for (n, line) in body_of("nd").lines().enumerate() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["messageId"], masked(None, &id(n)));
    }
    // Amplitude's insert_id: the masked messageId in its own key scope.
    let amp: Value = serde_json::from_str(&body_of("amp")).unwrap();
    for (n, e) in amp["events"].as_array().unwrap().iter().enumerate() {
        assert_eq!(e["insert_id"], masked(Some("amp"), &id(n)));
    }
    // Mixpanel's $insert_id: the masked messageId's first 36 hex digits.
    let mix: Value = serde_json::from_str(&body_of("mix")).unwrap();
    for (n, e) in mix.as_array().unwrap().iter().enumerate() {
        assert_eq!(e["properties"]["$insert_id"], masked(None, &id(n))[..36]);
    }
    // GA4 and PostHog carry no dedup id of it at all.
    for name in ["ga", "ph"] {
        assert!(!body_of(name).contains("Jane.Doe"), "{name}");
    }
}

#[test]
fn what_real_sdks_send_still_passes_also_from_a_batchs_shared_context() {
    let s = sanitizer();
    let sdks = [
        ("@segment/analytics-node", "2.1.3"),
        ("analytics-node", "2.0.1"),
        ("analytics-python", "2.3.3"),
        ("analytics.js", "npm:next-1.84.3"),
        ("analytics.js", "next-1.84.3"),
        ("RudderLabs JavaScript SDK", "3.11.5"),
    ];
    for (name, version) in sdks {
        let context = json!({"library": {"name": name, "version": version},
                             "locale": "en-US", "timezone": "America/New_York", "ip": "203.0.113.7"});
        let event = json!({"type": "track", "event": "E", "anonymousId": "a", "messageId": "m",
                           "timestamp": "2026-11-23T10:00:00Z", "version": 2});
        let body = json!({"context": context, "batch": [event]}).to_string();
        let done = s.process_request(body.as_bytes(), Call::Batch).unwrap();
        let seg = done
            .deliveries
            .iter()
            .find(|d| d.destination == "seg")
            .unwrap();
        let out: Value = serde_json::from_str(&seg.bodies[0]).unwrap();
        let e = &out["batch"][0];
        assert_eq!(
            e["context"],
            json!({"library": {"name": name, "version": version}, "locale": "en-US", "timezone": "America/New_York"}),
            "{name} {version}"
        );
        assert_eq!(e["version"], 2);
    }
}

#[test]
fn year_boundaries_follow_the_events_time_and_a_fixed_now() {
    let mut s = sanitizer();
    let year = |s: &Sanitizer, born: &str, time: Option<(&str, &str)>| -> Value {
        let mut e = json!({"type": "track", "event": "E", "anonymousId": "a", "properties": {"born": born}});
        if let Some((k, v)) = time {
            e[k] = json!(v);
        }
        let out = s.sanitize_json(&e.to_string(), "seg").unwrap().unwrap();
        serde_json::from_str::<Value>(&out).unwrap()["properties"]["born"].clone()
    };
    let ts = Some(("timestamp", "2026-06-01T00:00:00Z"));
    assert_eq!(year(&s, "1937-12-31", ts), "1937", "89 years before");
    assert_eq!(year(&s, "1936-12-31", ts), "90+ years", "90 years before");
    let received = Some(("receivedAt", "2000-06-01T00:00:00Z"));
    assert_eq!(year(&s, "1911-01-01", received), "1911");
    assert_eq!(year(&s, "1910-01-01", received), "90+ years");
    // Without a time of its own, now: fixed here, so the test is exact.
    s.fix_now(1_262_304_000_000); // 2010-01-01T00:00:00Z
    assert_eq!(year(&s, "1921-01-01", None), "1921");
    assert_eq!(year(&s, "1920-12-31", None), "90+ years");
    // A sentAt does not count: now decides.
    assert_eq!(
        year(&s, "1921-01-01", Some(("sentAt", "2026-06-01T00:00:00Z"))),
        "1921"
    );
}
