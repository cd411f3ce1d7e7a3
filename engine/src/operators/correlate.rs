//! Correlate: each row joined with the rows a table function yielded for it.
//!
//! The table function itself runs in a UDF node before this operator (like any Python
//! function), whose result column holds, per input row, the list of rows it yielded. This
//! operator flattens that column: one output row per yielded row, the input row's columns
//! repeated, and with `outer` (`left_outer_join_lateral`, `LEFT JOIN LATERAL ... ON TRUE`) one
//! row of NULLs for an input row that yielded nothing. Each output row keeps the change kind of
//! its input row, so retractions flow through as they came.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int8Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::stream::{StreamBatch, MAX_BATCH_ROWS};

use super::{arrow, Operator};

/// Flattens the last input column (a list of rows) into columns named `names`; or, when that
/// column is a BIGINT count and `names` is empty, repeats each row that many times.
pub struct Correlate {
    name: String,
    schema: SchemaRef,
    outer: bool,
    count: bool,
}

impl Correlate {
    /// Plans the operator over `input`, whose last column is the table function's result.
    pub fn new(name: &str, input: &Schema, names: &[String], outer: bool) -> Result<Self> {
        let n = input.fields().len();
        let bad = |detail: String| EngineError::Plan {
            expr: name.to_string(),
            detail,
        };
        let last = input
            .fields()
            .last()
            .ok_or_else(|| bad("no input columns".into()))?;
        if *last.data_type() == DataType::Int64 && names.is_empty() {
            let fields: Vec<Field> = input.fields()[..n - 1]
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            return Ok(Self {
                name: name.to_string(),
                schema: Arc::new(Schema::new(fields)),
                outer: false,
                count: true,
            });
        }
        let DataType::List(item) = last.data_type() else {
            return Err(bad(format!(
                "the table function's column is {}, not a list of rows",
                last.data_type()
            )));
        };
        let DataType::Struct(tf) = item.data_type() else {
            return Err(bad("the table function's items are not rows".into()));
        };
        if tf.len() != names.len() {
            return Err(bad(format!(
                "{} names for {} columns",
                names.len(),
                tf.len()
            )));
        }
        let mut fields: Vec<Field> = input.fields()[..n - 1]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (f, n) in tf.iter().zip(names) {
            fields.push(Field::new(n, f.data_type().clone(), true));
        }
        Ok(Self {
            name: name.to_string(),
            schema: Arc::new(Schema::new(fields)),
            outer,
            count: false,
        })
    }
}

impl Operator for Correlate {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let data = &batch.data;
        let k = data.num_columns() - 1;
        if self.count {
            return self.repeat(&batch, out);
        }
        let list = data.column(k).as_list::<i32>();
        let offsets = list.value_offsets();
        let mut parents: Vec<u32> = Vec::with_capacity(list.values().len());
        let mut items: Vec<Option<u32>> = Vec::with_capacity(list.values().len());
        for i in 0..data.num_rows() {
            let (start, end) = if list.is_null(i) {
                (0, 0)
            } else {
                (offsets[i] as u32, offsets[i + 1] as u32)
            };
            if end > start {
                parents.extend(std::iter::repeat_n(i as u32, (end - start) as usize));
                items.extend((start..end).map(Some));
            } else if self.outer {
                parents.push(i as u32);
                items.push(None);
            }
        }
        if parents.is_empty() {
            return Ok(());
        }
        let items = UInt32Array::from(items);
        let rows = list.values().as_struct();
        let mut extra = Vec::with_capacity(rows.num_columns());
        for c in rows.columns() {
            extra.push(self.take(c, &items)?);
        }
        self.emit(&batch, parents, extra, out)
    }
}

impl Correlate {
    fn take(&self, a: &ArrayRef, idx: &UInt32Array) -> Result<ArrayRef> {
        arrow_select::take::take(a.as_ref(), idx, None).map_err(arrow(&self.name))
    }

    /// The count form: row `i` repeated `count[i]` times (NULL or below one: not at all).
    fn repeat(&self, batch: &StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let data = &batch.data;
        let counts = data
            .column(data.num_columns() - 1)
            .as_primitive::<arrow_array::types::Int64Type>();
        let mut parents: Vec<u32> = Vec::new();
        for (i, c) in counts.iter().enumerate() {
            let c = c.unwrap_or(0).max(0) as usize;
            parents.extend(std::iter::repeat_n(i as u32, c));
        }
        if parents.is_empty() {
            return Ok(());
        }
        self.emit(batch, parents, Vec::new(), out)
    }

    /// The input columns but the last taken at `parents`, then `extra`, cut into batches that
    /// keep each row's change kind.
    fn emit(
        &self,
        batch: &StreamBatch,
        parents: Vec<u32>,
        extra: Vec<ArrayRef>,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        let data = &batch.data;
        let k = data.num_columns() - 1;
        let parents = UInt32Array::from(parents);
        let mut cols = Vec::with_capacity(self.schema.fields().len());
        for c in &data.columns()[..k] {
            cols.push(self.take(c, &parents)?);
        }
        cols.extend(extra);
        let all = RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.name))?;
        let kinds = match &batch.kinds {
            Some(kinds) => {
                let a: ArrayRef = kinds.clone();
                Some(self.take(&a, &parents)?)
            }
            None => None,
        };
        let n = all.num_rows();
        for off in (0..n).step_by(MAX_BATCH_ROWS) {
            let len = MAX_BATCH_ROWS.min(n - off);
            out.push(StreamBatch {
                data: all.slice(off, len),
                kinds: kinds.as_ref().map(|k| {
                    Arc::new(
                        k.slice(off, len)
                            .as_primitive::<arrow_array::types::Int8Type>()
                            .clone(),
                    ) as Arc<Int8Array>
                }),
            });
        }
        Ok(())
    }
}
