//! A batch's events are read where they stand in the request body when
//! the request rewrites nothing of them, and copied when it does (a
//! `writeKey` inside, a shared `context`): either way every destination
//! gets the same bytes, and the same events are refused with the same
//! errors (an event too deep or too large by its text as copied, whatever
//! white space the body has around its members).

use phimask::{Call, Sanitizer, MAX_DEPTH, MAX_EVENT_BYTES};
use serde_json::json;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const AMPLITUDE_KEY: &str = "0123456789abcdef0123456789abcdef";

/// One destination per format, one of them unrestricted (its events go
/// as they came), one with lists of its own; with `only_unrestricted`,
/// that one alone (no writer walks what it is sent).
fn sanitizer(only_unrestricted: bool) -> Sanitizer {
    let mut policy = json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": {
            "event_properties": {"plan": "allow", "mrn": "mask", "email": {"action": "mask", "normalize": "email"},
                                 "pad": "allow", "time": "allow"},
            "user_properties": {"tier": "allow", "email": "mask"},
            "context": {"ip": "ip"}
        },
        "destinations": {
            "amp": {"connection": "server-side", "endpoint": "https://amp.example/2/httpapi", "format": "amplitude"},
            "mix": {"connection": "server-side", "endpoint": "https://mix.example/import", "format": "mixpanel"},
            "ga": {"connection": "server-side", "endpoint": "https://ga.example/mp/collect", "format": "ga4",
                   "allowlists": {"event_properties": {"plan": "drop"}}},
            "ph": {"connection": "server-side", "endpoint": "https://ph.example/batch/", "format": "posthog"},
            "seg": {"connection": "server-side", "endpoint": "https://seg.example/v1/batch"},
            "lake": {"connection": "server-side", "endpoint": "https://lake.example/in", "format": "ndjson",
                     "restrict_phi": false, "baa": true}
        }
    });
    if only_unrestricted {
        policy["destinations"]
            .as_object_mut()
            .unwrap()
            .retain(|name, _| name == "lake");
        return Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    }
    let mut s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    s.connect("amp", Some(AMPLITUDE_KEY)).unwrap();
    s.connect("ph", Some("phc_abcdefgh12345678")).unwrap();
    s
}

/// `depth` nested arrays around a number.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Events as the client wrote them, white space around their members
/// included: plain ones, one nested as deep as an event may be and one a
/// level deeper, one exactly as large as an event may be once copied
/// (its white space not counted) and one a byte larger, an escaped key,
/// and incomplete ones.
fn events() -> Vec<String> {
    let base = |call: &str, n: usize| {
        json!({"type": call, "event": "Booked", "name": "Home", "userId": format!("u-{n}"),
               "messageId": format!("m-{n}"), "timestamp": "2026-11-23T10:00:00Z",
               "properties": {"plan": "pro", "mrn": "MRN-1", "email": " Jane@X.com ", "time": 5},
               "traits": {"tier": "gold", "email": "jane@x.com"},
               "context": {"ip": "203.0.113.7", "traits": {"tier": "gold"}}})
        .to_string()
    };
    // Event level 1, properties 2, `hidden` 3: arrays from level 3 on.
    // No list names `hidden`: only the read checks its depth.
    let deep = |levels: usize| {
        format!(
            r#"{{"type":"track","event":"Deep","userId":"u","properties":{{"hidden":{}}}}}"#,
            nested(levels)
        )
    };
    let sized = |len: usize| {
        let head = r#"{"type":"track","event":"Big","userId":"u","properties":{"pad":""#;
        let tail = r#""}}"#;
        let pad = "x".repeat(len - head.len() - tail.len());
        let text = format!("{head}{pad}{tail}");
        assert_eq!(text.len(), len);
        // White space between members: not part of the event's text.
        text.replacen(",", " ,\n  ", 3)
    };
    vec![
        base("track", 1),
        base("page", 2),
        base("identify", 3),
        deep(MAX_DEPTH - 2),
        deep(MAX_DEPTH - 1),
        sized(MAX_EVENT_BYTES),
        sized(MAX_EVENT_BYTES + 1),
        r#"{"type":"track","event":"Esc","us\u0065rId":"u-e","properties":{"plan":"p"}}"#
            .to_owned(),
        r#"{"type":"track","userId":"u-n"}"#.to_owned(),
        r#"{"type":"group","userId":"u-g"}"#.to_owned(),
        r#"{ }"#.to_owned(),
        base("screen", 4),
        r#"{ "type" : "page" , "name":"Home","userId" :"u-ws" ,"properties": { "plan" : "p" } }"#
            .to_owned(),
        r#"{"type":"track","event":"E","userId":"u-i","integrations":{"All":false,"seg":true}}"#
            .to_owned(),
        r#"{"type":"track","event":"E","userId":"u-j","integrations":"x"}"#.to_owned(),
        // Line breaks inside an allowed value: the NDJSON line stays one.
        "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u-l\",\"properties\":{\"plan\":[\r\n1\n]}}"
            .to_owned(),
    ]
}

/// Everything a request gives, as text.
fn processed(s: &Sanitizer, body: &str) -> String {
    let done = s.process_request(body.as_bytes(), Call::Batch).unwrap();
    format!(
        "{:?} {} {:?} {:?}",
        done.write_key, done.accepted, done.rejected, done.deliveries
    )
}

#[test]
fn events_read_in_the_body_go_out_as_copied_ones_do() {
    let s = sanitizer(false);
    let events = events();
    // Read where they stand: nothing of them is rewritten.
    let in_body = format!(
        "{{\"writeKey\":\"wk\",\"batch\":[ {} ]}}",
        events.join(" ,\n")
    );
    // Copied: a write key inside each (removed from what is sent).
    let copied: Vec<String> = events
        .iter()
        .map(|e| match e.as_str() {
            "{ }" => r#"{"writeKey":"ev"}"#.to_owned(),
            _ => e.replacen('{', "{\"writeKey\":\"ev\",", 1),
        })
        .collect();
    let copied = format!("{{\"writeKey\":\"wk\",\"batch\":[{}]}}", copied.join(","));
    for s in [&s, &sanitizer(true)] {
        assert_eq!(processed(s, &in_body), processed(s, &copied));
    }

    let done = s.process_request(in_body.as_bytes(), Call::Batch).unwrap();
    let codes: Vec<_> = done.rejected.iter().map(|(i, e)| (*i, e.code())).collect();
    assert_eq!(
        codes,
        [
            (4, "event_too_deep"),
            (6, "event_too_large"),
            (8, "incomplete_event"),
            (9, "incomplete_event"),
            (10, "missing_type"),
            (14, "invalid_integrations"),
        ]
    );
    // The unrestricted destination gets each event's text as copied: its
    // members with nothing between them (white space inside values kept).
    let lake = done
        .deliveries
        .iter()
        .find(|d| d.destination == "lake")
        .unwrap();
    let line = lake.bodies[0].lines().find(|l| l.contains("u-ws"));
    assert_eq!(
        line,
        Some(r#"{"type":"page","name":"Home","userId":"u-ws","properties":{ "plan" : "p" }}"#)
    );
}

/// An NDJSON body holds one event a line, whatever line breaks the client
/// wrote inside an event: the BAA destination's events go as they came,
/// but not across lines.
#[test]
fn ndjson_bodies_keep_one_event_a_line() {
    let s = sanitizer(false);
    let body = "{\"batch\":[{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"properties\":{\"plan\":[\r\n1\n]}},\n{\"type\":\"track\",\"event\":\"F\",\r\n\"userId\":\"v\"}]}";
    let done = s.process_request(body.as_bytes(), Call::Batch).unwrap();
    let lake = done
        .deliveries
        .iter()
        .find(|d| d.destination == "lake")
        .unwrap();
    assert_eq!(lake.bodies.len(), 1);
    assert_eq!(
        lake.bodies[0].matches('\n').count(),
        2,
        "{:?}",
        lake.bodies[0]
    );
    assert!(!lake.bodies[0].contains('\r'), "{:?}", lake.bodies[0]);
    for line in lake.bodies[0].lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["type"], "track");
    }
}
