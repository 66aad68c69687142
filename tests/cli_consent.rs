//! `phimask explain` and `phimask sanitize` with a request's signals
//! (`--gpc`, `--region`): the same decisions as the library's, and a bad
//! region refused as bad usage before anything is read.

use std::io::Write;
use std::process::{Command, Stdio};

use phimask::{Sanitizer, Signals};

const KEY: &str = "cli-consent-key-0123456789-abcdefghijkl";
const POLICY: &str = "policies/development.json";

fn phimask(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phimask"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PHI_MASKING_KEY", KEY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn phimask");
    let mut input = child.stdin.take().expect("stdin");
    // Bad usage exits before reading its input: a closed pipe here is
    // not a failure (the exit code and output say what happened).
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().expect("wait");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// An order (the ads destination's one event) with the visitor's consent
/// to advertising as Segment's consent tools stamp it, a name no
/// detector sees in a field the lists drop.
const ORDER: &str = r#"{"type":"track","event":"Order Completed","userId":"patient-7","properties":{"value":20,"patient":"Jane Doe"},"context":{"consent":{"categoryPreferences":{"C0004":true}}}}"#;

#[test]
fn explain_shows_each_purpose_decision_and_gpc_closes_the_gate() {
    let (code, out, err) = phimask(&["explain", "-p", POLICY, "-d", "ads"], ORDER);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("ads: sent, sanitized by its lists\n"),
        "{out}"
    );
    assert!(
        out.contains("  consent      advertising granted by categoryPreferences (C0004)\n"),
        "{out}"
    );
    let (code, out, _) = phimask(&["explain", "-p", POLICY, "-d", "ads", "--gpc"], ORDER);
    assert_eq!(code, 0);
    assert!(out.starts_with("ads: not sent: consent:"), "{out}");
    assert!(out.contains("advertising denied by gpc"), "{out}");
    // Unstamped, California's opt-out grants it; Washington's opt-in does not.
    let bare = ORDER.replace(
        r#","context":{"consent":{"categoryPreferences":{"C0004":true}}}"#,
        "",
    );
    let (_, out, _) = phimask(
        &[
            "explain", "-p", POLICY, "-d", "ads", "--region", "us-ca", "--json",
        ],
        &bare,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["ads"]["code"], "sanitized");
    assert_eq!(
        v["ads"]["consent"],
        serde_json::json!([{"purpose": "advertising", "granted": true, "by": "opt-out", "region": "US-CA"}])
    );
    let (_, out, _) = phimask(
        &[
            "explain", "-p", POLICY, "-d", "ads", "--region", "US-WA", "--json",
        ],
        &bare,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (v["ads"]["sent"].clone(), v["ads"]["code"].clone()),
        (false.into(), "consent".into())
    );
    assert!(!out.contains("Jane"));
}

#[test]
fn sanitize_applies_the_signals_to_every_line_as_the_library_does() {
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/development.json"
    ))
    .unwrap();
    let s = Sanitizer::new(&policy, Some(KEY.as_bytes())).unwrap();
    let denied = ORDER.replace(r#""C0004":true"#, r#""C0004":false"#);
    // An unstamped line: only the region's mode decides it, so a --region
    // the command dropped would show here.
    let bare = ORDER.replace(
        r#","context":{"consent":{"categoryPreferences":{"C0004":true}}}"#,
        "",
    );
    assert_ne!(bare, ORDER);
    let input = format!("{ORDER}\n{denied}\n{ORDER}\n{bare}\n");
    // Lines sent: the two granted (opt-in leaves the bare one out);
    // none under GPC; in California (opt-out) the bare one too.
    for (args, signals, lines) in [
        (vec![], Signals::default(), 2),
        (
            vec!["--gpc"],
            Signals {
                gpc: true,
                region: None,
            },
            0,
        ),
        (
            vec!["--region", "US-CA"],
            Signals {
                gpc: false,
                region: Some("US-CA".into()),
            },
            3,
        ),
        (
            vec!["--region", "us-wa"],
            Signals {
                gpc: false,
                region: Some("US-WA".into()),
            },
            2,
        ),
    ] {
        let mut all = vec!["sanitize", "-p", POLICY, "-d", "ads", "-q"];
        all.extend(&args);
        let (code, out, err) = phimask(&all, &input);
        assert_eq!(code, 0, "{err}");
        let want: String = input
            .lines()
            .filter_map(|l| s.sanitize_json_with(l, "ads", &signals).unwrap())
            .map(|l| l + "\n")
            .collect();
        assert_eq!(out, want, "{args:?}");
        assert_eq!(out.lines().count(), lines, "{args:?}: {out}");
        assert!(!out.contains("Jane"));
    }
    let (_, out, _) = phimask(
        &["sanitize", "-p", POLICY, "-d", "ads", "-q", "--gpc"],
        &input,
    );
    assert_eq!(out, "", "GPC denies advertising for every line");
}

#[test]
fn a_region_that_is_not_a_region_code_is_bad_usage() {
    for bad in ["Washington", "US-WASH", "", "<img src=x>", "U"] {
        let (code, out, err) = phimask(&["explain", "-p", POLICY, "--region", bad], ORDER);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(out.is_empty());
        assert!(err.contains("ISO 3166-2"), "{err}");
    }
}
