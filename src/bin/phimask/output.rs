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
