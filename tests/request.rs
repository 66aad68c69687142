//! Reading the edge Worker's tracking requests: events keep their text as
//! written; only the path's type, the write key and a batch's shared
//! objects are rewritten.

use phimask::{read_request, Call, EventError, Request, RequestError};
use proptest::prelude::*;
use serde_json::{json, Value};

fn single(body: &str) -> Request {
    read_request(body, Call::parse("track").unwrap()).unwrap()
}

fn batch(body: &str) -> Request {
    read_request(body, Call::Batch).unwrap()
}

fn texts(r: &Request) -> Vec<&str> {
    r.events
        .iter()
        .map(|e| e.as_ref().map(String::as_str).unwrap_or("<refused>"))
        .collect()
}

#[test]
fn single_event_gets_the_path_type_first_and_loses_the_write_key() {
    let r = single(r#" { "event" : "E", "type": "identify", "writeKey": "wk_1", "userId": 7 } "#);
    assert_eq!(r.write_key.as_deref(), Some("wk_1"));
    assert_eq!(texts(&r), [r#"{"type":"track","event":"E","userId":7}"#]);
    let r = single(r#"{"type":"page","type":"screen","writeKey":"a","writeKey":"b"}"#);
    assert_eq!(
        texts(&r),
        [r#"{"type":"track"}"#],
        "every type and write key"
    );
}

#[test]
fn numbers_and_strings_keep_their_text() {
    let body = r#"{"userId":12345678901234567890,"properties":{"value":1.50,"e":1E+3,"s":"\u00e9\n\"x\""}}"#;
    let r = single(body);
    assert_eq!(
        texts(&r),
        [
            r#"{"type":"track","userId":12345678901234567890,"properties":{"value":1.50,"e":1E+3,"s":"\u00e9\n\"x\""}}"#
        ]
    );
}

#[test]
fn batch_events_keep_their_own_type_and_lose_the_write_key() {
    let r = batch(
        r#"{"batch":[{"type":"track","writeKey":"wk_first","properties":{"v":1.0}},{"type":"nope"},"x",[],{"writeKey":"wk_2"}],"sentAt":"t"}"#,
    );
    assert_eq!(
        r.write_key.as_deref(),
        Some("wk_first"),
        "the first event's key"
    );
    assert_eq!(
        texts(&r),
        [
            r#"{"type":"track","properties":{"v":1.0}}"#,
            r#"{"type":"nope"}"#,
            "<refused>",
            "<refused>",
            "{}"
        ]
    );
    assert_eq!(r.events[2], Err(EventError::NotObject));
    assert_eq!(r.events[3], Err(EventError::NotObject));
    let r = batch(r#"{"writeKey":"wk_body","batch":[{"writeKey":"wk_event"}]}"#);
    assert_eq!(
        r.write_key.as_deref(),
        Some("wk_body"),
        "the body's key first"
    );
}

#[test]
fn write_keys_must_be_non_empty_strings() {
    for body in [
        r#"{"writeKey":1}"#,
        r#"{"writeKey":""}"#,
        r#"{"writeKey":null}"#,
        "{}",
    ] {
        assert_eq!(single(body).write_key, None, "{body}");
    }
    assert_eq!(
        single(r#"{"writeKey":"w\u006b"}"#).write_key.as_deref(),
        Some("wk")
    );
}

#[test]
fn a_batchs_context_and_integrations_apply_to_each_event_under_its_own() {
    let r = batch(
        r#"{"context":{"locale":"fr-FR","ip":"203.0.113.7"},"integrations":{"All":false},"batch":[
            {"type":"track"},
            {"type":"track","context":{"locale":"en-US","n":1.50},"integrations":{"All":true,"X":1}},
            {"type":"track","context":"odd"}]}"#,
    );
    let parsed: Vec<Value> = texts(&r)
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert_eq!(
        parsed,
        [
            json!({"type":"track","context":{"locale":"fr-FR","ip":"203.0.113.7"},"integrations":{"All":false}}),
            json!({"type":"track","context":{"ip":"203.0.113.7","locale":"en-US","n":1.5},"integrations":{"All":true,"X":1}}),
            json!({"type":"track","context":"odd","integrations":{"All":false}}),
        ]
    );
    assert!(
        texts(&r)[1].contains(r#""n":1.50"#),
        "merged members keep their text"
    );
}

#[test]
fn unusable_requests_are_refused_whole_without_quoting_them() {
    let cases: [(&str, Call, &str); 8] = [
        (
            r#"{"userId":"jane@example.com","#,
            Call::Batch,
            "invalid_json",
        ),
        (
            r#"{"userId":"jane@example.com"} x"#,
            Call::Batch,
            "invalid_json",
        ),
        (r#"["jane@example.com"]"#, Call::Batch, "invalid_body"),
        (
            r#"{"userId":"jane@example.com"}"#,
            Call::Batch,
            "invalid_body",
        ),
        (
            r#"{"batch":{"userId":"jane@example.com"}}"#,
            Call::Batch,
            "invalid_body",
        ),
        (r#"{"batch":[]}"#, Call::Batch, "invalid_body"),
        (
            r#"{"context":"jane@example.com","batch":[{}]}"#,
            Call::Batch,
            "invalid_body",
        ),
        (
            r#""jane@example.com""#,
            Call::parse("identify").unwrap(),
            "invalid_body",
        ),
    ];
    for (body, call, code) in cases {
        let e = read_request(body, call).unwrap_err();
        assert_eq!(e.code(), code, "{body}");
        assert!(!e.to_string().contains("jane"), "{e}");
    }
    let e = read_request(r#"{"a":[1,}"#, Call::Batch).unwrap_err();
    assert_eq!(
        e.to_string(),
        "request body is not valid JSON: expected a JSON value at byte 8"
    );
}

#[test]
fn depth_is_bounded_per_request_and_left_to_the_engine_per_event() {
    let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    // Deep, but within the request's bound: the request is read, and the
    // engine will refuse that event alone.
    let r = batch(&format!(r#"{{"batch":[{{"p":{}}},{{}}]}}"#, nest(100)));
    assert_eq!(r.events.len(), 2);
    let e = read_request(
        &format!(r#"{{"batch":[{{"p":{}}}]}}"#, nest(300)),
        Call::Batch,
    )
    .unwrap_err();
    assert_eq!(e, RequestError::TooDeep);
    assert_eq!(e.code(), "event_too_deep");
}

#[test]
fn calls_by_name() {
    for name in [
        "track", "identify", "group", "page", "screen", "alias", "batch",
    ] {
        assert!(Call::parse(name).is_some(), "{name}");
    }
    for name in ["", "t", "Track", "launch"] {
        assert!(Call::parse(name).is_none(), "{name}");
    }
}

/// Values with numbers written in forms JavaScript would rewrite.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("1.50".to_string()),
        Just("12345678901234567890".to_string()),
        Just("-0.0E+2".to_string()),
        Just(r#""\u00e9 \"q\"""#.to_string()),
        (0u32..100).prop_map(|n| format!("\"s{n}\"")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((member_key(), inner), 0..4).prop_map(|m| object(&m)),
        ]
    })
}

fn member_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b",
        "type",
        "writeKey",
        "context",
        "integrations",
        "locale",
    ])
    .prop_map(String::from)
}

/// An object without duplicate keys (the first of each wins).
fn object(members: &[(String, String)]) -> String {
    let mut seen = Vec::new();
    let parts: Vec<String> = members
        .iter()
        .filter(|(k, _)| {
            let new = !seen.contains(k);
            seen.push(k.clone());
            new
        })
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Each event comes out as the client wrote it, minus the write key,
    /// under the batch's shared objects; every value's text is kept.
    #[test]
    fn batch_events_are_the_events_as_written(
        events in prop::collection::vec(prop::collection::vec((member_key(), value()), 0..5), 1..4),
        shared in prop::option::of(prop::collection::vec((member_key(), value()), 0..3)),
    ) {
        let events: Vec<String> = events.iter().map(|m| object(m)).collect();
        let shared = shared.map(|m| object(&m));
        let body = match &shared {
            Some(ctx) => format!(r#"{{"context":{ctx},"batch":[{}]}}"#, events.join(",")),
            None => format!(r#"{{"batch":[{}]}}"#, events.join(",")),
        };
        let r = read_request(&body, Call::Batch).unwrap();
        prop_assert_eq!(r.events.len(), events.len());
        for (text, got) in events.iter().zip(&r.events) {
            let got = got.as_ref().unwrap();
            let mut want = parse(text);
            let obj = want.as_object_mut().unwrap();
            obj.remove("writeKey");
            if let Some(ctx) = &shared {
                let common = parse(ctx);
                match obj.get_mut("context") {
                    None => { obj.insert("context".into(), common); }
                    Some(Value::Object(own)) => {
                        let mut merged = common.as_object().unwrap().clone();
                        for (k, v) in own.iter() { merged.insert(k.clone(), v.clone()); }
                        *own = merged;
                    }
                    Some(_) => {}
                }
            }
            // Every value's text survives (serde_json would normalize numbers).
            if parse(text).get("writeKey").is_none() {
                for lit in ["1.50", "12345678901234567890", "-0.0E+2", r#""\u00e9 \"q\"""#] {
                    prop_assert!(got.matches(lit).count() >= text.matches(lit).count(), "{} lost in {}", lit, got);
                }
            }
            prop_assert_eq!(parse(got), want);
        }
    }
}
