//! Native benchmark (`cargo bench --bench native`): µs per event for the
//! example events under the production policy. With `CORPUS=FILE` (written
//! by `make bench`), the generated corpus instead: per slice, µs per event
//! of `sanitize_json` and of `process_request` on the slice as one batch,
//! printed as one JSON line per slice for benches/bench.mjs to read.

use std::time::Instant;

use serde_json::Value;

const KEY: &[u8] = b"benchmark-key-0123456789abcdefghijklmnop";

/// Median over 5 rounds of the µs per call of `f` (each round at least
/// `min_ms` long), after a warm-up.
fn us_per_call(min_ms: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed().as_secs_f64() * 1e3 < min_ms {
                f();
                n += 1;
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn examples(root: &str) {
    let policy = std::fs::read_to_string(format!("{root}/policies/production.json")).unwrap();
    let s = phimask::Sanitizer::new(&policy, Some(KEY)).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(format!("{root}/examples/events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let us = us_per_call(60.0, || {
            std::hint::black_box(
                s.sanitize_json(std::hint::black_box(&text), "amplitude")
                    .unwrap(),
            );
        });
        println!(
            "{:<28} {:>6} bytes  {:>7.2} µs/event",
            path.file_name().unwrap().to_string_lossy(),
            text.len(),
            us
        );
    }
}

fn corpus(file: &str) {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let destination = doc["destination"].as_str().unwrap();
    let mut s = phimask::Sanitizer::new(doc["policy"].as_str().unwrap(), Some(KEY)).unwrap();
    s.connect(destination, doc["secret"].as_str()).unwrap();
    for slice in doc["slices"].as_array().unwrap() {
        let events: Vec<&str> = slice["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        let batch = slice["batch"].as_str().unwrap().as_bytes();
        let n = events.len() as f64;
        let sanitize = us_per_call(40.0, || {
            for e in &events {
                std::hint::black_box(s.sanitize_json(e, destination).unwrap());
            }
        }) / n;
        let process = us_per_call(40.0, || {
            let done = s.process_request(batch, phimask::Call::Batch).unwrap();
            std::hint::black_box(done);
        }) / n;
        println!(
            "{}",
            serde_json::json!({ "name": slice["name"], "sanitize": sanitize, "process": process })
        );
    }
}

/// Masking one value: the HMAC (two SHA-256 compressions, the keyed state
/// precomputed), and with the hex encoding of the digest.
fn masking() {
    let masker = phimask::mask::Masker::new(KEY).unwrap();
    let value = b"patient-004217@example.com";
    let mut out = Vec::with_capacity(64);
    // 100 a call: the clock is read once per call.
    let hex = us_per_call(40.0, || {
        for _ in 0..100 {
            out.clear();
            masker.write_hex(std::hint::black_box(value), &mut out);
            std::hint::black_box(&out);
        }
    }) / 100.0;
    let digest = us_per_call(40.0, || {
        for _ in 0..100 {
            std::hint::black_box(masker.digest(std::hint::black_box(value)));
        }
    }) / 100.0;
    println!(
        "{}",
        serde_json::json!({ "name": "masking", "write_hex": hex, "digest": digest })
    );
}

fn main() {
    match std::env::var("CORPUS") {
        Ok(file) => {
            corpus(&file);
            masking();
        }
        Err(_) => examples(env!("CARGO_MANIFEST_DIR")),
    }
}
