//! Evidence without values: per server-side destination, every event of
//! a request is counted exactly once, sent under its label or not sent
//! with one reason; labels hold only names the policy's `events` map
//! lists (as sent: renamed where the destination renames); the inventory
//! holds the paths no rule names, at their shallowest unnamed level, with
//! `[key]` for keys that are not field names, and never a value.

use phimask::consent::Signals;
use phimask::event::CallType;
use phimask::inventory::{MAX_PATHS, MAX_PATH_BYTES, MORE_PATHS};
use phimask::ledger::{Label, NotSent};
use phimask::process::{Delivery, Processed};
use phimask::{Agent, Call, Sanitizer};
use serde_json::{json, Value};

const KEY: &[u8] = b"ledger-test-key-0123456789abcdef!";
const AMPLITUDE_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Values no label or path may ever hold.
const CANARIES: [&str; 6] = [
    "Viewed HIV Testing",
    "Jane Doe",
    "123-45-6789",
    "jane@example.com",
    "123456789",
    "HIV",
];

/// Restricted destinations in three formats (one with its own lists and
/// `*: allow`), one gated on consent, one taking tracks only, one that
/// routing names apart, a BAA warehouse (unrestricted), a client-side one.
fn policy() -> Value {
    json!({
        "version": 1, "environment": "t", "hipaa": true,
        "allowlists": {
            "event_properties": { "plan": "allow", "visit": "allow", "items[].sku": "allow",
                                  "address.zip": "zip3" },
            "user_properties": { "tier": "allow" },
            "context": { "page.path": "allow", "ip": "ip" }
        },
        "events": { "Booked": "allow", "Cancelled": { "rename": "Visit Cancelled" }, "Spam": "drop",
                    "Home": "allow", "*": "drop" },
        "destinations": {
            "amp": {"connection": "server-side", "endpoint": "https://amp.example/2/httpapi", "format": "amplitude"},
            "ga": {"connection": "server-side", "endpoint": "https://ga.example/mp/collect", "format": "ga4",
                   "allowlists": { "event_properties": { "dose": "allow" } }},
            "open": {"connection": "server-side", "endpoint": "https://open.example/", "events": { "*": "allow" }},
            "ads": {"connection": "server-side", "endpoint": "https://ads.example/", "consent": ["advertising"]},
            "tracks": {"connection": "server-side", "endpoint": "https://tracks.example/", "calls": ["track"]},
            "unrouted": {"connection": "server-side", "endpoint": "https://unrouted.example/",
                         "integration": "Unrouted"},
            "vault": {"connection": "server-side", "endpoint": "https://vault.example/in", "format": "ndjson",
                      "restrict_phi": false, "baa": true},
            "web": {"connection": "client-side", "restrict_phi": false, "baa": true}
        },
        "consent": { "mode": "opt-out", "categories": { "advertising": ["C0004"] }, "gpc": ["advertising"] },
        "bots": "drop"
    })
}

fn sanitizer(policy: &Value) -> Sanitizer {
    let mut s = Sanitizer::new(&policy.to_string(), Some(KEY)).expect("valid policy");
    if s.destinations().any(|d| d == "amp") {
        s.connect("amp", Some(AMPLITUDE_KEY)).unwrap();
    }
    s
}

/// A hostile batch: PHI as names, keys and values, refused events, a
/// bot, routing, every call type.
fn hostile() -> Vec<Value> {
    vec![
        // 0: listed name; unnamed keys holding PHI, a prefix rule, arrays.
        json!({"type": "track", "event": "Booked", "userId": "u1", "properties": {
            "plan": "pro", "Jane Doe": "x", "diagnosis": "Viewed HIV Testing",
            "patient": {"name": "Jane Doe", "ssn": "123-45-6789"}, "jane@example.com": 1,
            "visit": {"anything": {"deep": "Jane Doe"}},
            "items": [{"sku": "a", "note": "Jane Doe"}, {"sku": "b", "note": "HIV"}],
            "address": {"zip": "98101", "street": "1 Main"}}}),
        // 1, 2, 11: names only `*` governs, PHI among them.
        json!({"type": "track", "event": "Viewed HIV Testing", "userId": "u1", "properties": {"diagnosis": "HIV"}}),
        json!({"type": "track", "event": "Jane Doe", "userId": "u1", "integrations": {"Unrouted": false}}),
        // 3: renamed.
        json!({"type": "track", "event": "Cancelled", "anonymousId": "a1", "properties": {"plan": "pro"}}),
        // 4: dropped by name.
        json!({"type": "track", "event": "Spam", "userId": "u1"}),
        // 5: a listed page; an unnamed context member.
        json!({"type": "page", "name": "Home", "userId": "u1",
               "context": {"page": {"path": "/", "title": "Jane Doe's results"}}}),
        // 6: identify with PHI under unnamed and key-like keys.
        json!({"type": "identify", "userId": "u1",
               "traits": {"tier": "gold", "email": "jane@example.com", "123-45-6789": "x"}}),
        // 7, 8, 9: refused (not an object; no type; no id, its paths never counted).
        json!(5),
        json!({"event": "Jane Doe", "userId": "u1"}),
        json!({"type": "track", "event": "Jane Doe", "properties": {"refusedonly": "123-45-6789"}}),
        // 10: a bot's (dropped), accepted.
        json!({"type": "track", "event": "Booked", "userId": "u1", "context": {"userAgent": "curl/8.4.0"}}),
        json!({"type": "track", "event": "123-45-6789", "userId": "u1"}),
        // 12: top-level keys no fixed rule governs; writeKey is governed.
        json!({"type": "track", "event": "Booked", "userId": "u1", "diagnosis": "flu",
               "jane@example.com": "x", "writeKey": "wk_canary"}),
        // 13: a screen named with PHI.
        json!({"type": "screen", "name": "jane@example.com", "userId": "u1"}),
        // 14: group.
        json!({"type": "group", "userId": "u1", "groupId": "g1", "traits": {"practice": "Jane Doe Clinic"}}),
    ]
}

fn batch(events: &[Value]) -> Vec<u8> {
    json!({ "batch": events }).to_string().into_bytes()
}

fn process(s: &Sanitizer, events: &[Value], gpc: bool) -> Processed {
    let signals = Signals { gpc, region: None };
    s.process_request_from(
        &batch(events),
        Call::Batch,
        usize::MAX,
        &signals,
        &Agent::default(),
    )
    .expect("a usable request")
}

fn delivery<'a>(done: &'a Processed, name: &str) -> &'a Delivery {
    done.deliveries
        .iter()
        .find(|d| d.destination == name)
        .unwrap_or_else(|| panic!("no delivery for {name}"))
}

/// How many events of this label were not sent to `d` for `why`.
fn not_sent(d: &Delivery, call: Option<CallType>, event: Option<&str>, why: NotSent) -> u32 {
    let want = Label {
        call,
        event: event.map(str::to_owned),
    };
    d.not_sent
        .iter()
        .filter(|(l, w, _)| d.labels[*l as usize] == want && *w == why)
        .map(|(_, _, n)| n)
        .sum()
}

/// The labels of the events sent to `d`, in body order.
fn sent(d: &Delivery) -> Vec<(Option<CallType>, Option<String>)> {
    d.labels_of
        .iter()
        .flatten()
        .map(|&l| {
            let l = &d.labels[l as usize];
            (l.call, l.event.clone())
        })
        .collect()
}

/// Each destination: sent + not sent == the request's events, labels
/// parallel to the events sent, labels distinct, each row once.
fn assert_balanced(done: &Processed, events: usize) {
    assert_eq!(done.accepted + done.rejected.len(), events);
    for d in &done.deliveries {
        let bodies: Vec<usize> = d.events.iter().map(Vec::len).collect();
        let labelled: Vec<usize> = d.labels_of.iter().map(Vec::len).collect();
        assert_eq!(labelled, bodies, "{}", d.destination);
        let sent: usize = d.labels_of.iter().map(Vec::len).sum();
        assert_eq!(sent, d.sent as usize, "{}", d.destination);
        let not: u32 = d.not_sent.iter().map(|(_, _, n)| n).sum();
        assert_eq!(
            sent + not as usize,
            events,
            "{}: sent {sent} + not sent {not}",
            d.destination
        );
        for (i, a) in d.labels.iter().enumerate() {
            assert!(
                !d.labels[..i].contains(a),
                "{}: label {a:?} twice",
                d.destination
            );
        }
        for (i, (l, w, n)) in d.not_sent.iter().enumerate() {
            assert!(*n > 0 && (*l as usize) < d.labels.len());
            assert!(!d.not_sent[..i].iter().any(|(l2, w2, _)| l2 == l && w2 == w));
        }
        let unmapped = not_sent_total(d, NotSent::Unmapped);
        assert_eq!(unmapped, d.unmapped, "{}", d.destination);
        assert_eq!(
            not_sent_total(d, NotSent::Consent),
            d.consent,
            "{}",
            d.destination
        );
    }
}

fn not_sent_total(d: &Delivery, why: NotSent) -> u32 {
    d.not_sent
        .iter()
        .filter(|(_, w, _)| *w == why)
        .map(|(_, _, n)| n)
        .sum()
}

/// No canary in any label or path, in any case.
fn assert_no_values(done: &Processed) {
    let mut texts: Vec<String> = done.inventory.iter().map(|(p, _)| p.clone()).collect();
    for d in &done.deliveries {
        texts.extend(d.labels.iter().filter_map(|l| l.event.clone()));
    }
    for text in &texts {
        for canary in CANARIES {
            assert!(
                !text.to_lowercase().contains(&canary.to_lowercase()),
                "{canary:?} in {text:?}"
            );
        }
        assert!(!text.contains("wk_canary") && !text.contains("refusedonly"));
    }
}

const TRACK: Option<CallType> = Some(CallType::Track);

#[test]
fn every_event_is_counted_once_per_destination_with_its_reason() {
    let s = sanitizer(&policy());
    let events = hostile();
    let done = process(&s, &events, true);
    assert_balanced(&done, events.len());
    assert_eq!((done.accepted, done.rejected.len(), done.bots), (12, 3, 1));
    // No ledger for the client-side destination.
    assert!(done.deliveries.iter().all(|d| d.destination != "web"));

    let amp = delivery(&done, "amp");
    assert_eq!(not_sent(amp, None, None, NotSent::Refused), 3);
    assert_eq!(not_sent(amp, TRACK, Some("Booked"), NotSent::Bot), 1);
    // Names only `*` drops: counted under no name.
    assert_eq!(not_sent(amp, TRACK, None, NotSent::EventName), 3);
    assert_eq!(not_sent(amp, TRACK, Some("Spam"), NotSent::EventName), 1);
    assert_eq!(
        not_sent(amp, Some(CallType::Screen), None, NotSent::EventName),
        1
    );
    let renamed = (TRACK, Some("Visit Cancelled".to_owned()));
    assert!(sent(amp).contains(&renamed), "{:?}", sent(amp));
    assert!(sent(amp).contains(&(Some(CallType::Page), Some("Home".into()))));
    assert!(sent(amp).contains(&(Some(CallType::Identify), None)));
    assert!(!amp
        .labels
        .iter()
        .any(|l| l.event.as_deref() == Some("Cancelled")));

    // GA4 has no mapping for identify or group.
    let ga = delivery(&done, "ga");
    assert_eq!(
        not_sent(ga, Some(CallType::Identify), None, NotSent::Unmapped),
        1
    );
    assert_eq!(
        not_sent(ga, Some(CallType::Group), None, NotSent::Unmapped),
        1
    );

    // `*: allow`: the names go, the ledger still holds none of them.
    let open = delivery(&done, "open");
    assert_eq!(
        sent(open).iter().filter(|l| **l == (TRACK, None)).count(),
        3
    );
    assert_eq!(not_sent(open, TRACK, Some("Spam"), NotSent::EventName), 1);

    let tracks = delivery(&done, "tracks");
    for call in [CallType::Identify, CallType::Group, CallType::Screen] {
        assert_eq!(not_sent(tracks, Some(call), None, NotSent::CallType), 1);
    }
    assert_eq!(
        not_sent(
            tracks,
            Some(CallType::Page),
            Some("Home"),
            NotSent::CallType
        ),
        1
    );

    let unrouted = delivery(&done, "unrouted");
    assert_eq!(not_sent(unrouted, TRACK, None, NotSent::Routing), 1);
    assert_eq!(not_sent(unrouted, TRACK, None, NotSent::EventName), 2);

    // GPC denies advertising: everything the earlier gates let through.
    let ads = delivery(&done, "ads");
    assert_eq!(not_sent_total(ads, NotSent::Consent), 6);
    assert_eq!(ads.sent, 0);

    // The warehouse applies no map: listed names as sent (not renamed),
    // the others sent under no name.
    let vault = delivery(&done, "vault");
    assert!(sent(vault).contains(&(TRACK, Some("Cancelled".into()))));
    assert!(sent(vault).contains(&(TRACK, Some("Spam".into()))));
    assert_eq!(
        sent(vault).iter().filter(|l| **l == (TRACK, None)).count(),
        3
    );
    assert!(!vault
        .labels
        .iter()
        .any(|l| l.event.as_deref() == Some("Visit Cancelled")));
    assert_no_values(&done);
}

#[test]
fn consent_granted_and_a_bot_request_balance_too() {
    let s = sanitizer(&policy());
    let events = hostile();
    let done = process(&s, &events, false);
    assert_balanced(&done, events.len());
    assert_eq!(not_sent_total(delivery(&done, "ads"), NotSent::Consent), 0);
    // The request's agent a bot's: every accepted event dropped as one.
    let agent = Agent {
        score: Some(1),
        ..Agent::default()
    };
    let done = s
        .process_request_from(
            &batch(&events),
            Call::Batch,
            usize::MAX,
            &Signals::default(),
            &agent,
        )
        .unwrap();
    assert_balanced(&done, events.len());
    for d in &done.deliveries {
        assert_eq!(d.sent, 0);
        assert_eq!(not_sent_total(d, NotSent::Bot), 12, "{}", d.destination);
        assert_eq!(not_sent_total(d, NotSent::Refused), 3, "{}", d.destination);
    }
    assert_no_values(&done);
}

#[test]
fn an_event_too_large_for_one_destination_is_refused_for_every_ledger() {
    let s = sanitizer(&policy());
    let big = json!({"type": "track", "event": "Booked", "userId": "u1",
                     "properties": {"plan": "x".repeat(3000), "bigonly": 1}});
    let events = vec![big, hostile()[0].clone()];
    let done = s
        .process_request_within(&batch(&events), Call::Batch, 2000)
        .unwrap();
    assert_eq!(done.rejected.len(), 1);
    assert_balanced(&done, 2);
    for d in &done.deliveries {
        assert_eq!(
            not_sent(d, TRACK, Some("Booked"), NotSent::Refused),
            1,
            "{}",
            d.destination
        );
    }
    // A refused event's paths are not in the inventory.
    assert!(done
        .inventory
        .iter()
        .all(|(p, n)| *n == 1 && !p.contains("bigonly")));
    assert!(!done.inventory.is_empty());
}

#[test]
fn a_single_call_and_labels_of_many_listed_names_balance() {
    // More labels than are scanned one by one: found again through a map.
    let names: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("Listed {i}"), json!("allow")))
        .chain([("*".to_owned(), json!("drop"))])
        .collect();
    let mut p = policy();
    p["events"] = Value::Object(names);
    let s = sanitizer(&p);
    let events: Vec<Value> = (0..200)
        .map(|i| json!({"type": "track", "event": format!("Listed {}", i % 40), "userId": "u"}))
        .collect();
    let done = process(&s, &events, false);
    assert_balanced(&done, 200);
    let amp = delivery(&done, "amp");
    assert_eq!(amp.labels.len(), 40);
    let all = sent(amp);
    for i in 0..40 {
        let want = (TRACK, Some(format!("Listed {i}")));
        assert_eq!(all.iter().filter(|l| **l == want).count(), 5);
    }
    let one = json!({"type": "page", "name": "Listed 3", "userId": "u"}).to_string();
    let done = s
        .process_request(one.as_bytes(), Call::Single(CallType::Page))
        .unwrap();
    assert_balanced(&done, 1);
    assert_eq!(
        sent(delivery(&done, "amp")),
        vec![(Some(CallType::Page), Some("Listed 3".into()))]
    );
}

fn paths(done: &Processed) -> Vec<(&str, u32)> {
    done.inventory
        .iter()
        .map(|(p, n)| (p.as_str(), *n))
        .collect()
}

#[test]
fn the_inventory_holds_unnamed_paths_at_their_shallowest_level() {
    let s = sanitizer(&policy());
    let done = process(&s, &hostile(), true);
    let got = paths(&done);
    let want = [
        ("properties.[key]", 1),
        ("properties.diagnosis", 2),
        ("properties.patient", 1),
        ("properties.items[].note", 1),
        ("properties.address.street", 1),
        ("context.page.title", 1),
        ("traits.email", 1),
        ("traits.[key]", 1),
        ("context.userAgent", 1),
        ("diagnosis", 1),
        ("[key]", 1),
        ("traits.practice", 1),
    ];
    assert_eq!(got, want);
    assert_no_values(&done);
}

#[test]
fn default_context_shapes_and_destination_lists_name_paths() {
    let mut p = policy();
    p["allowlists"].as_object_mut().unwrap().remove("context");
    let s = sanitizer(&p);
    let event = json!({"type": "track", "event": "Booked", "userId": "u",
        "properties": {"dose": 5, "plan": "x", "visit": [1, 2]},
        "context": {"library": {"name": "analytics.js", "version": "1.0", "build": "Jane Doe"},
                    "locale": "en-US", "timezone": "UTC", "os": {"name": "iOS"},
                    "traits": {"tier": "gold", "mrn": "123456789"}}});
    let done = process(&s, &[event], false);
    // `dose` is named by one destination's list only: named all the same.
    assert_eq!(
        paths(&done),
        [
            ("context.library.build", 1),
            ("context.os", 1),
            ("context.traits.mrn", 1)
        ]
    );
}

#[test]
fn arrays_where_rules_name_only_members_are_noted_once() {
    let s = sanitizer(&policy());
    let event = json!({"type": "track", "event": "Booked", "userId": "u",
        "properties": {"address": [{"zip": "98101"}, "x"], "items": {"sku": "a"}, "plan": [1]}});
    let done = process(&s, &[event.clone(), event], false);
    assert_eq!(
        paths(&done),
        [("properties.address[]", 2), ("properties.items.sku", 2)]
    );
}

#[test]
fn at_most_256_paths_then_the_rest_counted_together() {
    let s = sanitizer(&policy());
    let wide: serde_json::Map<String, Value> = (0..300)
        .map(|i| (format!("field{i:03}"), json!(i)))
        .collect();
    let event = json!({"type": "track", "event": "Booked", "userId": "u", "properties": wide});
    let small =
        json!({"type": "track", "event": "Booked", "userId": "u", "properties": {"field000": 1}});
    let done = process(&s, &[event.clone(), small, event], false);
    assert_eq!(done.inventory.len(), MAX_PATHS + 1);
    assert_eq!(done.inventory[0], ("properties.field000".to_owned(), 3));
    assert_eq!(done.inventory[255], ("properties.field255".to_owned(), 2));
    assert_eq!(done.inventory[256], (MORE_PATHS.to_owned(), 2));
}

#[test]
fn long_paths_are_cut() {
    let segment = "k".repeat(60);
    let rule = format!("{segment}.{segment}.{segment}.{segment}.named");
    let mut p = policy();
    p["allowlists"]["event_properties"][&rule] = json!("allow");
    let s = sanitizer(&p);
    let event = json!({"type": "track", "event": "Booked", "userId": "u",
        "properties": {&segment: {&segment: {&segment: {&segment: {"named": 1, "other": 2, "Jane Doe": 3}}}}}});
    let done = process(&s, &[event], false);
    let full = format!("properties.{segment}.{segment}.{segment}.{segment}.other");
    assert!(full.len() > MAX_PATH_BYTES);
    assert_eq!(done.inventory.len(), 1, "{:?}", done.inventory);
    // Both unnamed paths cut to the same text: one entry, one event.
    let (path, n) = &done.inventory[0];
    assert_eq!(*n, 1);
    assert_eq!(path.len(), MAX_PATH_BYTES);
    assert!(path.ends_with('…'));
    assert!(full.starts_with(path.trim_end_matches('…')));
}

#[test]
fn requests_without_unnamed_paths_or_events_map_report_none() {
    let mut p = policy();
    p.as_object_mut().unwrap().remove("events");
    let s = sanitizer(&p);
    let event = json!({"type": "track", "event": "Booked", "userId": "u", "messageId": "m",
        "timestamp": "2026-01-01T00:00:00Z", "integrations": {"All": true, "x": {"y": 1}},
        "properties": {"plan": "pro", "visit": {"a": 1}}, "context": {"ip": "10.0.0.1"}});
    let done = process(&s, &[event], false);
    assert!(done.inventory.is_empty(), "{:?}", done.inventory);
    // No `events` map: no name is listed, so none is recorded.
    for d in &done.deliveries {
        assert!(
            d.labels.iter().all(|l| l.event.is_none()),
            "{}",
            d.destination
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 100, ..Default::default() })]

    /// Any mix of the hostile events, with or without GPC, under a bot's
    /// agent or not: every event counted once per destination, no value.
    #[test]
    fn random_batches_balance(picks in proptest::collection::vec(0usize..15, 1..40), gpc: bool, bot: bool) {
        let s = sanitizer(&policy());
        let pool = hostile();
        let events: Vec<Value> = picks.iter().map(|&i| pool[i].clone()).collect();
        let agent = Agent { score: bot.then_some(1), ..Agent::default() };
        let signals = Signals { gpc, region: None };
        let done = s
            .process_request_from(&batch(&events), Call::Batch, usize::MAX, &signals, &agent)
            .unwrap();
        assert_balanced(&done, events.len());
        assert_no_values(&done);
    }
}
