//! Queries: sqlparser's AST planned into the logical plan (FROM, joins, windows, GROUP BY,
//! the select list), and the name resolution the Table API shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SortOptions};
use sqlparser::ast as sq;

use super::{object_name, parse_err, parse_one, sql_err};
use crate::error::{EngineError, Result};
use crate::expr::{col, AggFunc, BinaryOp, Expr, Func, Literal, WindowProperty};
use crate::operators::JoinKind;
use crate::operators::WindowKind;
use crate::plan::{plan_aggregate, AggregateNaming, GroupWindow, Plan};
use crate::table::{join_plan, sort_key, Table, TableEnvironment};
use crate::types::SqlType;

/// Columns visible in a query: `(qualifier, name in SQL, column in the plan)`.
#[derive(Clone, Default)]
pub(crate) struct Scope {
    cols: Vec<(Option<String>, String, String)>,
}

impl Scope {
    pub(crate) fn of_schema(qualifier: Option<&str>, s: &Schema) -> Scope {
        Scope {
            cols: s
                .fields()
                .iter()
                .map(|f| {
                    (
                        qualifier.map(String::from),
                        f.name().clone(),
                        f.name().clone(),
                    )
                })
                .collect(),
        }
    }

    fn resolve(&self, qualifier: Option<&str>, name: &str) -> Result<String> {
        let hits: Vec<&(Option<String>, String, String)> = self
            .cols
            .iter()
            .filter(|(q, n, _)| {
                n.eq_ignore_ascii_case(name)
                    && (qualifier.is_none()
                        || q.as_deref()
                            .is_some_and(|q| qualifier.is_some_and(|w| w.eq_ignore_ascii_case(q))))
            })
            .collect();
        // Exact case wins when several differ only by case.
        let exact: Vec<_> = hits.iter().filter(|(_, n, _)| n == name).collect();
        match (hits.len(), exact.len()) {
            (1, _) => Ok(hits[0].2.clone()),
            (_, 1) => Ok(exact[0].2.clone()),
            (0, _) => {
                let full = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                };
                let known: Vec<String> = self
                    .cols
                    .iter()
                    .map(|(q, n, _)| match q {
                        Some(q) => format!("{q}.{n}"),
                        None => n.clone(),
                    })
                    .collect();
                Err(EngineError::Plan {
                    expr: full.clone(),
                    detail: format!("column `{full}` not found; available: {}", known.join(", ")),
                })
            }
            _ => Err(EngineError::Plan {
                expr: name.to_string(),
                detail: format!("column `{name}` is ambiguous; qualify it with its table"),
            }),
        }
    }
}

pub(crate) struct Planner<'a> {
    env: &'a TableEnvironment,
    ctes: BTreeMap<String, Plan>,
    /// The OVER aggregates of the SELECT being planned: its window and the calls.
    over: Option<(OverWindow, Vec<crate::operators::OverAgg>)>,
    /// The SELECT's `ROW_NUMBER() OVER (...)`: partition, order and the rank column's name.
    rank: Option<RankCall>,
}

/// A `ROW_NUMBER()` / `RANK()` / `DENSE_RANK()` `OVER (PARTITION BY .. ORDER BY ..)`:
/// partition, order, rank column name, function.
type RankCall = (
    Vec<Expr>,
    Vec<(Expr, SortOptions)>,
    String,
    crate::operators::RankFunc,
);

/// An OVER window's partitioning, ordering column and frame.
#[derive(Clone, Debug, PartialEq)]
struct OverWindow {
    partition: Vec<Expr>,
    order: String,
    frame: crate::operators::OverFrame,
}

pub(crate) fn interval_millis(i: &sq::Interval, whole: &str) -> Result<i64> {
    let value = match i.value.as_ref() {
        sq::Expr::Value(v) => match &v.value {
            sq::Value::SingleQuotedString(s) => s.clone(),
            sq::Value::Number(n, _) => n.to_string(),
            other => {
                return Err(sql_err(
                    whole,
                    format!("an interval of {other} is not a number"),
                ))
            }
        },
        other => {
            return Err(sql_err(
                whole,
                format!("an interval of {other} is not a number"),
            ))
        }
    };
    let n: f64 = value
        .trim()
        .parse()
        .map_err(|_| sql_err(whole, format!("'{value}' is not a number of units")))?;
    let unit = match &i.leading_field {
        Some(sq::DateTimeField::Second) | Some(sq::DateTimeField::Seconds) => 1_000.0,
        Some(sq::DateTimeField::Minute) | Some(sq::DateTimeField::Minutes) => 60_000.0,
        Some(sq::DateTimeField::Hour) | Some(sq::DateTimeField::Hours) => 3_600_000.0,
        Some(sq::DateTimeField::Day) | Some(sq::DateTimeField::Days) => 86_400_000.0,
        Some(sq::DateTimeField::Millisecond) | Some(sq::DateTimeField::Milliseconds) => 1.0,
        None => 1_000.0,
        Some(other) => {
            return Err(sql_err(
                whole,
                format!("weir takes day-time intervals (DAY to MILLISECOND), not {other}"),
            ))
        }
    };
    Ok((n * unit).round() as i64)
}

impl<'a> Planner<'a> {
    pub(crate) fn new(env: &'a TableEnvironment) -> Self {
        Self {
            env,
            ctes: BTreeMap::new(),
            over: None,
            rank: None,
        }
    }

    pub(crate) fn query(&mut self, q: &sq::Query) -> Result<Plan> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let p = self.query(&cte.query)?;
                self.ctes.insert(cte.alias.name.value.clone(), p);
            }
        }
        let mut plan = self.set_expr(&q.body)?;
        if let Some(ob) = &q.order_by {
            let sq::OrderByKind::Expressions(list) = &ob.kind else {
                return Err(sql_err(&q.to_string(), "ORDER BY ALL is not supported"));
            };
            let schema = plan.schema()?;
            let scope = Scope::of_schema(None, &schema);
            let mut keys = Vec::new();
            for o in list {
                let e = self.expr(&o.expr, &scope)?;
                let desc = o.options.asc == Some(false);
                let e = if desc { e.desc() } else { e.asc() };
                let (e, mut opts) = sort_key(e);
                if let Some(nf) = o.options.nulls_first {
                    opts.nulls_first = nf;
                }
                e.data_type(&schema)?;
                keys.push((e, opts));
            }
            plan = Plan::Sort {
                input: Box::new(plan),
                keys,
                limit: None,
                offset: 0,
            };
        }
        if let Some(lc) = &q.limit_clause {
            let num = |e: &sq::Expr| -> Result<usize> {
                match e {
                    sq::Expr::Value(v) => match &v.value {
                        sq::Value::Number(n, _) => n
                            .parse()
                            .map_err(|_| sql_err(&q.to_string(), "LIMIT takes a whole number")),
                        _ => Err(sql_err(&q.to_string(), "LIMIT takes a whole number")),
                    },
                    _ => Err(sql_err(&q.to_string(), "LIMIT takes a whole number")),
                }
            };
            let (limit, offset) = match lc {
                sq::LimitClause::LimitOffset { limit, offset, .. } => (
                    limit.as_ref().map(num).transpose()?,
                    offset
                        .as_ref()
                        .map(|o| num(&o.value))
                        .transpose()?
                        .unwrap_or(0),
                ),
                sq::LimitClause::OffsetCommaLimit { offset, limit } => {
                    (Some(num(limit)?), num(offset)?)
                }
            };
            if let Some(limit) = limit {
                plan = match plan {
                    Plan::Sort { input, keys, .. } => Plan::Sort {
                        input,
                        keys,
                        limit: Some(limit),
                        offset,
                    },
                    p => Plan::Limit {
                        input: Box::new(p),
                        limit,
                        offset,
                    },
                };
            }
        }
        Ok(plan)
    }

    fn set_expr(&mut self, s: &sq::SetExpr) -> Result<Plan> {
        match s {
            sq::SetExpr::Select(sel) => self.select(sel),
            sq::SetExpr::Query(q) => self.query(q),
            sq::SetExpr::SetOperation {
                op: sq::SetOperator::Union,
                set_quantifier: sq::SetQuantifier::All,
                left,
                right,
            } => {
                let mut inputs = Vec::new();
                for side in [left, right] {
                    match self.set_expr(side)? {
                        Plan::Union { inputs: i } => inputs.extend(i),
                        p => inputs.push(p),
                    }
                }
                let p = Plan::Union { inputs };
                p.schema()?;
                Ok(p)
            }
            sq::SetExpr::SetOperation {
                op: sq::SetOperator::Union,
                left,
                right,
                ..
            } => {
                // UNION = UNION ALL + DISTINCT.
                let all = sq::SetExpr::SetOperation {
                    op: sq::SetOperator::Union,
                    set_quantifier: sq::SetQuantifier::All,
                    left: left.clone(),
                    right: right.clone(),
                };
                let p = self.set_expr(&all)?;
                Ok(Table::from_plan(self.env, p).distinct()?.plan().clone())
            }
            sq::SetExpr::SetOperation {
                op: op @ (sq::SetOperator::Intersect | sq::SetOperator::Except),
                set_quantifier,
                left,
                right,
            } => {
                let all = match set_quantifier {
                    sq::SetQuantifier::All => true,
                    sq::SetQuantifier::None | sq::SetQuantifier::Distinct => false,
                    other => {
                        return Err(sql_err(
                            &s.to_string(),
                            format!("{other} is not supported here; ALL and DISTINCT are"),
                        ))
                    }
                };
                let l = Table::from_plan(self.env, self.set_expr(left)?);
                let r = Table::from_plan(self.env, self.set_expr(right)?);
                let t = match (*op == sq::SetOperator::Intersect, all) {
                    (true, false) => l.intersect(&r)?,
                    (true, true) => l.intersect_all(&r)?,
                    (false, false) => l.minus(&r)?,
                    (false, true) => l.minus_all(&r)?,
                };
                Ok(t.plan().clone())
            }
            sq::SetExpr::Values(v) => self.values(v),
            other => Err(sql_err(
                &other.to_string(),
                "weir supports SELECT, UNION [ALL], INTERSECT, EXCEPT and VALUES here",
            )),
        }
    }

    fn values(&mut self, v: &sq::Values) -> Result<Plan> {
        let empty = Arc::new(Schema::empty());
        let one = RecordBatch::try_new_with_options(
            empty.clone(),
            vec![],
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
        )
        .map_err(|source| EngineError::Arrow {
            context: "VALUES".into(),
            source,
        })?;
        let scope = Scope::default();
        let mut batches = Vec::new();
        let mut schema: Option<Arc<Schema>> = None;
        for row in &v.rows {
            let mut cols = Vec::new();
            let mut fields = Vec::new();
            for (i, e) in row.iter().enumerate() {
                let x = self.expr(e, &scope)?;
                let t = x.data_type(&empty)?;
                let x = crate::expr::bind(&x, &empty)?;
                cols.push(x.evaluate(&one)?.into_array(1)?);
                fields.push(Field::new(format!("EXPR${i}"), t, true));
            }
            let s = match &schema {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(Schema::new(fields));
                    schema = Some(s.clone());
                    s
                }
            };
            let cols = cols
                .into_iter()
                .zip(s.fields())
                .map(|(c, f)| arrow_cast::cast(&c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|source| EngineError::Arrow {
                    context: "VALUES".into(),
                    source,
                })?;
            batches.push(
                RecordBatch::try_new(s, cols).map_err(|source| EngineError::Arrow {
                    context: "VALUES".into(),
                    source,
                })?,
            );
        }
        let schema = schema.unwrap_or(empty);
        let batch = arrow_select::concat::concat_batches(&schema, &batches).map_err(|source| {
            EngineError::Arrow {
                context: "VALUES".into(),
                source,
            }
        })?;
        Ok(Plan::Values {
            name: "values".into(),
            schema,
            batches: vec![batch],
        })
    }

    /// A FROM item: its plan and scope.
    fn relation(&mut self, r: &sq::TableFactor) -> Result<(Plan, Scope)> {
        match r {
            sq::TableFactor::Table {
                name, alias, args, ..
            } => {
                let n = object_name(name);
                if let Some(args) = args {
                    // TUMBLE(t, DESCRIPTOR(ts), INTERVAL ...) written without TABLE(...).
                    let f = sq::Function {
                        name: name.clone(),
                        uses_odbc_syntax: false,
                        parameters: sq::FunctionArguments::None,
                        args: sq::FunctionArguments::List(sq::FunctionArgumentList {
                            duplicate_treatment: None,
                            args: args.args.clone(),
                            clauses: vec![],
                        }),
                        filter: None,
                        null_treatment: None,
                        over: None,
                        within_group: vec![],
                    };
                    return self.window_tvf(&f, alias.as_ref());
                }
                let plan = match self.ctes.get(&n) {
                    Some(p) => p.clone(),
                    None => self.env.from_path(&n)?.plan().clone(),
                };
                let plan = with_column_aliases(plan, alias.as_ref())?;
                let schema = plan.schema()?;
                let q = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or(n);
                Ok((plan, Scope::of_schema(Some(&q), &schema)))
            }
            sq::TableFactor::Derived {
                subquery, alias, ..
            } => {
                let plan = with_column_aliases(self.query(subquery)?, alias.as_ref())?;
                let schema = plan.schema()?;
                let q = alias.as_ref().map(|a| a.name.value.clone());
                Ok((plan, Scope::of_schema(q.as_deref(), &schema)))
            }
            sq::TableFactor::TableFunction {
                expr: sq::Expr::Function(f),
                alias,
            } => self.window_tvf(f, alias.as_ref()),
            other => Err(sql_err(
                &other.to_string(),
                "weir reads tables, views, subqueries and the TUMBLE/HOP/CUMULATE table functions",
            )),
        }
    }

    /// `TUMBLE(t, DESCRIPTOR(ts), size)` or `HOP(t, DESCRIPTOR(ts), slide, size)`.
    fn window_tvf(
        &mut self,
        f: &sq::Function,
        alias: Option<&sq::TableAlias>,
    ) -> Result<(Plan, Scope)> {
        let fname = object_name(&f.name).to_ascii_uppercase();
        let whole = f.to_string();
        let args = function_args(f)?;
        let table = match args.first() {
            Some(sq::Expr::Identifier(i)) => i.value.clone(),
            Some(sq::Expr::CompoundIdentifier(p)) => p
                .iter()
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join("."),
            _ => return Err(sql_err(&whole, "the first argument must be TABLE name")),
        };
        let time = match args.get(1) {
            Some(sq::Expr::Function(d))
                if object_name(&d.name).eq_ignore_ascii_case("DESCRIPTOR") =>
            {
                match function_args(d)?.first() {
                    Some(sq::Expr::Identifier(i)) => i.value.clone(),
                    _ => {
                        return Err(sql_err(
                            &whole,
                            "DESCRIPTOR takes the time attribute column",
                        ))
                    }
                }
            }
            _ => {
                return Err(sql_err(
                    &whole,
                    "the second argument must be DESCRIPTOR(time_column)",
                ))
            }
        };
        let iv = |i: usize| interval_arg(&args, i, &whole);
        let kind = match fname.as_str() {
            "TUMBLE" => WindowKind::Tumble { size: iv(2)? },
            "HOP" => WindowKind::Hop { slide: iv(2)?, size: iv(3)? },
            "CUMULATE" => WindowKind::Cumulate { step: iv(2)?, size: iv(3)? },
            "SESSION" => return Err(sql_err(&whole, format!("the {fname} table function is not supported yet; use TUMBLE, HOP or CUMULATE, or a SESSION group window in GROUP BY"))),
            _ => return Err(sql_err(&whole, format!("unknown table function {fname}"))),
        };
        let input = match self.ctes.get(&table) {
            Some(p) => p.clone(),
            None => self.env.from_path(&table)?.plan().clone(),
        };
        let in_schema = input.schema()?;
        if in_schema.index_of(&time).is_err() {
            return Err(sql_err(
                &whole,
                format!("table `{table}` has no column `{time}`"),
            ));
        }
        let plan = Plan::WindowAssign {
            input: Box::new(input),
            kind,
            time,
        };
        let plan = with_column_aliases(plan, alias)?;
        let schema = plan.schema()?;
        let q = alias.map(|a| a.name.value.clone()).unwrap_or(table);
        Ok((plan, Scope::of_schema(Some(&q), &schema)))
    }

    fn from(&mut self, from: &[sq::TableWithJoins]) -> Result<(Plan, Scope)> {
        let Some(first) = from.first() else {
            // SELECT without FROM: one empty row.
            let schema = Arc::new(Schema::empty());
            let b = RecordBatch::try_new_with_options(
                schema.clone(),
                vec![],
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
            )
            .map_err(|source| EngineError::Arrow {
                context: "SELECT".into(),
                source,
            })?;
            return Ok((
                Plan::Values {
                    name: "values".into(),
                    schema,
                    batches: vec![b],
                },
                Scope::default(),
            ));
        };
        // `FROM t, LATERAL TABLE(f(x)) AS T(a, b)`: the comma form of a lateral join.
        let mut laterals: Vec<&sq::TableFactor> = Vec::new();
        for item in &from[1..] {
            if lateral_call(&item.relation).is_none() || !item.joins.is_empty() {
                return Err(sql_err("FROM a, b", "weir needs an explicit JOIN ... ON with equalities (a streaming cross join would keep everything); `FROM t, LATERAL TABLE(f(x))` is the comma form it takes"));
            }
            laterals.push(&item.relation);
        }
        let (mut plan, mut scope) = self.relation(&first.relation)?;
        for j in &first.joins {
            if let Some((call, alias)) = lateral_call(&j.relation) {
                let (outer, on) = match &j.join_operator {
                    sq::JoinOperator::Join(c) | sq::JoinOperator::Inner(c) => (false, Some(c)),
                    sq::JoinOperator::CrossJoin(_) => (false, None),
                    sq::JoinOperator::Left(c) | sq::JoinOperator::LeftOuter(c) => (true, Some(c)),
                    _ => {
                        return Err(sql_err(
                            &j.relation.to_string(),
                            "a lateral table function takes [INNER | LEFT] JOIN ... ON TRUE, CROSS JOIN or a comma",
                        ))
                    }
                };
                let cond = match on {
                    None | Some(sq::JoinConstraint::None) => None,
                    Some(sq::JoinConstraint::On(sq::Expr::Value(v)))
                        if matches!(v.value, sq::Value::Boolean(true)) =>
                    {
                        None
                    }
                    Some(sq::JoinConstraint::On(e)) if !outer => Some(e),
                    Some(_) => return Err(sql_err(
                        &j.relation.to_string(),
                        "a LEFT JOIN LATERAL TABLE(...) takes ON TRUE (filter the rows with WHERE)",
                    )),
                };
                (plan, scope) = self.correlate(plan, scope, call, alias, outer)?;
                if let Some(c) = cond {
                    let c = self.expr(c, &scope)?;
                    plan = crate::plan::filter(plan, c)?;
                }
                continue;
            }
            let (right, rscope) = self.relation(&j.relation)?;
            let (kind, constraint) = match &j.join_operator {
                sq::JoinOperator::Join(c) | sq::JoinOperator::Inner(c) => (JoinKind::Inner, c),
                sq::JoinOperator::Left(c) | sq::JoinOperator::LeftOuter(c) => {
                    (JoinKind::LeftOuter, c)
                }
                sq::JoinOperator::Right(c) | sq::JoinOperator::RightOuter(c) => {
                    (JoinKind::RightOuter, c)
                }
                sq::JoinOperator::FullOuter(c) => (JoinKind::FullOuter, c),
                other => {
                    return Err(sql_err(
                        &format!("{other:?}").chars().take(40).collect::<String>(),
                        "weir has INNER, LEFT, RIGHT and FULL [OUTER] joins",
                    ))
                }
            };
            let lschema = plan.schema()?;
            // Right columns keep their names unless they clash (then a0, a1 ...).
            let mut right_names = Vec::new();
            let mut taken: Vec<String> =
                lschema.fields().iter().map(|f| f.name().clone()).collect();
            let mut joined = scope.clone();
            for (q, n, internal) in &rscope.cols {
                let mut out = internal.clone();
                let mut k = 0;
                while taken.contains(&out) {
                    out = format!("{internal}{k}");
                    k += 1;
                }
                taken.push(out.clone());
                right_names.push(out.clone());
                joined.cols.push((q.clone(), n.clone(), out));
            }
            let cond = match constraint {
                sq::JoinConstraint::On(e) => self.expr(e, &joined)?,
                sq::JoinConstraint::Using(cols) => {
                    let mut c: Option<Expr> = None;
                    for n in cols {
                        let n = object_name(n);
                        let l = scope.resolve(None, &n)?;
                        let r = right_names[rscope
                            .cols
                            .iter()
                            .position(|(_, x, _)| *x == n)
                            .ok_or_else(|| sql_err(&n, "not a column of the right side"))?]
                        .clone();
                        let e = col(&l).equals(col(&r));
                        c = Some(match c {
                            None => e,
                            Some(p) => p.and(e),
                        });
                    }
                    c.ok_or_else(|| sql_err("USING ()", "USING needs columns"))?
                }
                _ => return Err(sql_err("JOIN", "a join needs ON or USING")),
            };
            plan = join_plan(plan, right, kind, cond, right_names)?;
            scope = joined;
        }
        for l in laterals {
            let (call, alias) = lateral_call(l).expect("checked above");
            (plan, scope) = self.correlate(plan, scope, call, alias, false)?;
        }
        Ok((plan, scope))
    }

    /// `LATERAL TABLE(f(x)) [AS] T(a, b)` over `plan`: its columns are named by the alias
    /// list (else as the function names them), qualified by `T`.
    fn correlate(
        &mut self,
        plan: Plan,
        mut scope: Scope,
        call: &sq::Expr,
        alias: Option<&sq::TableAlias>,
        outer: bool,
    ) -> Result<(Plan, Scope)> {
        let x = self.expr(call, &scope)?;
        let fields = match &x {
            Expr::Udf(u, _) => u.table_fields().cloned(),
            _ => None,
        }
        .ok_or_else(|| {
            sql_err(
                &call.to_string(),
                "LATERAL TABLE(...) takes a call of a table function (udtf)",
            )
        })?;
        let visible: Vec<String> = match alias.filter(|a| !a.columns.is_empty()) {
            Some(a) if a.columns.len() != fields.len() => {
                return Err(sql_err(
                    &a.to_string(),
                    format!(
                        "{} column names for the {} columns of the table function",
                        a.columns.len(),
                        fields.len()
                    ),
                ))
            }
            Some(a) => a.columns.iter().map(|c| c.name.value.clone()).collect(),
            None => fields.iter().map(|f| f.name().clone()).collect(),
        };
        // Internal names stay unique in the plan; the scope knows them by the visible ones.
        let schema = plan.schema()?;
        let mut taken: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut internal = Vec::new();
        for n in &visible {
            let mut out = n.clone();
            let mut k = 0;
            while taken.contains(&out) {
                out = format!("{n}{k}");
                k += 1;
            }
            taken.push(out.clone());
            internal.push(out);
        }
        let q = alias.map(|a| a.name.value.clone());
        for (v, i) in visible.iter().zip(&internal) {
            scope.cols.push((q.clone(), v.clone(), i.clone()));
        }
        let plan = Plan::Correlate {
            input: Box::new(plan),
            call: x,
            names: internal,
            outer,
        };
        plan.schema()?;
        Ok((plan, scope))
    }

    fn select(&mut self, s: &sq::Select) -> Result<Plan> {
        // Subqueries plan their own OVER aggregates.
        let outer = (self.over.take(), self.rank.take());
        // `FROM a, b WHERE cond` (the form Flink's docs write interval joins in) is the inner
        // join `FROM a JOIN b ON cond`: its equalities key the join, the rest filters it.
        let joined;
        let s = match (s.from.as_slice(), &s.selection) {
            ([a, b], Some(cond))
                if a.joins.is_empty()
                    && b.joins.is_empty()
                    && lateral_call(&b.relation).is_none() =>
            {
                let mut one = s.clone();
                one.from = vec![sq::TableWithJoins {
                    relation: a.relation.clone(),
                    joins: vec![sq::Join {
                        relation: b.relation.clone(),
                        global: false,
                        join_operator: sq::JoinOperator::Inner(sq::JoinConstraint::On(
                            cond.clone(),
                        )),
                    }],
                }];
                one.selection = None;
                joined = one;
                &joined
            }
            _ => s,
        };
        let r = self.select_inner(s);
        (self.over, self.rank) = outer;
        r
    }

    fn select_inner(&mut self, s: &sq::Select) -> Result<Plan> {
        let (mut plan, scope) = self.from(&s.from)?;
        // `x IN (SELECT y ...)` conjuncts of WHERE: semi joins with the subquery's distinct rows.
        let mut rest: Vec<sq::Expr> = Vec::new();
        if let Some(w) = &s.selection {
            fn split(e: &sq::Expr, out: &mut Vec<sq::Expr>) {
                match e {
                    sq::Expr::BinaryOp {
                        left,
                        op: sq::BinaryOperator::And,
                        right,
                    } => {
                        split(left, out);
                        split(right, out);
                    }
                    sq::Expr::Nested(inner) => split(inner, out),
                    e => out.push(e.clone()),
                }
            }
            let mut all = Vec::new();
            split(w, &mut all);
            for c in all {
                match &c {
                    sq::Expr::InSubquery {
                        expr,
                        subquery,
                        negated: false,
                    } => {
                        let key = self.expr(expr, &scope)?;
                        let sub = self.query(subquery)?;
                        let cols = sub.schema()?;
                        if cols.fields().len() != 1 {
                            return Err(sql_err(
                                &c.to_string(),
                                format!(
                                    "the subquery of IN gives {} columns, not one",
                                    cols.fields().len()
                                ),
                            ));
                        }
                        let name = format!("$in{}", plan.schema()?.fields().len());
                        let right = Table::from_plan(self.env, sub)
                            .select(vec![col(cols.field(0).name()).alias(&name)])?
                            .distinct()?;
                        plan = crate::table::join_plan(
                            plan,
                            right.plan().clone(),
                            JoinKind::Inner,
                            Expr::Binary(
                                Box::new(key),
                                crate::expr::BinaryOp::Eq,
                                Box::new(col(&name)),
                            ),
                            vec![name],
                        )?;
                    }
                    sq::Expr::InSubquery {
                        expr,
                        subquery,
                        negated: true,
                    } => {
                        let key = self.expr(expr, &scope)?;
                        let sub = Table::from_plan(self.env, self.query(subquery)?);
                        plan = Table::from_plan(self.env, plan)
                            .where_not_in(key, &sub)?
                            .plan()
                            .clone();
                    }
                    _ => rest.push(c),
                }
            }
        }
        let selection = rest.into_iter().reduce(|a, b| sq::Expr::BinaryOp {
            left: Box::new(a),
            op: sq::BinaryOperator::And,
            right: Box::new(b),
        });
        if let Some(w) = &selection {
            let cond = self.expr(w, &scope)?;
            if self.over.is_some() || self.rank.is_some() {
                return Err(sql_err(
                    &w.to_string(),
                    "an OVER aggregate cannot be in WHERE; compute it in a subquery",
                ));
            }
            push_rank_limit(&mut plan, &cond);
            plan = crate::plan::filter(plan, cond)?;
        }
        // The select list.
        let mut exprs = Vec::new();
        for item in &s.projection {
            match item {
                sq::SelectItem::UnnamedExpr(e) => {
                    let x = self.expr(e, &scope)?;
                    // A column keeps its SQL name (without the qualifier).
                    let x = match (e, &x) {
                        (sq::Expr::Identifier(i), Expr::Column(c)) if *c != i.value => {
                            x.alias(&i.value)
                        }
                        (sq::Expr::CompoundIdentifier(p), Expr::Column(c))
                            if p.last().is_some_and(|l| l.value != *c) =>
                        {
                            let n = p.last().map(|l| l.value.clone()).unwrap_or_default();
                            x.alias(&n)
                        }
                        _ => x,
                    };
                    exprs.push(x);
                }
                sq::SelectItem::ExprWithAlias { expr, alias } => {
                    exprs.push(self.expr(expr, &scope)?.alias(&alias.value))
                }
                sq::SelectItem::Wildcard(_) => {
                    // Clashing names of a join keep their unique form (uid, uid0), as in Flink.
                    for (_, _, internal) in &scope.cols {
                        exprs.push(col(internal));
                    }
                }
                sq::SelectItem::QualifiedWildcard(kind, _) => {
                    let q = kind.to_string();
                    let mut any = false;
                    for (qual, _, internal) in &scope.cols {
                        if qual.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(&q)) {
                            exprs.push(col(internal));
                            any = true;
                        }
                    }
                    if !any {
                        return Err(sql_err(
                            &format!("{q}.*"),
                            format!("no table `{q}` in FROM"),
                        ));
                    }
                }
            }
        }
        let group_by = match &s.group_by {
            sq::GroupByExpr::Expressions(e, _) => e.clone(),
            sq::GroupByExpr::All(_) => {
                return Err(sql_err("GROUP BY ALL", "list the grouping columns"))
            }
        };
        let having = s
            .having
            .as_ref()
            .map(|h| self.expr(h, &scope))
            .transpose()?;
        let aggregating =
            !group_by.is_empty() || exprs.iter().any(Expr::contains_agg) || having.is_some();
        if let Some((partition, order, name, func)) = self.rank.take() {
            if aggregating || self.over.is_some() {
                return Err(sql_err(
                    &format!("{}()", func.name()),
                    format!("{}() OVER (...) goes in a SELECT of its own (no GROUP BY or other OVER aggregates)", func.name()),
                ));
            }
            plan = Plan::Rank {
                input: Box::new(plan),
                partition,
                order,
                func,
                limit: None,
                name,
            };
            for (i, e) in exprs.iter_mut().enumerate() {
                if matches!(e, Expr::Column(c) if c == "$rank") {
                    *e = e.clone().alias(&format!("EXPR${i}"));
                }
            }
        }
        if let Some((w, aggs)) = self.over.take() {
            if aggregating {
                return Err(sql_err(
                    "OVER",
                    "OVER aggregates and GROUP BY aggregates cannot be in one SELECT; group in a subquery",
                ));
            }
            plan = Plan::Over {
                input: Box::new(plan),
                partition: w.partition,
                order: w.order,
                frame: w.frame,
                aggs,
            };
            // An unnamed OVER aggregate is EXPR$<position>, as other unnamed items.
            for (i, e) in exprs.iter_mut().enumerate() {
                if matches!(e, Expr::Column(c) if c.starts_with("$over")) {
                    *e = e.clone().alias(&format!("EXPR${i}"));
                }
            }
        }
        if aggregating {
            let mut keys = Vec::new();
            let mut window: Option<GroupWindow> = None;
            for g in &group_by {
                if let sq::Expr::Function(f) = g {
                    let n = object_name(&f.name).to_ascii_uppercase();
                    if ["TUMBLE", "HOP", "SESSION"].contains(&n.as_str()) {
                        window = Some(self.group_window(f, &scope)?);
                        continue;
                    }
                }
                keys.push(self.expr(g, &scope)?);
            }
            // GROUP BY window_start, window_end over TUMBLE/HOP(...): a window aggregate.
            if let (None, Plan::WindowAssign { input, kind, time }) = (&window, &plan) {
                let is_win = |k: &Expr, n: &str| matches!(k, Expr::Column(c) if c == n);
                if keys.iter().any(|k| is_win(k, "window_start"))
                    && keys.iter().any(|k| is_win(k, "window_end"))
                {
                    keys.retain(|k| {
                        !is_win(k, "window_start")
                            && !is_win(k, "window_end")
                            && !is_win(k, "window_time")
                    });
                    let w = GroupWindow {
                        kind: *kind,
                        time: time.clone(),
                        alias: None,
                    };
                    let input = (**input).clone();
                    window = Some(w);
                    let p = plan_aggregate(
                        input,
                        keys,
                        window,
                        exprs,
                        having,
                        AggregateNaming::Position,
                    )?;
                    return self.finish_select(p, s);
                }
            }
            let p = plan_aggregate(plan, keys, window, exprs, having, AggregateNaming::Position)?;
            return self.finish_select(p, s);
        }
        let schema = plan.schema()?;
        let projections = crate::plan::name_projections(exprs, &schema, "EXPR$")?;
        let p = Plan::Calc {
            input: Box::new(plan),
            filter: None,
            projections,
        };
        self.finish_select(p, s)
    }

    fn finish_select(&mut self, p: Plan, s: &sq::Select) -> Result<Plan> {
        match &s.distinct {
            None => Ok(p),
            Some(sq::Distinct::Distinct) => {
                Ok(Table::from_plan(self.env, p).distinct()?.plan().clone())
            }
            Some(sq::Distinct::On(_)) => Err(sql_err("DISTINCT ON", "use GROUP BY")),
        }
    }

    /// `TUMBLE(ts, INTERVAL ...)`, `HOP(ts, slide, size)`, `SESSION(ts, gap)` in GROUP BY.
    fn group_window(&mut self, f: &sq::Function, scope: &Scope) -> Result<GroupWindow> {
        let n = object_name(&f.name).to_ascii_uppercase();
        let whole = f.to_string();
        let args = function_args(f)?;
        let time = match args.first() {
            Some(e) => match self.expr(e, scope)? {
                Expr::Column(c) => c,
                other => {
                    return Err(sql_err(
                        &whole,
                        format!("the window's time attribute must be a column, not {other}"),
                    ))
                }
            },
            None => return Err(sql_err(&whole, "a group window needs a time attribute")),
        };
        let iv = |i: usize| interval_arg(&args, i, &whole);
        let kind = match n.as_str() {
            "TUMBLE" => WindowKind::Tumble { size: iv(1)? },
            "HOP" => WindowKind::Hop {
                slide: iv(1)?,
                size: iv(2)?,
            },
            _ => WindowKind::Session { gap: iv(1)? },
        };
        Ok(GroupWindow {
            kind,
            time,
            alias: None,
        })
    }

    pub(crate) fn expr(&mut self, e: &sq::Expr, scope: &Scope) -> Result<Expr> {
        use sq::Expr as E;
        let whole = || e.to_string();
        Ok(match e {
            E::Identifier(i) => {
                let upper = i.value.to_ascii_uppercase();
                if i.quote_style.is_none()
                    && [
                        "CURRENT_TIMESTAMP",
                        "LOCALTIMESTAMP",
                        "NOW",
                        "CURRENT_ROW_TIMESTAMP",
                    ]
                    .contains(&upper.as_str())
                    && scope.resolve(None, &i.value).is_err()
                {
                    let f = if upper == "LOCALTIMESTAMP" {
                        Func::LocalTimestamp
                    } else {
                        Func::CurrentTimestamp
                    };
                    return Ok(Expr::Call(f, vec![]));
                }
                if i.quote_style.is_none()
                    && (upper == "TRUE" || upper == "FALSE")
                    && scope.resolve(None, &i.value).is_err()
                {
                    return Ok(Expr::Literal(Literal::Bool(upper == "TRUE")));
                }
                col(&scope.resolve(None, &i.value)?)
            }
            E::CompoundIdentifier(parts) => {
                let n = parts.len();
                if n < 2 {
                    return Err(sql_err(&whole(), "empty name"));
                }
                col(&scope.resolve(Some(&parts[n - 2].value), &parts[n - 1].value)?)
            }
            E::Value(sq::ValueWithSpan {
                value: sq::Value::Number(n, _),
                ..
            }) => number_literal(n)?,
            E::Value(v) => Expr::Literal(match &v.value {
                sq::Value::SingleQuotedString(s) | sq::Value::DoubleQuotedString(s) => {
                    Literal::String(s.clone())
                }
                sq::Value::Boolean(b) => Literal::Bool(*b),
                sq::Value::Null => Literal::Null,
                other => {
                    return Err(sql_err(
                        &whole(),
                        format!("weir does not read literals like {other}"),
                    ))
                }
            }),
            E::Nested(x) => self.expr(x, scope)?,
            E::BinaryOp { left, op, right } => {
                let (l, r) = (self.expr(left, scope)?, self.expr(right, scope)?);
                let o = match op {
                    sq::BinaryOperator::Plus => Some(BinaryOp::Add),
                    sq::BinaryOperator::Minus => Some(BinaryOp::Sub),
                    sq::BinaryOperator::Multiply => Some(BinaryOp::Mul),
                    sq::BinaryOperator::Divide => Some(BinaryOp::Div),
                    sq::BinaryOperator::Modulo => Some(BinaryOp::Mod),
                    sq::BinaryOperator::Eq => Some(BinaryOp::Eq),
                    sq::BinaryOperator::NotEq => Some(BinaryOp::NotEq),
                    sq::BinaryOperator::Lt => Some(BinaryOp::Lt),
                    sq::BinaryOperator::LtEq => Some(BinaryOp::LtEq),
                    sq::BinaryOperator::Gt => Some(BinaryOp::Gt),
                    sq::BinaryOperator::GtEq => Some(BinaryOp::GtEq),
                    sq::BinaryOperator::And => Some(BinaryOp::And),
                    sq::BinaryOperator::Or => Some(BinaryOp::Or),
                    sq::BinaryOperator::StringConcat => None,
                    other => {
                        return Err(sql_err(&whole(), format!("weir has no operator {other}")))
                    }
                };
                // Both sides are moved, never cloned: a chain of n operators plans in O(n).
                match o {
                    Some(o) => Expr::Binary(Box::new(l), o, Box::new(r)),
                    None => Expr::Call(Func::Concat, vec![l, r]),
                }
            }
            E::UnaryOp { op, expr } => {
                let x = self.expr(expr, scope)?;
                match op {
                    sq::UnaryOperator::Not => !x,
                    sq::UnaryOperator::Minus => match x {
                        Expr::Literal(Literal::Int(i)) => Expr::Literal(Literal::Int(-i)),
                        Expr::Literal(Literal::Float(f)) => Expr::Literal(Literal::Float(-f)),
                        x => Expr::Literal(Literal::Int(0)) - x,
                    },
                    sq::UnaryOperator::Plus => x,
                    other => {
                        return Err(sql_err(&whole(), format!("weir has no operator {other}")))
                    }
                }
            }
            E::IsNull(x) => self.expr(x, scope)?.is_null(),
            E::IsNotNull(x) => self.expr(x, scope)?.is_not_null(),
            E::IsTrue(x) => self.expr(x, scope)?.is_bool(true),
            E::IsFalse(x) => self.expr(x, scope)?.is_bool(false),
            E::IsNotTrue(x) => !self.expr(x, scope)?.is_bool(true),
            E::IsNotFalse(x) => !self.expr(x, scope)?.is_bool(false),
            E::Between {
                expr,
                negated,
                low,
                high,
            } => Expr::Between {
                expr: Box::new(self.expr(expr, scope)?),
                low: Box::new(self.expr(low, scope)?),
                high: Box::new(self.expr(high, scope)?),
                negated: *negated,
            },
            E::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: Box::new(self.expr(expr, scope)?),
                list: list
                    .iter()
                    .map(|x| self.expr(x, scope))
                    .collect::<Result<_>>()?,
                negated: *negated,
            },
            E::Like {
                negated,
                expr,
                pattern,
                ..
            }
            | E::RLike {
                negated,
                expr,
                pattern,
                ..
            } => {
                let f = if matches!(e, E::Like { .. }) {
                    Func::Like
                } else {
                    Func::Regexp
                };
                let l = Expr::Call(f, vec![self.expr(expr, scope)?, self.expr(pattern, scope)?]);
                if *negated {
                    !l
                } else {
                    l
                }
            }
            E::Cast {
                expr,
                data_type,
                kind,
                ..
            } => {
                let t = SqlType::parse(&data_type.to_string())
                    .map_err(|err| sql_err(&whole(), err.to_string()))?;
                let e = Box::new(self.expr(expr, scope)?);
                match kind {
                    sq::CastKind::TryCast | sq::CastKind::SafeCast => Expr::TryCast(e, t.data_type),
                    _ => Expr::Cast(e, t.data_type),
                }
            }
            E::Extract { field, expr, .. } => Expr::Call(
                Func::Extract,
                vec![
                    Expr::Literal(Literal::String(field.to_string().to_ascii_uppercase())),
                    self.expr(expr, scope)?,
                ],
            ),
            E::Ceil { expr, .. } => Expr::Call(Func::Ceil, vec![self.expr(expr, scope)?]),
            E::Floor { expr, .. } => Expr::Call(Func::Floor, vec![self.expr(expr, scope)?]),
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.expr(expr, scope)?];
                args.push(match substring_from {
                    Some(f) => self.expr(f, scope)?,
                    None => {
                        return Err(EngineError::Plan {
                            expr: whole(),
                            detail: "SUBSTRING needs a start position: SUBSTRING(s, start \
                                     [, length]) or SUBSTRING(s FROM start [FOR length])"
                                .into(),
                        })
                    }
                });
                if let Some(f) = substring_for {
                    args.push(self.expr(f, scope)?);
                }
                Expr::Call(Func::Substring, args)
            }
            E::Trim {
                expr, trim_where, ..
            } => {
                let f = match trim_where {
                    Some(sq::TrimWhereField::Leading) => Func::Ltrim,
                    Some(sq::TrimWhereField::Trailing) => Func::Rtrim,
                    _ => Func::Trim,
                };
                Expr::Call(f, vec![self.expr(expr, scope)?])
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => Expr::Case {
                operand: operand
                    .as_ref()
                    .map(|o| self.expr(o, scope))
                    .transpose()?
                    .map(Box::new),
                branches: conditions
                    .iter()
                    .map(|c| {
                        Ok((
                            self.expr(&c.condition, scope)?,
                            self.expr(&c.result, scope)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
                otherwise: else_result
                    .as_ref()
                    .map(|o| self.expr(o, scope))
                    .transpose()?
                    .map(Box::new),
            },
            E::Interval(iv) => Expr::Literal(Literal::Interval(interval_millis(iv, &whole())?)),
            E::TypedString(ts) => {
                let v = match &ts.value.value {
                    sq::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                match &ts.data_type {
                    sq::DataType::Timestamp(..) => Expr::Literal(Literal::Timestamp(
                        crate::expr::functions::parse_timestamp(&v, None).ok_or_else(|| {
                            sql_err(&whole(), format!("'{v}' is not a timestamp"))
                        })?,
                    )),
                    sq::DataType::Date => Expr::Literal(Literal::Date(
                        crate::expr::functions::parse_date(&v)
                            .ok_or_else(|| sql_err(&whole(), format!("'{v}' is not a date")))?,
                    )),
                    other => {
                        let t = SqlType::parse(&other.to_string())
                            .map_err(|err| sql_err(&whole(), err.to_string()))?;
                        Expr::Literal(Literal::String(v)).cast(t.data_type)
                    }
                }
            }
            E::Function(f) => self.function(f, scope)?,
            other => {
                return Err(sql_err(
                    &other.to_string(),
                    "weir does not support this expression yet",
                ))
            }
        })
    }

    /// `JSON_OBJECT('k' VALUE v, ... [NULL | ABSENT] ON NULL)` and `JSON_ARRAY(v, ...
    /// [NULL | ABSENT] ON NULL)`: the engine's calls take the ON NULL behaviour first, then the
    /// keys and values (see `expr::json`).
    fn json_constructor(
        &mut self,
        f: &sq::Function,
        upper: &str,
        scope: &Scope,
        whole: &str,
    ) -> Result<Expr> {
        let object = upper == "JSON_OBJECT";
        let mut mode = if object { "NULL" } else { "ABSENT" };
        let mut args = vec![];
        if let sq::FunctionArguments::List(l) = &f.args {
            for c in &l.clauses {
                match c {
                    sq::FunctionArgumentClause::JsonNullClause(sq::JsonNullClause::NullOnNull) => {
                        mode = "NULL"
                    }
                    sq::FunctionArgumentClause::JsonNullClause(
                        sq::JsonNullClause::AbsentOnNull,
                    ) => mode = "ABSENT",
                    other => return Err(sql_err(whole, format!("unsupported clause {other}"))),
                }
            }
            for a in &l.args {
                match (a, object) {
                    (
                        sq::FunctionArg::ExprNamed {
                            name,
                            arg: sq::FunctionArgExpr::Expr(v),
                            operator: sq::FunctionArgOperator::Value,
                        },
                        true,
                    ) => {
                        args.push(self.expr(name, scope)?);
                        args.push(self.expr(v, scope)?);
                    }
                    // sqlparser reads a quoted key as a name: `'k' VALUE v`.
                    (
                        sq::FunctionArg::Named {
                            name,
                            arg: sq::FunctionArgExpr::Expr(v),
                            operator: sq::FunctionArgOperator::Value,
                        },
                        true,
                    ) if name.quote_style == Some('\'') => {
                        args.push(Expr::Literal(Literal::String(name.value.clone())));
                        args.push(self.expr(v, scope)?);
                    }
                    (sq::FunctionArg::Unnamed(sq::FunctionArgExpr::Expr(v)), false) => {
                        args.push(self.expr(v, scope)?)
                    }
                    (other, true) => {
                        return Err(sql_err(
                            whole,
                            format!("JSON_OBJECT takes 'key' VALUE value pairs, not {other}"),
                        ))
                    }
                    (other, false) => {
                        return Err(sql_err(whole, format!("unsupported argument {other}")))
                    }
                }
            }
        }
        args.insert(0, Expr::Literal(Literal::String(mode.into())));
        let func = Func::from_name(upper).expect("a built-in");
        Ok(Expr::Call(func, args))
    }

    /// `agg(x) OVER (PARTITION BY .. ORDER BY t [ROWS|RANGE BETWEEN .. PRECEDING AND CURRENT
    /// ROW])`: recorded for the SELECT being planned, which puts a [`Plan::Over`] under its
    /// projection; the call becomes a column of it.
    fn over_call(&mut self, f: &sq::Function, w: &sq::WindowType, scope: &Scope) -> Result<Expr> {
        let whole = f.to_string();
        let upper = object_name(&f.name).to_ascii_uppercase();
        let sq::WindowType::WindowSpec(spec) = w else {
            return Err(sql_err(
                &whole,
                "named windows (OVER w) are not supported; write the window in OVER (...)",
            ));
        };
        if let Some(func) = crate::operators::RankFunc::from_name(&upper) {
            if !matches!(&f.args, sq::FunctionArguments::List(l) if l.args.is_empty())
                && !matches!(&f.args, sq::FunctionArguments::None)
            {
                return Err(sql_err(&whole, format!("{upper}() takes no arguments")));
            }
            if self.rank.is_some() {
                return Err(sql_err(
                    &whole,
                    "one ROW_NUMBER(), RANK() or DENSE_RANK() per SELECT",
                ));
            }
            let partition = spec
                .partition_by
                .iter()
                .map(|e| self.expr(e, scope))
                .collect::<Result<Vec<_>>>()?;
            if spec.order_by.is_empty() {
                return Err(sql_err(
                    &whole,
                    format!("{upper}() OVER (...) needs ORDER BY"),
                ));
            }
            let mut order = Vec::new();
            for o in &spec.order_by {
                let descending = o.options.asc == Some(false);
                // NULLs sort as the highest values (last ascending, first descending), as Flink.
                let nulls_first = o.options.nulls_first.unwrap_or(descending);
                order.push((
                    self.expr(&o.expr, scope)?,
                    SortOptions {
                        descending,
                        nulls_first,
                    },
                ));
            }
            if spec.window_frame.is_some() {
                return Err(sql_err(&whole, format!("{upper}() takes no frame")));
            }
            self.rank = Some((partition, order, "$rank".into(), func));
            return Ok(col("$rank"));
        }
        let is_lead = upper == "LEAD";
        let is_lag = upper == "LAG" || is_lead;
        let Some(func) = AggFunc::from_name(&upper)
            .filter(|f| *f != AggFunc::Udf)
            .or(is_lag.then_some(AggFunc::Count))
        else {
            return Err(sql_err(
                &whole,
                format!("{upper} OVER (...) is not supported yet; COUNT, SUM, MIN, MAX, AVG, LAG, LEAD, ROW_NUMBER, RANK and DENSE_RANK (Top-N, deduplication) are"),
            ));
        };
        let raw = match &f.args {
            sq::FunctionArguments::List(l)
                if l.args.len() == 1
                    && matches!(
                        l.args[0],
                        sq::FunctionArg::Unnamed(sq::FunctionArgExpr::Wildcard)
                    ) =>
            {
                vec![]
            }
            _ => function_args(f)?,
        };
        let mut lag = None;
        let arg = match raw.as_slice() {
            [a, rest @ ..] if is_lag && rest.len() <= 2 => {
                let offset = match rest.first() {
                    None => 1,
                    Some(sq::Expr::Value(v)) => match &v.value {
                        sq::Value::Number(n, _) => n.parse::<usize>().map_err(|_| {
                            sql_err(
                                &whole,
                                format!("the offset of {upper} is a whole number of rows"),
                            )
                        })?,
                        _ => {
                            return Err(sql_err(
                                &whole,
                                format!("the offset of {upper} is a whole number of rows"),
                            ))
                        }
                    },
                    Some(_) => {
                        return Err(sql_err(
                            &whole,
                            format!("the offset of {upper} is a number literal"),
                        ))
                    }
                };
                let default = rest.get(1).map(|d| self.expr(d, scope)).transpose()?;
                lag = Some((offset, default));
                Some(self.expr(a, scope)?)
            }
            _ if is_lag => {
                return Err(sql_err(
                    &whole,
                    format!("{upper} takes a value, an offset and a default"),
                ))
            }
            [] if func == AggFunc::Count => None,
            [a] => Some(self.expr(a, scope)?),
            _ => return Err(sql_err(&whole, format!("{upper} takes one argument"))),
        };
        let partition = spec
            .partition_by
            .iter()
            .map(|e| self.expr(e, scope))
            .collect::<Result<Vec<_>>>()?;
        let order = match spec.order_by.as_slice() {
            [o] if o.options.asc != Some(false) => match self.expr(&o.expr, scope)? {
                Expr::Column(c) => c,
                other => {
                    return Err(sql_err(
                        &other.to_string(),
                        "an OVER window is ordered by a column (its time attribute)",
                    ))
                }
            },
            _ => {
                return Err(sql_err(
                    &whole,
                    "an OVER window needs ORDER BY one time column, ascending",
                ))
            }
        };
        let bound = |b: &sq::WindowFrameBound, rows: bool| -> Result<Option<i64>> {
            Ok(match b {
                sq::WindowFrameBound::CurrentRow => Some(0),
                sq::WindowFrameBound::Preceding(None) => None,
                sq::WindowFrameBound::Preceding(Some(e)) => Some(match (rows, e.as_ref()) {
                    (true, sq::Expr::Value(v)) => match &v.value {
                        sq::Value::Number(n, _) => n
                            .parse::<i64>()
                            .ok()
                            .filter(|n| *n >= 0)
                            .ok_or_else(|| sql_err(&whole, format!("{n} is not a row count")))?,
                        _ => return Err(sql_err(&whole, "ROWS takes a number of rows")),
                    },
                    (false, sq::Expr::Interval(i)) => interval_millis(i, &whole)?,
                    (true, _) => return Err(sql_err(&whole, "ROWS takes a number of rows")),
                    (false, _) => {
                        return Err(sql_err(&whole, "RANGE takes an INTERVAL ('10' SECOND)"))
                    }
                }),
                sq::WindowFrameBound::Following(_) => return Err(sql_err(
                    &whole,
                    "an OVER window ends at CURRENT ROW (FOLLOWING is not supported, as in Flink)",
                )),
            })
        };
        let frame = match &spec.window_frame {
            // With ORDER BY and no frame: RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW.
            None => crate::operators::OverFrame {
                rows: false,
                preceding: None,
            },
            Some(fr) => {
                let rows = match fr.units {
                    sq::WindowFrameUnits::Rows => true,
                    sq::WindowFrameUnits::Range => false,
                    sq::WindowFrameUnits::Groups => {
                        return Err(sql_err(&whole, "GROUPS frames are not supported"))
                    }
                };
                if !matches!(fr.end_bound, None | Some(sq::WindowFrameBound::CurrentRow)) {
                    return Err(sql_err(&whole, "an OVER window ends at CURRENT ROW"));
                }
                crate::operators::OverFrame {
                    rows,
                    preceding: bound(&fr.start_bound, rows)?,
                }
            }
        };
        let window = OverWindow {
            partition,
            order,
            frame,
        };
        let (w, aggs) = self
            .over
            .get_or_insert_with(|| (window.clone(), Vec::new()));
        if *w != window {
            return Err(sql_err(
                &whole,
                "all OVER windows of a SELECT must be the same (as in Flink)",
            ));
        }
        let name = format!("$over{}", aggs.len());
        aggs.push(crate::operators::OverAgg {
            func,
            arg,
            name: name.clone(),
            lag,
            lead: is_lead,
        });
        Ok(col(&name))
    }

    fn function(&mut self, f: &sq::Function, scope: &Scope) -> Result<Expr> {
        if let Some(w) = &f.over {
            return self.over_call(f, w, scope);
        }
        let name = object_name(&f.name);
        let upper = name.to_ascii_uppercase();
        let whole = f.to_string();
        let distinct = matches!(&f.args, sq::FunctionArguments::List(l) if l.duplicate_treatment == Some(sq::DuplicateTreatment::Distinct));
        // COUNT(*)
        if let sq::FunctionArguments::List(l) = &f.args {
            if l.args.len() == 1
                && matches!(
                    l.args[0],
                    sq::FunctionArg::Unnamed(sq::FunctionArgExpr::Wildcard)
                )
            {
                if upper == "COUNT" {
                    return Ok(crate::plan::count_star());
                }
                return Err(sql_err(
                    &whole,
                    format!("{upper}(*) is not a function; only COUNT takes *"),
                ));
            }
        }
        if upper == "JSON_OBJECT" || upper == "JSON_ARRAY" {
            return self.json_constructor(f, &upper, scope, &whole);
        }
        let raw = function_args(f)?;
        // Window properties of group windows.
        if let Some(p) = match upper.as_str() {
            "TUMBLE_START" | "HOP_START" | "SESSION_START" => Some(WindowProperty::Start),
            "TUMBLE_END" | "HOP_END" | "SESSION_END" => Some(WindowProperty::End),
            "TUMBLE_ROWTIME" | "HOP_ROWTIME" | "SESSION_ROWTIME" => Some(WindowProperty::Rowtime),
            _ => None,
        } {
            return Ok(Expr::WindowProperty(p));
        }
        let mut args = Vec::new();
        for a in &raw {
            args.push(self.expr(a, scope)?);
        }
        resolve_function(self.env, &name, args, distinct, &whole)
    }
}

/// A call of the function `name`, as SQL and the Table API's `call(name, ...)` resolve it: a
/// function registered in `env` first (it shadows a built-in of the same name, as Flink's
/// temporary system functions do), then the aggregates, then the built-in scalar functions.
/// `whole` is the call as the user wrote it, for errors.
pub fn resolve_function(
    env: &TableEnvironment,
    name: &str,
    mut args: Vec<Expr>,
    distinct: bool,
    whole: &str,
) -> Result<Expr> {
    let upper = name.to_ascii_uppercase();
    if let Some(u) = env.function(name) {
        return Ok(Expr::Udf(u, args));
    }
    if let Some(agg) = AggFunc::from_name(&upper) {
        if args.len() != 1 {
            return Err(sql_err(whole, format!("{upper} takes one argument")));
        }
        return Ok(Expr::Agg {
            func: agg,
            arg: Some(Box::new(args.remove(0))),
            distinct,
        });
    }
    if let Some(func) = Func::from_name(&upper) {
        if func == Func::Extract {
            return Err(sql_err(whole, "write EXTRACT(unit FROM value)"));
        }
        return Ok(Expr::Call(func, args));
    }
    if upper == "PROCTIME" {
        return Ok(Expr::Call(Func::Proctime, args));
    }
    Err(sql_err(
        whole,
        format!(
            "no function named `{name}`; built-in functions are {}, COUNT, SUM, MIN, MAX, AVG; register user-defined ones with create_temporary_function",
            Func::names().collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// A numeric literal: an integer that fits BIGINT, a DECIMAL(p, 0) for a longer integer, a
/// DOUBLE for decimals and exponents. An integer with more digits than any exact type holds
/// (DECIMAL(38)) is an error, as in Flink, rather than a DOUBLE that silently loses digits.
fn number_literal(n: &str) -> Result<Expr> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Expr::Literal(Literal::Int(i)));
    }
    let digits = n.trim_start_matches(['-', '+']);
    if digits.bytes().all(|c| c.is_ascii_digit()) {
        let significant = digits.trim_start_matches('0').len();
        if significant > 38 {
            return Err(EngineError::Plan {
                expr: n.chars().take(60).collect(),
                detail: format!(
                    "an integer literal of {significant} digits is more than any exact type \
                     holds (DECIMAL(38)); write it as {}E{} for a DOUBLE",
                    &digits[..1],
                    significant - 1
                ),
            });
        }
        // Too big for BIGINT: DECIMAL(p, 0), exact, as Flink types it.
        let p = significant.max(1) as u8;
        return Ok(Expr::Cast(
            Box::new(Expr::Literal(Literal::String(n.to_string()))),
            arrow_schema::DataType::Decimal128(p, 0),
        ));
    }
    Ok(Expr::Literal(Literal::Float(
        n.parse().map_err(|_| sql_err(n, "not a number"))?,
    )))
}

/// Expressions written as SQL text over the columns of `schema` (the Table API's
/// `t.select("a, b + 1 AS c")`, `t.filter("x > 1")`), planned as the select list of a query
/// would be. Anything but a list of expressions is an error.
pub fn parse_expressions(env: &TableEnvironment, schema: &Schema, text: &str) -> Result<Vec<Expr>> {
    crate::stack::deep(|| parse_expressions_here(env, schema, text))
}

fn parse_expressions_here(
    env: &TableEnvironment,
    schema: &Schema,
    text: &str,
) -> Result<Vec<Expr>> {
    let st = parse_one(&format!("SELECT {text}"))
        .map_err(|_| parse_err(text, "expected a comma-separated list of expressions"))?;
    let select = match &st {
        sq::Statement::Query(q) => match q.body.as_ref() {
            sq::SetExpr::Select(s)
                if s.from.is_empty()
                    && s.selection.is_none()
                    && s.having.is_none()
                    && q.order_by.is_none()
                    && q.limit_clause.is_none()
                    && matches!(&s.group_by, sq::GroupByExpr::Expressions(e, _) if e.is_empty()) =>
            {
                s
            }
            _ => {
                return Err(parse_err(
                    text,
                    "expected a comma-separated list of expressions",
                ))
            }
        },
        _ => {
            return Err(parse_err(
                text,
                "expected a comma-separated list of expressions",
            ))
        }
    };
    let scope = Scope::of_schema(None, schema);
    let mut planner = Planner::new(env);
    let mut out = Vec::new();
    for item in &select.projection {
        match item {
            sq::SelectItem::UnnamedExpr(e) => out.push(planner.expr(e, &scope)?),
            sq::SelectItem::ExprWithAlias { expr, alias } => {
                out.push(planner.expr(expr, &scope)?.alias(&alias.value))
            }
            sq::SelectItem::Wildcard(_) => {
                out.extend(schema.fields().iter().map(|f| col(f.name())))
            }
            other => {
                return Err(sql_err(
                    text,
                    format!("`{other}` is not an expression over this table's columns"),
                ))
            }
        }
    }
    Ok(out)
}

/// `FROM x AS t(a, b)`: the alias's column list renames the relation's columns, in order;
/// it must name each of them once.
pub(crate) fn with_column_aliases(plan: Plan, alias: Option<&sq::TableAlias>) -> Result<Plan> {
    let Some(alias) = alias.filter(|a| !a.columns.is_empty()) else {
        return Ok(plan);
    };
    let schema = plan.schema()?;
    let names: Vec<String> = alias.columns.iter().map(|c| c.name.value.clone()).collect();
    if names.len() != schema.fields().len() {
        return Err(sql_err(
            &alias.to_string(),
            format!(
                "the alias names {} columns ({}) but the relation has {} ({})",
                names.len(),
                names.join(", "),
                schema.fields().len(),
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].iter().any(|m| m.eq_ignore_ascii_case(n)) {
            return Err(sql_err(
                &alias.to_string(),
                format!("column `{n}` is named twice"),
            ));
        }
        if let Some(c) = alias.columns.get(i).and_then(|c| c.data_type.as_ref()) {
            return Err(sql_err(
                &alias.to_string(),
                format!("a column alias takes no type (`{n} {c}`)"),
            ));
        }
    }
    let projections = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(f, n)| (col(f.name()), n))
        .collect();
    Ok(Plan::Calc {
        input: Box::new(plan),
        filter: None,
        projections,
    })
}

/// Argument `i` of a window function: a positive INTERVAL, in ms.
pub(crate) fn interval_arg(args: &[sq::Expr], i: usize, whole: &str) -> Result<i64> {
    let ms = match args.get(i) {
        Some(sq::Expr::Interval(iv)) => interval_millis(iv, whole)?,
        _ => {
            return Err(sql_err(
                whole,
                format!("argument {} must be an INTERVAL", i + 1),
            ))
        }
    };
    if ms <= 0 {
        return Err(sql_err(
            whole,
            format!("argument {} must be a positive interval", i + 1),
        ));
    }
    Ok(ms)
}

/// Top-N: a filter `rn <= N` (`rn < N`, `rn = 1`) over a query whose column `rn` is a
/// ROW_NUMBER() bounds that rank to N rows per partition (the filter stays above it).
fn push_rank_limit(plan: &mut Plan, cond: &Expr) {
    fn split(e: &Expr, out: &mut Vec<Expr>) {
        match e {
            Expr::Binary(a, crate::expr::BinaryOp::And, b) => {
                split(a, out);
                split(b, out);
            }
            e => out.push(e.clone()),
        }
    }
    let mut conjuncts = Vec::new();
    split(cond, &mut conjuncts);
    let bound = |e: &Expr| -> Option<(String, usize)> {
        use crate::expr::BinaryOp::*;
        let Expr::Binary(a, op, b) = e else {
            return None;
        };
        let (Expr::Column(c), Expr::Literal(Literal::Int(n))) = (a.as_ref(), b.as_ref()) else {
            return None;
        };
        let n = usize::try_from(*n).ok()?;
        match op {
            LtEq => Some((c.clone(), n)),
            Lt => Some((c.clone(), n.saturating_sub(1))),
            Eq if n == 1 => Some((c.clone(), 1)),
            _ => None,
        }
    };
    for c in &conjuncts {
        let Some((column, n)) = bound(c) else {
            continue;
        };
        let rank = match plan {
            Plan::Calc {
                input, projections, ..
            } => match input.as_mut() {
                Plan::Rank { name, limit, .. }
                    if projections.iter().any(|(e, out)| {
                        *out == column && matches!(e, Expr::Column(x) if x == name)
                    }) =>
                {
                    Some(limit)
                }
                _ => None,
            },
            Plan::Rank { name, limit, .. } if *name == column => Some(limit),
            _ => None,
        };
        if let Some(limit) = rank {
            *limit = Some(limit.map_or(n, |l| l.min(n)));
        }
    }
}

pub(crate) fn function_args(f: &sq::Function) -> Result<Vec<sq::Expr>> {
    match &f.args {
        sq::FunctionArguments::None => Ok(vec![]),
        sq::FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                sq::FunctionArg::Unnamed(sq::FunctionArgExpr::Expr(e)) => Ok(e.clone()),
                other => Err(sql_err(
                    &f.to_string(),
                    format!("unsupported argument {other}"),
                )),
            })
            .collect(),
        sq::FunctionArguments::Subquery(_) => Err(sql_err(
            &f.to_string(),
            "subquery arguments are not supported",
        )),
    }
}

/// The call and alias of `LATERAL TABLE(f(x)) [AS T(a, b)]`, if that is what `r` is.
fn lateral_call(r: &sq::TableFactor) -> Option<(&sq::Expr, Option<&sq::TableAlias>)> {
    match r {
        sq::TableFactor::Function {
            lateral: true,
            name,
            args,
            alias,
        } if object_name(name).eq_ignore_ascii_case("TABLE") && args.len() == 1 => match &args[0] {
            sq::FunctionArg::Unnamed(sq::FunctionArgExpr::Expr(e)) => Some((e, alias.as_ref())),
            _ => None,
        },
        _ => None,
    }
}
