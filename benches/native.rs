//! Native benchmark: µs per event for the example events under the
//! production policy (`cargo bench`). The wasm figures come from
//! `make bench`.

use std::time::Instant;

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let policy = std::fs::read_to_string(format!("{root}/policies/production.json")).unwrap();
    let key = b"benchmark-key-0123456789abcdefghijklmnop";
    let s = phimask::Sanitizer::new(&policy, Some(key)).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(format!("{root}/examples/events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                s.sanitize_json(std::hint::black_box(&text), "amplitude")
                    .unwrap(),
            );
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "{:<28} {:>6} bytes  {:>7.2} µs/event",
            path.file_name().unwrap().to_string_lossy(),
            text.len(),
            us
        );
    }
}
