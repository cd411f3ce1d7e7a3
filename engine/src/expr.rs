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

    fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod
        )
    }

    fn is_comparison(self) -> bool {
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
}

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
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) => write!(f, "{c}"),
            Expr::Literal(Literal::Null) => write!(f, "NULL"),
            Expr::Literal(Literal::Bool(b)) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Literal(Literal::Int(i)) => write!(f, "{i}"),
            Expr::Literal(Literal::Float(x)) => write!(f, "{x:?}"),
            Expr::Literal(Literal::String(s)) => write!(f, "'{}'", s.replace('\'', "''")),
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
        }
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Null
}

/// The type both sides of an arithmetic or comparison operator are brought to.
fn common_numeric(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
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
    }
}

fn plan_err(e: &Expr, detail: impl Into<String>) -> EngineError {
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
                if op.is_arithmetic() {
                    if !(is_numeric(&lt) && is_numeric(&rt)) {
                        return Err(mismatch());
                    }
                    common_numeric(&lt, &rt).ok_or_else(mismatch)?
                } else if op.is_comparison() {
                    let ok = (is_numeric(&lt) && is_numeric(&rt))
                        || lt == rt
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
            Expr::Cast(e, t) => {
                let from = e.data_type(schema)?;
                if !arrow_cast::can_cast_types(&from, t) {
                    return Err(plan_err(
                        self,
                        format!("{} cannot be cast to {}", type_name(&from), type_name(t)),
                    ));
                }
                t.clone()
            }
        })
    }

    /// Evaluates on every row of `batch`. Plan with [`Expr::data_type`] first: evaluation
    /// assumes the types fit.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<Value> {
        Ok(match self {
            Expr::Column(c) => Value::Array(
                batch
                    .column_by_name(c)
                    .cloned()
                    .ok_or_else(|| plan_err(self, format!("no column `{c}`")))?,
            ),
            Expr::Literal(l) => Value::Scalar(literal_array(l)),
            Expr::Binary(l, op, r) => {
                let (mut a, mut b) = (l.evaluate(batch)?, r.evaluate(batch)?);
                if op.is_arithmetic() || (op.is_comparison() && a.data_type() != b.data_type()) {
                    if let Some(t) = common_numeric(a.data_type(), b.data_type()) {
                        a = cast_value(a, &t, self)?;
                        b = cast_value(b, &t, self)?;
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
                    BinaryOp::NotEq => {
                        Arc::new(arrow_ord::cmp::neq(da, db).map_err(arrow_err(self))?)
                    }
                    BinaryOp::Lt => Arc::new(arrow_ord::cmp::lt(da, db).map_err(arrow_err(self))?),
                    BinaryOp::LtEq => {
                        Arc::new(arrow_ord::cmp::lt_eq(da, db).map_err(arrow_err(self))?)
                    }
                    BinaryOp::Gt => Arc::new(arrow_ord::cmp::gt(da, db).map_err(arrow_err(self))?),
                    BinaryOp::GtEq => {
                        Arc::new(arrow_ord::cmp::gt_eq(da, db).map_err(arrow_err(self))?)
                    }
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
                // Both sides constant: the result is one value too.
                if matches!(
                    (l.as_ref(), r.as_ref()),
                    (Expr::Literal(_), Expr::Literal(_))
                ) {
                    Value::Scalar(out)
                } else {
                    Value::Array(out)
                }
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
                let mut it = list.iter().map(|item| expr.clone().equals(item.clone()));
                let first = it.next().unwrap_or(Expr::Literal(Literal::Bool(false)));
                let e = it.fold(first, Expr::or);
                let e = if *negated { !e } else { e };
                e.evaluate(batch)?
            }
            Expr::Cast(e, t) => cast_value(e.evaluate(batch)?, t, self)?,
        })
    }
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
        e.data_type(b.schema_ref()).unwrap();
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
