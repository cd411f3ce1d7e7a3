//! Group windows (tumbling, hopping and session, on event or processing time, fired by the
//! watermark) and the `TUMBLE`/`HOP` table functions without an aggregate (window assignment).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use weir_metrics::{Counter, MetricGroup};

use crate::error::{EngineError, Result};
use crate::expr::{bind, Expr};
use crate::stream::StreamBatch;

use super::aggregate::{agg_fields, AggCore, AggSpec};
use super::state::GroupTable;
use super::{arrow, metric, Operator};

/// The kinds of group windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size` ms.
    Tumble { size: i64 },
    /// Windows of `size` ms starting every `slide` ms (Flink's HOP / Slide).
    Hop { size: i64, slide: i64 },
    /// Windows that close after `gap` ms without rows, per key.
    Session { gap: i64 },
    /// Windows that start every `size` ms and end every `step` ms within it: `[s, s+step)`,
    /// `[s, s+2 step)` ... `[s, s+size)` (Flink's CUMULATE).
    Cumulate { step: i64, size: i64 },
}

/// Event times are clamped to about ±73 million years so window arithmetic cannot overflow,
/// whatever a time attribute holds.
pub fn clamp_time(t: i64) -> i64 {
    t.clamp(-(1 << 61), 1 << 61)
}

impl WindowKind {
    /// Sizes, slides and gaps must be positive (and below 2^60 ms).
    pub fn validate(&self) -> Result<()> {
        let parts: &[(&str, i64)] = match self {
            WindowKind::Tumble { size } => &[("size", *size)],
            WindowKind::Hop { size, slide } => &[("size", *size), ("slide", *slide)],
            WindowKind::Session { gap } => &[("gap", *gap)],
            WindowKind::Cumulate { step, size } => {
                if *step > 0 && size % step != 0 {
                    return Err(EngineError::Plan {
                        expr: self.describe(),
                        detail: "the max size of a CUMULATE window must be a multiple of its step"
                            .into(),
                    });
                }
                &[("step", *step), ("max size", *size)]
            }
        };
        for (what, v) in parts {
            if *v <= 0 || *v >= 1 << 60 {
                return Err(EngineError::Plan {
                    expr: self.describe(),
                    detail: format!("the window's {what} must be a positive interval, not {v} ms"),
                });
            }
        }
        Ok(())
    }

    /// How Flink's EXPLAIN names it.
    pub fn describe(&self) -> String {
        match self {
            WindowKind::Tumble { size } => format!("TUMBLE(size=[{}])", millis_text(*size)),
            WindowKind::Hop { size, slide } => {
                format!(
                    "HOP(slide=[{}], size=[{}])",
                    millis_text(*slide),
                    millis_text(*size)
                )
            }
            WindowKind::Session { gap } => format!("SESSION(gap=[{}])", millis_text(*gap)),
            WindowKind::Cumulate { step, size } => format!(
                "CUMULATE(max_size=[{}], step=[{}])",
                millis_text(*size),
                millis_text(*step)
            ),
        }
    }

    /// The (start, end) of every window a row of time `t` is in, oldest start first (tumbling,
    /// hopping and cumulating windows).
    pub fn windows_of(&self, t: i64) -> Vec<(i64, i64)> {
        match *self {
            WindowKind::Tumble { size } => {
                let s = t - t.rem_euclid(size);
                vec![(s, s + size)]
            }
            WindowKind::Hop { size, slide } => {
                let mut out = Vec::new();
                let mut start = t - t.rem_euclid(slide);
                while start > t - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
                out
            }
            WindowKind::Cumulate { step, size } => {
                let s = t - t.rem_euclid(size);
                // The first end after t, then every step to the max size.
                let first = s + (t - s) / step * step + step;
                (0..)
                    .map(|k| first + k * step)
                    .take_while(|e| *e <= s + size)
                    .map(|e| (s, e))
                    .collect()
            }
            WindowKind::Session { .. } => vec![],
        }
    }

    /// The start of the window that ends at `end` (tumbling, hopping, cumulating).
    pub fn start_of(&self, end: i64) -> i64 {
        match *self {
            WindowKind::Tumble { size } | WindowKind::Hop { size, .. } => end - size,
            WindowKind::Cumulate { size, .. } => (end - 1) - (end - 1).rem_euclid(size),
            WindowKind::Session { .. } => end,
        }
    }
}

fn millis_text(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// Converts a timestamp column to milliseconds since the epoch.
pub fn millis_of(a: &ArrayRef, context: &str) -> Result<Int64Array> {
    let t = match a.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => a.clone(),
        DataType::Timestamp(_, tz) => {
            arrow_cast::cast(a, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))
                .map_err(arrow(context))?
        }
        DataType::Int64 => {
            return Ok(a
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .unwrap_or_else(|| Int64Array::new_null(a.len())))
        }
        other => {
            return Err(EngineError::Execution(format!(
                "{context}: the time attribute must be a TIMESTAMP, not {}",
                crate::types::type_name(other)
            )))
        }
    };
    let data = t.to_data();
    let data = data
        .into_builder()
        .data_type(DataType::Int64)
        .build()
        .map_err(arrow(context))?;
    Ok(Int64Array::from(data))
}

struct Session {
    start: i64,
    end: i64,
    slot: u32,
}

/// A group-window aggregate. Output: keys, `window_start`, `window_end`, `window_time`
/// (TIMESTAMP(3); `window_time` is `window_end - 1 ms`, the rowtime of the result), then the
/// aggregates. A window fires when the watermark reaches its last millisecond; rows for
/// windows that have fired are late: dropped and counted.
pub struct WindowAggregate {
    core: AggCore,
    schema: SchemaRef,
    kind: WindowKind,
    time: Expr,
    proctime: bool,
    /// Tumble/hop: key = window start (8 bytes) + group key.
    groups: GroupTable,
    /// Window end -> groups in it.
    pending: BTreeMap<i64, Vec<u32>>,
    /// Session windows: group key -> its open sessions; slots come from `slots`.
    sessions: HashMap<Box<[u8]>, Vec<Session>, foldhash::fast::FixedState>,
    session_key: Vec<Box<[u8]>>,
    free_slots: Vec<u32>,
    watermark: i64,
    late: Option<Counter>,
    state_keys: Option<weir_metrics::Gauge>,
    /// The rows of the batch whose request is in flight (user-defined aggregates).
    requested_rows: Option<RecordBatch>,
}

impl WindowAggregate {
    /// Plans the operator: `time` is the time attribute (evaluated on input rows; ignored for
    /// processing time, where the clock is used).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        input: &Schema,
        kind: WindowKind,
        time: Expr,
        proctime: bool,
        keys: Vec<(Expr, String)>,
        specs: Vec<AggSpec>,
    ) -> Result<Self> {
        kind.validate()?;
        if let (WindowKind::Session { .. }, Some(u)) =
            (kind, specs.iter().find_map(|s| s.udaf.as_ref()))
        {
            return Err(EngineError::Plan {
                expr: u.udf.name.clone(),
                detail: "user-defined aggregate functions run in tumbling and sliding windows; \
                         session windows, which merge accumulators, do not take them yet"
                    .into(),
            });
        }
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let tt = time.data_type(input)?;
        if !matches!(tt, DataType::Timestamp(..)) {
            return Err(EngineError::Plan {
                expr: time.to_string(),
                detail: format!(
                    "a window needs a time attribute of type TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                    crate::types::type_name(&tt)
                ),
            });
        }
        let mut fields = agg_fields(input, &keys, &[])?;
        fields.push(Field::new("window_start", ts.clone(), false));
        fields.push(Field::new("window_end", ts.clone(), false));
        fields.push(Field::new("window_time", ts, false));
        fields.extend(agg_fields(input, &[], &specs)?);
        let core = AggCore::new(
            name,
            input,
            keys.into_iter().map(|(e, _)| e).collect(),
            specs,
            false,
        )?;
        Ok(Self {
            core,
            schema: Arc::new(Schema::new(fields)),
            kind,
            time: bind(&time, input)?,
            proctime,
            groups: GroupTable::default(),
            pending: BTreeMap::new(),
            sessions: HashMap::with_hasher(crate::operators::state::fixed_hasher()),
            session_key: Vec::new(),
            free_slots: Vec::new(),
            watermark: i64::MIN,
            late: None,
            state_keys: None,
            requested_rows: None,
        })
    }

    fn new_slot(&mut self, key: &[u8]) -> u32 {
        match self.free_slots.pop() {
            Some(s) => {
                self.session_key[s as usize] = key.into();
                s
            }
            None => {
                self.session_key.push(key.into());
                (self.session_key.len() - 1) as u32
            }
        }
    }

    fn emit(&mut self, windows: Vec<(i64, i64, u32)>, out: &mut Vec<StreamBatch>) -> Result<()> {
        // (start, end, slot) for tumble/hop (slot = group id) or sessions.
        for chunk in windows.chunks(crate::stream::MAX_BATCH_ROWS) {
            let slots: Vec<u32> = chunk.iter().map(|w| w.2).collect();
            let keys: Vec<&[u8]> = chunk
                .iter()
                .map(|(_, _, s)| match self.kind {
                    WindowKind::Session { .. } => &*self.session_key[*s as usize],
                    _ => &self.groups.key(*s)[8..],
                })
                .collect();
            let mut cols = self.core.key_columns(&keys)?;
            let start = TimestampMillisecondArray::from_iter_values(chunk.iter().map(|w| w.0));
            let end = TimestampMillisecondArray::from_iter_values(chunk.iter().map(|w| w.1));
            let time = TimestampMillisecondArray::from_iter_values(chunk.iter().map(|w| w.1 - 1));
            cols.push(Arc::new(start));
            cols.push(Arc::new(end));
            cols.push(Arc::new(time));
            self.core.commit_external();
            cols.extend(self.core.agg_columns(&slots)?);
            let data =
                RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.core.name))?;
            out.push(StreamBatch::inserts(data));
        }
        for (_, _, s) in &windows {
            self.core.reset(*s);
            match self.kind {
                WindowKind::Session { .. } => {
                    self.session_key[*s as usize] = Box::new([]);
                    self.free_slots.push(*s);
                }
                _ => self.groups.remove(*s),
            }
        }
        Ok(())
    }

    fn fire(&mut self, wm: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        let mut due = Vec::new();
        match self.kind {
            WindowKind::Session { .. } => {
                let mut empty = Vec::new();
                for (k, list) in self.sessions.iter_mut() {
                    list.retain(|s| {
                        if s.end - 1 <= wm {
                            due.push((s.start, s.end, s.slot));
                            false
                        } else {
                            true
                        }
                    });
                    if list.is_empty() {
                        empty.push(k.clone());
                    }
                }
                for k in empty {
                    self.sessions.remove(&k);
                }
                due.sort_by_key(|w| (w.1, w.0, w.2));
            }
            _ => {
                while let Some((&end, _)) = self.pending.first_key_value() {
                    if end - 1 > wm {
                        break;
                    }
                    let (end, groups) = self.pending.pop_first().unwrap_or_default();
                    let start = self.kind.start_of(end);
                    due.extend(groups.into_iter().map(|g| (start, end, g)));
                }
            }
        }
        if !due.is_empty() {
            self.emit(due, out)?;
        }
        self.report_state();
        Ok(())
    }

    fn report_state(&self) {
        if let Some(s) = &self.state_keys {
            let n = match self.kind {
                WindowKind::Session { .. } => self.sessions.values().map(Vec::len).sum(),
                _ => self.groups.len(),
            };
            s.set_i64(n as i64);
        }
    }

    fn process_sessions(&mut self, batch: &RecordBatch, ts: &Int64Array, gap: i64) -> Result<()> {
        let rows = self.core.key_rows(batch)?;
        let mut slots: Vec<u32> = Vec::with_capacity(batch.num_rows());
        let mut take: Vec<u32> = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            if ts.is_null(i) {
                continue;
            }
            let t = clamp_time(ts.value(i));
            if t + gap - 1 <= self.watermark {
                self.count_late(1);
                continue;
            }
            let key = rows.row(i);
            let (start, end) = (t, t + gap);
            let list = self.sessions.entry(key.into()).or_default();
            let overlapping: Vec<usize> = (0..list.len())
                .filter(|j| list[*j].start < end && start < list[*j].end)
                .collect();
            let slot = match overlapping.len() {
                0 => None,
                1 => {
                    let s = &mut list[overlapping[0]];
                    s.start = s.start.min(start);
                    s.end = s.end.max(end);
                    Some(s.slot)
                }
                _ => {
                    // This row bridges sessions: apply what is pending, then merge them.
                    let mut merged: Vec<Session> = Vec::new();
                    for j in overlapping.iter().rev() {
                        merged.push(list.remove(*j));
                    }
                    let keep = merged.iter().map(|s| s.slot).min().unwrap_or(0);
                    let s_start = merged
                        .iter()
                        .map(|s| s.start)
                        .min()
                        .unwrap_or(start)
                        .min(start);
                    let s_end = merged.iter().map(|s| s.end).max().unwrap_or(end).max(end);
                    list.push(Session {
                        start: s_start,
                        end: s_end,
                        slot: keep,
                    });
                    let others: Vec<u32> = merged
                        .iter()
                        .map(|s| s.slot)
                        .filter(|s| *s != keep)
                        .collect();
                    if !take.is_empty() {
                        let idx = arrow_array::UInt32Array::from(std::mem::take(&mut take));
                        let sub = arrow_select::take::take_record_batch(batch, &idx)
                            .map_err(arrow(&self.core.name))?;
                        self.core.update(&sub, &slots, None)?;
                        slots.clear();
                    }
                    for o in others {
                        for a in &mut self.core.accs {
                            a.merge(keep, o);
                            a.reset(o);
                        }
                        self.session_key[o as usize] = Box::new([]);
                        self.free_slots.push(o);
                    }
                    Some(keep)
                }
            };
            let slot = match slot {
                Some(s) => s,
                None => {
                    let s = self.new_slot(key);
                    self.sessions.entry(key.into()).or_default().push(Session {
                        start,
                        end,
                        slot: s,
                    });
                    s
                }
            };
            let cap = self.session_key.len();
            self.core.grow(cap);
            slots.push(slot);
            take.push(i as u32);
        }
        if !take.is_empty() {
            let idx = arrow_array::UInt32Array::from(take);
            let sub = arrow_select::take::take_record_batch(batch, &idx)
                .map_err(arrow(&self.core.name))?;
            self.core.update(&sub, &slots, None)?;
        }
        Ok(())
    }

    fn count_late(&mut self, n: u64) {
        if let Some(c) = &self.late {
            c.inc(n as i64);
        }
    }
}

impl Operator for WindowAggregate {
    fn name(&self) -> &str {
        &self.core.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, metrics: &MetricGroup) -> Result<()> {
        let name = self.core.name.clone();
        self.late = Some(metric(
            &name,
            metrics.counter_with_help(
                "late_records_dropped",
                "Rows dropped because their window had already fired",
            ),
        )?);
        self.state_keys = Some(metric(
            &name,
            metrics.gauge_with_help("state_keys", "Keys held in the operator's state"),
        )?);
        Ok(())
    }

    fn timer_interval(&self) -> Option<std::time::Duration> {
        self.proctime.then(|| std::time::Duration::from_millis(50))
    }

    fn on_timer(&mut self, now_ms: i64, out: &mut Vec<StreamBatch>) -> Result<()> {
        if self.proctime {
            self.watermark = now_ms;
            self.fire(now_ms, out)?;
        }
        Ok(())
    }

    fn process(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        if !batch.is_insert_only() {
            return Err(EngineError::Execution(format!(
                "{}: a window aggregate cannot take updates (its input must be insert-only)",
                self.core.name
            )));
        }
        let data = batch.data;
        let ts = self.times(&data)?;
        if let WindowKind::Session { gap } = self.kind {
            self.process_sessions(&data, &ts, gap)?;
            self.report_state();
            return Ok(());
        }
        let (sub, ids) = match self.core.take_requested() {
            Some((ids, kept)) => {
                let sub = self.requested_rows.take().unwrap_or(data);
                let sub = match kept {
                    Some(k) => arrow_select::filter::filter_record_batch(&sub, &k)
                        .map_err(arrow(&self.core.name))?,
                    None => sub,
                };
                (sub, ids)
            }
            None => match self.assign(data, &ts)? {
                Some(x) => x,
                None => return Ok(()),
            },
        };
        if !ids.is_empty() {
            self.core.update(&sub, &ids, None)?;
        }
        self.report_state();
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, out: &mut Vec<StreamBatch>) -> Result<i64> {
        if self.proctime {
            return Ok(wm);
        }
        if wm > self.watermark {
            self.watermark = wm;
            self.fire(wm, out)?;
        }
        Ok(wm)
    }

    fn finish(&mut self, out: &mut Vec<StreamBatch>) -> Result<()> {
        // End of input fires every window, as Flink's final MAX watermark does.
        self.watermark = i64::MAX;
        self.fire(i64::MAX, out)
    }

    fn request(&mut self, _input: usize, batch: &StreamBatch) -> Result<Option<RecordBatch>> {
        if !self.core.has_requests()
            || !batch.is_insert_only()
            || matches!(self.kind, WindowKind::Session { .. })
        {
            return Ok(None);
        }
        let data = batch.data.clone();
        let ts = self.times(&data)?;
        let Some((sub, ids)) = self.assign(data, &ts)? else {
            return Ok(None);
        };
        if ids.is_empty() {
            return Ok(None);
        }
        let req = self.core.request(&sub, None, ids)?;
        self.requested_rows = Some(sub);
        Ok(req)
    }

    fn on_evaluated(&mut self, answer: crate::udf::Evaluated) -> Result<()> {
        self.core.on_evaluated(answer)
    }

    fn fire_request(&mut self, wm: Option<i64>) -> Result<Option<RecordBatch>> {
        let wm = wm.unwrap_or(i64::MAX);
        if matches!(self.kind, WindowKind::Session { .. })
            || (wm <= self.watermark && wm != i64::MAX)
        {
            return Ok(None);
        }
        let due: Vec<u32> = self
            .pending
            .range(..=wm.saturating_add(1))
            .filter(|(end, _)| **end - 1 <= wm)
            .flat_map(|(_, groups)| groups.iter().copied())
            .collect();
        self.core.fire_request(&due)
    }
}

impl WindowAggregate {
    /// The time of each row (the clock's for processing time), in ms.
    ///
    /// Processing time is never earlier than the last time windows fired for: a row is never
    /// late on the clock (as in Flink, where a processing-time window only fires), also when
    /// the system clock steps back or a row comes in the millisecond its window fired.
    fn times(&self, data: &RecordBatch) -> Result<Int64Array> {
        let n = data.num_rows();
        if self.proctime {
            let now = crate::expr::functions::now_millis().max(self.watermark.saturating_add(1));
            Ok(Int64Array::from(vec![now; n]))
        } else {
            millis_of(&self.time.evaluate(data)?.into_array(n)?, &self.core.name)
        }
    }

    /// Tumbling and hopping windows: the rows to aggregate (a row once per window it is in)
    /// and their groups (window and key); late rows counted and left out.
    fn assign(
        &mut self,
        data: RecordBatch,
        ts: &Int64Array,
    ) -> Result<Option<(RecordBatch, Vec<u32>)>> {
        let n = data.num_rows();
        let rows = self.core.key_rows(&data)?;
        let mut ids: Vec<u32> = Vec::with_capacity(n);
        let mut take: Vec<u32> = Vec::with_capacity(n);
        let mut key = Vec::with_capacity(64);
        let mut late = 0u64;
        for i in 0..n {
            if ts.is_null(i) {
                continue;
            }
            let t = clamp_time(ts.value(i));
            let mut any = false;
            // A window's group: its end (which names it), then the key.
            for (_, end) in self.kind.windows_of(t) {
                if end - 1 > self.watermark {
                    key.clear();
                    key.extend_from_slice(&end.to_be_bytes());
                    key.extend_from_slice(rows.row(i));
                    let (g, new) = self.groups.intern(&key);
                    if new {
                        self.pending.entry(end).or_default().push(g);
                    }
                    ids.push(g);
                    take.push(i as u32);
                    any = true;
                }
            }
            if !any {
                late += 1;
            }
        }
        if late > 0 {
            self.count_late(late);
        }
        self.core.grow(self.groups.capacity());
        if ids.is_empty() {
            return Ok(None);
        }
        if take.len() == n && take.iter().enumerate().all(|(i, t)| *t as usize == i) {
            return Ok(Some((data, ids)));
        }
        let idx = arrow_array::UInt32Array::from(take);
        let sub =
            arrow_select::take::take_record_batch(&data, &idx).map_err(arrow(&self.core.name))?;
        Ok(Some((sub, ids)))
    }
}

/// `window_end` and `window_time` (a hopping window copies the row into every window).
/// The `TUMBLE`/`HOP` table functions on their own: each row gets `window_start`,
/// `window_end` and `window_time` (a hopping window copies the row into every window).
pub struct WindowAssign {
    name: String,
    kind: WindowKind,
    time: Expr,
    schema: SchemaRef,
}

impl WindowAssign {
    pub fn new(name: &str, input: &Schema, kind: WindowKind, time: Expr) -> Result<Self> {
        if let WindowKind::Session { .. } = kind {
            return Err(EngineError::Plan {
                expr: kind.describe(),
                detail: "session windows need an aggregate (GROUP BY SESSION(...) or the Table API's Session window)".into(),
            });
        }
        kind.validate()?;
        time.data_type(input)?;
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_start", ts.clone(), false));
        fields.push(Field::new("window_end", ts.clone(), false));
        fields.push(Field::new("window_time", ts, false));
        Ok(Self {
            name: name.to_string(),
            kind,
            time: bind(&time, input)?,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

impl Operator for WindowAssign {
    fn name(&self) -> &str {
        &self.name
    }
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let n = batch.num_rows();
        let ts = millis_of(&self.time.evaluate(&batch.data)?.into_array(n)?, &self.name)?;
        if let WindowKind::Session { .. } = self.kind {
            return Ok(());
        }
        let (mut idx, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            if ts.is_null(i) {
                continue;
            }
            let t = crate::operators::clamp_time(ts.value(i));
            for (s, e) in self.kind.windows_of(t) {
                idx.push(i as u32);
                starts.push(s);
                ends.push(e);
            }
        }
        let StreamBatch { data, kinds } = batch.take(&UInt32Array::from(idx))?;
        let mut cols = data.columns().to_vec();
        cols.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            starts.iter().copied(),
        )));
        cols.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            ends.iter().copied(),
        )));
        cols.push(Arc::new(TimestampMillisecondArray::from_iter_values(
            ends.iter().map(|e| e - 1),
        )));
        let data = RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.name))?;
        if data.num_rows() > 0 {
            out.push(StreamBatch { data, kinds });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{col, AggFunc};
    use arrow_array::Array;
    use arrow_schema::Field;

    /// A row never arrives late on the clock: after windows fired for a time ahead of the
    /// system clock (the clock stepped back, or a row comes in the millisecond its window
    /// fired), rows go into the next window instead of being dropped.
    #[test]
    fn processing_time_rows_are_never_late() {
        let ts = DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None);
        let schema = Schema::new(vec![Field::new("p", ts, false)]);
        let count = AggSpec {
            func: AggFunc::Count,
            arg: None,
            distinct: false,
            name: "n".into(),
            output_type: DataType::Int64,
            udaf: None,
        };
        let mut op = WindowAggregate::new(
            "w",
            &schema,
            WindowKind::Tumble { size: 100 },
            col("p"),
            true,
            vec![],
            vec![count],
        )
        .unwrap();
        let mut out = Vec::new();
        // Windows fired up to 10 s ahead of the clock.
        op.on_timer(crate::expr::functions::now_millis() + 10_000, &mut out)
            .unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(arrow_array::TimestampMillisecondArray::from(
                vec![1, 2, 3],
            ))],
        )
        .unwrap();
        op.process(StreamBatch::inserts(batch), &mut out).unwrap();
        op.finish(&mut out).unwrap();
        let counted: i64 = out
            .iter()
            .map(|b| {
                let c = b.data.column_by_name("n").unwrap();
                let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
                (0..c.len()).map(|i| c.value(i)).sum::<i64>()
            })
            .sum();
        assert_eq!(counted, 3);
    }
}
