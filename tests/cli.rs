//! The `phimask` command, run as a process: exit codes, messages, output
//! against the library's own answers, and hostile input (broken and
//! oversized lines, keys passed as arguments, closed pipes). Nothing of a
//! refused event and nothing of the key may appear in any output.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use phimask::{prepare_policy, Sanitizer};
use serde_json::Value;

const KEY: &str = "cli-test-key-0123456789-abcdefghijklmnop";
const PRODUCTION: &str = "policies/production.json";
const DEVELOPMENT: &str = "policies/development.json";
const EVENTS: [&str; 5] = [
    "examples/events/track-appointment.json",
    "examples/events/identify-patient.json",
    "examples/events/page-condition.json",
    "examples/events/group-practice.json",
    "examples/events/track-order.json",
];

fn phimask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phimask"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("PHI_MASKING_KEY");
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs with `args`, `stdin` as standard input and the key in the
/// environment when `key` is set.
fn run(args: &[&str], stdin: &[u8], key: Option<&str>) -> Run {
    let mut c = phimask();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = key {
        c.env("PHI_MASKING_KEY", k);
    }
    let mut child = c.spawn().expect("spawn phimask");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    let r = finish(out);
    // Whatever the command, no panic and never the key.
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains(KEY), "the key appeared in output");
    }
    r
}

/// Asserts that `text` holds `part`, showing all of it when not.
fn has(text: &str, part: &str) {
    assert!(text.contains(part), "no {part:?} in:\n{text}");
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

/// A fresh scratch directory.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "phimask-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write(dir: &Path, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().into_owned()
}

fn hash(policy: &str) -> String {
    let prepared = prepare_policy(&read(policy)).expect("valid policy");
    prepared[prepared.len() - 32..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn one_line(event: &str) -> String {
    let v: Value = serde_json::from_str(&read(event)).expect("event JSON");
    v.to_string()
}

fn sanitizer(policy: &str) -> Sanitizer {
    Sanitizer::new(&read(policy), Some(KEY.as_bytes())).expect("sanitizer")
}

const BROKEN_POLICY: &str = r#"{"version": 1, "environment": "x", "hipaa": true,
  "allowlists": {"event_properties": {"plan": "alow"}},
  "destinations": {"ads": {"connection": "client-side"}, "crm": {"connection": "server-side", "endpoint": "https://crm.example/", "restrict_phi": false}}}"#;

// ---- usage ----

#[test]
fn help_and_version_exit_0_and_bad_usage_exits_2() {
    let help = run(&["--help"], b"", None);
    assert_eq!(help.code, 0);
    for command in ["check", "explain", "sanitize", "map"] {
        assert!(help.stdout.contains(command), "{command}");
    }
    assert!(help.stdout.contains("Exit status"));
    assert!(help.stdout.contains("PHI_MASKING_KEY"));
    let version = run(&["--version"], b"", None);
    assert_eq!(version.code, 0);
    assert!(version.stdout.contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(run(&[], b"", None).code, 2);
    let unknown = run(&["check", "--frobnicate", PRODUCTION], b"", None);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("--frobnicate"));
}

#[test]
fn a_key_passed_as_an_argument_is_refused_without_being_repeated() {
    for args in [
        vec!["explain", "-p", PRODUCTION, &format!("--key={KEY}")[..]],
        vec![
            "sanitize",
            "-p",
            PRODUCTION,
            "-d",
            "amplitude",
            "--key",
            KEY,
        ],
        vec!["map", PRODUCTION, "--masking-key", KEY],
        vec!["sanitize", "-k", KEY, "-p", PRODUCTION, "-d", "amplitude"],
    ] {
        let r = run(&args, b"", None);
        assert_eq!(r.code, 2, "{args:?}");
        has(&r.stderr, "never an argument");
        assert!(r.stdout.is_empty());
    }
}

// ---- check ----

#[test]
fn check_reports_each_policy_with_its_hash() {
    let r = run(&["check", PRODUCTION, DEVELOPMENT], b"", None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for policy in [PRODUCTION, DEVELOPMENT] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{policy}: valid")))
            .unwrap_or_else(|| panic!("{policy}: {}", r.stdout));
        assert!(
            line.ends_with(&format!("sha256 {}", hash(policy))),
            "{line}"
        );
    }
}

#[test]
fn check_lists_every_error_with_its_path_and_exits_1() {
    let dir = scratch();
    let bad = write(&dir, "bad.json", BROKEN_POLICY.as_bytes());
    let r = run(&["check", &bad, PRODUCTION], b"", None);
    assert_eq!(r.code, 1);
    let (_, report) = phimask::validate_policy(BROKEN_POLICY);
    assert!(report.errors.len() >= 3);
    for e in &report.errors {
        let line = format!("{bad}: error: {}: {}", e.path, e.message);
        assert!(r.stdout.contains(&line), "missing {line}\n{}", r.stdout);
    }
    assert!(r
        .stdout
        .contains(&format!("{bad}: invalid ({} errors)", report.errors.len())));
    // The good policy after it is still checked.
    assert!(r.stdout.contains(&format!("{PRODUCTION}: valid")));
}

#[test]
fn check_json_and_deny_warnings() {
    let dir = scratch();
    let warned = write(
        &dir,
        "warned.json",
        br#"{"version": 1, "environment": "w", "hipaa": true, "identifiers": {"userId": "allow"},
          "destinations": {"a": {"connection": "server-side", "endpoint": "https://a.example/"}}}"#,
    );
    let ok = run(&["check", &warned], b"", None);
    assert_eq!(ok.code, 0);
    has(&ok.stdout, "warning: identifiers.userId:");
    assert_eq!(
        run(&["check", "--deny-warnings", &warned], b"", None).code,
        1
    );
    assert_eq!(
        run(&["check", "--deny-warnings", PRODUCTION], b"", None).code,
        0
    );

    let r = run(&["check", "--json", &warned, PRODUCTION], b"", None);
    assert_eq!(r.code, 0);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON report");
    assert_eq!(v[0]["valid"], true);
    assert_eq!(v[0]["warnings"][0]["path"], "identifiers.userId");
    assert_eq!(v[1]["sha256"], hash(PRODUCTION));
    assert_eq!(v[1]["environment"], "production");
}

#[test]
fn check_of_a_missing_or_non_utf8_file() {
    let dir = scratch();
    let latin1 = write(&dir, "latin1.json", b"{\"environment\": \"caf\xe9\"}");
    let r = run(
        &["check", "no/such/policy.json", &latin1, PRODUCTION],
        b"",
        None,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cannot read policy no/such/policy.json: No such file"),
        "{}",
        r.stderr
    );
    has(&r.stderr, "is not UTF-8");
    assert!(r.stdout.contains(&format!("{PRODUCTION}: valid")));
}

// ---- explain ----

#[test]
fn explain_gives_the_librarys_paths_and_no_values() {
    let event = read(EVENTS[0]);
    let expected = sanitizer(PRODUCTION).explain(&event).expect("explain");
    let r = run(&["explain", "--policy", PRODUCTION, EVENTS[0]], b"", None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for e in &expected {
        assert!(
            r.stdout
                .contains(&format!("{}: {}\n", e.destination, e.reason.text())),
            "{}",
            r.stdout
        );
        for p in &e.paths.dropped {
            assert!(r.stdout.contains(p.as_str()), "{p}");
        }
    }
    // Not one string value of the event (names, emails, URLs, ...).
    let v: Value = serde_json::from_str(&event).expect("JSON");
    for s in strings(&v) {
        if s.len() >= 5 {
            assert!(
                !r.stdout.contains(&s),
                "value {s:?} shown without --show-values"
            );
        }
    }
    // Standard input, and --json in the JavaScript API's shape.
    let j = run(
        &["explain", "-p", PRODUCTION, "--json"],
        event.as_bytes(),
        None,
    );
    assert_eq!(j.code, 0);
    let v: Value = serde_json::from_str(&j.stdout).expect("JSON");
    for e in &expected {
        let d = &v[&e.destination];
        assert_eq!(d["sent"], e.reason.sent());
        assert_eq!(d["dropped"], serde_json::json!(e.paths.dropped));
        assert_eq!(d["masked"], serde_json::json!(e.paths.masked));
        assert_eq!(d["transformed"], serde_json::json!(e.paths.transformed));
        assert!(d.get("event").is_none());
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn explain_show_values_needs_the_key_and_shows_what_is_sent() {
    let none = run(
        &["explain", "-p", PRODUCTION, "--show-values", EVENTS[0]],
        b"",
        None,
    );
    assert_eq!(none.code, 3);
    has(&none.stderr, "no masking key");

    let event = read(EVENTS[0]);
    let s = sanitizer(PRODUCTION);
    let r = run(
        &[
            "explain",
            "-p",
            PRODUCTION,
            "--show-values",
            "-d",
            "amplitude",
            "--json",
            EVENTS[0],
        ],
        b"",
        Some(KEY),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    let sent: Value = serde_json::from_str(
        &s.sanitize_json(&event, "amplitude")
            .expect("ok")
            .expect("sent"),
    )
    .expect("JSON");
    assert_eq!(v["amplitude"]["event"], sent);
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "only -d amplitude");
    // The mask is HMAC-SHA256 with the key from the environment.
    assert_eq!(
        sent["userId"],
        common::hmac_hex(KEY.as_bytes(), b"patient-004217")
    );
}

#[test]
fn a_key_file_masks_as_the_environment_does() {
    let dir = scratch();
    let file = write(&dir, "key", format!("{KEY}\n").as_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
    let args = ["explain", "-p", PRODUCTION, "--show-values", EVENTS[0]];
    let from_env = run(&args, b"", Some(KEY));
    let mut with_file = args.to_vec();
    with_file.extend(["--key-file", &file]);
    let from_file = run(
        &with_file,
        b"",
        Some("another-key-that-must-not-be-used-at-all"),
    );
    assert_eq!(from_file.code, 0, "{}", from_file.stderr);
    assert_eq!(from_env.stdout, from_file.stdout);
    assert!(
        !from_file.stderr.contains("warning"),
        "{}",
        from_file.stderr
    );

    // Unusable key files: each stops with status 3 and says why, never
    // quoting what the file holds.
    let empty = write(&dir, "empty", b"\n");
    let short = write(&dir, "short", b"too-short-a-key");
    for (file, why) in [
        (empty.as_str(), "is empty"),
        (short.as_str(), "too short"),
        ("no/such/key", "cannot read key file no/such/key"),
    ] {
        let args = [
            "explain",
            "-p",
            PRODUCTION,
            "--show-values",
            "--key-file",
            file,
            EVENTS[0],
        ];
        let r = run(&args, b"", None);
        assert_eq!(r.code, 3, "{file}");
        has(&r.stderr, why);
        assert!(!r.stderr.contains("too-short-a-key"), "{}", r.stderr);
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let file = write(&dir, "key", KEY.as_bytes());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let r = run(
        &["explain", "-p", PRODUCTION, "--key-file", &file, EVENTS[0]],
        b"",
        None,
    );
    assert_eq!(r.code, 0);
    has(&r.stderr, "can be read by other users");
}

#[test]
fn a_refused_event_is_not_echoed() {
    let hostile: [&[u8]; 4] = [
        br#"{"type":"track","event":"x","properties":{"ssn":"123-45-6789""#,
        br#"{"type":"track","event":"x","event":"jane.doe@example.com"}"#,
        br#"["jane.doe@example.com"]"#,
        b"{\"type\":\"track\",\"event\":\"jane.doe@example.com\xff\"}",
    ];
    for event in hostile {
        let r = run(&["explain", "-p", PRODUCTION], event, None);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stdout.is_empty());
        assert!(
            r.stderr.contains("refused") || r.stderr.contains("not UTF-8"),
            "{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("jane.doe") && !r.stderr.contains("6789"),
            "{}",
            r.stderr
        );
    }
    // An event over the limit is not even read whole.
    let big = format!(
        r#"{{"type":"track","event":"x","properties":{{"ssn":"123-45-6789","pad":"{}"}}}}"#,
        "y".repeat(10_000_000)
    );
    let r = run(&["explain", "-p", PRODUCTION], big.as_bytes(), None);
    assert_eq!(r.code, 1);
    has(&r.stderr, "is larger than 32768 bytes");
    assert!(!r.stderr.contains("6789"));
    let r = run(
        &["explain", "-p", PRODUCTION, "-d", "nowhere", EVENTS[0]],
        b"",
        None,
    );
    assert_eq!(r.code, 2);
    has(&r.stderr, "amplitude, mixpanel, warehouse");
}

// ---- sanitize ----

/// NDJSON of the example events, each on one line.
fn ndjson() -> Vec<String> {
    EVENTS.iter().map(|e| one_line(e)).collect()
}

#[test]
fn sanitize_writes_what_the_library_sends_and_skips_bad_lines_by_number() {
    let s = sanitizer(PRODUCTION);
    let good = ndjson();
    let oversized = format!(
        r#"{{"type":"track","event":"x","properties":{{"ssn":"123-45-6789","pad":"{}"}}}}"#,
        "y".repeat(40_000)
    );
    let mut input: Vec<Vec<u8>> = Vec::new();
    input.push(good[0].clone().into_bytes()); // 1
    input.push(br#"{"type":"track","properties":{"email":"jane.doe@example.com""#.to_vec()); // 2: broken
    input.push(Vec::new()); // 3: blank
    input.push(format!("{}\r", good[1]).into_bytes()); // 4: CRLF
    input.push(oversized.into_bytes()); // 5: over 32 KB
    input.push(b"{\"type\":\"track\",\"event\":\"jane.doe\xff\"}".to_vec()); // 6: not UTF-8
    input.push(good[2].clone().into_bytes()); // 7
    input.push(br#"{"type":"page","name":"jane.doe@example.com","type":"track"}"#.to_vec()); // 8: duplicate key
    input.push(good[3].clone().into_bytes()); // 9
    input.push(good[4].clone().into_bytes()); // 10, no final newline
    let stdin = input.join(&b'\n');

    for dest in ["amplitude", "mixpanel", "warehouse"] {
        let r = run(
            &["sanitize", "-p", PRODUCTION, "-d", dest],
            &stdin,
            Some(KEY),
        );
        assert_eq!(r.code, 1, "{dest}: {}", r.stderr);
        let expected: Vec<String> = good
            .iter()
            .filter_map(|e| s.sanitize_json(e, dest).expect("good event"))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(r.stdout.lines().collect::<Vec<_>>(), expected, "{dest}");
        for line in [2, 5, 6, 8] {
            assert!(
                r.stderr
                    .contains(&format!("line {line}: refused, not sent:")),
                "{dest} line {line}: {}",
                r.stderr
            );
        }
        has(&r.stderr, "larger than 32768 bytes");
        has(&r.stderr, "not UTF-8 text at byte");
        assert!(
            !r.stderr.contains("jane.doe") && !r.stderr.contains("6789"),
            "{}",
            r.stderr
        );
        has(&r.stderr, "10 lines");
        assert!(
            r.stderr.contains(&format!("{} sent", expected.len())),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains("4 refused (line 2, line 5, line 6, line 8)"),
            "{}",
            r.stderr
        );
        has(&r.stderr, "1 blank");
    }
}

#[test]
fn sanitize_counts_what_the_policy_sends_nothing_of() {
    // mixpanel takes track, page and identify: the group is not for it.
    let r = run(
        &[
            "sanitize", "-p", PRODUCTION, "-d", "mixpanel", EVENTS[3], EVENTS[0],
        ],
        b"",
        Some(KEY),
    );
    assert_eq!(
        r.code, 1,
        "pretty-printed files are not NDJSON: {}",
        r.stderr
    );
    let dir = scratch();
    let group = write(
        &dir,
        "group.ndjson",
        format!("{}\n", one_line(EVENTS[3])).as_bytes(),
    );
    let track = write(
        &dir,
        "track.ndjson",
        format!("{}\n", one_line(EVENTS[0])).as_bytes(),
    );
    let out = dir.join("out.ndjson");
    let r = run(
        &[
            "sanitize",
            "-p",
            PRODUCTION,
            "-d",
            "mixpanel",
            &group,
            &track,
            "-o",
            &out.to_string_lossy(),
        ],
        b"",
        Some(KEY),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let written = std::fs::read_to_string(&out).expect("output file");
    let expected = sanitizer(PRODUCTION)
        .sanitize_json(&one_line(EVENTS[0]), "mixpanel")
        .expect("ok")
        .expect("sent");
    assert_eq!(written, format!("{expected}\n"));
    has(&r.stderr, "1 sent, 1 not for mixpanel");
}

#[test]
fn sanitize_refuses_what_it_cannot_do() {
    let r = run(&["sanitize", "-p", PRODUCTION, "-d", "ads"], b"", Some(KEY));
    assert_eq!(r.code, 2);
    assert!(r
        .stderr
        .contains("server-side destinations: amplitude, mixpanel, warehouse"));
    let r = run(
        &["sanitize", "-p", PRODUCTION, "-d", "amplitude"],
        ndjson()[0].as_bytes(),
        None,
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("no masking key"));
    assert!(r.stdout.is_empty());
    let dir = scratch();
    let client = write(
        &dir,
        "client.json",
        br#"{"version": 1, "environment": "c", "hipaa": true, "destinations": {
          "pixel": {"connection": "client-side", "restrict_phi": false, "baa": true}}}"#,
    );
    let r = run(&["sanitize", "-p", &client, "-d", "pixel"], b"", Some(KEY));
    assert_eq!(r.code, 2);
    has(&r.stderr, "pixel is client-side");
    let bad = write(&dir, "bad.json", BROKEN_POLICY.as_bytes());
    let r = run(&["sanitize", "-p", &bad, "-d", "crm"], b"", Some(KEY));
    assert_eq!(r.code, 1);
    has(&r.stderr, "error: allowlists.event_properties.plan");
    let r = run(
        &[
            "sanitize",
            "-p",
            PRODUCTION,
            "-d",
            "amplitude",
            "no/such.ndjson",
        ],
        b"",
        Some(KEY),
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("cannot read no/such.ndjson"));
}

#[test]
fn sanitize_shows_progress_on_a_long_input_and_quiet_silences_it() {
    let line = format!("{}\n", ndjson()[0]);
    for quiet in [false, true] {
        let mut c = phimask();
        c.args(["sanitize", "-p", PRODUCTION, "-d", "amplitude"]);
        if quiet {
            c.arg("--quiet");
        }
        let mut child = c
            .env("PHI_MASKING_KEY", KEY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        // A slow stream (a download, a decompressor): the run lasts over a
        // second, so a progress line is due.
        for _ in 0..3 {
            for _ in 0..50 {
                stdin.write_all(line.as_bytes()).expect("write");
            }
            stdin.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(700));
        }
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        let stdout = reader.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(stdout.lines().count(), 150);
        let progress = stderr
            .lines()
            .filter(|l| l.contains("lines, ") && l.contains(" read, ") && l.ends_with("MB/s"))
            .count();
        if quiet {
            assert!(stderr.is_empty(), "{stderr}");
        } else {
            assert!(progress >= 1, "{stderr}");
            assert!(stderr.contains("150 lines in"), "{stderr}");
        }
    }
}

#[test]
fn sanitize_stops_cleanly_when_the_reader_goes_away() {
    let mut child = phimask()
        .args(["sanitize", "-p", PRODUCTION, "-d", "warehouse"])
        .env("PHI_MASKING_KEY", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    let line = format!("{}\n", ndjson()[0]);
    let writer = std::thread::spawn(move || {
        for _ in 0..20_000 {
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    let _ = stdout.read_exact(&mut first);
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the output was closed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---- map ----

#[test]
fn map_in_markdown_and_html() {
    let md = run(&["map", PRODUCTION], b"", None);
    assert_eq!(md.code, 0, "{}", md.stderr);
    let sha = hash(PRODUCTION);
    assert!(md.stdout.contains(&format!("`{sha}`")));
    for d in ["amplitude", "mixpanel", "warehouse"] {
        assert!(md.stdout.contains(&format!("## `{d}`")), "{d}");
    }
    let dir = scratch();
    let out = dir.join("map.html");
    let html = run(
        &[
            "map",
            PRODUCTION,
            "--format",
            "html",
            "-o",
            &out.to_string_lossy(),
        ],
        b"",
        None,
    );
    assert_eq!(html.code, 0, "{}", html.stderr);
    assert!(html.stdout.is_empty());
    let page = std::fs::read_to_string(&out).expect("html file");
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains(&format!("<code>{sha}</code>")));
    assert!(!page.contains("<script"));

    let bad = write(&dir, "bad.json", BROKEN_POLICY.as_bytes());
    let r = run(&["map", &bad], b"", None);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
    has(&r.stderr, "is invalid");
}

#[test]
fn the_map_names_every_rule_of_every_restricted_destination() {
    let (policy, report) = phimask::validate_policy(&read(PRODUCTION));
    let policy = policy.expect("valid");
    assert!(report.errors.is_empty());
    let md = run(&["map", PRODUCTION], b"", None).stdout;
    for d in policy.destinations.iter().filter(|d| d.restricted) {
        let section = md
            .split(&format!("## `{}`", d.name))
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        for list in phimask::policy::List::ALL {
            for rule in policy.lists_for(d).list(list) {
                let row = section
                    .lines()
                    .find(|l| l.contains(&format!(".{}`", rule.path)) && l.contains(list.key()));
                assert!(row.is_some(), "{}: {} {}", d.name, list.key(), rule.path);
            }
        }
        // And the rules of the names map.
        for (name, _) in &policy.names_for(d).0 {
            if name != "*" {
                assert!(
                    section.contains(&format!("| `{name}` |")),
                    "{}: {name}",
                    d.name
                );
            }
        }
    }
}

/// The events of a destination's request bodies, as its API reads them
/// (GA4: each with its body's user IDs, as `--native` writes it).
fn events_of(format: &str, body: &Value) -> Vec<Value> {
    match format {
        "amplitude" => body["events"].as_array().cloned().unwrap_or_default(),
        "mixpanel" => body.as_array().cloned().unwrap_or_default(),
        "posthog" => body["batch"].as_array().cloned().unwrap_or_default(),
        "ga4" => body["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let mut one = body.clone();
                one["events"] = Value::Array(vec![e.clone()]);
                one
            })
            .collect(),
        _ => body["batch"].as_array().cloned().unwrap_or_default(),
    }
}

#[test]
fn sanitize_native_writes_each_event_as_the_worker_sends_it() {
    let s = sanitizer(DEVELOPMENT);
    let events = ndjson();
    let batch = format!(r#"{{"batch":[{}]}}"#, events.join(","));
    let processed = s
        .process_request(batch.as_bytes(), phimask::Call::Batch)
        .expect("the example batch");
    let stdin = format!("{}\n", events.join("\n"));
    for delivery in &processed.deliveries {
        let dest = delivery.destination.as_str();
        let format = s.format(dest).expect("format").name();
        let r = run(
            &["sanitize", "-p", DEVELOPMENT, "-d", dest, "--native"],
            stdin.as_bytes(),
            Some(KEY),
        );
        assert_eq!(r.code, 0, "{dest}: {}", r.stderr);
        let lines: Vec<Value> = r
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        // GA4 groups a request's events by user; each line is one event.
        let mut sent: Vec<Value> = delivery
            .bodies
            .iter()
            .flat_map(|b| events_of(format, &serde_json::from_str(b).expect("body")))
            .collect();
        let mut lines_sorted = lines.clone();
        if format == "ga4" {
            sent.sort_by_key(Value::to_string);
            lines_sorted.sort_by_key(Value::to_string);
        }
        assert_eq!(lines_sorted, sent, "{dest} ({format})");
        // Counted as the Worker counts them.
        has(&r.stderr, &format!(": {} sent", lines.len()));
        if delivery.unmapped > 0 {
            let no_place = format!("{} with no place in {dest}'s API", delivery.unmapped);
            has(&r.stderr, &no_place);
        }
    }
    // Without --native a native destination still gets Segment events.
    let r = run(
        &["sanitize", "-p", DEVELOPMENT, "-d", "amplitude"],
        stdin.as_bytes(),
        Some(KEY),
    );
    let first: Value =
        serde_json::from_str(r.stdout.lines().next().unwrap_or_default()).expect("JSON");
    assert_eq!(first["type"], "track");
}

#[test]
fn explain_never_prints_a_key_that_is_not_a_field_name() {
    let event = r#"{"type":"track","event":"Order Completed","userId":"u-1","properties":{"Jane Doe HIV positive":{"since":"2019"},"jane.doe@example.com":true}}"#;
    for args in [
        &["explain", "-p", PRODUCTION][..],
        &["explain", "-p", PRODUCTION, "--json"][..],
    ] {
        let r = run(args, event.as_bytes(), None);
        assert_eq!(r.code, 0, "{}", r.stderr);
        has(&r.stdout, "properties.[key]");
        for phi in ["Jane", "HIV", "jane"] {
            assert!(!r.stdout.contains(phi), "{phi}: {}", r.stdout);
        }
    }
    // A key written twice: refused, and the message shows no key either.
    let dup = r#"{"type":"track","event":"E","userId":"u","properties":{"Jane Doe":{"HIV positive":1,"HIV positive":2}}}"#;
    let r = run(&["explain", "-p", PRODUCTION], dup.as_bytes(), None);
    assert_ne!(r.code, 0);
    has(&r.stderr, "properties.[key]");
    assert!(
        !r.stderr.contains("Jane") && !r.stderr.contains("HIV"),
        "{}",
        r.stderr
    );
}

/// docs/command.md's examples as a user runs them: `check` prints the
/// hash shown, and `explain` of the example page view under the
/// production policy prints what the page shows for amplitude, and the
/// `[key]` example's paths.
#[test]
fn the_documented_examples_print_what_the_docs_show() {
    let doc = read("docs/command.md");
    let check = run(&["check", "policies/production.json"], b"", None);
    assert_eq!(check.code, 0);
    has(&doc, check.stdout.trim_end());

    let explain = run(
        &[
            "explain",
            "--policy",
            "policies/production.json",
            "examples/events/page-condition.json",
        ],
        b"",
        None,
    );
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    let amplitude: Vec<&str> = explain
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("mixpanel"))
        .collect();
    assert!(amplitude.len() > 2, "{}", explain.stdout);
    has(&doc, &amplitude.join("\n"));

    // The [key] example: its policy and event as the text gives them.
    let dir = scratch();
    let policy = write(
        &dir,
        "policy.json",
        br#"{"version":1,"environment":"production","hipaa":true,
             "allowlists":{"event_properties":{"answers":"mask"}},"events":{"*":"allow"},
             "destinations":{"amplitude":{"connection":"server-side","endpoint":"https://api2.amplitude.example/batch"}}}"#,
    );
    has(
        &doc,
        r#""properties": {"Jane Doe": 1, "answers": {"Jane Doe HIV positive": "yes", "q1": "no"}}"#,
    );
    let event = r#"{"type":"track","event":"Form Sent","userId":"u1","properties": {"Jane Doe": 1, "answers": {"Jane Doe HIV positive": "yes", "q1": "no"}}}"#;
    let keys = run(
        &["explain", "--policy", &policy, "-"],
        event.as_bytes(),
        None,
    );
    assert_eq!(keys.code, 0, "{}", keys.stderr);
    assert!(!keys.stdout.contains("Jane"), "{}", keys.stdout);
    has(&doc, keys.stdout.trim_end());
}

/// The consent examples of docs/command.md and docs/consent.md as a user
/// runs them: `explain` with `--gpc` and `--region` prints the `consent`
/// lines the pages show, the PHI of the example events ("HIV positive")
/// never appears, and a region that is not a code is bad usage, with the
/// message docs/consent.md shows.
#[test]
fn the_documented_consent_examples_print_what_the_docs_show() {
    let command = read("docs/command.md");
    let consent = read("docs/consent.md");
    let policy = "examples/consent/policy.json";
    let explain = |args: &[&str]| {
        let r = run(
            &[&["explain", "--policy", policy][..], args].concat(),
            b"",
            None,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stdout.contains("HIV"), "{}", r.stdout);
        r.stdout
    };
    let gated = explain(&[
        "--region",
        "US-CA",
        "--gpc",
        "examples/consent/no-consent-track.json",
    ]);
    has(&gated, "  consent      advertising denied by gpc\n");
    has(
        &command,
        &format!("examples/consent/no-consent-track.json\n{gated}```"),
    );
    // What the text after it says: without --region, opt-in denies both;
    // without --gpc, California's opt-out lets the advertising one through.
    let strict = explain(&["examples/consent/no-consent-track.json"]);
    has(&strict, "consent      analytics denied by opt-in");
    has(&strict, "consent      advertising denied by opt-in");
    let california = explain(&[
        "--region",
        "us-ca",
        "examples/consent/no-consent-track.json",
    ]);
    has(&california, "advertising granted by opt-out (region US-CA)");
    has(&command, "`advertising granted by opt-out (region\nUS-CA)`");

    for event in ["segment-track", "rudderstack-track"] {
        let path = format!("examples/consent/{event}.json");
        let out = explain(&[&path]);
        has(
            &consent,
            &format!("$ phimask explain --policy {policy} {path}\n{out}```"),
        );
        has(&out, "meta_capi: not sent: consent");
    }

    let bad = run(
        &[
            "sanitize",
            "-p",
            policy,
            "-d",
            "meta_capi",
            "--region",
            "Washington",
            "-",
        ],
        b"",
        Some(KEY),
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let first = bad.stderr.lines().next().unwrap_or_default();
    has(
        &consent,
        &format!("--region Washington export.ndjson\n{first}\n"),
    );
}

/// One event a line, whatever white space the client put between a
/// value's tokens: a lone carriage return (valid JSON) is a line end to
/// Spark's and Python's readers, so it is written as a space.
#[test]
fn sanitize_writes_one_event_a_line_whatever_white_space_is_inside() {
    let event = "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u-1\",\"properties\":{\"products\":[\r{\"sku\":\"s-1\"}\r]}}";
    for args in [
        &["sanitize", "-p", DEVELOPMENT, "-d", "warehouse"][..],
        &["sanitize", "-p", DEVELOPMENT, "-d", "amplitude", "--native"][..],
    ] {
        let r = run(args, format!("{event}\n").as_bytes(), Some(KEY));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stdout.contains('\r'), "{args:?}: {:?}", r.stdout);
        assert_eq!(r.stdout.lines().count(), 1, "{args:?}: {:?}", r.stdout);
        let line: Value = serde_json::from_str(r.stdout.trim_end()).expect("a JSON line");
        assert!(
            line.to_string().contains("s-1"),
            "{args:?}: the allowed sku is kept: {line}"
        );
    }
}
