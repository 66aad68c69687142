//! The Worker's operator key, for `phimask evidence`: from
//! `PHIMASK_OPERATOR_KEY` only, never from an argument, and never in a
//! message.

use std::ffi::OsString;

use crate::failure::{Failure, USAGE};

/// The environment variable the key is read from (the one
/// scripts/dead-letters.mjs reads too).
pub const VAR: &str = "PHIMASK_OPERATOR_KEY";

/// Option names someone might try to pass the key with.
const FLAGS: [&str; 5] = [
    "--operator-key",
    "--phimask-operator-key",
    "--bearer",
    "--token",
    "--authorization",
];

/// Below this length the key is only looked for as a whole argument: a
/// short value would be found inside unrelated arguments.
const SEARCHED_FROM: usize = 8;

/// A refusal when an argument is a key option (`--operator-key=…`) or
/// holds the key itself (`--url https://host/?key=…`, a stray positional
/// argument), so that nothing, not even a usage error, repeats it.
pub fn refuse_arguments(args: impl Iterator<Item = OsString>) -> Option<Failure> {
    let key = std::env::var_os(VAR).filter(|k| !k.is_empty());
    for arg in args {
        let text = arg.to_string_lossy();
        let name = text.split('=').next().unwrap_or_default();
        let holds_key = key.as_ref().is_some_and(|k| {
            let (k, a) = (k.as_encoded_bytes(), arg.as_encoded_bytes());
            a == k || (k.len() >= SEARCHED_FROM && a.windows(k.len()).any(|w| w == k))
        });
        if holds_key {
            return Some(Failure::new(
                USAGE,
                format!("an argument holds the operator key (the value of {VAR}); it is read from {VAR} only, since arguments show in the process list and in shell history"),
            ));
        }
        if FLAGS.contains(&name) {
            return Some(Failure::new(
                USAGE,
                format!("the operator key is never an argument (arguments show in the process list and in shell history): set {VAR}"),
            ));
        }
    }
    None
}

/// The key from the environment: present, and a value an HTTP header can
/// carry.
pub fn load() -> Result<String, Failure> {
    let missing = || {
        Failure::new(
            USAGE,
            format!("no operator key: set {VAR} to the Worker's OPERATOR_KEY secret"),
        )
    };
    let key = std::env::var_os(VAR).ok_or_else(missing)?;
    if key.is_empty() {
        return Err(missing());
    }
    // Visible ASCII only: a space, a line break or a non-ASCII character
    // is not in any key `openssl rand -base64 32` makes, and a line break
    // would end the header.
    match key.into_string() {
        Ok(key) if key.bytes().all(|b| b.is_ascii_graphic()) => Ok(key),
        _ => Err(Failure::new(
            USAGE,
            format!("{VAR} holds a character an HTTP header cannot carry (a space, a line break, a non-ASCII character): set it to the Worker's OPERATOR_KEY exactly"),
        )),
    }
}
