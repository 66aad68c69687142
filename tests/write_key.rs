//! The write key of a tracking request, read before anything is sanitized:
//! the same key `read_request` finds, for every body it reads, and the
//! same refusals for bodies that are not JSON text.

use phimask::{read_request, request_write_key, Call, RequestError};
use proptest::prelude::*;

fn calls() -> [Call; 2] {
    [Call::Batch, Call::parse("track").unwrap()]
}

/// The key `read_request` finds, or its refusal's code.
fn by_reader(body: &str, call: Call) -> Result<Option<String>, &'static str> {
    read_request(body, call)
        .map(|r| r.write_key)
        .map_err(|e| e.code())
}

#[test]
fn the_key_is_the_one_the_request_reader_finds() {
    let bodies = [
        r#"{"writeKey":"wk_top","batch":[{"writeKey":"wk_event","type":"track"}]}"#,
        r#"{"batch":[{"writeKey":"wk_first","type":"track"},{"writeKey":"wk_second"}]}"#,
        r#"{"batch":[{"type":"track"},{"writeKey":"wk_second"}]}"#,
        r#"{"batch":[1,{"writeKey":"wk_second"}]}"#,
        r#"{"batch":[{"writeKey":"wk_dup","a":1,"a":2},{"writeKey":"wk_second"}]}"#,
        r#"{"writeKey":"","batch":[{"writeKey":"wk_first"}]}"#,
        r#"{"writeKey":7,"event":"E"}"#,
        r#"{"writeKey":"wk_\u0031","event":"E"}"#,
        r#"{"context":{"writeKey":"wk_nested"},"batch":[{}]}"#,
        r#"{"context":{"pad":"xxxxxxxxxxxxxxxx"},"writeKey":"wk_big","batch":[{},{},{}]}"#,
        r#"{"event":"E"}"#,
    ];
    for body in bodies {
        for call in calls() {
            let reader = by_reader(body, call);
            let key = request_write_key(body.as_bytes(), call).map_err(|e| e.code());
            if let Ok(expected) = reader {
                assert_eq!(key, Ok(expected), "{body} {call:?}");
            }
        }
    }
}

#[test]
fn bodies_that_are_not_json_text_are_refused_alike() {
    let bodies: [&[u8]; 5] = [
        b"not json",
        b"{\"writeKey\":\"wk\",",
        b"{\"writeKey\":\"wk\",\"writeKey\":\"other\"}",
        b"{\"writeKey\":\"wk\",\"e\":\"\xff\"}",
        b"{\"writeKey\":\"wk\",\"batch\":[]} trailing",
    ];
    for body in bodies {
        for call in calls() {
            let key = request_write_key(body, call).map_err(|e| e.code());
            let text = std::str::from_utf8(body);
            let expected = match text {
                Ok(text) => by_reader(text, call).map(|_| ()),
                Err(_) => Err::<(), _>("invalid_json"),
            };
            assert_eq!(
                key.err(),
                expected.err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[test]
fn a_batch_too_large_once_materialized_still_shows_its_key() {
    // The red team's request: a 100 KB shared context and 137,000 empty
    // events. Its key is found without building any event; the reader
    // refuses it whole.
    let body = format!(
        r#"{{"context":{{"pad":"{}"}},"batch":[{}],"writeKey":"wk_red"}}"#,
        "x".repeat(100_000),
        vec!["{}"; 137_000].join(",")
    );
    assert_eq!(
        request_write_key(body.as_bytes(), Call::Batch),
        Ok(Some("wk_red".to_string()))
    );
    assert_eq!(
        read_request(&body, Call::Batch).err(),
        Some(RequestError::TooLarge)
    );
}

proptest! {
    #[test]
    fn any_json_body_gives_the_readers_key(
        top in proptest::option::of("[a-z_]{0,6}"),
        first in proptest::option::of("[a-z_]{0,6}"),
        second in proptest::option::of("[a-z_]{0,6}"),
        first_is_object in any::<bool>(),
        single in any::<bool>(),
    ) {
        let key = |k: &Option<String>| k.as_ref().map(|k| format!(r#""writeKey":"{k}","#)).unwrap_or_default();
        let first_event = if first_is_object { format!(r#"{{{}"type":"track"}}"#, key(&first)) } else { "null".into() };
        let body = format!(r#"{{{}"batch":[{first_event},{{{}"type":"page"}}],"event":"E"}}"#, key(&top), key(&second));
        let call = if single { Call::parse("track").unwrap() } else { Call::Batch };
        let found = request_write_key(body.as_bytes(), call).map_err(|e| e.code());
        prop_assert_eq!(found, by_reader(&body, call));
    }
}
