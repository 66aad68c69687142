//! `phimask evidence`, run as a process against a fake Worker on
//! 127.0.0.1 that checks what the real `GET /evidence` route requires
//! (the method, the path, from/to/format, the bearer) and answers as a
//! test needs: the report written byte for byte, the Worker's refusals
//! reported without the key, redirects never followed, answers over the
//! cap, garbage and cut connections refused with nothing written, and
//! every usage error found before any connection.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "evidence-operator-key-0123456789-abcdefghij";
const VAR: &str = "PHIMASK_OPERATOR_KEY";

// ---------------------------------------------------------------------
// The command

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `phimask evidence ARGS` with `key` (when set) as the operator key
/// and no proxy from the environment.
fn evidence(args: &[&str], key: Option<&str>) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phimask"));
    c.arg("evidence").args(args).env_remove(VAR);
    for proxy in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env_remove(proxy);
    }
    if let Some(k) = key {
        c.env(VAR, k);
    }
    let out = c.output().expect("run phimask");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // Whatever happened: no panic, and never a key in any output.
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    for secret in [Some(KEY), key].into_iter().flatten() {
        if secret.len() >= 8 {
            assert!(!stdout.contains(secret), "a key on stdout");
            assert!(!run.stderr.contains(secret), "a key on stderr");
        }
    }
    run
}

/// Asserts that `text` holds `part`, showing all of it when not.
fn has(text: &str, part: &str) {
    assert!(text.contains(part), "no {part:?} in:\n{text}");
}

/// A fresh, empty directory for a test's output files, removed when the
/// test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("phimask-evidence-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(dir)
}

/// The names in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------
// Listeners

/// A listener nobody serves: whether anything connected to it shows in
/// its backlog (a connection is complete there once `connect` returns).
struct Silent(TcpListener);

impl Silent {
    fn new() -> Self {
        Silent(TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().expect("addr"))
    }

    fn assert_untouched(&self) {
        self.0.set_nonblocking(true).expect("nonblocking");
        match self.0.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(_) => panic!("a connection was made"),
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A request as the fake Worker read it.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Answer = dyn Fn(&Request, &mut TcpStream) + Send + Sync;

/// A fake Worker: every request that passes the route's checks is
/// answered by `answer`; one that fails them gets the route's own
/// refusals (400 with a code, 401 invalid_operator_key).
struct Worker {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Worker {
    fn start(answer: impl Fn(&Request, &mut TcpStream) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let s = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (s, answer) = (Arc::clone(&s), Arc::clone(&answer));
                std::thread::spawn(move || {
                    let Some(request) = read_request(&mut stream) else {
                        return;
                    };
                    s.lock().expect("seen").push(request.clone());
                    match route_refusal(&request) {
                        Some((status, code, text)) => json_error(&mut stream, status, code, text),
                        None => answer(&request, &mut stream),
                    }
                });
            }
        });
        Worker { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("seen").clone()
    }
}

/// The request line and headers (at most 64 KB).
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?.take(64 << 10));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Some(Request {
        method,
        target,
        headers,
    })
}

/// What the real route refuses, as it refuses it.
fn route_refusal(r: &Request) -> Option<(u16, &'static str, &'static str)> {
    if r.method != "GET" {
        return Some((405, "method_not_allowed", "GET only"));
    }
    let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
    if path != "/evidence" {
        return Some((404, "not_found", "no such route"));
    }
    if r.header("authorization") != Some(&format!("Bearer {KEY}")) {
        return Some((
            401,
            "invalid_operator_key",
            "missing or unknown operator key: send it as Authorization: Bearer OPERATOR_KEY",
        ));
    }
    let pairs: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
    if names != ["from", "to", "format"] {
        return Some((400, "bad_query", "from, to and format, once each"));
    }
    let date = |d: &str| d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-';
    if !date(pairs[0].1) || !date(pairs[1].1) || pairs[0].1 > pairs[1].1 {
        return Some((400, "bad_dates", "from and to: YYYY-MM-DD, from <= to"));
    }
    if !["json", "markdown", "html"].contains(&pairs[2].1) {
        return Some((400, "bad_format", "format: json, markdown or html"));
    }
    None
}

fn json_error(stream: &mut TcpStream, status: u16, code: &str, text: &str) {
    let body = serde_json::json!({"success": false, "code": code, "error": text}).to_string();
    respond(stream, status, "application/json", body.as_bytes());
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// The media type the route answers `format` with.
fn media(format: &str) -> &'static str {
    match format {
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        _ => "text/markdown; charset=utf-8",
    }
}

fn format_of(r: &Request) -> String {
    r.target
        .rsplit("format=")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A report with every byte value, line ends of both kinds and
/// multi-byte characters: written unchanged or not at all.
fn report(format: &str) -> Vec<u8> {
    let mut body = format!("{format} report: é ✓\r\nline two\n").into_bytes();
    body.extend(0..=255u8);
    body.extend_from_slice(b"\nend\n");
    body
}

/// A Worker answering every good request with `report(format)`.
fn reporting_worker() -> Worker {
    Worker::start(|r, s| {
        let format = format_of(r);
        respond(s, 200, media(&format), &report(&format));
    })
}

// ---------------------------------------------------------------------
// Reports

#[test]
fn the_report_goes_to_stdout_byte_for_byte_and_markdown_is_the_default() {
    let worker = reporting_worker();
    let r = evidence(
        &[
            "--url",
            &worker.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, report("markdown"));
    assert_eq!(r.stderr, "");
    let seen = worker.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].target,
        "/evidence?from=2026-01-01&to=2026-01-31&format=markdown"
    );
    assert_eq!(seen[0].header("accept"), Some("text/markdown"));
    assert_eq!(
        seen[0]
            .header("user-agent")
            .map(|u| u.starts_with("phimask/")),
        Some(true)
    );
}

#[test]
fn a_report_with_o_replaces_the_file_whole_and_leaves_nothing_else() {
    let worker = reporting_worker();
    let dir = scratch("o-file");
    let file = dir.join("evidence.json");
    std::fs::write(
        &file,
        "an older, longer report that must not survive in part",
    )
    .expect("old");
    // A trailing slash gives the same /evidence, and one day is a range.
    let url = format!("{}/", worker.url());
    let r = evidence(
        &[
            "--url",
            &url,
            "--from",
            "2024-02-29",
            "--to",
            "2024-02-29",
            "--format",
            "json",
            "-o",
            file.to_str().expect("path"),
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(std::fs::read(&file).expect("written"), report("json"));
    assert_eq!(listing(&dir), ["evidence.json"]);
    assert_eq!(
        worker.requests()[0].target,
        "/evidence?from=2024-02-29&to=2024-02-29&format=json"
    );
}

#[test]
fn a_chunked_html_report_from_localhost_is_written_unchanged() {
    let worker = Worker::start(|r, s| {
        let body = report(&format_of(r));
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: Text/HTML;charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in body.chunks(7) {
            answer.extend(format!("{:x}\r\n", part.len()).into_bytes());
            answer.extend_from_slice(part);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        let _ = s.write_all(&answer);
    });
    let url = format!("http://localhost:{}", worker.addr.port());
    let r = evidence(
        &[
            "--url",
            &url,
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "-f",
            "html",
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, report("html"));
}

// ---------------------------------------------------------------------
// The Worker's refusals

#[test]
fn the_workers_refusal_names_its_status_and_code_never_the_key() {
    let worker = reporting_worker();
    let dir = scratch("refused");
    let file = dir.join("report.md");
    let wrong = "not-the-operator-key-9876543210-zyxwvutsrq";
    let r = evidence(
        &[
            "--url",
            &worker.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "-o",
            file.to_str().expect("path"),
        ],
        Some(wrong),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    has(
        &r.stderr,
        "the Worker refused the request: 401 invalid_operator_key: missing or unknown operator key",
    );
    assert!(r.stdout.is_empty());
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    // It was sent, as the bearer, and only there.
    assert_eq!(
        worker.requests()[0].header("authorization"),
        Some(&format!("Bearer {wrong}")[..])
    );
}

#[test]
fn a_hostile_error_text_is_cut_and_stripped_and_loses_the_key() {
    let worker = Worker::start(|_, s| {
        let text = format!(
            "{KEY} \u{1b}]0;owned\u{7}\u{1b}[2J \u{202e}desrever {}",
            "x".repeat(10_000)
        );
        json_error(s, 403, "forbidden\u{1b}[31m", &text);
    });
    let r = evidence(
        &[
            "--url",
            &worker.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    has(&r.stderr, "the Worker refused the request: 403 forbidden");
    has(&r.stderr, "[operator key]");
    for c in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!r.stderr.contains(c), "{c:?} in {:?}", r.stderr);
    }
    assert!(r.stderr.len() < 1_000, "{} bytes", r.stderr.len());
}

#[test]
fn an_error_that_is_not_the_workers_json_is_not_repeated() {
    let worker = Worker::start(|_, s| {
        let page = format!("<html><body>Bad gateway {KEY}</body></html>");
        respond(s, 502, "text/html", page.as_bytes());
    });
    let r = evidence(
        &[
            "--url",
            &worker.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    has(
        &r.stderr,
        "the Worker refused the request: 502, without the Worker's JSON error",
    );
    assert!(!r.stderr.contains("<html>"), "{}", r.stderr);
}

#[test]
fn a_200_that_is_not_the_report_asked_for_writes_nothing() {
    let sign_in = Worker::start(|_, s| respond(s, 200, "text/html", b"<html>sign in</html>"));
    let compressed = Worker::start(|_, s| {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/markdown\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00";
        let _ = s.write_all(head);
    });
    for (worker, expected) in [
        (
            &sign_in,
            "answered 200 but not with the markdown report (Content-Type text/html)",
        ),
        (
            &compressed,
            "answered 200 with a compressed body (Content-Encoding gzip)",
        ),
    ] {
        let dir = scratch(&format!("not-report-{}", worker.addr.port()));
        let file = dir.join("report.md");
        let r = evidence(
            &[
                "--url",
                &worker.url(),
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-31",
                "-o",
                file.to_str().expect("path"),
            ],
            Some(KEY),
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        has(&r.stderr, expected);
        assert!(listing(&dir).is_empty());
    }
}

#[test]
fn a_redirect_is_refused_and_the_key_never_reaches_its_target() {
    for status in [301, 302, 303, 307, 308] {
        let elsewhere = Silent::new();
        let location = format!(
            "{}/evidence?from=2026-01-01&to=2026-01-31&format=markdown",
            elsewhere.url()
        );
        let worker = Worker::start(move |_, s| {
            let head = format!(
                "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = s.write_all(head.as_bytes());
        });
        let dir = scratch(&format!("redirect-{status}"));
        let file = dir.join("report.md");
        let r = evidence(
            &[
                "--url",
                &worker.url(),
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-31",
                "-o",
                file.to_str().expect("path"),
            ],
            Some(KEY),
        );
        assert_eq!(r.code, 1, "{status}: {}", r.stderr);
        has(
            &r.stderr,
            &format!("answered {status}, a redirect to 127.0.0.1: not followed"),
        );
        elsewhere.assert_untouched();
        assert_eq!(worker.requests().len(), 1);
        assert!(listing(&dir).is_empty());
    }
}

// ---------------------------------------------------------------------
// Answers too large, broken or absent

#[test]
fn an_answer_over_64_mb_is_refused_and_leaves_no_file() {
    // Chunked, so no length announces it: the cap is found by reading.
    let worker = Worker::start(|_, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/markdown\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..80 {
            let mut part = format!("{:x}\r\n", chunk.len()).into_bytes();
            part.extend_from_slice(&chunk);
            part.extend_from_slice(b"\r\n");
            if s.write_all(&part).is_err() {
                return;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
    });
    let dir = scratch("over-cap");
    let file = dir.join("report.md");
    let r = evidence(
        &[
            "--url",
            &worker.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "-o",
            file.to_str().expect("path"),
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    has(
        &r.stderr,
        "answered with more than 64 MB: refused, nothing written",
    );
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
}

#[test]
fn a_length_over_64_mb_is_refused_before_reading_and_nothing_goes_to_stdout() {
    let worker = Worker::start(|_, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/markdown\r\nContent-Length: 1073741824\r\n\r\n# Evidence\n",
        );
    });
    let r = evidence(
        &[
            "--url",
            &worker.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    has(&r.stderr, "answered with more than 64 MB");
    assert!(r.stdout.is_empty());
}

#[test]
fn a_report_cut_short_writes_nothing() {
    let worker = Worker::start(|_, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/markdown\r\nContent-Length: 1000\r\n\r\n# Evidence, the first lines only\n",
        );
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let dir = scratch("cut");
    let file = dir.join("report.md");
    for output in [None, Some(&file)] {
        let mut args = vec![
            "--url",
            &worker.url()[..],
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if let Some(f) = output {
            args.extend(["-o".to_owned(), f.to_str().expect("path").to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = evidence(&args, Some(KEY));
        assert_eq!(r.code, 3, "{}", r.stderr);
        has(
            &r.stderr,
            &format!("cannot get the report from {}", worker.addr),
        );
        assert!(r.stdout.is_empty());
        assert!(listing(&dir).is_empty());
    }
}

#[test]
fn garbage_and_closed_connections_are_clear_failures() {
    let garbage = Worker::start(|_, s| {
        let mut noise = b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff\xfe".to_vec();
        noise.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        let _ = s.write_all(&noise);
    });
    let closing = Worker::start(|_, s| {
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let bad_status_line = Worker::start(|_, s| {
        let _ = s.write_all(b"HTTP/1.1 abc\r\n\r\n");
    });
    for worker in [&garbage, &closing, &bad_status_line] {
        let r = evidence(
            &[
                "--url",
                &worker.url(),
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-31",
            ],
            Some(KEY),
        );
        assert_eq!(r.code, 3, "{}", r.stderr);
        has(
            &r.stderr,
            &format!("cannot get the report from {}: ", worker.addr),
        );
        assert!(r.stdout.is_empty());
        assert_eq!(worker.requests().len(), 1);
    }
}

#[test]
fn a_worker_that_never_answers_times_out() {
    let worker = Worker::start(|_, s| {
        std::thread::sleep(Duration::from_secs(30));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
    });
    let r = evidence(
        &[
            "--url",
            &worker.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "--timeout",
            "1",
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    has(&r.stderr, "no complete answer within 1 s (--timeout)");
}

#[test]
fn a_refused_connection_names_the_host() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let r = evidence(
        &["--url", &url, "--from", "2026-01-01", "--to", "2026-01-31"],
        Some(KEY),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    has(
        &r.stderr,
        &format!("cannot get the report from 127.0.0.1:{port}: connection refused"),
    );
}

/// Plain http is for a Worker on this machine: a proxy of the environment
/// would see the operator key in clear, so none is used for it.
#[test]
fn plain_http_to_this_machine_never_goes_through_a_proxy() {
    let worker = reporting_worker();
    let proxy = Silent::new();
    let mut c = Command::new(env!("CARGO_BIN_EXE_phimask"));
    c.args([
        "evidence",
        "--url",
        &worker.url(),
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-31",
        "--timeout",
        "5",
    ])
    .env(VAR, KEY);
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        c.env(var, proxy.url());
    }
    for var in ["NO_PROXY", "no_proxy"] {
        c.env_remove(var);
    }
    let out = c.output().expect("run phimask");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(out.stdout, report("markdown"));
    assert_eq!(worker.requests().len(), 1);
    proxy.assert_untouched();
}

// ---------------------------------------------------------------------
// Usage errors: found before any connection

#[test]
fn wrong_dates_urls_and_keys_are_usage_errors_without_a_connection() {
    let silent = Silent::new();
    let url = silent.url();
    let host = url.trim_start_matches("http://").to_owned();
    let good = ["--from", "2026-01-01", "--to", "2026-01-31"];
    let with_url = |u: &str| {
        let mut a = vec!["--url".to_owned(), u.to_owned()];
        a.extend(good.iter().map(|s| (*s).to_owned()));
        a
    };
    let with_dates = |from: &str, to: &str| {
        vec![
            "--url".to_owned(),
            url.clone(),
            "--from".to_owned(),
            from.to_owned(),
            "--to".to_owned(),
            to.to_owned(),
        ]
    };
    let cases: Vec<(Vec<String>, Option<&str>, &str)> = vec![
        (
            with_dates("2026-02-30", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("2026-02-29", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("1900-02-29", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("2026-01-01", "2026-13-01"),
            Some(KEY),
            "--to must be a calendar date",
        ),
        (
            with_dates("2026-1-5", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("0000-01-01", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("2026-01-01T00:00", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("２０２６-01-01", "2026-03-01"),
            Some(KEY),
            "--from must be a calendar date",
        ),
        (
            with_dates("2026-02-01", "2026-01-31"),
            Some(KEY),
            "--from 2026-02-01 is after --to 2026-01-31",
        ),
        (
            with_url(&format!("ftp://{host}/")),
            Some(KEY),
            "--url must start with https://",
        ),
        (
            with_url("file:///etc/passwd"),
            Some(KEY),
            "--url must start with https://",
        ),
        (with_url(&host), Some(KEY), "--url "),
        (with_url("not a url"), Some(KEY), "--url is not a URL"),
        (
            with_url(&format!("http://operator:hunter2-pass@{host}/")),
            Some(KEY),
            "--url must not hold a user name or password",
        ),
        (
            with_url(&format!("http://operator@{host}/")),
            Some(KEY),
            "--url must not hold a user name or password",
        ),
        (
            with_url(&format!("{url}/?from=2020-01-01")),
            Some(KEY),
            "--url must not have a query",
        ),
        (
            with_url(&format!("{url}/?")),
            Some(KEY),
            "--url must not have a query",
        ),
        (
            with_url(&format!("{url}/#top")),
            Some(KEY),
            "--url must not have a query (?…) or a fragment",
        ),
        (
            with_url(&format!("{url}/evidence")),
            Some(KEY),
            "--url must be the Worker's address without a path",
        ),
        (
            with_url(&format!("{url}/ops/")),
            Some(KEY),
            "--url must be the Worker's address without a path",
        ),
        (
            with_url("http://192.0.2.1/"),
            Some(KEY),
            "--url http://192.0.2.1 would send the operator key unencrypted",
        ),
        (
            with_url("http://localhost.example/"),
            Some(KEY),
            "would send the operator key unencrypted",
        ),
        (
            with_url(&url),
            None,
            "no operator key: set PHIMASK_OPERATOR_KEY",
        ),
        (
            with_url(&url),
            Some(""),
            "no operator key: set PHIMASK_OPERATOR_KEY",
        ),
        (
            with_url(&url),
            Some("operator-key-with-a-newline-0123456789\n"),
            "PHIMASK_OPERATOR_KEY holds a character an HTTP header cannot carry",
        ),
        (
            with_url(&url),
            Some("operator key with spaces 0123456789abcdef"),
            "PHIMASK_OPERATOR_KEY holds a character",
        ),
        (
            with_url(&url),
            Some("opérateur-0123456789abcdefghijklmnopqrstu"),
            "PHIMASK_OPERATOR_KEY holds a character",
        ),
    ];
    for (args, key, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = evidence(&args, *key);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        has(&r.stderr, expected);
        assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    // Neither these nor a missing flag, an unknown format or a zero
    // timeout went anywhere.
    for args in [
        vec!["--url", &url[..], "--from", "2026-01-01"],
        vec![
            "--url",
            &url[..],
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "--format",
            "pdf",
        ],
        vec![
            "--url",
            &url[..],
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "--timeout",
            "0",
        ],
    ] {
        assert_eq!(evidence(&args, Some(KEY)).code, 2, "{args:?}");
    }
    silent.assert_untouched();
}

#[test]
fn an_output_file_in_a_missing_directory_is_refused_before_the_request() {
    let silent = Silent::new();
    let dir = scratch("missing-dir");
    let file = dir.join("no-such-dir").join("report.md");
    let r = evidence(
        &[
            "--url",
            &silent.url(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "-o",
            file.to_str().expect("path"),
        ],
        Some(KEY),
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    has(&r.stderr, "its directory does not exist");
    silent.assert_untouched();
}

#[test]
fn the_key_as_an_argument_is_refused_and_never_repeated() {
    let silent = Silent::new();
    let url = silent.url();
    let secret = "typed-on-the-command-line-0123456789abcdef";
    let base = [
        "--url",
        &url[..],
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-31",
    ];
    let mut cases: Vec<(Vec<String>, Option<&str>)> = Vec::new();
    for extra in [
        vec![format!("--operator-key={secret}")],
        vec!["--operator-key".to_owned(), secret.to_owned()],
        vec![format!("--token={secret}")],
        vec!["--bearer".to_owned(), secret.to_owned()],
        vec![format!("--authorization=Bearer {secret}")],
    ] {
        let mut args: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        args.extend(extra);
        cases.push((args, Some(KEY)));
    }
    // The key's own value anywhere among the arguments: a stray
    // positional argument (clap would quote it), or inside the URL.
    let mut stray: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
    stray.push(secret.to_owned());
    cases.push((stray, Some(secret)));
    let in_url = vec![
        "--url".to_owned(),
        format!("{url}/?key={secret}"),
        "--from".to_owned(),
        "2026-01-01".to_owned(),
        "--to".to_owned(),
        "2026-01-31".to_owned(),
    ];
    cases.push((in_url, Some(secret)));
    for (args, key) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = evidence(&args, *key);
        assert_eq!(r.code, 2, "{}", r.stderr);
        has(&r.stderr, "PHIMASK_OPERATOR_KEY");
        assert!(!r.stderr.contains(secret), "{}", r.stderr);
        assert!(!String::from_utf8_lossy(&r.stdout).contains(secret));
    }
    silent.assert_untouched();
}
