//! SQL: Flink's dialect for what weir runs. Queries go through the `sqlparser` crate; Flink's
//! DDL (`CREATE TABLE ... WATERMARK FOR ... WITH (...)`, `CREATE FUNCTION ... LANGUAGE
//! PYTHON`), which no sqlparser dialect reads, is parsed here, with sqlparser for the
//! expressions inside it.
//!
//! Statements: `CREATE [TEMPORARY] TABLE`, `CREATE [TEMPORARY] VIEW`, `CREATE [TEMPORARY]
//! [SYSTEM] FUNCTION`, `DROP TABLE|VIEW`, `SET 'key' = 'value'`, `SELECT`, `INSERT INTO`,
//! `EXPLAIN`, `SHOW TABLES`, `DESCRIBE`.

mod ddl;
mod query;
mod split;

pub use ddl::parse_create_table;
pub use query::{parse_expressions, resolve_function};
pub use split::split_statements;

use ddl::parse_create_function;
use query::Planner;

use sqlparser::ast as sq;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::error::{EngineError, Result};
use crate::expr::{col, Expr, Literal};
use crate::runtime::JobGraph;
use crate::table::{Table, TableEnvironment};

/// What a statement did.
pub enum SqlOutcome {
    /// DDL or SET: done.
    Ok(String),
    /// A query to run or inspect.
    Query(Table),
    /// `INSERT INTO`: a job to run.
    Insert { sink: String, job: JobGraph },
    /// `EXPLAIN`, `SHOW`, `DESCRIBE`: text.
    Text(String),
    /// `CREATE FUNCTION ... AS 'path' LANGUAGE lang`: for the SDK that can load it.
    CreateFunction {
        name: String,
        path: String,
        language: String,
    },
}

/// A statement as errors quote it: on one line, at most 120 characters.
pub(crate) fn quoted(stmt: &str) -> String {
    let s: String = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 120 {
        format!("{}...", s.chars().take(117).collect::<String>())
    } else {
        s
    }
}

pub(crate) fn sql_err(stmt: &str, detail: impl Into<String>) -> EngineError {
    EngineError::Plan {
        expr: quoted(stmt),
        detail: detail.into(),
    }
}

pub(crate) fn no_table(stmt: &str, detail: impl Into<String>) -> EngineError {
    EngineError::NoSuchTable {
        expr: quoted(stmt),
        detail: detail.into(),
    }
}

pub(crate) fn parse_err(stmt: &str, detail: impl Into<String>) -> EngineError {
    EngineError::Parse {
        expr: quoted(stmt),
        detail: detail.into(),
    }
}

pub(crate) fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .take(6)
        .map(|w| w.to_ascii_uppercase())
        .collect()
}

impl TableEnvironment {
    /// Runs one SQL statement (DDL takes effect at once; queries and inserts are planned).
    /// Parsed and planned on a thread with room for deeply nested input ([`crate::stack`]).
    pub fn execute_sql(&self, stmt: &str) -> Result<SqlOutcome> {
        crate::stack::deep(|| self.execute_sql_here(stmt))
    }

    fn execute_sql_here(&self, stmt: &str) -> Result<SqlOutcome> {
        let stmt = stmt.trim().trim_end_matches(';').trim();
        let w = words(stmt);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        let skip_temp = |i: usize| {
            if w.get(i) == Some(&"TEMPORARY") {
                i + 1
            } else {
                i
            }
        };
        if w.first() == Some(&"CREATE") {
            let mut i = skip_temp(1);
            if w.get(i) == Some(&"SYSTEM") {
                i += 1;
            }
            match w.get(i) {
                Some(&"TABLE") => {
                    let (def, if_not_exists) = parse_create_table(stmt)?;
                    let name = def.name.clone();
                    self.create_table(def, if_not_exists)?;
                    return Ok(SqlOutcome::Ok(format!("created table {name}")));
                }
                Some(&"FUNCTION") => return parse_create_function(stmt),
                Some(&"VIEW") => {}
                _ => return Err(sql_err(stmt, "weir can CREATE TABLE, VIEW or FUNCTION")),
            }
        }
        if w.first() == Some(&"SET") {
            let rest = stmt[3..].trim();
            let (k, v) = rest
                .split_once('=')
                .ok_or_else(|| sql_err(stmt, "SET takes 'key' = 'value'"))?;
            let unq = |s: &str| s.trim().trim_matches('\'').trim_matches('"').to_string();
            self.set_config(&unq(k), &unq(v))?;
            return Ok(SqlOutcome::Ok(format!("set {}", unq(k))));
        }
        if w.len() >= 2 && w[0] == "SHOW" && w[1] == "TABLES" {
            return Ok(SqlOutcome::Text(self.list_tables().join("\n")));
        }
        if w.first() == Some(&"DESCRIBE") || w.first() == Some(&"DESC") {
            let name = stmt
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .trim_matches('`');
            return Ok(SqlOutcome::Text(self.from_path(name)?.schema_text()?));
        }
        if w.first() == Some(&"EXPLAIN") {
            let re = regex::Regex::new(r"(?is)^\s*EXPLAIN(?:\s+PLAN\s+FOR)?\s+(.*)$")
                .expect("valid pattern");
            let rest = re
                .captures(stmt)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str())
                .ok_or_else(|| sql_err(stmt, "EXPLAIN takes a query or an INSERT"))?;
            return Ok(SqlOutcome::Text(
                match self.statement(&parse_one(rest)?, rest)? {
                    Planned::Query(t) => t.explain()?,
                    Planned::Insert { sink, query, job } => format!(
                        "== Logical Plan ==\nSink(table=[{sink}])\n{}\n== Physical Plan ==\n{}",
                        indent(&query.plan().explain()),
                        job.describe()
                    ),
                    Planned::Done(_) => {
                        return Err(sql_err(stmt, "EXPLAIN takes a query or an INSERT"))
                    }
                },
            ));
        }
        if w.first() == Some(&"DROP") {
            let parts: Vec<&str> = stmt.split_whitespace().collect();
            let mut i = skip_temp(1);
            i += 1; // TABLE / VIEW
            let if_exists = w.get(i) == Some(&"IF");
            if if_exists {
                i += 2;
            }
            let name = parts.get(i).map(|s| s.trim_matches('`')).unwrap_or("");
            if !self.drop(name) && !if_exists {
                return Err(no_table(stmt, format!("no table or view `{name}`")));
            }
            return Ok(SqlOutcome::Ok(format!("dropped {name}")));
        }
        Ok(match self.statement(&parse_one(stmt)?, stmt)? {
            Planned::Query(t) => SqlOutcome::Query(t),
            Planned::Insert { sink, job, .. } => SqlOutcome::Insert { sink, job },
            Planned::Done(m) => SqlOutcome::Ok(m),
        })
    }

    /// Plans one statement sqlparser has parsed (`stmt` is its text, for errors).
    fn statement(&self, st: &sq::Statement, stmt: &str) -> Result<Planned> {
        match st {
            sq::Statement::Query(q) => {
                let plan = Planner::new(self).query(q)?;
                Ok(Planned::Query(Table::from_plan(self, plan)))
            }
            sq::Statement::CreateView { name, query, .. } => {
                let plan = Planner::new(self).query(query)?;
                let name = object_name(name);
                self.create_temporary_view(&name, &Table::from_plan(self, plan))?;
                Ok(Planned::Done(format!("created view {name}")))
            }
            sq::Statement::Insert(ins) => {
                let sink = match &ins.table {
                    sq::TableObject::TableName(n) => object_name(n),
                    other => return Err(sql_err(stmt, format!("cannot insert into {other}"))),
                };
                let source = ins
                    .source
                    .as_ref()
                    .ok_or_else(|| sql_err(stmt, "INSERT needs a query"))?;
                let plan = Planner::new(self).query(source)?;
                let mut table = Table::from_plan(self, plan);
                if !ins.columns.is_empty() {
                    // INSERT INTO t (a, b): reorder to the table's columns.
                    let def = self
                        .table_def(&sink)
                        .ok_or_else(|| no_table(stmt, format!("no table `{sink}`")))?;
                    let target = def.schema()?;
                    let given: Vec<String> = ins.columns.iter().map(|c| c.value.clone()).collect();
                    let src = table.schema()?;
                    let mut exprs = Vec::new();
                    for f in target.fields() {
                        match given.iter().position(|g| g == f.name()) {
                            Some(p) => exprs.push(col(src.field(p).name()).alias(f.name())),
                            None => exprs.push(
                                Expr::Literal(Literal::Null)
                                    .cast(f.data_type().clone())
                                    .alias(f.name()),
                            ),
                        }
                    }
                    table = table.select(exprs)?;
                }
                let job = self.plan_insert(&table, &sink)?;
                Ok(Planned::Insert {
                    sink,
                    query: table,
                    job,
                })
            }
            other => Err(sql_err(
                stmt,
                format!(
                    "weir does not run this kind of statement: {}",
                    first_words(&other.to_string())
                ),
            )),
        }
    }

    /// Plans a query (`sql_query`).
    pub fn sql_query(&self, query: &str) -> Result<Table> {
        match self.execute_sql(query)? {
            SqlOutcome::Query(t) => Ok(t),
            _ => Err(sql_err(
                query,
                "sql_query takes a SELECT; use execute_sql for other statements",
            )),
        }
    }
}

pub(crate) fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub(crate) fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// sqlparser's statements of `text`, with room for [`crate::stack::MAX_NESTING`] levels of
/// nesting and an error that says what "recursion limit exceeded" means.
pub(crate) fn parse_statements(text: &str) -> std::result::Result<Vec<sq::Statement>, String> {
    Parser::new(&GenericDialect {})
        .with_recursion_limit(crate::stack::MAX_NESTING)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| match e {
            sqlparser::parser::ParserError::RecursionLimitExceeded => format!(
                "it nests parentheses, subqueries or function calls more than {} levels deep",
                crate::stack::MAX_NESTING
            ),
            e => e.to_string(),
        })
}

/// Parses one statement (after the TABLE(...) rewrite sqlparser needs).
pub(crate) fn parse_one(stmt: &str) -> Result<sq::Statement> {
    let text =
        rewrite_json_object_keys(&rewrite_json_value_clauses(&rewrite_table_functions(stmt)));
    let mut parsed = parse_statements(&text).map_err(|e| parse_err(stmt, e))?;
    match parsed.len() {
        1 => Ok(parsed.remove(0)),
        _ => Err(sql_err(stmt, "expected one statement")),
    }
}

/// What a parsed statement became.
pub(crate) enum Planned {
    Query(Table),
    Insert {
        sink: String,
        /// The query (with the INSERT column list applied), before the casts to the sink.
        query: Table,
        job: JobGraph,
    },
    Done(String),
}

/// `TABLE(TUMBLE(TABLE t, ...))` -> `TABLE(TUMBLE(t, ...))`, which sqlparser reads.
pub(crate) fn rewrite_table_functions(s: &str) -> String {
    let re = regex::Regex::new(r"(?i)([(,]\s*)TABLE\s+").expect("valid pattern");
    re.replace_all(s, "$1").into_owned()
}

/// Flink's `JSON_VALUE(doc, path [RETURNING type] [(NULL | ERROR | DEFAULT e) ON EMPTY]
/// [(NULL | ERROR | DEFAULT e) ON ERROR])`, which sqlparser cannot read, written as the calls
/// weir plans: the behaviours as arguments (see `expr::json`) and `RETURNING t` as
/// `TRY_CAST(... AS t)` (a value that does not convert is NULL, as Flink's default ON ERROR).
/// Quoted text is left alone.
pub(crate) fn rewrite_json_value_clauses(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if matches!(b[i], b'\'' | b'`' | b'"') {
            i = skip_quoted(b, i);
            continue;
        }
        let Some(open) = call_open(b, i, b"JSON_VALUE") else {
            i += 1;
            continue;
        };
        let Some(close) = matching(b, open) else {
            i += 10;
            continue;
        };
        let inner = &s[open + 1..close];
        if let Some(call) = json_value_call(inner) {
            out.push_str(&s[copied..i]);
            out.push_str(&call);
            copied = close + 1;
        }
        i = close + 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// Flink's `JSON_OBJECT(KEY 'k' VALUE v, ...)`: the optional `KEY` before each key, which
/// sqlparser does not read, left out (`JSON_OBJECT('k' VALUE v)` is the same call). Only a
/// top-level `KEY` of a JSON_OBJECT's arguments followed by a quoted key; quoted text is left
/// alone.
pub(crate) fn rewrite_json_object_keys(s: &str) -> String {
    let b = s.as_bytes();
    let mut drop: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'\'' | b'`' | b'"') {
            i = skip_quoted(b, i);
            continue;
        }
        let Some(open) = call_open(b, i, b"JSON_OBJECT") else {
            i += 1;
            continue;
        };
        // Top-level words of the argument list: a KEY right after `(` or `,`.
        let mut depth = 0;
        let mut j = open;
        let mut at_start = false;
        while j < b.len() {
            match b[j] {
                b'\'' | b'`' | b'"' => {
                    at_start = false;
                    j = skip_quoted(b, j);
                    continue;
                }
                b'(' => {
                    depth += 1;
                    at_start = depth == 1;
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b',' if depth == 1 => at_start = true,
                c if c.is_ascii_whitespace() => {}
                _ if depth == 1 && at_start => {
                    at_start = false;
                    let end = j + 3;
                    let next = b[end.min(b.len())..]
                        .iter()
                        .find(|c| !c.is_ascii_whitespace());
                    if end < b.len()
                        && b[j..end].eq_ignore_ascii_case(b"KEY")
                        && b[end].is_ascii_whitespace()
                        && next == Some(&b'\'')
                    {
                        drop.push(j);
                    }
                }
                _ => at_start = false,
            }
            j += 1;
        }
        // Calls nested in this one are found from inside it.
        i = open + 1;
    }
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    for d in drop {
        out.push_str(&s[copied..d]);
        copied = d + 3;
    }
    out.push_str(&s[copied..]);
    out
}

/// If a call of the function `name` starts at `i` (the whole word, any case, then `(` after
/// spaces): the index of its `(`.
fn call_open(b: &[u8], i: usize, name: &[u8]) -> Option<usize> {
    let n = name.len();
    let is_word = b.len() - i >= n
        && b[i..i + n].eq_ignore_ascii_case(name)
        && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
    if !is_word {
        return None;
    }
    let open = i
        + n
        + b[i + n..]
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
    (open < b.len() && b[open] == b'(').then_some(open)
}

/// The index after the quoted text starting at `i` (`''` inside single quotes is a quote).
fn skip_quoted(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == q {
            if q == b'\'' && j + 1 < b.len() && b[j + 1] == b'\'' {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The `)` matching the `(` at `open`, quotes skipped.
fn matching(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut j = open;
    while j < b.len() {
        match b[j] {
            b'\'' | b'`' | b'"' => {
                j = skip_quoted(b, j);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// The rewritten call for a JSON_VALUE's argument text, if it has clauses.
fn json_value_call(inner: &str) -> Option<String> {
    // Where the clauses start: the first top-level RETURNING / NULL ON / ERROR ON / DEFAULT.
    let b = inner.as_bytes();
    let mut depth = 0;
    let mut j = 0;
    let mut start = None;
    while j < b.len() {
        match b[j] {
            b'\'' | b'`' | b'"' => {
                j = skip_quoted(b, j);
                continue;
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            c if depth == 0 && c.is_ascii_whitespace() => {
                let rest = inner[j..].trim_start().to_ascii_uppercase();
                let clause = ["RETURNING ", "NULL ON ", "ERROR ON ", "DEFAULT "]
                    .iter()
                    .any(|k| rest.starts_with(k));
                if clause {
                    start = Some(j);
                    break;
                }
            }
            _ => {}
        }
        j += 1;
    }
    let start = start?;
    let args = inner[..start].trim();
    let clauses = inner[start..].trim();
    let re = regex::Regex::new(
        r"(?is)^(?:RETURNING\s+(?P<t>[A-Za-z_][A-Za-z_0-9]*(?:\s*\([^)]*\))?)\s*)?(?:(?P<e>NULL|ERROR|DEFAULT\s+(?P<ed>.+?))\s+ON\s+EMPTY\s*)?(?:(?P<r>NULL|ERROR|DEFAULT\s+(?P<rd>.+?))\s+ON\s+ERROR\s*)?$",
    )
    .expect("valid pattern");
    let c = re.captures(clauses)?;
    let mode = |m: Option<regex::Match<'_>>| -> (String, String) {
        match m.map(|m| m.as_str().trim().to_string()) {
            None => ("NULL".into(), "NULL".into()),
            Some(m) if m.to_ascii_uppercase().starts_with("DEFAULT") => {
                ("DEFAULT".into(), m[7..].trim().to_string())
            }
            Some(m) => (m.to_ascii_uppercase(), "NULL".into()),
        }
    };
    let (em, ed) = mode(c.name("e"));
    let (rm, rd) = mode(c.name("r"));
    let mut call = if c.name("e").is_some() || c.name("r").is_some() {
        format!("JSON_VALUE({args}, '{em}', CAST({ed} AS STRING), '{rm}', CAST({rd} AS STRING))")
    } else {
        format!("JSON_VALUE({args})")
    };
    if let Some(t) = c.name("t") {
        call = format!("TRY_CAST({call} AS {})", t.as_str());
    }
    Some(call)
}

pub(crate) fn object_name(n: &sq::ObjectName) -> String {
    n.0.iter()
        .map(|p| match p {
            sq::ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}
