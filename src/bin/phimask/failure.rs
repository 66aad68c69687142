//! Why a command stopped, with the exit status it stops with.

use std::process::ExitCode;

/// A policy is invalid, or an event was refused.
pub const REFUSED: u8 = 1;
/// Bad usage: an unknown option or destination, a key given as argument.
pub const USAGE: u8 = 2;
/// A file could not be read or written, or the masking key is missing or
/// unusable.
pub const IO: u8 = 3;

/// A message for stderr (never a value of an event, never the key) and
/// the exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn report(&self) -> ExitCode {
        note(&self.message);
        ExitCode::from(self.code)
    }
}

/// `phimask: message` on stderr. A closed stderr is no reason to stop
/// (nor to panic, as `eprintln!` would).
pub fn note(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "phimask: {message}");
}

/// What a command returns: its exit status, or why it stopped.
pub type Outcome = Result<u8, Failure>;
