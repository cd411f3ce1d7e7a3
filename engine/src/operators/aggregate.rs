//! `GROUP BY` without a window: an updating changelog in streaming mode, final rows in
//! batch mode. The aggregation core here is shared with the window aggregate.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int8Array, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use weir_metrics::MetricGroup;

use crate::error::Result;
use crate::expr::{bind, AggFunc, Expr};
use crate::stream::{RowKind, StreamBatch};
use crate::udf::Evaluated;

use super::state::{new_accumulator, Accumulator, GroupTable};
use super::udaf::{build_fire_request, build_request, request_layout, stage_answer, UdafCall};
use super::{arrow, metric, Operator};

/// One aggregate of an aggregating operator, planned.
#[derive(Clone, Debug)]
pub struct AggSpec {
    pub func: AggFunc,
    /// Evaluated on the input; `None` for `COUNT(*)`.
    pub arg: Option<Expr>,
    pub distinct: bool,
    /// Output column name and type.
    pub name: String,
    pub output_type: DataType,
    /// The call of a user-defined aggregate function (`func` is [`AggFunc::Udf`]).
    pub udaf: Option<UdafCall>,
}

/// Keys, accumulators and how to turn groups into output columns; shared by both operators.
pub(super) struct AggCore {
    pub(super) name: String,
    pub(super) keys: Vec<Expr>,
    pub(super) key_converter: RowConverter,
    pub(super) specs: Vec<AggSpec>,
    pub(super) accs: Vec<Box<dyn Accumulator>>,
    /// Whether input rows may be retractions (then signs are always passed).
    pub(super) updating_input: bool,
    pub(super) size: usize,
    /// With user-defined aggregates: the schema of the requests their runner evaluates.
    request_schema: Option<SchemaRef>,
    /// Pandas aggregates: evaluated when groups complete, not per batch.
    at_fire: bool,
    /// The request in flight is a fire request (no batch waits for it).
    firing: bool,
    /// The slots of the request in flight (its rows' groups).
    requested: Option<Vec<u32>>,
    /// Which rows of the requested batch the runner kept (`python.udf.on-error=skip`).
    kept: Option<arrow_array::BooleanArray>,
}

impl AggCore {
    pub(super) fn new(
        name: &str,
        input: &Schema,
        keys: Vec<Expr>,
        specs: Vec<AggSpec>,
        updating_input: bool,
    ) -> Result<Self> {
        let mut fields = Vec::new();
        for k in &keys {
            fields.push(SortField::new(k.data_type(input)?));
        }
        let mut accs = Vec::new();
        for s in &specs {
            let t = s.arg.as_ref().map(|a| a.data_type(input)).transpose()?;
            accs.push(new_accumulator(
                s.func,
                t.as_ref(),
                &s.output_type,
                s.distinct,
            )?);
        }
        let at_fire = specs.iter().any(|s| {
            s.udaf
                .as_ref()
                .is_some_and(|u| u.udf.kind == crate::udf::FunctionKind::VectorizedAggregate)
        });
        let request_schema = if specs.iter().any(|s| s.udaf.is_some()) {
            Some(request_layout(input, &specs)?.0)
        } else {
            None
        };
        let keys = keys.iter().map(|k| bind(k, input)).collect::<Result<_>>()?;
        let specs = specs
            .into_iter()
            .map(|mut s| {
                s.arg = s.arg.map(|a| bind(&a, input)).transpose()?;
                if let Some(u) = &mut s.udaf {
                    u.args = u
                        .args
                        .iter()
                        .map(|a| bind(a, input))
                        .collect::<Result<_>>()?;
                }
                Ok(s)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            name: name.to_string(),
            keys,
            key_converter: RowConverter::new(fields).map_err(arrow(name))?,
            specs,
            accs,
            updating_input,
            size: 0,
            at_fire,
            firing: false,
            request_schema,
            requested: None,
            kept: None,
        })
    }

    /// Whether batches need a request to a function runner first.
    pub(super) fn has_requests(&self) -> bool {
        self.request_schema.is_some() && !self.at_fire
    }

    /// The request that evaluates pandas aggregates over the complete `groups`, if any.
    pub(super) fn fire_request(&mut self, groups: &[u32]) -> Result<Option<RecordBatch>> {
        let Some(schema) = self.request_schema.clone().filter(|_| self.at_fire) else {
            return Ok(None);
        };
        let Some((req, slots)) =
            build_fire_request(&self.name, &schema, &self.specs, &mut self.accs, groups)?
        else {
            return Ok(None);
        };
        self.requested = Some(slots);
        self.firing = true;
        Ok(Some(req))
    }

    /// Makes the answers of user-defined aggregates the groups' state (before groups are
    /// emitted; a batch's update does it too).
    pub(super) fn commit_external(&mut self) {
        for a in &mut self.accs {
            if let Some(e) = a.as_external() {
                e.commit();
            }
        }
    }

    /// The request for user-defined aggregates of `data` whose rows are in `groups` (signs:
    /// retractions), if there are any (see [`super::udaf`]).
    pub(super) fn request(
        &mut self,
        data: &RecordBatch,
        signs: Option<&[i8]>,
        groups: Vec<u32>,
    ) -> Result<Option<RecordBatch>> {
        let Some(schema) = self.request_schema.clone() else {
            return Ok(None);
        };
        let req = build_request(
            &self.name,
            &schema,
            &self.specs,
            &mut self.accs,
            data,
            &groups,
            signs,
        )?;
        self.requested = Some(groups);
        Ok(Some(req))
    }

    /// Stages the answer to [`AggCore::request`]; the next update makes it state.
    pub(super) fn on_evaluated(&mut self, answer: Evaluated) -> Result<()> {
        let groups = self.requested.as_ref().ok_or_else(|| {
            crate::error::EngineError::Execution(format!(
                "{}: an answer without a request",
                self.name
            ))
        })?;
        let slots = arrow_array::Int64Array::from_iter_values(groups.iter().map(|g| i64::from(*g)));
        stage_answer(
            &self.name,
            &self.specs,
            &mut self.accs,
            &answer.columns,
            &slots,
            answer.keep.as_ref(),
        )?;
        self.kept = answer.keep;
        if std::mem::take(&mut self.firing) {
            // No batch waits for this answer: its groups are emitted next.
            self.requested = None;
            self.kept = None;
        }
        Ok(())
    }

    /// The groups of the batch that was requested and which of its rows the runner kept
    /// (`None`: all); the caller removes the others from the batch.
    pub(super) fn take_requested(
        &mut self,
    ) -> Option<(Vec<u32>, Option<arrow_array::BooleanArray>)> {
        let groups = self.requested.take()?;
        let kept = self.kept.take();
        Some(match kept {
            None => (groups, None),
            Some(k) => {
                let groups = groups
                    .iter()
                    .zip(k.iter())
                    .filter(|(_, keep)| keep.unwrap_or(false))
                    .map(|(g, _)| *g)
                    .collect();
                (groups, Some(k))
            }
        })
    }

    pub(super) fn key_rows(&self, batch: &RecordBatch) -> Result<KeyRows> {
        if self.keys.is_empty() {
            return Ok(KeyRows::None);
        }
        let cols = self
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyRows::Rows(
            self.key_converter
                .convert_columns(&cols)
                .map_err(arrow(&self.name))?,
        ))
    }

    pub(super) fn grow(&mut self, capacity: usize) {
        if capacity > self.size {
            let n = capacity.next_power_of_two().max(64);
            for a in &mut self.accs {
                a.resize(n);
            }
            self.size = n;
        }
    }

    pub(super) fn signs(&self, batch: &StreamBatch) -> Option<Vec<i8>> {
        if !self.updating_input {
            return None;
        }
        Some(
            (0..batch.num_rows())
                .map(|i| match batch.kind(i) {
                    RowKind::Insert | RowKind::UpdateAfter => 1,
                    RowKind::UpdateBefore | RowKind::Delete => -1,
                })
                .collect(),
        )
    }

    pub(super) fn update(
        &mut self,
        batch: &RecordBatch,
        groups: &[u32],
        signs: Option<&[i8]>,
    ) -> Result<()> {
        for (spec, acc) in self.specs.iter().zip(self.accs.iter_mut()) {
            let v = match &spec.arg {
                Some(a) => Some(a.evaluate(batch)?.into_array(batch.num_rows())?),
                None => None,
            };
            acc.update(v.as_ref(), groups, signs)?;
        }
        Ok(())
    }

    /// Key columns of these encoded keys.
    pub(super) fn key_columns(&self, keys: &[&[u8]]) -> Result<Vec<ArrayRef>> {
        if self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let parser = self.key_converter.parser();
        let rows: Vec<arrow_row::Row<'_>> = keys.iter().map(|k| parser.parse(k)).collect();
        self.key_converter
            .convert_rows(rows)
            .map_err(arrow(&self.name))
    }

    pub(super) fn agg_columns(&self, groups: &[u32]) -> Result<Vec<ArrayRef>> {
        self.accs.iter().map(|a| a.evaluate(groups)).collect()
    }

    pub(super) fn reset(&mut self, g: u32) {
        for a in &mut self.accs {
            a.reset(g);
        }
    }
}

/// Encoded group keys of a batch (no keys: every row in the one group).
pub(super) enum KeyRows {
    Rows(arrow_row::Rows),
    None,
}

impl KeyRows {
    #[inline]
    pub(super) fn row(&self, i: usize) -> &[u8] {
        match self {
            KeyRows::Rows(r) => r.row(i).data(),
            KeyRows::None => &[],
        }
    }
}

/// Output fields: keys (named), then the aggregates.
pub(super) fn agg_fields(
    input: &Schema,
    keys: &[(Expr, String)],
    specs: &[AggSpec],
) -> Result<Vec<Field>> {
    let mut fields = Vec::new();
    for (k, n) in keys {
        fields.push(Field::new(n, k.data_type(input)?, true));
    }
    for s in specs {
        fields.push(Field::new(&s.name, s.output_type.clone(), true));
    }
    Ok(fields)
}

/// `GROUP BY keys` with aggregates, no window. Streaming mode emits a changelog per batch of
/// input: `+I` for a new group, `-U`/`+U` when its result changes (nothing when it does not),
/// `-D` when retractions empty it. Batch mode emits each group once, at the end.
pub struct GroupAggregate {
    core: AggCore,
    schema: SchemaRef,
    groups: GroupTable,
    rows: Vec<i64>,
    emitted: Vec<bool>,
    batch_mode: bool,
    out_converter: RowConverter,
    state_keys: Option<weir_metrics::Gauge>,
}

impl GroupAggregate {
    /// Plans the operator over `input`.
    pub fn new(
        name: &str,
        input: &Schema,
        keys: Vec<(Expr, String)>,
        specs: Vec<AggSpec>,
        updating_input: bool,
        batch_mode: bool,
    ) -> Result<Self> {
        let fields = agg_fields(input, &keys, &specs)?;
        let out_converter = RowConverter::new(
            fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .map_err(arrow(name))?;
        let core = AggCore::new(
            name,
            input,
            keys.into_iter().map(|(e, _)| e).collect(),
            specs,
            updating_input,
        )?;
        Ok(Self {
            core,
            schema: Arc::new(Schema::new(fields)),
            groups: GroupTable::default(),
            rows: Vec::new(),
            emitted: Vec::new(),
            batch_mode,
            out_converter,
            state_keys: None,
        })
    }

    /// The groups with rows.
    fn live_groups(&self) -> Vec<u32> {
        (0..self.groups.capacity() as u32)
            .filter(|g| self.rows.get(*g as usize).is_some_and(|r| *r > 0))
            .collect()
    }

    /// The group of each row, interned; state grown to hold them.
    fn assign(&mut self, data: &RecordBatch) -> Result<Vec<u32>> {
        let rows = self.core.key_rows(data)?;
        let ids: Vec<u32> = (0..data.num_rows())
            .map(|i| self.groups.intern(rows.row(i)).0)
            .collect();
        let cap = self.groups.capacity();
        self.core.grow(cap);
        if self.rows.len() < cap {
            self.rows.resize(cap, 0);
            self.emitted.resize(cap, false);
        }
        Ok(ids)
    }

    fn output(&self, groups: &[u32]) -> Result<RecordBatch> {
        let keys: Vec<&[u8]> = groups.iter().map(|g| self.groups.key(*g)).collect();
        let mut cols = self.core.key_columns(&keys)?;
        cols.extend(self.core.agg_columns(groups)?);
        RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.core.name))
    }
}

impl Operator for GroupAggregate {
    fn name(&self) -> &str {
        &self.core.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, metrics: &MetricGroup) -> Result<()> {
        self.state_keys = Some(metric(
            &self.core.name,
            metrics.gauge_with_help("state_keys", "Keys held in the operator's state"),
        )?);
        Ok(())
    }

    fn request(&mut self, _input: usize, batch: &StreamBatch) -> Result<Option<RecordBatch>> {
        if !self.core.has_requests() {
            return Ok(None);
        }
        let ids = self.assign(&batch.data)?;
        let signs = self.core.signs(batch);
        self.core.request(&batch.data, signs.as_deref(), ids)
    }

    fn on_evaluated(&mut self, answer: Evaluated) -> Result<()> {
        self.core.on_evaluated(answer)
    }

    fn fire_request(&mut self, wm: Option<i64>) -> Result<Option<RecordBatch>> {
        // Groups are complete only at the end of a batch job.
        if !self.batch_mode || wm.is_some() {
            return Ok(None);
        }
        let live = self.live_groups();
        self.core.fire_request(&live)
    }

    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let (batch, ids) = match self.core.take_requested() {
            Some((ids, None)) => (batch, ids),
            Some((ids, Some(kept))) => (batch.filter(&kept)?, ids),
            None => {
                let ids = self.assign(&batch.data)?;
                (batch, ids)
            }
        };
        let mut touched = Vec::new();
        let cap = self.groups.capacity();
        // Groups touched by this batch, each once, in first-seen order.
        let mut seen = vec![false; cap];
        for g in &ids {
            if !std::mem::replace(&mut seen[*g as usize], true) {
                touched.push(*g);
            }
        }
        let signs = self.core.signs(&batch);
        let before: Vec<u32> = if self.batch_mode {
            Vec::new()
        } else {
            touched
                .iter()
                .copied()
                .filter(|g| self.emitted[*g as usize])
                .collect()
        };
        let old = if before.is_empty() {
            None
        } else {
            Some(self.output(&before)?)
        };
        self.core.update(&batch.data, &ids, signs.as_deref())?;
        for (i, g) in ids.iter().enumerate() {
            self.rows[*g as usize] += signs.as_ref().map_or(1, |s| s[i] as i64);
        }
        // Groups emptied by retractions are deleted.
        let (alive, dead): (Vec<u32>, Vec<u32>) =
            touched.iter().partition(|g| self.rows[**g as usize] > 0);
        if self.batch_mode {
            for g in dead {
                self.groups.remove(g);
                self.core.reset(g);
                self.rows[g as usize] = 0;
            }
            if let Some(s) = &self.state_keys {
                s.set_i64(self.groups.len() as i64);
            }
            return Ok(());
        }
        let new = if alive.is_empty() {
            None
        } else {
            Some(self.output(&alive)?)
        };
        // Compare old and new results of groups that were emitted before.
        let old_rows = match &old {
            Some(b) => Some(
                self.out_converter
                    .convert_columns(b.columns())
                    .map_err(arrow(&self.core.name))?,
            ),
            None => None,
        };
        let new_rows = match &new {
            Some(b) => Some(
                self.out_converter
                    .convert_columns(b.columns())
                    .map_err(arrow(&self.core.name))?,
            ),
            None => None,
        };
        let old_pos: HashMap<u32, usize> =
            before.iter().enumerate().map(|(i, g)| (*g, i)).collect();
        let new_pos: HashMap<u32, usize> = alive.iter().enumerate().map(|(i, g)| (*g, i)).collect();
        // (source batch 0 = old, 1 = new; row), kind
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut kinds: Vec<i8> = Vec::new();
        for g in &touched {
            let o = old_pos.get(g).copied();
            let nw = new_pos.get(g).copied();
            match (o, nw) {
                (Some(o), Some(nw)) => {
                    let same = match (&old_rows, &new_rows) {
                        (Some(a), Some(b)) => a.row(o) == b.row(nw),
                        _ => false,
                    };
                    if !same {
                        picks.push((0, o));
                        kinds.push(RowKind::UpdateBefore as i8);
                        picks.push((1, nw));
                        kinds.push(RowKind::UpdateAfter as i8);
                    }
                }
                (None, Some(nw)) => {
                    picks.push((1, nw));
                    kinds.push(RowKind::Insert as i8);
                    self.emitted[*g as usize] = true;
                }
                (Some(o), None) => {
                    picks.push((0, o));
                    kinds.push(RowKind::Delete as i8);
                }
                (None, None) => {}
            }
        }
        for g in dead {
            self.groups.remove(g);
            self.core.reset(g);
            self.rows[g as usize] = 0;
            self.emitted[g as usize] = false;
        }
        if let Some(s) = &self.state_keys {
            s.set_i64(self.groups.len() as i64);
        }
        if picks.is_empty() {
            return Ok(());
        }
        let empty = RecordBatch::new_empty(self.schema.clone());
        let sources = [
            old.as_ref().unwrap_or(&empty),
            new.as_ref().unwrap_or(&empty),
        ];
        let cols = (0..self.schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> =
                    sources.iter().map(|b| b.column(c).as_ref()).collect();
                arrow_select::interleave::interleave(&arrays, &picks)
                    .map_err(arrow(&self.core.name))
            })
            .collect::<Result<Vec<_>>>()?;
        let data =
            RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.core.name))?;
        let all_inserts = kinds.iter().all(|k| *k == RowKind::Insert as i8);
        out.push(StreamBatch {
            data,
            kinds: (!all_inserts).then(|| Arc::new(Int8Array::from(kinds))),
        });
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamBatch>) -> Result<()> {
        if !self.batch_mode || self.groups.is_empty() {
            return Ok(());
        }
        self.core.commit_external();
        let live = self.live_groups();
        for chunk in live.chunks(crate::stream::MAX_BATCH_ROWS) {
            out.push(StreamBatch::inserts(self.output(chunk)?));
        }
        Ok(())
    }
}
