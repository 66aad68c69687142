//! Helpers shared by the integration tests.
// Each test crate uses only some of them.
#![allow(dead_code)]

use sha2::{Digest, Sha256};

/// HMAC-SHA256 (RFC 2104) written out here, independent of the engine's
/// `Masker` and of the `hmac` crate, as lowercase hex: the expected masked
/// value of `message`. Checked against RFC 4231 below.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    hmac_bytes(key, message)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The raw 32 bytes of HMAC-SHA256(key, message), as `hmac_hex`.
pub fn hmac_bytes(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn hmac_matches_rfc4231() {
    assert_eq!(
        hmac_hex(&[0x0b; 20], b"Hi There"),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(
        hmac_hex(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        ),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

/// Whether `text` is JSON in which no object has a key twice (the engine
/// keeps both copies of a nested duplicate where `serde_json` keeps one,
/// so models built on `serde_json` only apply to texts without them).
pub fn without_duplicate_keys(text: &str) -> bool {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    struct Unique;
    impl<'de> serde::de::DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(Unique)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    return Err(serde::de::Error::custom("duplicate key"));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut d = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(Unique, &mut d).is_ok() && d.end().is_ok()
}

/// Sets `value` at `path` below `root`, making (or replacing by) objects on
/// the way.
pub fn insert_path(
    root: &mut serde_json::Map<String, serde_json::Value>,
    path: &[&str],
    value: serde_json::Value,
) {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut node = root;
    for p in parents {
        let entry = node
            .entry(*p)
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(Default::default());
        }
        node = entry.as_object_mut().expect("just made an object");
    }
    node.insert((*last).into(), value);
}

/// A batch body processed with these signals, no body limit.
pub fn batch_with(
    s: &phimask::Sanitizer,
    body: &str,
    signals: &phimask::Signals,
) -> phimask::process::Processed {
    s.process_request_with(body.as_bytes(), phimask::Call::Batch, usize::MAX, signals)
        .expect("a batch request")
}

/// A batch body processed as from a request with this bot agent (and no
/// consent signals), no body limit.
pub fn batch_from(
    s: &phimask::Sanitizer,
    body: &str,
    agent: &phimask::Agent,
) -> phimask::process::Processed {
    s.process_request_from(
        body.as_bytes(),
        phimask::Call::Batch,
        usize::MAX,
        &phimask::Signals::default(),
        agent,
    )
    .expect("a batch request")
}

/// A request's agent that is only a user agent (a browser's User-Agent).
pub fn agent(ua: &str) -> phimask::Agent {
    phimask::Agent {
        user_agent: Some(ua.into()),
        ..phimask::Agent::default()
    }
}

/// What one destination is sent of a processed request.
pub fn delivery<'a>(
    done: &'a phimask::process::Processed,
    destination: &str,
) -> &'a phimask::process::Delivery {
    done.deliveries
        .iter()
        .find(|d| d.destination == destination)
        .expect("a destination of the policy")
}
