//! A tracking request, whole: any body is refused with a reason or read
//! into events, each refused or sanitized for every destination of a
//! policy that uses every action and format; never a panic, and every body
//! a destination is sent is valid JSON. The same bytes as a batch and as
//! a single track call, and as a batch within a queue message's body
//! size (the first byte picks the limit): no body over it, and every
//! event either sent to every destination it was sent to without the
//! limit or refused for all (never half-delivered). With the request's
//! signals (the first byte picks GPC and a region), destinations consent
//! does not gate get exactly the same, and the destinations GPC closes
//! get nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phimask::{Call, Signals};
use phimask_fuzz::{check_bodies, permissive, GATED, GPC_GATED};

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
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let max = 64 + usize::from(first) * 64;
    if let (Ok(whole), Ok(within)) = (
        s.process_request(body, Call::Batch),
        s.process_request_within(body, Call::Batch, max),
    ) {
        check_bodies(&within);
        let refused: Vec<usize> = within.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            within.accepted + refused.len(),
            whole.accepted + whole.rejected.len()
        );
        for (w, d) in whole.deliveries.iter().zip(&within.deliveries) {
            assert!(d.bodies.iter().all(|b| b.len() <= max), "{}", d.destination);
            let mut expected: Vec<usize> = w
                .events
                .iter()
                .flatten()
                .copied()
                .filter(|i| !refused.contains(i))
                .collect();
            let mut sent: Vec<usize> = d.events.iter().flatten().copied().collect();
            expected.sort_unstable();
            sent.sort_unstable();
            assert_eq!(
                sent, expected,
                "{}: an event lost or half-delivered",
                d.destination
            );
        }
    }
    let region = [None, Some("US-WA"), Some("DE"), Some("US-CA")][usize::from(first >> 1) % 4];
    let signals = |gpc| Signals {
        gpc,
        region: region.map(str::to_owned),
    };
    if let (Ok(plain), Ok(open), Ok(closed)) = (
        s.process_request(body, Call::Batch),
        s.process_request_with(body, Call::Batch, usize::MAX, &signals(false)),
        s.process_request_with(body, Call::Batch, usize::MAX, &signals(true)),
    ) {
        check_bodies(&closed);
        for ((p, o), c) in plain
            .deliveries
            .iter()
            .zip(&open.deliveries)
            .zip(&closed.deliveries)
        {
            if !GATED.contains(&p.destination.as_str()) {
                assert_eq!(p.bodies, o.bodies, "{}", p.destination);
                assert_eq!(o.bodies, c.bodies, "{}", p.destination);
            } else if GPC_GATED.contains(&c.destination.as_str()) {
                // It needs a purpose GPC denies, whatever the events say:
                // nothing at all, not merely less.
                assert_eq!(
                    c.events.iter().flatten().count(),
                    0,
                    "{}: GPC closes it",
                    c.destination
                );
                assert!(c.bodies.is_empty(), "{}", c.destination);
            } else {
                assert_eq!(
                    o.bodies, c.bodies,
                    "{}: GPC does not close it",
                    c.destination
                );
            }
        }
    }
});
