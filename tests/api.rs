//! The Rust API: limits, keys and destinations.

use phimask::{Error, EventError, Sanitizer, MAX_DEPTH, MAX_EVENT_BYTES};

const KEY: &[u8] = b"rust-api-test-key-0123456789abcdefghij";
const POLICY: &str = r#"{
  "version": 1, "environment": "production", "hipaa": true,
  "allowlists": { "event_properties": { "plan": "allow", "nested": "allow" } },
  "destinations": {
    "amplitude": { "connection": "server-side", "endpoint": "https://api2.amplitude.example/batch" },
    "ga4": { "connection": "client-side", "restrict_phi": false, "baa": true },
    "warehouse": { "connection": "server-side", "endpoint": "https://ingest.example/s", "restrict_phi": false, "baa": true }
  }
}"#;

fn sanitizer() -> Sanitizer {
    Sanitizer::new(POLICY, Some(KEY)).unwrap()
}

fn event_of_size(size: usize) -> String {
    let base = r#"{"type":"track","event":"E","userId":"u","properties":{"plan":""}}"#;
    let pad = "x".repeat(size - base.len());
    format!(r#"{{"type":"track","event":"E","userId":"u","properties":{{"plan":"{pad}"}}}}"#)
}

#[test]
fn size_limit_is_32_kib() {
    let s = sanitizer();
    let fits = event_of_size(MAX_EVENT_BYTES);
    assert_eq!(fits.len(), 32 * 1024);
    assert!(s.sanitize_json(&fits, "amplitude").unwrap().is_some());
    let over = event_of_size(MAX_EVENT_BYTES + 1);
    for dest in ["amplitude", "warehouse", "ga4"] {
        assert_eq!(
            s.sanitize_json(&over, dest),
            Err(Error::Event(EventError::TooLarge))
        );
    }
}

#[test]
fn depth_limit_is_64() {
    let s = sanitizer();
    // The event object is level 1, "nested" level 2, so 62 more arrays fit.
    let nest = |n: usize| {
        format!(
            r#"{{"type":"track","event":"E","userId":"u","properties":{{"nested":{}1{}}}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let fits = nest(MAX_DEPTH - 2);
    let out = s.sanitize_json(&fits, "amplitude").unwrap().unwrap();
    assert!(out.contains(&format!("{}1", "[".repeat(MAX_DEPTH - 2))));
    let deep = nest(MAX_DEPTH - 1);
    assert_eq!(
        s.sanitize_json(&deep, "amplitude"),
        Err(Error::Event(EventError::TooDeep))
    );
    // Far deeper input is refused the same way, without exhausting the stack.
    let very_deep = "[".repeat(20_000);
    assert_eq!(
        s.sanitize_json(&very_deep, "amplitude"),
        Err(Error::Event(EventError::TooDeep))
    );
}

#[test]
fn keys() {
    assert_eq!(Sanitizer::new(POLICY, None).unwrap_err(), Error::MissingKey);
    let short = b"0123456789abcdef0123456789abcde";
    assert_eq!(short.len(), 31);
    let err = Sanitizer::new(POLICY, Some(short)).unwrap_err();
    assert_eq!(err, Error::KeyTooShort);
    assert!(!err.to_string().contains("0123456789"));
    // The key shows up in no Debug output either.
    let s = sanitizer();
    assert!(!format!("{s:?}").contains("rust-api-test-key"));
    // No restricted destination, so nothing to mask: no key needed.
    let unrestricted = POLICY.replace(
        r#""amplitude": { "connection": "server-side", "endpoint": "https://api2.amplitude.example/batch" },"#,
        "",
    );
    assert!(Sanitizer::new(&unrestricted, None).is_ok());
}

#[test]
fn destinations_and_endpoints() {
    let s = sanitizer();
    assert_eq!(
        s.destinations().collect::<Vec<_>>(),
        ["amplitude", "warehouse"]
    );
    assert_eq!(
        s.endpoint("amplitude"),
        Some("https://api2.amplitude.example/batch")
    );
    assert_eq!(s.endpoint("ga4"), None);
    let event = r#"{"type":"track","event":"E","userId":"u"}"#;
    assert_eq!(s.sanitize_json(event, "ga4").unwrap(), None);
    assert_eq!(
        s.sanitize_json(event, "nope").unwrap_err().code(),
        "unknown_destination"
    );
}

#[test]
fn errors_echo_nothing_of_the_event() {
    let s = sanitizer();
    let secret = "jane.doe@example.com";
    for bad in [
        format!(r#"{{"type":"{secret}"}}"#),
        format!(r#"{{"email":"{secret}"}}"#),
        format!(r#"{{"type":"track","email":"{secret}""#),
        format!(r#"["{secret}"]"#),
        format!(r#"{{"type":"track","{secret}":1,"type":"page"}}"#),
        format!(r#"{{"type":"track","x":"{secret}\q"}}"#),
        format!(r#"{{"type":"track","event":"E","anonymousId":null,"x":"{secret}"}}"#),
        format!(r#"{{"type":"track","userId":"{secret}"}}"#),
        format!(r#"{{"type":"group","userId":"{secret}"}}"#),
        format!(r#"{{"type":"alias","userId":"{secret}"}}"#),
        format!(r#"{{"type":"track","event":"E","userId":1,"integrations":"{secret}"}}"#),
    ] {
        let err = s.sanitize_json(&bad, "amplitude").unwrap_err();
        assert!(!err.to_string().contains("jane"), "{err}");
    }
}
