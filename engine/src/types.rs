//! Flink's SQL type names and their Arrow types.
//!
//! | Flink | Arrow |
//! |---|---|
//! | `BOOLEAN` | `Boolean` |
//! | `TINYINT`, `SMALLINT`, `INT`/`INTEGER`, `BIGINT` | `Int8`, `Int16`, `Int32`, `Int64` |
//! | `FLOAT`/`REAL`, `DOUBLE [PRECISION]` | `Float32`, `Float64` |
//! | `DECIMAL(p, s)` (also `DEC`, `NUMERIC`; default `(10, 0)`) | `Decimal128(p, s)` |
//! | `STRING`, `VARCHAR(n)`, `CHAR(n)` | `Utf8` |
//! | `BYTES`, `VARBINARY(n)`, `BINARY(n)` | `Binary` |
//! | `DATE` | `Date32` |
//! | `TIME(p)` (default 0) | `Time32(ms)` for p ≤ 3, `Time64(µs)` for p ≤ 6, `Time64(ns)` |
//! | `TIMESTAMP(p)` (default 6) | `Timestamp(unit of p, no zone)` |
//! | `TIMESTAMP_LTZ(p)` (default 6) | `Timestamp(unit of p, "+00:00")` |
//! | `ARRAY<T>` | `List<T>` |
//! | `MAP<K, V>` | `Map<K, V>` |
//! | `ROW<name T, ...>` | `Struct` |
//!
//! A type may end in `NOT NULL`. Lengths of `VARCHAR(n)`/`CHAR(n)`/`BINARY(n)` are accepted and
//! not enforced.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};

use crate::error::{EngineError, Result};

/// A column type: the Arrow type and whether it may hold NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlType {
    pub data_type: DataType,
    pub nullable: bool,
}

impl SqlType {
    /// A nullable column of `data_type`.
    pub fn nullable(data_type: DataType) -> Self {
        Self {
            data_type,
            nullable: true,
        }
    }

    /// Parses a Flink type name such as `BIGINT`, `DECIMAL(10, 2)` or
    /// `ROW<id BIGINT, tags ARRAY<STRING>> NOT NULL`.
    ///
    /// ```
    /// use weir_engine::types::SqlType;
    /// use arrow_schema::DataType;
    /// let t = SqlType::parse("DECIMAL(10, 2) NOT NULL").unwrap();
    /// assert_eq!(t.data_type, DataType::Decimal128(10, 2));
    /// assert!(!t.nullable);
    /// assert_eq!(t.to_string(), "DECIMAL(10, 2) NOT NULL");
    /// ```
    pub fn parse(text: &str) -> Result<SqlType> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            text,
            tokens,
            pos: 0,
        };
        let t = p.sql_type()?;
        if let Some(tok) = p.peek() {
            return Err(p.err(format!("unexpected `{tok}` after the type")));
        }
        Ok(t)
    }
}

impl std::fmt::Display for SqlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", type_name(&self.data_type))?;
        if !self.nullable {
            write!(f, " NOT NULL")?;
        }
        Ok(())
    }
}

fn precision_of(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

fn unit_for(precision: u64) -> TimeUnit {
    match precision {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

/// The Flink name of an Arrow type (the inverse of [`SqlType::parse`] up to aliases).
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Time32(u) | DataType::Time64(u) => match precision_of(u) {
            0 => "TIME".into(),
            p => format!("TIME({p})"),
        },
        DataType::Timestamp(u, None) => format!("TIMESTAMP({})", precision_of(u)),
        DataType::Timestamp(u, Some(_)) => format!("TIMESTAMP_LTZ({})", precision_of(u)),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("ARRAY<{}>", field_type(f))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                // Map keys are never NULL in Arrow; Flink's MAP<K, V> says so implicitly.
                format!(
                    "MAP<{}, {}>",
                    type_name(kv[0].data_type()),
                    field_type(&kv[1])
                )
            }
            other => format!("MAP<{other}>"),
        },
        DataType::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", quote_ident(f.name()), field_type(f)))
                .collect();
            format!("ROW<{}>", parts.join(", "))
        }
        other => format!("{other}"),
    }
}

fn field_type(f: &Field) -> String {
    SqlType {
        data_type: f.data_type().clone(),
        nullable: f.is_nullable(),
    }
    .to_string()
}

fn quote_ident(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
    {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Num(u64),
    Sym(char),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) => f.write_str(w),
            Tok::Num(n) => write!(f, "{n}"),
            Tok::Sym(c) => write!(f, "{c}"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(d);
                chars.next();
            }
            out.push(Tok::Num(n.parse().map_err(|_| EngineError::Type {
                text: text.into(),
                detail: format!("number `{n}` is too large"),
            })?));
        } else if c.is_alphabetic() || c == '_' {
            let mut w = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_alphanumeric() || **d == '_') {
                w.push(d);
                chars.next();
            }
            out.push(Tok::Word(w));
        } else if c == '`' {
            chars.next();
            let mut w = String::new();
            loop {
                match chars.next() {
                    Some('`') if chars.peek() == Some(&'`') => {
                        chars.next();
                        w.push('`');
                    }
                    Some('`') => break,
                    Some(d) => w.push(d),
                    None => {
                        return Err(EngineError::Type {
                            text: text.into(),
                            detail: "unterminated `quoted` field name".into(),
                        })
                    }
                }
            }
            // A quoted name keeps its case and is never a keyword.
            out.push(Tok::Word(format!("`{w}")));
        } else if "<>(),".contains(c) {
            out.push(Tok::Sym(c));
            chars.next();
        } else {
            return Err(EngineError::Type {
                text: text.into(),
                detail: format!("unexpected character `{c}`"),
            });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, detail: String) -> EngineError {
        EngineError::Type {
            text: self.text.to_string(),
            detail,
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn keyword(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::Word(w)) if !w.starts_with('`') => {
                let w = w.to_ascii_uppercase();
                self.pos += 1;
                Some(w)
            }
            _ => None,
        }
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            let found = self
                .peek()
                .map(|t| format!("`{t}`"))
                .unwrap_or_else(|| "the end".into());
            Err(self.err(format!("expected `{c}`, found {found}")))
        }
    }

    fn number(&mut self, what: &str) -> Result<u64> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                let n = *n;
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.err(format!("expected {what}"))),
        }
    }

    /// `(n)` if present.
    fn opt_len(&mut self, what: &str) -> Result<Option<u64>> {
        if self.eat('(') {
            let n = self.number(what)?;
            self.expect(')')?;
            Ok(Some(n))
        } else {
            Ok(None)
        }
    }

    /// The length of `VARCHAR(n)` and its kin: from 1 to 2,147,483,647, as in Flink.
    fn string_len(&mut self, name: &str) -> Result<Option<u64>> {
        let n = self.opt_len("a length")?;
        if let Some(n) = n {
            if !(1..=i32::MAX as u64).contains(&n) {
                return Err(self.err(format!(
                    "{name}({n}): the length must be from 1 to {}",
                    i32::MAX
                )));
            }
        }
        Ok(n)
    }

    fn sql_type(&mut self) -> Result<SqlType> {
        let Some(name) = self.keyword() else {
            return Err(self.err("expected a type name such as BIGINT or STRING".into()));
        };
        let data_type = match name.as_str() {
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "TINYINT" => DataType::Int8,
            "SMALLINT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" => DataType::Int64,
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => {
                self.eat_keyword("PRECISION");
                DataType::Float64
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let (p, s) = if self.eat('(') {
                    let p = self.number("a precision")?;
                    let s = if self.eat(',') {
                        self.number("a scale")?
                    } else {
                        0
                    };
                    self.expect(')')?;
                    (p, s)
                } else {
                    (10, 0)
                };
                if !(1..=38).contains(&p) || s > p {
                    return Err(self.err(format!(
                        "DECIMAL({p}, {s}): precision must be 1 to 38 and scale at most the precision"
                    )));
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            "STRING" => DataType::Utf8,
            "VARCHAR" | "CHAR" => {
                self.string_len(&name)?;
                DataType::Utf8
            }
            "BYTES" => DataType::Binary,
            "VARBINARY" | "BINARY" => {
                self.string_len(&name)?;
                DataType::Binary
            }
            "DATE" => DataType::Date32,
            "TIME" => {
                let p = self.opt_len("a precision")?.unwrap_or(0);
                if p > 9 {
                    return Err(self.err(format!("TIME({p}): precision must be 0 to 9")));
                }
                match unit_for(p) {
                    TimeUnit::Second | TimeUnit::Millisecond => DataType::Time32(TimeUnit::Millisecond),
                    u => DataType::Time64(u),
                }
            }
            "TIMESTAMP" | "TIMESTAMP_LTZ" => {
                let p = self.opt_len("a precision")?.unwrap_or(6);
                if p > 9 {
                    return Err(self.err(format!("{name}({p}): precision must be 0 to 9")));
                }
                let ltz = name == "TIMESTAMP_LTZ"
                    || (self.eat_keyword("WITH") && {
                        self.eat_keyword("LOCAL");
                        self.eat_keyword("TIME") && self.eat_keyword("ZONE")
                    });
                if !ltz
                    && self.eat_keyword("WITHOUT")
                    && !(self.eat_keyword("TIME") && self.eat_keyword("ZONE"))
                {
                    return Err(self.err("expected `WITHOUT TIME ZONE`".into()));
                }
                DataType::Timestamp(unit_for(p), ltz.then(|| Arc::from("+00:00")))
            }
            "ARRAY" => {
                self.expect('<')?;
                let item = self.sql_type()?;
                self.expect('>')?;
                DataType::List(Arc::new(Field::new("element", item.data_type, item.nullable)))
            }
            "MAP" => {
                self.expect('<')?;
                let k = self.sql_type()?;
                self.expect(',')?;
                let v = self.sql_type()?;
                self.expect('>')?;
                let entries = Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k.data_type, false),
                        Field::new("value", v.data_type, v.nullable),
                    ])),
                    false,
                );
                DataType::Map(Arc::new(entries), false)
            }
            "ROW" => {
                let close = if self.eat('<') {
                    '>'
                } else {
                    self.expect('(')?;
                    ')'
                };
                let mut fields = Vec::new();
                loop {
                    let name = match self.peek() {
                        Some(Tok::Word(w)) => w.strip_prefix('`').unwrap_or(w).to_string(),
                        _ => return Err(self.err("expected a field name in ROW".into())),
                    };
                    self.pos += 1;
                    let t = self.sql_type()?;
                    if fields.iter().any(|f: &Field| f.name() == &name) {
                        return Err(self.err(format!("field `{name}` appears twice in ROW")));
                    }
                    fields.push(Field::new(name, t.data_type, t.nullable));
                    if !self.eat(',') {
                        break;
                    }
                }
                self.expect(close)?;
                DataType::Struct(Fields::from(fields))
            }
            other => {
                return Err(self.err(format!(
                    "unknown type `{other}`; weir knows BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), STRING, VARCHAR(n), CHAR(n), BYTES, BINARY(n), VARBINARY(n), DATE, TIME(p), TIMESTAMP(p), TIMESTAMP_LTZ(p), ARRAY<T>, MAP<K, V>, ROW<name T, ...>"
                )))
            }
        };
        let nullable = if self.eat_keyword("NOT") {
            if !self.eat_keyword("NULL") {
                return Err(self.err("expected NULL after NOT".into()));
            }
            false
        } else {
            self.eat_keyword("NULL");
            true
        };
        Ok(SqlType {
            data_type,
            nullable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DataType {
        SqlType::parse(s).unwrap().data_type
    }

    #[test]
    fn scalar_types() {
        assert_eq!(dt("boolean"), DataType::Boolean);
        assert_eq!(dt("TINYINT"), DataType::Int8);
        assert_eq!(dt("SMALLINT"), DataType::Int16);
        assert_eq!(dt("INTEGER"), DataType::Int32);
        assert_eq!(dt("BIGINT"), DataType::Int64);
        assert_eq!(dt("REAL"), DataType::Float32);
        assert_eq!(dt("DOUBLE PRECISION"), DataType::Float64);
        assert_eq!(dt("DECIMAL"), DataType::Decimal128(10, 0));
        assert_eq!(dt("NUMERIC(38, 18)"), DataType::Decimal128(38, 18));
        assert_eq!(dt("VARCHAR(20)"), DataType::Utf8);
        assert_eq!(dt("BYTES"), DataType::Binary);
        assert_eq!(dt("DATE"), DataType::Date32);
        assert_eq!(dt("TIME"), DataType::Time32(TimeUnit::Millisecond));
        assert_eq!(dt("TIME(9)"), DataType::Time64(TimeUnit::Nanosecond));
        assert_eq!(
            dt("TIMESTAMP(3)"),
            DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        assert_eq!(
            dt("TIMESTAMP"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(
            dt("TIMESTAMP_LTZ(3)"),
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
        );
        assert_eq!(
            dt("TIMESTAMP(3) WITH LOCAL TIME ZONE"),
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
        );
    }

    #[test]
    fn nested_types_round_trip() {
        for text in [
            "ARRAY<BIGINT>",
            "ARRAY<STRING NOT NULL>",
            "MAP<STRING, DOUBLE>",
            "ROW<id BIGINT NOT NULL, tags ARRAY<STRING>, `the score` DECIMAL(5, 2)>",
            "TIMESTAMP_LTZ(3)",
            "TIMESTAMP(9) NOT NULL",
        ] {
            let t = SqlType::parse(text).unwrap();
            assert_eq!(t.to_string(), text);
            assert_eq!(SqlType::parse(&t.to_string()).unwrap(), t);
        }
        assert_eq!(
            SqlType::parse("ROW(a INT)").unwrap().to_string(),
            "ROW<a INT>"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| SqlType::parse(s).unwrap_err().to_string();
        assert!(e("BIGNUM")
            .starts_with("type `BIGNUM` is not valid: unknown type `BIGNUM`; weir knows BOOLEAN"));
        assert_eq!(e("DECIMAL(40, 2)"), "type `DECIMAL(40, 2)` is not valid: DECIMAL(40, 2): precision must be 1 to 38 and scale at most the precision");
        assert_eq!(
            e("ARRAY<INT"),
            "type `ARRAY<INT` is not valid: expected `>`, found the end"
        );
        assert_eq!(
            e("INT INT"),
            "type `INT INT` is not valid: unexpected `INT` after the type"
        );
        assert!(e("ROW<a INT, a STRING>").contains("field `a` appears twice"));
        assert!(e("TIMESTAMP(12)").contains("precision must be 0 to 9"));
    }
}
