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
//!
//! A pandas aggregate (a function of a group's whole Series) has no accumulator: the engine
//! buffers its argument rows per group and, when groups are complete (a window fires, a batch
//! job ends), sends them in one request sorted by group, before the operator emits them
//! ([`crate::operators::Operator::fire_request`]). The answer has the value on each group's
//! last row, as for the other kind.

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
    /// A pandas aggregate's argument rows (a ROW of its arguments per row) and their groups,
    /// as they came; groups reset since are dropped before anything else is read or added.
    buffer: Option<RowBuffer>,
}

/// The rows a pandas aggregate has not yet been called on.
#[derive(Default)]
struct RowBuffer {
    chunks: Vec<(Vec<u32>, ArrayRef)>,
    dropped: std::collections::HashSet<u32>,
}

impl RowBuffer {
    fn compact(&mut self, name: &str) -> Result<()> {
        if self.dropped.is_empty() {
            return Ok(());
        }
        let dropped = std::mem::take(&mut self.dropped);
        let mut kept = Vec::with_capacity(self.chunks.len());
        for (groups, values) in self.chunks.drain(..) {
            if !groups.iter().any(|g| dropped.contains(g)) {
                kept.push((groups, values));
                continue;
            }
            let mask: BooleanArray = groups.iter().map(|g| Some(!dropped.contains(g))).collect();
            let values =
                arrow_select::filter::filter(values.as_ref(), &mask).map_err(arrow(name))?;
            let groups: Vec<u32> = groups
                .into_iter()
                .filter(|g| !dropped.contains(g))
                .collect();
            if !groups.is_empty() {
                kept.push((groups, values));
            }
        }
        self.chunks = kept;
        Ok(())
    }

    /// The buffered rows of `groups`, sorted by group (in the order given), and their groups.
    fn rows_of(&mut self, name: &str, groups: &[u32]) -> Result<(Vec<u32>, Option<ArrayRef>)> {
        self.compact(name)?;
        let order: std::collections::HashMap<u32, usize> =
            groups.iter().enumerate().map(|(i, g)| (*g, i)).collect();
        // (rank of the group, chunk, row)
        let mut picks: Vec<(usize, usize, usize)> = Vec::new();
        for (c, (gs, _)) in self.chunks.iter().enumerate() {
            for (r, g) in gs.iter().enumerate() {
                if let Some(rank) = order.get(g) {
                    picks.push((*rank, c, r));
                }
            }
        }
        if picks.is_empty() {
            return Ok((Vec::new(), None));
        }
        picks.sort_by_key(|p| p.0);
        let arrays: Vec<&dyn Array> = self.chunks.iter().map(|(_, v)| v.as_ref()).collect();
        let idx: Vec<(usize, usize)> = picks.iter().map(|p| (p.1, p.2)).collect();
        let rows = arrow_select::interleave::interleave(&arrays, &idx).map_err(arrow(name))?;
        Ok((picks.iter().map(|p| groups[p.0]).collect(), Some(rows)))
    }
}

/// One group's answer: its slot, new accumulator and encoded value.
struct Staged {
    group: u32,
    acc: Option<Box<[u8]>>,
    value: Box<[u8]>,
}

impl ExternalAcc {
    /// The state of an aggregate function returning `output`; `buffered` for a pandas one.
    pub fn new(name: &str, output: &DataType, buffered: bool) -> Result<Self> {
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
            buffer: buffered.then(RowBuffer::default),
        })
    }

    /// Whether this is a pandas aggregate's (its rows are buffered until groups complete).
    pub fn is_buffered(&self) -> bool {
        self.buffer.is_some()
    }

    /// Makes the staged answers the groups' state.
    pub fn commit(&mut self) {
        for Staged { group, acc, value } in self.staged.drain(..) {
            let g = group as usize;
            if g >= self.accs.len() {
                self.accs.resize(g + 1, None);
                self.values.resize(g + 1, None);
            }
            self.accs[g] = acc;
            self.values[g] = Some(value);
        }
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
        values: Option<&ArrayRef>,
        groups: &[u32],
        signs: Option<&[i8]>,
    ) -> Result<()> {
        self.commit();
        if let Some(buffer) = &mut self.buffer {
            if signs.is_some_and(|s| s.iter().any(|x| *x < 0)) {
                return Err(EngineError::Execution(format!(
                    "{}: a pandas aggregate function cannot take retractions; use an \
                     AggregateFunction with retract()",
                    self.name
                )));
            }
            buffer.compact(&self.name)?;
            if let Some(v) = values {
                if !groups.is_empty() {
                    buffer.chunks.push((groups.to_vec(), v.clone()));
                }
            }
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
        if let Some(b) = &mut self.buffer {
            b.dropped.insert(group);
        }
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

/// The request that evaluates pandas aggregates over the complete groups `groups`: their
/// buffered rows, sorted by group (see [`request_layout`]); `None` when there is nothing to
/// evaluate. Returns the request and its slots.
pub(super) fn build_fire_request(
    name: &str,
    schema: &SchemaRef,
    specs: &[AggSpec],
    accs: &mut [Box<dyn Accumulator>],
    groups: &[u32],
) -> Result<Option<(RecordBatch, Vec<u32>)>> {
    if groups.is_empty() {
        return Ok(None);
    }
    let mut slots: Option<Vec<u32>> = None;
    let mut args: Vec<ArrayRef> = Vec::new();
    let mut accs_cols: Vec<ArrayRef> = Vec::new();
    for (spec, acc) in specs.iter().zip(accs.iter_mut()) {
        let Some(u) = &spec.udaf else { continue };
        let ext = acc.as_external().ok_or_else(|| {
            EngineError::Execution(format!("{name}: `{}` has no external state", u.udf.name))
        })?;
        let Some(buffer) = &mut ext.buffer else {
            return Err(EngineError::Execution(format!(
                "{name}: `{}` is not a pandas aggregate but is evaluated with one",
                u.udf.name
            )));
        };
        let (gs, rows) = buffer.rows_of(name, groups)?;
        let Some(rows) = rows else { return Ok(None) };
        // Every pandas aggregate of the operator buffered the same rows in the same order.
        if slots.as_ref().is_some_and(|s| *s != gs) {
            return Err(EngineError::Execution(format!(
                "{name}: the pandas aggregates' buffers disagree"
            )));
        }
        let n = gs.len();
        slots = Some(gs);
        accs_cols.push(arrow_array::new_null_array(&DataType::Binary, n));
        args.extend(rows.as_struct().columns().iter().cloned());
    }
    let Some(slots) = slots else { return Ok(None) };
    let n = slots.len();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|g| i64::from(*g)),
        )),
        Arc::new(BooleanArray::new(
            arrow_buffer::BooleanBuffer::new_unset(n),
            None,
        )),
    ];
    cols.extend(accs_cols);
    cols.extend(args);
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(arrow(name))?;
    Ok(Some((batch, slots)))
}
