//! Flink DDL that sqlparser does not read: `CREATE TABLE ... WITH (...)` with computed
//! columns and watermarks, and `CREATE FUNCTION ... LANGUAGE PYTHON`.

use std::collections::BTreeMap;

use arrow_schema::{Field, Schema};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::query::{Planner, Scope};
use super::{sql_err, SqlOutcome};
use crate::connectors::{Column, TableDef};
use crate::error::Result;
use crate::expr::Expr;
use crate::table::TableEnvironment;
use crate::types::SqlType;

/// Splits `text` at top-level commas (outside parentheses, angle brackets and quotes).
pub(crate) fn split_top(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut angle = 0i32;
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        if let Some(q) = quote {
            cur.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                cur.push(c);
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            // `<` opens a bracket only after a type name (ARRAY<INT>), not in `a < b`.
            '<' if {
                let before = cur.trim_end().to_ascii_uppercase();
                ["ARRAY", "MAP", "ROW", "MULTISET"]
                    .iter()
                    .any(|t| before.ends_with(t))
                    || angle > 0
            } =>
            {
                angle += 1;
                depth += 1;
                cur.push(c);
            }
            '>' if angle > 0 => {
                angle -= 1;
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The text between the parenthesis at `open` and its match.
pub(crate) fn paren_block(s: &str, open: usize) -> Option<(String, usize)> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s[open..].char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((s[open + 1..open + i].to_string(), open + i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

pub(crate) fn unquote_ident(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        s[1..s.len() - 1].replace("``", "`")
    } else {
        s.to_string()
    }
}

/// The identifier at the start of `s` (a word, or `` `quoted` `` with `` `` `` for a backtick
/// and any other character, spaces included) and the text after it.
pub(crate) fn split_ident(s: &str) -> (String, &str) {
    let s = s.trim_start();
    if let Some(q) = s.strip_prefix('`') {
        let b = q.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'`' {
                if b.get(i + 1) == Some(&b'`') {
                    i += 2;
                    continue;
                }
                return (q[..i].replace("``", "`"), &q[i + 1..]);
            }
            i += 1;
        }
        return (q.replace("``", "`"), "");
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (s[..end].to_string(), &s[end..])
}

/// The words of `head` (backtick-quoted identifiers unquoted, `quoted` true) up to the first
/// `(` outside quotes, and that parenthesis's index.
fn head_words(stmt: &str) -> (Vec<(String, bool)>, Option<usize>) {
    let mut words = Vec::new();
    let mut rest = stmt;
    loop {
        let t = rest.trim_start();
        let offset = stmt.len() - t.len();
        match t.chars().next() {
            None => return (words, None),
            Some('(') => return (words, Some(offset)),
            Some('`') => {
                let (w, after) = split_ident(t);
                words.push((w, true));
                rest = after;
            }
            Some(_) => {
                let end = t
                    .find(|c: char| c.is_whitespace() || c == '(' || c == '`')
                    .unwrap_or(t.len());
                words.push((t[..end].to_string(), false));
                rest = &t[end..];
            }
        }
    }
}

pub(crate) fn unquote_string(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        Some(s[1..s.len() - 1].replace("''", "'"))
    } else {
        None
    }
}

/// Parses an expression with sqlparser and converts it over `scope`.
pub(crate) fn parse_expr(text: &str, scope: &Scope, env: &TableEnvironment) -> Result<Expr> {
    let e = Parser::new(&GenericDialect {})
        .with_recursion_limit(crate::stack::MAX_NESTING)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| sql_err(text, e.to_string()))?;
    Planner::new(env).expr(&e, scope)
}

/// Parses `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name (columns) [COMMENT ...] WITH (options)`.
pub fn parse_create_table(stmt: &str) -> Result<(TableDef, bool)> {
    let (head, open) = head_words(stmt);
    let open =
        open.ok_or_else(|| sql_err(stmt, "CREATE TABLE needs a column list in parentheses"))?;
    let upper: Vec<String> = head
        .iter()
        .map(|(w, q)| {
            if *q {
                String::new()
            } else {
                w.to_ascii_uppercase()
            }
        })
        .collect();
    let if_not_exists = upper.windows(3).any(|w| w == ["IF", "NOT", "EXISTS"]);
    let (name, quoted) = head
        .last()
        .cloned()
        .ok_or_else(|| sql_err(stmt, "CREATE TABLE needs a name"))?;
    if !quoted && (name.eq_ignore_ascii_case("TABLE") || name.eq_ignore_ascii_case("EXISTS")) {
        return Err(sql_err(stmt, "CREATE TABLE needs a name"));
    }
    let (body, after) = paren_block(stmt, open)
        .ok_or_else(|| sql_err(stmt, "unbalanced parentheses in the column list"))?;
    let rest = stmt[after..].trim();
    let mut options = BTreeMap::new();
    let rest_upper = rest.to_ascii_uppercase();
    if let Some(p) = rest_upper.find("WITH") {
        let o = rest[p..]
            .find('(')
            .ok_or_else(|| sql_err(stmt, "WITH needs ('key' = 'value', ...)"))?
            + p;
        let (opts, _) =
            paren_block(rest, o).ok_or_else(|| sql_err(stmt, "unbalanced parentheses in WITH"))?;
        for item in split_top(&opts) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| sql_err(stmt, format!("option `{item}` is not 'key' = 'value'")))?;
            let k = unquote_string(k).ok_or_else(|| {
                sql_err(
                    stmt,
                    format!("option key {} must be quoted: 'key'", k.trim()),
                )
            })?;
            let v = unquote_string(v).ok_or_else(|| {
                sql_err(
                    stmt,
                    format!("the value of option '{k}' must be quoted: '{}'", v.trim()),
                )
            })?;
            options.insert(k, v);
        }
    }
    let mut columns = Vec::new();
    let mut watermark_text = None;
    for item in split_top(&body) {
        let up = item.to_ascii_uppercase();
        if up.starts_with("WATERMARK") {
            // WATERMARK FOR col AS expr
            let after = item["WATERMARK".len()..].trim_start();
            if !after.to_ascii_uppercase().starts_with("FOR ") {
                return Err(sql_err(
                    &item,
                    "expected WATERMARK FOR column AS expression",
                ));
            }
            let (c, _) = split_ident(&after[4..]);
            let as_pos = up
                .find(" AS ")
                .ok_or_else(|| sql_err(&item, "expected WATERMARK FOR column AS expression"))?;
            watermark_text = Some((c, item[as_pos + 4..].trim().to_string()));
            continue;
        }
        if up.starts_with("PRIMARY KEY") || up.starts_with("CONSTRAINT") {
            continue;
        }
        let (cname, rest) = split_ident(&item);
        let rest = rest.trim().to_string();
        let rest_up = rest.to_ascii_uppercase();
        if rest_up.starts_with("AS ") {
            columns.push((cname, None, Some(rest[3..].trim().to_string())));
            continue;
        }
        // TYPE [NOT NULL] [METADATA ...] [COMMENT '...']
        let mut type_text = rest.clone();
        for cut in [" COMMENT ", " METADATA", " PRIMARY KEY"] {
            if let Some(p) = type_text.to_ascii_uppercase().find(cut) {
                type_text.truncate(p);
            }
        }
        let t = SqlType::parse(type_text.trim()).map_err(|e| sql_err(&item, e.to_string()))?;
        columns.push((cname, Some(t), None));
    }
    if columns.is_empty() {
        return Err(sql_err(stmt, "a table needs at least one column"));
    }
    // Types of computed columns come from the physical ones.
    let physical = Schema::new(
        columns
            .iter()
            .filter_map(|(n, t, _)| {
                t.as_ref()
                    .map(|t| Field::new(n, t.data_type.clone(), t.nullable))
            })
            .collect::<Vec<_>>(),
    );
    let env = TableEnvironment::in_streaming_mode();
    let scope = Scope::of_schema(None, &physical);
    let mut cols = Vec::new();
    for (n, t, e) in columns {
        cols.push(match (t, e) {
            (Some(t), _) => Column::Physical(Field::new(&n, t.data_type, t.nullable)),
            (None, Some(text)) => Column::Computed(n, parse_expr(&text, &scope, &env)?),
            _ => unreachable!("a column has a type or an expression"),
        });
    }
    let def0 = TableDef {
        name: name.clone(),
        columns: cols,
        watermark: None,
        options,
    };
    let watermark = match watermark_text {
        None => None,
        Some((c, text)) => {
            let full = def0.schema()?;
            let scope = Scope::of_schema(None, &full);
            Some((c, parse_expr(&text, &scope, &env)?))
        }
    };
    Ok((TableDef { watermark, ..def0 }, if_not_exists))
}

pub(crate) fn parse_create_function(stmt: &str) -> Result<SqlOutcome> {
    let up = stmt.to_ascii_uppercase();
    let f = up
        .find("FUNCTION")
        .ok_or_else(|| sql_err(stmt, "expected CREATE FUNCTION"))?
        + 8;
    let mut rest = stmt[f..].trim();
    if rest.to_ascii_uppercase().starts_with("IF NOT EXISTS") {
        rest = rest[13..].trim();
    }
    let mut it = rest.splitn(2, char::is_whitespace);
    let name = unquote_ident(it.next().unwrap_or(""));
    let rest = it.next().unwrap_or("").trim();
    if !rest.to_ascii_uppercase().starts_with("AS ") {
        return Err(sql_err(
            stmt,
            "expected CREATE FUNCTION name AS 'module.function' LANGUAGE PYTHON",
        ));
    }
    let rest = rest[3..].trim();
    if !rest.starts_with('\'') {
        return Err(sql_err(
            stmt,
            "the function's path must be quoted: AS 'module.function'",
        ));
    }
    let end = rest[1..].find('\'').map(|p| p + 2).unwrap_or(rest.len());
    let path = unquote_string(&rest[..end])
        .ok_or_else(|| sql_err(stmt, "the function's path must be quoted"))?;
    let tail: Vec<String> = rest[end..]
        .split_whitespace()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    let language = match tail.as_slice() {
        [] => "JAVA".to_string(),
        [l, lang] if l == "LANGUAGE" => lang.clone(),
        _ => return Err(sql_err(stmt, "expected LANGUAGE PYTHON after the path")),
    };
    Ok(SqlOutcome::CreateFunction {
        name,
        path,
        language,
    })
}
