//! The wheel's exceptions: `phimask.Error` (a `ValueError`), and under it
//! `PolicyError` (no sanitizer can be made of this policy and key) and
//! `EventError` (an event refused). Each carries the engine's `code` and
//! `message`; the engine's messages never hold a value or the key, and no
//! Python exception is chained to them, so none can be reached.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::Error as EngineError;

pyo3::create_exception!(
    phimask,
    Error,
    PyValueError,
    "Base of phimask's errors: each has a `code` and a `message` that never hold a value."
);
pyo3::create_exception!(
    phimask,
    PolicyError,
    Error,
    "No Sanitizer can be made of this policy and key: `code` is invalid_policy (with every problem in `problems`, as (path, message) pairs), missing_key or key_too_short."
);
pyo3::create_exception!(
    phimask,
    EventError,
    Error,
    "An event refused, so sent to no destination: `code` says why (invalid_json, event_too_large, ...)."
);

/// An exception of type `T` with `code` and `message` as attributes.
fn raised<T: pyo3::PyTypeInfo>(py: Python<'_>, code: &str, message: String) -> PyErr {
    let err = PyErr::from_type(py.get_type::<T>(), message.clone());
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail but for
    // memory; the exception is raised either way.
    let _ = value.setattr("code", code);
    let _ = value.setattr("message", message);
    err
}

pub fn event_error(py: Python<'_>, code: &str, message: impl Into<String>) -> PyErr {
    raised::<EventError>(py, code, message.into())
}

/// A PolicyError; `problems` is always there (empty but for
/// invalid_policy), as the stubs declare it.
fn policy_error(
    py: Python<'_>,
    code: &str,
    message: String,
    problems: Vec<(String, String)>,
) -> PyErr {
    let err = raised::<PolicyError>(py, code, message);
    if let Ok(list) = PyList::new(py, problems) {
        let _ = err.value(py).setattr("problems", list);
    }
    err
}

/// A policy refused before the engine read it (not UTF-8, a dict JSON
/// cannot hold): one problem at the policy's root, as the engine gives
/// for a policy that is not JSON.
pub fn invalid_policy(py: Python<'_>, problem: &str) -> PyErr {
    policy_error(
        py,
        "invalid_policy",
        format!("invalid policy: {problem}"),
        vec![(String::new(), problem.to_owned())],
    )
}

/// The engine's error as the exception Python callers catch.
pub fn from_engine(py: Python<'_>, e: &EngineError) -> PyErr {
    match e {
        EngineError::InvalidPolicy(problems) => policy_error(
            py,
            e.code(),
            e.to_string(),
            problems
                .iter()
                .map(|p| (p.path.clone(), p.message.clone()))
                .collect(),
        ),
        EngineError::MissingKey | EngineError::KeyTooShort => {
            policy_error(py, e.code(), e.to_string(), Vec::new())
        }
        EngineError::Event(_) => event_error(py, e.code(), e.to_string()),
        EngineError::UnknownDestination(_) | EngineError::InvalidCredential { .. } => {
            raised::<Error>(py, e.code(), e.to_string())
        }
    }
}

pub fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("EventError", py.get_type::<EventError>())?;
    Ok(())
}

/// An unknown destination is named only when it looks like a name: an
/// event given where the destination goes (the arguments swapped) would
/// otherwise be quoted, PHI and all, into the caller's logs.
pub fn unknown_destination(py: Python<'_>, name: &str, known: &[String]) -> PyErr {
    let shown = if crate::key_name::looks_like_field_name(name.as_bytes()) {
        crate::message::quoted(name)
    } else {
        "(not shown: it is not a destination's name)".to_owned()
    };
    raised::<Error>(
        py,
        "unknown_destination",
        format!(
            "unknown destination {shown}: the policy's server-side destinations are {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ),
    )
}
