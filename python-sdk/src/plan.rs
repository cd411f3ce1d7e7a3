//! The Table API's native handles: `Expr` holds an engine expression and `Table` (in
//! `env.rs`) an engine plan, so Python's `col("a") + 1` and `t.select(...)` build the engine's
//! own plan, never SQL text for the engine to parse again. This layer only converts and
//! forwards: names are resolved and types checked by the engine's planner, the one SQL uses.

use pyo3::prelude::*;
use weir_engine::error::EngineError;
use weir_engine::expr::{col, BinaryOp, Expr, Literal, WindowProperty};
use weir_engine::plan::GroupWindow;
use weir_engine::table::{Session, Slide, Tumble};
use weir_engine::types::SqlType;

use crate::env::Env;
use crate::errors::IntoPyException;

fn err(e: impl IntoPyException) -> PyErr {
    e.into_py_exception()
}

fn invalid(expr: &str, detail: impl Into<String>) -> PyErr {
    err(EngineError::Plan {
        expr: expr.to_string(),
        detail: detail.into(),
    })
}

/// An engine expression (`weir.table.Expression` wraps one).
#[pyclass(name = "Expr", module = "weir._native", frozen)]
#[derive(Clone)]
pub struct PyExpr {
    pub(crate) e: Expr,
}

impl From<Expr> for PyExpr {
    fn from(e: Expr) -> Self {
        PyExpr { e }
    }
}

pub(crate) fn exprs(list: Vec<PyRef<'_, PyExpr>>) -> Vec<Expr> {
    list.iter().map(|x| x.e.clone()).collect()
}

#[pymethods]
impl PyExpr {
    /// The column `name` of the table the expression is used on.
    #[staticmethod]
    fn col(name: &str) -> Self {
        col(name).into()
    }

    /// A constant: None, bool, int, float or str (other Python values go through
    /// `Env.parse_literal`).
    #[staticmethod]
    fn lit(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        let l = if value.is_none() {
            Literal::Null
        } else if let Ok(b) = value.cast::<pyo3::types::PyBool>() {
            Literal::Bool(b.is_true())
        } else if value.is_instance_of::<pyo3::types::PyInt>() {
            Literal::Int(value.extract::<i64>().map_err(|_| {
                invalid(
                    &value.to_string(),
                    "an integer literal must fit BIGINT (-2^63 to 2^63-1); use a DECIMAL literal (decimal.Decimal) for larger numbers",
                )
            })?)
        } else if value.is_instance_of::<pyo3::types::PyFloat>() {
            Literal::Float(value.extract::<f64>()?)
        } else if let Ok(s) = value.extract::<String>() {
            Literal::String(s)
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "lit() cannot take a {}",
                value.get_type().name()?
            )));
        };
        Ok(Expr::Literal(l).into())
    }

    /// A day-time interval of `ms` milliseconds (`lit(10).seconds`).
    #[staticmethod]
    fn interval(ms: i64) -> Self {
        Expr::Literal(Literal::Interval(ms)).into()
    }

    /// `CASE WHEN condition THEN if_true ELSE if_false END`.
    #[staticmethod]
    fn case(condition: &PyExpr, if_true: &PyExpr, if_false: &PyExpr) -> Self {
        Expr::Case {
            operand: None,
            branches: vec![(condition.e.clone(), if_true.e.clone())],
            otherwise: Some(Box::new(if_false.e.clone())),
        }
        .into()
    }

    /// `COUNT(*)`.
    #[staticmethod]
    fn count_star() -> Self {
        weir_engine::plan::count_star().into()
    }

    /// `self <op> other`, `op` one of `+ - * / % = <> < <= > >= AND OR`.
    fn binary(&self, op: &str, other: &PyExpr) -> PyResult<Self> {
        let op = match op {
            "+" => BinaryOp::Add,
            "-" => BinaryOp::Sub,
            "*" => BinaryOp::Mul,
            "/" => BinaryOp::Div,
            "%" => BinaryOp::Mod,
            "=" => BinaryOp::Eq,
            "<>" => BinaryOp::NotEq,
            "<" => BinaryOp::Lt,
            "<=" => BinaryOp::LtEq,
            ">" => BinaryOp::Gt,
            ">=" => BinaryOp::GtEq,
            "AND" => BinaryOp::And,
            "OR" => BinaryOp::Or,
            other => return Err(invalid(other, "not a binary operator")),
        };
        Ok(Expr::Binary(Box::new(self.e.clone()), op, Box::new(other.e.clone())).into())
    }

    fn not_(&self) -> Self {
        (!self.e.clone()).into()
    }

    fn negate(&self) -> Self {
        match &self.e {
            Expr::Literal(Literal::Int(i)) => Expr::Literal(Literal::Int(-i)).into(),
            Expr::Literal(Literal::Float(f)) => Expr::Literal(Literal::Float(-f)).into(),
            e => (Expr::Literal(Literal::Int(0)) - e.clone()).into(),
        }
    }

    fn alias(&self, name: &str) -> Self {
        self.e.clone().alias(name).into()
    }

    /// `CAST(self AS type_text)`, the type in Flink's notation.
    fn cast(&self, type_text: &str) -> PyResult<Self> {
        let t = SqlType::parse(type_text).map_err(err)?;
        Ok(self.e.clone().cast(t.data_type).into())
    }

    /// `TRY_CAST`: NULL where `cast` fails the job.
    fn try_cast(&self, type_text: &str) -> PyResult<Self> {
        let t = SqlType::parse(type_text).map_err(err)?;
        Ok(Expr::TryCast(Box::new(self.e.clone()), t.data_type).into())
    }

    fn is_null(&self) -> Self {
        self.e.clone().is_null().into()
    }

    fn is_not_null(&self) -> Self {
        self.e.clone().is_not_null().into()
    }

    /// `self IS TRUE` / `IS FALSE` (FALSE for NULL), as the SQL planner reads them.
    fn is_bool(&self, value: bool) -> Self {
        self.e.clone().is_bool(value).into()
    }

    fn between(&self, low: &PyExpr, high: &PyExpr, negated: bool) -> Self {
        Expr::Between {
            expr: Box::new(self.e.clone()),
            low: Box::new(low.e.clone()),
            high: Box::new(high.e.clone()),
            negated,
        }
        .into()
    }

    fn in_list(&self, list: Vec<PyRef<'_, PyExpr>>, negated: bool) -> Self {
        Expr::InList {
            expr: Box::new(self.e.clone()),
            list: exprs(list),
            negated,
        }
        .into()
    }

    fn like(&self, pattern: &PyExpr) -> Self {
        Expr::Call(
            weir_engine::expr::Func::Like,
            vec![self.e.clone(), pattern.e.clone()],
        )
        .into()
    }

    /// An aggregate of this expression: `SUM`, `COUNT`, `AVG`, `MIN`, `MAX`.
    fn agg(&self, name: &str, distinct: bool) -> PyResult<Self> {
        let func = weir_engine::expr::AggFunc::from_name(&name.to_ascii_uppercase())
            .ok_or_else(|| invalid(name, "not an aggregate function"))?;
        Ok(Expr::Agg {
            func,
            arg: Some(Box::new(self.e.clone())),
            distinct,
        }
        .into())
    }

    /// An ORDER BY key.
    fn sort(&self, desc: bool) -> Self {
        if desc {
            self.e.clone().desc().into()
        } else {
            self.e.clone().asc().into()
        }
    }

    /// `w.start`, `w.end`, `w.rowtime` of the group window this expression names.
    fn window_property(&self, which: &str) -> PyResult<Self> {
        let p = match which {
            "START" => WindowProperty::Start,
            "END" => WindowProperty::End,
            "ROWTIME" => WindowProperty::Rowtime,
            other => {
                return Err(invalid(
                    &format!("{}.{}", self.e, other.to_ascii_lowercase()),
                    "weir's group windows have start, end and rowtime",
                ))
            }
        };
        Ok(Expr::WindowProperty(p).into())
    }

    /// The name this expression gives its column, if it gives one.
    fn output_name(&self) -> Option<String> {
        self.e.output_name()
    }

    /// The column's name when this is a plain column reference.
    fn column_name(&self) -> Option<String> {
        match &self.e {
            Expr::Column(c) => Some(c.clone()),
            _ => None,
        }
    }

    /// `(column, new name)` when this is `col(column).alias(new name)`.
    fn renamed_column(&self) -> Option<(String, String)> {
        match &self.e {
            Expr::Alias(inner, to) => match inner.as_ref() {
                Expr::Column(c) => Some((c.clone(), to.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    fn __str__(&self) -> String {
        self.e.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Expr({})", self.e)
    }
}

/// A call of `name` as SQL resolves it (a registered function of `env` first, then the
/// built-ins), or of an inline UDF registered under an internal key.
#[pyfunction]
pub fn call(env: &Env, name: &str, args: Vec<PyRef<'_, PyExpr>>) -> PyResult<PyExpr> {
    let args = exprs(args);
    let whole = format!(
        "{name}({})",
        args.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    weir_engine::sql::resolve_function(env.engine(), name, args, false, &whole)
        .map(PyExpr::from)
        .map_err(err)
}

/// A group window: `kind` TUMBLE, HOP or SESSION, durations in milliseconds.
pub(crate) fn group_window(
    kind: &str,
    size_ms: i64,
    slide_ms: Option<i64>,
    time: &str,
    alias: &str,
) -> PyResult<GroupWindow> {
    let b = match (kind, slide_ms) {
        ("TUMBLE", _) => Tumble::over(size_ms),
        ("HOP", Some(s)) => Slide::over(size_ms).every(s),
        ("HOP", None) => return Err(invalid(alias, "a Slide window needs .every(slide)")),
        ("SESSION", _) => Session::with_gap(size_ms),
        (other, _) => return Err(invalid(other, "not a group window kind")),
    };
    Ok(b.on(time).alias(alias).into())
}
