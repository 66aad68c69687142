//! The engine's errors gathered: [`Error`] is what its public calls
//! return, made of the errors each module owns (an event's
//! [`EventError`], a policy's [`Problem`]s) and its own (the key, a
//! destination, a credential). Messages say what was wrong and never
//! contain event values or the masking key.

use crate::message::{display_by_describe, push_all, quoted, Describe, Text};
use crate::policy::Problem;

pub use crate::event::EventError;

/// Everything that can go wrong in phimask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The policy has errors; each names its JSON path.
    InvalidPolicy(Vec<Problem>),
    /// No masking key, while some destination needs masking.
    MissingKey,
    /// A masking key shorter than 32 bytes.
    KeyTooShort,
    /// A destination the policy does not name.
    UnknownDestination(String),
    /// The event was refused.
    Event(EventError),
    /// A destination's credential (its `AUTH_<NAME>` secret) is missing or
    /// not of the form its format needs; the message never quotes it.
    InvalidCredential {
        destination: String,
        message: &'static str,
    },
}

impl Error {
    /// A stable code for programs (the Worker maps these to HTTP statuses).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPolicy(_) => "invalid_policy",
            Error::MissingKey => "missing_key",
            Error::KeyTooShort => "key_too_short",
            Error::UnknownDestination(_) => "unknown_destination",
            Error::InvalidCredential { .. } => "invalid_credential",
            Error::Event(e) => e.code(),
        }
    }
}

impl Describe for Error {
    fn describe(&self, out: &mut String) {
        match self {
            Error::InvalidPolicy(problems) => {
                out.push_str("invalid policy: ");
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        out.push_str("; ");
                    }
                    p.describe(out);
                }
            }
            Error::MissingKey => out.push_str(
                "no masking key: the policy masks values for a destination, so nothing is sent until the PHI_MASKING_KEY secret (at least 32 bytes) is set",
            ),
            Error::KeyTooShort => out
                .push_str("masking key is too short: PHI_MASKING_KEY must be at least 32 bytes"),
            Error::UnknownDestination(name) => {
                out.push_str("unknown destination ");
                out.push_str(&quoted(name));
            }
            Error::Event(e) => e.describe(out),
            Error::InvalidCredential {
                destination,
                message,
            } => push_all(
                out,
                &[
                    Text("destination "),
                    Text(&quoted(destination)),
                    Text(": "),
                    Text(&crate::credential::secret_name(destination)),
                    Text(" "),
                    Text(message),
                ],
            ),
        }
    }
}

display_by_describe!(Error);

impl std::error::Error for Error {}

impl From<EventError> for Error {
    fn from(e: EventError) -> Self {
        Error::Event(e)
    }
}
