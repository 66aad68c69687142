//! One call per request: `process_request` gives every destination exactly
//! what sanitizing each event for it, mapping it to its format and
//! gathering the items into bodies would, with each event read once;
//! refused events go nowhere; credentials are checked per format and
//! never echoed.

mod common;

use common::delivery;

use phimask::format::{Format, Item};
use phimask::{Call, Error, Sanitizer};
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const AMPLITUDE_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Six destinations, one per format: two share their lists (one class),
/// one has its own lists, one its own key scope, one takes tracks only,
/// two are unrestricted under a BAA (one of them in a native format). The url, ip and scan rules run through
/// the request's memo (values repeat across events and destinations).
fn policy() -> Value {
    json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": {
            "event_properties": {"plan": "allow", "mrn": "mask", "email": {"action": "mask", "normalize": "email"},
                                 "ref": {"action": "url", "query": ["utm_source"]}, "note": {"action": "allow", "scan": true},
                                 "count": "ip"},
            "user_properties": {"tier": "allow", "email": "mask"},
            "context": {"ip": "ip"}
        },
        "destinations": {
            "amp": {"connection": "server-side", "endpoint": "https://amp.example/2/httpapi", "format": "amplitude"},
            "mix": {"connection": "server-side", "endpoint": "https://mix.example/import", "format": "mixpanel"},
            "ga": {"connection": "server-side", "endpoint": "https://ga.example/mp/collect", "format": "ga4",
                   "allowlists": {"event_properties": {"plan": "drop", "visit": "allow",
                                  "note": {"action": "allow", "scan": ["email"], "on_match": "mask"},
                                  "ref": {"action": "url", "query": ["email"]}}}},
            "ph": {"connection": "server-side", "endpoint": "https://ph.example/batch/", "format": "posthog",
                   "mask_scope": "posthog", "calls": ["track"]},
            "seg": {"connection": "server-side", "endpoint": "https://seg.example/v1/batch"},
            "lake": {"connection": "server-side", "endpoint": "https://lake.example/in", "format": "ndjson",
                     "restrict_phi": false, "baa": true},
            "vault": {"connection": "server-side", "endpoint": "https://vault.example/2/httpapi", "format": "amplitude",
                      "restrict_phi": false, "baa": true},
            "web": {"connection": "client-side", "restrict_phi": false, "baa": true}
        }
    })
}

fn sanitizer() -> Sanitizer {
    let mut s = Sanitizer::new(&policy().to_string(), Some(KEY)).unwrap();
    s.connect("amp", Some(AMPLITUDE_KEY)).unwrap();
    s.connect("vault", Some(AMPLITUDE_KEY)).unwrap();
    s.connect("ph", Some("phc_abcdefgh12345678")).unwrap();
    s
}

/// What a destination gets when each event is sanitized on its own.
fn one_by_one(
    s: &Sanitizer,
    events: &[String],
    destination: &str,
) -> (Vec<String>, Vec<Vec<usize>>) {
    one_by_one_within(s, events, destination, usize::MAX, &[])
}

/// As [`one_by_one`], with no body over `max` bytes, without the events
/// at `refused`.
fn one_by_one_within(
    s: &Sanitizer,
    events: &[String],
    destination: &str,
    max: usize,
    refused: &[usize],
) -> (Vec<String>, Vec<Vec<usize>>) {
    let format = s.format(destination).unwrap();
    let mut items: Vec<Item> = Vec::new();
    let mut indexes = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if refused.contains(&i) {
            continue;
        }
        let Ok(Some(out)) = s.sanitize_json(e, destination) else {
            continue;
        };
        if let Some(item) = format.item(&out) {
            items.push(item);
            indexes.push(i);
        }
    }
    let (bodies, _) = format.bodies_within(&items, max);
    let events = bodies
        .iter()
        .map(|b| b.items.iter().map(|&i| indexes[i]).collect())
        .collect();
    (bodies.into_iter().map(|b| b.text).collect(), events)
}

fn batch(events: &[String]) -> String {
    format!("{{\"writeKey\":\"wk\",\"batch\":[{}]}}", events.join(","))
}

/// Free text: clean, with an email and a phone number, and non-ASCII.
const NOTES: [&str; 3] = ["all fine", "call jane@x.com or 617-555-0100", "ok \u{e9}"];

fn event(call: &str, n: usize, phi: &str) -> String {
    json!({"type": call, "event": format!("E{}", n % 3), "name": "N", "userId": format!("u-{}", n % 4),
           "anonymousId": format!("a-{}", n % 5), "messageId": format!("m-{n}"), "groupId": "g", "previousId": "p",
           "timestamp": "2026-11-23T10:00:00Z",
           "properties": {"plan": "pro", "mrn": phi, "email": " Jane@X.com ", "visit": "v", "diagnosis": phi,
                          "ref": format!("https://x.example/p/{}?utm_source=s{}&email=jane%40x.com", n % 3, n % 2),
                          "note": NOTES[n % 3],
                          "count": n % 2},
           "traits": {"tier": "gold", "email": phi, "ssn": phi},
           "context": {"ip": format!("203.0.113.{}", n % 3), "traits": {"name": phi}}})
    .to_string()
}

#[test]
fn bodies_within_a_queue_message_split_as_the_formats_do() {
    let s = sanitizer();
    let calls = ["track", "page", "identify"];
    let events: Vec<String> = (0..60).map(|n| event(calls[n % 3], n, "PHI-123")).collect();
    let max = 4_000;
    let done = s
        .process_request_within(batch(&events).as_bytes(), Call::Batch, max)
        .unwrap();
    assert!(done.rejected.is_empty());
    for d in &done.deliveries {
        let (bodies, indexes) = one_by_one_within(&s, &events, &d.destination, max, &[]);
        assert!(d.bodies.len() > 1, "{}: split", d.destination);
        assert!(d.bodies.iter().all(|b| b.len() <= max), "{}", d.destination);
        assert_eq!(d.bodies, bodies, "{}", d.destination);
        assert_eq!(d.events, indexes, "{}", d.destination);
    }
    // An event whose body alone is over the limit for some destination is
    // refused for all; the others go as before.
    let done = s
        .process_request_within(batch(&events).as_bytes(), Call::Batch, 300)
        .unwrap();
    let refused: Vec<usize> = done.rejected.iter().map(|(i, _)| *i).collect();
    assert!(!refused.is_empty());
    assert_eq!(done.accepted + refused.len(), events.len());
    for d in &done.deliveries {
        assert!(d.bodies.iter().all(|b| b.len() <= 300), "{}", d.destination);
        let (bodies, indexes) = one_by_one_within(&s, &events, &d.destination, 300, &refused);
        assert_eq!(d.bodies, bodies, "{}", d.destination);
        assert_eq!(d.events, indexes, "{}", d.destination);
    }
}

#[test]
fn every_destination_gets_what_one_event_at_a_time_gives() {
    let s = sanitizer();
    let calls = ["track", "page", "screen", "identify", "group", "alias"];
    let events: Vec<String> = (0..40).map(|n| event(calls[n % 6], n, "PHI-123")).collect();
    let done = s
        .process_request(batch(&events).as_bytes(), Call::Batch)
        .unwrap();
    assert_eq!(done.write_key.as_deref(), Some("wk"));
    assert_eq!(done.accepted, 40);
    assert!(done.rejected.is_empty());
    let names: Vec<&str> = done
        .deliveries
        .iter()
        .map(|d| d.destination.as_str())
        .collect();
    assert_eq!(
        names,
        ["amp", "mix", "ga", "ph", "seg", "lake", "vault"],
        "server-side only, in policy order"
    );
    for d in &done.deliveries {
        let (bodies, indexes) = one_by_one(&s, &events, &d.destination);
        assert_eq!(d.bodies, bodies, "{}", d.destination);
        assert_eq!(d.events, indexes, "{}", d.destination);
        assert_eq!(d.sent as usize, indexes.iter().map(Vec::len).sum::<usize>());
        if !["lake", "vault"].contains(&d.destination.as_str()) {
            assert!(
                d.bodies.iter().all(|b| !b.contains("PHI-123")),
                "{}",
                d.destination
            );
        }
    }
    let count = |name: &str| {
        done.deliveries
            .iter()
            .find(|d| d.destination == name)
            .unwrap()
    };
    // Amplitude takes track, page, screen, identify; Mixpanel and GA4
    // track, page, screen; PostHog here only tracks.
    assert_eq!((count("amp").sent, count("amp").unmapped), (28, 12));
    assert_eq!((count("mix").sent, count("mix").unmapped), (21, 19));
    assert_eq!((count("ga").sent, count("ga").unmapped), (21, 19));
    assert_eq!((count("ph").sent, count("ph").unmapped), (7, 0));
    assert_eq!(count("seg").sent, 40);
    assert!(count("amp").tally.masked > 0 && count("amp").tally.dropped > 0);
    // No credential in a body: the sender adds it.
    assert!(count("amp").bodies[0].starts_with("{\"events\":["));
    assert!(count("ph").bodies[0].starts_with("{\"batch\":["));
}

#[test]
fn masked_values_differ_by_scope_and_equal_the_hmac() {
    let s = sanitizer();
    let events = vec![event("track", 0, "PHI")];
    let done = s
        .process_request(batch(&events).as_bytes(), Call::Batch)
        .unwrap();
    let body = |name: &str| -> Value {
        let d = done
            .deliveries
            .iter()
            .find(|d| d.destination == name)
            .unwrap();
        serde_json::from_str(&d.bodies[0]).unwrap()
    };
    let amp = body("amp");
    let ph = body("ph");
    assert_eq!(amp["events"][0]["user_id"], common::hmac_hex(KEY, b"u-0"));
    let scoped = common::hmac_bytes(KEY, b"phimask-scope:posthog");
    assert_eq!(
        ph["batch"][0]["distinct_id"],
        common::hmac_hex(&scoped, b"u-0")
    );
    // The normalized email masks as its normal form.
    assert_eq!(
        amp["events"][0]["event_properties"]["email"],
        common::hmac_hex(KEY, b"jane@x.com")
    );
}

#[test]
fn refused_events_go_nowhere_and_are_listed_by_index() {
    let s = sanitizer();
    let good = event("track", 1, "PHI");
    let body = format!(
        "{{\"batch\":[{good},{{\"type\":\"nope\",\"secret\":\"PHI\"}},7,{{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"properties\":{{\"a\":1,\"a\":2}},\"properties\":{{}}}},{good}]}}"
    );
    let done = s.process_request(body.as_bytes(), Call::Batch).unwrap();
    assert_eq!(done.accepted, 2);
    let rejected: Vec<(usize, &str)> = done.rejected.iter().map(|(i, e)| (*i, e.code())).collect();
    assert_eq!(
        rejected,
        [
            (1, "unknown_type"),
            (2, "event_not_object"),
            (3, "duplicate_key")
        ]
    );
    for (_, e) in &done.rejected {
        assert!(!e.to_string().contains("PHI"));
    }
    for d in &done.deliveries {
        let listed: Vec<usize> = d.events.concat();
        assert!(
            listed.iter().all(|i| [0, 4].contains(i)),
            "{}: {listed:?}",
            d.destination
        );
    }
}

#[test]
fn whole_request_errors() {
    let s = sanitizer();
    for (body, call, code) in [
        (&b"\xff\xfe{}"[..], Call::Batch, "invalid_json"),
        (b"{\"batch\":", Call::Batch, "invalid_json"),
        (b"[]", Call::Batch, "invalid_body"),
        (b"{\"batch\":{}}", Call::Batch, "invalid_body"),
    ] {
        let e = s.process_request(body, call).unwrap_err();
        assert_eq!(e.code(), code, "{:?}", String::from_utf8_lossy(body));
    }
    // One event by path: the path's type wins.
    let done = s
        .process_request(
            br#"{"type":"identify","event":"E","userId":"u","timestamp":"2026-11-23T10:00:00Z"}"#,
            Call::parse("track").unwrap(),
        )
        .unwrap();
    let mix = done
        .deliveries
        .iter()
        .find(|d| d.destination == "mix")
        .unwrap();
    assert_eq!(mix.sent, 1, "sent as a track");
}

#[test]
fn same_lists_different_calls_are_gated_apart() {
    // "amp" and "mix" share their lists (one class): an identify reaches
    // Amplitude and is not mapped for Mixpanel; "ph" takes tracks only.
    let s = sanitizer();
    let done = s
        .process_request(
            event("identify", 0, "x").as_bytes(),
            Call::parse("identify").unwrap(),
        )
        .unwrap();
    let get = |n: &str| done.deliveries.iter().find(|d| d.destination == n).unwrap();
    assert_eq!(
        (get("amp").sent, get("mix").sent, get("mix").unmapped),
        (1, 0, 1)
    );
    assert_eq!(
        (get("ph").sent, get("ph").unmapped),
        (0, 0),
        "not its call type: not even unmapped"
    );
}

#[test]
fn credentials_are_checked_per_format_and_never_echoed() {
    let mut s = Sanitizer::new(&policy().to_string(), Some(KEY)).unwrap();
    let refused = |s: &mut Sanitizer, d: &str, secret: Option<&str>| -> String {
        let e = s.connect(d, secret).unwrap_err();
        assert_eq!(e.code(), "invalid_credential");
        let message = e.to_string();
        if let Some(secret) = secret.filter(|x| x.len() > 3) {
            assert!(!message.contains(secret), "{message}");
        }
        message
    };
    assert!(refused(&mut s, "amp", None).contains("AUTH_AMP"));
    refused(&mut s, "amp", Some("not-a-key-but-some-secret-value!"));
    refused(&mut s, "ph", Some("phx_personalkeysecret123"));
    refused(&mut s, "ph", None);
    refused(&mut s, "ga", Some("G-ABC123:tiny"));
    refused(&mut s, "ga", Some("UA-1234:longenoughsecret"));
    refused(&mut s, "mix", Some("svc-user:secret-value"));
    refused(&mut s, "mix", Some("has space"));
    refused(&mut s, "seg", Some("Bearer x\r\nInjected: 1"));

    let t = s.connect("ga", Some("G-ABC123XYZ:s3cr3t_value-1")).unwrap();
    assert_eq!(
        t.url,
        "https://ga.example/mp/collect?measurement_id=G-ABC123XYZ&api_secret=s3cr3t_value-1"
    );
    assert_eq!(t.authorization, None);
    let t = s.connect("mix", Some("projectsecret123")).unwrap();
    assert_eq!(t.url, "https://mix.example/import?strict=1");
    assert_eq!(
        t.authorization.as_deref(),
        Some("Basic cHJvamVjdHNlY3JldDEyMzo=")
    );
    let t = s.connect("seg", None).unwrap();
    assert_eq!(
        (t.url.as_str(), t.authorization.as_deref()),
        ("https://seg.example/v1/batch", None)
    );
    let t = s.connect("seg", Some("Basic d2s6")).unwrap();
    assert_eq!(t.authorization.as_deref(), Some("Basic d2s6"));
    assert!(
        !format!("{t:?}").contains("d2s6"),
        "Debug hides the credential"
    );
    assert!(matches!(
        s.connect("nope", None),
        Err(Error::UnknownDestination(_))
    ));

    // A service account needs the project in the endpoint; strict stays on.
    let mut p = policy();
    p["destinations"]["mix"]["endpoint"] = json!("https://mix.example/import?project_id=42");
    let mut s = Sanitizer::new(&p.to_string(), Some(KEY)).unwrap();
    let t = s.connect("mix", Some("svc.user:secret-value")).unwrap();
    assert_eq!(t.url, "https://mix.example/import?project_id=42&strict=1");
    assert_eq!(
        t.authorization.as_deref(),
        Some("Basic c3ZjLnVzZXI6c2VjcmV0LXZhbHVl")
    );
    p["destinations"]["mix"]["endpoint"] = json!("https://mix.example/import?strict=0");
    let mut s = Sanitizer::new(&p.to_string(), Some(KEY)).unwrap();
    assert!(refused(&mut s, "mix", Some("projectsecret")).contains("strict"));
    p["destinations"]["ga"]["endpoint"] = json!("https://ga.example/mp/collect?api_secret=leaked");
    let mut s = Sanitizer::new(&p.to_string(), Some(KEY)).unwrap();
    assert!(refused(&mut s, "ga", Some("G-ABC123XYZ:s3cr3t_value-1")).contains("endpoint"));
}

#[test]
fn format_is_validated() {
    let mut p = policy();
    p["destinations"]["amp"]["format"] = json!("amplitud");
    let e = Sanitizer::new(&p.to_string(), Some(KEY)).unwrap_err();
    let Error::InvalidPolicy(problems) = e else {
        panic!()
    };
    assert_eq!(problems[0].path, "destinations.amp.format");
    assert!(
        problems[0].message.contains("amplitude, mixpanel, ga4"),
        "{}",
        problems[0].message
    );
    p["destinations"]["amp"]["format"] = json!(3);
    assert!(Sanitizer::new(&p.to_string(), Some(KEY)).is_err());
    let mut p = policy();
    p["destinations"]["web"]["format"] = json!("ga4");
    let (policy, report) = phimask::validate_policy(&p.to_string());
    assert!(policy.is_some());
    assert_eq!(
        report
            .warnings
            .iter()
            .filter(|w| w.path == "destinations.web.format")
            .count(),
        1
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random batches: process_request equals the one-at-a-time path for
    /// every destination, and planted PHI never reaches a restricted one.
    #[test]
    fn one_call_equals_one_at_a_time(calls in prop::collection::vec(0usize..6, 1..30), marker in "[A-Z]{8}") {
        let s = sanitizer();
        let names = ["track", "page", "screen", "identify", "group", "alias"];
        let phi = format!("PHI{marker}");
        let events: Vec<String> = calls.iter().enumerate().map(|(n, &c)| event(names[c], n, &phi)).collect();
        let done = s.process_request(batch(&events).as_bytes(), Call::Batch).unwrap();
        for d in &done.deliveries {
            let (bodies, indexes) = one_by_one(&s, &events, &d.destination);
            prop_assert_eq!(&d.bodies, &bodies);
            prop_assert_eq!(&d.events, &indexes);
            if !["lake", "vault"].contains(&d.destination.as_str()) {
                prop_assert!(d.bodies.iter().all(|b| !b.contains(&phi)));
            }
        }
    }
}

#[test]
fn formats_parse_their_names() {
    for f in Format::ALL {
        assert_eq!(Format::parse(f.name()), Some(f));
    }
}

#[test]
fn a_batchs_integrations_never_turn_on_what_an_event_turned_off() {
    let s = sanitizer();
    // `amp` is the destination's integration name (it has no "integration").
    let body = br#"{"writeKey":"wk","integrations":{"amp":true,"All":true},"batch":[
        {"type":"track","event":"E","userId":"u","integrations":{"All":false}},
        {"type":"track","event":"E","userId":"u","integrations":{"amp":false}},
        {"type":"track","event":"E","userId":"u"}]}"#;
    let done = s.process_request(body, Call::Batch).unwrap();
    assert_eq!(done.accepted, 3);
    assert_eq!(
        delivery(&done, "amp").events,
        [vec![2]],
        "only the event without its own"
    );
    assert_eq!(delivery(&done, "seg").events, [vec![1, 2]]);
}

#[test]
fn write_keys_at_any_depth_never_reach_an_unrestricted_destination() {
    let s = sanitizer();
    let body = br#"{"writeKey":"wk_top","context":{"writeKey":"wk_shared"},"batch":[
        {"type":"track","event":"E","userId":"u","writeKey":"wk_event",
         "context":{"writeKey":"wk_ctx","traits":{"writeKey":"wk_traits","name":"Jane Doe"}},
         "properties":{"write\u004bey":"wk_escaped","items":[{"writeKey":"wk_item"}],"plan":"pro"}}]}"#;
    let done = s.process_request(body, Call::Batch).unwrap();
    assert_eq!(done.write_key.as_deref(), Some("wk_top"));
    for name in ["lake", "vault", "amp", "seg"] {
        let d = delivery(&done, name);
        assert_eq!(d.sent, 1, "{name}");
        for b in &d.bodies {
            assert!(!b.contains("wk_"), "{name}: {b}");
        }
    }
    // The unrestricted destination keeps everything else as written.
    assert!(delivery(&done, "lake").bodies[0].contains("Jane Doe"));
}

#[test]
fn duplicate_keys_refuse_the_request_or_the_batch_event_that_has_them() {
    let s = sanitizer();
    let e = s
        .process_request(
            br#"{"batch":[{"type":"track","event":"E","userId":"u"}],"batch":[{"type":"track","event":"Jane Doe HIV positive","userId":"u"}]}"#,
            Call::Batch,
        )
        .unwrap_err();
    assert_eq!(e.code(), "duplicate_key");
    let e = s
        .process_request(
            br#"{"context":{"ip":"1.2.3.4","ip":"5.6.7.8"},"batch":[{"type":"track","event":"E","userId":"u"}]}"#,
            Call::Batch,
        )
        .unwrap_err();
    assert_eq!(e.code(), "duplicate_key");
    let done = s
        .process_request(
            br#"{"batch":[{"type":"track","event":"E","userId":"u","properties":{"Jane Doe":{"dx":"HIV","dx":"none"}}},{"type":"track","event":"E","userId":"u"}]}"#,
            Call::Batch,
        )
        .unwrap();
    assert_eq!(done.accepted, 1);
    let (index, error) = &done.rejected[0];
    assert_eq!(*index, 0);
    assert_eq!(
        error.to_string(),
        r#"event has the key "dx" written twice in the object at properties.[key]"#
    );
    assert!(done
        .deliveries
        .iter()
        .all(|d| d.events.concat().iter().all(|&i| i == 1)));
}
