//! ID masking: lowercase hex of HMAC-SHA256(key, value bytes).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest masking key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// A keyed masker. The key is absorbed into the HMAC state once; the key
/// bytes themselves are not kept, and `Debug` shows nothing of them.
#[derive(Clone)]
pub struct Masker {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Masker(<key hidden>)")
    }
}

/// Why a key was refused. Messages never include the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    TooShort,
}

impl Masker {
    /// A masker for a deployment key of at least [`MIN_KEY_BYTES`] bytes.
    ///
    /// # Errors
    /// [`KeyError::TooShort`] for a shorter key.
    pub fn new(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort);
        }
        Ok(Self::with_any_key(key))
    }

    /// A masker for any key length (HMAC accepts all); only for known-answer
    /// tests such as RFC 4231's short keys.
    pub fn with_any_key(key: &[u8]) -> Self {
        // HMAC-SHA256 takes keys of every length, so this cannot fail; the
        // fallback keeps the code free of panics all the same.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        Masker { mac }
    }

    /// The raw 32-byte HMAC of `bytes`.
    pub fn digest(&self, bytes: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// Appends the 64 lowercase hex digits of the HMAC of `bytes` to `out`.
    /// Into a fixed buffer, then appended at once: pushing each digit was a
    /// quarter of masking's time in the Worker's size-built engine.
    pub fn write_hex(&self, bytes: &[u8], out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.digest(bytes);
        let mut hex = [0u8; 64];
        for i in 0..32 {
            hex[2 * i] = HEX[usize::from(digest[i] >> 4)];
            hex[2 * i + 1] = HEX[usize::from(digest[i] & 0x0f)];
        }
        out.extend_from_slice(&hex);
    }

    /// The masked form of `value` as a string of hex digits.
    pub fn mask(&self, value: &str) -> String {
        let mut out = Vec::with_capacity(64);
        self.write_hex(value.as_bytes(), &mut out);
        out.into_iter().map(char::from).collect()
    }
}

/// Outputs computed so far (one request's): masked values by key scope,
/// and the outputs of transforms (a URL reduced by a rule, a string
/// scanned), so each distinct value is worked out once however many
/// destinations and events carry it. A small open-addressing table:
/// bounded in entries and in probes per lookup, so hostile values that
/// collide cost no more than computing them again. Each entry's input and
/// output bytes stand in one shared arena (no allocation per entry).
#[derive(Debug, Default)]
pub struct Memo {
    /// Index + 1 into `entries`; 0 is empty. Allocated on first use.
    slots: Vec<u32>,
    entries: Vec<Remembered>,
    /// Every entry's input bytes, then its output bytes.
    arena: Vec<u8>,
}

#[derive(Debug)]
struct Remembered {
    tag: u64,
    /// Where the input starts in the arena; the output follows it.
    start: usize,
    clear_len: usize,
    out_len: usize,
    code: u8,
}

impl Remembered {
    fn clear<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        arena
            .get(self.start..self.start + self.clear_len)
            .unwrap_or_default()
    }

    fn out<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        let from = self.start + self.clear_len;
        arena.get(from..from + self.out_len).unwrap_or_default()
    }
}

const MEMO_SLOTS: usize = 1 << 13;
const MEMO_ENTRIES: usize = MEMO_SLOTS / 2;
const MEMO_PROBES: usize = 16;

/// What a memo entry is for: masking in a key scope, or a transform (its
/// kind and options in the low bits).
pub fn mask_tag(scope: usize) -> u64 {
    scope as u64
}

pub fn transform_tag(kind: u8, options: u64) -> u64 {
    1 << 63 | u64::from(kind) << 48 | options
}

/// The slot a (tag, bytes) pair is looked for first: eight bytes a step
/// (a byte a step was a third of the memo's time on IDs). Only a filter:
/// entries are compared in full, so any collision costs a probe, never a
/// wrong answer.
fn memo_hash(tag: u64, bytes: &[u8]) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = tag.wrapping_mul(K) ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let tail = words
        .remainder()
        .iter()
        .fold(0u64, |t, &b| t << 8 | u64::from(b));
    h = (h.rotate_left(5) ^ tail).wrapping_mul(K);
    (h >> 32) as u32
}

impl Memo {
    /// As [`Masker::write_hex`] with `masker`, the masker of scope `scope`.
    pub fn write_hex(&mut self, scope: usize, masker: &Masker, bytes: &[u8], out: &mut Vec<u8>) {
        self.write(mask_tag(scope), bytes, out, &mut |out| {
            masker.write_hex(bytes, out);
            1
        });
    }

    /// Appends what `compute` appends to `out` for `bytes` under `tag`, and
    /// returns its code; computed once per (tag, bytes) while the memo has
    /// room. `compute` must depend only on the tag and the bytes.
    pub fn write(
        &mut self,
        tag: u64,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compute: &mut dyn FnMut(&mut Vec<u8>) -> u8,
    ) -> u8 {
        if self.slots.is_empty() {
            self.slots = vec![0; MEMO_SLOTS];
        }
        let mut slot = memo_hash(tag, bytes) as usize;
        for _ in 0..MEMO_PROBES {
            slot &= MEMO_SLOTS - 1;
            let Some(&n) = self.slots.get(slot) else {
                break;
            };
            match self.entries.get((n as usize).wrapping_sub(1)) {
                None => {
                    let start = out.len();
                    let code = compute(out);
                    if self.entries.len() < MEMO_ENTRIES {
                        let made = out.get(start..).unwrap_or_default();
                        self.entries.push(Remembered {
                            tag,
                            start: self.arena.len(),
                            clear_len: bytes.len(),
                            out_len: made.len(),
                            code,
                        });
                        self.arena.extend_from_slice(bytes);
                        self.arena.extend_from_slice(made);
                        self.slots[slot] = self.entries.len() as u32;
                    }
                    return code;
                }
                Some(e) if e.tag == tag && e.clear(&self.arena) == bytes => {
                    out.extend_from_slice(e.out(&self.arena));
                    return e.code;
                }
                Some(_) => slot += 1,
            }
        }
        compute(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(m: &Masker, data: &[u8]) -> String {
        let mut out = Vec::new();
        m.write_hex(data, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// RFC 4231, section 4: the HMAC-SHA-256 known answers.
    #[test]
    fn rfc4231_known_answers() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                (1..=25).collect(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex(&Masker::with_any_key(&key), &data), want);
        }
        // Test case 5 is truncated to 128 bits.
        let m = Masker::with_any_key(&[0x0c; 20]);
        assert_eq!(
            &hex(&m, b"Test With Truncation")[..32],
            "a3b6167473100ee06e0c796c2955552b"
        );
    }

    #[test]
    fn memo_gives_what_the_masker_gives_per_scope() {
        let (a, b) = (
            Masker::with_any_key(b"scope a key"),
            Masker::with_any_key(b"scope b key"),
        );
        let mut memo = Memo::default();
        // More distinct values than the memo keeps, each asked twice in
        // both scopes: every answer is the masker's own.
        for round in 0..2 {
            for i in 0..(MEMO_ENTRIES + 100) {
                let value = format!("value-{i}");
                for (scope, m) in [(0, &a), (1, &b)] {
                    let mut got = Vec::new();
                    memo.write_hex(scope, m, value.as_bytes(), &mut got);
                    assert_eq!(got, hex(m, value.as_bytes()).into_bytes(), "{round} {i}");
                }
            }
        }
    }

    #[test]
    fn memo_answers_values_of_one_slot_past_its_probes() {
        // Values that all start at one slot: the first ones are kept, the
        // rest (past the probes) computed each time; every answer right.
        let m = Masker::with_any_key(b"collisions");
        let slot = |v: &str| memo_hash(0, v.as_bytes()) as usize & (MEMO_SLOTS - 1);
        let target = slot("v0");
        let alike: Vec<String> = (0..)
            .map(|i| format!("v{i}"))
            .filter(|v| slot(v) == target)
            .take(MEMO_PROBES * 2 + 3)
            .collect();
        let mut memo = Memo::default();
        let mut computed = 0;
        for _ in 0..3 {
            for v in &alike {
                let mut got = Vec::new();
                memo.write(mask_tag(0), v.as_bytes(), &mut got, &mut |out| {
                    computed += 1;
                    m.write_hex(v.as_bytes(), out);
                    1
                });
                assert_eq!(got, hex(&m, v.as_bytes()).into_bytes(), "{v}");
            }
        }
        let kept = MEMO_PROBES;
        assert_eq!(computed, kept + 3 * (alike.len() - kept));
    }

    #[test]
    fn memo_keeps_outputs_and_codes_apart_by_tag() {
        let mut memo = Memo::default();
        let mut calls = 0;
        let (a, b) = (transform_tag(1, 0), transform_tag(1, 1));
        for _ in 0..3 {
            for (tag, text, code) in [(a, "A", 1), (b, "B", 2), (mask_tag(0), "M", 3)] {
                let mut out = b"x".to_vec();
                let got = memo.write(tag, b"same bytes", &mut out, &mut |out| {
                    calls += 1;
                    out.extend_from_slice(text.as_bytes());
                    code
                });
                assert_eq!((got, out), (code, format!("x{text}").into_bytes()));
            }
        }
        assert_eq!(calls, 3, "each (tag, bytes) computed once");
    }

    #[test]
    fn refuses_short_keys_without_echoing_them() {
        let err = Masker::new(b"short-secret").unwrap_err();
        assert_eq!(err, KeyError::TooShort);
        assert!(!format!("{err:?}").contains("short-secret"));
        let m = Masker::new(&[b'Z'; 32]).unwrap();
        assert!(!format!("{m:?}").contains("ZZ"));
    }
}
