//! Operators: what transforms batches between a source and a sink.

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::stream::StreamBatch;

/// A synchronous operator: each input batch gives zero or more output batches. (Operators
/// that call out of process, such as Python UDF runners, get an asynchronous interface of
/// their own with several batches in flight.)
pub trait Operator: Send {
    /// Name shown in metrics (`operator` label) and errors.
    fn name(&self) -> &str;
    /// Schema of what it emits.
    fn output_schema(&self) -> SchemaRef;
    /// Handles one batch, pushing results to `out`.
    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()>;
    /// Handles one batch of input number `input` (joins and unions have several).
    fn process_input(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        self.process(batch, out)
    }
    /// The watermark of the operator's inputs advanced to `wm` (ms): fire what is due. Returns
    /// the watermark to pass downstream.
    fn on_watermark(&mut self, wm: i64, _out: &mut Vec<StreamBatch>) -> Result<i64> {
        Ok(wm)
    }
    /// How often the operator wants [`Operator::on_timer`] (processing-time windows).
    fn timer_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Processing time reached `now_ms`.
    fn on_timer(&mut self, _now_ms: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
    /// Registers the operator's own metrics (late rows, state size) in its subtask's group.
    fn open(&mut self, _metrics: &weir_metrics::MetricGroup) -> Result<()> {
        Ok(())
    }
    /// End of input: emit what is left.
    fn finish(&mut self, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
    /// Whether the operator wants no more input (a satisfied LIMIT); its inputs are stopped.
    fn is_done(&self) -> bool {
        false
    }
}

/// Registers a metric of an operator, turning a registry error into an engine error.
pub fn metric<T>(
    operator: &str,
    r: std::result::Result<T, weir_metrics::MetricsError>,
) -> Result<T> {
    r.map_err(|e| EngineError::Execution(format!("registering metrics of {operator}: {e}")))
}

/// Filter and projection in one pass (Flink calls it Calc): `SELECT exprs FROM in WHERE cond`.
pub struct Calc {
    name: String,
    condition: Option<Expr>,
    projections: Vec<Expr>,
    schema: SchemaRef,
}

impl Calc {
    /// Plans the operator against `input`: every expression is type-checked here.
    pub fn new(
        name: &str,
        input: &Schema,
        condition: Option<Expr>,
        projections: Vec<(Expr, String)>,
    ) -> Result<Calc> {
        if let Some(c) = &condition {
            let t = c.data_type(input)?;
            if t != arrow_schema::DataType::Boolean {
                return Err(EngineError::Plan {
                    expr: c.to_string(),
                    detail: format!(
                        "a filter condition must be BOOLEAN, not {}",
                        crate::types::type_name(&t)
                    ),
                });
            }
        }
        let mut fields = Vec::with_capacity(projections.len());
        for (e, alias) in &projections {
            if fields.iter().any(|f: &Field| f.name() == alias) {
                return Err(EngineError::Plan {
                    expr: e.to_string(),
                    detail: format!("the output already has a column `{alias}`"),
                });
            }
            fields.push(Field::new(alias, e.data_type(input)?, true));
        }
        Ok(Calc {
            name: name.to_string(),
            condition,
            projections: projections.into_iter().map(|(e, _)| e).collect(),
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

impl Operator for Calc {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let arrow = |context: &str| {
            let context = format!("{}: {context}", self.name);
            move |source| EngineError::Arrow { context, source }
        };
        // NULL counts as false, as in SQL's WHERE.
        let batch = match &self.condition {
            None => batch,
            Some(c) => crate::ops::filter_batch(batch, c, &self.name)?,
        };
        let StreamBatch { data, kinds } = batch;
        if data.num_rows() == 0 {
            return Ok(());
        }
        let columns = self
            .projections
            .iter()
            .map(|p| p.evaluate(&data)?.into_array(data.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        let data =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(arrow("projection"))?;
        out.push(StreamBatch { data, kinds });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::col;
    use arrow_schema::DataType;

    #[test]
    fn calc_refuses_what_cannot_run() {
        let input = Schema::new(vec![Field::new("x", DataType::Int64, false)]);
        let e = Calc::new("calc", &input, Some(col("x") + 1), vec![])
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "expression `(x + 1)`: a filter condition must be BOOLEAN, not BIGINT"
        );
        let e = Calc::new(
            "calc",
            &input,
            None,
            vec![(col("x"), "a".into()), (col("x") * 2, "a".into())],
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            e,
            "expression `(x * 2)`: the output already has a column `a`"
        );
    }
}
