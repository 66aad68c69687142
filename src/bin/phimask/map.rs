//! `phimask map POLICY`: the data map for a compliance review.

use std::path::{Path, PathBuf};

use phimask::map::data_map;

use crate::failure::Outcome;
use crate::output::emit;

pub fn run(policy: &Path, html: bool, output: Option<PathBuf>) -> Outcome {
    let (policy, report) = crate::input::policy(policy)?;
    let doc = data_map(&policy, &report.warnings);
    emit(
        &if html { doc.html() } else { doc.markdown() },
        output.as_deref(),
    )?;
    Ok(0)
}
