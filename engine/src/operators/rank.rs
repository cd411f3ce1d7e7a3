//! Top-N and deduplication: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY o) AS rn` filtered by
//! `rn <= N` (or `rn = 1`). Each partition keeps its best N rows in order; a row that enters
//! them pushes the ones after it down a rank (their old rank is retracted, the new one emitted,
//! `-U`/`+U`) and the N+1th out (`-D`), as Flink's rank operator does. `RANK()` and
//! `DENSE_RANK()` rank ties alike (RANK skips the ranks ties take, DENSE_RANK does not), so a
//! partition keeps every row whose rank is at most N, which may be more than N rows. `ORDER BY time ASC` with
//! `rn = 1` keeps each key's first row (deduplication: later rows change nothing); `DESC` keeps
//! its last. In batch mode the rows are ranked once, at the end, and emitted as inserts.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, Int8Array, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef, SortOptions};

use crate::error::{EngineError, Result};
use crate::expr::{bind, Expr};
use crate::stream::{RowKind, StreamBatch, MAX_BATCH_ROWS};

use super::{arrow, Operator};

/// One ranked row: its ordering key, arrival number (ties keep arrival order) and its bytes.
type Ranked = (Box<[u8]>, u64, Box<[u8]>);

/// How rows are numbered in their partition's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankFunc {
    /// 1, 2, 3, 4: ties in arrival order.
    RowNumber,
    /// 1, 2, 2, 4: ties share a rank, the next rank skips.
    Rank,
    /// 1, 2, 2, 3: ties share a rank, none is skipped.
    DenseRank,
}

impl RankFunc {
    pub fn from_name(upper: &str) -> Option<Self> {
        match upper {
            "ROW_NUMBER" => Some(Self::RowNumber),
            "RANK" => Some(Self::Rank),
            "DENSE_RANK" => Some(Self::DenseRank),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::RowNumber => "ROW_NUMBER",
            Self::Rank => "RANK",
            Self::DenseRank => "DENSE_RANK",
        }
    }

    /// The ranks of a partition's rows in order.
    fn ranks(self, list: &[Ranked]) -> Vec<i64> {
        let mut out = Vec::with_capacity(list.len());
        let mut dense = 0;
        for (i, (key, _, _)) in list.iter().enumerate() {
            let tie = i > 0 && list[i - 1].0 == *key;
            let r = match self {
                Self::RowNumber => i as i64 + 1,
                Self::Rank if tie => out[i - 1],
                Self::Rank => i as i64 + 1,
                Self::DenseRank => {
                    if !tie {
                        dense += 1;
                    }
                    dense
                }
            };
            out.push(r);
        }
        out
    }
}

pub struct Rank {
    name: String,
    schema: SchemaRef,
    partition: Vec<Expr>,
    order: Vec<(Expr, SortOptions)>,
    func: RankFunc,
    limit: usize,
    batch_mode: bool,
    part_conv: Option<RowConverter>,
    order_conv: RowConverter,
    row_conv: RowConverter,
    parts: HashMap<Box<[u8]>, Vec<Ranked>, foldhash::fast::FixedState>,
    seq: u64,
}

impl Rank {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        input: &Schema,
        partition: Vec<Expr>,
        order: Vec<(Expr, SortOptions)>,
        func: RankFunc,
        limit: usize,
        rank_name: &str,
        batch_mode: bool,
    ) -> Result<Self> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(rank_name, DataType::Int64, false));
        let part_conv = if partition.is_empty() {
            None
        } else {
            Some(
                RowConverter::new(
                    partition
                        .iter()
                        .map(|e| e.data_type(input).map(SortField::new))
                        .collect::<Result<Vec<_>>>()?,
                )
                .map_err(arrow(name))?,
            )
        };
        let order_conv = RowConverter::new(
            order
                .iter()
                .map(|(e, o)| {
                    e.data_type(input)
                        .map(|t| SortField::new_with_options(t, *o))
                })
                .collect::<Result<Vec<_>>>()?,
        )
        .map_err(arrow(name))?;
        let row_conv = RowConverter::new(
            input
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .map_err(arrow(name))?;
        Ok(Self {
            name: name.to_string(),
            schema: Arc::new(Schema::new(fields)),
            partition: partition
                .iter()
                .map(|e| bind(e, input))
                .collect::<Result<_>>()?,
            order: order
                .iter()
                .map(|(e, o)| Ok((bind(e, input)?, *o)))
                .collect::<Result<_>>()?,
            func,
            limit,
            batch_mode,
            part_conv,
            order_conv,
            row_conv,
            parts: HashMap::with_hasher(super::state::fixed_hasher()),
            seq: 0,
        })
    }

    /// Rows (bytes), ranks and kinds as one batch.
    fn emit(&self, rows: Vec<(Box<[u8]>, i64, RowKind)>, out: &mut Vec<StreamBatch>) -> Result<()> {
        for chunk in rows.chunks(MAX_BATCH_ROWS) {
            let parser = self.row_conv.parser();
            let mut cols: Vec<ArrayRef> = self
                .row_conv
                .convert_rows(chunk.iter().map(|(r, _, _)| parser.parse(r)))
                .map_err(arrow(&self.name))?;
            cols.push(Arc::new(Int64Array::from_iter_values(
                chunk.iter().map(|(_, n, _)| *n),
            )));
            let data =
                RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.name))?;
            let inserts = chunk.iter().all(|(_, _, k)| *k == RowKind::Insert);
            out.push(StreamBatch {
                data,
                kinds: (!inserts).then(|| {
                    Arc::new(Int8Array::from_iter_values(
                        chunk.iter().map(|(_, _, k)| *k as i8),
                    ))
                }),
            });
        }
        Ok(())
    }
}

impl Operator for Rank {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        if batch.kinds.is_some() {
            return Err(EngineError::Execution(format!(
                "{}: Top-N over an updating input is not supported yet",
                self.name
            )));
        }
        let data = &batch.data;
        let n = data.num_rows();
        let eval = |e: &Expr| e.evaluate(data)?.into_array(n);
        let parts = match &self.part_conv {
            None => None,
            Some(c) => Some(
                c.convert_columns(
                    &self
                        .partition
                        .iter()
                        .map(eval)
                        .collect::<Result<Vec<_>>>()?,
                )
                .map_err(arrow(&self.name))?,
            ),
        };
        let keys = self
            .order_conv
            .convert_columns(
                &self
                    .order
                    .iter()
                    .map(|(e, _)| eval(e))
                    .collect::<Result<Vec<_>>>()?,
            )
            .map_err(arrow(&self.name))?;
        let rows = self
            .row_conv
            .convert_columns(data.columns())
            .map_err(arrow(&self.name))?;
        let mut changes: Vec<(Box<[u8]>, i64, RowKind)> = Vec::new();
        for i in 0..n {
            let part: Box<[u8]> = parts
                .as_ref()
                .map_or(Box::from(&[][..]), |p| p.row(i).as_ref().into());
            let key: Box<[u8]> = keys.row(i).as_ref().into();
            let list = self.parts.entry(part).or_default();
            // After every row of the same key that came before (ties keep arrival order).
            let pos = list.partition_point(|(k, _, _)| k.as_ref() <= key.as_ref());
            if self.func == RankFunc::RowNumber && pos >= self.limit {
                continue;
            }
            self.seq += 1;
            let entry = (key, self.seq, rows.row(i).as_ref().into());
            if self.batch_mode && (self.limit == usize::MAX || self.func == RankFunc::RowNumber) {
                // Ranked once, at the end; a row number past the limit was left out above.
                list.insert(pos, entry);
                list.truncate(self.limit);
                continue;
            }
            let before = if self.batch_mode {
                Vec::new()
            } else {
                self.func.ranks(list)
            };
            list.insert(pos, entry);
            let after = self.func.ranks(list);
            if after[pos] as usize > self.limit {
                // Ranked past the limit: it changes nothing.
                list.remove(pos);
                continue;
            }
            // The rows ranked past the limit now leave; the rest keep or change their rank.
            let keep = after.partition_point(|r| *r as usize <= self.limit);
            if !self.batch_mode {
                for (j, old) in before.iter().enumerate() {
                    let now = if j < pos { j } else { j + 1 };
                    let row = &list[now].2;
                    if now >= keep {
                        changes.push((row.clone(), *old, RowKind::Delete));
                    } else if after[now] != *old {
                        changes.push((row.clone(), *old, RowKind::UpdateBefore));
                        changes.push((row.clone(), after[now], RowKind::UpdateAfter));
                    }
                }
                changes.push((list[pos].2.clone(), after[pos], RowKind::Insert));
            }
            list.truncate(keep);
        }
        if !changes.is_empty() {
            self.emit(changes, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamBatch>) -> Result<()> {
        if !self.batch_mode {
            return Ok(());
        }
        let mut rows = Vec::new();
        for list in self.parts.values() {
            for ((_, _, row), r) in list.iter().zip(self.func.ranks(list)) {
                rows.push((row.clone(), r, RowKind::Insert));
            }
        }
        self.emit(rows, out)
    }
}
