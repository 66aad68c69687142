//! The BAA register: a destination's `"baa"` as `true`, `false` or
//! `{"signed": "YYYY-MM-DD", "ref": "…"}`. Validation (messages at their
//! paths, calendar dates, hostile references), the `restrict_phi` rule,
//! the prepared form, the register of the Rust API and the data map.

use phimask::policy::{Baa, BaaEntry};
use phimask::{validate_policy, Policy, Sanitizer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A policy with a restricted server-side destination `amp`, the
/// unrestricted warehouse `w` whose `baa` is given, and a client-side
/// `pixel` under an undated BAA.
fn policy(baa: Value) -> Value {
    json!({
        "version": 1, "environment": "test", "hipaa": true, "events": {"*": "allow"},
        "destinations": {
            "amp": {"connection": "server-side", "endpoint": "https://amp.example/"},
            "w": {"connection": "server-side", "endpoint": "https://w.example/",
                  "restrict_phi": false, "baa": baa},
            "pixel": {"connection": "client-side", "restrict_phi": false, "baa": true}
        }
    })
}

fn valid(policy: &Value) -> Policy {
    let (valid, report) = validate_policy(&policy.to_string());
    valid.unwrap_or_else(|| panic!("{:?}", report.errors))
}

/// The errors of an invalid policy, as (path, message).
fn errors(policy: &Value) -> Vec<(String, String)> {
    let (valid, report) = validate_policy(&policy.to_string());
    assert!(valid.is_none(), "valid: {policy}");
    report
        .errors
        .into_iter()
        .map(|p| (p.path, p.message))
        .collect()
}

/// The one error at `path` (the policy may also have the restrict_phi
/// error: an invalid `baa` is no BAA).
fn error_at(policy: &Value, path: &str) -> String {
    let all = errors(policy);
    let here: Vec<&String> = all
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(here.len(), 1, "{all:?}");
    here[0].clone()
}

const RESTRICT_PHI_MESSAGE: &str =
    "false requires \"baa\": true (a signed Business Associate Agreement with this destination)";

#[test]
fn the_register_form_is_valid_and_kept() {
    let p = valid(&policy(
        json!({"signed": "2026-01-15", "ref": "MSA-2026-014"}),
    ));
    let w = p.destinations.iter().find(|d| d.name == "w").unwrap();
    assert_eq!(
        w.baa,
        Baa::Signed {
            signed: "2026-01-15".into(),
            reference: "MSA-2026-014".into()
        }
    );
    assert!(!w.restricted);
    let amp = p.destinations.iter().find(|d| d.name == "amp").unwrap();
    assert_eq!(amp.baa, Baa::None);
}

#[test]
fn restrict_phi_false_needs_a_baa_in_either_form() {
    for baa in [json!(true), json!({"signed": "2024-02-29", "ref": "BAA 7"})] {
        valid(&policy(baa));
    }
    // false, absent, or a register object that is not valid: no BAA.
    let mut without = policy(json!(false));
    assert_eq!(
        error_at(&without, "destinations.w.restrict_phi"),
        RESTRICT_PHI_MESSAGE
    );
    without["destinations"]["w"]
        .as_object_mut()
        .unwrap()
        .remove("baa");
    assert_eq!(
        errors(&without),
        vec![(
            "destinations.w.restrict_phi".to_owned(),
            RESTRICT_PHI_MESSAGE.to_owned()
        )]
    );
    let bad = policy(json!({"signed": "2026-02-30", "ref": "BAA 7"}));
    assert_eq!(
        error_at(&bad, "destinations.w.restrict_phi"),
        RESTRICT_PHI_MESSAGE
    );
}

#[test]
fn a_register_object_on_a_restricted_destination_is_what_true_is_there() {
    let mut p = policy(json!(true));
    p["destinations"]["amp"]["baa"] = json!({"signed": "2026-01-15", "ref": "MSA-1"});
    let (valid_true, report_true) = {
        let mut t = p.clone();
        t["destinations"]["amp"]["baa"] = json!(true);
        validate_policy(&t.to_string())
    };
    let (valid_obj, report_obj) = validate_policy(&p.to_string());
    assert!(valid_true.is_some() && valid_obj.is_some());
    assert_eq!(report_true.warnings, report_obj.warnings);
    let amp = valid_obj.unwrap();
    let amp = amp.destinations.iter().find(|d| d.name == "amp").unwrap();
    assert!(amp.restricted);
}

#[test]
fn signed_must_be_a_real_calendar_date() {
    for ok in [
        "2026-01-15",
        "2024-02-29",
        "2000-02-29",
        "2026-12-31",
        "1999-04-30",
    ] {
        valid(&policy(json!({"signed": ok, "ref": "R-1"})));
    }
    let message = "must be a calendar date written YYYY-MM-DD (\"2026-01-15\")";
    for bad in [
        "2026-02-30",
        "2026-13-01",
        "2026-1-5",
        "2026-02-29",
        "1900-02-29",
        "2026-04-31",
        "2026-00-01",
        "2026-01-00",
        "2026/01/15",
        "15-01-2026",
        "2026-01-15T00:00:00Z",
        " 2026-01-15",
        "",
        "yesterday",
    ] {
        assert_eq!(
            error_at(
                &policy(json!({"signed": bad, "ref": "R-1"})),
                "destinations.w.baa.signed"
            ),
            message,
            "{bad:?}"
        );
    }
    // Far future or past dates are still dates: validation never reads
    // the clock, so a policy validates the same on every day.
    valid(&policy(json!({"signed": "9999-12-31", "ref": "R-1"})));
    for (bad, kind) in [
        (json!(20260115), "a number"),
        (json!(null), "null"),
        (json!(true), "a boolean"),
        (json!(["2026-01-15"]), "an array"),
        (json!({"y": 2026}), "an object"),
    ] {
        assert_eq!(
            error_at(
                &policy(json!({"signed": bad, "ref": "R-1"})),
                "destinations.w.baa.signed"
            ),
            format!("must be a date string \"YYYY-MM-DD\", not {kind}")
        );
    }
    assert_eq!(
        error_at(&policy(json!({"ref": "R-1"})), "destinations.w.baa.signed"),
        "missing; the day the BAA was signed, as \"YYYY-MM-DD\""
    );
}

#[test]
fn ref_must_be_one_short_line() {
    let at = |r: Value| {
        error_at(
            &policy(json!({"signed": "2026-01-15", "ref": r})),
            "destinations.w.baa.ref",
        )
    };
    let one_line = "must be one line without control characters";
    // PHI pasted into the reference would be printed in every report.
    assert_eq!(at(json!("Jane Doe\nSSN 123-45-6789")), one_line);
    for hostile in [
        "MSA\r1",
        "MSA\t1",
        "MSA\u{0}1",
        "MSA\u{1b}[31m1",
        "MSA\u{7f}",
        "MSA\u{85}1",
        "MSA\u{2028}1",
        "MSA\u{2029}1",
    ] {
        assert_eq!(at(json!(hostile)), one_line, "{hostile:?}");
    }
    assert_eq!(
        at(json!("x".repeat(10 * 1024))),
        "must be at most 200 characters"
    );
    assert_eq!(at(json!("é".repeat(201))), "must be at most 200 characters");
    valid(&policy(
        json!({"signed": "2026-01-15", "ref": "é".repeat(200)}),
    ));
    assert_eq!(at(json!("")), "must not be empty");
    assert_eq!(at(json!("   ")), "must not be empty");
    for (bad, kind) in [
        (json!(14), "a number"),
        (json!(null), "null"),
        (json!(false), "a boolean"),
        (json!(["MSA"]), "an array"),
        (json!({"id": "MSA"}), "an object"),
    ] {
        assert_eq!(at(bad), format!("must be a string, not {kind}"));
    }
    assert_eq!(
        error_at(
            &policy(json!({"signed": "2026-01-15"})),
            "destinations.w.baa.ref"
        ),
        "missing; the BAA's contract reference (\"MSA-2026-014\")"
    );
    // No message echoes the value.
    let all = errors(&policy(
        json!({"signed": "Jane Doe 1970-01-01", "ref": "Jane Doe\nSSN 123-45-6789"}),
    ));
    assert!(all
        .iter()
        .all(|(p, m)| !p.contains("Jane") && !m.contains("Jane") && !m.contains("123-45")));
}

#[test]
fn the_baa_object_has_exactly_signed_and_ref() {
    let all = errors(&policy(json!({})));
    assert!(all.contains(&(
        "destinations.w.baa.signed".into(),
        "missing; the day the BAA was signed, as \"YYYY-MM-DD\"".into()
    )));
    assert!(all.contains(&(
        "destinations.w.baa.ref".into(),
        "missing; the BAA's contract reference (\"MSA-2026-014\")".into()
    )));
    assert_eq!(
        error_at(
            &policy(json!({"signed": "2026-01-15", "ref": "R", "expires": "2027-01-15"})),
            "destinations.w.baa.expires"
        ),
        "unknown key; expected one of: signed, ref"
    );
    // Duplicate keys are refused, not resolved by the last one.
    let text = policy(json!(true)).to_string().replace(
        "\"baa\":true",
        "\"baa\":{\"signed\":\"2026-01-15\",\"ref\":\"A\",\"ref\":\"B\"}",
    );
    assert!(text.contains("\"ref\":\"B\""), "{text}");
    let (none, report) = validate_policy(&text);
    assert!(none.is_none());
    assert!(report
        .errors
        .iter()
        .any(|p| p.path == "destinations.w.baa.ref" && p.message == "duplicate key"));
    for (bad, kind) in [
        (json!("yes"), "a string"),
        (json!(1), "a number"),
        (json!(null), "null"),
        (json!(["2026-01-15", "R"]), "an array"),
    ] {
        assert_eq!(
            error_at(&policy(bad), "destinations.w.baa"),
            format!(
                "must be true, false or {{\"signed\": \"YYYY-MM-DD\", \"ref\": \"…\"}}, not {kind}"
            )
        );
    }
}

#[test]
fn the_register_in_the_rust_api_and_through_the_prepared_form() {
    let p = valid(&policy(
        json!({"signed": "2026-01-15", "ref": "MSA-2026-014"}),
    ));
    let expected = vec![
        BaaEntry {
            destination: "w".into(),
            signed: Some("2026-01-15".into()),
            reference: Some("MSA-2026-014".into()),
        },
        BaaEntry {
            destination: "pixel".into(),
            signed: None,
            reference: None,
        },
    ];
    assert_eq!(p.baa_register(), expected);
    let prepared = phimask::prepared::prepare(&p);
    assert_eq!(phimask::prepared::load(&prepared).as_ref(), Some(&p));
    let from_prepared = Sanitizer::from_prepared(&prepared, Some(KEY)).unwrap();
    assert_eq!(from_prepared.baa_register(), expected.as_slice());
    let direct = Sanitizer::from_policy(&p, Some(KEY)).unwrap();
    assert_eq!(direct.baa_register(), expected.as_slice());
    // No BAA anywhere: an empty register.
    let mut none = policy(json!(true));
    let dests = none["destinations"].as_object_mut().unwrap();
    dests.remove("w");
    dests.remove("pixel");
    assert!(Sanitizer::new(&none.to_string(), Some(KEY))
        .unwrap()
        .baa_register()
        .is_empty());
}

/// `bytes` with their trailing checksum made right again, as someone
/// crafting a prepared file would.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 32;
    let sum = Sha256::digest(&bytes[..body]);
    bytes[body..].copy_from_slice(&sum);
    bytes
}

#[test]
fn the_prepared_form_refuses_the_old_version_and_a_register_validation_refuses() {
    let p = valid(&policy(
        json!({"signed": "2026-01-15", "ref": "MSA-2026-014"}),
    ));
    let good = phimask::prepared::prepare(&p);
    assert_eq!(&good[..8], b"phimask\x05");
    let mut old = good.clone();
    old[7] = 4;
    let old = resealed(old);
    assert!(phimask::prepared::load(&old).is_none());
    assert!(Sanitizer::from_prepared(&old, Some(KEY)).is_err());
    // A prepared file is read without the validator: a date or reference
    // it would refuse is refused on loading too.
    for baa in [
        Baa::Signed {
            signed: "2026-02-30".into(),
            reference: "MSA".into(),
        },
        Baa::Signed {
            signed: "2026-01-15".into(),
            reference: "Jane Doe\nSSN 123-45-6789".into(),
        },
        Baa::Signed {
            signed: "2026-01-15".into(),
            reference: "x".repeat(10 * 1024),
        },
    ] {
        let mut bad = p.clone();
        bad.destinations[1].baa = baa;
        let bytes = phimask::prepared::prepare(&bad);
        assert!(phimask::prepared::load(&bytes).is_none());
        assert!(Sanitizer::from_prepared(&bytes, Some(KEY)).is_err());
    }
}

fn map_markdown(policy: &Policy) -> String {
    phimask::map::data_map(policy, &[]).markdown()
}

#[test]
fn the_data_map_shows_each_destinations_baa() {
    let p = valid(&policy(
        json!({"signed": "2026-01-15", "ref": "MSA-2026-014"}),
    ));
    let md = map_markdown(&p);
    // The destinations table's BAA column.
    assert!(md.contains("| PHI | BAA |"), "{md}");
    assert!(
        md.contains("| **unrestricted** | signed 2026-01-15, ref MSA-2026-014 |"),
        "{md}"
    );
    assert!(md.contains("| **restricted** | none |"), "{md}");
    assert!(
        md.contains("| **unrestricted** | yes (no date recorded) |"),
        "{md}"
    );
    // And a line per destination.
    for line in [
        "**BAA:** signed 2026-01-15, ref MSA-2026-014",
        "**BAA:** none",
        "**BAA:** yes (no date recorded)",
    ] {
        assert!(md.contains(line), "{line}\n{md}");
    }
    let html = phimask::map::data_map(&p, &[]).html();
    assert!(
        html.contains("signed 2026-01-15, ref MSA-2026-014"),
        "{html}"
    );
}

#[test]
fn a_hostile_but_valid_ref_stays_text_in_the_map() {
    let reference = "<script>alert(1)</script> | **x** `y`";
    let p = valid(&policy(json!({"signed": "2026-01-15", "ref": reference})));
    let html = phimask::map::data_map(&p, &[]).html();
    assert!(!html.contains("<script>"), "{html}");
    let md = map_markdown(&p);
    // The table keeps its columns: the pipe does not open a new cell.
    let row = md
        .lines()
        .find(|l| l.starts_with("| `w` |"))
        .unwrap_or_else(|| panic!("{md}"));
    let unescaped_pipes = row.len() - row.replace(" | ", "").len();
    let header = md
        .lines()
        .find(|l| l.starts_with("| destination |"))
        .unwrap();
    assert_eq!(
        unescaped_pipes,
        header.len() - header.replace(" | ", "").len(),
        "{row}"
    );
}
