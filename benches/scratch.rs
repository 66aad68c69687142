use serde_json::Value;
fn main() {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string("dist/bench/corpus.json").unwrap()).unwrap();
    let mut s = phimask::Sanitizer::new(doc["policy"].as_str().unwrap(), Some(b"benchmark-key-0123456789abcdefghijklmnop")).unwrap();
    s.connect("d0", doc["secret"].as_str()).unwrap();
    let want = std::env::var("SLICE").unwrap();
    let slice = doc["slices"].as_array().unwrap().iter().find(|x| x["name"] == want.as_str()).unwrap();
    let batch = slice["batch"].as_str().unwrap().as_bytes();
    let t = std::time::Instant::now();
    let mut n = 0;
    while t.elapsed().as_secs_f64() < 5.0 { std::hint::black_box(s.process_request(batch, phimask::Call::Batch).unwrap()); n += 1; }
    println!("{:.2} µs/event", t.elapsed().as_secs_f64() * 1e6 / n as f64 / slice["events"].as_array().unwrap().len() as f64);
}
