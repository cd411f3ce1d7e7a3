//! The physical planner: a logical [`Plan`] becomes a parallel [`JobGraph`] of operators,
//! with Calc fusion of filter and projection, UDF calls moved into their own nodes, and the
//! partitioning between nodes (forward, hash by key, rebalance, single).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::connectors::ValuesSource;
use crate::error::{EngineError, Result};
use crate::expr::{col, Expr};
use crate::operators::{Calc, Correlate};
use crate::operators::{GroupAggregate, WindowAggregate};
use crate::operators::{HashJoin, Limit, Sort, Union, WindowAssign};
use crate::runtime::{JobGraph, Node, NodeKind, Partitioning, SinkFactory};
use crate::udf::UdfCall;

use crate::plan::{plan_err, Plan};

/// Options for turning a plan into a job.
#[derive(Clone)]
pub struct PhysicalOptions {
    pub job_name: String,
    pub parallelism: usize,
    pub streaming: bool,
    pub config: Arc<BTreeMap<String, String>>,
}

/// Builds the job graph for `plan` writing into `sink`.
pub fn to_job_graph(
    plan: &Plan,
    sink: Arc<dyn SinkFactory>,
    opts: &PhysicalOptions,
) -> Result<JobGraph> {
    if opts.streaming && plan.is_updating() && !sink.accepts_updates() {
        return Err(EngineError::Plan {
            expr: format!("INSERT INTO {}", sink.name()),
            detail: format!(
                "table sink '{}' doesn't support consuming update changes which are produced by node {}; \
                 use a window aggregate, batch mode, or a sink that takes updates (print, blackhole, collect)",
                sink.name(),
                plan.describe_updating_node()
            ),
        });
    }
    let mut b = Builder {
        nodes: Vec::new(),
        opts: opts.clone(),
        counter: 0,
    };
    let top = b.build(plan)?;
    let schema = b.nodes[top].schema.clone();
    let p = sink
        .parallelism()
        .unwrap_or(b.nodes[top].parallelism)
        .min(sink.max_parallelism())
        .max(1);
    let part = if p == b.nodes[top].parallelism {
        Partitioning::Forward
    } else {
        Partitioning::Rebalance
    };
    b.nodes.push(Node {
        name: format!("Sink: {}", sink.name()),
        kind: NodeKind::Sink(sink),
        parallelism: p,
        inputs: vec![(top, part)],
        schema,
    });
    Ok(JobGraph {
        job_name: opts.job_name.clone(),
        nodes: b.nodes,
        streaming: opts.streaming,
        config: opts.config.clone(),
    })
}

struct Builder {
    nodes: Vec<Node>,
    opts: PhysicalOptions,
    counter: usize,
}

fn factory<O: crate::operators::Operator + 'static>(
    make: impl Fn() -> Result<O> + Send + Sync + 'static,
) -> crate::runtime::OperatorFactory {
    Arc::new(move |_| Ok(Box::new(make()?) as Box<dyn crate::operators::Operator>))
}

/// An operator planned once (its errors are the plan's, its output schema the node's) and
/// the factory that makes one per subtask the same way.
fn planned<O: crate::operators::Operator + 'static>(
    make: impl Fn() -> Result<O> + Send + Sync + 'static,
) -> Result<(SchemaRef, crate::runtime::OperatorFactory)> {
    let schema = crate::operators::Operator::output_schema(&make()?);
    Ok((schema, factory(make)))
}

impl Builder {
    fn push(
        &mut self,
        name: String,
        kind: NodeKind,
        parallelism: usize,
        inputs: Vec<(usize, Partitioning)>,
        schema: SchemaRef,
    ) -> usize {
        self.nodes.push(Node {
            name,
            kind,
            parallelism: parallelism.max(1),
            inputs,
            schema,
        });
        self.nodes.len() - 1
    }

    fn name(&mut self, base: &str) -> String {
        self.counter += 1;
        format!("{base}_{}", self.counter)
    }

    fn build(&mut self, plan: &Plan) -> Result<usize> {
        let default_p = self.opts.parallelism.max(1);
        let batch_mode = !self.opts.streaming;
        Ok(match plan {
            Plan::Scan { def } => {
                let f = def.source()?;
                let p = def
                    .parallelism_option("scan.parallelism")?
                    .unwrap_or(default_p)
                    .min(f.max_parallelism());
                let watermark = def.watermark.as_ref().map(|(_, e)| e.clone());
                let schema = f.schema();
                let name = format!("Source: {}", def.name);
                self.push(
                    name,
                    NodeKind::Source {
                        factory: f,
                        watermark,
                    },
                    p,
                    vec![],
                    schema,
                )
            }
            Plan::Values {
                name,
                schema,
                batches,
            } => {
                let f = Arc::new(ValuesSource {
                    name: name.clone(),
                    batches: batches.clone(),
                    schema: schema.clone(),
                });
                self.push(
                    format!("Source: {name}"),
                    NodeKind::Source {
                        factory: f,
                        watermark: None,
                    },
                    1,
                    vec![],
                    schema.clone(),
                )
            }
            Plan::Calc {
                input,
                filter,
                projections,
            } => {
                let i = self.build(input)?;
                self.calc(i, filter.clone(), projections.clone())?
            }
            Plan::Aggregate { input, keys, aggs } => {
                let i = self.build(input)?;
                let in_schema = self.nodes[i].schema.clone();
                let updating = input.is_updating() && !batch_mode;
                let (p, part) = if keys.is_empty() {
                    (1, Partitioning::Single)
                } else {
                    (
                        default_p,
                        Partitioning::Hash(keys.iter().map(|(e, _)| e.clone()).collect()),
                    )
                };
                if !batch_mode {
                    if let Some(u) = aggs
                        .iter()
                        .filter_map(|a| a.udaf.as_ref())
                        .find(|u| u.udf.kind == crate::udf::FunctionKind::VectorizedAggregate)
                    {
                        return Err(plan_err(
                            &u.udf.name,
                            "a pandas aggregate function needs a group's rows complete: use it in batch mode or in a window (as in PyFlink), or use an AggregateFunction",
                        ));
                    }
                }
                let name = self.name(&aggregate_name("GroupAggregate", aggs));
                let (n2, s2, k2, a2) =
                    (name.clone(), in_schema.clone(), keys.clone(), aggs.clone());
                let (schema, f) = planned(move || {
                    GroupAggregate::new(&n2, &s2, k2.clone(), a2.clone(), updating, batch_mode)
                })?;
                let kind = aggregate_node(f, &in_schema, aggs)?;
                self.push(name, kind, p, vec![(i, part)], schema)
            }
            Plan::WindowAggregate {
                input,
                kind,
                time,
                keys,
                aggs,
            } => {
                if input.is_updating() && !batch_mode {
                    return Err(plan_err(kind.describe(), "a window aggregate needs an insert-only input, but its input produces updates"));
                }
                let proctime = input.proctime().as_deref() == Some(time.as_str());
                if !proctime && input.rowtime().as_deref() != Some(time.as_str()) && !batch_mode {
                    return Err(plan_err(
                        time,
                        format!(
                            "`{time}` is not a time attribute: declare `WATERMARK FOR {time} AS ...` on the source table, or use a PROCTIME() column"
                        ),
                    ));
                }
                let i = self.build(input)?;
                let in_schema = self.nodes[i].schema.clone();
                let (p, part) = if keys.is_empty() {
                    (1, Partitioning::Single)
                } else {
                    (
                        default_p,
                        Partitioning::Hash(keys.iter().map(|(e, _)| e.clone()).collect()),
                    )
                };
                let name = self.name(&aggregate_name("WindowAggregate", aggs));
                let (n2, s2, k2, a2, kind, t2) = (
                    name.clone(),
                    in_schema.clone(),
                    keys.clone(),
                    aggs.clone(),
                    *kind,
                    time.clone(),
                );
                let (schema, f) = planned(move || {
                    WindowAggregate::new(&n2, &s2, kind, col(&t2), proctime, k2.clone(), a2.clone())
                })?;
                let node = aggregate_node(f, &in_schema, aggs)?;
                self.push(name, node, p, vec![(i, part)], schema)
            }
            Plan::WindowAssign { input, kind, time } => {
                let i = self.build(input)?;
                let in_schema = self.nodes[i].schema.clone();
                let name = self.name("WindowTableFunction");
                let p = self.nodes[i].parallelism;
                let (n2, kind, t2) = (name.clone(), *kind, time.clone());
                let (schema, f) =
                    planned(move || WindowAssign::new(&n2, &in_schema, kind, col(&t2)))?;
                self.push(
                    name,
                    NodeKind::Operator(f),
                    p,
                    vec![(i, Partitioning::Forward)],
                    schema,
                )
            }
            Plan::Join {
                left,
                right,
                kind,
                on,
                filter,
                ..
            } => {
                let schema = plan.schema()?;
                let l = self.build(left)?;
                let r = self.build(right)?;
                let (ls, rs) = (self.nodes[l].schema.clone(), self.nodes[r].schema.clone());
                let name = self.name("Join");
                HashJoin::new(
                    &name,
                    *kind,
                    &ls,
                    &rs,
                    on.clone(),
                    filter.clone(),
                    schema.clone(),
                )?;
                let lk: Vec<Expr> = on.iter().map(|(a, _)| a.clone()).collect();
                let rk: Vec<Expr> = on.iter().map(|(_, b)| b.clone()).collect();
                // Keys of both sides hash alike only if they have one type: cast like the join.
                let mut lk2 = Vec::new();
                let mut rk2 = Vec::new();
                for (a, b) in lk.iter().zip(&rk) {
                    let (at, bt) = (a.data_type(&ls)?, b.data_type(&rs)?);
                    if at == bt {
                        lk2.push(a.clone());
                        rk2.push(b.clone());
                    } else {
                        let t = if at.is_floating() || bt.is_floating() {
                            DataType::Float64
                        } else {
                            DataType::Int64
                        };
                        lk2.push(a.clone().cast(t.clone()));
                        rk2.push(b.clone().cast(t));
                    }
                }
                let (n2, k, o, fl, s2) = (
                    name.clone(),
                    *kind,
                    on.clone(),
                    filter.clone(),
                    schema.clone(),
                );
                let batch_mode = !self.opts.streaming;
                let f = factory(move || {
                    let j = HashJoin::new(&n2, k, &ls, &rs, o.clone(), fl.clone(), s2.clone())?;
                    Ok(if batch_mode { j.in_batch_mode() } else { j })
                });
                self.push(
                    name,
                    NodeKind::Operator(f),
                    default_p,
                    vec![(l, Partitioning::Hash(lk2)), (r, Partitioning::Hash(rk2))],
                    schema,
                )
            }
            Plan::Union { inputs } => {
                let schema = plan.schema()?;
                let mut ins = Vec::new();
                for p in inputs {
                    let i = self.build(p)?;
                    ins.push((i, Partitioning::Rebalance));
                }
                let p = ins
                    .iter()
                    .map(|(i, _)| self.nodes[*i].parallelism)
                    .max()
                    .unwrap_or(1);
                for (i, part) in ins.iter_mut() {
                    if self.nodes[*i].parallelism == p {
                        *part = Partitioning::Forward;
                    }
                }
                let name = self.name("Union");
                let (n2, s2) = (name.clone(), schema.clone());
                let f = factory(move || Ok(Union::new(&n2, s2.clone())));
                self.push(name, NodeKind::Operator(f), p, ins, schema)
            }
            Plan::Sort {
                input,
                keys,
                limit,
                offset,
            } => {
                if self.opts.streaming && !input.is_bounded() {
                    return Err(plan_err(
                        "ORDER BY",
                        "sorting needs bounded input: run in batch mode or read a bounded table",
                    ));
                }
                if self.opts.streaming && input.is_updating() {
                    return Err(plan_err("ORDER BY", "sorting an updating result is not supported in streaming mode; use batch mode"));
                }
                let i = self.build(input)?;
                let schema = self.nodes[i].schema.clone();
                let name = self.name("Sort");
                Sort::new(&name, schema.clone(), keys.clone(), *limit, *offset)?;
                let (n2, s2, k2, l2, o2) =
                    (name.clone(), schema.clone(), keys.clone(), *limit, *offset);
                let f = factory(move || Sort::new(&n2, s2.clone(), k2.clone(), l2, o2));
                self.push(
                    name,
                    NodeKind::Operator(f),
                    1,
                    vec![(i, Partitioning::Single)],
                    schema,
                )
            }
            Plan::Correlate {
                input,
                call,
                names,
                outer,
            } => {
                let i = self.build(input)?;
                let in_schema = self.nodes[i].schema.clone();
                // The table function runs in a UDF node appending its rows per input row.
                let mut projections: Vec<(Expr, String)> = in_schema
                    .fields()
                    .iter()
                    .map(|f| (col(f.name()), f.name().clone()))
                    .collect();
                projections.push((call.unaliased().clone(), "$tf".into()));
                let i = self.calc(i, None, projections)?;
                let tf_schema = self.nodes[i].schema.clone();
                let name = self.name("Correlate");
                let p = self.nodes[i].parallelism;
                let (n2, names, outer) = (name.clone(), names.clone(), *outer);
                let (schema, f) = planned(move || Correlate::new(&n2, &tf_schema, &names, outer))?;
                self.push(
                    name,
                    NodeKind::Operator(f),
                    p,
                    vec![(i, Partitioning::Forward)],
                    schema,
                )
            }
            Plan::Rank {
                input,
                partition,
                order,
                func,
                limit,
                name,
            } => {
                let func = *func;
                let limit = match limit {
                    Some(l) => *l,
                    None if batch_mode => usize::MAX,
                    None => {
                        return Err(plan_err(
                            format!("{}()", func.name()),
                            format!("in streaming mode {}() OVER (...) needs a filter on it (WHERE rn <= N, or rn = 1) in the query around it: Top-N or deduplication", func.name()),
                        ))
                    }
                };
                let i = self.build(input)?;
                let in_schema = self.nodes[i].schema.clone();
                let node = self.name("Rank");
                let (n2, p2, o2, r2) =
                    (node.clone(), partition.clone(), order.clone(), name.clone());
                let (schema, f) = planned(move || {
                    crate::operators::Rank::new(
                        &n2,
                        &in_schema,
                        p2.clone(),
                        o2.clone(),
                        func,
                        limit,
                        &r2,
                        batch_mode,
                    )
                })?;
                let (p, edge) = keyed(partition, default_p);
                self.push(node, NodeKind::Operator(f), p, vec![(i, edge)], schema)
            }
            Plan::Over {
                input,
                partition,
                order,
                frame,
                aggs,
            } => {
                let time = if batch_mode {
                    crate::operators::OverTime::Batch
                } else if input.rowtime().as_deref() == Some(order.as_str()) {
                    crate::operators::OverTime::Event
                } else if input.proctime().as_deref() == Some(order.as_str()) {
                    crate::operators::OverTime::Processing
                } else {
                    return Err(plan_err(
                        order,
                        "in streaming mode an OVER window is ordered by a time attribute (a column with a WATERMARK, or PROCTIME())",
                    ));
                };
                if input.is_updating() && !batch_mode {
                    return Err(plan_err(
                        "OVER",
                        "an OVER aggregate takes an append-only input, not an updating one",
                    ));
                }
                let i = self.build(input)?;
                let in_schema = self.nodes[i].schema.clone();
                let name = self.name("OverAggregate");
                let (n2, p2, o2, f2, a2) = (
                    name.clone(),
                    partition.clone(),
                    order.clone(),
                    frame.clone(),
                    aggs.clone(),
                );
                let (schema, f) = planned(move || {
                    crate::operators::OverAggregate::new(
                        &n2,
                        &in_schema,
                        p2.clone(),
                        &o2,
                        f2.clone(),
                        &a2,
                        time,
                    )
                })?;
                let (p, edge) = keyed(partition, default_p);
                self.push(name, NodeKind::Operator(f), p, vec![(i, edge)], schema)
            }
            Plan::Flatten { input, names } => {
                let i = self.build(input)?;
                let in_schema = self.nodes[i].schema.clone();
                let name = self.name("Flatten");
                let p = self.nodes[i].parallelism;
                let (n2, names) = (name.clone(), names.clone());
                let (schema, f) = planned(move || Correlate::new(&n2, &in_schema, &names, false))?;
                self.push(
                    name,
                    NodeKind::Operator(f),
                    p,
                    vec![(i, Partitioning::Forward)],
                    schema,
                )
            }
            Plan::Limit {
                input,
                limit,
                offset,
            } => {
                let i = self.build(input)?;
                let schema = self.nodes[i].schema.clone();
                let name = self.name("Limit");
                let (n2, s2, l2, o2) = (name.clone(), schema.clone(), *limit, *offset);
                let f = factory(move || Ok(Limit::new(&n2, s2.clone(), l2, o2)));
                self.push(
                    name,
                    NodeKind::Operator(f),
                    1,
                    vec![(i, Partitioning::Single)],
                    schema,
                )
            }
        })
    }

    /// A Calc over node `i`; calls of user-defined functions are moved into UDF nodes first.
    fn calc(
        &mut self,
        mut i: usize,
        mut filter: Option<Expr>,
        mut projections: Vec<(Expr, String)>,
    ) -> Result<usize> {
        let mut round = 0;
        loop {
            let has_udf = projections.iter().any(|(e, _)| e.contains_udf())
                || filter.as_ref().is_some_and(Expr::contains_udf);
            if !has_udf {
                break;
            }
            round += 1;
            // Innermost calls: a UDF whose arguments call no UDF.
            let mut calls: Vec<Expr> = Vec::new();
            let mut find = |e: &Expr| {
                e.visit(&mut |x| {
                    if let Expr::Udf(_, args) = x {
                        if !args.iter().any(Expr::contains_udf) && !calls.contains(x) {
                            calls.push(x.clone());
                        }
                    }
                })
            };
            for (e, _) in &projections {
                find(e);
            }
            if let Some(f) = &filter {
                find(f);
            }
            let in_schema = self.nodes[i].schema.clone();
            // Pre-calc: every input column, then every distinct argument expression.
            let mut pre: Vec<(Expr, String)> = in_schema
                .fields()
                .iter()
                .map(|f| (col(f.name()), f.name().clone()))
                .collect();
            let mut udf_calls = Vec::new();
            let mut arg_columns = Vec::new();
            for c in &calls {
                let Expr::Udf(u, args) = c else { continue };
                let mut idx = Vec::new();
                for a in args {
                    let pos = match pre.iter().position(|(e, _)| e == a) {
                        Some(p) => p,
                        None => {
                            pre.push((a.clone(), format!("$arg{round}_{}", pre.len())));
                            pre.len() - 1
                        }
                    };
                    let col_pos = match arg_columns.iter().position(|p| *p == pos) {
                        Some(p) => p,
                        None => {
                            arg_columns.push(pos);
                            arg_columns.len() - 1
                        }
                    };
                    idx.push(col_pos);
                }
                udf_calls.push(UdfCall {
                    udf: u.clone(),
                    args: idx,
                });
            }
            let pre_node = self.calc_node(i, None, pre)?;
            let pre_schema = self.nodes[pre_node].schema.clone();
            let mut fields: Vec<Field> = pre_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            let mut results = Vec::new();
            for (k, c) in udf_calls.iter().enumerate() {
                let n = format!("$udf{round}_{k}");
                fields.push(Field::new(&n, c.udf.result_type.clone(), true));
                results.push((calls[k].clone(), n));
            }
            let schema = Arc::new(Schema::new(fields));
            let name = format!(
                "PythonCalc[{}]",
                udf_calls
                    .iter()
                    .map(|c| c.udf.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let backend = udf_calls[0].udf.backend.clone();
            let p = self.nodes[pre_node].parallelism;
            i = self.push(
                name,
                NodeKind::Udf {
                    backend,
                    calls: udf_calls,
                    arg_columns,
                },
                p,
                vec![(pre_node, Partitioning::Forward)],
                schema,
            );
            let replace = |e: Expr| {
                e.transform(&mut |x| results.iter().find(|(c, _)| c == x).map(|(_, n)| col(n)))
            };
            projections = projections
                .into_iter()
                .map(|(e, n)| (replace(e), n))
                .collect();
            filter = filter.map(replace);
        }
        self.calc_node(i, filter, projections)
    }

    fn calc_node(
        &mut self,
        i: usize,
        filter: Option<Expr>,
        projections: Vec<(Expr, String)>,
    ) -> Result<usize> {
        let in_schema = self.nodes[i].schema.clone();
        let name = self.name("Calc");
        let p = self.nodes[i].parallelism;
        let n2 = name.clone();
        let (schema, f) =
            planned(move || Calc::new(&n2, &in_schema, filter.clone(), projections.clone()))?;
        Ok(self.push(
            name,
            NodeKind::Operator(f),
            p,
            vec![(i, Partitioning::Forward)],
            schema,
        ))
    }
}

/// An aggregate operator's node name: `Python` in front when user-defined aggregates run in
/// it, and their names after (`PythonGroupAggregate[weighted_avg]_3`), as for `PythonCalc`.
/// Parallelism and edge of an operator keyed by `partition`: hashed on it, or one subtask
/// taking every row when there is no key.
fn keyed(partition: &[Expr], parallelism: usize) -> (usize, Partitioning) {
    if partition.is_empty() {
        (1, Partitioning::Single)
    } else {
        (parallelism, Partitioning::Hash(partition.to_vec()))
    }
}

fn aggregate_name(base: &str, aggs: &[crate::operators::AggSpec]) -> String {
    let names: Vec<&str> = aggs
        .iter()
        .filter_map(|a| a.udaf.as_ref().map(|u| u.udf.name.as_str()))
        .collect();
    if names.is_empty() {
        base.to_string()
    } else {
        format!("Python{base}[{}]", names.join(", "))
    }
}

/// The node of an aggregate operator: a plain operator, or one whose user-defined aggregates
/// are evaluated by a function runner (see `operators::udaf`).
fn aggregate_node(
    f: crate::runtime::OperatorFactory,
    input: &Schema,
    aggs: &[crate::operators::AggSpec],
) -> Result<NodeKind> {
    let Some(first) = aggs.iter().find_map(|a| a.udaf.as_ref()) else {
        return Ok(NodeKind::Operator(f));
    };
    let (request_schema, calls) = crate::operators::udaf::request_layout(input, aggs)?;
    Ok(NodeKind::FunctionOperator {
        factory: f,
        backend: first.udf.backend.clone(),
        calls,
        request_schema,
    })
}
