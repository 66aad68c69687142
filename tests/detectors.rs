//! Detectors through `Sanitizer::sanitize_json`: Unicode text around PHI,
//! the new forms, and numbers scanned as their decimal text.

mod common;

use phimask::Sanitizer;
use serde_json::{json, Value};

const KEY: &[u8] = b"detectors-test-key-0123456789abcdefghij";

const POLICY: &str = r#"{
  "version": 1, "environment": "production", "hipaa": true,
  "allowlists": { "event_properties": {
    "redacted": { "action": "allow", "scan": true },
    "masked": { "action": "allow", "scan": true, "on_match": "mask" },
    "dropped": { "action": "allow", "scan": true, "on_match": "drop" },
    "records": { "action": "allow", "scan": ["id"], "on_match": "redact" },
    "records_masked": { "action": "allow", "scan": ["id"], "on_match": "mask" },
    "unscanned": "allow"
  } },
  "destinations": {
    "amplitude": { "connection": "server-side", "endpoint": "https://api2.amplitude.example/batch" }
  }
}"#;

/// The properties Amplitude receives for these properties.
fn sent(properties: &str) -> Value {
    let s = Sanitizer::new(POLICY, Some(KEY)).unwrap();
    let event =
        format!(r#"{{"type":"track","event":"E","userId":"u1","properties":{properties}}}"#);
    let out = s.sanitize_json(&event, "amplitude").unwrap().unwrap();
    let out: Value = serde_json::from_str(&out).unwrap();
    out["properties"].clone()
}

fn masked(clear: &str) -> String {
    common::hmac_hex(KEY, clear.as_bytes())
}

#[test]
fn numbers_are_scanned_as_their_decimal_text() {
    // A card number, and the same card written with an exponent.
    for card in [
        "4111111111111111",
        "4.111111111111111e15",
        "41111111111111.11e2",
    ] {
        let props =
            format!(r#"{{"redacted":{card},"masked":{card},"dropped":{card},"unscanned":{card}}}"#);
        assert_eq!(
            sent(&props),
            json!({"masked": masked("4111111111111111"), "unscanned": serde_json::from_str::<Value>(card).unwrap()}),
            "{card}"
        );
    }
    // An SSN's nine digits as a number: a record number to `id`.
    let props = r#"{"records":123456789,"records_masked":1.23456789e8,"redacted":123456789}"#;
    assert_eq!(
        sent(props),
        json!({"records_masked": masked("123456789"), "redacted": 123456789})
    );
    // Inside arrays and objects under the rule, too.
    assert_eq!(
        sent(r#"{"redacted":[19.99,4111111111111111,{"n":4111111111111111,"m":2}]}"#),
        json!({"redacted": [19.99, null, {"m": 2}]})
    );
    assert_eq!(
        sent(r#"{"masked":[-4111111111111111]}"#),
        json!({"masked": [format!("-{}", masked("4111111111111111"))]})
    );
}

#[test]
fn ordinary_numbers_pass_as_written() {
    let props = r#"{"redacted":[19.99,123456,1732270000000,0.4111111111111111,-3,1e2,0.30000000000000004],"records":[123456,19.99]}"#;
    assert_eq!(
        sent(props),
        json!({"redacted": [19.99, 123456, 1732270000000u64, 0.4111111111111111, -3, 1e2, 0.30000000000000004], "records": [123456, 19.99]})
    );
    // Written as sent: the exponent form is kept.
    let s = Sanitizer::new(POLICY, Some(KEY)).unwrap();
    let out = s
        .sanitize_json(
            r#"{"type":"track","event":"E","userId":"u1","properties":{"redacted":1e2}}"#,
            "amplitude",
        )
        .unwrap()
        .unwrap();
    assert!(out.contains(r#""redacted":1e2"#), "{out}");
}

#[test]
fn a_number_too_long_to_write_out_is_taken_for_a_match() {
    assert_eq!(
        sent(r#"{"redacted":1e400,"dropped":1e-400,"masked":1e400}"#),
        json!({"masked": masked("1e400")})
    );
}

#[test]
fn unicode_neighbours_hide_nothing() {
    let props = json!({
        "redacted": [
            "患者123-45-6789",
            "电话555-123-4567",
            "SSN\u{a0}123\u{a0}45\u{a0}6789",
            "“jane@x.com”",
            "jane@x.com’s file",
            "tel：５５５－１２３－４５６７",
            "card\u{202f}4111.1111.1111.1111",
            "DOB–03/14/1962",
            "né le 14 March 1962",
            "생일 1962-03-14",
            "from\u{200b}203.0.113.7",
            "-jane@x.com",
            "josé@correo.es",
            "call +44 20 7946 0958",
        ],
        "masked": "患者１２３－４５－６７８９です",
        "dropped": "メール: jane＠example.com",
    });
    assert_eq!(
        sent(&props.to_string()),
        json!({
            "redacted": [
                "患者[ssn]",
                "电话[phone]",
                "SSN\u{a0}[ssn]",
                "“[email]”",
                "[email]’s file",
                "tel：[phone]",
                "card\u{202f}[card]",
                "DOB–[date]",
                "né le [date]",
                "생일 [date]",
                "from\u{200b}[ip]",
                "-[email]",
                "[email]",
                "call [phone]",
            ],
            "masked": format!("患者{}です", masked("１２３－４５－６７８９")),
        })
    );
}

#[test]
fn undetectable_phi_is_beyond_the_detectors() {
    // What no detector can see passes a scan: scanning is not a reason to
    // put free text on a list.
    let props = json!({"redacted": "Jane Doe, HIV positive, 12 Elm Street"});
    assert_eq!(sent(&props.to_string()), props);
}

#[test]
fn ordinary_values_stay_clean() {
    let values = json!([
        "2026-11-23T14:05:11.000Z",
        "10.4.12",
        "€19,99",
        "¥1,200",
        "f47ac10b-58cc-4372-a567-0e02b2c3d479",
        "654321",
        "Glucose Meter GLU-100 (2-pack)",
        "v2.0.1-beta",
    ]);
    assert_eq!(
        sent(&json!({"redacted": values}).to_string()),
        json!({"redacted": values})
    );
}

#[test]
fn hostile_values_are_scanned_without_trouble() {
    let long = "1-".repeat(5000) + &"+(".repeat(2000) + "4111111111111111";
    let props = json!({"redacted": [long, "＠".repeat(3000), "\u{feff}\u{202e}123-45-6789"]});
    let out = sent(&props.to_string());
    let texts = out["redacted"].as_array().unwrap();
    assert!(texts[0].as_str().unwrap().ends_with("[card]"));
    assert_eq!(texts[1], json!("＠".repeat(3000)));
    assert_eq!(texts[2], json!("\u{feff}\u{202e}[ssn]"));
    // A number written with a huge exponent, and digits far past 19.
    let digits = "4".repeat(5000);
    let props = format!(r#"{{"redacted":[1e99999999999999999999,{digits}],"records":{digits}}}"#);
    assert_eq!(sent(&props), json!({"redacted": [null, null]}));
}

/// Keys redacted alike would be a key written twice (which parsers read
/// differently): the later member is not sent, and a key written as the
/// redaction itself does not collide either.
#[test]
fn keys_redacted_alike_are_not_written_twice() {
    let s = Sanitizer::new(POLICY, Some(KEY)).unwrap();
    for props in [
        r#"{"redacted":{"jane@x.com":1,"bob@y.com":2}}"#,
        r#"{"redacted":{"[email]":0,"jane@x.com":1}}"#,
        r#"{"redacted":{"jane@x.com":1,"[email]":0,"a":{"bob@y.com":2,"zed@z.org":3}}}"#,
    ] {
        let event = format!(r#"{{"type":"track","event":"E","userId":"u1","properties":{props}}}"#);
        let out = s.sanitize_json(&event, "amplitude").unwrap().unwrap();
        assert!(common::without_duplicate_keys(&out), "{out}");
        assert!(
            !out.contains("jane") && !out.contains("bob") && !out.contains("zed"),
            "{out}"
        );
        assert!(out.contains(r#""[email]":"#), "{out}");
    }
}
