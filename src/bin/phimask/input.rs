//! Reading policies and events from files or standard input.

use std::io::Read;
use std::path::Path;

use phimask::policy::{Connection, Destination};
use phimask::{validate_policy, Policy, Report};

use crate::failure::{Failure, IO, REFUSED, USAGE};

/// Whether `path` names standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Largest policy file read (far above any real policy).
pub const MAX_POLICY_BYTES: usize = 64 << 20;

/// The text of `path` (or of standard input for `-`), at most `limit`
/// bytes: no more is read, so an endless input cannot fill memory.
pub fn read_text(path: &Path, what: &str, limit: usize) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    let most = limit as u64 + 1;
    let read = if is_stdin(path) {
        std::io::stdin().lock().take(most).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(most).read_to_end(&mut bytes))
    };
    read.map_err(|e| {
        Failure::new(
            IO,
            format!("cannot read {what} {}: {}", shown(path), reason(&e)),
        )
    })?;
    if bytes.len() > limit {
        return Err(Failure::new(
            REFUSED,
            format!("{what} {} is larger than {limit} bytes", shown(path)),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Failure::new(
            REFUSED,
            format!(
                "{what} {} is not UTF-8 text (byte {})",
                shown(path),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A path as messages show it.
pub fn shown(path: &Path) -> String {
    if is_stdin(path) {
        "(standard input)".to_owned()
    } else {
        path.display().to_string()
    }
}

/// An I/O error without Rust's "(os error 2)" suffix.
pub fn reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The policy in `path`, validated; an invalid one prints every error
/// with its path on stderr and stops with status 1.
pub fn policy(path: &Path) -> Result<(Policy, Report), Failure> {
    let text = read_text(path, "policy", MAX_POLICY_BYTES)?;
    let (policy, report) = validate_policy(&text);
    match policy {
        Some(policy) => Ok((policy, report)),
        None => {
            for e in &report.errors {
                crate::failure::note(&format!("{}: error: {}", shown(path), problem(e)));
            }
            Err(Failure::new(
                REFUSED,
                format!(
                    "{} is invalid ({})",
                    shown(path),
                    count(report.errors.len() as u64, "error")
                ),
            ))
        }
    }
}

/// `path: message`, or the message alone for the policy as a whole.
pub fn problem(p: &phimask::Problem) -> String {
    if p.path.is_empty() {
        p.message.clone()
    } else {
        format!("{}: {}", p.path, p.message)
    }
}

/// `1 error`, `2 errors`, `12,345 lines`.
pub fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", grouped(n), if n == 1 { "" } else { "s" })
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The destination `name` of `policy`; if there is none, a usage error
/// listing the ones there are (the server-side ones only, when only those
/// will do).
pub fn destination<'p>(
    policy: &'p Policy,
    name: &str,
    server_side: bool,
) -> Result<&'p Destination, Failure> {
    policy
        .destinations
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = policy
                .destinations
                .iter()
                .filter(|d| !server_side || d.connection == Connection::ServerSide)
                .map(|d| d.name.as_str())
                .collect();
            let which = if server_side {
                "its server-side destinations"
            } else {
                "it has"
            };
            Failure::new(
                USAGE,
                format!(
                    "the policy has no destination \"{name}\"; {which}: {}",
                    names.join(", ")
                ),
            )
        })
}
