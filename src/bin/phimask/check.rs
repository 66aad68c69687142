//! `phimask check POLICY…`: every error and warning of each policy with
//! its JSON path; status 1 when one is invalid.

use std::path::PathBuf;

use phimask::map::policy_hash;
use phimask::validate_policy;
use serde_json::{json, Value};

use crate::failure::{note, Outcome, REFUSED};
use crate::input::{count, problem, read_text, shown, MAX_POLICY_BYTES};
use crate::output::emit;

pub fn run(paths: &[PathBuf], deny_warnings: bool, as_json: bool) -> Outcome {
    let mut status = 0;
    let mut reports = Vec::new();
    let mut out = String::new();
    for path in paths {
        let name = shown(path);
        let text = match read_text(path, "policy", MAX_POLICY_BYTES) {
            Ok(text) => text,
            Err(f) => {
                note(&f.message);
                status = status.max(f.code);
                reports.push(json!({ "file": name, "valid": false, "error": f.message }));
                continue;
            }
        };
        let (policy, report) = validate_policy(&text);
        let failed = policy.is_none() || (deny_warnings && !report.warnings.is_empty());
        if failed {
            status = status.max(REFUSED);
        }
        if as_json {
            let list = |ps: &[phimask::Problem]| -> Value {
                ps.iter()
                    .map(|p| json!({ "path": p.path, "message": p.message }))
                    .collect()
            };
            reports.push(json!({
                "file": name,
                "valid": policy.is_some(),
                "environment": policy.as_ref().map(|p| p.environment.clone()),
                "sha256": policy.as_ref().map(policy_hash),
                "errors": list(&report.errors),
                "warnings": list(&report.warnings),
            }));
            continue;
        }
        for w in &report.warnings {
            out.push_str(&format!("{name}: warning: {}\n", problem(w)));
        }
        for e in &report.errors {
            out.push_str(&format!("{name}: error: {}\n", problem(e)));
        }
        out.push_str(&match &policy {
            Some(p) => format!(
                "{name}: valid{}; environment {}; sha256 {}\n",
                if report.warnings.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", count(report.warnings.len() as u64, "warning"))
                },
                p.environment,
                policy_hash(p),
            ),
            None => format!(
                "{name}: invalid ({})\n",
                count(report.errors.len() as u64, "error")
            ),
        });
    }
    if as_json {
        out = format!("{:#}\n", Value::Array(reports));
    }
    emit(&out, None)?;
    Ok(status)
}
