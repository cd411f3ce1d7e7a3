//! Connectors: where tables come from and go to. Option names follow Flink's connectors.
//!
//! | connector | source | sink | options |
//! |---|---|---|---|
//! | `datagen` | yes | | `rows-per-second`, `number-of-rows`, `fields.<f>.kind/start/end/min/max/length/max-past` |
//! | `filesystem` | yes | yes | `path` (file or directory), `format` = `csv` or `json`, `csv.field-delimiter`, `csv.ignore-parse-errors`, `json.ignore-parse-errors` |
//! | `print` | | yes | `print-identifier`, `standard-error` |
//! | `blackhole` | | yes | |
//! | values (`from_elements`) | yes | | |
//! | collect (`execute().collect()`) | | yes | |
//!
//! A bad option fails before the job starts, naming the table and the option.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::datagen::Datagen;
use crate::error::{EngineError, Result};
use crate::expr::Expr;
use crate::job::{Blackhole, Collect, Sink};
use crate::runtime::{SinkFactory, Source, SourceFactory};
use crate::stream::{format_row, StreamBatch};

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
        Ok(crate::options::Options::table(&self.name, &self.options)
            .at_least(key, 1)?
            .map(|n| n as usize))
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

struct DatagenSource(Datagen);

impl Source for Datagen {
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        Datagen::next_batch(self, max_rows)
    }
    fn rows_per_second(&self) -> u64 {
        self.rows_per_second
    }
}

impl SourceFactory for DatagenSource {
    fn name(&self) -> &str {
        self.0.table()
    }
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
    fn is_bounded(&self) -> bool {
        self.0.is_bounded()
    }
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.0.split(subtask, parallelism)))
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
        Ok(Box::new(ComputedReader {
            inner: self.inner.create(subtask, parallelism)?,
            columns: self.columns.clone(),
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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Csv,
    Json,
}

fn format_of(def: &TableDef) -> Result<Format> {
    match def.options.get("format").map(String::as_str) {
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        Some(other) => Err(option_err(
            &def.name,
            "format",
            format!("expected 'csv' or 'json', found '{other}'"),
        )),
        None => Err(option_err(
            &def.name,
            "format",
            "the filesystem connector needs a 'format' ('csv' or 'json')",
        )),
    }
}

fn delimiter_of(def: &TableDef) -> Result<u8> {
    match def.options.get("csv.field-delimiter") {
        None => Ok(b','),
        Some(d) if d.len() == 1 => Ok(d.as_bytes()[0]),
        Some(d) if d == "\\t" => Ok(b'\t'),
        Some(d) => Err(option_err(
            &def.name,
            "csv.field-delimiter",
            format!("expected one character, found '{d}'"),
        )),
    }
}

const FS_KEYS: &[&str] = &[
    "path",
    "format",
    "csv.field-delimiter",
    "csv.ignore-parse-errors",
    "json.ignore-parse-errors",
    "sink.parallelism",
    "scan.parallelism",
    "source.monitor-interval",
];

/// A filesystem table's format and path, after checking its keys.
fn filesystem_format_and_path(def: &TableDef) -> Result<(Format, &String)> {
    def.check_keys(FS_KEYS)?;
    let format = format_of(def)?;
    let path = def
        .options
        .get("path")
        .ok_or_else(|| option_err(&def.name, "path", "the filesystem connector needs a 'path'"))?;
    Ok((format, path))
}

/// Checks a filesystem table's keys, format and delimiter.
pub fn check_filesystem_options(def: &TableDef) -> Result<()> {
    let (format, _) = filesystem_format_and_path(def)?;
    delimiter_of(def)?;
    check_csv_types(def, format, &*def.schema()?)
}

/// Reads CSV or JSON-lines files: one file, or every file of a directory (hidden files and
/// files starting with `_` or `.` skipped, as Flink does).
struct FileSource {
    name: String,
    files: Vec<PathBuf>,
    format: Format,
    delimiter: u8,
    schema: SchemaRef,
}

impl FileSource {
    fn new(def: &TableDef, schema: SchemaRef) -> Result<Self> {
        let (format, path) = filesystem_format_and_path(def)?;
        check_csv_types(def, format, &schema)?;
        let p = Path::new(path);
        let files = if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| option_err(&def.name, "path", format!("cannot list '{path}': {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && !f
                            .file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
                })
                .collect();
            v.sort();
            v
        } else if p.is_file() {
            vec![p.to_path_buf()]
        } else {
            return Err(option_err(
                &def.name,
                "path",
                format!("'{path}' does not exist"),
            ));
        };
        Ok(Self {
            name: def.name.clone(),
            files,
            format,
            delimiter: delimiter_of(def)?,
            schema,
        })
    }
}

struct FileReader {
    name: String,
    files: std::vec::IntoIter<PathBuf>,
    current: Option<
        Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>> + Send>,
    >,
    current_path: PathBuf,
    format: Format,
    delimiter: u8,
    schema: SchemaRef,
}

impl Source for FileReader {
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(it) = &mut self.current {
                match it.next() {
                    Some(Ok(b)) => return Ok(Some(b)),
                    Some(Err(e)) => {
                        return Err(EngineError::Execution(format!(
                            "table `{}`: reading {}: {e}",
                            self.name,
                            self.current_path.display()
                        )))
                    }
                    None => self.current = None,
                }
            }
            let Some(path) = self.files.next() else {
                return Ok(None);
            };
            let file = File::open(&path).map_err(|e| {
                EngineError::Execution(format!(
                    "table `{}`: opening {}: {e}",
                    self.name,
                    path.display()
                ))
            })?;
            let reader = BufReader::new(file);
            let batch = max_rows.clamp(1, crate::job::MAX_BATCH_ROWS);
            let err = |e: arrow_schema::ArrowError| {
                EngineError::Execution(format!(
                    "table `{}`: reading {}: {e}",
                    self.name,
                    path.display()
                ))
            };
            self.current = Some(match self.format {
                Format::Csv => Box::new(
                    arrow_csv::ReaderBuilder::new(self.schema.clone())
                        .with_header(false)
                        .with_delimiter(self.delimiter)
                        .with_batch_size(batch)
                        .build(reader)
                        .map_err(err)?,
                ),
                Format::Json => Box::new(
                    arrow_json::ReaderBuilder::new(self.schema.clone())
                        .with_batch_size(batch)
                        .build(reader)
                        .map_err(err)?,
                ),
            });
            self.current_path = path;
        }
    }
}

impl SourceFactory for FileSource {
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
        self.files.len().max(1)
    }
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let files: Vec<PathBuf> = self
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism.max(1) == subtask)
            .map(|(_, f)| f.clone())
            .collect();
        Ok(Box::new(FileReader {
            name: self.name.clone(),
            files: files.into_iter(),
            current: None,
            current_path: PathBuf::new(),
            format: self.format,
            delimiter: self.delimiter,
            schema: self.schema.clone(),
        }))
    }
}

/// Writes CSV or JSON lines into the directory `path`, one file per subtask
/// (`part-<subtask>.csv`).
struct FileSink {
    name: String,
    dir: PathBuf,
    format: Format,
    delimiter: u8,
}

impl FileSink {
    fn new(def: &TableDef, schema: SchemaRef) -> Result<Self> {
        let (format, path) = filesystem_format_and_path(def)?;
        check_csv_types(def, format, &schema)?;
        let dir = PathBuf::from(path);
        if dir.is_file() {
            return Err(option_err(
                &def.name,
                "path",
                format!("'{path}' is a file; a filesystem sink writes into a directory"),
            ));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| option_err(&def.name, "path", format!("cannot create '{path}': {e}")))?;
        Ok(Self {
            name: def.name.clone(),
            dir,
            format,
            delimiter: delimiter_of(def)?,
        })
    }
}

/// CSV has no form for nested values: say so before the job starts, not at the first row.
fn check_csv_types(def: &TableDef, format: Format, schema: &Schema) -> Result<()> {
    if format != Format::Csv {
        return Ok(());
    }
    for f in schema.fields() {
        if matches!(
            f.data_type(),
            DataType::List(_) | DataType::Map(..) | DataType::Struct(_)
        ) {
            return Err(option_err(
                &def.name,
                "format",
                format!(
                    "column `{}` is {}, which CSV cannot hold; use 'format' = 'json'",
                    f.name(),
                    crate::types::type_name(f.data_type())
                ),
            ));
        }
    }
    Ok(())
}

struct FileWriter {
    name: String,
    path: PathBuf,
    csv: Option<arrow_csv::Writer<BufWriter<File>>>,
    json: Option<arrow_json::LineDelimitedWriter<BufWriter<File>>>,
}

impl SinkFactory for FileSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn accepts_updates(&self) -> bool {
        false
    }
    fn create(&self, subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        let ext = match self.format {
            Format::Csv => "csv",
            Format::Json => "json",
        };
        let path = self.dir.join(format!("part-{subtask}.{ext}"));
        let file = File::create(&path).map_err(|e| {
            EngineError::Execution(format!(
                "table `{}`: creating {}: {e}",
                self.name,
                path.display()
            ))
        })?;
        let w = BufWriter::new(file);
        let (csv, json) = match self.format {
            Format::Csv => (
                Some(
                    arrow_csv::WriterBuilder::new()
                        .with_header(false)
                        .with_delimiter(self.delimiter)
                        .with_timestamp_format("%Y-%m-%d %H:%M:%S%.3f".into())
                        .build(w),
                ),
                None,
            ),
            Format::Json => (None, Some(arrow_json::LineDelimitedWriter::new(w))),
        };
        Ok(Box::new(FileWriter {
            name: self.name.clone(),
            path,
            csv,
            json,
        }))
    }
}

impl Sink for FileWriter {
    fn name(&self) -> &str {
        &self.name
    }
    fn write(&mut self, batch: StreamBatch) -> Result<()> {
        let err = |e: arrow_schema::ArrowError| {
            EngineError::Execution(format!(
                "table `{}`: writing {}: {e}",
                self.name,
                self.path.display()
            ))
        };
        if let Some(w) = &mut self.csv {
            w.write(&batch.data).map_err(err)?;
        }
        if let Some(w) = &mut self.json {
            w.write(&batch.data).map_err(err)?;
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        let err = |e: String| {
            EngineError::Execution(format!(
                "table `{}`: writing {}: {e}",
                self.name,
                self.path.display()
            ))
        };
        if let Some(w) = self.csv.take() {
            w.into_inner().flush().map_err(|e| err(e.to_string()))?;
        }
        if let Some(mut w) = self.json.take() {
            w.finish().map_err(|e| err(e.to_string()))?;
            w.into_inner().flush().map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }
}

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

struct BlackholeSink;

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
