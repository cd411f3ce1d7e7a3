//! The logical plan (what the Table API and SQL build) and its properties (schema, whether
//! it produces updates, whether it ends, its time attributes); [`crate::physical`] turns it
//! into a parallel job graph.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, SortOptions};

use crate::connectors::TableDef;
use crate::error::{EngineError, Result};
use crate::expr::{col, AggFunc, Expr, WindowProperty};
use crate::operators::JoinKind;
use crate::operators::{AggSpec, WindowKind};

/// A node of the logical plan.
#[derive(Clone)]
pub enum Plan {
    Scan {
        def: Arc<TableDef>,
    },
    Values {
        name: String,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    /// Filter then project (either may be absent).
    Calc {
        input: Box<Plan>,
        filter: Option<Expr>,
        projections: Vec<(Expr, String)>,
    },
    Aggregate {
        input: Box<Plan>,
        keys: Vec<(Expr, String)>,
        aggs: Vec<AggSpec>,
    },
    WindowAggregate {
        input: Box<Plan>,
        kind: WindowKind,
        time: String,
        keys: Vec<(Expr, String)>,
        aggs: Vec<AggSpec>,
    },
    WindowAssign {
        input: Box<Plan>,
        kind: WindowKind,
        time: String,
    },
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        on: Vec<(Expr, Expr)>,
        filter: Option<Expr>,
        /// Output names of the right side's columns (renamed when they clash).
        right_names: Vec<String>,
    },
    Union {
        inputs: Vec<Plan>,
    },
    Sort {
        input: Box<Plan>,
        keys: Vec<(Expr, SortOptions)>,
        limit: Option<usize>,
        offset: usize,
    },
    Limit {
        input: Box<Plan>,
        limit: usize,
        offset: usize,
    },
    /// Each input row joined with the rows a table function yields for it (`join_lateral`,
    /// `LATERAL TABLE(f(x))`); `outer` keeps rows it yields nothing for, with NULLs.
    Correlate {
        input: Box<Plan>,
        /// The table function's call ([`Expr::Udf`] of a [`crate::udf::FunctionKind::Table`]).
        call: Expr,
        /// Names of its columns in the output.
        names: Vec<String>,
        outer: bool,
    },
    /// Aggregates over the rows of each row's partition that precede it in time (`agg(x) OVER
    /// (PARTITION BY .. ORDER BY time ROWS|RANGE .. PRECEDING)`), appended to the row.
    Over {
        input: Box<Plan>,
        partition: Vec<Expr>,
        /// The column rows are ordered by (a time attribute in streaming mode).
        order: String,
        frame: crate::operators::OverFrame,
        aggs: Vec<crate::operators::OverAgg>,
    },
    /// `ROW_NUMBER()` (or `RANK()`, `DENSE_RANK()`) `OVER (PARTITION BY .. ORDER BY ..)`, the
    /// rows of each partition ranked at most `limit` (Top-N, deduplication); the rank is the
    /// last column, `name`.
    Rank {
        input: Box<Plan>,
        partition: Vec<Expr>,
        order: Vec<(Expr, SortOptions)>,
        func: crate::operators::RankFunc,
        /// `rn <= limit` pushed down from the filter above; None: not limited (batch only).
        limit: Option<usize>,
        name: String,
    },
    /// The last column of `input` (per row, a list of rows, as a table aggregate function's
    /// value is) flattened: one row per item, the other columns repeated, the item's fields
    /// named `names` (`flat_aggregate`). Each row keeps its input row's change kind. A BIGINT
    /// last column (with no `names`) is a count: each row repeated that many times, as
    /// INTERSECT ALL and EXCEPT ALL need.
    Flatten {
        input: Box<Plan>,
        names: Vec<String>,
    },
}

pub(crate) fn plan_err(expr: impl std::fmt::Display, detail: impl Into<String>) -> EngineError {
    EngineError::Plan {
        expr: expr.to_string(),
        detail: detail.into(),
    }
}

impl Plan {
    /// The rows' schema.
    pub fn schema(&self) -> Result<SchemaRef> {
        Ok(match self {
            Plan::Scan { def } => def.schema()?,
            Plan::Values { schema, .. } => schema.clone(),
            Plan::Calc {
                input, projections, ..
            } => {
                let s = input.schema()?;
                let mut fields = Vec::new();
                for (e, n) in projections {
                    fields.push(Field::new(n, e.data_type(&s)?, true));
                }
                Arc::new(Schema::new(fields))
            }
            Plan::Aggregate { input, keys, aggs } => {
                let s = input.schema()?;
                let mut fields = Vec::new();
                for (e, n) in keys {
                    fields.push(Field::new(n, e.data_type(&s)?, true));
                }
                for a in aggs {
                    fields.push(Field::new(&a.name, a.output_type.clone(), true));
                }
                Arc::new(Schema::new(fields))
            }
            Plan::WindowAggregate {
                input, keys, aggs, ..
            } => {
                let s = input.schema()?;
                let ts = DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None);
                let mut fields = Vec::new();
                for (e, n) in keys {
                    fields.push(Field::new(n, e.data_type(&s)?, true));
                }
                for n in ["window_start", "window_end", "window_time"] {
                    fields.push(Field::new(n, ts.clone(), false));
                }
                for a in aggs {
                    fields.push(Field::new(&a.name, a.output_type.clone(), true));
                }
                Arc::new(Schema::new(fields))
            }
            Plan::WindowAssign { input, .. } => {
                let s = input.schema()?;
                let ts = DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None);
                let mut fields: Vec<Field> =
                    s.fields().iter().map(|f| f.as_ref().clone()).collect();
                for n in ["window_start", "window_end", "window_time"] {
                    fields.push(Field::new(n, ts.clone(), false));
                }
                Arc::new(Schema::new(fields))
            }
            Plan::Join {
                left,
                right,
                right_names,
                kind,
                ..
            } => {
                let (l, r) = (left.schema()?, right.schema()?);
                // The side the other side's unmatched rows pad with NULLs becomes nullable.
                let mut fields: Vec<Field> = l
                    .fields()
                    .iter()
                    .map(|f| {
                        let f = f.as_ref().clone();
                        if kind.keeps(1) {
                            f.with_nullable(true)
                        } else {
                            f
                        }
                    })
                    .collect();
                for (f, n) in r.fields().iter().zip(right_names) {
                    let f = f.as_ref().clone().with_name(n);
                    fields.push(if kind.keeps(0) {
                        f.with_nullable(true)
                    } else {
                        f
                    });
                }
                Arc::new(Schema::new(fields))
            }
            Plan::Union { inputs } => {
                let first = inputs
                    .first()
                    .ok_or_else(|| plan_err("UNION ALL", "needs at least one input"))?
                    .schema()?;
                let mut fields: Vec<Field> =
                    first.fields().iter().map(|f| f.as_ref().clone()).collect();
                for other in &inputs[1..] {
                    let s = other.schema()?;
                    if s.fields().len() != fields.len() {
                        return Err(plan_err(
                            "UNION ALL",
                            format!(
                                "the inputs have {} and {} columns; they must have the same number",
                                fields.len(),
                                s.fields().len()
                            ),
                        ));
                    }
                    for (f, g) in fields.iter_mut().zip(s.fields()) {
                        let (a, b) = (f.data_type().clone(), g.data_type().clone());
                        if a == b {
                            continue;
                        }
                        let t = if a.is_numeric() && b.is_numeric() {
                            if a.is_floating() || b.is_floating() {
                                DataType::Float64
                            } else {
                                DataType::Int64
                            }
                        } else if a == DataType::Null {
                            b
                        } else if b == DataType::Null {
                            a
                        } else {
                            return Err(plan_err(
                                "UNION ALL",
                                format!(
                                    "column `{}` is {} on one side and {} on the other",
                                    f.name(),
                                    crate::types::type_name(&a),
                                    crate::types::type_name(&b)
                                ),
                            ));
                        };
                        *f = f.clone().with_data_type(t).with_nullable(true);
                    }
                }
                Arc::new(Schema::new(fields))
            }
            Plan::Sort { input, .. } | Plan::Limit { input, .. } => input.schema()?,
            Plan::Correlate {
                input, call, names, ..
            } => {
                let s = input.schema()?;
                let (fields, _) = correlate_fields(&s, call, names)?;
                Arc::new(Schema::new(fields))
            }
            Plan::Flatten { input, names } => Arc::new(Schema::new(flatten_fields(
                input.schema()?.as_ref(),
                names,
            )?)),
            Plan::Rank { input, name, .. } => {
                let s = input.schema()?;
                let mut fields: Vec<Field> =
                    s.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new(name, DataType::Int64, false));
                Arc::new(Schema::new(fields))
            }
            Plan::Over {
                input,
                partition,
                order,
                frame,
                aggs,
            } => crate::operators::Operator::output_schema(&crate::operators::OverAggregate::new(
                "Over",
                input.schema()?.as_ref(),
                partition.clone(),
                order,
                frame.clone(),
                aggs,
                crate::operators::OverTime::Batch,
            )?),
        })
    }

    /// Whether the plan emits updates (`-U`, `+U`, `-D`) in streaming mode.
    pub fn is_updating(&self) -> bool {
        match self {
            Plan::Scan { .. } | Plan::Values { .. } => false,
            Plan::Aggregate { .. } => true,
            Plan::WindowAggregate { .. } => false,
            Plan::Join {
                left, right, kind, ..
            } => *kind != JoinKind::Inner || left.is_updating() || right.is_updating(),
            Plan::Union { inputs } => inputs.iter().any(Plan::is_updating),
            Plan::Calc { input, .. }
            | Plan::WindowAssign { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Correlate { input, .. }
            | Plan::Flatten { input, .. }
            | Plan::Over { input, .. } => input.is_updating(),
            Plan::Rank { .. } => true,
        }
    }

    /// Whether every source of the plan ends.
    pub fn is_bounded(&self) -> bool {
        match self {
            Plan::Scan { def } => def.source().map(|s| s.is_bounded()).unwrap_or(false),
            Plan::Values { .. } => true,
            Plan::Join { left, right, .. } => left.is_bounded() && right.is_bounded(),
            Plan::Union { inputs } => inputs.iter().all(Plan::is_bounded),
            Plan::Calc { input, .. }
            | Plan::Aggregate { input, .. }
            | Plan::WindowAggregate { input, .. }
            | Plan::WindowAssign { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Correlate { input, .. }
            | Plan::Flatten { input, .. }
            | Plan::Over { input, .. }
            | Plan::Rank { input, .. } => input.is_bounded(),
        }
    }

    /// The event-time attribute column of the output, if it has one.
    pub fn rowtime(&self) -> Option<String> {
        match self {
            Plan::Scan { def } => def.watermark.as_ref().map(|(c, _)| c.clone()),
            Plan::Calc {
                input, projections, ..
            } => {
                let rt = input.rowtime()?;
                projections.iter().find_map(|(e, n)| match e.unaliased() {
                    Expr::Column(c) if *c == rt => Some(n.clone()),
                    _ => None,
                })
            }
            Plan::WindowAggregate { .. } => Some("window_time".into()),
            Plan::WindowAssign { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Correlate { input, .. }
            | Plan::Flatten { input, .. }
            | Plan::Over { input, .. }
            | Plan::Rank { input, .. } => input.rowtime(),
            Plan::Union { inputs } => inputs.first().and_then(Plan::rowtime),
            _ => None,
        }
    }

    /// The processing-time attribute column of the output, if it has one.
    pub fn proctime(&self) -> Option<String> {
        match self {
            Plan::Scan { def } => def.proctime_column(),
            Plan::Calc {
                input, projections, ..
            } => {
                let pt = input.proctime()?;
                projections.iter().find_map(|(e, n)| match e.unaliased() {
                    Expr::Column(c) if *c == pt => Some(n.clone()),
                    _ => None,
                })
            }
            Plan::WindowAssign { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Correlate { input, .. }
            | Plan::Flatten { input, .. }
            | Plan::Over { input, .. }
            | Plan::Rank { input, .. } => input.proctime(),
            _ => None,
        }
    }

    /// The plan as an indented tree (EXPLAIN).
    pub fn explain(&self) -> String {
        let mut s = String::new();
        self.explain_into(&mut s, 0);
        s
    }

    fn explain_into(&self, s: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let exprs = |v: &[(Expr, String)]| {
            v.iter()
                .map(|(e, n)| match e {
                    Expr::Column(c) if c == n => n.clone(),
                    _ => format!("{e} AS {n}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let aggs = |v: &[AggSpec]| {
            v.iter()
                .map(|a| match (&a.udaf, &a.arg) {
                    (Some(u), _) => format!(
                        "{}({}) AS {}",
                        u.udf.name,
                        u.args
                            .iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        a.name
                    ),
                    (None, None) => format!("{}(*) AS {}", a.func.name(), a.name),
                    (None, Some(x)) => format!(
                        "{}({}{x}) AS {}",
                        a.func.name(),
                        if a.distinct { "DISTINCT " } else { "" },
                        a.name
                    ),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line = match self {
            Plan::Scan { def } => {
                let wm = def
                    .watermark
                    .as_ref()
                    .map(|(c, e)| format!(", watermark=[{c}: {e}]"))
                    .unwrap_or_default();
                format!(
                    "TableSourceScan(table=[{}], connector=[{}]{wm})",
                    def.name,
                    def.options
                        .get("connector")
                        .map(String::as_str)
                        .unwrap_or("?")
                )
            }
            Plan::Values { name, batches, .. } => format!(
                "Values(name=[{name}], rows=[{}])",
                batches.iter().map(|b| b.num_rows()).sum::<usize>()
            ),
            Plan::Calc {
                filter,
                projections,
                ..
            } => {
                let mut t = format!("Calc(select=[{}]", exprs(projections));
                if let Some(f) = filter {
                    let _ = write!(t, ", where=[{f}]");
                }
                t + ")"
            }
            Plan::Aggregate { keys, aggs: a, .. } => {
                format!(
                    "GroupAggregate(groupBy=[{}], select=[{}])",
                    exprs(keys),
                    aggs(a)
                )
            }
            Plan::WindowAggregate {
                kind,
                time,
                keys,
                aggs: a,
                ..
            } => format!(
                "WindowAggregate(window=[{}], time=[{time}], groupBy=[{}], select=[{}])",
                kind.describe(),
                exprs(keys),
                aggs(a)
            ),
            Plan::WindowAssign { kind, time, .. } => {
                format!(
                    "WindowTableFunction(window=[{}], time=[{time}])",
                    kind.describe()
                )
            }
            Plan::Join {
                kind, on, filter, ..
            } => {
                let cond: Vec<String> = on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
                let mut t = format!(
                    "Join(joinType=[{}], where=[{}]",
                    match kind {
                        JoinKind::Inner => "InnerJoin",
                        JoinKind::LeftOuter => "LeftOuterJoin",
                        JoinKind::RightOuter => "RightOuterJoin",
                        JoinKind::FullOuter => "FullOuterJoin",
                    },
                    cond.join(" AND ")
                );
                if let Some(f) = filter {
                    let _ = write!(t, ", filter=[{f}]");
                }
                t + ")"
            }
            Plan::Union { .. } => "Union(all=[true])".to_string(),
            Plan::Sort {
                keys,
                limit,
                offset,
                ..
            } => {
                let k: Vec<String> = keys
                    .iter()
                    .map(|(e, o)| format!("{e} {}", if o.descending { "DESC" } else { "ASC" }))
                    .collect();
                let mut t = format!("Sort(orderBy=[{}]", k.join(", "));
                if let Some(l) = limit {
                    let _ = write!(t, ", offset=[{offset}], fetch=[{l}]");
                }
                t + ")"
            }
            Plan::Limit { limit, offset, .. } => {
                format!("Limit(offset=[{offset}], fetch=[{limit}])")
            }
            Plan::Correlate {
                call, names, outer, ..
            } => format!(
                "Correlate(invocation=[{call}], select=[{}], joinType=[{}])",
                names.join(", "),
                if *outer { "LEFT" } else { "INNER" }
            ),
            Plan::Flatten { names, .. } => format!("Flatten(select=[{}])", names.join(", ")),
            Plan::Rank {
                partition,
                order,
                func,
                limit,
                name,
                ..
            } => format!(
                "Rank(rankType=[{}], partitionBy=[{}], orderBy=[{}], rankRange=[1..{}], select=[*, {name}])",
                func.name(),
                partition.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                order
                    .iter()
                    .map(|(e, o)| format!("{e} {}", if o.descending { "DESC" } else { "ASC" }))
                    .collect::<Vec<_>>()
                    .join(", "),
                limit.map_or("".to_string(), |l| l.to_string())
            ),
            Plan::Over {
                partition,
                order,
                frame,
                aggs,
                ..
            } => format!(
                "OverAggregate(partitionBy=[{}], orderBy=[{order}], window=[{} BETWEEN {} PRECEDING AND CURRENT ROW], select=[{}])",
                partition.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                if frame.rows { "ROWS" } else { "RANGE" },
                frame.preceding.map_or("UNBOUNDED".to_string(), |p| if frame.rows { p.to_string() } else { format!("{p} ms") }),
                aggs.iter().map(|a| format!("{}({}) AS {}", a.func.name(), a.arg.as_ref().map_or("*".to_string(), |e| e.to_string()), a.name)).collect::<Vec<_>>().join(", ")
            ),
        };
        let _ = writeln!(s, "{pad}{line}");
        for c in self.children() {
            c.explain_into(s, depth + 1);
        }
    }

    fn children(&self) -> Vec<&Plan> {
        match self {
            Plan::Scan { .. } | Plan::Values { .. } => vec![],
            Plan::Join { left, right, .. } => vec![left, right],
            Plan::Union { inputs } => inputs.iter().collect(),
            Plan::Calc { input, .. }
            | Plan::Aggregate { input, .. }
            | Plan::WindowAggregate { input, .. }
            | Plan::WindowAssign { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Correlate { input, .. }
            | Plan::Flatten { input, .. }
            | Plan::Over { input, .. }
            | Plan::Rank { input, .. } => vec![input],
        }
    }

    /// Node text for error messages about updates.
    pub(crate) fn describe_updating_node(&self) -> String {
        match self {
            Plan::Aggregate { .. } | Plan::Join { .. } => self
                .explain()
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            _ => self
                .children()
                .into_iter()
                .find(|c| c.is_updating())
                .map(|c| c.describe_updating_node())
                .unwrap_or_default(),
        }
    }
}

/// `input WHERE cond`: every column kept.
pub fn filter(input: Plan, cond: Expr) -> Result<Plan> {
    let schema = input.schema()?;
    let t = cond.data_type(&schema)?;
    if t != DataType::Boolean {
        return Err(plan_err(
            &cond,
            format!(
                "a filter condition must be BOOLEAN, not {}",
                crate::types::type_name(&t)
            ),
        ));
    }
    let projections = schema
        .fields()
        .iter()
        .map(|f| (col(f.name()), f.name().clone()))
        .collect();
    Ok(Plan::Calc {
        input: Box::new(input),
        filter: Some(cond),
        projections,
    })
}

/// A projection: checks every expression against `input`, names unnamed ones `EXPR$i`.
pub fn name_projections(
    exprs: Vec<Expr>,
    input: &Schema,
    unnamed: &str,
) -> Result<Vec<(Expr, String)>> {
    let mut out: Vec<(Expr, String)> = Vec::new();
    for (i, e) in exprs.into_iter().enumerate() {
        if e.contains_agg() {
            return Err(plan_err(&e, "an aggregate function is only allowed in the select list of a grouped table (GROUP BY / group_by(...).select(...))"));
        }
        e.data_type(input)?;
        let name = e.output_name().unwrap_or_else(|| format!("{unnamed}{i}"));
        let e = match e {
            Expr::Alias(inner, _) => *inner,
            e => e,
        };
        if out.iter().any(|(_, n)| *n == name) {
            return Err(plan_err(&e, format!("the result already has a column `{name}`; give one of them another name with AS / alias")));
        }
        out.push((e, name));
    }
    Ok(out)
}

/// How [`plan_aggregate`] names unnamed select items: `EXPR$<position>` as SQL (Calcite) does,
/// or `EXPR$0`, `EXPR$1`, ... over the unnamed items only, as Flink's Table API does
/// (`select(col('k'), col('v').count)` gives `k, EXPR$0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateNaming {
    Position,
    Sequence,
}

/// A group window as the planner sees it.
#[derive(Clone, Debug)]
pub struct GroupWindow {
    pub kind: WindowKind,
    /// The time attribute column.
    pub time: String,
    /// The alias the select list refers to (`w`), if any.
    pub alias: Option<String>,
}

/// Plans `input GROUP BY keys [window] SELECT select [HAVING having]`: aggregate calls
/// become an aggregate operator, the select list a projection over its result.
pub fn plan_aggregate(
    input: Plan,
    keys: Vec<Expr>,
    window: Option<GroupWindow>,
    select: Vec<Expr>,
    having: Option<Expr>,
    naming: AggregateNaming,
) -> Result<Plan> {
    let schema = input.schema()?;
    // Keys: named after their column, else key$i.
    let mut key_list: Vec<(Expr, String)> = Vec::new();
    for (i, k) in keys.into_iter().enumerate() {
        let k = match k {
            Expr::Alias(e, _) => *e,
            k => k,
        };
        if k.contains_agg() {
            return Err(plan_err(&k, "an aggregate cannot be a grouping key"));
        }
        k.data_type(&schema)?;
        let name = match &k {
            Expr::Column(c) => c.clone(),
            _ => format!("$key{i}"),
        };
        if !key_list.iter().any(|(e, _)| *e == k) {
            key_list.push((k, name));
        }
    }
    // Aggregate calls, each once.
    let mut aggs: Vec<(Expr, AggSpec)> = Vec::new();
    let mut collect = |e: &Expr| -> Result<()> {
        let mut err = None;
        e.visit(&mut |x| {
            if let Expr::Udf(u, args) = x {
                if !u.kind.is_aggregate() || aggs.iter().any(|(a, _)| a == x) || err.is_some() {
                    return;
                }
                if args.iter().any(Expr::contains_agg) {
                    err = Some(plan_err(x, "aggregates cannot be nested"));
                    return;
                }
                let vectorized = u.kind == crate::udf::FunctionKind::VectorizedAggregate;
                if args.is_empty() && vectorized {
                    err = Some(plan_err(x, "a pandas aggregate function takes at least one argument"));
                    return;
                }
                let mixed = aggs.iter().any(|(_, s)| {
                    s.udaf.as_ref().is_some_and(|o| {
                        (o.udf.kind == crate::udf::FunctionKind::VectorizedAggregate) != vectorized
                    })
                });
                if mixed {
                    err = Some(plan_err(
                        x,
                        "pandas aggregate functions and other aggregate functions cannot be mixed in one aggregation (as in PyFlink)",
                    ));
                    return;
                }
                if let Some(e) = args.iter().find_map(|a| a.data_type(&schema).err()) {
                    err = Some(e);
                    return;
                }
                let n = aggs.len();
                aggs.push((
                    x.clone(),
                    AggSpec {
                        func: AggFunc::Udf,
                        // A pandas aggregate's rows are buffered as one ROW of its arguments.
                        arg: vectorized.then(|| Expr::Call(crate::expr::Func::Row, args.clone())),
                        distinct: false,
                        name: format!("$agg{n}"),
                        output_type: u.result_type.clone(),
                        udaf: Some(crate::operators::udaf::UdafCall {
                            udf: u.clone(),
                            args: args.clone(),
                        }),
                    },
                ));
                return;
            }
            if let Expr::Agg {
                func,
                arg,
                distinct,
            } = x
            {
                if aggs.iter().any(|(a, _)| a == x) || err.is_some() {
                    return;
                }
                if let Some(a) = arg {
                    if a.contains_agg() {
                        err = Some(plan_err(x, "aggregates cannot be nested"));
                        return;
                    }
                }
                let t = match arg.as_ref().map(|a| a.data_type(&schema)).transpose() {
                    Ok(t) => t,
                    Err(e) => {
                        err = Some(e);
                        return;
                    }
                };
                match crate::operators::state::result_type(*func, t.as_ref()) {
                    Ok(out) => {
                        let n = aggs.len();
                        aggs.push((
                            x.clone(),
                            AggSpec {
                                func: *func,
                                arg: arg.as_ref().map(|a| (**a).clone()),
                                distinct: *distinct,
                                name: format!("$agg{n}"),
                                output_type: out,
                                udaf: None,
                            },
                        ))
                    }
                    Err(d) => err = Some(plan_err(x, d)),
                }
            }
        });
        err.map_or(Ok(()), Err)
    };
    // A table aggregate function gives rows, not a value: only `flat_aggregate` places it
    // (alone, as the last column `$tagg`, which a Plan::Flatten turns into rows).
    let table_agg = |e: &Expr| {
        let mut found = None;
        e.visit(&mut |x| {
            if let Expr::Udf(u, _) = x {
                if u.kind == crate::udf::FunctionKind::TableAggregate && found.is_none() {
                    found = Some(u.name.clone());
                }
            }
        });
        found
    };
    let placed = |e: &Expr| matches!(e, Expr::Alias(inner, n) if n == FLAT_AGGREGATE && matches!(&**inner, Expr::Udf(..)));
    for e in select.iter().chain(having.as_ref()) {
        if let Some(name) = table_agg(e) {
            if !placed(e) || select.len() - 1 != key_list.len() {
                return Err(plan_err(
                    e,
                    format!("`{name}` is a table aggregate function: it gives rows, not a value; use it alone in flat_aggregate (Table API)"),
                ));
            }
        }
    }
    for e in &select {
        collect(e)?;
    }
    if let Some(h) = &having {
        collect(h)?;
    }
    let window_alias = window.as_ref().and_then(|w| w.alias.clone());
    // Rewrite the select list over the aggregate's output.
    let rewrite = |e: Expr| -> Result<Expr> {
        let mut bad: Option<Expr> = None;
        let out = e.transform(&mut |x| {
            if let Some((_, spec)) = aggs.iter().find(|(a, _)| a == x) {
                return Some(col(&spec.name));
            }
            if let Some((_, n)) = key_list.iter().find(|(k, _)| k == x) {
                return Some(col(n));
            }
            match x {
                Expr::WindowProperty(p) => Some(col(match p {
                    WindowProperty::Start => "window_start",
                    WindowProperty::End => "window_end",
                    WindowProperty::Rowtime => "window_time",
                })),
                _ => None,
            }
        });
        // Any column left must be a key or a window column.
        out.visit(&mut |x| {
            if let Expr::Column(c) = x {
                let ok = key_list.iter().any(|(_, n)| n == c)
                    || aggs.iter().any(|(_, s)| s.name == *c)
                    || (window.is_some()
                        && ["window_start", "window_end", "window_time"].contains(&c.as_str()));
                if !ok && bad.is_none() {
                    bad = Some(x.clone());
                }
            }
        });
        match bad {
            Some(b) => Err(plan_err(
                &b,
                format!("`{b}` is neither grouped nor aggregated; add it to GROUP BY / group_by or wrap it in an aggregate"),
            )),
            None => Ok(out),
        }
    };
    let mut projections = Vec::new();
    let mut unnamed = 0;
    for (i, e) in select.into_iter().enumerate() {
        let name = e.output_name().unwrap_or_else(|| {
            let n = match naming {
                AggregateNaming::Position => i,
                AggregateNaming::Sequence => unnamed,
            };
            unnamed += 1;
            format!("EXPR${n}")
        });
        let e = match e {
            Expr::Alias(inner, _) => *inner,
            e => e,
        };
        // A window alias used as a column (`w`) means nothing on its own.
        if let (Some(a), Expr::Column(c)) = (&window_alias, &e) {
            if a == c {
                return Err(plan_err(
                    &e,
                    "a window alias can only be used with .start, .end or .rowtime",
                ));
            }
        }
        projections.push((rewrite(e)?, name));
    }
    let having = having.map(rewrite).transpose()?;
    let specs: Vec<AggSpec> = aggs.into_iter().map(|(_, s)| s).collect();
    let agg = match window {
        None => Plan::Aggregate {
            input: Box::new(input),
            keys: key_list,
            aggs: specs,
        },
        Some(w) => Plan::WindowAggregate {
            input: Box::new(input),
            kind: w.kind,
            time: w.time,
            keys: key_list,
            aggs: specs,
        },
    };
    let agg_schema = agg.schema()?;
    let mut seen: Vec<&str> = Vec::new();
    for (e, n) in &projections {
        e.data_type(&agg_schema)?;
        if seen.contains(&n.as_str()) {
            return Err(plan_err(
                e,
                format!("the result already has a column `{n}`; give one of them another name"),
            ));
        }
        seen.push(n);
    }
    if let Some(h) = &having {
        if h.data_type(&agg_schema)? != DataType::Boolean {
            return Err(plan_err(h, "HAVING needs a BOOLEAN condition"));
        }
    }
    Ok(Plan::Calc {
        input: Box::new(agg),
        filter: having,
        projections,
    })
}

/// The output fields of a [`Plan::Correlate`] over `input` (the input's, then the table
/// function's under `names`) and the table function's fields; errors name what is wrong with
/// the call or the names.
pub fn correlate_fields(
    input: &Schema,
    call: &Expr,
    names: &[String],
) -> Result<(Vec<Field>, arrow_schema::Fields)> {
    let Expr::Udf(u, args) = call.unaliased() else {
        return Err(plan_err(
            call,
            "a lateral join takes a call of a table function (udtf)",
        ));
    };
    let Some(tf) = u.table_fields() else {
        return Err(plan_err(
            call,
            format!("`{}` is not a table function (udtf)", u.name),
        ));
    };
    for a in args {
        a.data_type(input)?;
        if a.contains_agg() {
            return Err(plan_err(
                a,
                "a table function's argument cannot be an aggregate",
            ));
        }
    }
    if names.len() != tf.len() {
        return Err(plan_err(
            call,
            format!(
                "{} names ({}) for the {} columns of `{}`",
                names.len(),
                names.join(", "),
                tf.len(),
                u.name
            ),
        ));
    }
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (f, n) in tf.iter().zip(names) {
        if fields.iter().any(|x| x.name() == n) {
            return Err(plan_err(
                call,
                format!("the input already has a column `{n}`; alias the table function's columns: .alias(...) / AS T(a, b)"),
            ));
        }
        fields.push(Field::new(n, f.data_type().clone(), true));
    }
    Ok((fields, tf.clone()))
}

/// The column name `flat_aggregate` gives its table aggregate call (see [`Plan::Flatten`]).
pub const FLAT_AGGREGATE: &str = "$tagg";

/// The output fields of a [`Plan::Flatten`] over `input`: its columns but the last, then the
/// fields of the rows in its last column under `names`.
pub fn flatten_fields(input: &Schema, names: &[String]) -> Result<Vec<Field>> {
    let n = input.fields().len();
    let last = input
        .fields()
        .last()
        .ok_or_else(|| plan_err("flat_aggregate", "no columns"))?;
    let item = match last.data_type() {
        DataType::List(item) => item,
        DataType::Int64 if names.is_empty() => {
            return Ok(input.fields()[..n - 1]
                .iter()
                .map(|f| f.as_ref().clone())
                .collect())
        }
        t => {
            return Err(plan_err(
                last.name(),
                format!("flattens a list of rows, not {t}"),
            ))
        }
    };
    let DataType::Struct(rows) = item.data_type() else {
        return Err(plan_err(last.name(), "the list's items are not rows"));
    };
    if names.len() != rows.len() {
        return Err(plan_err(
            names.join(", "),
            format!("{} names for rows of {} fields", names.len(), rows.len()),
        ));
    }
    let mut fields: Vec<Field> = input.fields()[..n - 1]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (f, name) in rows.iter().zip(names) {
        if fields.iter().any(|x| x.name() == name) {
            return Err(plan_err(
                name,
                format!("the result already has a column `{name}` (a grouping key); alias the function's columns: .alias(...)"),
            ));
        }
        fields.push(Field::new(name, f.data_type().clone(), true));
    }
    Ok(fields)
}

/// `COUNT(*)` as an expression.
pub fn count_star() -> Expr {
    Expr::Agg {
        func: AggFunc::Count,
        arg: None,
        distinct: false,
    }
}
