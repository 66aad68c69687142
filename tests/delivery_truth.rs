//! Delivery tells the truth: an event that fits no request body of one
//! destination is refused for every destination (never half-delivered);
//! request bodies carry no credential (the sender adds the member the
//! connected target gives) and leave room for it within the API's limit;
//! a destination name JavaScript cannot hold as an own member is refused.

use std::process::Command;

use phimask::credential::body_member_room;
use phimask::format::Format;
use phimask::{Call, Sanitizer};
use serde_json::{json, Value};

const KEY: &[u8] = b"delivery-truth-masking-key-0123456789";
const AMPLITUDE_KEY: &str = "0123456789abcdef0123456789abcdef";
const POSTHOG_KEY: &str = "phc_abcdefgh12345678";

/// `masks` masks `readings` (each number becomes 64 hex digits); `drops`
/// does not list it; `amp` and `ph` are native formats with a body key.
fn policy() -> Value {
    json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": {"event_properties": {"plan": "allow"}},
        "destinations": {
            "drops": {"connection": "server-side", "endpoint": "https://drops.example/v1/batch"},
            "masks": {"connection": "server-side", "endpoint": "https://masks.example/v1/batch",
                      "allowlists": {"event_properties": {"readings": "mask"}}},
            "amp": {"connection": "server-side", "endpoint": "https://amp.example/2/httpapi", "format": "amplitude"},
            "ph": {"connection": "server-side", "endpoint": "https://ph.example/batch/", "format": "posthog"},
            "web": {"connection": "client-side", "restrict_phi": false, "baa": true}
        }
    })
}

fn sanitizer() -> Sanitizer {
    let mut s = Sanitizer::new(&policy().to_string(), Some(KEY)).unwrap();
    s.connect("amp", Some(AMPLITUDE_KEY)).unwrap();
    s.connect("ph", Some(POSTHOG_KEY)).unwrap();
    s
}

/// A track whose `readings` holds `n` one-digit numbers: 2 bytes each as
/// sent, 67 once masked.
fn event(id: &str, n: usize) -> String {
    json!({"type": "track", "event": "Reading", "userId": "u-1", "messageId": id,
           "timestamp": "2026-11-23T10:00:00Z",
           "properties": {"plan": "pro", "readings": vec![7; n], "note": "PHI-note"}})
    .to_string()
}

fn batch(events: &[String]) -> String {
    format!("{{\"writeKey\":\"wk\",\"batch\":[{}]}}", events.join(","))
}

#[test]
fn an_event_too_large_for_one_destination_goes_to_none() {
    let s = sanitizer();
    // Event 1 grows to ~13 KB for `masks` (a 2,000-byte limit); the
    // others are small everywhere.
    let events = [event("m-0", 3), event("m-big", 200), event("m-2", 3)];
    let done = s
        .process_request_within(batch(&events).as_bytes(), Call::Batch, 2_000)
        .unwrap();
    assert_eq!(done.accepted, 2);
    assert_eq!(done.rejected.len(), 1);
    let (index, e) = &done.rejected[0];
    assert_eq!(*index, 1);
    assert_eq!(e.code(), "event_too_large");
    let message = e.to_string();
    assert!(
        message.contains("\"masks\"") && message.contains("2000"),
        "names the destination and the limit: {message}"
    );
    for value in ["m-big", "PHI-note", "Reading", "u-1"] {
        assert!(!message.contains(value), "no value in {message}");
    }
    for d in &done.deliveries {
        assert_eq!(
            d.events,
            [[0, 2]],
            "{}: the others, indexes kept",
            d.destination
        );
        assert_eq!(d.sent, 2, "{}", d.destination);
        let all = d.bodies.concat();
        assert_eq!(
            all.matches("\"readings\"").count(),
            if d.destination == "masks" { 2 } else { 0 }
        );
        assert!(
            d.bodies.iter().all(|b| b.len() <= 2_000),
            "{}",
            d.destination
        );
    }
    // `drops` alone would have taken it: nothing of it went there either.
    let drops = done
        .deliveries
        .iter()
        .find(|d| d.destination == "drops")
        .unwrap();
    let sent: Value = serde_json::from_str(&drops.bodies[0]).unwrap();
    assert_eq!(sent["batch"].as_array().unwrap().len(), 2);
}

#[test]
fn the_apis_own_limit_refuses_it_too_and_a_single_call_is_refused() {
    let s = sanitizer();
    // 8,000 numbers: 16 KB as sent (an event may be 32 KB), over 512,000
    // bytes once masked: over Segment's limit with no queue limit at all.
    let big = event("m-big", 8_000);
    assert!(big.len() < 32 * 1024);
    let done = s
        .process_request(
            batch(&[big.clone(), event("m-1", 3)]).as_bytes(),
            Call::Batch,
        )
        .unwrap();
    assert_eq!(done.accepted, 1);
    assert_eq!(done.rejected[0].0, 0);
    assert!(done.rejected[0].1.to_string().contains("512000"));
    for d in &done.deliveries {
        assert_eq!(d.events, [[1]], "{}", d.destination);
    }
    let done = s
        .process_request(big.as_bytes(), Call::parse("track").unwrap())
        .unwrap();
    assert_eq!(done.accepted, 0);
    assert_eq!(done.rejected.len(), 1);
    assert_eq!(done.rejected[0].1.code(), "event_too_large");
    assert!(done
        .deliveries
        .iter()
        .all(|d| d.bodies.is_empty() && d.sent == 0));
}

#[test]
fn hostile_batches_keep_every_destination_in_step() {
    // Big and small events interleaved, with refused-on-their-own ones
    // (not JSON objects, duplicate keys): every destination is sent the
    // same events, each once, in order, and never a refused one.
    let s = sanitizer();
    let mut events = Vec::new();
    for i in 0..30 {
        events.push(match i % 5 {
            0 => event(&format!("m-{i}"), 10 + i * 3),
            1 => "\"not an event\"".to_owned(),
            2 => {
                r#"{"type":"track","event":"E","userId":"u","properties":{"a":1,"a":2}}"#.to_owned()
            }
            _ => event(&format!("m-{i}"), i % 4),
        });
    }
    let done = s
        .process_request_within(batch(&events).as_bytes(), Call::Batch, 4_000)
        .unwrap();
    let refused: Vec<usize> = done.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(done.accepted + refused.len(), events.len());
    let sent: Vec<usize> = (0..events.len()).filter(|i| !refused.contains(i)).collect();
    assert!(refused.iter().any(|i| i % 5 == 0), "some too large");
    assert!(sent.iter().any(|i| i % 5 == 0), "some large ones fit");
    for d in &done.deliveries {
        let got: Vec<usize> = d.events.concat();
        assert_eq!(got, sent, "{}", d.destination);
        assert!(
            d.bodies.iter().all(|b| b.len() <= 4_000),
            "{}",
            d.destination
        );
    }
}

#[test]
fn bodies_carry_no_credential_and_leave_room_for_it() {
    let s = sanitizer();
    let events: Vec<String> = (0..3).map(|i| event(&format!("m-{i}"), 2)).collect();
    let done = s
        .process_request(batch(&events).as_bytes(), Call::Batch)
        .unwrap();
    let mut s2 = Sanitizer::new(&policy().to_string(), Some(KEY)).unwrap();
    for (name, secret, open) in [
        ("amp", AMPLITUDE_KEY, "{\"events\":["),
        ("ph", POSTHOG_KEY, "{\"batch\":["),
    ] {
        let d = done
            .deliveries
            .iter()
            .find(|d| d.destination == name)
            .unwrap();
        let body = &d.bodies[0];
        assert!(body.starts_with(open), "{name}: {body}");
        assert!(
            !body.contains(secret) && !body.contains("api_key"),
            "{name}"
        );
        // The member the sender inserts after `{` makes the API's body.
        let target = s2.connect(name, Some(secret)).unwrap();
        let member = target.body_member.clone().unwrap();
        assert_eq!(member, format!("\"api_key\":\"{secret}\","));
        let sent: Value = serde_json::from_str(&format!("{{{member}{}", &body[1..])).unwrap();
        assert_eq!(sent["api_key"], secret);
    }
    for (name, secret) in [("drops", None), ("masks", Some("Bearer t0ken"))] {
        assert_eq!(
            s2.connect(name, secret).unwrap().body_member,
            None,
            "{name}"
        );
    }
    // The longest key each format takes still fits its room.
    let longest = format!("phc_{}", "a".repeat(128));
    let mut p = policy();
    p["destinations"]["ph"]["endpoint"] = json!("https://ph.example/batch/");
    let mut s3 = Sanitizer::new(&p.to_string(), Some(KEY)).unwrap();
    let member = s3
        .connect("ph", Some(&longest))
        .unwrap()
        .body_member
        .clone()
        .unwrap();
    assert_eq!(member.len(), body_member_room(Format::Posthog));
    let member = s3
        .connect("amp", Some(AMPLITUDE_KEY))
        .unwrap()
        .body_member
        .clone()
        .unwrap();
    assert_eq!(member.len(), body_member_room(Format::Amplitude));
    assert!(s3.connect("ph", Some(&format!("{longest}a"))).is_err());
}

#[test]
fn full_bodies_stay_within_the_api_limit_once_the_credential_is_added() {
    for format in [Format::Amplitude, Format::Posthog] {
        let limit = format.limits().bytes;
        let room = body_member_room(format);
        assert!(room > 0);
        assert_eq!(format.body_limit(usize::MAX), limit - room);
        assert_eq!(format.body_limit(120_000), 120_000);
        // Items that fill bodies to the byte: none over the limit less the
        // room, so none over the limit once the member is in.
        let item = phimask::format::Item {
            shared: String::new(),
            text: format!("{{\"p\":\"{}\"}}", "x".repeat(9_990)),
        };
        let (bodies, too_large) = format.bodies(&vec![item; 300]);
        assert!(too_large.is_empty());
        assert!(bodies.len() > 1);
        for b in &bodies {
            assert!(b.text.len() + room <= limit, "{format:?}: {}", b.text.len());
        }
        let largest = bodies.iter().map(|b| b.text.len()).max().unwrap();
        assert!(
            largest + room > limit - 10_100,
            "{format:?}: bodies are filled"
        );
    }
}

#[test]
fn a_destination_named_proto_is_refused_by_validation() {
    let mut p = policy();
    p["destinations"]["__proto__"] =
        json!({"connection": "server-side", "endpoint": "https://p.example/v1/batch"});
    let (compiled, report) = phimask::validate_policy(&p.to_string());
    assert!(compiled.is_none());
    let e = report
        .errors
        .iter()
        .find(|e| e.path == "destinations.__proto__")
        .unwrap_or_else(|| panic!("{:?}", report.errors));
    assert!(e.message.contains("reserved"), "{}", e.message);
    assert!(Sanitizer::new(&p.to_string(), Some(KEY)).is_err());
    // Names near it are fine.
    for name in ["proto", "_proto_", "__proto", "constructor"] {
        let mut p = policy();
        p["destinations"][name] =
            json!({"connection": "server-side", "endpoint": "https://p.example/v1/batch"});
        assert!(
            phimask::validate_policy(&p.to_string()).0.is_some(),
            "{name}"
        );
    }

    let dir = std::env::temp_dir().join(format!("phimask-proto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.json");
    std::fs::write(&file, p.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_phimask"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("destinations.__proto__"), "{text}");
}

/// A request's sanitized output, all destinations together, is bounded
/// (`MAX_OUTPUT_BYTES`), checked as it grows: a 500 KB batch whose masked
/// arrays grow about 33-fold is refused whole, before it fills memory;
/// the same events in a smaller batch are sent.
#[test]
fn a_request_whose_output_would_exceed_the_bound_is_refused_whole() {
    let mut destinations = serde_json::Map::new();
    for i in 0..3 {
        destinations.insert(
            format!("masks{i}"),
            json!({"connection": "server-side", "endpoint": format!("https://m{i}.example/v1/batch"),
                   "allowlists": {"event_properties": {"readings": "mask"}}}),
        );
    }
    let policy = json!({"version": 1, "environment": "t", "hipaa": true,
                        "allowlists": {"event_properties": {"plan": "allow"}}, "destinations": destinations});
    let s = Sanitizer::new(&policy.to_string(), Some(KEY)).unwrap();
    let events: Vec<String> = (0..140).map(|i| event(&format!("o-{i}"), 1_700)).collect();
    let body = batch(&events);
    assert!(
        body.len() < phimask::request::MAX_BATCH_BYTES,
        "{} bytes",
        body.len()
    );
    let err = s.process_request(body.as_bytes(), Call::Batch).unwrap_err();
    assert_eq!(err.code(), "batch_too_large");
    let mut message = String::new();
    phimask::message::Describe::describe(&err, &mut message);
    assert!(
        message.contains("once sanitized") && !message.contains("PHI-note"),
        "{message}"
    );
    // A tenth of it is within the bound: every event goes to every destination.
    let small = batch(&events[..14]);
    let done = s.process_request(small.as_bytes(), Call::Batch).unwrap();
    assert_eq!(done.accepted, 14);
    let made: usize = done
        .deliveries
        .iter()
        .flat_map(|d| &d.bodies)
        .map(String::len)
        .sum();
    assert!(
        made < phimask::request::MAX_OUTPUT_BYTES && made > 3 * 14 * 1_700 * 60,
        "{made} bytes"
    );
}
