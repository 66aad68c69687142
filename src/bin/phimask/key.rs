//! The masking key: from `PHI_MASKING_KEY` or `--key-file`, never from an
//! argument, and never in a message.

use std::ffi::OsString;
use std::path::Path;

use phimask::{Error, Policy, Sanitizer};

use crate::failure::{Failure, IO, USAGE};
use crate::input::{reason, shown};

/// The environment variable the key is read from (the Worker's secret has
/// the same name).
pub const VAR: &str = phimask::key_file::VAR;

/// A refusal when an argument looks like the key itself (`--key=…`), so
/// that nothing, not even a usage error, repeats it.
pub fn refuse_key_arguments(args: impl Iterator<Item = OsString>) -> Option<Failure> {
    for arg in args {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            return None;
        }
        let name = arg.split('=').next().unwrap_or_default();
        if matches!(name, "--key" | "--masking-key" | "--phi-masking-key" | "-k") {
            return Some(Failure::new(
                USAGE,
                format!("the masking key is never an argument (arguments show in the process list and in shell history): set {VAR} or use --key-file FILE"),
            ));
        }
    }
    None
}

/// The key from `file`, or else from the environment; `None` when neither
/// gives one.
pub fn load(file: Option<&Path>) -> Result<Option<Vec<u8>>, Failure> {
    let Some(file) = file else {
        return Ok(phimask::key_file::from_env());
    };
    let key = std::fs::read(file).map_err(|e| {
        Failure::new(
            IO,
            format!("cannot read key file {}: {}", shown(file), reason(&e)),
        )
    })?;
    let key = phimask::key_file::in_file(key);
    if key.is_empty() {
        return Err(Failure::new(
            IO,
            format!("key file {} is empty", shown(file)),
        ));
    }
    warn_if_readable_by_others(file);
    Ok(Some(key))
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file) {
        if meta.permissions().mode() & 0o077 != 0 {
            crate::failure::note(&format!(
                "warning: key file {} can be read by other users; chmod 600 it",
                shown(file)
            ));
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// The engine for `policy` with `key`.
pub fn sanitizer(policy: &Policy, key: Option<&[u8]>) -> Result<Sanitizer, Failure> {
    Sanitizer::from_policy(policy, key).map_err(|e| match e {
        Error::MissingKey => Failure::new(
            IO,
            format!("no masking key: the policy masks values, so set {VAR} or use --key-file FILE (at least 32 bytes; the Worker's key, or masked values will not match its)"),
        ),
        Error::KeyTooShort => Failure::new(IO, "the masking key is too short: it must be at least 32 bytes"),
        other => Failure::new(IO, other.to_string()),
    })
}
