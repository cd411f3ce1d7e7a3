//! `UNION ALL`.

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;

use crate::error::Result;
use crate::stream::StreamBatch;

use super::{arrow, Operator};

/// `UNION ALL`: every input's rows, brought to the output's types.
pub struct Union {
    name: String,
    schema: SchemaRef,
}

impl Union {
    pub fn new(name: &str, schema: SchemaRef) -> Self {
        Self {
            name: name.to_string(),
            schema,
        }
    }
}

impl Operator for Union {
    fn name(&self) -> &str {
        &self.name
    }
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()> {
        let cols = batch
            .data
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    arrow_cast::cast(c, f.data_type()).map_err(arrow(&self.name))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let data = RecordBatch::try_new(self.schema.clone(), cols).map_err(arrow(&self.name))?;
        out.push(StreamBatch {
            data,
            kinds: batch.kinds,
        });
        Ok(())
    }
}
