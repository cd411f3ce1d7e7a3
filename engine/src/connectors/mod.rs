//! Connectors: where tables come from and go to. Option names follow Flink's connectors.
//!
//! | connector | source | sink | options |
//! |---|---|---|---|
//! | `datagen` | yes | | `rows-per-second`, `number-of-rows`, `fields.<f>.kind/start/end/min/max/length/max-past` |
//! | `filesystem` | yes | yes | `path` (file or directory), `format` = `csv` or `json`, `csv.field-delimiter`, `csv.quote-character`, `csv.escape-character`, `csv.allow-comments`, `csv.null-literal`, `csv.ignore-parse-errors`, `json.ignore-parse-errors`, `json.fail-on-missing-field`, `json.timestamp-format.standard` |
//! | `print` | | yes | `print-identifier`, `standard-error` |
//! | `blackhole` | | yes | |
//! | values (`from_elements`) | yes | | |
//! | collect (`execute().collect()`) | | yes | |
//!
//! A bad option fails before the job starts, naming the table and the option. One file per
//! connector; this module holds table definitions and what all connectors share.

pub mod blackhole;
pub mod collect;
pub mod datagen;
pub mod filesystem;
pub mod print;
pub mod values;

pub use collect::CollectSink;
pub use filesystem::check_filesystem_options;
pub use print::{PrintSink, PrintTarget};
pub use values::ValuesSource;

use blackhole::BlackholeSink;
use datagen::{Datagen, DatagenSource};
use filesystem::{FileSink, FileSource};

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::runtime::job::Sink;
use crate::runtime::{SinkFactory, Source, SourceFactory};

fn option_err(table: &str, key: &str, detail: impl Into<String>) -> EngineError {
    EngineError::TableOption {
        table: table.into(),
        key: key.into(),
        detail: detail.into(),
    }
}

/// A column of a table: stored, or computed from the stored ones (`ts AS TO_TIMESTAMP(...)`).
#[derive(Clone, Debug)]
pub enum Column {
    Physical(Field),
    Computed(String, Expr),
}

/// A table declared with `CREATE TABLE` (or the Table API's descriptor).
#[derive(Clone, Debug)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<Column>,
    /// The rowtime column and its watermark expression.
    pub watermark: Option<(String, Expr)>,
    pub options: BTreeMap<String, String>,
}

impl TableDef {
    /// Stored columns only.
    pub fn physical_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .filter_map(|c| match c {
                    Column::Physical(f) => Some(f.clone()),
                    Column::Computed(..) => None,
                })
                .collect::<Vec<_>>(),
        ))
    }

    /// Every column, computed ones typed against the stored ones.
    pub fn schema(&self) -> Result<SchemaRef> {
        let physical = self.physical_schema();
        let mut fields = Vec::new();
        for c in &self.columns {
            fields.push(match c {
                Column::Physical(f) => f.clone(),
                Column::Computed(n, e) => Field::new(n, e.data_type(&physical)?, true),
            });
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The processing-time column (`p AS PROCTIME()`), if any.
    pub fn proctime_column(&self) -> Option<String> {
        self.columns.iter().find_map(|c| match c {
            Column::Computed(n, Expr::Call(crate::expr::functions::Func::Proctime, _)) => {
                Some(n.clone())
            }
            _ => None,
        })
    }

    /// A parallelism set on the table (`scan.parallelism` / `sink.parallelism`, as Flink's
    /// connectors take them).
    pub fn parallelism_option(&self, key: &str) -> Result<Option<usize>> {
        crate::options::Options::table(&self.name, &self.options).parallelism(key)
    }

    fn connector(&self) -> Result<&str> {
        self.options
            .get("connector")
            .map(String::as_str)
            .ok_or_else(|| {
                option_err(
                    &self.name,
                    "connector",
                    "every table needs a 'connector' option",
                )
            })
    }

    fn check_keys(&self, allowed: &[&str]) -> Result<()> {
        for k in self.options.keys() {
            if k != "connector" && !allowed.contains(&k.as_str()) {
                return Err(option_err(
                    &self.name,
                    k,
                    format!(
                        "unknown option of the '{}' connector; it takes {}",
                        self.options
                            .get("connector")
                            .map(String::as_str)
                            .unwrap_or("?"),
                        if allowed.is_empty() {
                            "no options".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The source for reading this table.
    pub fn source(&self) -> Result<Arc<dyn SourceFactory>> {
        let physical = self.physical_schema();
        let inner: Arc<dyn SourceFactory> = match self.connector()? {
            "datagen" => Arc::new(DatagenSource(Datagen::new(
                &self.name,
                physical,
                &self.options,
            )?)),
            "filesystem" => Arc::new(FileSource::new(self, physical)?),
            "print" | "blackhole" => {
                return Err(option_err(
                    &self.name,
                    "connector",
                    format!(
                        "the '{}' connector can only be written to",
                        self.options["connector"]
                    ),
                ))
            }
            other => return Err(unknown_connector(&self.name, other)),
        };
        if self
            .columns
            .iter()
            .all(|c| matches!(c, Column::Physical(_)))
        {
            return Ok(inner);
        }
        Ok(Arc::new(ComputedSource {
            inner,
            columns: self.columns.clone(),
            schema: self.schema()?,
        }))
    }

    /// The sink for writing this table.
    pub fn sink(&self) -> Result<Arc<dyn SinkFactory>> {
        let inner = self.sink_inner()?;
        Ok(match self.parallelism_option("sink.parallelism")? {
            None => inner,
            Some(p) => Arc::new(FixedParallelism {
                inner,
                parallelism: p,
            }),
        })
    }

    fn sink_inner(&self) -> Result<Arc<dyn SinkFactory>> {
        let schema = self.schema()?;
        Ok(match self.connector()? {
            "print" => {
                self.check_keys(&["print-identifier", "standard-error", "sink.parallelism"])?;
                let stderr = crate::options::Options::table(&self.name, &self.options)
                    .bool("standard-error")?
                    .unwrap_or(false);
                Arc::new(PrintSink {
                    name: self.name.clone(),
                    identifier: self.options.get("print-identifier").cloned(),
                    target: if stderr {
                        PrintTarget::Stderr
                    } else {
                        PrintTarget::Stdout
                    },
                })
            }
            "blackhole" => {
                self.check_keys(&["sink.parallelism"])?;
                Arc::new(BlackholeSink)
            }
            "filesystem" => Arc::new(FileSink::new(self, schema)?),
            "datagen" => {
                return Err(option_err(
                    &self.name,
                    "connector",
                    "the 'datagen' connector can only be read",
                ))
            }
            other => return Err(unknown_connector(&self.name, other)),
        })
    }
}

fn unknown_connector(table: &str, c: &str) -> EngineError {
    option_err(
        table,
        "connector",
        format!("unknown connector '{c}'; weir has datagen, filesystem, print and blackhole"),
    )
}

/// A sink with the parallelism its table asks for.
struct FixedParallelism {
    inner: Arc<dyn SinkFactory>,
    parallelism: usize,
}

impl SinkFactory for FixedParallelism {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn accepts_updates(&self) -> bool {
        self.inner.accepts_updates()
    }
    fn max_parallelism(&self) -> usize {
        self.inner.max_parallelism()
    }
    fn parallelism(&self) -> Option<usize> {
        Some(self.parallelism)
    }
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>> {
        self.inner.create(subtask, parallelism)
    }
}

/// Adds computed columns to what a source reads.
struct ComputedSource {
    inner: Arc<dyn SourceFactory>,
    columns: Vec<Column>,
    schema: SchemaRef,
}

struct ComputedReader {
    inner: Box<dyn Source>,
    columns: Vec<Column>,
    schema: SchemaRef,
}

impl SourceFactory for ComputedSource {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn is_bounded(&self) -> bool {
        self.inner.is_bounded()
    }
    fn max_parallelism(&self) -> usize {
        self.inner.max_parallelism()
    }
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        // Computed columns are evaluated on the physical columns the connector reads.
        let physical = self.inner.schema();
        let columns = self
            .columns
            .iter()
            .map(|c| match c {
                Column::Computed(n, e) => Ok(Column::Computed(
                    n.clone(),
                    crate::expr::bind(e, &physical)?,
                )),
                other => Ok(other.clone()),
            })
            .collect::<Result<_>>()?;
        Ok(Box::new(ComputedReader {
            inner: self.inner.create(subtask, parallelism)?,
            columns,
            schema: self.schema.clone(),
        }))
    }
}

impl Source for ComputedReader {
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let Some(b) = self.inner.next_batch(max_rows)? else {
            return Ok(None);
        };
        let mut phys = 0;
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            match c {
                Column::Physical(_) => {
                    cols.push(b.column(phys).clone());
                    phys += 1;
                }
                Column::Computed(_, e) => cols.push(e.evaluate(&b)?.into_array(b.num_rows())?),
            }
        }
        RecordBatch::try_new(self.schema.clone(), cols)
            .map(Some)
            .map_err(|source| EngineError::Arrow {
                context: "computed columns".into(),
                source,
            })
    }
    fn rows_per_second(&self) -> u64 {
        self.inner.rows_per_second()
    }
}
