//! Calc: a fused filter and projection, the most common operator.

use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::expr::{bind, Expr};
use crate::stream::StreamBatch;

use super::Operator;

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
            condition: condition.map(|c| bind(&c, input)).transpose()?,
            projections: projections
                .iter()
                .map(|(e, _)| bind(e, input))
                .collect::<Result<_>>()?,
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
            Some(c) => crate::operators::filter_batch(batch, c, &self.name)?,
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

/// Keeps the rows where `cond` is true (with their kinds); NULL counts as false.
pub fn filter_batch(b: StreamBatch, cond: &Expr, context: &str) -> Result<StreamBatch> {
    let mask = cond.evaluate(&b.data)?.into_array(b.num_rows())?;
    let mask = mask
        .as_any()
        .downcast_ref::<arrow_array::BooleanArray>()
        .ok_or_else(|| EngineError::Execution(format!("{context}: condition is not BOOLEAN")))?;
    b.filter(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::col;
    use arrow_schema::DataType;
    use arrow_schema::{Field, Schema};

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
