//! Binding: the pass that readies an expression for evaluation over one input schema, once,
//! when an operator is built. It type-checks the expression, inserts the casts that binary
//! operators need (both sides of `+` or `<` brought to their common type, as
//! [`Expr::data_type`] decides it), and replaces every column name by its position, so that
//! evaluation per batch neither re-decides a type nor looks a name up.

use arrow_schema::{DataType, Schema};

use super::{common_numeric, plan_err, temporal_arithmetic, BinaryOp, Expr};
use crate::error::Result;

/// `e` over `schema`, ready to evaluate: checked, with casts inserted and columns bound.
///
/// ```
/// use arrow_schema::{DataType, Field, Schema};
/// use weir_engine::expr::{bind, col, lit, Expr};
///
/// let schema = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
/// let bound = bind(&(col("x") + lit(1)), &schema).unwrap();
/// // The INT literal is cast to BIGINT once, here, and `x` is column 0.
/// assert!(matches!(&bound, Expr::Binary(l, _, r)
///     if matches!(**l, Expr::BoundColumn { index: 0, .. }) && matches!(**r, Expr::Cast(..))));
/// assert!(bind(&col("nope"), &schema).is_err());
/// ```
pub fn bind(e: &Expr, schema: &Schema) -> Result<Expr> {
    e.data_type(schema)?;
    let mut failed = None;
    let with_casts = e.clone().transform(&mut |node| match node {
        Expr::Binary(l, op, r) => match coerce(l, *op, r, schema) {
            Ok(x) => x,
            Err(err) => {
                failed.get_or_insert(err);
                None
            }
        },
        _ => None,
    });
    if let Some(err) = failed {
        return Err(err);
    }
    let mut missing = None;
    let bound = with_casts.transform(&mut |node| match node {
        Expr::Column(c) => match schema.index_of(c) {
            Ok(index) => Some(Expr::BoundColumn {
                index,
                name: c.clone(),
            }),
            Err(_) => {
                missing.get_or_insert_with(|| plan_err(node, format!("no column `{c}`")));
                None
            }
        },
        _ => None,
    });
    match missing {
        Some(err) => Err(err),
        None => Ok(bound),
    }
}

/// The binary expression with its sides cast to the type the operator works on, or `None`
/// when they already have it.
fn coerce(l: &Expr, op: BinaryOp, r: &Expr, schema: &Schema) -> Result<Option<Expr>> {
    let (lt, rt) = (l.data_type(schema)?, r.data_type(schema)?);
    if temporal_arithmetic(op, &lt, &rt).is_some() {
        return Ok(None);
    }
    let target = if op.is_arithmetic() || (op.is_comparison() && lt != rt) {
        match common_numeric(&lt, &rt) {
            Some(t) => Some(t),
            None if op.is_comparison() => match (&lt, &rt) {
                (DataType::Decimal128(..), _) => Some(lt.clone()),
                (DataType::Timestamp(..), DataType::Timestamp(..))
                | (_, DataType::Decimal128(..)) => Some(rt.clone()),
                _ => None,
            },
            None => None,
        }
    } else {
        None
    };
    let Some(t) = target else {
        return Ok(None);
    };
    if lt == t && rt == t {
        return Ok(None);
    }
    let side = |e: &Expr, et: &DataType| {
        if *et == t {
            e.clone()
        } else {
            Expr::Cast(Box::new(e.clone()), t.clone())
        }
    };
    Ok(Some(Expr::Binary(
        Box::new(side(l, &lt)),
        op,
        Box::new(side(r, &rt)),
    )))
}
