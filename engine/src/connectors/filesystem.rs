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
    "csv.quote-character",
    "csv.escape-character",
    "csv.allow-comments",
    "csv.null-literal",
    "csv.ignore-parse-errors",
    "json.ignore-parse-errors",
    "json.fail-on-missing-field",
    "json.timestamp-format.standard",
    "sink.parallelism",
    "scan.parallelism",
    "source.monitor-interval",
];

/// The format options Flink's `csv` and `json` formats document, as weir reads them.
#[derive(Clone, Debug)]
struct FormatOptions {
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
    /// `csv.allow-comments`: lines starting with `#` are skipped.
    comments: bool,
    /// `csv.null-literal`: this text reads (and writes) as NULL.
    null_literal: Option<String>,
    /// `csv.ignore-parse-errors` / `json.ignore-parse-errors`: a line that does not parse is
    /// skipped (and counted in the log) instead of failing the job.
    ignore_parse_errors: bool,
    /// `json.fail-on-missing-field`: a line without one of the table's fields fails the job.
    fail_on_missing_field: bool,
}

fn one_char(def: &TableDef, key: &str) -> Result<Option<u8>> {
    match def.options.get(key) {
        None => Ok(None),
        Some(d) if d == "\\t" => Ok(Some(b'\t')),
        Some(d) if d.len() == 1 => Ok(Some(d.as_bytes()[0])),
        Some(d) => Err(option_err(
            &def.name,
            key,
            format!("expected one character, found '{d}'"),
        )),
    }
}

fn flag(def: &TableDef, key: &str) -> Result<bool> {
    match def.options.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(option_err(
            &def.name,
            key,
            format!("expected 'true' or 'false', found '{v}'"),
        )),
    }
}

fn format_options(def: &TableDef, format: Format) -> Result<FormatOptions> {
    let prefix = match format {
        Format::Csv => "csv",
        Format::Json => "json",
    };
    if let Some(v) = def.options.get("json.timestamp-format.standard") {
        if !matches!(v.as_str(), "SQL" | "ISO-8601") {
            return Err(option_err(
                &def.name,
                "json.timestamp-format.standard",
                format!("expected 'SQL' or 'ISO-8601', found '{v}' (both are read)"),
            ));
        }
    }
    Ok(FormatOptions {
        delimiter: delimiter_of(def)?,
        quote: one_char(def, "csv.quote-character")?.unwrap_or(b'"'),
        escape: one_char(def, "csv.escape-character")?,
        comments: flag(def, "csv.allow-comments")?,
        null_literal: def.options.get("csv.null-literal").cloned(),
        ignore_parse_errors: flag(def, &format!("{prefix}.ignore-parse-errors"))?,
        fail_on_missing_field: flag(def, "json.fail-on-missing-field")?,
    })
}

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
    format_options(def, format)?;
    check_csv_types(def, format, &*def.schema()?)
}

/// Reads CSV or JSON-lines files: one file, or every file of a directory (hidden files and
/// files starting with `_` or `.` skipped, as Flink does).
pub(crate) struct FileSource {
    name: String,
    files: Vec<PathBuf>,
    format: Format,
    opts: FormatOptions,
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
            opts: format_options(def, format)?,
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
    opts: FormatOptions,
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
            let line_by_line = self.opts.ignore_parse_errors
                || (self.format == Format::Json && self.opts.fail_on_missing_field);
            self.current = Some(match self.format {
                _ if line_by_line => Box::new(LineDecoder {
                    lines: std::io::BufRead::lines(BufReader::new(file)),
                    line: 0,
                    format: self.format,
                    opts: self.opts.clone(),
                    schema: self.schema.clone(),
                    batch,
                    skipped: 0,
                    path: path.clone(),
                    table: self.name.clone(),
                }),
                Format::Csv => Box::new(
                    csv_reader(&self.schema, &self.opts, batch)
                        .map_err(err)?
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

/// A CSV reader with the table's format options.
fn csv_reader(
    schema: &SchemaRef,
    opts: &FormatOptions,
    batch: usize,
) -> std::result::Result<arrow_csv::ReaderBuilder, arrow_schema::ArrowError> {
    let mut b = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_delimiter(opts.delimiter)
        .with_quote(opts.quote)
        .with_batch_size(batch);
    if let Some(e) = opts.escape {
        b = b.with_escape(e);
    }
    if opts.comments {
        b = b.with_comment(b'#');
    }
    if let Some(n) = &opts.null_literal {
        let re = regex::Regex::new(&format!("^{}$", regex::escape(n)))
            .map_err(|e| arrow_schema::ArrowError::ParseError(e.to_string()))?;
        b = b.with_null_regex(re);
    }
    Ok(b)
}

/// Reads a file line by line (a row per line), for `ignore-parse-errors` (a line that does not
/// parse is skipped) and `json.fail-on-missing-field` (each line's fields are checked).
struct LineDecoder {
    lines: std::io::Lines<BufReader<File>>,
    line: u64,
    format: Format,
    opts: FormatOptions,
    schema: SchemaRef,
    batch: usize,
    skipped: u64,
    path: PathBuf,
    table: String,
}

impl LineDecoder {
    fn decode(
        &self,
        text: &str,
        rows: usize,
    ) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
        match self.format {
            Format::Csv => {
                let mut r = csv_reader(&self.schema, &self.opts, rows.max(1))?
                    .build(std::io::Cursor::new(text.as_bytes().to_vec()))?;
                Ok(r.next()
                    .transpose()?
                    .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
            }
            Format::Json => {
                let mut d = arrow_json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(rows.max(1))
                    .build_decoder()?;
                d.decode(text.as_bytes())?;
                Ok(d.flush()?
                    .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
            }
        }
    }

    /// The fields of the table a JSON line lacks.
    fn missing(&self, line: &str) -> Vec<String> {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(m)) => self
                .schema
                .fields()
                .iter()
                .filter(|f| !m.contains_key(f.name()))
                .map(|f| f.name().clone())
                .collect(),
            _ => vec![],
        }
    }

    fn fail(&self, line: u64, what: String) -> arrow_schema::ArrowError {
        arrow_schema::ArrowError::ParseError(format!("line {line}: {what}"))
    }
}

impl Iterator for LineDecoder {
    type Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut chunk: Vec<(u64, String)> = Vec::new();
        while chunk.len() < self.batch {
            let Some(next) = self.lines.next() else {
                break;
            };
            match next {
                Ok(l) => {
                    self.line += 1;
                    let blank = l.trim().is_empty();
                    let comment =
                        self.format == Format::Csv && self.opts.comments && l.starts_with('#');
                    if blank || comment {
                        if chunk.is_empty() {
                            continue;
                        }
                        break;
                    }
                    if self.format == Format::Json && self.opts.fail_on_missing_field {
                        let missing = self.missing(&l);
                        if !missing.is_empty() {
                            if self.opts.ignore_parse_errors {
                                self.skipped += 1;
                                continue;
                            }
                            return Some(Err(self.fail(
                                self.line,
                                format!(
                                    "no field {} (json.fail-on-missing-field)",
                                    missing.join(", ")
                                ),
                            )));
                        }
                    }
                    chunk.push((self.line, l));
                }
                Err(e) => return Some(Err(self.fail(self.line + 1, e.to_string()))),
            }
            if chunk.len() >= self.batch {
                break;
            }
        }
        if chunk.is_empty() {
            if self.skipped > 0 {
                tracing::warn!(
                    "table `{}`: skipped {} line(s) of {} that did not parse (ignore-parse-errors)",
                    self.table,
                    self.skipped,
                    self.path.display()
                );
                self.skipped = 0;
            }
            return None;
        }
        let text: String = chunk.iter().map(|(_, l)| format!("{l}\n")).collect();
        match self.decode(&text, chunk.len()) {
            Ok(b) => Some(Ok(b)),
            Err(e) if !self.opts.ignore_parse_errors => {
                let first = chunk.first().map(|(n, _)| *n).unwrap_or(0);
                Some(Err(self.fail(first, format!("in lines {first}..: {e}"))))
            }
            Err(_) => {
                // One line at a time: keep those that parse.
                let mut good = Vec::new();
                for (_, l) in &chunk {
                    match self.decode(&format!("{l}\n"), 1) {
                        Ok(b) => good.push(b),
                        Err(_) => self.skipped += 1,
                    }
                }
                Some(arrow_select::concat::concat_batches(&self.schema, &good))
            }
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
            opts: self.opts.clone(),
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
    opts: FormatOptions,
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
            opts: format_options(def, format)?,
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
                Some({
                    let mut b = arrow_csv::WriterBuilder::new()
                        .with_header(false)
                        .with_delimiter(self.opts.delimiter)
                        .with_quote(self.opts.quote)
                        .with_timestamp_format("%Y-%m-%d %H:%M:%S%.3f".into());
                    if let Some(n) = &self.opts.null_literal {
                        b = b.with_null(n.clone());
                    }
                    b.build(w)
                }),
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
