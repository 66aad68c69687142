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
    let r = single(r#"{"type":"page","writeKey":"a","context":{"writeKey":"b"}}"#);
    assert_eq!(texts(&r), [r#"{"type":"track","context":{}}"#]);
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
            // An own context that is not an object has no keys to win.
            json!({"type":"track","context":{"locale":"fr-FR","ip":"203.0.113.7"},"integrations":{"All":false}}),
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

/// The model of the request reader's rule: `writeKey` members removed at
/// any depth.
fn without_write_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("writeKey");
            map.values_mut().for_each(without_write_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(without_write_keys),
        _ => {}
    }
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
            // An own context that is not an object gives way to the shared one whole.
            let replaced = shared.is_some() && obj.get("context").is_some_and(|c| !c.is_object());
            if let Some(ctx) = &shared {
                let common = parse(ctx);
                match obj.get_mut("context") {
                    None => { obj.insert("context".into(), common); }
                    Some(Value::Object(own)) => {
                        let mut merged = common.as_object().unwrap().clone();
                        for (k, v) in own.iter() { merged.insert(k.clone(), v.clone()); }
                        *own = merged;
                    }
                    Some(other) => *other = common,
                }
            }
            without_write_keys(&mut want);
            // Every value's text survives (serde_json would normalize numbers).
            if !text.contains("writeKey") && !replaced {
                for lit in ["1.50", "12345678901234567890", "-0.0E+2", r#""\u00e9 \"q\"""#] {
                    prop_assert!(got.matches(lit).count() >= text.matches(lit).count(), "{} lost in {}", lit, got);
                }
            }
            prop_assert_eq!(parse(got), want);
        }
    }
}

fn refused(body: &str, call: Call) -> RequestError {
    read_request(body, call).unwrap_err()
}

#[test]
fn a_key_written_twice_in_the_requests_own_objects_refuses_it_whole() {
    for (body, call, message) in [
        // JSON.parse would take the second batch, this reader once took the first.
        (
            r#"{"batch":[{"type":"track"}],"batch":[{"type":"identify"}]}"#,
            Call::Batch,
            r#"request has the key "batch" written twice at the top level"#,
        ),
        (
            r#"{"batch":[],"b\u0061tch":[]}"#,
            Call::Batch,
            r#"request has the key "batch" written twice at the top level"#,
        ),
        (
            r#"{"context":{"locale":"en","locale":"Jane Doe HIV positive"},"batch":[{}]}"#,
            Call::Batch,
            r#"request has the key "locale" written twice in the object at context"#,
        ),
        (
            r#"{"integrations":{"Jane Doe HIV positive":false,"Jane Doe HIV positive":true},"batch":[{}]}"#,
            Call::Batch,
            r#"request has the key "[key]" written twice in the object at integrations"#,
        ),
        // One event by path: the body is the event, refused whole.
        (
            r#"{"properties":{"Jane Doe":{"dx":[{"a":1,"a":2}]}}}"#,
            Call::parse("track").unwrap(),
            r#"request has the key "a" written twice in the object at properties.[key].dx[]"#,
        ),
        (
            r#"{"type":"page","type":"screen"}"#,
            Call::parse("track").unwrap(),
            r#"request has the key "type" written twice at the top level"#,
        ),
    ] {
        let e = refused(body, call);
        assert_eq!(e.code(), "duplicate_key", "{body}");
        assert_eq!(phimask::message::Describe::message(&e), message, "{body}");
    }
}

#[test]
fn an_event_of_a_batch_with_a_key_written_twice_is_refused_alone() {
    let r = batch(
        r#"{"batch":[{"type":"track","properties":{"plan":"a","pl\u0061n":"Jane Doe HIV positive"}},
            {"type":"track","properties":{"plan":"b"}},
            {"type":"track","context":{"traits":{"Jane Doe":{"x":1, "x" :2}}}},
            {"type":"track","type":"identify"}]}"#,
    );
    assert_eq!(
        r.events,
        [
            Err(EventError::DuplicateKey(
                r#"the key "plan" written twice in the object at properties"#.into()
            )),
            Ok(r#"{"type":"track","properties":{"plan":"b"}}"#.into()),
            Err(EventError::DuplicateKey(
                r#"the key "x" written twice in the object at context.traits.[key]"#.into()
            )),
            Err(EventError::DuplicateKey(
                r#"the key "type" written twice at the top level"#.into()
            )),
        ]
    );
    // Still JSON first: a syntax error after the duplicate refuses the request.
    let e = refused(r#"{"batch":[{"a":1,"a":2,}]}"#, Call::Batch);
    assert_eq!(e.code(), "invalid_json");
}

#[test]
fn duplicates_are_found_in_big_objects_and_distinct_keys_pass() {
    let keys: Vec<String> = (0..2000).map(|i| format!("\"k{i}\":{i}")).collect();
    let body = format!(r#"{{"batch":[{{"properties":{{{}}}}}]}}"#, keys.join(","));
    assert!(batch(&body).events[0].is_ok(), "2,000 distinct keys");
    let body = format!(
        r#"{{"batch":[{{"properties":{{{},"k\u0031999":0}}}}]}}"#,
        keys.join(",")
    );
    assert_eq!(
        batch(&body).events[0],
        Err(EventError::DuplicateKey(
            r#"the key "k1999" written twice in the object at properties"#.into()
        ))
    );
    // Keys that differ late, or only by an escape of a different character.
    let r = single(r#"{"properties":{"ab":1,"a\u0062c":2,"a\\b":3,"a\/b":4,"a/b ":5}}"#);
    assert!(r.events[0].is_ok());
    let e = refused(
        r#"{"properties":{"a\/b":1,"a/b":2}}"#,
        Call::parse("track").unwrap(),
    );
    assert_eq!(e.code(), "duplicate_key");
}

#[test]
fn write_keys_are_removed_at_any_depth_whatever_their_spelling() {
    let r = single(
        r#"{ "writeKey" : "wk_top", "context" : { "writeKey" : "wk_ctx" , "traits":{"a":1,"writeKey":"wk_t", "b":[{"write\u004bey":"wk_arr"}]}},
            "properties":{"writeKey":{"writeKey":"wk_nested"}},"x":[{"writeKey":"wk_last"}] }"#,
    );
    assert_eq!(r.write_key.as_deref(), Some("wk_top"));
    let text = texts(&r)[0];
    assert!(!text.contains("wk_"), "{text}");
    assert_eq!(
        parse(text),
        json!({"type":"track","context":{"traits":{"a":1,"b":[{}]}},"properties":{},"x":[{}]})
    );
    let r = batch(
        r#"{"context":{"writeKey":"wk_shared","locale":"en"},"batch":[{"context":{"app":{"writeKey":"wk_own"}},"properties":{"writeKey":"wk_p"}}]}"#,
    );
    let text = texts(&r)[0];
    assert!(!text.contains("wk_"), "{text}");
    assert_eq!(
        parse(text),
        json!({"context":{"locale":"en","app":{}},"properties":{}})
    );
}

#[test]
fn an_events_own_integrations_decide_alone_in_a_batch() {
    let r = batch(
        r#"{"integrations":{"Amplitude":true,"Mixpanel":true},"batch":[
            {"type":"track","integrations":{"All":false}},
            {"type":"track","integrations":null},
            {"type":"track"}]}"#,
    );
    assert_eq!(
        texts(&r),
        [
            r#"{"type":"track","integrations":{"All":false}}"#,
            r#"{"type":"track","integrations":null}"#,
            r#"{"type":"track","integrations":{"Amplitude":true,"Mixpanel":true}}"#,
        ]
    );
}

/// A small body whose shared `context` would be copied into thousands of
/// events is refused before any event is built (a 431 KB body once grew
/// to 937 MB this way); a batch within the limit keeps its shared context.
#[test]
fn a_batch_that_would_grow_past_the_limit_once_merged_is_refused() {
    let event = r#"{"type":"track","event":"E","anonymousId":"abc"}"#;
    let body = |shared: usize, events: usize| {
        format!(
            r#"{{"context":{{"pad":"{}"}},"batch":[{}]}}"#,
            "x".repeat(shared),
            vec![event; events].join(",")
        )
    };
    // 4,000 events of 50 bytes and a 240 KB context: a 440 KB body.
    let code = |text: &str| read_request(text, Call::Batch).err().map(|e| e.code());
    let e = match read_request(&body(240_000, 4_000), Call::Batch) {
        Err(e) => e,
        Ok(r) => panic!("accepted {} events", r.events.len()),
    };
    assert_eq!(e.code(), "batch_too_large");
    assert!(e.to_string().contains("512000 bytes"), "{e}");
    assert!(!e.to_string().contains("xxx"), "{e}");
    // Over and under: (batch + events × shared member) against 500 KB.
    assert_eq!(code(&body(6_000, 100)), Some("batch_too_large"));
    assert_eq!(code(&body(4_000, 100)), None);
    let ok = batch(&body(1_000, 100));
    assert_eq!(ok.events.len(), 100);
    assert!(texts(&ok).iter().all(|t| t.contains(&"x".repeat(1_000))));
    // A batch without shared members may fill the limit alone.
    let plain = format!(r#"{{"batch":[{}]}}"#, vec![event; 9_000].join(","));
    assert_eq!(batch(&plain).events.len(), 9_000);
}
