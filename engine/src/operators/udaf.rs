//! Aggregates computed by functions out of process (Python aggregate functions): the engine's
//! half of the state link.
//!
//! The accumulators belong to the engine. [`ExternalAcc`] keeps each group's accumulator as
//! the bytes the function's runner gave back (pickled, for Python), and the group's current
//! value. Before a batch is aggregated, the operator sends its runner one request (laid out
//! as [`crate::udf::AGG_SLOT`] says): every row with its group slot and retraction flag, the
//! arguments, and for the first row of each group in the batch that group's stored
//! accumulator. The answer holds, per group, the new accumulator and value; they are staged
//! and become the group's state when the batch is aggregated, in the same step as the rest of
//! the operator's state. A worker that dies mid-request loses nothing: the runner sends the
//! same request again, with the same accumulators, and its metric updates count once with
//! the answer that is accepted.
//!
//! A request carries at most one accumulator per row of its batch (one per group in it), so
//! what travels is bounded by the batch, not by the number of groups; the groups' state stays
//! in the operator's memory (as for the built-in aggregates).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Int64Array, RecordBatch, StructArray,
};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::types::type_name;
use crate::udf::{aggregate_answer_type, UdfCall, UdfRef, AGG_ACCS, AGG_RETRACT, AGG_SLOT};

use super::state::Accumulator;
use super::{arrow, AggSpec};

/// A call of a user-defined aggregate function in an aggregate's select list.
#[derive(Clone, Debug)]
pub struct UdafCall {
    pub udf: Arc<UdfRef>,
    pub args: Vec<Expr>,
}

impl PartialEq for UdafCall {
    fn eq(&self, other: &Self) -> bool {
        self.udf == other.udf && self.args == other.args
    }
}

/// What the operator's runner is asked to evaluate: the request's schema and one call per
/// user-defined aggregate, in the order of `specs`.
pub fn request_layout(input: &Schema, specs: &[AggSpec]) -> Result<(SchemaRef, Vec<UdfCall>)> {
    let udafs: Vec<&UdafCall> = specs.iter().filter_map(|s| s.udaf.as_ref()).collect();
    let mut fields = vec![
        Field::new("$slot", DataType::Int64, false),
        Field::new("$retract", DataType::Boolean, false),
    ];
    for k in 0..udafs.len() {
        fields.push(Field::new(format!("$acc{k}"), DataType::Binary, true));
    }
    let mut calls = Vec::new();
    for (k, u) in udafs.iter().enumerate() {
        let mut args = vec![AGG_SLOT, AGG_RETRACT, AGG_ACCS + k];
        for (j, a) in u.args.iter().enumerate() {
            args.push(fields.len());
            fields.push(Field::new(
                format!("$arg{k}_{j}"),
                a.data_type(input)?,
                true,
            ));
        }
        calls.push(UdfCall {
            udf: u.udf.clone(),
            args,
        });
    }
    debug_assert_eq!(fields[AGG_SLOT].name(), "$slot");
    Ok((Arc::new(Schema::new(fields)), calls))
}

/// The engine-side state of one user-defined aggregate: per group, the accumulator its
/// function returned last and the value it computed, encoded as Arrow rows.
pub struct ExternalAcc {
    name: String,
    output: DataType,
    converter: RowConverter,
    /// The encoded NULL value (a group without a value yet).
    null_row: Box<[u8]>,
    accs: Vec<Option<Box<[u8]>>>,
    values: Vec<Option<Box<[u8]>>>,
    /// Answers of the current request, made the groups' state by the next `update`.
    staged: Vec<Staged>,
}

/// One group's answer: its slot, new accumulator and encoded value.
struct Staged {
    group: u32,
    acc: Option<Box<[u8]>>,
    value: Box<[u8]>,
}

impl ExternalAcc {
    pub fn new(name: &str, output: &DataType) -> Result<Self> {
        let converter =
            RowConverter::new(vec![SortField::new(output.clone())]).map_err(arrow(name))?;
        let nulls = converter
            .convert_columns(&[arrow_array::new_null_array(output, 1)])
            .map_err(arrow(name))?;
        let null_row = nulls.row(0).data().into();
        Ok(Self {
            name: name.to_string(),
            output: output.clone(),
            converter,
            null_row,
            accs: Vec::new(),
            values: Vec::new(),
            staged: Vec::new(),
        })
    }

    /// The stored accumulator of a group.
    pub fn acc(&self, group: u32) -> Option<&[u8]> {
        self.accs.get(group as usize).and_then(|a| a.as_deref())
    }

    /// Takes one answer column (`Struct{acc, value}`, see [`crate::udf::AGG_SLOT`]) whose rows
    /// belong to the groups `slots`: staged until the next `update`.
    fn stage(&mut self, answer: &ArrayRef, slots: &Int64Array) -> Result<()> {
        let want = aggregate_answer_type(&self.output);
        if answer.data_type() != &want || answer.len() != slots.len() {
            return Err(EngineError::Execution(format!(
                "{}: the aggregate function answered {} values of {}, expected {} of {}",
                self.name,
                answer.len(),
                type_name(answer.data_type()),
                slots.len(),
                type_name(&want)
            )));
        }
        let s: &StructArray = answer.as_struct();
        let accs: &BinaryArray = s.column(0).as_binary();
        let rows = self
            .converter
            .convert_columns(&[s.column(1).clone()])
            .map_err(arrow(&self.name))?;
        for j in 0..s.len() {
            if s.is_valid(j) {
                let g = u32::try_from(slots.value(j)).map_err(|_| {
                    EngineError::Execution(format!("{}: a group slot out of range", self.name))
                })?;
                let acc = accs.is_valid(j).then(|| accs.value(j).into());
                self.staged.push(Staged {
                    group: g,
                    acc,
                    value: rows.row(j).data().into(),
                });
            }
        }
        Ok(())
    }
}

impl Accumulator for ExternalAcc {
    fn resize(&mut self, n: usize) {
        if self.accs.len() < n {
            self.accs.resize(n, None);
            self.values.resize(n, None);
        }
    }

    fn update(
        &mut self,
        _values: Option<&ArrayRef>,
        _groups: &[u32],
        _signs: Option<&[i8]>,
    ) -> Result<()> {
        for Staged { group, acc, value } in self.staged.drain(..) {
            let g = group as usize;
            if g >= self.accs.len() {
                self.accs.resize(g + 1, None);
                self.values.resize(g + 1, None);
            }
            self.accs[g] = acc;
            self.values[g] = Some(value);
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let parser = self.converter.parser();
        let rows: Vec<arrow_row::Row<'_>> = groups
            .iter()
            .map(|g| {
                let v = self.values.get(*g as usize).and_then(|v| v.as_deref());
                parser.parse(v.unwrap_or(&self.null_row))
            })
            .collect();
        let mut cols = self
            .converter
            .convert_rows(rows)
            .map_err(arrow(&self.name))?;
        Ok(cols.remove(0))
    }

    fn merge(&mut self, _dst: u32, _src: u32) {
        // Session windows with user-defined aggregates are refused when planned.
    }

    fn reset(&mut self, group: u32) {
        if let Some(a) = self.accs.get_mut(group as usize) {
            *a = None;
        }
        if let Some(v) = self.values.get_mut(group as usize) {
            *v = None;
        }
    }

    fn as_external(&mut self) -> Option<&mut ExternalAcc> {
        Some(self)
    }
}

/// Builds the request for a batch whose rows belong to `groups` (see [`request_layout`]).
pub(super) fn build_request(
    name: &str,
    schema: &SchemaRef,
    specs: &[AggSpec],
    accs: &mut [Box<dyn Accumulator>],
    batch: &RecordBatch,
    groups: &[u32],
    signs: Option<&[i8]>,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    cols.push(Arc::new(Int64Array::from_iter_values(
        groups.iter().map(|g| i64::from(*g)),
    )));
    cols.push(Arc::new(match signs {
        Some(s) => BooleanArray::from_iter(s.iter().map(|x| Some(*x < 0))),
        None => BooleanArray::new(arrow_buffer::BooleanBuffer::new_unset(n), None),
    }));
    // The first row of each group in the batch carries its accumulator.
    let mut first = vec![false; n];
    {
        let mut seen = std::collections::HashSet::with_capacity(n.min(1024));
        for (i, g) in groups.iter().enumerate() {
            first[i] = seen.insert(*g);
        }
    }
    let mut args = Vec::new();
    for (spec, acc) in specs.iter().zip(accs.iter_mut()) {
        let Some(u) = &spec.udaf else { continue };
        let ext = acc.as_external().ok_or_else(|| {
            EngineError::Execution(format!("{name}: `{}` has no external state", u.udf.name))
        })?;
        let col: BinaryArray = groups
            .iter()
            .zip(&first)
            .map(|(g, f)| if *f { ext.acc(*g) } else { None })
            .collect();
        cols.push(Arc::new(col));
        for a in &u.args {
            args.push(a.evaluate(batch)?.into_array(n)?);
        }
    }
    cols.extend(args);
    RecordBatch::try_new(schema.clone(), cols).map_err(arrow(name))
}

/// Stages the answer to a request whose slots column was `slots` (`keep`: the rows the
/// runner kept; the answer holds only those).
pub(super) fn stage_answer(
    name: &str,
    specs: &[AggSpec],
    accs: &mut [Box<dyn Accumulator>],
    columns: &[ArrayRef],
    slots: &Int64Array,
    keep: Option<&BooleanArray>,
) -> Result<()> {
    let kept;
    let slots = match keep {
        Some(k) => {
            kept = arrow_select::filter::filter(slots, k).map_err(arrow(name))?;
            kept.as_primitive::<arrow_array::types::Int64Type>()
        }
        None => slots,
    };
    let mut k = 0;
    for (spec, acc) in specs.iter().zip(accs.iter_mut()) {
        if spec.udaf.is_none() {
            continue;
        }
        let column = columns.get(k).ok_or_else(|| {
            EngineError::Execution(format!(
                "{name}: {} answer columns for more aggregate functions",
                columns.len()
            ))
        })?;
        acc.as_external()
            .expect("checked when the request was built")
            .stage(column, slots)?;
        k += 1;
    }
    Ok(())
}
