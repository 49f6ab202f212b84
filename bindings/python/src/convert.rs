//! Conversions between Python values and the SDK's Rust types. Nothing here
//! decides anything: it only checks that a Python value has the shape the
//! Rust type needs, with a `TypeError` / `ValueError` naming the argument
//! when it has not.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDateTime, PyDelta, PyDict, PyFloat, PyInt, PyList, PyMapping,
    PyString, PyTuple,
};
use sendpromptly_client::{JsonObject, Provider, ResultStatus, Timestamp};
use serde_json::Value;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// A Python value (dict, list, str, int, float, bool, None) as JSON.
pub fn to_json(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract::<bool>()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(n) = obj.extract::<i64>() {
            return Ok(Value::from(n));
        }
        if let Ok(n) = obj.extract::<u64>() {
            return Ok(Value::from(n));
        }
        return Err(PyValueError::new_err(format!(
            "{path}: the integer is too large for JSON (at most 64 bits)"
        )));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!("{path}: {f} is not a valid JSON number"))
            });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            items.push(to_json(&item?, &format!("{path}[{i}]"))?);
        }
        return Ok(Value::Array(items));
    }
    if obj.is_instance_of::<PyDict>() || obj.cast::<PyMapping>().is_ok() {
        return Ok(Value::Object(to_json_object(obj, path)?));
    }
    Err(PyTypeError::new_err(format!(
        "{path}: object of type {} is not JSON serializable (use dict, list, str, int, float, bool or None)",
        type_name(obj)
    )))
}

/// A Python mapping with `str` keys as a JSON object.
pub fn to_json_object(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<JsonObject> {
    let items = if let Ok(dict) = obj.cast::<PyDict>() {
        dict.items().into_any()
    } else if obj.cast::<PyMapping>().is_ok() {
        obj.call_method0("items")?
    } else {
        return Err(PyTypeError::new_err(format!(
            "{path} must be a dict, not {}",
            type_name(obj)
        )));
    };
    let mut map = JsonObject::new();
    for pair in items.try_iter()? {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
        let key = key.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("{path}: keys must be str, not {}", type_name(&key)))
        })?;
        let key = key.to_cow()?.into_owned();
        let value = to_json(&value, &format!("{path}[{key:?}]"))?;
        map.insert(key, value);
    }
    Ok(map)
}

/// An optional `metadata=` argument.
pub fn metadata(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<JsonObject>> {
    match obj {
        None => Ok(None),
        Some(obj) if obj.is_none() => Ok(None),
        Some(obj) => to_json_object(obj, "metadata").map(Some),
    }
}

/// JSON as plain Python values (dict, list, str, int, float, bool, None).
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// Any serialisable SDK type as plain Python values.
pub fn serialize_to_py<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let json = serde_json::to_value(value).map_err(|err| {
        PyValueError::new_err(format!("could not convert the answer to Python: {err}"))
    })?;
    Ok(to_py(py, &json)?.unbind())
}

/// `provider=`: `"stripe"`, `"shopify"` or `"custom"`.
pub fn provider(text: &str) -> PyResult<Provider> {
    text.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "provider must be \"stripe\", \"shopify\" or \"custom\", not {text:?}"
        ))
    })
}

/// `status=`: `"success"` or `"failure"`.
pub fn result_status(text: &str) -> PyResult<ResultStatus> {
    match text {
        "success" => Ok(ResultStatus::Success),
        "failure" => Ok(ResultStatus::Failure),
        other => Err(PyValueError::new_err(format!(
            "status must be \"success\" or \"failure\", not {other:?}"
        ))),
    }
}

/// A wire enum (state, kind) from its string.
pub fn wire<T: std::str::FromStr>(
    name: &str,
    text: Option<String>,
    expected: &str,
) -> PyResult<Option<T>> {
    text.map(|t| {
        t.parse().map_err(|_| {
            PyValueError::new_err(format!("{name} must be one of {expected}, not {t:?}"))
        })
    })
    .transpose()
}

/// A raw body: `bytes`, `bytearray`, `memoryview` or `str` (UTF-8 encoded).
pub fn body(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    if obj.is_instance_of::<PyByteArray>() || type_name(obj) == "memoryview" {
        let bytes = obj.py().get_type::<PyBytes>().call1((obj,))?;
        return Ok(bytes.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be the raw request body as bytes (or str), not {}",
        type_name(obj)
    )))
}

fn header_text(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        // HTTP header bytes are Latin-1 (ASGI gives bytes).
        return Ok(b.as_bytes().iter().map(|&c| char::from(c)).collect());
    }
    Err(PyTypeError::new_err(format!(
        "headers: {what} must be str or bytes, not {}",
        type_name(obj)
    )))
}

/// Request headers from any mapping (dict, Werkzeug/Starlette `Headers`,
/// Django `request.headers`, anything with `.items()`) or an iterable of
/// `(name, value)` pairs. Names are matched case-insensitively later.
pub fn headers(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let items = if obj.hasattr("items")? {
        obj.call_method0("items")?
    } else if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "headers must be a mapping of header names to values (e.g. request.headers), not a string",
        ));
    } else {
        obj.clone()
    };
    let iter = items.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "headers must be a mapping of header names to values (e.g. request.headers), not {}",
            type_name(obj)
        ))
    })?;
    let mut pairs = Vec::new();
    for pair in iter {
        let pair = pair?;
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "headers must be a mapping or (name, value) pairs; found an item of type {}",
                type_name(&pair)
            ))
        })?;
        pairs.push((header_text(&name, "names")?, header_text(&value, "values")?));
    }
    Ok(pairs)
}

/// One secret or several (during a rotation).
pub fn secrets(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![s.to_cow()?.into_owned()]);
    }
    let bad = || {
        PyTypeError::new_err(format!(
            "{name} must be a str or a list of str (several during a rotation), not {}",
            type_name(obj)
        ))
    };
    let mut out = Vec::new();
    for item in obj.try_iter().map_err(|_| bad())? {
        let item = item?;
        out.push(
            item.cast::<PyString>()
                .map_err(|_| bad())?
                .to_cow()?
                .into_owned(),
        );
    }
    Ok(out)
}

/// A point in time: an aware `datetime`, an RFC 3339 string, or unix
/// seconds.
pub fn timestamp(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Timestamp> {
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow()?;
        let text = text.as_ref();
        return Timestamp::parse_rfc3339(text).map_err(|err| {
            PyValueError::new_err(format!(
                "{name} must be an RFC 3339 time such as 2026-11-22T10:00:00Z, not {text:?} ({err})"
            ))
        });
    }
    if obj.is_instance_of::<PyDateTime>() {
        if obj.getattr("tzinfo")?.is_none() {
            return Err(PyValueError::new_err(format!(
                "{name} must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))"
            )));
        }
        let seconds: f64 = obj.call_method0("timestamp")?.extract()?;
        return Ok(Timestamp::from_unix_millis(
            (seconds * 1000.0).round() as i64
        ));
    }
    if !obj.is_instance_of::<PyBool>()
        && (obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>())
    {
        let seconds: f64 = obj.extract()?;
        if seconds.is_finite() {
            return Ok(Timestamp::from_unix_millis(
                (seconds * 1000.0).round() as i64
            ));
        }
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a timezone-aware datetime, an RFC 3339 string or unix seconds, not {}",
        type_name(obj)
    )))
}

/// A duration: seconds (`int` or `float`, at least 0) or a `timedelta`.
pub fn duration(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Duration> {
    if obj.is_instance_of::<PyDelta>() {
        return obj
            .extract::<Duration>()
            .map_err(|_| PyValueError::new_err(format!("{name} must not be negative")));
    }
    if obj.is_instance_of::<PyBool>()
        || !(obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number of seconds (int or float) or a timedelta, not {}",
            type_name(obj)
        )));
    }
    let seconds: f64 = obj.extract()?;
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite, non-negative number of seconds, not {seconds}"
        ))
    })
}

/// A whole number for a field the server checks (e.g. `deadline_seconds`):
/// a `TypeError` for a non-integer, a `ValueError` for one out of range.
pub fn whole_u32(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<u32>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {}",
            type_name(obj)
        )));
    }
    let value: i128 = obj
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{name} is out of range")))?;
    u32::try_from(value)
        .map(Some)
        .map_err(|_| PyValueError::new_err(format!("{name} is out of range: {value}")))
}

/// A number for a field the server checks (e.g. `rate_per_second`): a
/// `TypeError` for anything but an `int` or a `float`.
pub fn number(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<f64>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyBool>()
        || !(obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number (int or float), not {}",
            type_name(obj)
        )));
    }
    let value: f64 = obj.extract()?;
    if !value.is_finite() {
        return Err(PyValueError::new_err(format!(
            "{name} must be a finite number, not {value}"
        )));
    }
    Ok(Some(value))
}
