//! filesystem: CSV and JSON-lines files or directories, read and written.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::runtime::job::Sink;
use crate::runtime::{SinkFactory, Source, SourceFactory};
use crate::stream::StreamBatch;

use super::{option_err, TableDef};

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
pub(crate) struct FileSource {
    name: String,
    files: Vec<PathBuf>,
    format: Format,
    delimiter: u8,
    schema: SchemaRef,
}

impl FileSource {
    pub(crate) fn new(def: &TableDef, schema: SchemaRef) -> Result<Self> {
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

/// Passes a CSV file's bytes through, following RFC 4180 quoting (`"` opens and closes a
/// quoted field, `""` inside one is a quote), and fails at the end of the file if a quoted
/// field was never closed, naming the line it opened on. The CSV parser would otherwise take
/// the rest of the file as that one field: rows silently lost.
struct QuoteCheck<R> {
    inner: R,
    line: u64,
    quoted_since: Option<u64>,
}

impl<R> QuoteCheck<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            line: 1,
            quoted_since: None,
        }
    }
}

impl<R: std::io::Read> std::io::Read for QuoteCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(line) = self.quoted_since.take() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {line}: a quoted field opens here and is never closed"),
                ));
            }
            return Ok(0);
        }
        for &b in &buf[..n] {
            match b {
                b'"' => {
                    self.quoted_since = match self.quoted_since {
                        Some(_) => None,
                        None => Some(self.line),
                    }
                }
                b'\n' => self.line += 1,
                _ => {}
            }
        }
        Ok(n)
    }
}

/// arrow-csv counts lines from 0; people (and editors) count from 1.
fn csv_lines_from_one(e: arrow_schema::ArrowError) -> arrow_schema::ArrowError {
    use arrow_schema::ArrowError;
    let fix = |m: String| {
        static LINE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let re = LINE.get_or_init(|| regex::Regex::new(r"at line (\d+)").expect("valid regex"));
        re.replace_all(&m, |c: &regex::Captures| {
            let n: u64 = c[1].parse().unwrap_or(0);
            format!("at line {}", n + 1)
        })
        .into_owned()
    };
    match e {
        ArrowError::ParseError(m) => ArrowError::ParseError(fix(m)),
        ArrowError::CsvError(m) => ArrowError::CsvError(fix(m)),
        e => e,
    }
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
            let batch = max_rows.clamp(1, crate::stream::MAX_BATCH_ROWS);
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
                        .build(BufReader::new(QuoteCheck::new(file)))
                        .map_err(err)?
                        .map(|r| r.map_err(csv_lines_from_one)),
                ),
                Format::Json => Box::new(
                    arrow_json::ReaderBuilder::new(self.schema.clone())
                        .with_batch_size(batch)
                        .build(BufReader::new(file))
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
pub(crate) struct FileSink {
    name: String,
    dir: PathBuf,
    format: Format,
    delimiter: u8,
}

impl FileSink {
    pub(crate) fn new(def: &TableDef, schema: SchemaRef) -> Result<Self> {
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
