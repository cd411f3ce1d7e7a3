//! The Table API: a [`TableEnvironment`] holding tables, views, functions and configuration,
//! and [`Table`]s built by chaining relational operations, as in PyFlink:
//!
//! ```
//! use weir_engine::table::{TableEnvironment, Tumble};
//! use weir_engine::expr::{col, lit};
//!
//! let env = TableEnvironment::in_streaming_mode();
//! env.execute_sql("CREATE TABLE clicks (user_id BIGINT, ts AS TO_TIMESTAMP_LTZ(user_id * 1000, 3), \
//!     WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
//!     WITH ('connector' = 'datagen', 'fields.user_id.kind' = 'sequence', \
//!     'fields.user_id.start' = '1', 'fields.user_id.end' = '100')").unwrap();
//! let per_window = env
//!     .from_path("clicks").unwrap()
//!     .filter(col("user_id").gt(10)).unwrap()
//!     .window(Tumble::over(10_000).on("ts").alias("w"))
//!     .group_by(vec![col("w")])
//!     .select(vec![col("w").window_start(), col("user_id").count().alias("n")]).unwrap();
//! assert_eq!(per_window.schema().unwrap().fields().len(), 2);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef, SortOptions};
use weir_metrics::Registry;

use crate::connectors::{CollectSink, TableDef};
use crate::error::{EngineError, Result};
use crate::expr::{col, lit, Expr, WindowProperty};
use crate::operators::JoinKind;
use crate::operators::WindowKind;
use crate::physical::{to_job_graph, PhysicalOptions};
use crate::plan::{name_projections, plan_aggregate, AggregateNaming, GroupWindow, Plan};
use crate::runtime::job::{Collect, JobSummary};
use crate::runtime::{JobGraph, SinkFactory};
use crate::session::{EnvId, ProcessSession};
use crate::stream::StreamBatch;
use crate::udf::UdfRef;

/// Configuration key of the default parallelism (Flink's).
pub const PARALLELISM: &str = "parallelism.default";
/// Configuration key of the runtime mode, `streaming` or `batch` (Flink's).
pub const RUNTIME_MODE: &str = "execution.runtime-mode";
/// Configuration key of the job name (Flink's).
pub const JOB_NAME: &str = "pipeline.name";

#[derive(Default)]
struct EnvState {
    tables: BTreeMap<String, Arc<TableDef>>,
    views: BTreeMap<String, Plan>,
    functions: BTreeMap<String, Arc<UdfRef>>,
    config: BTreeMap<String, String>,
    values_counter: usize,
}

/// Where tables, views and functions are registered, and jobs are planned. Its metrics,
/// reporters and job names belong to its [`ProcessSession`], which several environments can share.
#[derive(Clone)]
pub struct TableEnvironment {
    state: Arc<Mutex<EnvState>>,
    streaming: bool,
    session: ProcessSession,
    id: EnvId,
}

const GATEWAY_URL: &str = "metrics.reporter.promgateway.hostUrl";

impl TableEnvironment {
    /// Streaming mode: unbounded input, watermarks, updating results (in a session of its
    /// own).
    pub fn in_streaming_mode() -> Self {
        Self::with_session(true, ProcessSession::new())
    }

    /// Batch mode: bounded input, final results only (in a session of its own).
    pub fn in_batch_mode() -> Self {
        Self::with_session(false, ProcessSession::new())
    }

    /// With the registry the job's metrics go to (in a session of its own).
    pub fn new(streaming: bool, registry: Registry) -> Self {
        Self::with_session(streaming, ProcessSession::with_registry(registry))
    }

    /// An environment of `session`, sharing its registry, reporters and job names with the
    /// session's other environments.
    pub fn with_session(streaming: bool, session: ProcessSession) -> Self {
        let id = session.open_env();
        Self {
            state: Arc::new(Mutex::new(EnvState::default())),
            streaming,
            session,
            id,
        }
    }

    /// The session this environment belongs to.
    pub fn session(&self) -> &ProcessSession {
        &self.session
    }

    /// This environment's id in its session.
    pub fn env_id(&self) -> EnvId {
        self.id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, EnvState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this environment runs in streaming mode (`execution.runtime-mode` may switch
    /// it, as in Flink).
    pub fn is_streaming(&self) -> bool {
        match self
            .state()
            .config
            .get(RUNTIME_MODE)
            .map(|m| m.to_ascii_lowercase())
        {
            Some(m) if m == "batch" => false,
            Some(m) if m == "streaming" => true,
            _ => self.streaming,
        }
    }

    /// The registry of the jobs' metrics: the session's, created from this environment's
    /// `metrics.*` settings if no environment of the session needed it before.
    pub fn registry(&self) -> Registry {
        match self.session.registry(&self.config()) {
            Ok((r, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                r
            }
            // set_config checked the keys; only the process environment (OTEL_*) is left.
            Err(e) => {
                tracing::error!("{e}; using the default metric settings");
                self.session
                    .registry(&BTreeMap::new())
                    .map(|(r, _)| r)
                    .unwrap_or_default()
            }
        }
    }

    /// Sets a configuration key (`parallelism.default`, `pipeline.name`, `python.*`, ...).
    ///
    /// A `metrics.*` value is checked now, with the other metrics keys set so far.
    pub fn set_config(&self, key: &str, value: &str) -> Result<()> {
        if key == RUNTIME_MODE
            && !["streaming", "batch"].contains(&value.to_ascii_lowercase().as_str())
        {
            return Err(EngineError::Config(format!(
                "configuration `{key}` = {value:?}: the runtime mode is 'streaming' or 'batch'"
            )));
        }
        if key.starts_with("metrics.") {
            // Checked now, so a typo is an error where it was made, not at the first job.
            let mut pairs = self.config();
            pairs.insert(key.to_string(), value.to_string());
            // Keys may come in any order (`metrics.reporters` before the Pushgateway's URL, as
            // Flink users write them): a missing URL is reported when the metrics start.
            pairs
                .entry(GATEWAY_URL.to_string())
                .or_insert_with(|| "http://localhost:9091".to_string());
            weir_metrics::config::MetricsConfig::from_pairs_with_env(&pairs, |_| None)
                .map_err(|e| EngineError::Config(e.to_string()))?;
        }
        if key == PARALLELISM {
            let one = BTreeMap::from([(key.to_string(), value.to_string())]);
            crate::options::Options::config(&one).parallelism(key)?;
        }
        self.state()
            .config
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> BTreeMap<String, String> {
        self.state().config.clone()
    }

    /// Registers a table definition (`CREATE TABLE`); checks its options now.
    pub fn create_table(&self, def: TableDef, if_not_exists: bool) -> Result<()> {
        let name = def.name.clone();
        if self.state().tables.contains_key(&name) || self.state().views.contains_key(&name) {
            if if_not_exists {
                return Ok(());
            }
            return Err(EngineError::TableExists {
                expr: format!("CREATE TABLE {name}"),
                detail: format!("a table or view `{name}` already exists"),
            });
        }
        def.schema()?;
        if let Some((c, e)) = &def.watermark {
            let s = def.schema()?;
            match s.field_with_name(c) {
                Ok(f) if matches!(f.data_type(), arrow_schema::DataType::Timestamp(..)) => {}
                Ok(f) => {
                    return Err(EngineError::Plan {
                        expr: format!("WATERMARK FOR {c}"),
                        detail: format!(
                            "the rowtime column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                            crate::types::type_name(f.data_type())
                        ),
                    })
                }
                Err(_) => {
                    return Err(EngineError::Plan {
                        expr: format!("WATERMARK FOR {c}"),
                        detail: format!("table `{name}` has no column `{c}`"),
                    })
                }
            }
            let t = e.data_type(&s)?;
            if !matches!(t, arrow_schema::DataType::Timestamp(..)) {
                return Err(EngineError::Plan {
                    expr: e.to_string(),
                    detail: format!(
                        "a watermark expression must give a TIMESTAMP, not {}",
                        crate::types::type_name(&t)
                    ),
                });
            }
        }
        // Fail on bad options now, not when the job starts.
        match def.options.get("connector").map(String::as_str) {
            Some("print") | Some("blackhole") => {
                def.sink()?;
            }
            Some("filesystem") => {
                // Read or written: a path that does not exist yet is fine for a table only
                // written to, so that is checked when the table is read (still before the job
                // starts); keys and format are checked now.
                crate::connectors::check_filesystem_options(&def)?;
            }
            _ => {
                def.source()?;
            }
        }
        self.state().tables.insert(name, Arc::new(def));
        Ok(())
    }

    /// A registered table or view.
    pub fn from_path(&self, name: &str) -> Result<Table> {
        let st = self.state();
        if let Some(v) = st.views.get(name) {
            return Ok(Table {
                env: self.clone(),
                plan: v.clone(),
            });
        }
        if let Some(d) = st.tables.get(name) {
            return Ok(Table {
                env: self.clone(),
                plan: Plan::Scan { def: d.clone() },
            });
        }
        let known: Vec<&String> = st.tables.keys().chain(st.views.keys()).collect();
        Err(EngineError::NoSuchTable {
            expr: name.to_string(),
            detail: if known.is_empty() {
                format!("no table or view `{name}`; none is registered")
            } else {
                format!(
                    "no table or view `{name}`; known: {}",
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        })
    }

    /// A table definition, if registered.
    pub fn table_def(&self, name: &str) -> Option<Arc<TableDef>> {
        self.state().tables.get(name).cloned()
    }

    /// In-memory rows (`from_elements`).
    pub fn from_batches(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Table {
        let mut st = self.state();
        st.values_counter += 1;
        let name = format!("values_{}", st.values_counter);
        Table {
            env: self.clone(),
            plan: Plan::Values {
                name,
                schema,
                batches,
            },
        }
    }

    /// Registers a view (`create_temporary_view`, `CREATE VIEW`).
    pub fn create_temporary_view(&self, name: &str, table: &Table) -> Result<()> {
        table.plan.schema()?;
        let mut st = self.state();
        if st.tables.contains_key(name) {
            return Err(EngineError::TableExists {
                expr: format!("CREATE VIEW {name}"),
                detail: format!("a table `{name}` already exists"),
            });
        }
        st.views.insert(name.to_string(), table.plan.clone());
        Ok(())
    }

    /// Removes a table or view; whether it existed.
    pub fn drop(&self, name: &str) -> bool {
        let mut st = self.state();
        st.tables.remove(name).is_some() | st.views.remove(name).is_some()
    }

    /// Registers a user-defined function under `name`.
    pub fn create_temporary_function(&self, name: &str, udf: Arc<UdfRef>) {
        self.state()
            .functions
            .insert(name.to_ascii_lowercase(), udf);
    }

    /// A registered function.
    pub fn function(&self, name: &str) -> Option<Arc<UdfRef>> {
        self.state()
            .functions
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Names of registered tables and views.
    pub fn list_tables(&self) -> Vec<String> {
        let st = self.state();
        st.tables.keys().chain(st.views.keys()).cloned().collect()
    }

    fn options(&self) -> Result<PhysicalOptions> {
        let config = self.config();
        let parallelism = crate::options::Options::config(&config)
            .parallelism(PARALLELISM)?
            .unwrap_or(1);
        Ok(PhysicalOptions {
            job_name: config
                .get(JOB_NAME)
                .cloned()
                .unwrap_or_else(|| "weir-job".into()),
            parallelism,
            streaming: self.is_streaming(),
            config: Arc::new(config),
        })
    }

    /// Plans `table` into the sink table `sink`.
    pub fn plan_insert(&self, table: &Table, sink: &str) -> Result<JobGraph> {
        let def = self
            .table_def(sink)
            .ok_or_else(|| EngineError::NoSuchTable {
                expr: format!("INSERT INTO {sink}"),
                detail: format!("no table `{sink}` to insert into"),
            })?;
        let target = def.schema()?;
        let source = table.plan.schema()?;
        if target.fields().len() != source.fields().len() {
            return Err(EngineError::Plan {
                expr: format!("INSERT INTO {sink}"),
                detail: format!(
                    "the query has {} columns ({}) but table `{sink}` has {} ({})",
                    source.fields().len(),
                    names(&source),
                    target.fields().len(),
                    names(&target)
                ),
            });
        }
        // Bring the query's columns to the sink's names and types.
        let mut proj = Vec::new();
        for (s, t) in source.fields().iter().zip(target.fields()) {
            let e = col(s.name());
            let e = if s.data_type() == t.data_type() {
                e
            } else if arrow_cast::can_cast_types(s.data_type(), t.data_type()) {
                e.cast(t.data_type().clone())
            } else {
                return Err(EngineError::Plan {
                    expr: format!("INSERT INTO {sink}"),
                    detail: format!(
                        "column `{}` is {} but `{}` of table `{sink}` is {}",
                        s.name(),
                        crate::types::type_name(s.data_type()),
                        t.name(),
                        crate::types::type_name(t.data_type())
                    ),
                });
            };
            proj.push((e, t.name().clone()));
        }
        let plan = Plan::Calc {
            input: Box::new(table.plan.clone()),
            filter: None,
            projections: proj,
        };
        let sink_factory = def.sink()?;
        let options = self.options()?;
        let mut graph = crate::stack::deep(|| to_job_graph(&plan, sink_factory, &options))?;
        self.default_job_name(&mut graph, &format!("insert-into_{sink}"));
        Ok(graph)
    }

    /// Plans `table` into any sink.
    pub fn plan_to(&self, table: &Table, sink: Arc<dyn SinkFactory>) -> Result<JobGraph> {
        let name = sink.name().to_string();
        let options = self.options()?;
        // Binding recurses per level of an expression: room for deep ones (crate::stack).
        let mut graph = crate::stack::deep(|| to_job_graph(&table.plan, sink, &options))?;
        self.default_job_name(&mut graph, &name);
        Ok(graph)
    }

    /// Without `pipeline.name`, a job is named for what it does, as in Flink
    /// (`insert-into_<table>`, `collect`); the session makes the name unique.
    fn default_job_name(&self, graph: &mut JobGraph, name: &str) {
        if !graph.config.contains_key(JOB_NAME) {
            graph.job_name = name.to_string();
        }
    }

    /// Runs `table` and returns every row it produced, with its kind (bounded input, or until
    /// the job is cancelled).
    pub async fn collect(&self, table: &Table) -> Result<Vec<StreamBatch>> {
        let c = Collect::default();
        let graph = self.plan_to(table, Arc::new(CollectSink(c.clone())))?;
        self.run(graph).await?;
        Ok(c.batches())
    }

    /// Runs `INSERT INTO sink SELECT ... table` to the end.
    pub async fn execute_insert(&self, table: &Table, sink: &str) -> Result<JobSummary> {
        let graph = self.plan_insert(table, sink)?;
        self.run(graph).await
    }

    /// Runs a planned job in this environment's session (named, with job metrics; see
    /// [`ProcessSession::begin_job`]), on the current runtime.
    pub async fn run(&self, mut graph: JobGraph) -> Result<JobSummary> {
        let (ticket, warnings) = self.session.begin_job(self.id, &mut graph)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        ticket
            .run(graph, Arc::new(crate::runtime::JobControl::default()))
            .await
    }
}

fn names(s: &arrow_schema::Schema) -> String {
    s.fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A relational expression: what a query or a chain of Table API calls has built so far.
#[derive(Clone)]
pub struct Table {
    env: TableEnvironment,
    plan: Plan,
}

impl Table {
    /// Wraps a plan.
    pub fn from_plan(env: &TableEnvironment, plan: Plan) -> Table {
        Table {
            env: env.clone(),
            plan,
        }
    }

    /// The logical plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The environment it belongs to.
    pub fn env(&self) -> &TableEnvironment {
        &self.env
    }

    /// Its columns.
    pub fn schema(&self) -> Result<SchemaRef> {
        self.plan.schema()
    }

    fn with(&self, plan: Plan) -> Table {
        Table {
            env: self.env.clone(),
            plan,
        }
    }

    /// `select(col("a"), (col("b") + 1).alias("c"))`.
    pub fn select(&self, exprs: Vec<Expr>) -> Result<Table> {
        if exprs.iter().any(Expr::contains_agg) {
            // A global aggregate (no GROUP BY).
            return self.group_by(vec![]).select(exprs);
        }
        let schema = self.plan.schema()?;
        let exprs = expand_star(exprs, &schema);
        let projections = name_projections(exprs, &schema, "_c")?;
        Ok(self.with(Plan::Calc {
            input: Box::new(self.plan.clone()),
            filter: None,
            projections,
        }))
    }

    /// Rows where `cond` is true.
    pub fn filter(&self, cond: Expr) -> Result<Table> {
        Ok(self.with(crate::plan::filter(self.plan.clone(), cond)?))
    }

    /// Same as [`Table::filter`] (`where` is a Rust keyword).
    pub fn where_(&self, cond: Expr) -> Result<Table> {
        self.filter(cond)
    }

    fn all_columns(&self) -> Result<Vec<Expr>> {
        Ok(self
            .plan
            .schema()?
            .fields()
            .iter()
            .map(|f| col(f.name()))
            .collect())
    }

    /// Adds computed columns; a name that exists is an error.
    pub fn add_columns(&self, exprs: Vec<Expr>) -> Result<Table> {
        let mut all = self.all_columns()?;
        all.extend(exprs);
        self.select(all)
    }

    /// Adds computed columns, replacing columns of the same name.
    pub fn add_or_replace_columns(&self, exprs: Vec<Expr>) -> Result<Table> {
        let schema = self.plan.schema()?;
        let mut all: Vec<Expr> = schema.fields().iter().map(|f| col(f.name())).collect();
        for e in exprs {
            let name = e.output_name();
            match name.as_ref().and_then(|n| schema.index_of(n).ok()) {
                Some(i) => all[i] = e.alias(name.as_deref().unwrap_or_default()),
                None => all.push(e),
            }
        }
        self.select(all)
    }

    /// Removes columns.
    pub fn drop_columns(&self, names: &[&str]) -> Result<Table> {
        let schema = self.plan.schema()?;
        for n in names {
            if schema.index_of(n).is_err() {
                return Err(EngineError::Plan {
                    expr: n.to_string(),
                    detail: format!(
                        "no column `{n}` to drop; the table has {}",
                        names_of(&schema)
                    ),
                });
            }
        }
        let keep = schema
            .fields()
            .iter()
            .filter(|f| !names.contains(&f.name().as_str()))
            .map(|f| col(f.name()))
            .collect();
        self.select(keep)
    }

    /// Renames columns: `rename_columns(&[("a", "x")])`.
    pub fn rename_columns(&self, renames: &[(&str, &str)]) -> Result<Table> {
        let schema = self.plan.schema()?;
        for (from, _) in renames {
            if schema.index_of(from).is_err() {
                return Err(EngineError::Plan {
                    expr: from.to_string(),
                    detail: format!(
                        "no column `{from}` to rename; the table has {}",
                        names_of(&schema)
                    ),
                });
            }
        }
        let all = schema
            .fields()
            .iter()
            .map(|f| match renames.iter().find(|(a, _)| a == f.name()) {
                Some((_, to)) => col(f.name()).alias(to),
                None => col(f.name()),
            })
            .collect();
        self.select(all)
    }

    /// Groups rows; finish with `.select(...)` of keys and aggregates.
    pub fn group_by(&self, keys: Vec<Expr>) -> GroupedTable {
        GroupedTable {
            table: self.clone(),
            keys,
            window: None,
        }
    }

    /// A group window; finish with `.group_by(...).select(...)`.
    pub fn window(&self, w: impl Into<GroupWindow>) -> WindowedTable {
        WindowedTable {
            table: self.clone(),
            window: w.into(),
        }
    }

    /// Inner join on a condition of equalities (plus, optionally, other predicates).
    pub fn join(&self, right: &Table, cond: Expr) -> Result<Table> {
        self.join_with(right, cond, JoinKind::Inner)
    }

    /// Left outer join on equalities.
    pub fn left_outer_join(&self, right: &Table, cond: Expr) -> Result<Table> {
        self.join_with(right, cond, JoinKind::LeftOuter)
    }

    /// Right outer join on equalities.
    pub fn right_outer_join(&self, right: &Table, cond: Expr) -> Result<Table> {
        self.join_with(right, cond, JoinKind::RightOuter)
    }

    /// Full outer join on equalities.
    pub fn full_outer_join(&self, right: &Table, cond: Expr) -> Result<Table> {
        self.join_with(right, cond, JoinKind::FullOuter)
    }

    fn join_with(&self, right: &Table, cond: Expr, kind: JoinKind) -> Result<Table> {
        let (ls, rs) = (self.plan.schema()?, right.plan.schema()?);
        for f in rs.fields() {
            if ls.index_of(f.name()).is_ok() {
                return Err(EngineError::Plan {
                    expr: cond.to_string(),
                    detail: format!(
                        "both sides have a column `{}`; rename one first (rename_columns / alias)",
                        f.name()
                    ),
                });
            }
        }
        let plan = join_plan(
            self.plan.clone(),
            right.plan.clone(),
            kind,
            cond,
            rs.fields().iter().map(|f| f.name().clone()).collect(),
        )?;
        Ok(self.with(plan))
    }

    /// Each row joined with the rows the table function `call` yields for it
    /// (`join_lateral`); with `outer`, rows it yields nothing for are kept with NULLs
    /// (`left_outer_join_lateral`). Its columns are named `names`, or as the function names
    /// them (`f0`, `f1`, ...).
    pub fn join_lateral(
        &self,
        call: Expr,
        names: Option<Vec<String>>,
        outer: bool,
    ) -> Result<Table> {
        let call = call.unaliased().clone();
        let names = match names {
            Some(n) => n,
            None => match &call {
                Expr::Udf(u, _) => u
                    .table_fields()
                    .map(|f| f.iter().map(|x| x.name().clone()).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
        };
        let plan = Plan::Correlate {
            input: Box::new(self.plan.clone()),
            call,
            names,
            outer,
        };
        plan.schema()?;
        Ok(self.with(plan))
    }

    /// Only the rows of the table function `call` for each row (`flat_map`), named `names`
    /// or as the function names its columns.
    pub fn flat_map(&self, call: Expr, names: Option<Vec<String>>) -> Result<Table> {
        let width = match call.unaliased() {
            Expr::Udf(u, _) => u.table_fields().map(|f| f.len()),
            _ => None,
        }
        .ok_or_else(|| EngineError::Plan {
            expr: call.to_string(),
            detail: "flat_map takes a table function (udtf)".into(),
        })?;
        let internal: Vec<String> = (0..width).map(|i| format!("$flat{i}")).collect();
        let joined = self.join_lateral(call.clone(), Some(internal.clone()), false)?;
        let names = match names {
            Some(n) => n,
            None => match call.unaliased() {
                Expr::Udf(u, _) => u
                    .table_fields()
                    .map(|f| f.iter().map(|x| x.name().clone()).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
        };
        joined.select_renamed(&internal, names)
    }

    /// The result of the scalar function `call` per row (`map`): a ROW result becomes one
    /// column per field (named `names`, else as its fields), anything else one column.
    pub fn map(&self, call: Expr, names: Option<Vec<String>>) -> Result<Table> {
        let mapped = self.select(vec![call.unaliased().clone().alias("$map")])?;
        mapped.flatten_column("$map", vec![], names, "_c0")
    }

    /// Keeps `keep`, then the column `column` flattened: one column per field of a ROW
    /// (named `names`, else as the fields are), or the column itself named `names[0]` or
    /// `single`.
    pub(crate) fn flatten_column(
        &self,
        column: &str,
        keep: Vec<Expr>,
        names: Option<Vec<String>>,
        single: &str,
    ) -> Result<Table> {
        let schema = self.plan.schema()?;
        let t = schema
            .field_with_name(column)
            .map_err(|_| EngineError::Plan {
                expr: column.to_string(),
                detail: "no such column".into(),
            })?;
        let mut exprs = keep;
        match t.data_type() {
            DataType::Struct(fields) => {
                let names =
                    names.unwrap_or_else(|| fields.iter().map(|f| f.name().clone()).collect());
                if names.len() != fields.len() {
                    return Err(EngineError::Plan {
                        expr: names.join(", "),
                        detail: format!(
                            "{} names for a row of {} fields",
                            names.len(),
                            fields.len()
                        ),
                    });
                }
                for (f, n) in fields.iter().zip(names) {
                    exprs.push(
                        Expr::Call(
                            crate::expr::Func::Get,
                            vec![col(column), lit(f.name().as_str())],
                        )
                        .alias(&n),
                    );
                }
            }
            _ => {
                let name = match names.as_deref() {
                    None => single.to_string(),
                    Some([n]) => n.clone(),
                    Some(n) => {
                        return Err(EngineError::Plan {
                            expr: n.join(", "),
                            detail: format!("{} names for a result that is not a row", n.len()),
                        })
                    }
                };
                exprs.push(col(column).alias(&name));
            }
        }
        self.select(exprs)
    }

    fn select_renamed(&self, internal: &[String], names: Vec<String>) -> Result<Table> {
        if names.len() != internal.len() {
            return Err(EngineError::Plan {
                expr: names.join(", "),
                detail: format!("{} names for {} columns", names.len(), internal.len()),
            });
        }
        self.select(
            internal
                .iter()
                .zip(names)
                .map(|(i, n)| col(i).alias(&n))
                .collect(),
        )
    }

    /// `UNION ALL`.
    pub fn union_all(&self, other: &Table) -> Result<Table> {
        let mut inputs = match &self.plan {
            Plan::Union { inputs } => inputs.clone(),
            p => vec![p.clone()],
        };
        inputs.push(other.plan.clone());
        let plan = Plan::Union { inputs };
        plan.schema()?;
        Ok(self.with(plan))
    }

    /// A select over an OVER window (`over_window(Over.partition_by(..).order_by(t)
    /// .preceding(..).alias('w')).select(..)`): every aggregate in `exprs` is computed over the
    /// window for each row; other expressions read the row.
    pub fn over_select(
        &self,
        partition: Vec<Expr>,
        order: &str,
        frame: crate::operators::OverFrame,
        exprs: Vec<Expr>,
    ) -> Result<Table> {
        let schema = self.plan.schema()?;
        let exprs = expand_star(exprs, &schema);
        let mut aggs: Vec<(Expr, crate::operators::OverAgg)> = Vec::new();
        let mut err = None;
        for e in &exprs {
            e.visit(&mut |x| {
                if let Expr::Agg { func, arg, distinct } = x {
                    if aggs.iter().any(|(a, _)| a == x) {
                        return;
                    }
                    if *distinct || *func == crate::expr::AggFunc::Udf {
                        err.get_or_insert_with(|| EngineError::Plan {
                            expr: x.to_string(),
                            detail: "an OVER window takes COUNT, SUM, MIN, MAX and AVG (not DISTINCT)".into(),
                        });
                        return;
                    }
                    let name = format!("$over{}", aggs.len());
                    aggs.push((
                        x.clone(),
                        crate::operators::OverAgg {
                            func: *func,
                            arg: arg.as_ref().map(|a| (**a).clone()),
                            name,
                            lag: None,
                            lead: false,
                        },
                    ));
                }
                if let Expr::Udf(u, _) = x {
                    if u.kind.is_aggregate() {
                        err.get_or_insert_with(|| EngineError::Plan {
                            expr: x.to_string(),
                            detail: "user-defined aggregate functions over OVER windows are not supported yet".into(),
                        });
                    }
                }
            });
        }
        if let Some(e) = err {
            return Err(e);
        }
        if aggs.is_empty() {
            return Err(EngineError::Plan {
                expr: "over_window(..).select(..)".into(),
                detail:
                    "select at least one aggregate over the window (col('v').sum.over(col('w')))"
                        .into(),
            });
        }
        let plan = Plan::Over {
            input: Box::new(self.plan.clone()),
            partition,
            order: order.to_string(),
            frame,
            aggs: aggs.iter().map(|(_, a)| a.clone()).collect(),
        };
        plan.schema()?;
        // Unnamed items are `_c<position>`, as in a plain Table API select.
        let projections: Vec<Expr> = exprs
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let name = e.output_name().unwrap_or_else(|| format!("_c{i}"));
                let rewritten = e.unaliased().clone().transform(&mut |x| {
                    aggs.iter().find(|(a, _)| a == x).map(|(_, o)| col(&o.name))
                });
                rewritten.alias(&name)
            })
            .collect();
        self.with(plan).select(projections)
    }

    /// The one column of a table of values for `key IN (...)`, or an error naming `what`.
    fn only_column(&self, key: &Expr, what: &str) -> Result<Expr> {
        let cols = self.plan.schema()?;
        if cols.fields().len() != 1 {
            return Err(EngineError::Plan {
                expr: format!("{key} {what} (...)"),
                detail: format!(
                    "the table of {what} has {} columns, not one",
                    cols.fields().len()
                ),
            });
        }
        Ok(col(cols.field(0).name()))
    }

    /// The rows whose `key` is among the values of the one-column table `values`
    /// (`where(col('a').in_(other))`, SQL `a IN (SELECT ..)`): a join with its distinct rows.
    pub fn where_in(&self, key: Expr, values: &Table) -> Result<Table> {
        let first = values.only_column(&key, "IN")?;
        let mine = self.all_columns()?;
        let name = format!("$in{}", mine.len());
        let right = values.select(vec![first.alias(&name)])?.distinct()?;
        let plan = join_plan(
            self.plan.clone(),
            right.plan.clone(),
            JoinKind::Inner,
            key.equals(col(&name)),
            vec![name],
        )?;
        self.with(plan).select(mine)
    }

    /// The rows whose `key` is NOT IN the values of the one-column table `values` (SQL
    /// `a NOT IN (SELECT ..)`), with SQL's NULL rules: with no values every row is kept; else a
    /// NULL key, or any NULL among the values, makes the condition unknown (the row is dropped)
    /// unless the key is among the values (then it is false anyway). Built from joins: the
    /// values' row and NULL counts (one row, joined on a constant) and their distinct non-NULL
    /// values (a left join); so in streaming mode the result updates, retracting rows when a
    /// value comes and restoring them when it goes.
    pub fn where_not_in(&self, key: Expr, values: &Table) -> Result<Table> {
        let first = values.only_column(&key, "NOT IN")?;
        let mine = self.all_columns()?;
        let tag = mine.len();
        let name = |what: &str| format!("$nin_{what}{tag}");
        let (lk, rk, rows, nulls, v) = (
            name("lk"),
            name("rk"),
            name("rows"),
            name("nonnull"),
            name("v"),
        );
        let stats = values
            .select(vec![lit(1i64).alias(&rk), first.clone().alias(&v)])?
            .group_by(vec![col(&rk)])
            .select(vec![
                col(&rk),
                lit(1i64).sum().alias(&rows),
                col(&v).count().alias(&nulls),
            ])?;
        let distinct = values
            .select(vec![first.alias(&v)])?
            .filter(col(&v).is_not_null())?
            .distinct()?;
        let mut left_cols = mine.clone();
        left_cols.push(lit(1i64).alias(&lk));
        let left = self.select(left_cols)?;
        let with_stats = join_plan(
            left.plan.clone(),
            stats.plan.clone(),
            JoinKind::LeftOuter,
            col(&lk).equals(col(&rk)),
            vec![rk.clone(), rows.clone(), nulls.clone()],
        )?;
        let with_match = join_plan(
            with_stats,
            distinct.plan.clone(),
            JoinKind::LeftOuter,
            key.clone().equals(col(&v)),
            vec![v.clone()],
        )?;
        let keep = col(&rows).is_null().or(key
            .is_not_null()
            .and(col(&v).is_null())
            .and(col(&rows).equals(col(&nulls))));
        self.with(with_match).filter(keep)?.select(mine)
    }

    /// The distinct rows that are in both tables (`intersect`, SQL `INTERSECT`).
    pub fn intersect(&self, other: &Table) -> Result<Table> {
        self.set_operation(other, true, false)
    }

    /// The rows that are in both tables, each as often as it is in the one that has it fewer
    /// times (`intersect_all`, SQL `INTERSECT ALL`).
    pub fn intersect_all(&self, other: &Table) -> Result<Table> {
        self.set_operation(other, true, true)
    }

    /// The rows of this table, each as many times more often as it is here than in `other`
    /// (`minus_all`, SQL `EXCEPT ALL`).
    pub fn minus_all(&self, other: &Table) -> Result<Table> {
        self.set_operation(other, false, true)
    }

    /// The distinct rows of this table that are not in `other` (`minus`, SQL `EXCEPT`).
    pub fn minus(&self, other: &Table) -> Result<Table> {
        self.set_operation(other, false, false)
    }

    /// INTERSECT / EXCEPT as a count per distinct row and side: both sides, tagged, go into one
    /// grouping by every column (NULLs group together, as set operations compare them); a
    /// row is kept when both counts are positive (intersect) or only the left one is (minus).
    /// With `all`, each row is repeated min(left, right) or left - right times (a count
    /// flattened by [`Plan::Flatten`]). In streaming mode the result updates as rows come, as
    /// Flink's does.
    fn set_operation(&self, other: &Table, intersect: bool, all: bool) -> Result<Table> {
        let left_schema = self.plan.schema()?;
        let right_schema = other.plan.schema()?;
        let what = match (intersect, all) {
            (true, false) => "INTERSECT",
            (true, true) => "INTERSECT ALL",
            (false, false) => "EXCEPT",
            (false, true) => "EXCEPT ALL",
        };
        if left_schema.fields().len() != right_schema.fields().len() {
            return Err(EngineError::Plan {
                expr: what.into(),
                detail: format!(
                    "both sides need the same number of columns, not {} and {}",
                    left_schema.fields().len(),
                    right_schema.fields().len()
                ),
            });
        }
        let names: Vec<String> = left_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let tagged = |t: &Table, schema: &arrow_schema::Schema, side: i64| -> Result<Table> {
            let mut exprs: Vec<Expr> = schema
                .fields()
                .iter()
                .zip(&names)
                .map(|(f, n)| col(f.name()).alias(n))
                .collect();
            exprs.push(lit(if side == 0 { 1i64 } else { 0 }).alias("$left"));
            exprs.push(lit(if side == 1 { 1i64 } else { 0 }).alias("$right"));
            t.select(exprs)
        };
        let both = tagged(self, &left_schema, 0)?.union_all(&tagged(other, &right_schema, 1)?)?;
        let keys: Vec<Expr> = names.iter().map(|n| col(n)).collect();
        let mut aggs = keys.clone();
        aggs.push(col("$left").sum().alias("$in_left"));
        aggs.push(col("$right").sum().alias("$in_right"));
        let counted = both.group_by(keys.clone()).select(aggs)?;
        if all {
            let (l, r) = (col("$in_left"), col("$in_right"));
            let times = if intersect {
                Expr::Case {
                    operand: None,
                    branches: vec![(l.clone().lt(r.clone()), l)],
                    otherwise: Some(Box::new(r)),
                }
            } else {
                Expr::Case {
                    operand: None,
                    branches: vec![(l.clone().gt(r.clone()), l - r)],
                    otherwise: Some(Box::new(lit(0i64))),
                }
            };
            let mut exprs = keys;
            exprs.push(times.cast(DataType::Int64).alias("$times"));
            let plan = Plan::Flatten {
                input: Box::new(counted.select(exprs)?.plan.clone()),
                names: Vec::new(),
            };
            plan.schema()?;
            return Ok(self.with(plan));
        }
        let in_right = col("$in_right").gt(lit(0i64));
        let keep = col("$in_left")
            .gt(lit(0i64))
            .and(if intersect { in_right } else { !in_right });
        counted.filter(keep)?.select(keys)
    }

    /// Removes duplicate rows.
    pub fn distinct(&self) -> Result<Table> {
        let keys = self.all_columns()?;
        self.group_by(keys.clone()).select(keys)
    }

    /// Sorts (bounded input): `order_by(vec![col("a").desc()])`.
    pub fn order_by(&self, keys: Vec<Expr>) -> Result<Table> {
        let schema = self.plan.schema()?;
        let mut out = Vec::new();
        for k in keys {
            let (e, opts) = sort_key(k);
            e.data_type(&schema)?;
            out.push((e, opts));
        }
        Ok(self.with(Plan::Sort {
            input: Box::new(self.plan.clone()),
            keys: out,
            limit: None,
            offset: 0,
        }))
    }

    /// The first `fetch` rows after skipping `offset` (PyFlink's `limit(fetch, offset)`).
    pub fn limit(&self, fetch: usize, offset: usize) -> Table {
        match &self.plan {
            Plan::Sort { input, keys, .. } => self.with(Plan::Sort {
                input: input.clone(),
                keys: keys.clone(),
                limit: Some(fetch),
                offset,
            }),
            p => self.with(Plan::Limit {
                input: Box::new(p.clone()),
                limit: fetch,
                offset,
            }),
        }
    }

    /// Logical and physical plan as text.
    pub fn explain(&self) -> Result<String> {
        let graph = self
            .env
            .plan_to(self, Arc::new(CollectSink(Collect::default())))?;
        Ok(format!(
            "== Logical Plan ==\n{}\n== Physical Plan ==\n{}",
            self.plan.explain(),
            graph.describe()
        ))
    }

    /// The schema as Flink's `print_schema` shows it.
    pub fn schema_text(&self) -> Result<String> {
        let s = self.plan.schema()?;
        let mut out = String::from("(\n");
        let n = s.fields().len();
        for (i, f) in s.fields().iter().enumerate() {
            let mut t = crate::types::type_name(f.data_type());
            if !f.is_nullable() {
                t.push_str(" NOT NULL");
            }
            let rowtime = self.plan.rowtime().as_deref() == Some(f.name().as_str());
            if rowtime {
                t.push_str(" *ROWTIME*");
            }
            if self.plan.proctime().as_deref() == Some(f.name().as_str()) {
                t.push_str(" *PROCTIME*");
            }
            out.push_str(&format!(
                "  `{}` {t}{}\n",
                f.name(),
                if i + 1 < n { "," } else { "" }
            ));
        }
        out.push(')');
        Ok(out)
    }
}

fn names_of(s: &arrow_schema::Schema) -> String {
    names(s)
}

/// `*` in a select list (`col("*")`) means every column.
fn expand_star(exprs: Vec<Expr>, schema: &arrow_schema::Schema) -> Vec<Expr> {
    let mut out = Vec::new();
    for e in exprs {
        match &e {
            Expr::Column(c) if c == "*" => {
                out.extend(schema.fields().iter().map(|f| col(f.name())))
            }
            _ => out.push(e),
        }
    }
    out
}

/// Splits a sort key into its expression and Arrow options.
pub fn sort_key(k: Expr) -> (Expr, SortOptions) {
    match k {
        Expr::Sort {
            expr,
            desc,
            nulls_first,
        } => (
            *expr,
            SortOptions {
                descending: desc,
                nulls_first,
            },
        ),
        e => (
            e,
            SortOptions {
                descending: false,
                nulls_first: true,
            },
        ),
    }
}

/// Plans a join: the condition's top-level conjuncts of the form `left = right` become the
/// keys, the rest a filter on joined rows (inner joins only).
pub fn join_plan(
    left: Plan,
    right: Plan,
    kind: JoinKind,
    cond: Expr,
    right_names: Vec<String>,
) -> Result<Plan> {
    let (ls, rs) = (left.schema()?, right.schema()?);
    let mut conjuncts = Vec::new();
    split_and(cond.clone(), &mut conjuncts);
    // Columns of the right side under their output names.
    let rename: Vec<(String, String)> = rs
        .fields()
        .iter()
        .zip(&right_names)
        .map(|(f, n)| (n.clone(), f.name().clone()))
        .collect();
    let side_of = |e: &Expr| -> Option<usize> {
        let mut l = false;
        let mut r = false;
        e.visit(&mut |x| {
            if let Expr::Column(c) = x {
                if ls.index_of(c).is_ok() && !right_names.contains(c) {
                    l = true;
                } else if right_names.contains(c) {
                    r = true;
                } else if ls.index_of(c).is_ok() {
                    l = true;
                }
            }
        });
        match (l, r) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        }
    };
    let to_right = |e: Expr| {
        e.transform(&mut |x| match x {
            Expr::Column(c) => rename
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, orig)| col(orig)),
            _ => None,
        })
    };
    let mut on = Vec::new();
    let mut rest = Vec::new();
    for c in conjuncts {
        if let Expr::Binary(a, crate::expr::BinaryOp::Eq, b) = &c {
            match (side_of(a), side_of(b)) {
                (Some(0), Some(1)) => {
                    on.push(((**a).clone(), to_right((**b).clone())));
                    continue;
                }
                (Some(1), Some(0)) => {
                    on.push(((**b).clone(), to_right((**a).clone())));
                    continue;
                }
                _ => {}
            }
        }
        rest.push(c);
    }
    if on.is_empty() {
        return Err(EngineError::Plan {
            expr: cond.to_string(),
            detail: "a streaming join needs at least one equality between a column of each side"
                .into(),
        });
    }
    let filter = rest.into_iter().reduce(Expr::and);
    if filter.is_some() && kind != JoinKind::Inner {
        return Err(EngineError::Plan {
            expr: cond.to_string(),
            detail: "an outer join takes only equalities in its condition; filter before or after the join".into(),
        });
    }
    let plan = Plan::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        on,
        filter,
        right_names,
    };
    let schema = plan.schema()?;
    if let Plan::Join { on, filter, .. } = &plan {
        for (l, r) in on {
            l.data_type(&ls)?;
            r.data_type(&rs)?;
        }
        if let Some(f) = filter {
            f.data_type(&schema)?;
        }
    }
    Ok(plan)
}

fn split_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary(a, crate::expr::BinaryOp::And, b) => {
            split_and(*a, out);
            split_and(*b, out);
        }
        e => out.push(e),
    }
}

/// A table grouped by keys.
pub struct GroupedTable {
    table: Table,
    keys: Vec<Expr>,
    window: Option<GroupWindow>,
}

impl GroupedTable {
    /// Keys and aggregates: `select(vec![col("k"), col("v").sum().alias("total")])`.
    pub fn select(&self, exprs: Vec<Expr>) -> Result<Table> {
        let mut keys = self.keys.clone();
        let mut window = self.window.clone();
        if let Some(w) = &mut window {
            // The window's alias is a grouping key that names the window.
            let alias = w.alias.clone();
            let before = keys.len();
            keys.retain(|k| !matches!((k, &alias), (Expr::Column(c), Some(a)) if c == a));
            if keys.len() == before && alias.is_some() {
                return Err(EngineError::Plan {
                    expr: format!(
                        "group_by({})",
                        self.keys
                            .iter()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    detail: format!(
                        "a windowed table must be grouped by its window alias `{}`",
                        alias.unwrap_or_default()
                    ),
                });
            }
        }
        let schema = self.table.plan.schema()?;
        let exprs = expand_star(exprs, &schema);
        let plan = plan_aggregate(
            self.table.plan.clone(),
            keys,
            window,
            exprs,
            None,
            AggregateNaming::Sequence,
        )?;
        Ok(self.table.with(plan))
    }

    /// The keys and one aggregate function's result (`aggregate(f(x).alias("a", "b"))`), a
    /// ROW result flattened into its fields (named `names`, else as the fields are).
    pub fn aggregate(&self, call: Expr, names: Option<Vec<String>>) -> Result<Table> {
        if !call.unaliased().is_agg_call() {
            return Err(EngineError::Plan {
                expr: call.to_string(),
                detail: "aggregate() takes one aggregate function call".into(),
            });
        }
        let mut exprs: Vec<Expr> = self
            .keys
            .iter()
            .map(|k| k.clone().alias(&key_name(k)))
            .collect();
        let keep: Vec<Expr> = self.keys.iter().map(|k| col(&key_name(k))).collect();
        exprs.push(call.unaliased().clone().alias("$agg"));
        self.select(exprs)?
            .flatten_column("$agg", keep, names, "EXPR$0")
    }
}

impl GroupedTable {
    /// The keys and the rows the table aggregate function `call` emits per group
    /// (`flat_aggregate`), its columns named `names` or as the function names them. In
    /// streaming mode a group's earlier rows are retracted when it emits new ones.
    pub fn flat_aggregate(&self, call: Expr, names: Option<Vec<String>>) -> Result<Table> {
        let fields = match call.unaliased() {
            Expr::Udf(u, _) if u.kind == crate::udf::FunctionKind::TableAggregate => {
                u.table_fields().cloned()
            }
            _ => None,
        }
        .ok_or_else(|| EngineError::Plan {
            expr: call.to_string(),
            detail: "flat_aggregate takes one call of a table aggregate function (udtaf)".into(),
        })?;
        if self.window.is_some() {
            return Err(EngineError::Plan {
                expr: call.to_string(),
                detail: "flat_aggregate over a group window is not supported (as in PyFlink); group by the window's start in a Calc first".into(),
            });
        }
        let mut exprs: Vec<Expr> = self
            .keys
            .iter()
            .map(|k| k.clone().alias(&key_name(k)))
            .collect();
        exprs.push(call.unaliased().clone().alias(crate::plan::FLAT_AGGREGATE));
        let agg = self.select(exprs)?;
        let names = names.unwrap_or_else(|| fields.iter().map(|f| f.name().clone()).collect());
        let plan = Plan::Flatten {
            input: Box::new(agg.plan.clone()),
            names,
        };
        plan.schema()?;
        Ok(agg.with(plan))
    }
}

/// The name a grouping key keeps in `aggregate()`'s result.
fn key_name(k: &Expr) -> String {
    match k.unaliased() {
        Expr::Column(c) => c.clone(),
        _ => k.output_name().unwrap_or_else(|| k.to_string()),
    }
}

/// A table with a group window, waiting for `group_by`.
pub struct WindowedTable {
    table: Table,
    window: GroupWindow,
}

impl WindowedTable {
    /// Groups by the window alias and other keys.
    pub fn group_by(&self, keys: Vec<Expr>) -> GroupedTable {
        GroupedTable {
            table: self.table.clone(),
            keys,
            window: Some(self.window.clone()),
        }
    }
}

/// `Tumble.over(size).on(time).alias(w)`; sizes in milliseconds.
pub struct Tumble;
/// `Slide.over(size).every(slide).on(time).alias(w)`.
pub struct Slide;
/// `Session.with_gap(gap).on(time).alias(w)`.
pub struct Session;

/// A window being described.
#[derive(Clone, Debug)]
pub struct WindowBuilder {
    kind: WindowKind,
    time: Option<String>,
    alias: Option<String>,
}

impl Tumble {
    /// Windows of `size_ms`.
    pub fn over(size_ms: i64) -> WindowBuilder {
        WindowBuilder {
            kind: WindowKind::Tumble { size: size_ms },
            time: None,
            alias: None,
        }
    }
}

impl Slide {
    /// Windows of `size_ms`; call `.every(slide_ms)`.
    pub fn over(size_ms: i64) -> WindowBuilder {
        WindowBuilder {
            kind: WindowKind::Hop {
                size: size_ms,
                slide: size_ms,
            },
            time: None,
            alias: None,
        }
    }
}

impl Session {
    /// Sessions that close after `gap_ms` without rows.
    pub fn with_gap(gap_ms: i64) -> WindowBuilder {
        WindowBuilder {
            kind: WindowKind::Session { gap: gap_ms },
            time: None,
            alias: None,
        }
    }
}

impl WindowBuilder {
    /// The slide of a sliding window.
    pub fn every(mut self, slide_ms: i64) -> Self {
        if let WindowKind::Hop { size, .. } = self.kind {
            self.kind = WindowKind::Hop {
                size,
                slide: slide_ms,
            };
        }
        self
    }
    /// The time attribute.
    pub fn on(mut self, time: &str) -> Self {
        self.time = Some(time.to_string());
        self
    }
    /// The name the select list uses (`col("w").window_start()`).
    pub fn alias(mut self, alias: &str) -> Self {
        self.alias = Some(alias.to_string());
        self
    }
}

impl From<WindowBuilder> for GroupWindow {
    fn from(b: WindowBuilder) -> Self {
        GroupWindow {
            kind: b.kind,
            time: b.time.unwrap_or_default(),
            alias: b.alias,
        }
    }
}

impl Expr {
    /// `w.start`: the start of the group window aliased `w`.
    pub fn window_start(self) -> Expr {
        Expr::WindowProperty(WindowProperty::Start)
    }
    /// `w.end`.
    pub fn window_end(self) -> Expr {
        Expr::WindowProperty(WindowProperty::End)
    }
    /// `w.rowtime`: the last millisecond of the window, a time attribute.
    pub fn window_rowtime(self) -> Expr {
        Expr::WindowProperty(WindowProperty::Rowtime)
    }
}
