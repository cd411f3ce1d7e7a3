//! Sinks (where rows end) and what a finished job reports. Jobs themselves run as a
//! [`crate::runtime::JobGraph`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Result;
use crate::stream::StreamBatch;

/// Where rows end.
pub trait Sink: Send {
    /// Name shown in metrics and errors.
    fn name(&self) -> &str;
    /// Takes one batch.
    fn write(&mut self, batch: StreamBatch) -> Result<()>;
    /// End of input.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Discards everything (Flink's `blackhole` connector).
pub struct Blackhole;

impl Sink for Blackhole {
    fn name(&self) -> &str {
        "blackhole"
    }
    fn write(&mut self, _batch: StreamBatch) -> Result<()> {
        Ok(())
    }
}

/// Keeps every batch for the caller.
#[derive(Clone, Default)]
pub struct Collect {
    batches: Arc<Mutex<Vec<StreamBatch>>>,
}

impl Collect {
    /// What has arrived so far.
    pub fn batches(&self) -> Vec<StreamBatch> {
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn write(&mut self, batch: StreamBatch) -> Result<()> {
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(batch);
        Ok(())
    }
}

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobSummary {
    pub rows_read: u64,
    pub rows_written: u64,
    pub elapsed: Duration,
}
