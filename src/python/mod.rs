//! The Python wheel (`make wheel`): the engine as the module `phimask`, on
//! CPython's stable ABI (one wheel for 3.9 and later), for backfills of
//! archived events on Spark, Ray, Dask, DuckDB or Polars. The same engine
//! and the same NDJSON lines as the `phimask` command ([`crate::ndjson`]),
//! so a backfill's bytes are the command's and the Worker's.
//!
//! The GIL is released while the engine runs, so threads (DuckDB's,
//! Polars', a thread pool's) sanitize side by side.

mod arrow;
mod errors;
mod report;

use std::sync::Mutex;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::ndjson::{sanitize_line, Line, Lines, Outcome, Target};
use crate::{Agent, Signals, MAX_EVENT_BYTES};
use errors::{event_error, from_engine, invalid_policy, unknown_destination};
use report::Report;

/// The engine for one policy and masking key. Made once per worker (it
/// compiles the policy), then used for any number of events, from any
/// number of threads. Never pickled: the pickle would hold the key.
#[pyclass(frozen, module = "phimask", name = "Sanitizer")]
pub struct Sanitizer {
    inner: crate::Sanitizer,
    /// Server-side destinations, in policy order.
    names: Vec<String>,
    report: Mutex<Report>,
}

#[pymethods]
impl Sanitizer {
    /// `policy`: a dict, or JSON text (str or UTF-8 bytes); `key`: the
    /// masking key (str or bytes, at least 32 bytes), or None when no
    /// destination masks.
    #[new]
    #[pyo3(signature = (policy, key = None))]
    fn new(
        py: Python<'_>,
        policy: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let policy = policy_text(py, policy)?;
        let key = match key {
            None => None,
            Some(k) => Some(key_bytes(k)?),
        };
        let inner = py
            .detach(|| crate::Sanitizer::new(&policy, key.as_deref()))
            .map_err(|e| from_engine(py, &e))?;
        let names = inner.destinations().map(str::to_owned).collect();
        Ok(Sanitizer {
            inner,
            names,
            report: Mutex::new(Report::default()),
        })
    }

    /// The server-side destinations, in policy order: the names the other
    /// methods take.
    fn destinations(&self) -> Vec<String> {
        self.names.clone()
    }

    /// One event (JSON text, UTF-8 bytes or a dict) for `destination`: the
    /// JSON text to send, or None when the policy sends it nothing.
    /// Raises EventError for a refused event. `gpc`, `region`,
    /// `user_agent` and `bot_score` decide it as for a request carrying
    /// them (the command's `--gpc`, `--region`, `--user-agent`,
    /// `--bot-score`).
    #[pyo3(signature = (event, destination, *, gpc = false, region = None, user_agent = None, bot_score = None))]
    // Python's keyword arguments, one parameter each.
    #[allow(clippy::too_many_arguments)]
    fn sanitize(
        &self,
        py: Python<'_>,
        event: &Bound<'_, PyAny>,
        destination: &str,
        gpc: bool,
        region: Option<&str>,
        user_agent: Option<String>,
        bot_score: Option<i64>,
    ) -> PyResult<Option<String>> {
        self.check(py, destination)?;
        let (signals, agent) = request(gpc, region, user_agent, bot_score)?;
        let text = match event_text(py, event)? {
            Ok(text) => text,
            // Refused before the engine saw it: counted as the engine's
            // refusals are, so take_report() misses none.
            Err(why) => {
                self.report(|r| r.refused_event(destination, &why));
                return Err(event_error(py, "invalid_json", why));
            }
        };
        let out = py.detach(|| {
            self.inner
                .sanitize_json_from(&text, destination, &signals, &agent)
        });
        match out {
            Ok((sent, tally)) => {
                self.report(|r| r.event(destination, sent.is_some(), tally));
                Ok(sent)
            }
            Err(e) => {
                self.report(|r| r.refused_event(destination, &e.to_string()));
                Err(from_engine(py, &e))
            }
        }
    }

    /// NDJSON events (bytes) to the NDJSON `phimask sanitize -d
    /// DESTINATION` writes for them, byte for byte: an event a line;
    /// lines refused, not sent or blank are left out (and counted in
    /// `take_report()`). `native` writes each event as the destination's
    /// API takes it (the command's `--native`); the request's signals as
    /// for `sanitize`.
    #[pyo3(signature = (data, destination, *, native = false, gpc = false, region = None, user_agent = None, bot_score = None))]
    #[allow(clippy::too_many_arguments)]
    fn sanitize_ndjson<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        destination: &str,
        native: bool,
        gpc: bool,
        region: Option<&str>,
        user_agent: Option<String>,
        bot_score: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.check(py, destination)?;
        let (signals, agent) = request(gpc, region, user_agent, bot_score)?;
        let target = self.target(destination, native, &signals, &agent);
        let data: PyBackedBytes = data.extract().map_err(|_| {
            PyTypeError::new_err("data must be bytes (NDJSON: one JSON event a line)")
        })?;
        let (out, counts) = py.detach(|| {
            let mut out = Vec::with_capacity(data.len());
            let mut counts = report::Counts::default();
            let mut lines = Lines::new(&data[..], MAX_EVENT_BYTES);
            let mut number = 0u64;
            // Reading from memory cannot fail.
            while let Ok(Some(line)) = lines.next_line() {
                number += 1;
                let outcome = sanitize_line(&self.inner, &target, line);
                if let Outcome::Sent(line, _) = &outcome {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
                counts.add(number, outcome);
            }
            (out, counts)
        });
        self.report(|r| r.merge(destination, counts));
        Ok(PyBytes::new(py, &out))
    }

    /// A pyarrow Array or ChunkedArray of JSON text (strings, bytes, or a
    /// dictionary of either) to a string array of the same length (and
    /// chunks): each row sanitized as one line of `sanitize_ndjson`, null
    /// where it is not sent, refused, blank or null. Keywords as for
    /// `sanitize_ndjson`.
    #[pyo3(signature = (column, destination, *, native = false, gpc = false, region = None, user_agent = None, bot_score = None))]
    #[allow(clippy::too_many_arguments)]
    fn sanitize_arrow<'py>(
        &self,
        py: Python<'py>,
        column: &Bound<'py, PyAny>,
        destination: &str,
        native: bool,
        gpc: bool,
        region: Option<&str>,
        user_agent: Option<String>,
        bot_score: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check(py, destination)?;
        let (signals, agent) = request(gpc, region, user_agent, bot_score)?;
        let target = self.target(destination, native, &signals, &agent);
        let mut counts = report::Counts::default();
        let array = arrow::sanitize(py, column, |number, row: &[u8], out: &mut Vec<u8>| {
            // A row read from CRLF text by a reader that splits at `\n`
            // (Spark's with lineSep) ends in `\r`: as for a line, it is
            // the line end, not part of the event's 32 KB.
            let row = row.strip_suffix(b"\r").unwrap_or(row);
            let line = if row.len() > MAX_EVENT_BYTES {
                Line::TooLong
            } else {
                Line::Text(row)
            };
            let outcome = sanitize_line(&self.inner, &target, line);
            let sent = match &outcome {
                Outcome::Sent(line, _) => {
                    out.extend_from_slice(line.as_bytes());
                    true
                }
                _ => false,
            };
            counts.add(number, outcome);
            sent
        })?;
        self.report(|r| r.merge(destination, counts));
        Ok(array)
    }

    /// Counts since the last call, by destination: lines (or rows, or
    /// events) sent, not sent, blank and refused, paths dropped, masked
    /// and transformed in those sent, and the first refused ones' numbers
    /// with why (never a value).
    fn take_report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let taken = match self.report.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        taken.to_dict(py)
    }

    fn __repr__(&self) -> String {
        format!("phimask.Sanitizer(destinations={:?})", self.names)
    }

    /// Refuses pickling (and copying): a pickle would carry the key to
    /// wherever it is stored or sent.
    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "a phimask.Sanitizer is never pickled: the pickle would hold the masking key. Make it where it runs (inside the function each Spark, Ray or Dask worker calls), with the key from a secret",
        ))
    }
}

impl Sanitizer {
    fn check(&self, py: Python<'_>, destination: &str) -> PyResult<()> {
        if self.names.iter().any(|n| n == destination) {
            Ok(())
        } else {
            Err(unknown_destination(py, destination, &self.names))
        }
    }

    /// Lines for `destination`: Segment events, or with `native` in its
    /// format.
    fn target<'a>(
        &self,
        destination: &'a str,
        native: bool,
        signals: &'a Signals,
        agent: &'a Agent,
    ) -> Target<'a> {
        Target {
            name: destination,
            native: if native {
                self.inner.format(destination)
            } else {
                None
            },
            signals,
            agent,
        }
    }

    fn report(&self, f: impl FnOnce(&mut Report)) {
        match self.report.lock() {
            Ok(mut r) => f(&mut r),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// A request's signals and user agent, checked as the command checks
/// its `--region` and `--bot-score`.
fn request(
    gpc: bool,
    region: Option<&str>,
    user_agent: Option<String>,
    bot_score: Option<i64>,
) -> PyResult<(Signals, Agent)> {
    let region = region
        .map(Signals::region_code)
        .transpose()
        .map_err(PyValueError::new_err)?;
    let score = bot_score
        .map(Agent::score_of)
        .transpose()
        .map_err(|_| PyValueError::new_err("bot_score must be an integer from 1 to 99"))?;
    Ok((
        Signals { gpc, region },
        Agent {
            user_agent,
            score,
            verified: false,
        },
    ))
}

/// The policy as JSON text: a dict is serialized by Python's `json`.
fn policy_text(py: Python<'_>, policy: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = policy.extract::<PyBackedStr>() {
        return Ok(text.to_string());
    }
    if let Ok(bytes) = policy.extract::<PyBackedBytes>() {
        return String::from_utf8(bytes.to_vec()).map_err(|e| {
            invalid_policy(
                py,
                &format!(
                    "policy is not UTF-8 text (byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        });
    }
    if policy.is_instance_of::<PyDict>() {
        return json_dumps(py, policy).ok_or_else(|| {
            invalid_policy(
                py,
                "policy is a dict JSON cannot hold (a value that is not a str, number, bool, None, list or dict, or a float that is not finite)",
            )
        });
    }
    Err(PyTypeError::new_err(
        "policy must be a dict, or JSON text (str or bytes)",
    ))
}

fn key_bytes(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(key) = key.cast::<PyString>() {
        // A str that cannot be UTF-8 (a lone surrogate) is no key.
        return key
            .to_cow()
            .map(|k| k.as_bytes().to_vec())
            .map_err(|_| PyTypeError::new_err("key must be UTF-8 text or bytes"));
    }
    key.extract::<PyBackedBytes>()
        .map(|k| k.to_vec())
        .map_err(|_| PyTypeError::new_err("key must be str or bytes (the masking key)"))
}

/// An event as JSON text, or why it is refused (as invalid JSON, without
/// saying what it held); a TypeError when it is neither text nor a dict.
fn event_text(py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Result<String, String>> {
    if let Ok(text) = event.cast::<PyString>() {
        return Ok(text
            .to_cow()
            .map(|t| t.into_owned())
            .map_err(|_| "event is not UTF-8 text".to_owned()));
    }
    if let Ok(bytes) = event.extract::<PyBackedBytes>() {
        // Worded as a line's refusal (crate::ndjson), so take_report()
        // says the same of the same bytes whichever call they came by.
        return Ok(std::str::from_utf8(&bytes)
            .map(str::to_owned)
            .map_err(|e| format!("not UTF-8 text at byte {}", e.valid_up_to())));
    }
    if event.is_instance_of::<PyDict>() {
        return Ok(json_dumps(py, event).ok_or_else(|| {
            "event is a dict JSON cannot hold (a value that is not a str, number, bool, None, list or dict, a key that is not a str, number, bool or None, a cycle, or a float that is not finite)".to_owned()
        }));
    }
    Err(PyTypeError::new_err(
        "event must be JSON text (str or bytes) or a dict",
    ))
}

/// `json.dumps` of a dict, compact and strict (no NaN, str keys only);
/// `None` when it cannot be JSON. Python's own error is dropped: its
/// message may quote a value.
fn json_dumps(py: Python<'_>, value: &Bound<'_, PyAny>) -> Option<String> {
    let json = py.import("json").ok()?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("ensure_ascii", false).ok()?;
    kwargs.set_item("allow_nan", false).ok()?;
    kwargs.set_item("separators", (",", ":")).ok()?;
    kwargs.set_item("skipkeys", false).ok()?;
    let text = json.call_method("dumps", (value,), Some(&kwargs)).ok()?;
    let text = text.cast::<PyString>().ok()?;
    text.to_cow().ok().map(|t| t.into_owned())
}

/// The masking key as the `phimask` command reads it: from `key_file`
/// (one trailing LF or CRLF is the file's line end, not the key's), else
/// from `PHI_MASKING_KEY`; None when neither gives one. Call it where the
/// Sanitizer is made (on each worker), so the key never travels in a task.
#[pyfunction]
#[pyo3(signature = (key_file = None))]
fn masking_key<'py>(
    py: Python<'py>,
    key_file: Option<std::path::PathBuf>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = match key_file {
        None => crate::key_file::from_env(),
        Some(path) => {
            let bytes = std::fs::read(&path).map_err(|e| {
                pyo3::exceptions::PyOSError::new_err(format!(
                    "cannot read key file {}: {}",
                    path.display(),
                    e.kind()
                ))
            })?;
            let key = crate::key_file::in_file(bytes);
            if key.is_empty() {
                return Err(PyValueError::new_err(format!(
                    "key file {} is empty",
                    path.display()
                )));
            }
            Some(key)
        }
    };
    Ok(key.map(|k| PyBytes::new(py, &k)))
}

#[pymodule]
#[pyo3(name = "phimask")]
fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Sanitizer>()?;
    m.add_function(wrap_pyfunction!(masking_key, m)?)?;
    errors::add_to(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_EVENT_BYTES", MAX_EVENT_BYTES)?;
    Ok(())
}
