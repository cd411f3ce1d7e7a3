//! values: in-memory rows (`from_elements`, `VALUES`).

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::Result;
use crate::runtime::{Source, SourceFactory};

/// In-memory rows (`from_elements`, `VALUES`).
pub struct ValuesSource {
    pub name: String,
    pub batches: Vec<RecordBatch>,
    pub schema: SchemaRef,
}

struct ValuesReader(std::vec::IntoIter<RecordBatch>);

impl Source for ValuesReader {
    fn next_batch(&mut self, _max_rows: usize) -> Result<Option<RecordBatch>> {
        Ok(self.0.next())
    }
}

impl SourceFactory for ValuesSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn is_bounded(&self) -> bool {
        true
    }
    fn max_parallelism(&self) -> usize {
        1
    }
    fn create(&self, subtask: usize, _parallelism: usize) -> Result<Box<dyn Source>> {
        let batches = if subtask == 0 {
            self.batches.clone()
        } else {
            Vec::new()
        };
        Ok(Box::new(ValuesReader(batches.into_iter())))
    }
}
