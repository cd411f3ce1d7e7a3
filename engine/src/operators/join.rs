//! The regular streaming join (inner and left outer) on equality keys, with retractions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int8Array, RecordBatch};
use arrow_row::{OwnedRow, RowConverter, SortField};
use arrow_schema::{DataType, Schema, SchemaRef};
use weir_metrics::MetricGroup;

use crate::error::{EngineError, Result};
use crate::expr::{bind, Expr};
use crate::stream::{RowKind, StreamBatch};

use super::{arrow, filter_batch, metric, Operator};

/// Inner or left outer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    LeftOuter,
}

struct Entry {
    /// Identical rows held.
    count: i64,
    /// For left rows of an outer join: right rows they match.
    matches: i64,
}

type Rows = HashMap<Box<[u8]>, Entry, foldhash::fast::FixedState>;

/// A regular streaming equi-join: each side's rows are kept per key; a row joins with what
/// the other side holds for its key. Retractions remove rows and retract their results. A
/// left outer join emits `(left, NULL)` while a left row has no match, and retracts it when
/// one arrives.
pub struct HashJoin {
    name: String,
    kind: JoinKind,
    keys: [Vec<Expr>; 2],
    key_converter: RowConverter,
    converters: [RowConverter; 2],
    /// Per side: join key -> rows (encoded) with that key.
    state: [HashMap<Box<[u8]>, Rows, foldhash::fast::FixedState>; 2],
    null_right: OwnedRow,
    filter: Option<Expr>,
    schema: SchemaRef,
    state_keys: Option<weir_metrics::Gauge>,
    /// Batch mode: rows are only kept while the inputs run; the join is computed once, at the
    /// end, and emitted as inserts (a batch result is final: no `(left, NULL)` row that a later
    /// match retracts).
    batch_mode: bool,
    /// Batch mode, outer join: left rows with a NULL key (they match nothing).
    null_key_left: Vec<Box<[u8]>>,
}

impl HashJoin {
    /// Plans a join of `left` and `right` on pairs of equal keys, with an optional extra
    /// condition on the joined row (inner joins only).
    pub fn new(
        name: &str,
        kind: JoinKind,
        left: &Schema,
        right: &Schema,
        on: Vec<(Expr, Expr)>,
        filter: Option<Expr>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let mut key_types = Vec::new();
        let mut lk = Vec::new();
        let mut rk = Vec::new();
        for (l, r) in on {
            let (lt, rt) = (l.data_type(left)?, r.data_type(right)?);
            let t = if lt == rt {
                lt
            } else if lt.is_numeric() && rt.is_numeric() {
                if lt.is_floating() || rt.is_floating() {
                    DataType::Float64
                } else {
                    DataType::Int64
                }
            } else {
                return Err(EngineError::Plan {
                    expr: format!("{l} = {r}"),
                    detail: format!(
                        "join keys must have one type, not {} and {}",
                        crate::types::type_name(&lt),
                        crate::types::type_name(&rt)
                    ),
                });
            };
            lk.push(l.cast(t.clone()));
            rk.push(r.cast(t.clone()));
            key_types.push(t);
        }
        let conv = |s: &Schema| {
            RowConverter::new(
                s.fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )
            .map_err(arrow(name))
        };
        let right_conv = conv(right)?;
        let nulls: Vec<ArrayRef> = right
            .fields()
            .iter()
            .map(|f| arrow_array::new_null_array(f.data_type(), 1))
            .collect();
        let null_right = right_conv
            .convert_columns(&nulls)
            .map_err(arrow(name))?
            .row(0)
            .owned();
        let bound = |keys: Vec<Expr>, s: &Schema| -> Result<Vec<Expr>> {
            keys.iter().map(|k| bind(k, s)).collect()
        };
        let filter = filter.map(|f| bind(&f, &schema)).transpose()?;
        Ok(Self {
            name: name.to_string(),
            kind,
            keys: [bound(lk, left)?, bound(rk, right)?],
            key_converter: RowConverter::new(
                key_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect(),
            )
            .map_err(arrow(name))?,
            converters: [conv(left)?, right_conv],
            state: [
                HashMap::with_hasher(crate::operators::state::fixed_hasher()),
                HashMap::with_hasher(crate::operators::state::fixed_hasher()),
            ],
            null_right,
            filter,
            schema,
            state_keys: None,
            batch_mode: false,
            null_key_left: Vec::new(),
        })
    }

    /// Computes the join once both inputs have ended (batch mode).
    pub fn in_batch_mode(mut self) -> Self {
        self.batch_mode = true;
        self
    }

    /// Keeps a batch-mode row on its side (retractions remove one).
    fn hold(&mut self, side: usize, key: Box<[u8]>, row: Box<[u8]>, add: bool) {
        let list = self.state[side]
            .entry(key.clone())
            .or_insert_with(|| HashMap::with_hasher(crate::operators::state::fixed_hasher()));
        let e = list.entry(row).or_insert(Entry {
            count: 0,
            matches: 0,
        });
        e.count += if add { 1 } else { -1 };
        list.retain(|_, e| e.count > 0);
        if list.is_empty() {
            self.state[side].remove(&key);
        }
    }

    /// Joined rows (left bytes, right bytes) as one batch of inserts, filtered.
    fn emit(
        &self,
        left_out: &[Box<[u8]>],
        right_out: &[Box<[u8]>],
        kinds: Vec<i8>,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        if kinds.is_empty() {
            return Ok(());
        }
        let lp = self.converters[0].parser();
        let rp = self.converters[1].parser();
        let mut cols = self.converters[0]
            .convert_rows(left_out.iter().map(|b| lp.parse(b)))
            .map_err(arrow(&self.name))?;
        cols.extend(
            self.converters[1]
                .convert_rows(right_out.iter().map(|b| rp.parse(b)))
                .map_err(arrow(&self.name))?,
        );
        let data = RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.name))?;
        let all_inserts = kinds.iter().all(|k| *k == RowKind::Insert as i8);
        let mut b = StreamBatch {
            data,
            kinds: (!all_inserts).then(|| Arc::new(Int8Array::from(kinds))),
        };
        if let Some(f) = &self.filter {
            b = filter_batch(b, f, &self.name)?;
        }
        if b.num_rows() > 0 {
            out.push(b);
        }
        Ok(())
    }
}

impl Operator for HashJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, metrics: &MetricGroup) -> Result<()> {
        self.state_keys = Some(metric(
            &self.name,
            metrics.gauge_with_help("state_keys", "Keys held in the operator's state"),
        )?);
        Ok(())
    }

    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        self.process_input(0, batch, out)
    }

    fn process_input(
        &mut self,
        side: usize,
        batch: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        let side = side.min(1);
        let n = batch.num_rows();
        let key_cols = self.keys[side]
            .iter()
            .map(|k| k.evaluate(&batch.data)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        let keys = self
            .key_converter
            .convert_columns(&key_cols)
            .map_err(arrow(&self.name))?;
        let rows = self.converters[side]
            .convert_columns(batch.data.columns())
            .map_err(arrow(&self.name))?;
        // Output rows as (left bytes, right bytes, kind).
        let mut left_out: Vec<Box<[u8]>> = Vec::new();
        let mut right_out: Vec<Box<[u8]>> = Vec::new();
        let mut kinds: Vec<i8> = Vec::new();
        let null_right: Box<[u8]> = self.null_right.row().as_ref().into();
        let outer = self.kind == JoinKind::LeftOuter;
        if self.batch_mode {
            for i in 0..n {
                let add = matches!(batch.kind(i), RowKind::Insert | RowKind::UpdateAfter);
                let row: Box<[u8]> = rows.row(i).as_ref().into();
                if key_cols.iter().any(|c| c.is_null(i)) {
                    if outer && side == 0 {
                        if add {
                            self.null_key_left.push(row);
                        } else if let Some(p) = self.null_key_left.iter().position(|r| *r == row) {
                            self.null_key_left.swap_remove(p);
                        }
                    }
                    continue;
                }
                self.hold(side, keys.row(i).as_ref().into(), row, add);
            }
            return Ok(());
        }
        for i in 0..n {
            let kind = batch.kind(i);
            let add = matches!(kind, RowKind::Insert | RowKind::UpdateAfter);
            let null_key = key_cols.iter().any(|c| c.is_null(i));
            let key: Box<[u8]> = keys.row(i).as_ref().into();
            let row: Box<[u8]> = rows.row(i).as_ref().into();
            let mut push = |l: &[u8], r: &[u8], k: RowKind| {
                left_out.push(l.into());
                right_out.push(r.into());
                kinds.push(k as i8);
            };
            if null_key {
                // A NULL key matches nothing; an outer join still shows the left row.
                if outer && side == 0 {
                    push(&row, &null_right, kind);
                }
                continue;
            }
            // Rows of the other side with this key.
            let (mine, theirs) = if side == 0 {
                let [a, b] = &mut self.state;
                (a, b)
            } else {
                let [a, b] = &mut self.state;
                (b, a)
            };
            let matched: i64 = theirs
                .get(&key)
                .map_or(0, |v| v.values().map(|e| e.count).sum());
            if side == 0 {
                // A left row.
                match theirs.get(&key) {
                    Some(list) if matched > 0 => {
                        for (r, e) in list {
                            for _ in 0..e.count {
                                push(&row, r, kind);
                            }
                        }
                    }
                    _ => {
                        if outer {
                            push(&row, &null_right, kind);
                        }
                    }
                }
            } else if let Some(list) = theirs.get_mut(&key) {
                // A right row: joins every left row with the key.
                for (l, e) in list.iter_mut() {
                    for _ in 0..e.count {
                        if add {
                            if outer && e.matches == 0 {
                                push(l, &null_right, RowKind::Delete);
                            }
                            push(l, &row, kind);
                        } else {
                            push(l, &row, kind);
                            if outer && e.matches == 1 {
                                push(l, &null_right, RowKind::Insert);
                            }
                        }
                    }
                    e.matches += if add { 1 } else { -1 };
                }
            }
            // Keep (or forget) the row on its own side.
            let list = mine
                .entry(key.clone())
                .or_insert_with(|| HashMap::with_hasher(crate::operators::state::fixed_hasher()));
            match list.get_mut(&row) {
                Some(e) => {
                    e.count += if add { 1 } else { -1 };
                    if e.count <= 0 {
                        list.remove(&row);
                    }
                }
                None if add => {
                    list.insert(
                        row,
                        Entry {
                            count: 1,
                            matches: matched,
                        },
                    );
                }
                None => {}
            }
            if list.is_empty() {
                mine.remove(&key);
            }
        }
        if let Some(g) = &self.state_keys {
            g.set_i64((self.state[0].len() + self.state[1].len()) as i64);
        }
        self.emit(&left_out, &right_out, kinds, out)
    }

    fn finish(&mut self, out: &mut Vec<StreamBatch>) -> Result<()> {
        if !self.batch_mode {
            return Ok(());
        }
        // Every left row with the right rows of its key, or NULLs (outer join).
        let outer = self.kind == JoinKind::LeftOuter;
        let null_right: Box<[u8]> = self.null_right.row().as_ref().into();
        let mut left_out: Vec<Box<[u8]>> = Vec::new();
        let mut right_out: Vec<Box<[u8]>> = Vec::new();
        let mut pending = 0usize;
        let flush = |l: &mut Vec<Box<[u8]>>,
                     r: &mut Vec<Box<[u8]>>,
                     out: &mut Vec<StreamBatch>,
                     this: &Self|
         -> Result<()> {
            let kinds = vec![RowKind::Insert as i8; l.len()];
            this.emit(l, r, kinds, out)?;
            l.clear();
            r.clear();
            Ok(())
        };
        let (left, right) = (&self.state[0], &self.state[1]);
        for (key, rows) in left {
            let matches = right.get(key);
            for (l, e) in rows {
                for _ in 0..e.count {
                    match matches {
                        Some(m) if !m.is_empty() => {
                            for (r, re) in m {
                                for _ in 0..re.count {
                                    left_out.push(l.clone());
                                    right_out.push(r.clone());
                                    pending += 1;
                                }
                            }
                        }
                        _ if outer => {
                            left_out.push(l.clone());
                            right_out.push(null_right.clone());
                            pending += 1;
                        }
                        _ => {}
                    }
                    if pending >= crate::stream::MAX_BATCH_ROWS {
                        flush(&mut left_out, &mut right_out, out, self)?;
                        pending = 0;
                    }
                }
            }
        }
        for l in &self.null_key_left {
            left_out.push(l.clone());
            right_out.push(null_right.clone());
        }
        flush(&mut left_out, &mut right_out, out, self)
    }
}
