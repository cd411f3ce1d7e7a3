//! Flink's JSON functions: `JSON_VALUE`, `JSON_QUERY`, `JSON_EXISTS`, `JSON_STRING`,
//! `JSON_OBJECT` and `JSON_ARRAY`.
//!
//! Documents are parsed by `serde_json`, paths evaluated by `serde_json_path` (RFC 9535:
//! `$.a.b`, `$['a']`, `$.a[0]`, `$.a[*]`, `$..a`, filters). Flink's SQL/JSON path modes are
//! read from the path's first word: `lax` (the default: a missing member is *empty*) or
//! `strict` (a missing member is an *error*). What happens on an empty result and on an error is
//! each function's `ON EMPTY` / `ON ERROR` behaviour, given as string literal arguments after
//! the path (the Table API and SQL both write them so):
//!
//! - `JSON_VALUE(json, path [, onEmpty, emptyDefault, onError, errorDefault])`: the scalar at the
//!   path as a STRING; an object or array there, several values, or a document that does not
//!   parse is an error. Modes `'NULL'` (the default), `'ERROR'`, `'DEFAULT'` (the default
//!   argument, a STRING). `RETURNING type` is a `TRY_CAST` of the result, planned around it.
//! - `JSON_QUERY(json, path [, wrapper, onEmpty, onError])`: the object or array at the path as
//!   JSON text. Wrapper `'WITHOUT'` (the default), `'CONDITIONAL'` (wrap unless the one result
//!   is an object or array), `'UNCONDITIONAL'`; modes `'NULL'`, `'EMPTY ARRAY'`,
//!   `'EMPTY OBJECT'`, `'ERROR'`.
//! - `JSON_EXISTS(json, path [, onError])`: whether the path finds anything; on an error
//!   `'FALSE'` (the default), `'TRUE'`, `'UNKNOWN'` (NULL) or `'ERROR'`.
//! - `JSON_STRING(value)`: a scalar as JSON text (`'a'` gives `"a"`).
//! - `JSON_OBJECT(onNull, key1, value1, ...)` and `JSON_ARRAY(onNull, value1, ...)`: built
//!   from scalar values; `onNull` is `'NULL'` (keep a JSON null) or `'ABSENT'` (leave it out).
//!   Flink's defaults are NULL ON NULL for objects and ABSENT ON NULL for arrays.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;
use serde_json::Value as Json;
use serde_json_path::JsonPath;

use crate::expr::{Expr, Literal};
use crate::types::type_name;

/// A parsed path and its mode.
struct Path {
    path: JsonPath,
    strict: bool,
}

fn parse_path(text: &str) -> Result<Path, String> {
    let t = text.trim();
    let (strict, rest) = match t.split_once(char::is_whitespace) {
        Some((m, rest)) if m.eq_ignore_ascii_case("strict") => (true, rest.trim()),
        Some((m, rest)) if m.eq_ignore_ascii_case("lax") => (false, rest.trim()),
        _ => (false, t),
    };
    JsonPath::parse(rest)
        .map(|path| Path { path, strict })
        .map_err(|e| format!("'{text}' is not a JSON path: {e}"))
}

/// The last path parsed (a path column is nearly always one literal).
struct PathCache(Option<(String, Path)>);

impl PathCache {
    fn get(&mut self, text: &str) -> Result<&Path, String> {
        if self.0.as_ref().is_none_or(|(t, _)| t != text) {
            self.0 = Some((text.to_string(), parse_path(text)?));
        }
        Ok(&self.0.as_ref().expect("just set").1)
    }
}

/// Calls `f` for each row with its document and parsed path, or `None` where either is NULL
/// (the row's result is NULL then).
fn for_each_doc(
    docs: &StringArray,
    paths: &StringArray,
    mut f: impl FnMut(usize, Option<(&str, &Path)>) -> Result<(), String>,
) -> Result<(), String> {
    let mut cache = PathCache(None);
    for i in 0..docs.len() {
        if paths.is_null(i) || docs.is_null(i) {
            f(i, None)?;
            continue;
        }
        let p = cache.get(paths.value(i))?;
        f(i, Some((docs.value(i), p)))?;
    }
    Ok(())
}

/// What a path gives for one document.
enum Found<'a> {
    Values(Vec<&'a Json>),
    Empty,
    Error(String),
}

fn query<'a>(doc: &'a Json, p: &Path) -> Found<'a> {
    let nodes = p.path.query(doc).all();
    if nodes.is_empty() {
        if p.strict {
            Found::Error("finds nothing (strict mode)".into())
        } else {
            Found::Empty
        }
    } else {
        Found::Values(nodes)
    }
}

fn literal(exprs: &[Expr], i: usize, what: &str, allowed: &[&str]) -> Result<String, String> {
    match exprs.get(i) {
        Some(Expr::Literal(Literal::String(s))) => {
            let up = s.to_ascii_uppercase();
            if allowed.contains(&up.as_str()) {
                Ok(up)
            } else {
                Err(format!(
                    "{what} is one of {}, not '{s}'",
                    allowed
                        .iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
        _ => Err(format!("{what} must be a string literal")),
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Null)
}

fn is_json_scalar(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Utf8 | DataType::Boolean | DataType::Null)
}

/// The JSON functions weir has, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JsonFunc {
    Value,
    Query,
    Exists,
    String,
    Object,
    Array,
    /// `JSON(text)`: text that is JSON already, put into `JSON_OBJECT`/`JSON_ARRAY` as it is.
    Raw,
}

const VALUE_MODES: &[&str] = &["NULL", "ERROR", "DEFAULT"];
const QUERY_MODES: &[&str] = &["NULL", "EMPTY ARRAY", "EMPTY OBJECT", "ERROR"];
const WRAPPERS: &[&str] = &["WITHOUT", "CONDITIONAL", "UNCONDITIONAL"];
const EXISTS_MODES: &[&str] = &["FALSE", "TRUE", "UNKNOWN", "ERROR"];
const NULL_MODES: &[&str] = &["NULL", "ABSENT"];

impl JsonFunc {
    pub fn name(self) -> &'static str {
        match self {
            JsonFunc::Value => "JSON_VALUE",
            JsonFunc::Query => "JSON_QUERY",
            JsonFunc::Exists => "JSON_EXISTS",
            JsonFunc::String => "JSON_STRING",
            JsonFunc::Object => "JSON_OBJECT",
            JsonFunc::Array => "JSON_ARRAY",
            JsonFunc::Raw => "JSON",
        }
    }

    /// Checks arguments at plan time (types, mode literals, the path when it is a literal).
    pub fn return_type(self, args: &[DataType], exprs: &[Expr]) -> Result<DataType, String> {
        let n = args.len();
        let name = self.name();
        let want_string = |i: usize| -> Result<(), String> {
            if is_string(&args[i]) {
                Ok(())
            } else {
                Err(format!(
                    "argument {} of {name} must be a STRING, not {}",
                    i + 1,
                    type_name(&args[i])
                ))
            }
        };
        let doc_and_path = || -> Result<(), String> {
            want_string(0)?;
            want_string(1)?;
            if let Some(Expr::Literal(Literal::String(p))) = exprs.get(1) {
                parse_path(p)?;
            }
            Ok(())
        };
        match self {
            JsonFunc::Value => {
                if n != 2 && n != 6 {
                    return Err(format!("{name} takes a document and a path"));
                }
                doc_and_path()?;
                if n == 6 {
                    literal(exprs, 2, "ON EMPTY", VALUE_MODES)?;
                    literal(exprs, 4, "ON ERROR", VALUE_MODES)?;
                    want_string(3)?;
                    want_string(5)?;
                }
                Ok(DataType::Utf8)
            }
            JsonFunc::Query => {
                if n != 2 && n != 5 {
                    return Err(format!("{name} takes a document and a path"));
                }
                doc_and_path()?;
                if n == 5 {
                    literal(exprs, 2, "the wrapper", WRAPPERS)?;
                    literal(exprs, 3, "ON EMPTY", QUERY_MODES)?;
                    literal(exprs, 4, "ON ERROR", QUERY_MODES)?;
                }
                Ok(DataType::Utf8)
            }
            JsonFunc::Exists => {
                if n != 2 && n != 3 {
                    return Err(format!("{name} takes a document and a path"));
                }
                doc_and_path()?;
                if n == 3 {
                    literal(exprs, 2, "ON ERROR", EXISTS_MODES)?;
                }
                Ok(DataType::Boolean)
            }
            JsonFunc::Raw => {
                if n != 1 {
                    return Err(format!("{name} takes one JSON text"));
                }
                want_string(0)?;
                Ok(DataType::Utf8)
            }
            JsonFunc::String => {
                if n != 1 {
                    return Err(format!("{name} takes one value"));
                }
                if !is_json_scalar(&args[0]) {
                    return Err(format!(
                        "{name} takes a number, string or boolean here, not {}",
                        type_name(&args[0])
                    ));
                }
                Ok(DataType::Utf8)
            }
            JsonFunc::Object | JsonFunc::Array => {
                if n == 0 {
                    return Err(format!("{name} takes its ON NULL behaviour first"));
                }
                literal(exprs, 0, "ON NULL", NULL_MODES)?;
                if self == JsonFunc::Object && n.is_multiple_of(2) {
                    return Err(format!("{name} takes keys and values in pairs"));
                }
                for i in 1..n {
                    let key = self == JsonFunc::Object && i % 2 == 1;
                    if key {
                        want_string(i)?;
                        if matches!(exprs.get(i), Some(Expr::Literal(Literal::Null))) {
                            return Err(format!("a key of {name} cannot be NULL"));
                        }
                    } else if !is_json_scalar(&args[i])
                        && !matches!(exprs.get(i), Some(e) if is_json_text(e))
                    {
                        return Err(format!(
                            "the values of {name} are numbers, strings or booleans here, not {}",
                            type_name(&args[i])
                        ));
                    }
                }
                Ok(DataType::Utf8)
            }
        }
    }

    /// Evaluates on columns of `n` rows.
    pub fn evaluate(self, args: &[ArrayRef], n: usize) -> Result<ArrayRef, String> {
        self.evaluate_with(args, n, &[])
    }

    /// As [`JsonFunc::evaluate`], with `raw[i]` true where argument `i` is JSON text already
    /// (a `JSON(...)`, `JSON_OBJECT`, `JSON_ARRAY` or `JSON_QUERY` call: see [`is_json_text`]).
    pub fn evaluate_with(
        self,
        args: &[ArrayRef],
        n: usize,
        raw: &[bool],
    ) -> Result<ArrayRef, String> {
        let is_raw = |i: usize| raw.get(i).copied().unwrap_or(false);
        let value = |i: usize, row: usize| -> Result<Option<Json>, String> {
            if !is_raw(i) {
                return scalar(&args[i], row);
            }
            let a = &args[i];
            if a.is_null(row) {
                return Ok(None);
            }
            let text = a.as_string::<i32>().value(row);
            serde_json::from_str(text)
                .map(Some)
                .map_err(|e| format!("JSON({}) is not JSON: {e}", cut(text)))
        };
        let strings = |i: usize| -> Result<StringArray, String> {
            let a = &args[i];
            if a.data_type() == &DataType::Null {
                return Ok(StringArray::new_null(a.len()));
            }
            let a = arrow_cast::cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
            Ok(a.as_string::<i32>().clone())
        };
        let mode = |i: usize, default: &str| -> Result<String, String> {
            if i >= args.len() {
                return Ok(default.to_string());
            }
            let s = strings(i)?;
            Ok(if s.is_empty() || s.is_null(0) {
                default.to_string()
            } else {
                s.value(0).to_ascii_uppercase()
            })
        };
        match self {
            JsonFunc::Value | JsonFunc::Query | JsonFunc::Exists => {
                let docs = strings(0)?;
                let paths = strings(1)?;
                match self {
                    JsonFunc::Value => {
                        let (on_empty, on_error) = (mode(2, "NULL")?, mode(4, "NULL")?);
                        let (empty_default, error_default) = if args.len() == 6 {
                            (Some(strings(3)?), Some(strings(5)?))
                        } else {
                            (None, None)
                        };
                        let mut b = StringBuilder::new();
                        for_each_doc(&docs, &paths, |i, found| {
                            let Some((doc, p)) = found else {
                                b.append_null();
                                return Ok(());
                            };
                            let (what, mode, default) = match value_of(doc, p) {
                                Ok(Some(v)) => {
                                    b.append_option(v);
                                    return Ok(());
                                }
                                Ok(None) => {
                                    ("finds nothing".to_string(), &on_empty, &empty_default)
                                }
                                Err(e) => (e, &on_error, &error_default),
                            };
                            match mode.as_str() {
                                "ERROR" => {
                                    return Err(format!(
                                        "JSON_VALUE: the path '{}' {what} in {}",
                                        paths.value(i),
                                        cut(doc)
                                    ))
                                }
                                "DEFAULT" => {
                                    let d = default.as_ref().expect("6 arguments");
                                    b.append_option((!d.is_null(i)).then(|| d.value(i)));
                                }
                                _ => b.append_null(),
                            }
                            Ok(())
                        })?;
                        Ok(Arc::new(b.finish()))
                    }
                    JsonFunc::Query => {
                        let wrapper = mode(2, "WITHOUT")?;
                        let (on_empty, on_error) = (mode(3, "NULL")?, mode(4, "NULL")?);
                        let mut b = StringBuilder::new();
                        for_each_doc(&docs, &paths, |i, found| {
                            let Some((doc, p)) = found else {
                                b.append_null();
                                return Ok(());
                            };
                            let (what, mode) = match query_of(doc, p, &wrapper) {
                                Ok(Some(v)) => {
                                    b.append_value(v);
                                    return Ok(());
                                }
                                Ok(None) => ("finds nothing".to_string(), &on_empty),
                                Err(e) => (e, &on_error),
                            };
                            match mode.as_str() {
                                "ERROR" => {
                                    return Err(format!(
                                        "JSON_QUERY: the path '{}' {what} in {}",
                                        paths.value(i),
                                        cut(doc)
                                    ))
                                }
                                "EMPTY ARRAY" => b.append_value("[]"),
                                "EMPTY OBJECT" => b.append_value("{}"),
                                _ => b.append_null(),
                            }
                            Ok(())
                        })?;
                        Ok(Arc::new(b.finish()))
                    }
                    _ => {
                        let on_error = mode(2, "FALSE")?;
                        let mut b = BooleanBuilder::with_capacity(n);
                        for_each_doc(&docs, &paths, |_, found| {
                            let Some((text, p)) = found else {
                                b.append_null();
                                return Ok(());
                            };
                            match serde_json::from_str::<Json>(text) {
                                Ok(doc) => b.append_value(!p.path.query(&doc).is_empty()),
                                Err(e) => match on_error.as_str() {
                                    "ERROR" => {
                                        return Err(format!(
                                            "JSON_EXISTS: {} is not JSON: {e}",
                                            cut(text)
                                        ))
                                    }
                                    "TRUE" => b.append_value(true),
                                    "UNKNOWN" => b.append_null(),
                                    _ => b.append_value(false),
                                },
                            }
                            Ok(())
                        })?;
                        Ok(Arc::new(b.finish()))
                    }
                }
            }
            JsonFunc::Raw => Ok(args[0].clone()),
            JsonFunc::String => {
                let a = &args[0];
                let mut b = StringBuilder::new();
                for i in 0..n {
                    match scalar(a, i)? {
                        None => b.append_null(),
                        Some(v) => b.append_value(v.to_string()),
                    }
                }
                Ok(Arc::new(b.finish()))
            }
            JsonFunc::Object | JsonFunc::Array => {
                let absent = mode(0, "NULL")? == "ABSENT";
                let mut b = StringBuilder::new();
                let keys: Vec<Option<StringArray>> = (1..args.len())
                    .map(|i| {
                        (self == JsonFunc::Object && i % 2 == 1)
                            .then(|| strings(i))
                            .transpose()
                    })
                    .collect::<Result<_, _>>()?;
                for i in 0..n {
                    if self == JsonFunc::Object {
                        let mut obj = serde_json::Map::new();
                        for k in (1..args.len()).step_by(2) {
                            let key = keys[k - 1].as_ref().expect("a key column");
                            if key.is_null(i) {
                                return Err("JSON_OBJECT: a key is NULL".into());
                            }
                            match value(k + 1, i)? {
                                None if absent => {}
                                v => {
                                    obj.insert(key.value(i).to_string(), v.unwrap_or(Json::Null));
                                }
                            }
                        }
                        b.append_value(Json::Object(obj).to_string());
                    } else {
                        let mut arr = Vec::new();
                        for k in 1..args.len() {
                            match value(k, i)? {
                                None if absent => {}
                                v => arr.push(v.unwrap_or(Json::Null)),
                            }
                        }
                        b.append_value(Json::Array(arr).to_string());
                    }
                }
                Ok(Arc::new(b.finish()))
            }
        }
    }
}

/// Whether `e` gives JSON text that `JSON_OBJECT`/`JSON_ARRAY` nest as JSON, not as a string.
pub fn is_json_text(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Call(
            super::Func::Json(JsonFunc::Raw | JsonFunc::Object | JsonFunc::Array | JsonFunc::Query),
            _
        )
    )
}

/// A document cut for error messages.
fn cut(doc: &str) -> String {
    let mut s: String = doc.chars().take(80).collect();
    if s.len() < doc.len() {
        s.push_str("...");
    }
    format!("'{s}'")
}

/// JSON_VALUE of one document: `Ok(Some(value))` (None inside: a JSON null), `Ok(None)` when
/// the path finds nothing, `Err` what went wrong.
#[allow(clippy::type_complexity)]
fn value_of(doc: &str, p: &Path) -> Result<Option<Option<String>>, String> {
    let doc: Json = serde_json::from_str(doc).map_err(|e| format!("cannot be read: {e}"))?;
    match query(&doc, p) {
        Found::Empty => Ok(None),
        Found::Error(e) => Err(e),
        Found::Values(v) if v.len() > 1 => Err(format!("finds {} values, not one", v.len())),
        Found::Values(v) => match v[0] {
            Json::Null => Ok(Some(None)),
            Json::String(s) => Ok(Some(Some(s.clone()))),
            Json::Bool(b) => Ok(Some(Some(b.to_string()))),
            Json::Number(x) => Ok(Some(Some(x.to_string()))),
            Json::Array(_) | Json::Object(_) => {
                Err("finds an object or array, not a scalar (use JSON_QUERY)".into())
            }
        },
    }
}

/// JSON_QUERY of one document.
fn query_of(doc: &str, p: &Path, wrapper: &str) -> Result<Option<String>, String> {
    let doc: Json = serde_json::from_str(doc).map_err(|e| format!("cannot be read: {e}"))?;
    let values = match query(&doc, p) {
        Found::Empty => return Ok(None),
        Found::Error(e) => return Err(e),
        Found::Values(v) => v,
    };
    let composite = |v: &Json| matches!(v, Json::Array(_) | Json::Object(_));
    let wrap = |values: &[&Json]| Json::Array(values.iter().map(|v| (*v).clone()).collect());
    Ok(Some(match wrapper {
        "UNCONDITIONAL" => wrap(&values).to_string(),
        "CONDITIONAL" if values.len() == 1 && composite(values[0]) => values[0].to_string(),
        "CONDITIONAL" => wrap(&values).to_string(),
        _ if values.len() == 1 && composite(values[0]) => values[0].to_string(),
        _ if values.len() > 1 => {
            return Err(format!(
                "finds {} values (use WITH ARRAY WRAPPER)",
                values.len()
            ))
        }
        _ => return Err("finds a scalar, not an object or array (use JSON_VALUE)".into()),
    }))
}

/// Row `i` of a scalar column as a JSON value (None: NULL).
fn scalar(a: &ArrayRef, i: usize) -> Result<Option<Json>, String> {
    if a.is_null(i) {
        return Ok(None);
    }
    Ok(Some(match a.data_type() {
        DataType::Null => return Ok(None),
        DataType::Boolean => Json::Bool(a.as_boolean().value(i)),
        DataType::Utf8 => Json::String(a.as_string::<i32>().value(i).to_string()),
        t if t.is_integer() => {
            let v =
                arrow_cast::cast(&a.slice(i, 1), &DataType::Int64).map_err(|e| e.to_string())?;
            Json::from(v.as_primitive::<arrow_array::types::Int64Type>().value(0))
        }
        t if t.is_floating() => {
            let v =
                arrow_cast::cast(&a.slice(i, 1), &DataType::Float64).map_err(|e| e.to_string())?;
            let f = v.as_primitive::<arrow_array::types::Float64Type>().value(0);
            serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
        }
        _ => {
            // DECIMAL and the like: their text is a JSON number.
            let v = arrow_cast::cast(&a.slice(i, 1), &DataType::Utf8).map_err(|e| e.to_string())?;
            let text = v.as_string::<i32>().value(0).to_string();
            serde_json::from_str(&text).unwrap_or(Json::String(text))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: JsonFunc, args: Vec<ArrayRef>) -> ArrayRef {
        let n = args[0].len();
        f.evaluate(&args, n).unwrap()
    }

    fn s(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn lit(v: &str, n: usize) -> ArrayRef {
        Arc::new(StringArray::from(vec![v; n]))
    }

    const DOC: &str = r#"{"name": "Flink", "tel": 123, "ok": true, "addr": {"country": "Germany"}, "tags": ["a", "b"], "none": null}"#;

    #[test]
    fn json_value_reads_scalars_and_gives_null_on_empty_and_error() {
        let docs = s(&[Some(DOC); 8]);
        let paths = s(&[
            Some("$.name"),
            Some("$.tel"),
            Some("$.ok"),
            Some("lax $.addr.country"),
            Some("$.missing"),
            Some("$.addr"),
            Some("$.none"),
            Some("$.tags[1]"),
        ]);
        let out = run(JsonFunc::Value, vec![docs, paths]);
        let out = out.as_string::<i32>();
        let got: Vec<Option<&str>> = out.iter().collect();
        assert_eq!(
            got,
            vec![
                Some("Flink"),
                Some("123"),
                Some("true"),
                Some("Germany"),
                None,
                None,
                None,
                Some("b")
            ]
        );
        // Not JSON at all: NULL by default, an error naming the document with ERROR ON ERROR.
        let bad = s(&[Some("{not json")]);
        let out = run(JsonFunc::Value, vec![bad.clone(), lit("$.a", 1)]);
        assert!(out.is_null(0));
        let args = vec![
            bad,
            lit("$.a", 1),
            lit("NULL", 1),
            s(&[None]),
            lit("ERROR", 1),
            s(&[None]),
        ];
        let e = JsonFunc::Value.evaluate(&args, 1).unwrap_err();
        assert!(
            e.contains("cannot be read") && e.contains("{not json"),
            "{e}"
        );
    }

    #[test]
    fn json_value_defaults_and_strict_mode() {
        let args = vec![
            s(&[Some(DOC), Some(DOC)]),
            s(&[Some("strict $.missing"), Some("$.missing")]),
            lit("DEFAULT", 2),
            lit("empty!", 2),
            lit("DEFAULT", 2),
            lit("error!", 2),
        ];
        let out = JsonFunc::Value.evaluate(&args, 2).unwrap();
        let out = out.as_string::<i32>();
        // strict: a missing member is an error; lax: it is empty.
        assert_eq!(out.value(0), "error!");
        assert_eq!(out.value(1), "empty!");
    }

    #[test]
    fn json_query_wrappers_and_exists() {
        let docs = s(&[Some(DOC); 3]);
        let paths = s(&[Some("$.addr"), Some("$.tags[*]"), Some("$.name")]);
        let out = run(JsonFunc::Query, vec![docs.clone(), paths.clone()]);
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), r#"{"country":"Germany"}"#);
        assert!(out.is_null(1) && out.is_null(2));
        let args = vec![
            docs.clone(),
            paths.clone(),
            lit("CONDITIONAL", 3),
            lit("NULL", 3),
            lit("EMPTY ARRAY", 3),
        ];
        let out = JsonFunc::Query.evaluate(&args, 3).unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), r#"{"country":"Germany"}"#);
        assert_eq!(out.value(1), r#"["a","b"]"#);
        assert_eq!(out.value(2), r#"["Flink"]"#);
        let out = run(
            JsonFunc::Exists,
            vec![
                s(&[Some(DOC), Some(DOC), Some("nope"), None]),
                lit("$.tags[5]", 4),
            ],
        );
        let out = out.as_boolean();
        assert!(!out.value(0) && !out.value(2) && out.is_null(3));
        let out = run(
            JsonFunc::Exists,
            vec![s(&[Some(DOC)]), lit("$.addr.country", 1)],
        );
        assert!(out.as_boolean().value(0));
    }

    #[test]
    fn json_string_object_and_array() {
        let v: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![Some(1), None]));
        let out = run(JsonFunc::String, vec![s(&[Some("a\"b"), None])]);
        assert_eq!(out.as_string::<i32>().value(0), r#""a\"b""#);
        let args = vec![
            lit("NULL", 2),
            lit("k", 2),
            v.clone(),
            lit("s", 2),
            s(&[Some("x"), Some("y")]),
        ];
        let out = JsonFunc::Object.evaluate(&args, 2).unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), r#"{"k":1,"s":"x"}"#);
        assert_eq!(out.value(1), r#"{"k":null,"s":"y"}"#);
        let out = JsonFunc::Array
            .evaluate(&[lit("ABSENT", 2), v, lit("z", 2)], 2)
            .unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), r#"[1,"z"]"#);
        assert_eq!(out.value(1), r#"["z"]"#);
    }

    #[test]
    fn a_bad_path_or_mode_is_a_plan_error() {
        let t = vec![DataType::Utf8, DataType::Utf8];
        let e = JsonFunc::Value
            .return_type(
                &t,
                &[
                    Expr::Column("j".into()),
                    Expr::Literal(Literal::String("$.a[".into())),
                ],
            )
            .unwrap_err();
        assert!(e.contains("is not a JSON path"), "{e}");
        let e = JsonFunc::Exists
            .return_type(
                &[DataType::Utf8, DataType::Utf8, DataType::Utf8],
                &[
                    Expr::Column("j".into()),
                    Expr::Literal(Literal::String("$.a".into())),
                    Expr::Literal(Literal::String("MAYBE".into())),
                ],
            )
            .unwrap_err();
        assert!(e.contains("ON ERROR is one of"), "{e}");
    }
}
