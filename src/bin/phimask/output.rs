//! Writing a command's output to standard output or a file.

use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::failure::{Failure, IO};
use crate::input::{reason, shown};

/// Writes `text` to `file`, or to standard output. A reader that closed
/// the pipe early (`| head`) is not an error.
pub fn emit(text: &str, file: Option<&Path>) -> Result<(), Failure> {
    let written = match file {
        Some(file) => std::fs::write(file, text),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
        }
    };
    match written {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(Failure::new(
            IO,
            format!(
                "cannot write {}: {}",
                file.map_or_else(|| "standard output".to_owned(), shown),
                reason(&e)
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses, before any work, a `file` whose directory does not exist.
pub fn check_directory(file: &Path) -> Result<(), Failure> {
    let dir = directory(file);
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Failure::new(
            IO,
            format!("cannot write {}: its directory does not exist", shown(file)),
        ))
    }
}

fn directory(file: &Path) -> &Path {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to standard output, or replaces `file` whole: they go to
/// a temporary file beside it, renamed over it once complete, so a
/// failure leaves the old file or none, never part of the new one.
pub fn replace(bytes: &[u8], file: Option<&Path>) -> Result<(), Failure> {
    let Some(file) = file else {
        let mut stdout = std::io::stdout().lock();
        return match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(Failure::new(
                IO,
                format!("cannot write standard output: {}", reason(&e)),
            )),
            _ => Ok(()),
        };
    };
    let failed = |e: &std::io::Error| {
        Failure::new(IO, format!("cannot write {}: {}", shown(file), reason(e)))
    };
    let name = file
        .file_name()
        .ok_or_else(|| failed(&ErrorKind::InvalidInput.into()))?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(".{}.part", std::process::id()));
    let temporary = directory(file).join(temporary);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, file));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        failed(&e)
    })
}
