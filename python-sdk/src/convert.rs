//! Arrow values to Python objects and back, as PyFlink hands them to UDFs and returns them
//! from `collect()`: `int`, `float`, `bool`, `str`, `bytes`, `decimal.Decimal`,
//! `datetime.datetime`/`date`/`time` (naive, UTC), `list`, `dict`, and `weir.common.Row`.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, Int8Builder, StringBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    new_null_array, Array, ArrayRef, Decimal128Array, MapArray, PrimitiveArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use weir_engine::types::type_name;

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ROW: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn unix_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// One Arrow column as a Python list.
pub fn column_to_list<'py>(py: Python<'py>, a: &dyn Array) -> PyResult<Bound<'py, PyList>> {
    match a.data_type() {
        DataType::Int64 => PyList::new(py, a.as_primitive::<Int64Type>().iter()),
        DataType::Int32 => PyList::new(py, a.as_primitive::<Int32Type>().iter()),
        DataType::Float64 => PyList::new(py, a.as_primitive::<Float64Type>().iter()),
        DataType::Utf8 => PyList::new(py, a.as_string::<i32>().iter()),
        DataType::Boolean => PyList::new(py, a.as_boolean().iter()),
        _ => {
            let items = (0..a.len())
                .map(|i| value_to_py(py, a, i))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)
        }
    }
}

fn ts_to_naive(v: i64, unit: &TimeUnit) -> Option<NaiveDateTime> {
    let dt = match unit {
        TimeUnit::Second => DateTime::from_timestamp(v, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(v),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(v),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(v)),
    };
    dt.map(|d| d.naive_utc())
}

fn time_of(nanos: i64) -> Option<NaiveTime> {
    NaiveTime::from_num_seconds_from_midnight_opt(
        (nanos / 1_000_000_000) as u32,
        (nanos % 1_000_000_000) as u32,
    )
}

fn out_of_range(what: &str, v: i64) -> PyErr {
    PyValueError::new_err(format!("{what} value {v} is out of Python's range"))
}

/// Row `i` of `a` as a Python object.
pub fn value_to_py<'py>(py: Python<'py>, a: &dyn Array, i: usize) -> PyResult<Bound<'py, PyAny>> {
    if a.is_null(i) {
        return Ok(py.None().into_bound(py));
    }
    Ok(match a.data_type() {
        DataType::Boolean => PyBool::new(py, a.as_boolean().value(i))
            .to_owned()
            .into_any(),
        DataType::Int8 => a
            .as_primitive::<Int8Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Int16 => a
            .as_primitive::<Int16Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Int32 => a
            .as_primitive::<Int32Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Int64 => a
            .as_primitive::<Int64Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt8 => a
            .as_primitive::<UInt8Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt16 => a
            .as_primitive::<UInt16Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt32 => a
            .as_primitive::<UInt32Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt64 => a
            .as_primitive::<UInt64Type>()
            .value(i)
            .into_pyobject(py)?
            .into_any(),
        DataType::Float32 => {
            PyFloat::new(py, a.as_primitive::<Float32Type>().value(i) as f64).into_any()
        }
        DataType::Float64 => PyFloat::new(py, a.as_primitive::<Float64Type>().value(i)).into_any(),
        DataType::Utf8 => PyString::new(py, a.as_string::<i32>().value(i)).into_any(),
        DataType::LargeUtf8 => PyString::new(py, a.as_string::<i64>().value(i)).into_any(),
        DataType::Binary => PyBytes::new(py, a.as_binary::<i32>().value(i)).into_any(),
        DataType::LargeBinary => PyBytes::new(py, a.as_binary::<i64>().value(i)).into_any(),
        DataType::Decimal128(_, _) => {
            let d = a
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .expect("decimal");
            let text = d.value_as_string(i);
            DECIMAL.import(py, "decimal", "Decimal")?.call1((text,))?
        }
        DataType::Date32 => {
            let days = a.as_primitive::<Date32Type>().value(i);
            let d = unix_epoch()
                .checked_add_signed(chrono::Duration::days(days as i64))
                .ok_or_else(|| out_of_range("DATE", days as i64))?;
            d.into_pyobject(py)?.into_any()
        }
        DataType::Date64 => {
            let ms = a.as_primitive::<Date64Type>().value(i);
            let d =
                ts_to_naive(ms, &TimeUnit::Millisecond).ok_or_else(|| out_of_range("DATE", ms))?;
            d.date().into_pyobject(py)?.into_any()
        }
        DataType::Time32(unit) => {
            let v = match unit {
                TimeUnit::Second => {
                    a.as_primitive::<Time32SecondType>().value(i) as i64 * 1_000_000_000
                }
                _ => a.as_primitive::<Time32MillisecondType>().value(i) as i64 * 1_000_000,
            };
            time_of(v)
                .ok_or_else(|| out_of_range("TIME", v))?
                .into_pyobject(py)?
                .into_any()
        }
        DataType::Time64(unit) => {
            let v = match unit {
                TimeUnit::Microsecond => a.as_primitive::<Time64MicrosecondType>().value(i) * 1_000,
                _ => a.as_primitive::<Time64NanosecondType>().value(i),
            };
            time_of(v)
                .ok_or_else(|| out_of_range("TIME", v))?
                .into_pyobject(py)?
                .into_any()
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(i),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(i),
            };
            ts_to_naive(v, unit)
                .ok_or_else(|| out_of_range("TIMESTAMP", v))?
                .into_pyobject(py)?
                .into_any()
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            column_to_list(py, l.value(i).as_ref())?.into_any()
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            column_to_list(py, l.value(i).as_ref())?.into_any()
        }
        DataType::Map(_, _) => {
            let m = a.as_any().downcast_ref::<MapArray>().expect("map");
            let entries = m.value(i);
            let d = PyDict::new(py);
            for j in 0..entries.len() {
                d.set_item(
                    value_to_py(py, entries.column(0).as_ref(), j)?,
                    value_to_py(py, entries.column(1).as_ref(), j)?,
                )?;
            }
            d.into_any()
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let names = PyTuple::new(py, fields.iter().map(|f| f.name().as_str()))?;
            let values = (0..s.num_columns())
                .map(|c| value_to_py(py, s.column(c).as_ref(), i))
                .collect::<PyResult<Vec<_>>>()?;
            let row = ROW.import(py, "weir.common", "Row")?;
            row.call_method1("_make", (names, PyTuple::new(py, values)?, 0))?
        }
        other => {
            return Err(PyTypeError::new_err(format!(
                "values of type {} cannot be given to Python",
                type_name(other)
            )))
        }
    })
}

/// Why a Python value does not fit a column.
pub fn bad_value(v: &Bound<'_, PyAny>, dt: &DataType, row: usize) -> String {
    let shown = v
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable>".into());
    let shown = if shown.chars().count() > 80 {
        format!("{}...", shown.chars().take(77).collect::<String>())
    } else {
        shown
    };
    let ty = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    format!("row {row}: {shown} ({ty}) is not a {}", type_name(dt))
}

fn int_of(v: &Bound<'_, PyAny>, dt: &DataType, row: usize) -> Result<i64, String> {
    if v.is_instance_of::<PyInt>() {
        v.extract::<i64>().map_err(|_| bad_value(v, dt, row))
    } else {
        Err(bad_value(v, dt, row))
    }
}

fn float_of(v: &Bound<'_, PyAny>, dt: &DataType, row: usize) -> Result<f64, String> {
    if v.is_instance_of::<PyFloat>() || v.is_instance_of::<PyInt>() {
        v.extract::<f64>().map_err(|_| bad_value(v, dt, row))
    } else {
        // Decimal and numpy scalars convert through float().
        match v.get_type().name().map(|n| n.to_string()).as_deref() {
            Ok("Decimal") | Ok("float64") | Ok("float32") => v
                .call_method0("__float__")
                .and_then(|f| f.extract::<f64>())
                .map_err(|_| bad_value(v, dt, row)),
            _ => Err(bad_value(v, dt, row)),
        }
    }
}

fn micros_of_datetime(v: &Bound<'_, PyAny>, dt: &DataType, row: usize) -> Result<i64, String> {
    if let Ok(n) = v.extract::<NaiveDateTime>() {
        return Ok(n.and_utc().timestamp_micros());
    }
    if let Ok(d) = v.extract::<DateTime<chrono::FixedOffset>>() {
        return Ok(d.timestamp_micros());
    }
    Err(bad_value(v, dt, row))
}

/// Converts Python values to a column of `dt`; the error names the row and the value.
pub fn values_to_array(values: &[Bound<'_, PyAny>], dt: &DataType) -> Result<ArrayRef, String> {
    macro_rules! build {
        ($builder:ty, $conv:expr) => {{
            let mut b = <$builder>::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    b.append_null();
                } else {
                    b.append_value($conv(v, row)?);
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let small = |v: &Bound<'_, PyAny>, row: usize| -> Result<i64, String> { int_of(v, dt, row) };
    let fits = |x: i64, v: &Bound<'_, PyAny>, row: usize, lo: i64, hi: i64| {
        if x < lo || x > hi {
            Err(bad_value(v, dt, row))
        } else {
            Ok(x)
        }
    };
    Ok(match dt {
        DataType::Null => new_null_array(dt, values.len()),
        DataType::Boolean => build!(BooleanBuilder, |v: &Bound<'_, PyAny>, row| {
            if v.is_instance_of::<PyBool>() {
                v.extract::<bool>().map_err(|_| bad_value(v, dt, row))
            } else {
                Err(bad_value(v, dt, row))
            }
        }),
        DataType::Int8 => build!(Int8Builder, |v, row| small(v, row)
            .and_then(|x| fits(x, v, row, i8::MIN as i64, i8::MAX as i64))
            .map(|x| x as i8)),
        DataType::Int16 => build!(Int16Builder, |v, row| small(v, row)
            .and_then(|x| fits(x, v, row, i16::MIN as i64, i16::MAX as i64))
            .map(|x| x as i16)),
        DataType::Int32 => build!(Int32Builder, |v, row| small(v, row)
            .and_then(|x| fits(x, v, row, i32::MIN as i64, i32::MAX as i64))
            .map(|x| x as i32)),
        DataType::Int64 => build!(Int64Builder, small),
        DataType::Float32 => build!(Float32Builder, |v, row| float_of(v, dt, row)
            .map(|x| x as f32)),
        DataType::Float64 => build!(Float64Builder, |v, row| float_of(v, dt, row)),
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 8);
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    b.append_null();
                } else if let Ok(s) = v.cast::<PyString>() {
                    b.append_value(s.to_str().map_err(|_| bad_value(v, dt, row))?);
                } else {
                    return Err(bad_value(v, dt, row));
                }
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::new();
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    b.append_null();
                } else if let Ok(s) = v.cast::<PyBytes>() {
                    b.append_value(s.as_bytes());
                } else {
                    return Err(bad_value(v, dt, row));
                }
            }
            Arc::new(b.finish())
        }
        DataType::Decimal128(p, s) => {
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    out.push(None);
                    continue;
                }
                let ok = v.is_instance_of::<PyInt>()
                    || v.is_instance_of::<PyFloat>()
                    || v.get_type().name().map(|n| n == "Decimal").unwrap_or(false);
                if !ok {
                    return Err(bad_value(v, dt, row));
                }
                let text = v.str().map_err(|_| bad_value(v, dt, row))?.to_string();
                let x = arrow_cast::parse::parse_decimal::<Decimal128Type>(&text, *p, *s)
                    .map_err(|e| format!("{}: {e}", bad_value(v, dt, row)))?;
                out.push(Some(x));
            }
            Arc::new(
                Decimal128Array::from(out)
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Date32 => {
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    out.push(None);
                } else if let Ok(d) = v.extract::<NaiveDate>() {
                    out.push(Some((d - unix_epoch()).num_days() as i32));
                } else {
                    return Err(bad_value(v, dt, row));
                }
            }
            Arc::new(PrimitiveArray::<Date32Type>::from(out))
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let mut nanos = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    nanos.push(None);
                } else if let Ok(t) = v.extract::<NaiveTime>() {
                    nanos.push(Some(
                        t.num_seconds_from_midnight() as i64 * 1_000_000_000
                            + t.nanosecond() as i64,
                    ));
                } else {
                    return Err(bad_value(v, dt, row));
                }
            }
            let scaled = |d: i64| nanos.iter().map(move |n| n.map(|n| n / d));
            match dt {
                DataType::Time32(TimeUnit::Second) => {
                    Arc::new(PrimitiveArray::<Time32SecondType>::from_iter(
                        scaled(1_000_000_000).map(|x| x.map(|x| x as i32)),
                    ))
                }
                DataType::Time32(_) => {
                    Arc::new(PrimitiveArray::<Time32MillisecondType>::from_iter(
                        scaled(1_000_000).map(|x| x.map(|x| x as i32)),
                    ))
                }
                DataType::Time64(TimeUnit::Microsecond) => {
                    Arc::new(PrimitiveArray::<Time64MicrosecondType>::from_iter(scaled(
                        1_000,
                    )))
                }
                _ => Arc::new(PrimitiveArray::<Time64NanosecondType>::from_iter(scaled(1))),
            }
        }
        DataType::Timestamp(unit, tz) => {
            let mut micros = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    micros.push(None);
                } else {
                    micros.push(Some(micros_of_datetime(v, dt, row)?));
                }
            }
            let arr: ArrayRef = match unit {
                TimeUnit::Second => Arc::new(PrimitiveArray::<TimestampSecondType>::from_iter(
                    micros.iter().map(|m| m.map(|m| m.div_euclid(1_000_000))),
                )),
                TimeUnit::Millisecond => {
                    Arc::new(PrimitiveArray::<TimestampMillisecondType>::from_iter(
                        micros.iter().map(|m| m.map(|m| m.div_euclid(1_000))),
                    ))
                }
                TimeUnit::Microsecond => Arc::new(
                    PrimitiveArray::<TimestampMicrosecondType>::from_iter(micros.iter().copied()),
                ),
                TimeUnit::Nanosecond => {
                    Arc::new(PrimitiveArray::<TimestampNanosecondType>::from_iter(
                        micros.iter().map(|m| m.map(|m| m.saturating_mul(1_000))),
                    ))
                }
            };
            arrow_cast::cast(&arr, &DataType::Timestamp(*unit, tz.clone()))
                .map_err(|e| e.to_string())?
        }
        DataType::List(field) => {
            let mut offsets = vec![0i32];
            let mut children = Vec::new();
            let mut valid = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    valid.push(false);
                } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
                    valid.push(true);
                    for item in v.try_iter().map_err(|_| bad_value(v, dt, row))? {
                        children.push(item.map_err(|e| e.to_string())?);
                    }
                } else {
                    return Err(bad_value(v, dt, row));
                }
                offsets.push(children.len() as i32);
            }
            let child = values_to_array(&children, field.data_type())
                .map_err(|e| format!("in a list element, {e}"))?;
            Arc::new(
                arrow_array::ListArray::try_new(
                    field.clone(),
                    OffsetBuffer::new(offsets.into()),
                    child,
                    Some(NullBuffer::from(valid)),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(format!(
                    "map type {} has no key/value struct",
                    type_name(dt)
                ));
            };
            let mut offsets = vec![0i32];
            let (mut keys, mut vals) = (Vec::new(), Vec::new());
            let mut valid = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                if v.is_none() {
                    valid.push(false);
                } else if let Ok(d) = v.cast::<PyDict>() {
                    valid.push(true);
                    for (k, x) in d.iter() {
                        keys.push(k);
                        vals.push(x);
                    }
                } else {
                    return Err(bad_value(v, dt, row));
                }
                offsets.push(keys.len() as i32);
            }
            let k = values_to_array(&keys, kv[0].data_type())
                .map_err(|e| format!("in a map key, {e}"))?;
            let x = values_to_array(&vals, kv[1].data_type())
                .map_err(|e| format!("in a map value, {e}"))?;
            let st =
                StructArray::try_new(kv.clone(), vec![k, x], None).map_err(|e| e.to_string())?;
            Arc::new(
                MapArray::try_new(
                    entries.clone(),
                    OffsetBuffer::new(offsets.into()),
                    st,
                    Some(NullBuffer::from(valid)),
                    *sorted,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Struct(fields) => struct_array(values, fields, dt)?,
        other => {
            return Err(format!(
                "weir cannot take Python values as {}",
                type_name(other)
            ))
        }
    })
}

fn struct_array(
    values: &[Bound<'_, PyAny>],
    fields: &Fields,
    dt: &DataType,
) -> Result<ArrayRef, String> {
    let py = match values.first() {
        Some(v) => v.py(),
        None => {
            return Ok(new_null_array(dt, 0));
        }
    };
    let mut columns: Vec<Vec<Bound<'_, PyAny>>> =
        vec![Vec::with_capacity(values.len()); fields.len()];
    let mut valid = Vec::with_capacity(values.len());
    for (row, v) in values.iter().enumerate() {
        if v.is_none() {
            valid.push(false);
            for c in columns.iter_mut() {
                c.push(py.None().into_bound(py));
            }
            continue;
        }
        valid.push(true);
        if let Ok(d) = v.cast::<PyDict>() {
            for (c, f) in columns.iter_mut().zip(fields.iter()) {
                c.push(
                    d.get_item(f.name())
                        .map_err(|e| e.to_string())?
                        .unwrap_or_else(|| py.None().into_bound(py)),
                );
            }
        } else if v.is_instance_of::<PyTuple>() || v.is_instance_of::<PyList>() {
            // Row is a tuple.
            let items: Vec<Bound<'_, PyAny>> = v
                .try_iter()
                .map_err(|e| e.to_string())?
                .collect::<PyResult<_>>()
                .map_err(|e| e.to_string())?;
            if items.len() != fields.len() {
                return Err(format!(
                    "row {row}: {} fields given for {}",
                    items.len(),
                    type_name(dt)
                ));
            }
            for (c, item) in columns.iter_mut().zip(items) {
                c.push(item);
            }
        } else {
            return Err(bad_value(v, dt, row));
        }
    }
    let children = columns
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| {
            values_to_array(c, f.data_type()).map_err(|e| format!("field `{}`: {e}", f.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fields: Fields = fields
        .iter()
        .map(|f| Arc::new(Field::new(f.name(), f.data_type().clone(), true)))
        .collect::<Vec<_>>()
        .into();
    Ok(Arc::new(
        StructArray::try_new(fields, children, Some(NullBuffer::from(valid)))
            .map_err(|e| e.to_string())?,
    ))
}

/// Values of a Python list (fast path for lists, any iterable otherwise).
pub fn list_items<'py>(v: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = v.cast::<PyList>() {
        return Ok(l.iter().collect());
    }
    v.try_iter()?.collect()
}

/// A Python list straight to a column: the common result types avoid an intermediate vector.
pub fn list_to_array(list: &Bound<'_, PyAny>, dt: &DataType) -> Result<ArrayRef, String> {
    if let (Ok(l), DataType::Int64) = (list.cast::<PyList>(), dt) {
        let mut b = Int64Builder::with_capacity(l.len());
        for (row, v) in l.iter().enumerate() {
            if v.is_none() {
                b.append_null();
            } else {
                b.append_value(int_of(&v, dt, row)?);
            }
        }
        return Ok(Arc::new(b.finish()));
    }
    let items = list_items(list).map_err(|e| e.to_string())?;
    values_to_array(&items, dt)
}
