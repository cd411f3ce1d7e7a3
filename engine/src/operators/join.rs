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

/// Inner, left, right or full outer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    LeftOuter,
    RightOuter,
    FullOuter,
}

impl JoinKind {
    /// Whether rows of `side` (0 left, 1 right) without a match are kept, with NULLs.
    pub fn keeps(self, side: usize) -> bool {
        match self {
            JoinKind::Inner => false,
            JoinKind::LeftOuter => side == 0,
            JoinKind::RightOuter => side == 1,
            JoinKind::FullOuter => true,
        }
    }
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
    /// An all-NULL row of each side (what an unmatched row of the other side is joined with).
    nulls: [OwnedRow; 2],
    filter: Option<Expr>,
    schema: SchemaRef,
    state_keys: Option<weir_metrics::Gauge>,
    /// Batch mode: rows are only kept while the inputs run; the join is computed once, at the
    /// end, and emitted as inserts (a batch result is final: no `(left, NULL)` row that a later
    /// match retracts).
    batch_mode: bool,
    /// Batch mode, outer joins: rows of each side with a NULL key (they match nothing).
    null_keys: [Vec<Box<[u8]>>; 2],
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
        let left_conv = conv(left)?;
        let null_row = |s: &Schema, c: &RowConverter| -> Result<OwnedRow> {
            let nulls: Vec<ArrayRef> = s
                .fields()
                .iter()
                .map(|f| arrow_array::new_null_array(f.data_type(), 1))
                .collect();
            Ok(c.convert_columns(&nulls)
                .map_err(arrow(name))?
                .row(0)
                .owned())
        };
        let nulls = [null_row(left, &left_conv)?, null_row(right, &right_conv)?];
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
            converters: [left_conv, right_conv],
            state: [
                HashMap::with_hasher(crate::operators::state::fixed_hasher()),
                HashMap::with_hasher(crate::operators::state::fixed_hasher()),
            ],
            nulls,
            filter,
            schema,
            state_keys: None,
            batch_mode: false,
            null_keys: [Vec::new(), Vec::new()],
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
        let other = 1 - side;
        let keep_mine = self.kind.keeps(side);
        let keep_theirs = self.kind.keeps(other);
        if self.batch_mode {
            for i in 0..n {
                let add = matches!(batch.kind(i), RowKind::Insert | RowKind::UpdateAfter);
                let row: Box<[u8]> = rows.row(i).as_ref().into();
                if key_cols.iter().any(|c| c.is_null(i)) {
                    if keep_mine {
                        let held = &mut self.null_keys[side];
                        if add {
                            held.push(row);
                        } else if let Some(p) = held.iter().position(|r| *r == row) {
                            held.swap_remove(p);
                        }
                    }
                    continue;
                }
                self.hold(side, keys.row(i).as_ref().into(), row, add);
            }
            return Ok(());
        }
        // This side's row, the other side's NULL row.
        let null_theirs: Box<[u8]> = self.nulls[other].row().as_ref().into();
        let null_mine: Box<[u8]> = self.nulls[side].row().as_ref().into();
        for i in 0..n {
            let kind = batch.kind(i);
            let add = matches!(kind, RowKind::Insert | RowKind::UpdateAfter);
            let null_key = key_cols.iter().any(|c| c.is_null(i));
            let key: Box<[u8]> = keys.row(i).as_ref().into();
            let row: Box<[u8]> = rows.row(i).as_ref().into();
            // (mine, theirs) in output order: left columns first.
            let mut push = |mine: &[u8], theirs: &[u8], k: RowKind| {
                let (l, r) = if side == 0 {
                    (mine, theirs)
                } else {
                    (theirs, mine)
                };
                left_out.push(l.into());
                right_out.push(r.into());
                kinds.push(k as i8);
            };
            if null_key {
                // A NULL key matches nothing; an outer join still shows the row.
                if keep_mine {
                    push(&row, &null_theirs, kind);
                }
                continue;
            }
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
            match theirs.get_mut(&key) {
                Some(list) if matched > 0 => {
                    for (t, e) in list.iter_mut() {
                        for _ in 0..e.count {
                            if add {
                                // Their row shown with NULLs until now: retract that first.
                                if keep_theirs && e.matches == 0 {
                                    push(&null_mine, t, RowKind::Delete);
                                }
                                push(&row, t, kind);
                            } else {
                                push(&row, t, kind);
                                if keep_theirs && e.matches == 1 {
                                    push(&null_mine, t, RowKind::Insert);
                                }
                            }
                        }
                        e.matches += if add { 1 } else { -1 };
                    }
                }
                _ => {
                    if keep_mine {
                        push(&row, &null_theirs, kind);
                    }
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
        // Every left row with the right rows of its key, or NULLs (left and full joins); then
        // the right rows no left row matched (right and full joins).
        let null_left: Box<[u8]> = self.nulls[0].row().as_ref().into();
        let null_right: Box<[u8]> = self.nulls[1].row().as_ref().into();
        let mut left_out: Vec<Box<[u8]>> = Vec::new();
        let mut right_out: Vec<Box<[u8]>> = Vec::new();
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
        {
            let mut pairs = |l: &[u8], r: &[u8], out: &mut Vec<StreamBatch>| -> Result<()> {
                left_out.push(l.into());
                right_out.push(r.into());
                if left_out.len() >= crate::stream::MAX_BATCH_ROWS {
                    flush(&mut left_out, &mut right_out, out, self)?;
                }
                Ok(())
            };
            for (key, rows) in left {
                let matches = right.get(key).filter(|m| !m.is_empty());
                for (l, e) in rows {
                    for _ in 0..e.count {
                        match matches {
                            Some(m) => {
                                for (r, re) in m {
                                    for _ in 0..re.count {
                                        pairs(l, r, out)?;
                                    }
                                }
                            }
                            None if self.kind.keeps(0) => pairs(l, &null_right, out)?,
                            None => {}
                        }
                    }
                }
            }
            if self.kind.keeps(1) {
                for (key, rows) in right {
                    if left.get(key).is_some_and(|m| !m.is_empty()) {
                        continue;
                    }
                    for (r, e) in rows {
                        for _ in 0..e.count {
                            pairs(&null_left, r, out)?;
                        }
                    }
                }
            }
            for l in &self.null_keys[0] {
                pairs(l, &null_right, out)?;
            }
            for r in &self.null_keys[1] {
                pairs(&null_left, r, out)?;
            }
        }
        flush(&mut left_out, &mut right_out, out, self)
    }
}
