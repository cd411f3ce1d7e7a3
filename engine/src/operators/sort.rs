//! `ORDER BY` and `LIMIT` on bounded input.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{SchemaRef, SortOptions};

use crate::error::{EngineError, Result};
use crate::expr::{bind, Expr};
use crate::stream::StreamBatch;

use super::{arrow, Operator};

/// `ORDER BY ... [LIMIT n [OFFSET m]]` on bounded input: sorts everything at the end.
pub struct Sort {
    name: String,
    schema: SchemaRef,
    keys: Vec<(Expr, SortOptions)>,
    limit: Option<usize>,
    offset: usize,
    batches: Vec<RecordBatch>,
}

impl Sort {
    pub fn new(
        name: &str,
        schema: SchemaRef,
        keys: Vec<(Expr, SortOptions)>,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Self> {
        let keys = keys
            .into_iter()
            .map(|(k, o)| Ok((bind(&k, &schema)?, o)))
            .collect::<Result<_>>()?;
        Ok(Self {
            name: name.to_string(),
            schema,
            keys,
            limit,
            offset,
            batches: Vec::new(),
        })
    }
}

impl Operator for Sort {
    fn name(&self) -> &str {
        &self.name
    }
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<()> {
        if !batch.is_insert_only() {
            return Err(EngineError::Execution(format!(
                "{}: ORDER BY cannot take updates",
                self.name
            )));
        }
        self.batches.push(batch.data);
        Ok(())
    }
    fn finish(&mut self, out: &mut Vec<StreamBatch>) -> Result<()> {
        let all = arrow_select::concat::concat_batches(&self.schema, &self.batches)
            .map_err(arrow(&self.name))?;
        self.batches.clear();
        let n = all.num_rows();
        let sorted = if self.keys.is_empty() {
            all
        } else {
            let cols = self
                .keys
                .iter()
                .map(|(k, o)| {
                    Ok(arrow_ord::sort::SortColumn {
                        values: k.evaluate(&all)?.into_array(n)?,
                        options: Some(*o),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let idx =
                arrow_ord::sort::lexsort_to_indices(&cols, None).map_err(arrow(&self.name))?;
            arrow_select::take::take_record_batch(&all, &idx).map_err(arrow(&self.name))?
        };
        let start = self.offset.min(sorted.num_rows());
        let len = self
            .limit
            .unwrap_or(usize::MAX)
            .min(sorted.num_rows() - start);
        let b = sorted.slice(start, len);
        if b.num_rows() > 0 {
            out.push(StreamBatch::inserts(b));
        }
        Ok(())
    }
}

/// `LIMIT n [OFFSET m]` without ORDER BY: passes the first rows, then stops its input.
pub struct Limit {
    name: String,
    schema: SchemaRef,
    skip: usize,
    left: usize,
}

impl Limit {
    pub fn new(name: &str, schema: SchemaRef, limit: usize, offset: usize) -> Self {
        Self {
            name: name.to_string(),
            schema,
            skip: offset,
            left: limit,
        }
    }
}

impl Operator for Limit {
    fn name(&self) -> &str {
        &self.name
    }
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let mut b = batch;
        if self.skip > 0 {
            let s = self.skip.min(b.num_rows());
            self.skip -= s;
            b = slice(&b, s, b.num_rows() - s);
        }
        let take = self.left.min(b.num_rows());
        self.left -= take;
        if take > 0 {
            out.push(slice(&b, 0, take));
        }
        Ok(())
    }
    fn is_done(&self) -> bool {
        self.left == 0
    }
}

fn slice(b: &StreamBatch, offset: usize, len: usize) -> StreamBatch {
    StreamBatch {
        data: b.data.slice(offset, len),
        kinds: b.kinds.as_ref().map(|k| Arc::new(k.slice(offset, len))),
    }
}
