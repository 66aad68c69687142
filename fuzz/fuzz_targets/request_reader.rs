//! A tracking request, whole: any body is refused with a reason or read
//! into events, each refused or sanitized for every destination of a
//! policy that uses every action and format; never a panic, and every body
//! a destination is sent is valid JSON. The same bytes as a batch and as
//! a single track call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phimask::Call;
use phimask_fuzz::{check_bodies, permissive};

fuzz_target!(|data: &[u8]| {
    let s = permissive();
    for call in [Call::Batch, Call::parse("track").expect("a call type")] {
        if let Ok(done) = s.process_request(data, call) {
            check_bodies(&done);
            // Each accepted event at most once per destination; refused
            // ones nowhere.
            let refused: Vec<usize> = done.rejected.iter().map(|(i, _)| *i).collect();
            for d in &done.deliveries {
                let mut sent: Vec<usize> = d.events.iter().flatten().copied().collect();
                assert!(
                    sent.iter().all(|i| !refused.contains(i)),
                    "{}",
                    d.destination
                );
                sent.sort_unstable();
                let all = sent.len();
                sent.dedup();
                assert_eq!(sent.len(), all, "{}: an event sent twice", d.destination);
                assert!(all <= done.accepted, "{}", d.destination);
            }
        }
    }
});
