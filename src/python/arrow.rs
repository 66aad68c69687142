//! `sanitize_arrow`: a pyarrow string column in, a string column out,
//! through pyarrow's own buffers (`Array.buffers()`, `Array.from_buffers`):
//! Python runs once per chunk, never per row, and the rows are read from
//! a copy of just the chunk's bytes.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList};

/// What a sanitized row does: `(number, row, out)` appends the line to
/// write for row `number` (from 1, across chunks) to `out` and says
/// whether it did; a row it does not write is null.
pub trait Row: FnMut(u64, &[u8], &mut Vec<u8>) -> bool + Send {}
impl<F: FnMut(u64, &[u8], &mut Vec<u8>) -> bool + Send> Row for F {}

/// Sanitizes each row of `column` (a pyarrow Array or ChunkedArray of
/// strings) with `row`, in chunks of the same lengths.
pub fn sanitize<'py>(
    py: Python<'py>,
    column: &Bound<'py, PyAny>,
    mut row: impl Row,
) -> PyResult<Bound<'py, PyAny>> {
    let pa = py
        .import("pyarrow")
        .map_err(|_| PyTypeError::new_err("sanitize_arrow needs pyarrow: pip install pyarrow"))?;
    let mut number = 0u64;
    if column.is_instance(&pa.getattr("ChunkedArray")?)? {
        let wide = wide(&pa, &column.getattr("type")?)?;
        let chunks = PyList::empty(py);
        let array_type = pa.getattr("Array")?;
        for chunk in column.getattr("chunks")?.try_iter()? {
            // A ChunkedArray subclass can hand out anything as a chunk.
            let chunk = chunk?;
            if !chunk.is_instance(&array_type)? {
                return Err(PyTypeError::new_err(
                    "column must be a pyarrow Array or ChunkedArray of JSON strings",
                ));
            }
            chunks.append(sanitize_chunk(py, &pa, &chunk, &mut number, &mut row)?)?;
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("type", output_type(&pa, wide)?)?;
        return pa.call_method("chunked_array", (chunks,), Some(&kwargs));
    }
    if column.is_instance(&pa.getattr("Array")?)? {
        return sanitize_chunk(py, &pa, column, &mut number, &mut row);
    }
    Err(PyTypeError::new_err(
        "column must be a pyarrow Array or ChunkedArray of JSON strings",
    ))
}

/// Whether a column of this type is read and written with 64-bit offsets:
/// `large_string` and `large_binary`, and the views (read through a cast
/// to those); `string` and `binary` have 32-bit ones. A dictionary is
/// read as its values (Polars' Categorical, Parquet's dictionary pages).
/// Binary rows are text to the engine: one that is not UTF-8 is refused,
/// as in a string column. Any other type is refused.
fn wide(pa: &Bound<'_, PyModule>, t: &Bound<'_, PyAny>) -> PyResult<bool> {
    let types = pa.getattr("types")?;
    let is = |name: &str| -> PyResult<bool> {
        Ok(types.hasattr(name)? && types.call_method1(name, (t,))?.is_truthy()?)
    };
    if is("is_dictionary")? {
        return wide(pa, &t.getattr("value_type")?);
    }
    if is("is_string")? || is("is_binary")? {
        Ok(false)
    } else if is("is_large_string")?
        || is("is_large_binary")?
        || is("is_string_view")?
        || is("is_binary_view")?
    {
        Ok(true)
    } else {
        Err(PyTypeError::new_err(format!(
            "column must hold strings (JSON text), not {}",
            type_kind(&t.str()?.to_cow()?)
        )))
    }
}

/// A type's kind (`struct`, `list`, `int64`) without its parameters: a
/// struct's or a map's field names can be an event's keys, PHI and all.
fn type_kind(shown: &str) -> &str {
    let end = shown
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(shown.len());
    if end == 0 {
        "another type"
    } else {
        &shown[..end]
    }
}

fn output_type<'py>(pa: &Bound<'py, PyModule>, wide: bool) -> PyResult<Bound<'py, PyAny>> {
    pa.call_method0(if wide { "large_string" } else { "string" })
}

fn malformed() -> PyErr {
    PyValueError::new_err("the column's buffers are not a valid Arrow string array")
}

fn sanitize_chunk<'py>(
    py: Python<'py>,
    pa: &Bound<'py, PyModule>,
    array: &Bound<'py, PyAny>,
    number: &mut u64,
    row: &mut impl Row,
) -> PyResult<Bound<'py, PyAny>> {
    let types = pa.getattr("types")?;
    let wide = wide(pa, &array.getattr("type")?)?;
    let out_type = output_type(pa, wide)?;
    let array = if types
        .call_method1("is_dictionary", (array.getattr("type")?,))?
        .is_truthy()?
    {
        array.call_method0("dictionary_decode")?
    } else {
        array.clone()
    };
    let t = array.getattr("type")?;
    let is = |name: &str| -> PyResult<bool> {
        Ok(types.hasattr(name)? && types.call_method1(name, (&t,))?.is_truthy()?)
    };
    let array = if is("is_string_view")? || is("is_binary_view")? {
        // pyarrow's cast reads each row through its view without checking
        // it: a view past its buffer, or naming one that is not there,
        // would be read out of bounds (other memory sanitized as a row)
        // or crash. The views are checked first, as binary (a row not
        // UTF-8 stays that row's refusal, as in a string column).
        let kwargs = PyDict::new(py);
        kwargs.set_item("full", true)?;
        let views = array
            .call_method1("view", (pa.call_method0("binary_view")?,))
            .map_err(|_| malformed())?;
        views
            .call_method("validate", (), Some(&kwargs))
            .map_err(|_| malformed())?;
        views.call_method1("cast", (pa.call_method0("large_binary")?,))?
    } else {
        array
    };
    let n: usize = array.len()?;
    let offset: usize = array.getattr("offset")?.extract()?;
    let buffers = array.call_method0("buffers")?;
    let width = if wide { 8 } else { 4 };
    // Every size and position is checked here, and every buffer's bytes
    // are counted when copied: an Array subclass or a ChunkedArray's
    // stand-in chunk can say what it likes about its buffers.
    let bytes_of = |buffer: Bound<'py, PyAny>, at: usize, len: usize| -> PyResult<PyBackedBytes> {
        if buffer.is_none() {
            return if len == 0 {
                Ok(PyBytes::new(py, b"").extract().map_err(PyErr::from)?)
            } else {
                Err(malformed())
            };
        }
        let size: usize = buffer.getattr("size")?.extract()?;
        if at.checked_add(len).is_none_or(|end| end > size) {
            return Err(malformed());
        }
        let bytes: PyBackedBytes = buffer
            .call_method1("slice", (at, len))?
            .call_method0("to_pybytes")?
            .extract()
            .map_err(|_| malformed())?;
        if bytes.len() != len {
            return Err(malformed());
        }
        Ok(bytes)
    };
    let size = |count: usize, each: usize| count.checked_mul(each).ok_or_else(malformed);
    let ends = offset.checked_add(n).ok_or_else(malformed)?;
    let offsets = bytes_of(
        buffers.get_item(1)?,
        size(offset, width)?,
        size(n.checked_add(1).ok_or_else(malformed)?, width)?,
    )?;
    let offsets = read_offsets(&offsets, wide)?;
    if offsets.len() != n + 1 {
        return Err(malformed());
    }
    let (start, end) = (offsets[0], offsets[n]);
    let data = bytes_of(buffers.get_item(2)?, start, end - start)?;
    // The validity bits whenever there are any, whatever `null_count`
    // claims: a row they mark null is never read.
    let validity = match buffers.get_item(0)? {
        bits if bits.is_none() => None,
        bits => Some(bytes_of(bits, 0, ends.div_ceil(8))?),
    };

    let first = *number;
    let (out, valid, out_nulls) = py.detach(|| {
        let mut out = Vec::with_capacity(data.len());
        let mut ends: Vec<usize> = Vec::with_capacity(n + 1);
        ends.push(0);
        let mut valid = vec![0u8; n.div_ceil(8)];
        let mut out_nulls = 0usize;
        for i in 0..n {
            let bit = offset + i;
            let present = validity
                .as_ref()
                .is_none_or(|v| v[bit / 8] >> (bit % 8) & 1 == 1);
            let text = &data[offsets[i] - start..offsets[i + 1] - start];
            if present && row(first + i as u64 + 1, text, &mut out) {
                valid[i / 8] |= 1 << (i % 8);
            } else {
                out_nulls += 1;
            }
            ends.push(out.len());
        }
        ((out, ends), valid, out_nulls)
    });
    *number += n as u64;
    let (data, ends) = out;
    let offsets = write_offsets(&ends, wide)?;
    let buffer = |bytes: &[u8]| pa.call_method1("py_buffer", (PyBytes::new(py, bytes),));
    let validity = if out_nulls > 0 {
        buffer(&valid)?
    } else {
        py.None().into_bound(py)
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("null_count", out_nulls)?;
    pa.getattr("Array")?.call_method(
        "from_buffers",
        (
            out_type,
            n,
            vec![validity, buffer(&offsets)?, buffer(&data)?],
        ),
        Some(&kwargs),
    )
}

/// The chunk's `n + 1` offsets, each checked to be no less than the one
/// before (so every row's bytes lie inside the data read).
fn read_offsets(bytes: &[u8], wide: bool) -> PyResult<Vec<usize>> {
    let width = if wide { 8 } else { 4 };
    let mut out = Vec::with_capacity(bytes.len() / width);
    for b in bytes.chunks_exact(width) {
        let v = if wide {
            i64::from_le_bytes(b.try_into().map_err(|_| malformed())?)
        } else {
            i64::from(i32::from_le_bytes(b.try_into().map_err(|_| malformed())?))
        };
        let v = usize::try_from(v).map_err(|_| malformed())?;
        if out.last().is_some_and(|&last| v < last) {
            return Err(malformed());
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(malformed());
    }
    Ok(out)
}

fn write_offsets(ends: &[usize], wide: bool) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(ends.len() * if wide { 8 } else { 4 });
    for &end in ends {
        if wide {
            out.extend_from_slice(&(end as i64).to_le_bytes());
        } else {
            let end = i32::try_from(end).map_err(|_| {
                PyValueError::new_err(
                    "a chunk's sanitized rows are over 2 GiB, more than a string array holds: give smaller chunks, or a large_string column",
                )
            })?;
            out.extend_from_slice(&end.to_le_bytes());
        }
    }
    Ok(out)
}
