//! Top-N and deduplication: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY o) AS rn` filtered by
//! `rn <= N` (or `rn = 1`). Each partition keeps its best N rows in order; a row that enters
//! them pushes the ones after it down a rank (their old rank is retracted, the new one emitted,
//! `-U`/`+U`) and the N+1th out (`-D`), as Flink's rank operator does. `ORDER BY time ASC` with
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

pub struct Rank {
    name: String,
    schema: SchemaRef,
    partition: Vec<Expr>,
    order: Vec<(Expr, SortOptions)>,
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
            limit,
            batch_mode,
            part_conv,
            order_conv,
            row_conv,
            parts: HashMap::with_hasher(super::state::fixed_hasher()),
            seq: 0,
        })
    }

    /// Output schema (for planning).
    pub fn output_schema_now(&self) -> SchemaRef {
        self.schema.clone()
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
            if pos >= self.limit {
                continue;
            }
            self.seq += 1;
            list.insert(pos, (key, self.seq, rows.row(i).as_ref().into()));
            if self.batch_mode {
                list.truncate(self.limit);
                continue;
            }
            // The rows after it move down a rank; the one past the limit leaves.
            for (r, (_, _, row)) in list.iter().enumerate().skip(pos + 1) {
                let old = r as i64;
                if r < self.limit {
                    changes.push((row.clone(), old, RowKind::UpdateBefore));
                    changes.push((row.clone(), old + 1, RowKind::UpdateAfter));
                } else {
                    changes.push((row.clone(), old, RowKind::Delete));
                }
            }
            changes.push((list[pos].2.clone(), pos as i64 + 1, RowKind::Insert));
            list.truncate(self.limit);
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
            for (r, (_, _, row)) in list.iter().enumerate() {
                rows.push((row.clone(), r as i64 + 1, RowKind::Insert));
            }
        }
        self.emit(rows, out)
    }
}
