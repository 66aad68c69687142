//! phimask masks or blocks protected health information (PHI) in analytics
//! events at the edge, before they reach any destination.
//!
//! A [`Sanitizer`] is built once from a policy (JSON) and the deployment's
//! masking key; it then sanitizes Segment-spec events for each destination:
//! allowlisted values pass, `mask` values become HMAC-SHA256 hex, all else
//! is dropped. [`validate_policy`] reports every problem of a policy at once.
//!
//! The core is plain Rust; only the `wasm` module (built for wasm32) talks
//! to JavaScript.
#![deny(unsafe_code)]

pub mod action;
pub mod bots;
mod compile;
pub mod consent;
pub mod credential;
pub mod detect;
pub mod error;
pub mod event;
pub mod format;
pub mod inventory;
mod json;
pub mod key_file;
pub mod key_name;
pub mod ledger;
#[cfg(feature = "full")]
pub mod map;
pub mod mask;
pub mod message;
pub mod ndjson;
pub mod path;
pub mod policy;
pub mod prepared;
pub mod process;
pub mod report;
pub mod request;
pub mod sanitize;
pub mod structural;
mod tree;
pub mod validate;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm;

// PyO3's macros expand to the FFI's unsafe calls; this module writes none.
#[cfg(all(feature = "python", not(target_arch = "wasm32")))]
#[allow(unsafe_code)]
mod python;

pub use bots::Agent;
pub use consent::Signals;
pub use error::{Error, EventError};
pub use policy::{Policy, Problem, Report};
pub use request::{read_request, request_write_key, Call, Request, RequestError};
pub use sanitize::{Sanitizer, MAX_DEPTH, MAX_EVENT_BYTES};
pub use validate::validate_policy;

/// Validates `policy` (JSON text) and prepares it for
/// [`Sanitizer::from_prepared`]: the form a build of the engine without the
/// validator loads (the edge Worker's).
///
/// # Errors
/// [`Error::InvalidPolicy`] listing every problem.
pub fn prepare_policy(policy: &str) -> Result<Vec<u8>, Error> {
    match validate_policy(policy) {
        (Some(policy), _) => Ok(prepared::prepare(&policy)),
        (None, report) => Err(Error::InvalidPolicy(report.errors)),
    }
}
