//! Arrow arrays to and from `pyarrow` through the Arrow C data interface: what vectorized UDFs
//! (`func_type="arrow"` and `"pandas"`) receive and return. No value becomes a Python object on
//! the way: pyarrow gets the worker's buffers, and the engine gets pyarrow's.
//!
//! pyarrow's `Array._import_from_c` / `_export_to_c` take the addresses of the C structs; the
//! side that receives a struct moves it (marks the source released), so whichever side drops
//! the struct last frees nothing twice.

use arrow_array::cast::AsArray;
use arrow_array::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::types::Float64Type;
use arrow_array::{make_array, new_null_array, Array, ArrayRef};
use arrow_cast::cast::{cast_with_options, CastOptions};
use arrow_schema::DataType;
use pyo3::exceptions::{PyImportError, PyValueError};
use pyo3::prelude::*;
use weir_engine::types::type_name;

fn pyarrow(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("pyarrow").map_err(|e| {
        PyImportError::new_err(format!(
            "vectorized UDFs (func_type='arrow' or 'pandas') need pyarrow in the workers' Python: pip install 'weir-stream[pandas]' ({e})"
        ))
    })
}

/// An Arrow array as a `pyarrow.Array` sharing its buffers.
pub fn to_pyarrow<'py>(py: Python<'py>, a: &dyn Array) -> PyResult<Bound<'py, PyAny>> {
    let pa = pyarrow(py)?;
    let (array, schema) =
        to_ffi(&a.to_data()).map_err(|e| PyValueError::new_err(format!("exporting: {e}")))?;
    let (array, schema) = (Box::new(array), Box::new(schema));
    let array_addr = &*array as *const FFI_ArrowArray as usize;
    let schema_addr = &*schema as *const FFI_ArrowSchema as usize;
    // pyarrow moves both structs; dropping the moved-from boxes releases nothing.
    pa.getattr("Array")?
        .call_method1("_import_from_c", (array_addr, schema_addr))
}

/// A `pyarrow.Array` (anything with `_export_to_c`) as an Arrow array.
pub fn from_pyarrow(obj: &Bound<'_, PyAny>) -> PyResult<ArrayRef> {
    let mut array = Box::new(FFI_ArrowArray::empty());
    let mut schema = Box::new(FFI_ArrowSchema::empty());
    let array_addr = &mut *array as *mut FFI_ArrowArray as usize;
    let schema_addr = &mut *schema as *mut FFI_ArrowSchema as usize;
    obj.call_method1("_export_to_c", (array_addr, schema_addr))?;
    // SAFETY: pyarrow filled both structs (it raised otherwise); `from_ffi` takes the array
    // and keeps it alive as long as the data; the schema is only read.
    let data = unsafe { from_ffi(*array, &schema) }
        .map_err(|e| PyValueError::new_err(format!("importing a pyarrow array: {e}")))?;
    Ok(make_array(data))
}

/// An array a vectorized UDF returned, as the declared result type: the same type, a
/// checked conversion between numbers (an integer that does not fit, or a float that is not
/// whole where an integer is declared, is an error), another string layout, or all nulls.
/// Anything else is an error saying what came and what was declared.
pub fn conform(a: ArrayRef, declared: &DataType) -> Result<ArrayRef, String> {
    let got = a.data_type();
    if got == declared {
        return Ok(a);
    }
    let wrong = || {
        format!(
            "values of type {} (Arrow {got}) where {} was declared",
            arrow_type_text(got),
            type_name(declared)
        )
    };
    if *got == DataType::Null {
        return Ok(new_null_array(declared, a.len()));
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |a: &ArrayRef| cast_with_options(a, declared, &strict).map_err(|e| e.to_string());
    let numeric = |t: &DataType| {
        t.is_numeric() && !matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
    };
    match (got, declared) {
        (g, d) if numeric(g) && numeric(d) => {
            if g.is_floating() && d.is_integer() {
                // Whole values only (pandas turns an integer column with nulls into floats).
                let f = cast_with_options(&a, &DataType::Float64, &strict)
                    .map_err(|e| e.to_string())?;
                let f = f.as_primitive::<Float64Type>();
                if let Some((row, v)) = f.iter().enumerate().find_map(|(i, v)| {
                    v.filter(|x| x.fract() != 0.0 || !x.is_finite())
                        .map(|x| (i, x))
                }) {
                    return Err(format!(
                        "row {row}: {v} is not a whole number, and {} was declared",
                        type_name(declared)
                    ));
                }
            }
            cast(&a).map_err(|e| format!("{} ({e})", wrong()))
        }
        (
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View,
        )
        | (
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView,
        )
        | (DataType::Timestamp(..), DataType::Timestamp(..))
        | (DataType::Date32 | DataType::Date64, DataType::Date32 | DataType::Date64) => {
            cast(&a).map_err(|e| format!("{} ({e})", wrong()))
        }
        // Dictionary-encoded values (pandas categoricals): decoded, then held to the same rules
        // as plain values (a dictionary of strings is not numbers).
        (DataType::Dictionary(_, values), _) => {
            let plain = cast_with_options(&a, values, &strict).map_err(|e| e.to_string())?;
            conform(plain, declared)
        }
        _ => Err(wrong()),
    }
}

/// A Flink type name for an Arrow type when weir has one, else Arrow's.
fn arrow_type_text(t: &DataType) -> String {
    match t {
        DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            format!("an unsigned integer ({t})")
        }
        _ => type_name(t),
    }
}
