//! Built-in scalar functions: strings, math and time, with Flink's names and semantics.
//!
//! Each function checks its argument types at plan time ([`Func::return_type`]) and runs on
//! whole columns ([`Func::evaluate`]); NULL in gives NULL out unless said otherwise.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    new_null_array, Array, ArrayRef, Float64Array, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

use crate::expr::{Expr, Literal};
use crate::types::type_name;

/// A built-in scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Upper,
    Lower,
    Trim,
    Ltrim,
    Rtrim,
    CharLength,
    /// `SUBSTRING(s, start [, length])`, 1-based as in SQL.
    Substring,
    Concat,
    ConcatWs,
    /// `s LIKE pattern` (`%` and `_`).
    Like,
    /// `REGEXP(s, pattern)`: whether the pattern matches part of `s`.
    Regexp,
    RegexpReplace,
    RegexpExtract,
    Replace,
    Abs,
    Round,
    Floor,
    Ceil,
    Mod,
    Power,
    Sqrt,
    Ln,
    Exp,
    /// `CURRENT_TIMESTAMP`, `NOW()`: the wall clock as TIMESTAMP_LTZ(3).
    CurrentTimestamp,
    /// `LOCALTIMESTAMP`: the wall clock as TIMESTAMP(3) (weir runs in UTC).
    LocalTimestamp,
    /// `PROCTIME()`: processing time.
    Proctime,
    /// `TO_TIMESTAMP(s [, format])`.
    ToTimestamp,
    /// `TO_TIMESTAMP_LTZ(n, precision)`: epoch seconds (0) or milliseconds (3).
    ToTimestampLtz,
    /// `DATE_FORMAT(ts, format)` with Java's pattern letters.
    DateFormat,
    /// `EXTRACT(unit FROM ts)`; the unit comes first as a string literal.
    Extract,
    Coalesce,
    /// `IF(cond, a, b)`.
    If,
    /// `ROW(a, b, ...)`: a row of its arguments, fields named after the columns they read
    /// (`EXPR$i` for other expressions). The Table API passes a whole row to a function as
    /// `ROW(*)` (`map`, `flat_map`).
    Row,
    /// `GET(row, 'field')`: a field of a row (the Table API's `col('r').get('a')`).
    Get,
    /// `JSON_VALUE`, `JSON_QUERY`, ... (`super::json`).
    Json(super::json::JsonFunc),
}

const ALL: &[(&str, Func)] = &[
    ("UPPER", Func::Upper),
    ("LOWER", Func::Lower),
    ("TRIM", Func::Trim),
    ("LTRIM", Func::Ltrim),
    ("RTRIM", Func::Rtrim),
    ("CHAR_LENGTH", Func::CharLength),
    ("CHARACTER_LENGTH", Func::CharLength),
    ("SUBSTRING", Func::Substring),
    ("SUBSTR", Func::Substring),
    ("CONCAT", Func::Concat),
    ("CONCAT_WS", Func::ConcatWs),
    ("LIKE", Func::Like),
    ("REGEXP", Func::Regexp),
    ("REGEXP_REPLACE", Func::RegexpReplace),
    ("REGEXP_EXTRACT", Func::RegexpExtract),
    ("REPLACE", Func::Replace),
    ("ABS", Func::Abs),
    ("ROUND", Func::Round),
    ("FLOOR", Func::Floor),
    ("CEIL", Func::Ceil),
    ("CEILING", Func::Ceil),
    ("MOD", Func::Mod),
    ("POWER", Func::Power),
    ("SQRT", Func::Sqrt),
    ("LN", Func::Ln),
    ("EXP", Func::Exp),
    ("CURRENT_TIMESTAMP", Func::CurrentTimestamp),
    ("NOW", Func::CurrentTimestamp),
    ("LOCALTIMESTAMP", Func::LocalTimestamp),
    ("PROCTIME", Func::Proctime),
    ("TO_TIMESTAMP", Func::ToTimestamp),
    ("TO_TIMESTAMP_LTZ", Func::ToTimestampLtz),
    ("DATE_FORMAT", Func::DateFormat),
    ("EXTRACT", Func::Extract),
    ("COALESCE", Func::Coalesce),
    ("IF", Func::If),
    ("ROW", Func::Row),
    ("GET", Func::Get),
    ("JSON_VALUE", Func::Json(super::json::JsonFunc::Value)),
    ("JSON_QUERY", Func::Json(super::json::JsonFunc::Query)),
    ("JSON_EXISTS", Func::Json(super::json::JsonFunc::Exists)),
    ("JSON_STRING", Func::Json(super::json::JsonFunc::String)),
    ("JSON_OBJECT", Func::Json(super::json::JsonFunc::Object)),
    ("JSON_ARRAY", Func::Json(super::json::JsonFunc::Array)),
    ("JSON", Func::Json(super::json::JsonFunc::Raw)),
];

/// The position and field of `GET(row, name)`: the name is a string literal (or a 0-based
/// integer literal position).
pub fn get_field(row: &DataType, key: &Expr) -> Result<(usize, arrow_schema::FieldRef), String> {
    let DataType::Struct(fields) = row else {
        return Err(format!(
            "GET reads a field of a ROW, not of {}",
            type_name(row)
        ));
    };
    let found = match key {
        Expr::Literal(super::Literal::String(n)) => fields.iter().position(|f| f.name() == n),
        Expr::Literal(super::Literal::Int(i)) => {
            usize::try_from(*i).ok().filter(|i| *i < fields.len())
        }
        _ => return Err("GET takes the field's name (or 0-based position) as a literal".into()),
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    match found {
        Some(i) => Ok((i, fields[i].clone())),
        None => Err(format!(
            "the row has no field {key}; its fields are {}",
            names.join(", ")
        )),
    }
}

/// The fields of `ROW(exprs)` whose types are `types`.
pub fn row_fields(types: &[DataType], exprs: &[Expr]) -> arrow_schema::Fields {
    let mut names: Vec<String> = Vec::new();
    for (i, e) in exprs.iter().enumerate() {
        let base = match e {
            Expr::Column(c) | Expr::BoundColumn { name: c, .. } | Expr::Alias(_, c) => c.clone(),
            _ => format!("EXPR${i}"),
        };
        let mut n = base.clone();
        let mut k = 0;
        while names.contains(&n) {
            n = format!("{base}{k}");
            k += 1;
        }
        names.push(n);
    }
    names
        .into_iter()
        .zip(types)
        .map(|(n, t)| arrow_schema::Field::new(n, t.clone(), true))
        .collect()
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Null)
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Null
}

fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Null
    )
}

impl Func {
    /// The function called `name` (any case), if weir has it.
    pub fn from_name(name: &str) -> Option<Func> {
        let upper = name.to_ascii_uppercase();
        ALL.iter().find(|(n, _)| *n == upper).map(|(_, f)| *f)
    }

    /// Every name weir knows, for error messages.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ALL.iter().map(|(n, _)| *n)
    }

    /// Its SQL name.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Whether two calls with the same arguments may differ (clock functions).
    pub fn is_nondeterministic(self) -> bool {
        matches!(
            self,
            Func::CurrentTimestamp | Func::LocalTimestamp | Func::Proctime
        )
    }

    /// The result type for these argument types, or what is wrong with them.
    pub fn return_type(self, args: &[DataType], exprs: &[Expr]) -> Result<DataType, String> {
        let n = args.len();
        let arity = |lo: usize, hi: usize| -> Result<(), String> {
            if n < lo || n > hi {
                let want = if lo == hi {
                    format!("{lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(format!("{} takes {want} arguments, not {n}", self.name()));
            }
            Ok(())
        };
        let want = |i: usize, ok: fn(&DataType) -> bool, what: &str| -> Result<(), String> {
            if !ok(&args[i]) {
                return Err(format!(
                    "argument {} of {} must be {what}, not {}",
                    i + 1,
                    self.name(),
                    type_name(&args[i])
                ));
            }
            Ok(())
        };
        use Func::*;
        Ok(match self {
            Upper | Lower | Trim | Ltrim | Rtrim => {
                arity(1, 1)?;
                want(0, is_string, "a STRING")?;
                DataType::Utf8
            }
            CharLength => {
                arity(1, 1)?;
                want(0, is_string, "a STRING")?;
                DataType::Int32
            }
            Substring => {
                arity(2, 3)?;
                want(0, is_string, "a STRING")?;
                for i in 1..n {
                    want(i, |t| t.is_integer() || *t == DataType::Null, "an integer")?;
                }
                DataType::Utf8
            }
            Concat => {
                if n == 0 {
                    return Err("CONCAT needs at least one argument".into());
                }
                for i in 0..n {
                    want(i, is_string, "a STRING")?;
                }
                DataType::Utf8
            }
            ConcatWs => {
                if n < 2 {
                    return Err("CONCAT_WS needs a separator and at least one string".into());
                }
                for i in 0..n {
                    want(i, is_string, "a STRING")?;
                }
                DataType::Utf8
            }
            Like | Regexp => {
                arity(2, 2)?;
                want(0, is_string, "a STRING")?;
                want(1, is_string, "a STRING")?;
                if !matches!(exprs.get(1), Some(Expr::Literal(Literal::String(_)))) {
                    return Err(format!(
                        "the pattern of {} must be a string literal",
                        self.name()
                    ));
                }
                if self == Regexp {
                    if let Some(Expr::Literal(Literal::String(p))) = exprs.get(1) {
                        regex::Regex::new(p).map_err(|e| {
                            format!("the pattern '{p}' is not a regular expression: {e}")
                        })?;
                    }
                }
                DataType::Boolean
            }
            RegexpReplace | Replace => {
                arity(3, 3)?;
                for i in 0..3 {
                    want(i, is_string, "a STRING")?;
                }
                DataType::Utf8
            }
            RegexpExtract => {
                arity(2, 3)?;
                want(0, is_string, "a STRING")?;
                want(1, is_string, "a STRING")?;
                if n == 3 {
                    want(2, |t| t.is_integer(), "an integer")?;
                }
                DataType::Utf8
            }
            Abs => {
                arity(1, 1)?;
                want(0, is_number, "numeric")?;
                args[0].clone()
            }
            Round => {
                arity(1, 2)?;
                want(0, is_number, "numeric")?;
                if n == 2 {
                    want(1, |t| t.is_integer(), "an integer")?;
                }
                args[0].clone()
            }
            Floor | Ceil => {
                arity(1, 1)?;
                want(0, is_number, "numeric")?;
                args[0].clone()
            }
            Mod => {
                arity(2, 2)?;
                want(0, |t| t.is_integer() || *t == DataType::Null, "an integer")?;
                want(1, |t| t.is_integer() || *t == DataType::Null, "an integer")?;
                args[1].clone()
            }
            Power => {
                arity(2, 2)?;
                want(0, is_number, "numeric")?;
                want(1, is_number, "numeric")?;
                DataType::Float64
            }
            Sqrt | Ln | Exp => {
                arity(1, 1)?;
                want(0, is_number, "numeric")?;
                DataType::Float64
            }
            CurrentTimestamp => {
                arity(0, 0)?;
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
            }
            LocalTimestamp | Proctime => {
                arity(0, 0)?;
                DataType::Timestamp(TimeUnit::Millisecond, None)
            }
            ToTimestamp => {
                arity(1, 2)?;
                want(0, is_string, "a STRING")?;
                if n == 2 {
                    want(1, is_string, "a STRING")?;
                }
                DataType::Timestamp(TimeUnit::Millisecond, None)
            }
            ToTimestampLtz => {
                arity(1, 2)?;
                want(0, |t| t.is_integer() || *t == DataType::Null, "an integer")?;
                if let Some(p) = exprs.get(1) {
                    if !matches!(p, Expr::Literal(Literal::Int(0 | 3))) {
                        return Err("the precision of TO_TIMESTAMP_LTZ must be 0 or 3".into());
                    }
                }
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
            }
            DateFormat => {
                arity(2, 2)?;
                want(0, |t| is_time(t) || is_string(t), "a TIMESTAMP")?;
                want(1, is_string, "a STRING")?;
                DataType::Utf8
            }
            Extract => {
                arity(2, 2)?;
                want(1, is_time, "a TIMESTAMP or DATE")?;
                match exprs.first() {
                    Some(Expr::Literal(Literal::String(u)))
                        if [
                            "YEAR",
                            "QUARTER",
                            "MONTH",
                            "WEEK",
                            "DAY",
                            "HOUR",
                            "MINUTE",
                            "SECOND",
                            "MILLISECOND",
                            "DOW",
                            "DOY",
                            "EPOCH",
                        ]
                        .contains(&u.to_ascii_uppercase().as_str()) => {}
                    other => {
                        return Err(format!(
                            "EXTRACT cannot take {}; use YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, \
                             MINUTE, SECOND, MILLISECOND, DOW, DOY or EPOCH",
                            other.map(|e| e.to_string()).unwrap_or_default()
                        ))
                    }
                }
                DataType::Int64
            }
            Coalesce => {
                if n == 0 {
                    return Err("COALESCE needs at least one argument".into());
                }
                let mut t = DataType::Null;
                for a in args {
                    if *a == DataType::Null || *a == t {
                        continue;
                    }
                    t = if t == DataType::Null {
                        a.clone()
                    } else if is_number(&t) && is_number(a) {
                        if a.is_floating() || t.is_floating() {
                            DataType::Float64
                        } else {
                            DataType::Int64
                        }
                    } else {
                        return Err(format!(
                            "COALESCE needs arguments of one type, not {} and {}",
                            type_name(&t),
                            type_name(a)
                        ));
                    };
                }
                t
            }
            If => {
                arity(3, 3)?;
                want(
                    0,
                    |t| matches!(t, DataType::Boolean | DataType::Null),
                    "a BOOLEAN",
                )?;
                if args[1] == args[2] || args[2] == DataType::Null {
                    args[1].clone()
                } else if args[1] == DataType::Null {
                    args[2].clone()
                } else if is_number(&args[1]) && is_number(&args[2]) {
                    DataType::Float64
                } else {
                    return Err(format!(
                        "IF needs two results of one type, not {} and {}",
                        type_name(&args[1]),
                        type_name(&args[2])
                    ));
                }
            }
            Get => {
                arity(2, 2)?;
                get_field(&args[0], &exprs[1])?.1.data_type().clone()
            }
            Row => {
                if n == 0 {
                    return Err("ROW takes at least one value".into());
                }
                DataType::Struct(row_fields(args, exprs))
            }
            Json(j) => j.return_type(args, exprs)?,
        })
    }

    /// Evaluates on columns of `n` rows (already of the planned types).
    pub fn evaluate(self, args: &[ArrayRef], n: usize) -> Result<ArrayRef, String> {
        use Func::*;
        let s = |i: usize| -> Result<StringArray, String> {
            let a = &args[i];
            if a.data_type() == &DataType::Null {
                return Ok(StringArray::new_null(a.len()));
            }
            let a = arrow_cast::cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
            Ok(a.as_string::<i32>().clone())
        };
        let f = |i: usize| -> Result<Float64Array, String> {
            let a = arrow_cast::cast(&args[i], &DataType::Float64).map_err(|e| e.to_string())?;
            Ok(a.as_primitive::<Float64Type>().clone())
        };
        let i64s = |i: usize| -> Result<arrow_array::Int64Array, String> {
            let a = arrow_cast::cast(&args[i], &DataType::Int64).map_err(|e| e.to_string())?;
            Ok(a.as_primitive::<Int64Type>().clone())
        };
        let map_str = |g: &dyn Fn(&str) -> String| -> Result<ArrayRef, String> {
            let a = s(0)?;
            let out: StringArray = a.iter().map(|v| v.map(g)).collect();
            Ok(Arc::new(out))
        };
        let ts_millis = |i: usize| -> Result<arrow_array::Int64Array, String> {
            let a = &args[i];
            let a = match a.data_type() {
                DataType::Date32 => {
                    arrow_cast::cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))
                        .map_err(|e| e.to_string())?
                }
                DataType::Timestamp(TimeUnit::Millisecond, _) => a.clone(),
                DataType::Timestamp(_, tz) => {
                    arrow_cast::cast(a, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))
                        .map_err(|e| e.to_string())?
                }
                DataType::Utf8 => {
                    let s = a.as_string::<i32>();
                    let v: TimestampMillisecondArray = s
                        .iter()
                        .map(|v| v.and_then(|v| parse_timestamp(v, None)))
                        .collect();
                    Arc::new(v)
                }
                _ => return Ok(arrow_array::Int64Array::new_null(a.len())),
            };
            let v = a
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or("expected a timestamp")?;
            Ok(v.reinterpret_cast::<Int64Type>())
        };
        let float_out = |a: &Float64Array, g: fn(f64) -> f64| -> ArrayRef {
            Arc::new(a.iter().map(|v| v.map(g)).collect::<Float64Array>())
        };
        Ok(match self {
            Upper => map_str(&|v| v.to_uppercase())?,
            Lower => map_str(&|v| v.to_lowercase())?,
            Trim => map_str(&|v| v.trim_matches(' ').to_string())?,
            Ltrim => map_str(&|v| v.trim_start_matches(' ').to_string())?,
            Rtrim => map_str(&|v| v.trim_end_matches(' ').to_string())?,
            CharLength => {
                let a = s(0)?;
                Arc::new(
                    a.iter()
                        .map(|v| v.map(|v| v.chars().count() as i32))
                        .collect::<arrow_array::Int32Array>(),
                )
            }
            Substring => {
                let a = s(0)?;
                let start = i64s(1)?;
                let len = if args.len() > 2 { Some(i64s(2)?) } else { None };
                let mut b = StringBuilder::new();
                for i in 0..a.len() {
                    if a.is_null(i)
                        || start.is_null(i)
                        || len.as_ref().is_some_and(|l| l.is_null(i))
                    {
                        b.append_null();
                        continue;
                    }
                    let v = a.value(i);
                    // SQL: positions start at 1; a start of 0 or below eats into the length.
                    let st = start.value(i);
                    let (from, take) = match &len {
                        Some(l) => {
                            let end = st.saturating_add(l.value(i).max(0));
                            let from = st.max(1);
                            (from, (end - from).max(0) as usize)
                        }
                        None => (st.max(1), usize::MAX),
                    };
                    let out: String = v.chars().skip(from as usize - 1).take(take).collect();
                    b.append_value(out);
                }
                Arc::new(b.finish())
            }
            Concat | ConcatWs => {
                let cols = (0..args.len()).map(s).collect::<Result<Vec<_>, _>>()?;
                let mut b = StringBuilder::new();
                for i in 0..n {
                    if self == Concat {
                        if cols.iter().any(|c| c.is_null(i)) {
                            b.append_null();
                        } else {
                            let v: String = cols.iter().map(|c| c.value(i)).collect();
                            b.append_value(v);
                        }
                    } else if cols[0].is_null(i) {
                        b.append_null();
                    } else {
                        // CONCAT_WS skips NULL arguments, as in Flink.
                        let parts: Vec<&str> = cols[1..]
                            .iter()
                            .filter(|c| !c.is_null(i))
                            .map(|c| c.value(i))
                            .collect();
                        b.append_value(parts.join(cols[0].value(i)));
                    }
                }
                Arc::new(b.finish())
            }
            Like => {
                let a = s(0)?;
                let p = s(1)?;
                let pattern = arrow_array::Scalar::new(StringArray::from(vec![p.value(0)]));
                Arc::new(arrow_string::like::like(&a, &pattern).map_err(|e| e.to_string())?)
            }
            Regexp => {
                let a = s(0)?;
                let p = s(1)?;
                let re = regex::Regex::new(p.value(0)).map_err(|e| e.to_string())?;
                let mut b = BooleanBuilder::with_capacity(a.len());
                for v in a.iter() {
                    b.append_option(v.map(|v| re.is_match(v)));
                }
                Arc::new(b.finish())
            }
            RegexpReplace | Replace => {
                let (a, p, r) = (s(0)?, s(1)?, s(2)?);
                let mut b = StringBuilder::new();
                let mut cache: Option<(String, regex::Regex)> = None;
                for i in 0..a.len() {
                    if a.is_null(i) || p.is_null(i) || r.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    if self == Replace {
                        b.append_value(a.value(i).replace(p.value(i), r.value(i)));
                        continue;
                    }
                    let re = cached_regex(&mut cache, p.value(i))?;
                    b.append_value(re.replace_all(a.value(i), r.value(i)));
                }
                Arc::new(b.finish())
            }
            RegexpExtract => {
                let (a, p) = (s(0)?, s(1)?);
                let idx = if args.len() > 2 { Some(i64s(2)?) } else { None };
                let mut b = StringBuilder::new();
                let mut cache: Option<(String, regex::Regex)> = None;
                for i in 0..a.len() {
                    if a.is_null(i) || p.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let re = cached_regex(&mut cache, p.value(i))?;
                    let g = idx.as_ref().map(|x| x.value(i) as usize).unwrap_or(1);
                    match re.captures(a.value(i)).and_then(|c| c.get(g)) {
                        Some(m) => b.append_value(m.as_str()),
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Abs | Floor | Ceil | Round => {
                let t = args[0].data_type().clone();
                if t.is_integer() && self != Round {
                    let v = i64s(0)?;
                    let out: arrow_array::Int64Array = match self {
                        Abs => v.iter().map(|x| x.map(i64::wrapping_abs)).collect(),
                        _ => v,
                    };
                    arrow_cast::cast(&out, &t).map_err(|e| e.to_string())?
                } else if let DataType::Decimal128(..) = t {
                    // Through f64 for the value, then back to the column's scale.
                    let v = f(0)?;
                    let digits = if args.len() > 1 { i64s(1)?.value(0) } else { 0 };
                    let m = 10f64.powi(digits as i32);
                    let out: Float64Array = v
                        .iter()
                        .map(|x| {
                            x.map(|x| match self {
                                Abs => x.abs(),
                                Floor => x.floor(),
                                Ceil => x.ceil(),
                                _ => round_half_up(x * m) / m,
                            })
                        })
                        .collect();
                    arrow_cast::cast(&out, &t).map_err(|e| e.to_string())?
                } else {
                    let v = f(0)?;
                    let digits = if args.len() > 1 { i64s(1)?.value(0) } else { 0 };
                    let out = match self {
                        Abs => float_out(&v, f64::abs),
                        Floor => float_out(&v, f64::floor),
                        Ceil => float_out(&v, f64::ceil),
                        _ => {
                            let m = 10f64.powi(digits as i32);
                            Arc::new(
                                v.iter()
                                    .map(|x| x.map(|x| round_half_up(x * m) / m))
                                    .collect::<Float64Array>(),
                            )
                        }
                    };
                    arrow_cast::cast(&out, &t).map_err(|e| e.to_string())?
                }
            }
            Mod => {
                let (a, b) = (i64s(0)?, i64s(1)?);
                let out: arrow_array::Int64Array = a
                    .iter()
                    .zip(b.iter())
                    .map(|(x, y)| match (x, y) {
                        (Some(x), Some(y)) if y != 0 => Some(x.wrapping_rem(y)),
                        _ => None,
                    })
                    .collect();
                arrow_cast::cast(&out, args[1].data_type()).map_err(|e| e.to_string())?
            }
            Power => {
                let (a, b) = (f(0)?, f(1)?);
                Arc::new(
                    a.iter()
                        .zip(b.iter())
                        .map(|(x, y)| Some(x?.powf(y?)))
                        .collect::<Float64Array>(),
                )
            }
            Sqrt => float_out(&f(0)?, f64::sqrt),
            Ln => float_out(&f(0)?, f64::ln),
            Exp => float_out(&f(0)?, f64::exp),
            CurrentTimestamp | LocalTimestamp | Proctime => {
                let now = now_millis();
                let a = TimestampMillisecondArray::from(vec![now; n]);
                if self == CurrentTimestamp {
                    Arc::new(a.with_timezone("+00:00"))
                } else {
                    Arc::new(a)
                }
            }
            ToTimestamp => {
                let a = s(0)?;
                let fmt = if args.len() > 1 { Some(s(1)?) } else { None };
                let mut b = TimestampMillisecondBuilder::with_capacity(a.len());
                for i in 0..a.len() {
                    if a.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let pattern = fmt.as_ref().filter(|f| !f.is_null(i)).map(|f| f.value(i));
                    // Flink returns NULL for a string it cannot parse.
                    b.append_option(parse_timestamp(a.value(i), pattern));
                }
                Arc::new(b.finish())
            }
            ToTimestampLtz => {
                let v = i64s(0)?;
                let seconds = args.len() > 1
                    && arrow_cast::cast(&args[1], &DataType::Int64)
                        .map(|p| p.as_primitive::<Int64Type>().value(0) == 0)
                        .unwrap_or(false);
                let out: TimestampMillisecondArray = v
                    .iter()
                    .map(|x| x.map(|x| if seconds { x.saturating_mul(1000) } else { x }))
                    .collect();
                Arc::new(out.with_timezone("+00:00"))
            }
            DateFormat => {
                let ts = ts_millis(0)?;
                let fmt = s(1)?;
                let mut b = StringBuilder::new();
                for i in 0..ts.len() {
                    if ts.is_null(i) || fmt.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    match DateTime::from_timestamp_millis(ts.value(i)) {
                        Some(t) => b.append_value(
                            t.naive_utc()
                                .format(&java_to_chrono(fmt.value(i)))
                                .to_string(),
                        ),
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Extract => {
                let unit = s(0)?.value(0).to_ascii_uppercase();
                let ts = ts_millis(1)?;
                let mut b = Int64Builder::with_capacity(ts.len());
                for i in 0..ts.len() {
                    if ts.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let ms = ts.value(i);
                    let Some(t) = DateTime::from_timestamp_millis(ms).map(|t| t.naive_utc()) else {
                        b.append_null();
                        continue;
                    };
                    b.append_value(match unit.as_str() {
                        "YEAR" => t.year() as i64,
                        "QUARTER" => (t.month0() / 3 + 1) as i64,
                        "MONTH" => t.month() as i64,
                        "WEEK" => t.iso_week().week() as i64,
                        "DAY" => t.day() as i64,
                        "HOUR" => t.hour() as i64,
                        "MINUTE" => t.minute() as i64,
                        "SECOND" => t.second() as i64,
                        "MILLISECOND" => (ms.rem_euclid(1000)) + t.second() as i64 * 1000,
                        "DOW" => t.weekday().number_from_sunday() as i64,
                        "DOY" => t.ordinal() as i64,
                        _ => ms.div_euclid(1000),
                    });
                }
                Arc::new(b.finish())
            }
            Coalesce => {
                let t = args
                    .iter()
                    .map(|a| a.data_type())
                    .find(|t| **t != DataType::Null)
                    .cloned()
                    .unwrap_or(DataType::Null);
                let t = if args.iter().any(|a| a.data_type().is_floating()) && t.is_numeric() {
                    DataType::Float64
                } else if t.is_integer()
                    && args
                        .iter()
                        .any(|a| a.data_type() != &t && a.data_type() != &DataType::Null)
                {
                    DataType::Int64
                } else {
                    t
                };
                let mut out = new_null_array(&t, n);
                for a in args.iter().rev() {
                    let a = arrow_cast::cast(a, &t).map_err(|e| e.to_string())?;
                    let mask = arrow_arith::boolean::is_not_null(&a).map_err(|e| e.to_string())?;
                    out = arrow_select::zip::zip(&mask, &a, &out).map_err(|e| e.to_string())?;
                }
                out
            }
            Get => {
                let DataType::Struct(_) = args[0].data_type() else {
                    return Err("GET reads a ROW".into());
                };
                // The position was checked when planned; the literal's value is the index.
                return Err("GET is evaluated with its field name".into());
            }
            Row => {
                // Names come from the argument expressions: `Expr::evaluate` builds rows.
                return Err("ROW is evaluated with its argument names".into());
            }
            Json(j) => j.evaluate(args, n)?,
            If => {
                let t = if args[1].data_type() == &DataType::Null {
                    args[2].data_type().clone()
                } else if args[2].data_type() == &DataType::Null
                    || args[1].data_type() == args[2].data_type()
                {
                    args[1].data_type().clone()
                } else {
                    DataType::Float64
                };
                let c =
                    arrow_cast::cast(&args[0], &DataType::Boolean).map_err(|e| e.to_string())?;
                let c = c.as_boolean();
                let nn = arrow_arith::boolean::is_not_null(c).map_err(|e| e.to_string())?;
                let c = arrow_arith::boolean::and(c, &nn).map_err(|e| e.to_string())?;
                let a = arrow_cast::cast(&args[1], &t).map_err(|e| e.to_string())?;
                let b = arrow_cast::cast(&args[2], &t).map_err(|e| e.to_string())?;
                arrow_select::zip::zip(&c, &a, &b).map_err(|e| e.to_string())?
            }
        })
    }
}

/// The compiled pattern, compiled again only when the pattern changes from row to row.
fn cached_regex<'a>(
    cache: &'a mut Option<(String, regex::Regex)>,
    pat: &str,
) -> Result<&'a regex::Regex, String> {
    if cache.as_ref().is_none_or(|(c, _)| c != pat) {
        let re = regex::Regex::new(pat)
            .map_err(|e| format!("'{pat}' is not a regular expression: {e}"))?;
        *cache = Some((pat.to_string(), re));
    }
    Ok(&cache.as_ref().ok_or("no pattern")?.1)
}

fn round_half_up(x: f64) -> f64 {
    // SQL's ROUND: halves away from zero.
    x.round()
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Java `SimpleDateFormat` letters (as Flink takes them) to chrono's.
pub fn java_to_chrono(fmt: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let piece = match (c, run) {
            ('y', 2) => "%y".to_string(),
            ('y', _) => "%Y".to_string(),
            ('M', 1) => "%-m".to_string(),
            ('M', 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', 1) => "%-d".to_string(),
            ('d', _) => "%d".to_string(),
            ('H', 1) => "%-H".to_string(),
            ('H', _) => "%H".to_string(),
            ('m', 1) => "%-M".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', 1) => "%-S".to_string(),
            ('s', _) => "%S".to_string(),
            ('S', n) => format!("%{}f", n.min(9)),
            ('E', _) => "%a".to_string(),
            ('a', _) => "%p".to_string(),
            ('h', _) => "%I".to_string(),
            ('%', n) => "%%".repeat(n),
            (c, n) => c.to_string().repeat(n),
        };
        // chrono's %3f prints the fraction without the dot, as SSS does.
        out.push_str(&piece);
        i += run;
    }
    out
}

/// Parses `'2020-01-01 12:00:00[.fff]'` (or ISO with `T`, or a date) or a Java pattern.
pub fn parse_timestamp(s: &str, pattern: Option<&str>) -> Option<i64> {
    let s = s.trim();
    if let Some(p) = pattern {
        let f = java_to_chrono(p);
        if let Ok(t) = NaiveDateTime::parse_from_str(s, &f) {
            return Some(t.and_utc().timestamp_millis());
        }
        return NaiveDate::parse_from_str(s, &f)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis());
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// `2020-01-01 12:00:00.000` for milliseconds since the epoch.
pub fn format_millis(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => ms.to_string(),
    }
}

/// `2020-01-01` for days since the epoch.
pub fn format_date(days: i32) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(days as i64)))
        .map(|d| d.to_string())
        .unwrap_or_else(|| days.to_string())
}

/// Days since the epoch of `2020-01-01`.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((d - epoch).num_days() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{col, lit};
    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{Field, Schema};

    fn run(e: Expr) -> ArrayRef {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("x", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("  Hello "), None])),
                Arc::new(Int64Array::from(vec![Some(-7), Some(9)])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_123_456),
                    None,
                ])),
            ],
        )
        .unwrap();
        let e = crate::expr::bind(&e, &schema).unwrap();
        e.evaluate(&b).unwrap().into_array(2).unwrap()
    }

    fn strings(a: ArrayRef) -> Vec<Option<String>> {
        let a = arrow_cast::cast(&a, &DataType::Utf8).unwrap();
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    }

    #[test]
    fn string_math_and_time_functions() {
        let call = |f, args: Vec<Expr>| Expr::Call(f, args);
        let cases: Vec<(Expr, Vec<Option<&str>>)> = vec![
            (
                call(Func::Upper, vec![col("s")]),
                vec![Some("  HELLO "), None],
            ),
            (call(Func::Trim, vec![col("s")]), vec![Some("Hello"), None]),
            (
                call(Func::CharLength, vec![col("s")]),
                vec![Some("8"), None],
            ),
            (
                call(Func::Substring, vec![col("s"), lit(3), lit(4)]),
                vec![Some("Hell"), None],
            ),
            (
                call(Func::Concat, vec![col("s"), lit("!")]),
                vec![Some("  Hello !"), None],
            ),
            (
                call(Func::Like, vec![col("s"), lit("%ell%")]),
                vec![Some("true"), None],
            ),
            (
                call(Func::Regexp, vec![col("s"), lit("H.l+o")]),
                vec![Some("true"), None],
            ),
            (call(Func::Abs, vec![col("x")]), vec![Some("7"), Some("9")]),
            (
                call(Func::Mod, vec![col("x"), lit(4)]),
                vec![Some("-3"), Some("1")],
            ),
            (
                call(Func::Power, vec![col("x"), lit(2)]),
                vec![Some("49.0"), Some("81.0")],
            ),
            (
                call(Func::Round, vec![lit(2.5)]),
                vec![Some("3.0"), Some("3.0")],
            ),
            (
                call(
                    Func::DateFormat,
                    vec![col("ts"), lit("yyyy-MM-dd HH:mm:ss.SSS")],
                ),
                vec![Some("2023-11-14 22:15:23.456"), None],
            ),
            (
                call(Func::Extract, vec![lit("HOUR"), col("ts")]),
                vec![Some("22"), None],
            ),
            (
                call(Func::ToTimestamp, vec![lit("2023-11-14 22:15:23")]),
                vec![Some("2023-11-14T22:15:23"), Some("2023-11-14T22:15:23")],
            ),
            (
                call(Func::Coalesce, vec![col("s"), lit("none")]),
                vec![Some("  Hello "), Some("none")],
            ),
        ];
        for (e, want) in cases {
            let got = strings(run(e.clone()));
            let want: Vec<Option<String>> = want.into_iter().map(|v| v.map(String::from)).collect();
            assert_eq!(got, want, "{e}");
        }
    }

    #[test]
    fn wrong_arguments_are_plan_errors() {
        let schema = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let cases = [
            (
                Expr::Call(Func::Upper, vec![col("x")]),
                "expression `UPPER(x)`: argument 1 of UPPER must be a STRING, not BIGINT",
            ),
            (
                Expr::Call(Func::Substring, vec![lit("a")]),
                "expression `SUBSTRING('a')`: SUBSTRING takes 2 to 3 arguments, not 1",
            ),
            (
                Expr::Call(Func::Regexp, vec![lit("a"), lit("(")]),
                "expression `REGEXP('a', '(')`: the pattern '(' is not a regular expression: regex parse error:\n    (\n    ^\nerror: unclosed group",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.data_type(&schema).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn java_patterns() {
        assert_eq!(java_to_chrono("yyyy-MM-dd HH:mm:ss"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(
            parse_timestamp("2020-01-02 03:04:05.5", None),
            Some(1_577_934_245_500)
        );
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
    }
}
