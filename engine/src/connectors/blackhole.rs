//! blackhole: swallows rows (benchmarks, jobs run for their metrics).

use crate::error::Result;
use crate::runtime::job::{Blackhole, Sink};
use crate::runtime::SinkFactory;

pub(crate) struct BlackholeSink;

impl SinkFactory for BlackholeSink {
    fn name(&self) -> &str {
        "blackhole"
    }
    fn accepts_updates(&self) -> bool {
        true
    }
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(Blackhole))
    }
}
