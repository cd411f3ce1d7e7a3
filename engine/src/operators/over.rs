//! OVER aggregates: for each row, aggregates over the rows of its partition that precede it in
//! time order (`SUM(x) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT
//! ROW)`), appended to the row. Append-only, as Flink's OVER aggregates.
//!
//! Rows are taken in the order of their time attribute: in streaming mode with event time when
//! the watermark passes them (rows arriving behind the watermark are late and dropped, counted
//! in `late_records_dropped`), with processing time as they arrive, in batch mode all at the end.
//! The frame is `ROWS n PRECEDING` (the row and the n before it), `RANGE t PRECEDING` (the rows
//! whose time is at most t before the row's, its peers of the same time included) or
//! `UNBOUNDED PRECEDING`, always up to the current row. Each partition's aggregates are the
//! engine's accumulators, which the frame updates as it slides (rows leaving it are
//! retracted), so a row costs its frame's changes, not its frame's size.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{Field, Schema, SchemaRef};
use weir_metrics::MetricGroup;

use crate::error::{EngineError, Result};
use crate::expr::{bind, AggFunc, Expr};
use crate::stream::{StreamBatch, MAX_BATCH_ROWS};

use super::state::{new_accumulator, result_type, Accumulator};
use super::{arrow, metric, millis_of, Operator};

/// The frame of an OVER window, always ending at the current row.
#[derive(Clone, Debug, PartialEq)]
pub struct OverFrame {
    /// `ROWS` (counted rows) or `RANGE` (time).
    pub rows: bool,
    /// Rows or milliseconds before the current row; `None`: unbounded.
    pub preceding: Option<i64>,
}

/// One aggregate of an OVER window.
#[derive(Clone, Debug, PartialEq)]
pub struct OverAgg {
    pub func: AggFunc,
    pub arg: Option<Expr>,
    pub name: String,
    /// `LAG(arg, offset, default)`: the value `offset` rows before in the partition (`func`
    /// unused), else `default` (NULL when absent).
    pub lag: Option<(usize, Option<Expr>)>,
    /// With `lag`: `LEAD`, the value `offset` rows after (batch mode only: streaming rows are
    /// emitted before the rows after them come).
    pub lead: bool,
}

/// How rows are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverTime {
    /// By the time column, released by watermarks.
    Event,
    /// By arrival (processing time).
    Processing,
    /// Batch mode: by the ordering column, all at the end.
    Batch,
}

/// Arguments of processed rows still in some partition's frame: a batch of argument columns
/// per processed chunk, referenced by (chunk, row).
struct Held {
    chunks: HashMap<u64, (Vec<ArrayRef>, usize)>,
}

impl Held {
    fn release(&mut self, chunk: u64) {
        if let Some(c) = self.chunks.get_mut(&chunk) {
            c.1 -= 1;
        }
    }

    /// Forgets the chunks no frame holds a row of (after a run: its rows are all added).
    fn collect(&mut self) {
        self.chunks.retain(|_, c| c.1 > 0);
    }
}

pub struct OverAggregate {
    name: String,
    schema: SchemaRef,
    partition: Vec<Expr>,
    order: usize,
    frame: OverFrame,
    time: OverTime,
    args: Vec<Option<Expr>>,
    accs: Vec<Box<dyn Accumulator>>,
    key_converter: Option<RowConverter>,
    slots: HashMap<Box<[u8]>, u32, foldhash::fast::FixedState>,
    /// Per partition slot, the frame's rows (time, chunk, row), oldest first (bounded frames).
    history: Vec<VecDeque<(i64, u64, u32)>>,
    held: Held,
    next_chunk: u64,
    /// Event time and batch mode: rows not processed yet.
    pending: Vec<RecordBatch>,
    watermark: i64,
    late: Option<weir_metrics::Counter>,
    /// Per aggregate: for LAG, (offset, default, per partition slot the last `offset` values).
    lags: Vec<Option<Lag>>,
}

struct Lag {
    offset: usize,
    /// LEAD: `offset` rows after.
    lead: bool,
    default: Option<Expr>,
    seen: HashMap<u32, VecDeque<ArrayRef>>,
}

impl OverAggregate {
    pub fn new(
        name: &str,
        input: &Schema,
        partition: Vec<Expr>,
        order: &str,
        frame: OverFrame,
        aggs: &[OverAgg],
        time: OverTime,
    ) -> Result<Self> {
        let order = input.index_of(order).map_err(|_| EngineError::Plan {
            expr: order.to_string(),
            detail: "an OVER window is ordered by a column of its input".into(),
        })?;
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut accs = Vec::new();
        let mut args = Vec::new();
        let mut lags = Vec::new();
        for a in aggs {
            if a.lead && time != OverTime::Batch {
                return Err(EngineError::Plan {
                    expr: "LEAD".into(),
                    detail: "LEAD needs the rows after each row, which a streaming OVER window has not seen when it emits the row: it runs in batch mode (execution.runtime-mode = batch); LAG runs in both".into(),
                });
            }
            let t = a.arg.as_ref().map(|e| e.data_type(input)).transpose()?;
            let out = match (&a.lag, &t) {
                (Some(_), Some(t)) => t.clone(),
                (Some(_), None) => {
                    return Err(EngineError::Plan {
                        expr: a.name.clone(),
                        detail: "LAG takes a value".into(),
                    })
                }
                (None, _) => {
                    result_type(a.func, t.as_ref()).map_err(|detail| EngineError::Plan {
                        expr: a.name.clone(),
                        detail,
                    })?
                }
            };
            // A LAG keeps a COUNT it never updates: the aggregates stay aligned by position.
            let func = if a.lag.is_some() {
                AggFunc::Count
            } else {
                a.func
            };
            accs.push(new_accumulator(func, t.as_ref(), &out, false)?);
            fields.push(Field::new(&a.name, out, true));
            args.push(a.arg.as_ref().map(|e| bind(e, input)).transpose()?);
            lags.push(match &a.lag {
                None => None,
                Some((offset, default)) => Some(Lag {
                    offset: *offset,
                    lead: a.lead,
                    default: default
                        .as_ref()
                        .map(|d| bind(&d.clone().cast(t.clone().expect("checked")), input))
                        .transpose()?,
                    seen: HashMap::new(),
                }),
            });
        }
        let key_converter = if partition.is_empty() {
            None
        } else {
            let types = partition
                .iter()
                .map(|e| e.data_type(input).map(SortField::new))
                .collect::<Result<Vec<_>>>()?;
            Some(RowConverter::new(types).map_err(arrow(name))?)
        };
        let partition = partition
            .iter()
            .map(|e| bind(e, input))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name: name.to_string(),
            schema: Arc::new(Schema::new(fields)),
            partition,
            order,
            frame,
            time,
            args,
            accs,
            key_converter,
            slots: HashMap::with_hasher(super::state::fixed_hasher()),
            history: Vec::new(),
            held: Held {
                chunks: HashMap::new(),
            },
            next_chunk: 0,
            pending: Vec::new(),
            watermark: i64::MIN,
            late: None,
            lags,
        })
    }

    fn times(&self, data: &RecordBatch) -> Result<Int64Array> {
        if self.time == OverTime::Processing {
            let now = chrono::Utc::now().timestamp_millis();
            return Ok(Int64Array::from(vec![now; data.num_rows()]));
        }
        let a = data.column(self.order);
        if a.data_type().is_integer() {
            let a =
                arrow_cast::cast(a, &arrow_schema::DataType::Int64).map_err(arrow(&self.name))?;
            return Ok(a
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .expect("cast to Int64"));
        }
        millis_of(a, &self.name)
    }

    /// Aggregates `data`'s rows (in any order) and emits them with their values, in time order.
    fn run(&mut self, data: RecordBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let n = data.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = self.times(&data)?;
        // Time order, stable; rows without a time go first (batch mode) or are dropped.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| {
            if times.is_null(i as usize) {
                i64::MIN
            } else {
                times.value(i as usize)
            }
        });
        let idx = UInt32Array::from(order);
        let data = arrow_select::take::take_record_batch(&data, &idx).map_err(arrow(&self.name))?;
        let times = arrow_select::take::take(&times, &idx, None).map_err(arrow(&self.name))?;
        let times = times.as_any().downcast_ref::<Int64Array>().expect("Int64");
        // Partition slots.
        let slots: Vec<u32> = match &self.key_converter {
            None => vec![0; n],
            Some(conv) => {
                let cols = self
                    .partition
                    .iter()
                    .map(|e| e.evaluate(&data)?.into_array(n))
                    .collect::<Result<Vec<_>>>()?;
                let rows = conv.convert_columns(&cols).map_err(arrow(&self.name))?;
                (0..n)
                    .map(|i| {
                        let next = self.slots.len() as u32;
                        *self
                            .slots
                            .entry(rows.row(i).as_ref().into())
                            .or_insert(next)
                    })
                    .collect()
            }
        };
        let groups = slots
            .iter()
            .max()
            .map_or(1, |m| *m as usize + 1)
            .max(self.history.len());
        for a in &mut self.accs {
            a.resize(groups);
        }
        self.history.resize_with(groups, VecDeque::new);
        let args: Vec<Option<ArrayRef>> = self
            .args
            .iter()
            .map(|a| {
                a.as_ref()
                    .map(|e| e.evaluate(&data)?.into_array(n))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        let bounded = self.frame.preceding.is_some();
        let chunk = self.next_chunk;
        self.next_chunk += 1;
        if bounded {
            let cols: Vec<ArrayRef> = args.iter().flatten().cloned().collect();
            self.held.chunks.insert(chunk, (cols, 0));
        }
        let mut values: Vec<Vec<ArrayRef>> = vec![Vec::with_capacity(n); self.accs.len()];
        // LAG values, row by row in time order.
        let mut lagged: Vec<Option<Vec<ArrayRef>>> = Vec::with_capacity(self.lags.len());
        for (k, lag) in self.lags.iter_mut().enumerate() {
            let Some(lag) = lag else {
                lagged.push(None);
                continue;
            };
            let arg = args[k].as_ref().expect("LAG has a value");
            let defaults = match &lag.default {
                Some(d) => d.evaluate(&data)?.into_array(n)?,
                None => arrow_array::new_null_array(arg.data_type(), n),
            };
            let mut out = Vec::with_capacity(n);
            if lag.lead {
                // Batch mode: all rows are here, in order; each partition's positions.
                let mut rows_of: HashMap<u32, Vec<usize>> = HashMap::new();
                let mut pos = Vec::with_capacity(n);
                for (r, &slot) in slots.iter().enumerate() {
                    let list = rows_of.entry(slot).or_default();
                    pos.push(list.len());
                    list.push(r);
                }
                for (r, &slot) in slots.iter().enumerate() {
                    let list = &rows_of[&slot];
                    out.push(
                        match pos[r].checked_add(lag.offset).and_then(|p| list.get(p)) {
                            Some(&later) => arg.slice(later, 1),
                            None => defaults.slice(r, 1),
                        },
                    );
                }
                lagged.push(Some(out));
                continue;
            }
            for (r, &slot) in slots.iter().enumerate() {
                let seen = lag.seen.entry(slot).or_default();
                out.push(if lag.offset == 0 {
                    arg.slice(r, 1)
                } else if seen.len() >= lag.offset {
                    seen[seen.len() - lag.offset].clone()
                } else {
                    defaults.slice(r, 1)
                });
                seen.push_back(arg.slice(r, 1));
                while seen.len() > lag.offset {
                    seen.pop_front();
                }
            }
            lagged.push(Some(out));
        }
        let mut i = 0;
        while i < n {
            // RANGE: rows of one time are peers, added before any of them is evaluated.
            let mut j = i + 1;
            if !self.frame.rows {
                while j < n && times.value(j) == times.value(i) {
                    j += 1;
                }
            }
            let peers = &slots[i..j];
            for (r, &slot) in (i..j).zip(peers) {
                self.add(&args, r, slot, times.value(r), chunk)?;
            }
            for (r, &slot) in (i..j).zip(peers) {
                self.shrink(slot, times.value(r))?;
            }
            for (r, &slot) in (i..j).zip(peers) {
                for (k, a) in self.accs.iter().enumerate() {
                    values[k].push(match &lagged[k] {
                        Some(l) => l[r].clone(),
                        None => a.evaluate(&[slot])?,
                    });
                }
            }
            i = j;
        }
        self.held.collect();
        let mut cols = data.columns().to_vec();
        for v in values {
            let refs: Vec<&dyn Array> = v.iter().map(|a| a.as_ref()).collect();
            cols.push(arrow_select::concat::concat(&refs).map_err(arrow(&self.name))?);
        }
        let all = RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.name))?;
        for off in (0..n).step_by(MAX_BATCH_ROWS) {
            out.push(StreamBatch::inserts(
                all.slice(off, MAX_BATCH_ROWS.min(n - off)),
            ));
        }
        Ok(())
    }

    /// Adds row `r` of the chunk to its partition's aggregates (and frame, if bounded).
    fn add(
        &mut self,
        args: &[Option<ArrayRef>],
        r: usize,
        slot: u32,
        t: i64,
        chunk: u64,
    ) -> Result<()> {
        // A bounded frame retracts rows later: adds are signed so MIN/MAX keep every value.
        let signs: Option<&[i8]> = self.frame.preceding.map(|_| &[1i8][..]);
        for ((a, v), lag) in self.accs.iter_mut().zip(args).zip(&self.lags) {
            if lag.is_some() {
                continue;
            }
            let one = v.as_ref().map(|v| v.slice(r, 1));
            a.update(one.as_ref(), &[slot], signs)?;
        }
        if self.frame.preceding.is_some() {
            self.history[slot as usize].push_back((t, chunk, r as u32));
            if let Some(c) = self.held.chunks.get_mut(&chunk) {
                c.1 += 1;
            }
        }
        Ok(())
    }

    /// Retracts the rows that left `slot`'s frame, now that its newest row has time `t`.
    fn shrink(&mut self, slot: u32, t: i64) -> Result<()> {
        let Some(p) = self.frame.preceding else {
            return Ok(());
        };
        loop {
            let h = &self.history[slot as usize];
            let Some(&(ht, chunk, row)) = h.front() else {
                return Ok(());
            };
            let leaves = if self.frame.rows {
                h.len() as i64 > p.saturating_add(1)
            } else {
                ht < t.saturating_sub(p)
            };
            if !leaves {
                return Ok(());
            }
            self.history[slot as usize].pop_front();
            let (cols, _) = self.held.chunks.get(&chunk).expect("held chunk");
            let mut c = 0;
            for ((a, arg), lag) in self.accs.iter_mut().zip(&self.args).zip(&self.lags) {
                let one = if arg.is_some() {
                    c += 1;
                    Some(cols[c - 1].slice(row as usize, 1))
                } else {
                    None
                };
                if lag.is_none() {
                    a.update(one.as_ref(), &[slot], Some(&[-1]))?;
                }
            }
            self.held.release(chunk);
        }
    }
}

impl Operator for OverAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, metrics: &MetricGroup) -> Result<()> {
        self.late = Some(metric(
            &self.name,
            metrics.counter_with_help(
                "late_records_dropped",
                "Rows dropped because the watermark had passed their time",
            ),
        )?);
        Ok(())
    }

    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        if batch.kinds.is_some() {
            return Err(EngineError::Execution(format!(
                "{}: an OVER aggregate takes only inserted rows",
                self.name
            )));
        }
        match self.time {
            OverTime::Processing => self.run(batch.data, out),
            OverTime::Batch => {
                self.pending.push(batch.data);
                Ok(())
            }
            OverTime::Event => {
                // Rows behind the watermark are late.
                let times = self.times(&batch.data)?;
                let keep: arrow_array::BooleanArray = times
                    .iter()
                    .map(|t| Some(t.is_some_and(|t| t > self.watermark)))
                    .collect();
                let dropped = batch.data.num_rows() - keep.true_count();
                if dropped > 0 {
                    if let Some(c) = &self.late {
                        c.inc(dropped as i64);
                    }
                }
                let kept = arrow_select::filter::filter_record_batch(&batch.data, &keep)
                    .map_err(arrow(&self.name))?;
                if kept.num_rows() > 0 {
                    self.pending.push(kept);
                }
                Ok(())
            }
        }
    }

    fn on_watermark(&mut self, wm: i64, out: &mut Vec<StreamBatch>) -> Result<i64> {
        if self.time != OverTime::Event || wm <= self.watermark {
            return Ok(wm);
        }
        self.watermark = wm;
        let pending = std::mem::take(&mut self.pending);
        let mut ready = Vec::new();
        for b in pending {
            let times = self.times(&b)?;
            let due: arrow_array::BooleanArray = times
                .iter()
                .map(|t| Some(t.is_some_and(|t| t <= wm)))
                .collect();
            let later = arrow_arith::boolean::not(&due).map_err(arrow(&self.name))?;
            let r =
                arrow_select::filter::filter_record_batch(&b, &due).map_err(arrow(&self.name))?;
            let l =
                arrow_select::filter::filter_record_batch(&b, &later).map_err(arrow(&self.name))?;
            if r.num_rows() > 0 {
                ready.push(r);
            }
            if l.num_rows() > 0 {
                self.pending.push(l);
            }
        }
        if !ready.is_empty() {
            let schema = ready[0].schema();
            let all =
                arrow_select::concat::concat_batches(&schema, &ready).map_err(arrow(&self.name))?;
            self.run(all, out)?;
        }
        Ok(wm)
    }

    fn finish(&mut self, out: &mut Vec<StreamBatch>) -> Result<()> {
        // Batch mode: everything; event time: what the last watermark left (input ended).
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        let schema = pending[0].schema();
        let all =
            arrow_select::concat::concat_batches(&schema, &pending).map_err(arrow(&self.name))?;
        self.run(all, out)
    }
}
