//! print: rows as Flink prints them (`+I[1, a]`), to stdout, stderr or a buffer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::runtime::job::Sink;
use crate::runtime::SinkFactory;
use crate::stream::{format_row, StreamBatch};

/// Where `print` writes.
#[derive(Clone)]
pub enum PrintTarget {
    Stdout,
    Stderr,
    /// Lines kept in memory (tests, `TableResult.print()` capture).
    Buffer(Arc<Mutex<Vec<String>>>),
}

/// Flink's `print` connector: one line per row with its change kind, `+I[1, a]`, prefixed
/// with `<subtask>> ` when the sink runs in parallel, and the identifier if one is set.
pub struct PrintSink {
    pub name: String,
    pub identifier: Option<String>,
    pub target: PrintTarget,
}

struct PrintWriter {
    prefix: String,
    target: PrintTarget,
}

impl SinkFactory for PrintSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn accepts_updates(&self) -> bool {
        true
    }
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>> {
        let prefix = match (&self.identifier, parallelism > 1) {
            (Some(id), true) => format!("{id}:{}> ", subtask + 1),
            (Some(id), false) => format!("{id}> "),
            (None, true) => format!("{}> ", subtask + 1),
            (None, false) => String::new(),
        };
        Ok(Box::new(PrintWriter {
            prefix,
            target: self.target.clone(),
        }))
    }
}

impl Sink for PrintWriter {
    fn name(&self) -> &str {
        "print"
    }
    fn write(&mut self, batch: StreamBatch) -> Result<()> {
        let mut lines = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            lines.push(format!("{}{}", self.prefix, format_row(&batch, i)?));
        }
        match &self.target {
            PrintTarget::Stdout => {
                let mut o = std::io::stdout().lock();
                for l in lines {
                    let _ = writeln!(o, "{l}");
                }
            }
            PrintTarget::Stderr => {
                let mut o = std::io::stderr().lock();
                for l in lines {
                    let _ = writeln!(o, "{l}");
                }
            }
            PrintTarget::Buffer(b) => b.lock().unwrap_or_else(|p| p.into_inner()).extend(lines),
        }
        Ok(())
    }
}
