//! Scalar expressions over columns, type-checked against a schema at plan time and evaluated
//! on whole record batches with Arrow's compute kernels.
//!
//! Built so far: columns, literals, arithmetic (`+ - * / %`), comparisons, `AND`/`OR`/`NOT`
//! (SQL three-valued logic), `IS [NOT] NULL`, `BETWEEN`, `IN` and `CAST`. Numeric operands are
//! widened to a common type as Flink does (INT + BIGINT is BIGINT, anything with DOUBLE is
//! DOUBLE). An unknown column or a type mismatch is an error at plan time naming the
//! expression and the types.

use std::fmt;
use std::sync::Arc;

use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Datum, Float64Array, Int32Array, Int64Array,
    RecordBatch, Scalar, StringArray,
};
use arrow_schema::{DataType, Schema};

use crate::error::{EngineError, Result};
use crate::types::type_name;

/// A constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    /// An integer literal: INT when it fits, else BIGINT, as in Flink.
    Int(i64),
    Float(f64),
    String(String),
    /// A day-time interval in milliseconds (`INTERVAL '5' SECOND`).
    Interval(i64),
    /// A `TIMESTAMP(3)` value, milliseconds since the epoch.
    Timestamp(i64),
    /// A `DATE`, days since the epoch.
    Date(i32),
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }

    pub(crate) fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod
        )
    }

    pub(crate) fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }
}

/// An expression tree, as built by the Table API (`col("x") + 1`) or from SQL.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Column(String),
    /// A column found by its position: what [`bind`] makes of [`Expr::Column`] for an
    /// operator's input, so evaluation never looks a name up.
    BoundColumn {
        index: usize,
        name: String,
    },
    Literal(Literal),
    Binary(Box<Expr>, BinaryOp, Box<Expr>),
    Not(Box<Expr>),
    IsNull(Box<Expr>),
    IsNotNull(Box<Expr>),
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Cast(Box<Expr>, DataType),
    /// `TRY_CAST(e AS t)`: NULL where `CAST` fails the job (a string that is not a number,
    /// a value out of the type's range).
    TryCast(Box<Expr>, DataType),
    /// A built-in scalar function.
    Call(Func, Vec<Expr>),
    /// `CASE WHEN c THEN v ... ELSE e END` (or `CASE x WHEN a THEN ...`).
    Case {
        operand: Option<Box<Expr>>,
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// An aggregate call; only valid in the select list of a grouped table.
    Agg {
        func: AggFunc,
        /// `None` for `COUNT(*)`.
        arg: Option<Box<Expr>>,
        distinct: bool,
    },
    /// `expr AS name`.
    Alias(Box<Expr>, String),
    /// A property of the group window (`w.start`, `TUMBLE_START(...)`).
    WindowProperty(WindowProperty),
    /// A call of a user-defined function, planned by the SDK that registered it.
    Udf(Arc<crate::udf::UdfRef>, Vec<Expr>),
    /// An ORDER BY key: `expr.desc()`.
    Sort {
        expr: Box<Expr>,
        desc: bool,
        nulls_first: bool,
    },
}

/// The aggregate functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunc {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    /// A user-defined aggregate function; the call is in `AggSpec::udaf`.
    Udf,
}

impl AggFunc {
    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "COUNT",
            AggFunc::Sum => "SUM",
            AggFunc::Min => "MIN",
            AggFunc::Max => "MAX",
            AggFunc::Avg => "AVG",
            AggFunc::Udf => "UDAF",
        }
    }

    /// From a SQL name (any case).
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" => AggFunc::Count,
            "SUM" => AggFunc::Sum,
            "MIN" => AggFunc::Min,
            "MAX" => AggFunc::Max,
            "AVG" => AggFunc::Avg,
            _ => return None,
        })
    }
}

/// Window start, end or time attribute of a group window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowProperty {
    Start,
    End,
    Rowtime,
}

pub mod bind;
pub mod functions;
pub mod json;

pub use bind::bind;

pub use functions::Func;

/// `col(name)`.
pub fn col(name: &str) -> Expr {
    Expr::Column(name.to_string())
}

/// `lit(value)`.
pub fn lit(value: impl Into<Literal>) -> Expr {
    Expr::Literal(value.into())
}

impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int(v as i64)
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Float(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::String(v)
    }
}

impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::String(v.to_string())
    }
}

macro_rules! binary_builders {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Expr {
            $(
                #[doc = concat!("`self ", stringify!($op), " other`.")]
                pub fn $name(self, other: impl Into<Expr>) -> Expr {
                    Expr::Binary(Box::new(self), BinaryOp::$op, Box::new(other.into()))
                }
            )*
        }
    };
}

binary_builders! {
    equals => Eq, not_equals => NotEq, lt => Lt, lt_eq => LtEq, gt => Gt, gt_eq => GtEq,
    and => And, or => Or,
}

macro_rules! arithmetic_operators {
    ($($trait:ident :: $method:ident => $op:ident),* $(,)?) => {
        $(
            impl<T: Into<Expr>> std::ops::$trait<T> for Expr {
                type Output = Expr;
                fn $method(self, other: T) -> Expr {
                    Expr::Binary(Box::new(self), BinaryOp::$op, Box::new(other.into()))
                }
            }
        )*
    };
}

// `col("x") + 1`, `col("x") % 3`, as in PyFlink's expression DSL.
arithmetic_operators! {
    Add::add => Add, Sub::sub => Sub, Mul::mul => Mul, Div::div => Div, Rem::rem => Mod,
}

impl std::ops::Not for Expr {
    type Output = Expr;
    /// `NOT self`.
    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

impl<T: Into<Literal>> From<T> for Expr {
    fn from(v: T) -> Self {
        Expr::Literal(v.into())
    }
}

impl Expr {
    /// `self IS TRUE` (`value` true) or `self IS FALSE`: never NULL, so a NULL input is
    /// FALSE, as in SQL.
    pub fn is_bool(self, value: bool) -> Expr {
        Expr::Call(
            Func::Coalesce,
            vec![self.equals(value), Expr::Literal(Literal::Bool(false))],
        )
    }

    /// `self IS NULL`.
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }

    /// `self IS NOT NULL`.
    pub fn is_not_null(self) -> Expr {
        Expr::IsNotNull(Box::new(self))
    }

    /// `self BETWEEN low AND high`.
    pub fn between(self, low: impl Into<Expr>, high: impl Into<Expr>) -> Expr {
        Expr::Between {
            expr: Box::new(self),
            low: Box::new(low.into()),
            high: Box::new(high.into()),
            negated: false,
        }
    }

    /// `self IN (list)`.
    pub fn in_list(self, list: Vec<Expr>) -> Expr {
        Expr::InList {
            expr: Box::new(self),
            list,
            negated: false,
        }
    }

    /// `CAST(self AS data_type)`.
    pub fn cast(self, data_type: DataType) -> Expr {
        Expr::Cast(Box::new(self), data_type)
    }

    /// Ascending order key (NULLs first, as Flink).
    pub fn asc(self) -> Expr {
        Expr::Sort {
            expr: Box::new(self),
            desc: false,
            nulls_first: true,
        }
    }

    /// Descending order key (NULLs last, as Flink).
    pub fn desc(self) -> Expr {
        Expr::Sort {
            expr: Box::new(self),
            desc: true,
            nulls_first: false,
        }
    }

    /// `expr AS name` (Table API `.alias("name")`).
    pub fn alias(self, name: &str) -> Expr {
        Expr::Alias(Box::new(self), name.to_string())
    }

    /// A built-in function of this and `args`: `col("s").call(Func::Upper, vec![])`.
    pub fn call(self, func: Func, mut args: Vec<Expr>) -> Expr {
        args.insert(0, self);
        Expr::Call(func, args)
    }

    fn agg(self, func: AggFunc, distinct: bool) -> Expr {
        Expr::Agg {
            func,
            arg: Some(Box::new(self)),
            distinct,
        }
    }

    /// `COUNT(expr)`.
    pub fn count(self) -> Expr {
        self.agg(AggFunc::Count, false)
    }
    /// `COUNT(DISTINCT expr)`.
    pub fn count_distinct(self) -> Expr {
        self.agg(AggFunc::Count, true)
    }
    /// `SUM(expr)`.
    pub fn sum(self) -> Expr {
        self.agg(AggFunc::Sum, false)
    }
    /// `MIN(expr)`.
    pub fn min(self) -> Expr {
        self.agg(AggFunc::Min, false)
    }
    /// `MAX(expr)`.
    pub fn max(self) -> Expr {
        self.agg(AggFunc::Max, false)
    }
    /// `AVG(expr)`.
    pub fn avg(self) -> Expr {
        self.agg(AggFunc::Avg, false)
    }

    /// The name a column computed by this expression gets when none is given: the column's
    /// own name, an alias, or `None` (the planner then names it `EXPR$n`).
    pub fn output_name(&self) -> Option<String> {
        match self {
            Expr::Column(c) | Expr::BoundColumn { name: c, .. } => Some(c.clone()),
            Expr::Alias(_, n) => Some(n.clone()),
            Expr::WindowProperty(WindowProperty::Start) => Some("window_start".into()),
            Expr::WindowProperty(WindowProperty::End) => Some("window_end".into()),
            Expr::WindowProperty(WindowProperty::Rowtime) => Some("window_time".into()),
            _ => None,
        }
    }

    /// Without a top-level alias.
    pub fn unaliased(&self) -> &Expr {
        match self {
            Expr::Alias(e, _) | Expr::Sort { expr: e, .. } => e.unaliased(),
            e => e,
        }
    }

    /// Whether an aggregate call occurs anywhere in this expression.
    pub fn contains_agg(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= e.is_agg_call());
        found
    }

    /// An aggregate call: a built-in one or a user-defined aggregate function.
    pub fn is_agg_call(&self) -> bool {
        match self {
            Expr::Agg { .. } => true,
            Expr::Udf(u, _) => u.kind.is_aggregate(),
            _ => false,
        }
    }

    /// Whether a user-defined scalar or table function is called anywhere in this expression
    /// (aggregate functions are planned with their aggregate).
    pub fn contains_udf(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e, Expr::Udf(u, _) if !u.kind.is_aggregate()));
        found
    }

    /// Calls `f` on this expression and every sub-expression.
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_)
            | Expr::BoundColumn { .. }
            | Expr::Literal(_)
            | Expr::WindowProperty(_) => {}
            Expr::Binary(l, _, r) => {
                l.visit(f);
                r.visit(f);
            }
            Expr::Not(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::Cast(e, _)
            | Expr::TryCast(e, _) => e.visit(f),
            Expr::Alias(e, _) => e.visit(f),
            Expr::Sort { expr, .. } => expr.visit(f),
            Expr::Between {
                expr, low, high, ..
            } => {
                expr.visit(f);
                low.visit(f);
                high.visit(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
            Expr::Call(_, args) | Expr::Udf(_, args) => args.iter().for_each(|e| e.visit(f)),
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.visit(f);
                }
                for (c, v) in branches {
                    c.visit(f);
                    v.visit(f);
                }
                if let Some(o) = otherwise {
                    o.visit(f);
                }
            }
            Expr::Agg { arg, .. } => {
                if let Some(a) = arg {
                    a.visit(f);
                }
            }
        }
    }

    /// Rewrites bottom-up: `f` sees each node after its children were rewritten and returns
    /// `Some(replacement)` or `None` to keep it.
    pub fn transform(self, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
        let b = |e: Box<Expr>, f: &mut dyn FnMut(&Expr) -> Option<Expr>| Box::new(e.transform(f));
        let e = match self {
            e @ (Expr::Column(_)
            | Expr::BoundColumn { .. }
            | Expr::Literal(_)
            | Expr::WindowProperty(_)) => e,
            Expr::Binary(l, op, r) => {
                let l = b(l, f);
                Expr::Binary(l, op, b(r, f))
            }
            Expr::Not(e) => Expr::Not(b(e, f)),
            Expr::IsNull(e) => Expr::IsNull(b(e, f)),
            Expr::IsNotNull(e) => Expr::IsNotNull(b(e, f)),
            Expr::Cast(e, t) => Expr::Cast(b(e, f), t),
            Expr::TryCast(e, t) => Expr::TryCast(b(e, f), t),
            Expr::Alias(e, n) => Expr::Alias(b(e, f), n),
            Expr::Sort {
                expr,
                desc,
                nulls_first,
            } => Expr::Sort {
                expr: b(expr, f),
                desc,
                nulls_first,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: b(expr, f),
                low: b(low, f),
                high: b(high, f),
                negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: b(expr, f),
                list: list.into_iter().map(|e| e.transform(f)).collect(),
                negated,
            },
            Expr::Call(func, args) => {
                Expr::Call(func, args.into_iter().map(|e| e.transform(f)).collect())
            }
            Expr::Udf(u, args) => Expr::Udf(u, args.into_iter().map(|e| e.transform(f)).collect()),
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => Expr::Case {
                operand: operand.map(|o| b(o, f)),
                branches: branches
                    .into_iter()
                    .map(|(c, v)| (c.transform(f), v.transform(f)))
                    .collect(),
                otherwise: otherwise.map(|o| b(o, f)),
            },
            Expr::Agg {
                func,
                arg,
                distinct,
            } => Expr::Agg {
                func,
                arg: arg.map(|a| b(a, f)),
                distinct,
            },
        };
        f(&e).unwrap_or(e)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) | Expr::BoundColumn { name: c, .. } => write!(f, "{c}"),
            Expr::Literal(Literal::Null) => write!(f, "NULL"),
            Expr::Literal(Literal::Bool(b)) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Literal(Literal::Int(i)) => write!(f, "{i}"),
            Expr::Literal(Literal::Float(x)) => write!(f, "{x:?}"),
            Expr::Literal(Literal::String(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Expr::Literal(Literal::Interval(ms)) => {
                write!(f, "INTERVAL '{}' SECOND", *ms as f64 / 1000.0)
            }
            Expr::Literal(Literal::Timestamp(ms)) => {
                write!(
                    f,
                    "TIMESTAMP '{}'",
                    crate::expr::functions::format_millis(*ms)
                )
            }
            Expr::Literal(Literal::Date(d)) => {
                write!(f, "DATE '{}'", crate::expr::functions::format_date(*d))
            }
            Expr::Call(func, args) => {
                let items: Vec<String> = args.iter().map(|e| e.to_string()).collect();
                write!(f, "{}({})", func.name(), items.join(", "))
            }
            Expr::Udf(u, args) => {
                let items: Vec<String> = args.iter().map(|e| e.to_string()).collect();
                write!(f, "{}({})", u.name, items.join(", "))
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                write!(f, "CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (c, v) in branches {
                    write!(f, " WHEN {c} THEN {v}")?;
                }
                if let Some(o) = otherwise {
                    write!(f, " ELSE {o}")?;
                }
                write!(f, " END")
            }
            Expr::Agg {
                func,
                arg,
                distinct,
            } => match arg {
                None => write!(f, "{}(*)", func.name()),
                Some(a) => write!(
                    f,
                    "{}({}{a})",
                    func.name(),
                    if *distinct { "DISTINCT " } else { "" }
                ),
            },
            Expr::Alias(e, n) => write!(f, "{e} AS {n}"),
            Expr::Sort { expr, desc, .. } => {
                write!(f, "{expr} {}", if *desc { "DESC" } else { "ASC" })
            }
            Expr::WindowProperty(p) => write!(
                f,
                "{}",
                match p {
                    WindowProperty::Start => "window_start",
                    WindowProperty::End => "window_end",
                    WindowProperty::Rowtime => "window_time",
                }
            ),
            Expr::Binary(l, op, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::IsNull(e) => write!(f, "{e} IS NULL"),
            Expr::IsNotNull(e) => write!(f, "{e} IS NOT NULL"),
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                write!(
                    f,
                    "{expr} {}BETWEEN {low} AND {high}",
                    if *negated { "NOT " } else { "" }
                )
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let items: Vec<String> = list.iter().map(|e| e.to_string()).collect();
                write!(
                    f,
                    "{expr} {}IN ({})",
                    if *negated { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            Expr::Cast(e, t) => write!(f, "CAST({e} AS {})", type_name(t)),
            Expr::TryCast(e, t) => write!(f, "TRY_CAST({e} AS {})", type_name(t)),
        }
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Null
}

/// The type both sides of an arithmetic or comparison operator are brought to.
pub(crate) fn common_numeric(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    // DECIMAL with an integer or a DECIMAL stays exact; with a float it becomes DOUBLE.
    match (a, b) {
        (Decimal128(_, s1), Decimal128(_, s2)) => return Some(Decimal128(38, (*s1).max(*s2))),
        (Decimal128(_, s), t) | (t, Decimal128(_, s)) if t.is_integer() || *t == Null => {
            return Some(Decimal128(38, *s))
        }
        (Decimal128(..), t) | (t, Decimal128(..)) if t.is_floating() => return Some(Float64),
        _ => {}
    }
    let rank = |t: &DataType| match t {
        Null => Some(0),
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        Float32 => Some(5),
        Float64 => Some(6),
        _ => None,
    };
    let (ra, rb) = (rank(a)?, rank(b)?);
    Some(if ra >= rb { a.clone() } else { b.clone() }).map(|t| if t == Null { Int32 } else { t })
}

/// The result of evaluating an expression on a batch: a column, or one value for every row.
#[derive(Clone, Debug)]
pub enum Value {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Value {
    /// As an array of `len` rows.
    pub fn into_array(self, len: usize) -> Result<ArrayRef> {
        match self {
            Value::Array(a) => Ok(a),
            Value::Scalar(s) => {
                if s.is_null(0) {
                    return Ok(new_null_array(s.data_type(), len));
                }
                let idx = arrow_array::UInt32Array::from(vec![0u32; len]);
                arrow_select::take::take(&s, &idx, None).map_err(|e| EngineError::Arrow {
                    context: "expanding a constant".into(),
                    source: e,
                })
            }
        }
    }

    fn datum(&self) -> Box<dyn Datum + '_> {
        match self {
            Value::Array(a) => Box::new(a.clone()),
            Value::Scalar(s) => Box::new(Scalar::new(s.clone())),
        }
    }

    fn data_type(&self) -> &DataType {
        match self {
            Value::Array(a) | Value::Scalar(a) => a.data_type(),
        }
    }
}

fn literal_array(l: &Literal) -> ArrayRef {
    match l {
        Literal::Null => new_null_array(&DataType::Null, 1),
        Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Int(i) => match i32::try_from(*i) {
            Ok(v) => Arc::new(Int32Array::from(vec![v])),
            Err(_) => Arc::new(Int64Array::from(vec![*i])),
        },
        Literal::Float(x) => Arc::new(Float64Array::from(vec![*x])),
        Literal::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Interval(ms) => Arc::new(arrow_array::DurationMillisecondArray::from(vec![*ms])),
        Literal::Timestamp(ms) => Arc::new(arrow_array::TimestampMillisecondArray::from(vec![*ms])),
        Literal::Date(d) => Arc::new(arrow_array::Date32Array::from(vec![*d])),
    }
}

pub(crate) fn plan_err(e: &Expr, detail: impl Into<String>) -> EngineError {
    EngineError::Plan {
        expr: e.to_string(),
        detail: detail.into(),
    }
}

fn arrow_err(e: &Expr) -> impl Fn(arrow_schema::ArrowError) -> EngineError + '_ {
    move |source| EngineError::Arrow {
        context: format!("evaluating `{e}`"),
        source,
    }
}

impl Expr {
    /// The type of this expression over `schema`, or why it cannot be planned.
    pub fn data_type(&self, schema: &Schema) -> Result<DataType> {
        Ok(match self {
            Expr::BoundColumn { index, name } => match schema.fields().get(*index) {
                Some(f) => f.data_type().clone(),
                None => {
                    return Err(plan_err(
                        self,
                        format!("column `{name}` (#{index}) is not in the input"),
                    ))
                }
            },
            Expr::Column(c) => match schema.field_with_name(c) {
                Ok(f) => f.data_type().clone(),
                Err(_) => {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(plan_err(
                        self,
                        format!("no column `{c}`; the input has {}", names.join(", ")),
                    ));
                }
            },
            Expr::Literal(l) => literal_array(l).data_type().clone(),
            Expr::Binary(l, op, r) => {
                let (lt, rt) = (l.data_type(schema)?, r.data_type(schema)?);
                let mismatch = || {
                    plan_err(
                        self,
                        format!(
                            "`{}` cannot be applied to {} and {}",
                            op.symbol(),
                            type_name(&lt),
                            type_name(&rt)
                        ),
                    )
                };
                if let Some(t) = temporal_arithmetic(*op, &lt, &rt) {
                    t
                } else if op.is_arithmetic() {
                    if !(is_numeric(&lt) && is_numeric(&rt)) {
                        return Err(mismatch());
                    }
                    common_numeric(&lt, &rt).ok_or_else(mismatch)?
                } else if op.is_comparison() {
                    let ok = (is_numeric(&lt) && is_numeric(&rt))
                        || comparable(&lt, &rt)
                        || lt == DataType::Null
                        || rt == DataType::Null;
                    if !ok {
                        return Err(mismatch());
                    }
                    DataType::Boolean
                } else {
                    for t in [&lt, &rt] {
                        if !matches!(t, DataType::Boolean | DataType::Null) {
                            return Err(mismatch());
                        }
                    }
                    DataType::Boolean
                }
            }
            Expr::Not(e) => match e.data_type(schema)? {
                DataType::Boolean | DataType::Null => DataType::Boolean,
                t => {
                    return Err(plan_err(
                        self,
                        format!("NOT needs a BOOLEAN, not {}", type_name(&t)),
                    ))
                }
            },
            Expr::IsNull(e) | Expr::IsNotNull(e) => {
                e.data_type(schema)?;
                DataType::Boolean
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                expr.clone().gt_eq((**low).clone()).data_type(schema)?;
                expr.clone().lt_eq((**high).clone()).data_type(schema)?;
                DataType::Boolean
            }
            Expr::InList { expr, list, .. } => {
                for item in list {
                    expr.clone().equals(item.clone()).data_type(schema)?;
                }
                DataType::Boolean
            }
            Expr::Cast(e, t) | Expr::TryCast(e, t) => {
                let from = e.data_type(schema)?;
                if !arrow_cast::can_cast_types(&from, t) {
                    return Err(plan_err(
                        self,
                        format!("{} cannot be cast to {}", type_name(&from), type_name(t)),
                    ));
                }
                t.clone()
            }
            Expr::Call(func, args) => {
                let types = args
                    .iter()
                    .map(|a| a.data_type(schema))
                    .collect::<Result<Vec<_>>>()?;
                func.return_type(&types, args)
                    .map_err(|detail| plan_err(self, detail))?
            }
            Expr::Udf(u, args) => {
                if u.kind == crate::udf::FunctionKind::Table {
                    return Err(plan_err(
                        self,
                        format!(
                            "`{}` is a table function: it gives rows, not a value; use it in \
                             join_lateral / flat_map or FROM t, LATERAL TABLE({self})",
                            u.name
                        ),
                    ));
                }
                for a in args {
                    a.data_type(schema)?;
                }
                u.result_type.clone()
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                let mut result: Option<DataType> = None;
                let unify = |t: DataType, result: &mut Option<DataType>| -> Result<()> {
                    *result = Some(match result.take() {
                        None => t,
                        Some(r) if r == t || t == DataType::Null => r,
                        Some(DataType::Null) => t,
                        Some(r) => common_numeric(&r, &t).ok_or_else(|| {
                            plan_err(
                                self,
                                format!(
                                    "the branches have different types: {} and {}",
                                    type_name(&r),
                                    type_name(&t)
                                ),
                            )
                        })?,
                    });
                    Ok(())
                };
                for (c, v) in branches {
                    let cond = match operand {
                        Some(o) => (**o).clone().equals(c.clone()),
                        None => c.clone(),
                    };
                    let ct = cond.data_type(schema)?;
                    if !matches!(ct, DataType::Boolean | DataType::Null) {
                        return Err(plan_err(
                            self,
                            format!("WHEN needs a BOOLEAN, not {}", type_name(&ct)),
                        ));
                    }
                    unify(v.data_type(schema)?, &mut result)?;
                }
                if let Some(o) = otherwise {
                    unify(o.data_type(schema)?, &mut result)?;
                }
                match result {
                    Some(DataType::Null) | None => DataType::Utf8,
                    Some(t) => t,
                }
            }
            Expr::Alias(e, _) | Expr::Sort { expr: e, .. } => e.data_type(schema)?,
            Expr::Agg { .. } => {
                return Err(plan_err(
                    self,
                    "an aggregate function is only allowed in the select list of a grouped \
                     table (GROUP BY / group_by(...).select(...))",
                ))
            }
            Expr::WindowProperty(_) => {
                return Err(plan_err(
                    self,
                    "a window property is only allowed in the select list of a window aggregate",
                ))
            }
        })
    }

    /// `a op b` on evaluated sides (`self` names the expression in errors).
    fn binary_values(
        &self,
        batch: &RecordBatch,
        op: BinaryOp,
        mut a: Value,
        mut b: Value,
    ) -> Result<Value> {
        let op = &op;
        let both_scalar = matches!((&a, &b), (Value::Scalar(_), Value::Scalar(_)));
        if a.data_type() != b.data_type() {
            if let Some(t) = common_numeric(a.data_type(), b.data_type()) {
                a = cast_value(a, &t, self)?;
                b = cast_value(b, &t, self)?;
            } else if op.is_comparison() {
                if let (DataType::Timestamp(..), DataType::Timestamp(..))
                | (DataType::Decimal128(..), _)
                | (_, DataType::Decimal128(..)) = (a.data_type(), b.data_type())
                {
                    let t = if matches!(a.data_type(), DataType::Decimal128(..)) {
                        a.data_type().clone()
                    } else {
                        b.data_type().clone()
                    };
                    a = cast_value(a, &t, self)?;
                    b = cast_value(b, &t, self)?;
                }
            }
        }
        let (da, db) = (a.datum(), b.datum());
        let (da, db) = (da.as_ref(), db.as_ref());
        let out: ArrayRef = match op {
            BinaryOp::Add => arrow_arith::numeric::add(da, db).map_err(arrow_err(self))?,
            BinaryOp::Sub => arrow_arith::numeric::sub(da, db).map_err(arrow_err(self))?,
            BinaryOp::Mul => arrow_arith::numeric::mul(da, db).map_err(arrow_err(self))?,
            BinaryOp::Div => arrow_arith::numeric::div(da, db).map_err(arrow_err(self))?,
            BinaryOp::Mod => arrow_arith::numeric::rem(da, db).map_err(arrow_err(self))?,
            BinaryOp::Eq => Arc::new(arrow_ord::cmp::eq(da, db).map_err(arrow_err(self))?),
            BinaryOp::NotEq => Arc::new(arrow_ord::cmp::neq(da, db).map_err(arrow_err(self))?),
            BinaryOp::Lt => Arc::new(arrow_ord::cmp::lt(da, db).map_err(arrow_err(self))?),
            BinaryOp::LtEq => Arc::new(arrow_ord::cmp::lt_eq(da, db).map_err(arrow_err(self))?),
            BinaryOp::Gt => Arc::new(arrow_ord::cmp::gt(da, db).map_err(arrow_err(self))?),
            BinaryOp::GtEq => Arc::new(arrow_ord::cmp::gt_eq(da, db).map_err(arrow_err(self))?),
            BinaryOp::And | BinaryOp::Or => {
                let n = batch.num_rows();
                let x = as_bool(a.clone().into_array(n)?, self)?;
                let y = as_bool(b.clone().into_array(n)?, self)?;
                Arc::new(if *op == BinaryOp::And {
                    arrow_arith::boolean::and_kleene(&x, &y).map_err(arrow_err(self))?
                } else {
                    arrow_arith::boolean::or_kleene(&x, &y).map_err(arrow_err(self))?
                })
            }
        };
        // Decimal arithmetic: Arrow picks its own precision and scale; bring the
        // result to the planned type.
        let out = match (a.data_type(), op.is_arithmetic()) {
            (DataType::Decimal128(_, s), true)
                if out.data_type() != &DataType::Decimal128(38, *s) =>
            {
                arrow_cast::cast(&out, &DataType::Decimal128(38, *s)).map_err(arrow_err(self))?
            }
            _ => out,
        };
        // Both sides constant: the result is one value too.
        Ok(if both_scalar {
            Value::Scalar(out)
        } else {
            Value::Array(out)
        })
    }

    /// Evaluates on every row of `batch`. [`bind`] the expression to the batch's schema first:
    /// evaluation assumes the types fit and does not decide them again.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<Value> {
        Ok(match self {
            Expr::BoundColumn { index, name } => Value::Array(
                batch
                    .columns()
                    .get(*index)
                    .cloned()
                    .ok_or_else(|| plan_err(self, format!("no column `{name}` (#{index})")))?,
            ),
            Expr::Column(c) => Value::Array(
                batch
                    .column_by_name(c)
                    .cloned()
                    .ok_or_else(|| plan_err(self, format!("no column `{c}`")))?,
            ),
            Expr::Literal(l) => Value::Scalar(literal_array(l)),
            Expr::Binary(l, op, r) => {
                // [`bind`] brought both sides of a planned operator to one type; only the
                // comparisons BETWEEN, IN and `CASE x WHEN` build while they run still need it.
                self.binary_values(batch, *op, l.evaluate(batch)?, r.evaluate(batch)?)?
            }
            Expr::Not(e) => {
                let v = as_bool(e.evaluate(batch)?.into_array(batch.num_rows())?, self)?;
                Value::Array(Arc::new(
                    arrow_arith::boolean::not(&v).map_err(arrow_err(self))?,
                ))
            }
            Expr::IsNull(e) => {
                let v = e.evaluate(batch)?.into_array(batch.num_rows())?;
                Value::Array(Arc::new(
                    arrow_arith::boolean::is_null(&v).map_err(arrow_err(self))?,
                ))
            }
            Expr::IsNotNull(e) => {
                let v = e.evaluate(batch)?.into_array(batch.num_rows())?;
                Value::Array(Arc::new(
                    arrow_arith::boolean::is_not_null(&v).map_err(arrow_err(self))?,
                ))
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let e = expr
                    .clone()
                    .gt_eq((**low).clone())
                    .and(expr.clone().lt_eq((**high).clone()));
                let e = if *negated { !e } else { e };
                e.evaluate(batch)?
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                // `x = a OR x = b OR ...` folded in a loop: the probe is evaluated once, and a
                // list of 10,000 items costs no stack.
                let mut acc: Option<Value> = None;
                let x = expr.evaluate(batch)?;
                for item in list {
                    let eq =
                        self.binary_values(batch, BinaryOp::Eq, x.clone(), item.evaluate(batch)?)?;
                    acc = Some(match acc {
                        None => eq,
                        Some(a) => self.binary_values(batch, BinaryOp::Or, a, eq)?,
                    });
                }
                let v = match acc {
                    Some(v) => v,
                    None => Value::Scalar(literal_array(&Literal::Bool(false))),
                };
                if *negated {
                    let n = batch.num_rows();
                    let b = as_bool(v.into_array(n)?, self)?;
                    Value::Array(Arc::new(
                        arrow_arith::boolean::not(&b).map_err(arrow_err(self))?,
                    ))
                } else {
                    v
                }
            }
            Expr::Cast(e, t) => strict_cast(e.evaluate(batch)?, t, self)?,
            Expr::TryCast(e, t) => cast_value(e.evaluate(batch)?, t, self)?,
            Expr::Call(func, args) => {
                let values = args
                    .iter()
                    .map(|a| a.evaluate(batch))
                    .collect::<Result<Vec<_>>>()?;
                let constant = args.iter().all(|a| matches!(a, Expr::Literal(_)))
                    && !func.is_nondeterministic();
                let n = if constant { 1 } else { batch.num_rows() };
                let arrays = values
                    .into_iter()
                    .map(|v| match v {
                        Value::Scalar(a) if constant => Ok(a),
                        v => v.into_array(n),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out = if *func == Func::Get {
                    let (i, _) = functions::get_field(arrays[0].data_type(), &args[1])
                        .map_err(|d| plan_err(self, d))?;
                    let s = arrays[0]
                        .as_any()
                        .downcast_ref::<arrow_array::StructArray>();
                    let s = s.ok_or_else(|| plan_err(self, "GET reads a ROW"))?;
                    // A NULL row has NULL fields.
                    let field = s.column(i).clone();
                    match s.nulls() {
                        Some(n) if n.null_count() > 0 => {
                            let valid = arrow_array::BooleanArray::new(n.inner().clone(), None);
                            arrow_select::nullif::nullif(
                                &field,
                                &arrow_arith::boolean::not(&valid).map_err(|source| {
                                    EngineError::Arrow {
                                        context: format!("evaluating `{self}`"),
                                        source,
                                    }
                                })?,
                            )
                            .map_err(|source| EngineError::Arrow {
                                context: format!("evaluating `{self}`"),
                                source,
                            })?
                        }
                        _ => field,
                    }
                } else if *func == Func::Row {
                    let types: Vec<DataType> =
                        arrays.iter().map(|a| a.data_type().clone()).collect();
                    let fields = functions::row_fields(&types, args);
                    Arc::new(
                        arrow_array::StructArray::try_new(fields, arrays, None).map_err(
                            |source| EngineError::Arrow {
                                context: format!("evaluating `{self}`"),
                                source,
                            },
                        )?,
                    )
                } else if let Func::Json(j) = func {
                    json_call(self, *j, args, &arrays, n)?
                } else {
                    func.evaluate(&arrays, n).map_err(|detail| {
                        EngineError::Execution(format!("evaluating `{self}`: {detail}"))
                    })?
                };
                if constant {
                    Value::Scalar(out)
                } else {
                    Value::Array(out)
                }
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                let n = batch.num_rows();
                let t = self.data_type(batch.schema_ref())?;
                let mut result = match otherwise {
                    Some(o) => cast_value(o.evaluate(batch)?, &t, self)?.into_array(n)?,
                    None => new_null_array(&t, n),
                };
                // Later branches first, so the first matching WHEN wins.
                for (c, v) in branches.iter().rev() {
                    let cond = match operand {
                        Some(o) => (**o).clone().equals(c.clone()),
                        None => c.clone(),
                    };
                    let mask = as_bool(cond.evaluate(batch)?.into_array(n)?, self)?;
                    let mask = arrow_arith::boolean::is_not_null(&mask)
                        .and_then(|nn| arrow_arith::boolean::and(&mask, &nn))
                        .map_err(arrow_err(self))?;
                    let value = cast_value(v.evaluate(batch)?, &t, self)?.into_array(n)?;
                    result =
                        arrow_select::zip::zip(&mask, &value, &result).map_err(arrow_err(self))?;
                }
                Value::Array(result)
            }
            Expr::Alias(e, _) | Expr::Sort { expr: e, .. } => e.evaluate(batch)?,
            Expr::Agg { .. } | Expr::WindowProperty(_) => {
                return Err(EngineError::Execution(format!(
                    "`{self}` cannot be evaluated row by row; the planner should have replaced it"
                )))
            }
            Expr::Udf(u, _) => {
                return Err(EngineError::Execution(format!(
                    "the user-defined function `{}` runs in its own operator; the planner should \
                     have moved it there",
                    u.name
                )))
            }
        })
    }
}

/// Timestamps and dates plus or minus an interval, and the difference of two timestamps.
pub(crate) fn temporal_arithmetic(op: BinaryOp, l: &DataType, r: &DataType) -> Option<DataType> {
    use DataType::*;
    match (op, l, r) {
        (BinaryOp::Add | BinaryOp::Sub, Timestamp(..) | Date32, Duration(_)) => Some(l.clone()),
        (BinaryOp::Add, Duration(_), Timestamp(..) | Date32) => Some(r.clone()),
        (BinaryOp::Sub, Timestamp(u, _), Timestamp(..)) => Some(Duration(*u)),
        (BinaryOp::Add | BinaryOp::Sub, Duration(_), Duration(_)) => Some(l.clone()),
        _ => None,
    }
}

/// Whether two non-numeric types can be compared.
fn comparable(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    a == b
        || matches!(
            (a, b),
            (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View)
        )
        || matches!((a, b), (Timestamp(..), Timestamp(..)))
        || matches!((a, b), (Decimal128(..), Decimal128(..)))
        || (a.is_numeric() && matches!(b, Decimal128(..)))
        || (b.is_numeric() && matches!(a, Decimal128(..)))
}

fn cast_value(v: Value, t: &DataType, e: &Expr) -> Result<Value> {
    if v.data_type() == t {
        return Ok(v);
    }
    Ok(match v {
        Value::Array(a) => Value::Array(arrow_cast::cast(&a, t).map_err(arrow_err(e))?),
        Value::Scalar(a) => Value::Scalar(arrow_cast::cast(&a, t).map_err(arrow_err(e))?),
    })
}

/// `CAST` as Flink does it: a value that does not convert (`CAST('abc' AS INT)`, a number out
/// of the target's range) fails with the value named, instead of becoming NULL.
fn strict_cast(v: Value, t: &DataType, e: &Expr) -> Result<Value> {
    if v.data_type() == t {
        return Ok(v);
    }
    let opts = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |a: &ArrayRef| {
        arrow_cast::cast_with_options(a, t, &opts).map_err(|err| {
            EngineError::Execution(format!(
                "evaluating `{e}`: {err} (TRY_CAST gives NULL instead)"
            ))
        })
    };
    Ok(match v {
        Value::Array(a) => Value::Array(cast(&a)?),
        Value::Scalar(a) => Value::Scalar(cast(&a)?),
    })
}

fn as_bool(a: ArrayRef, e: &Expr) -> Result<BooleanArray> {
    let a = if a.data_type() == &DataType::Null {
        arrow_cast::cast(&a, &DataType::Boolean).map_err(arrow_err(e))?
    } else {
        a
    };
    a.as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| {
            plan_err(
                e,
                format!("expected BOOLEAN, found {}", type_name(a.data_type())),
            )
        })
}

/// A JSON function's call (apart from [`Expr::evaluate`], whose frame stays small for deep
/// expressions): `JSON_OBJECT` / `JSON_ARRAY` nest their JSON-valued arguments as JSON.
#[inline(never)]
fn json_call(
    call: &Expr,
    j: json::JsonFunc,
    args: &[Expr],
    arrays: &[ArrayRef],
    n: usize,
) -> Result<ArrayRef> {
    let raw: Vec<bool> = args.iter().map(json::is_json_text).collect();
    j.evaluate_with(arrays, n, &raw)
        .map_err(|detail| EngineError::Execution(format!("evaluating `{call}`: {detail}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::Field;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("y", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)])),
                Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("d"),
                ])),
            ],
        )
        .unwrap()
    }

    fn eval(e: &Expr) -> ArrayRef {
        let b = batch();
        let e = bind(e, b.schema_ref()).unwrap();
        e.evaluate(&b).unwrap().into_array(b.num_rows()).unwrap()
    }

    fn bools(e: &Expr) -> Vec<Option<bool>> {
        eval(e).as_boolean().iter().collect()
    }

    #[test]
    fn arithmetic_widens_like_flink() {
        let b = batch();
        let e = col("x") + 1;
        assert_eq!(e.data_type(b.schema_ref()).unwrap(), DataType::Int64);
        let v: Vec<_> = eval(&e).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(v, [Some(2), Some(3), None, Some(5)]);
        let e = col("x") * col("y");
        assert_eq!(e.data_type(b.schema_ref()).unwrap(), DataType::Float64);
        let v: Vec<_> = eval(&e).as_primitive::<Float64Type>().iter().collect();
        assert_eq!(v, [Some(0.5), Some(3.0), None, Some(14.0)]);
        let v: Vec<_> = eval(&(col("x") % 2))
            .as_primitive::<Int64Type>()
            .iter()
            .collect();
        assert_eq!(v, [Some(1), Some(0), None, Some(0)]);
    }

    #[test]
    fn three_valued_logic() {
        assert_eq!(
            bools(&col("x").gt(1)),
            [Some(false), Some(true), None, Some(true)]
        );
        // NULL AND FALSE is FALSE; NULL OR TRUE is TRUE.
        assert_eq!(bools(&col("x").gt(1).and(false)), [Some(false); 4]);
        assert_eq!(bools(&col("x").gt(1).or(true)), [Some(true); 4]);
        assert_eq!(
            bools(&col("x").is_null()),
            [Some(false), Some(false), Some(true), Some(false)]
        );
        assert_eq!(
            bools(&!col("s").is_not_null()),
            [Some(false), Some(true), Some(false), Some(false)]
        );
        assert_eq!(
            bools(&col("x").between(2, 3)),
            [Some(false), Some(true), None, Some(false)]
        );
        assert_eq!(
            bools(&col("x").in_list(vec![lit(1), lit(4)])),
            [Some(true), Some(false), None, Some(true)]
        );
        assert_eq!(
            bools(&col("s").equals("c")),
            [Some(false), None, Some(true), Some(false)]
        );
    }

    #[test]
    fn cast() {
        let v: Vec<_> = eval(&col("y").cast(DataType::Int64))
            .as_primitive::<Int64Type>()
            .iter()
            .collect();
        assert_eq!(v, [Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn plan_errors_name_the_expression_and_the_types() {
        let b = batch();
        let cases = [
            (
                col("s") + 1,
                "expression `(s + 1)`: `+` cannot be applied to STRING and INT",
            ),
            (
                col("z").gt(1),
                "expression `z`: no column `z`; the input has x, y, s",
            ),
            (
                col("x").and(true),
                "expression `(x AND TRUE)`: `AND` cannot be applied to BIGINT and BOOLEAN",
            ),
            (
                col("s").gt(1),
                "expression `(s > 1)`: `>` cannot be applied to STRING and INT",
            ),
            (
                !col("x"),
                "expression `NOT x`: NOT needs a BOOLEAN, not BIGINT",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.data_type(b.schema_ref()).unwrap_err().to_string(), want);
        }
    }
}
