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

#[test]
fn explain_names_paths_and_reasons_never_values() {
    let policy = r#"{
      "version": 1, "environment": "production", "hipaa": true,
      "allowlists": {
        "event_properties": { "plan": "allow", "email": "mask", "zip": "zip3", "items[].sku": "allow" },
        "context": { "page.url": "url" }
      },
      "events": { "Booked": "allow", "*": "drop" },
      "destinations": {
        "amplitude": { "connection": "server-side", "endpoint": "https://a.example/" },
        "ads": { "connection": "server-side", "endpoint": "https://ads.example/", "calls": ["page"] },
        "warehouse": { "connection": "server-side", "endpoint": "https://w.example/", "restrict_phi": false, "baa": true }
      }
    }"#;
    let s = Sanitizer::new(policy, Some(KEY)).unwrap();
    let event = r#"{"type":"track","event":"Booked","userId":"jane@x.com","properties":{"plan":"gold","email":"jane@x.com","zip":"02134","dx":"flu","items":[{"sku":"A","note":"jane"}]},"context":{"ip":"203.0.113.7","page":{"url":"https://c.example/p/483920?email=jane%40x.com"}}}"#;
    let all = s.explain(event).unwrap();
    let amp = &all[0];
    assert_eq!(amp.destination, "amplitude");
    assert_eq!(amp.reason, phimask::report::Reason::Sanitized);
    assert_eq!(amp.paths.masked, ["userId", "properties.email"]);
    assert_eq!(
        amp.paths.transformed,
        ["properties.zip", "context.page.url"]
    );
    assert_eq!(
        amp.paths.dropped,
        ["properties.dx", "properties.items[].note", "context.ip"]
    );
    assert_eq!(all[1].reason, phimask::report::Reason::CallType);
    assert_eq!(all[2].reason, phimask::report::Reason::Unrestricted);
    let text = format!("{all:?}");
    assert!(!text.contains("jane") && !text.contains("02134") && !text.contains("flu"));
    // The counts match the paths for one event.
    let (_, tally) = s
        .sanitize_json_tallied(event, "amplitude", &Default::default())
        .unwrap();
    assert_eq!((tally.dropped, tally.masked, tally.transformed), (3, 2, 2));
    let renamed = event.replace("\"Booked\"", "\"Viewed HIV Results\"");
    assert_eq!(
        s.explain(&renamed).unwrap()[0].reason,
        phimask::report::Reason::EventName
    );
}

#[test]
fn explain_shows_keys_that_are_not_field_names_as_key() {
    let policy = r#"{
      "version": 1, "environment": "production", "hipaa": true,
      "allowlists": {
        "event_properties": { "answers": "mask", "notes": { "action": "allow", "scan": true }, "plan": "allow" }
      },
      "destinations": {
        "amplitude": { "connection": "server-side", "endpoint": "https://a.example/" }
      }
    }"#;
    let s = Sanitizer::new(policy, Some(KEY)).unwrap();
    let event = r#"{"type":"track","event":"E","userId":"u","Jane Doe HIV positive":1,
      "properties":{"plan":"p","Jane Doe HIV positive":{"value":1},"jane.doe@example.com":2,
        "answers":{"Jane Doe HIV positive":"yes","q1":"no"},
        "notes":{"HIV positive":{"dx":"jane@x.com"}}}}"#;
    let amp = &s.explain(event).unwrap()[0];
    // Each path once: both keys of `properties` are `properties.[key]`.
    assert_eq!(amp.paths.dropped, ["[key]", "properties.[key]"]);
    assert_eq!(
        amp.paths.masked,
        [
            "userId",
            "properties.answers.[key]",
            "properties.answers.q1"
        ]
    );
    assert_eq!(amp.paths.transformed, ["properties.notes.[key].dx"]);
    let text = format!("{:?}", s.explain(event).unwrap());
    for phi in ["Jane", "HIV", "jane"] {
        assert!(!text.contains(phi), "{phi} in {text}");
    }
}
