//! collect: hands rows back to the caller (`execute().collect()`).

use crate::error::Result;
use crate::runtime::job::{Collect, Sink};
use crate::runtime::SinkFactory;

/// Hands rows back to the caller (`execute().collect()`); every subtask adds to one list.
pub struct CollectSink(pub Collect);

impl SinkFactory for CollectSink {
    fn name(&self) -> &str {
        "collect"
    }
    fn accepts_updates(&self) -> bool {
        true
    }
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.0.clone()))
    }
}
