//! The seam for functions that run outside the engine (Python UDFs in worker processes).
//!
//! The planner moves every call of a user-defined function into an asynchronous operator of
//! its own. That operator hands batches of argument columns to a [`FunctionRunner`] and gets
//! result columns back later, keeping several batches in flight (bounded) and emitting results
//! in input order. Who runs the functions, and how, is the [`UdfBackend`]'s business: the
//! Python SDK registers one that starts workers; tests register Rust ones.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use tokio::sync::oneshot;
use weir_metrics::Registry;

use crate::error::Result;

/// What kind of function a [`UdfRef`] is, which decides where the planner may put a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FunctionKind {
    /// One value per row (`udf`): in projections and filters.
    #[default]
    Scalar,
    /// Any number of rows per row (`udtf`): in `join_lateral` / `LATERAL TABLE(...)`. Its
    /// [`UdfRef::result_type`] is `List<Struct<fields>>`: per input row, the rows it yielded.
    Table,
    /// One value per group (`udaf`): in the select list of a grouped table. Its accumulators
    /// belong to the engine's aggregate operator (see [`AGG_SLOT`]).
    Aggregate,
    /// A pandas aggregate (`udaf(func_type="pandas")`): one call per group with all its rows.
    /// Only where a group's rows are complete: batch `GROUP BY` and windows.
    VectorizedAggregate,
    /// Any number of rows per group (`udtaf`, `emit_value`): only in `flat_aggregate`. Kept
    /// like an [`FunctionKind::Aggregate`]; its value is `List<Struct<fields>>`, the rows the
    /// group emits now, which a flatten after the aggregate turns into rows.
    TableAggregate,
}

impl FunctionKind {
    /// An aggregate of either kind.
    pub fn is_aggregate(self) -> bool {
        matches!(
            self,
            FunctionKind::Aggregate
                | FunctionKind::VectorizedAggregate
                | FunctionKind::TableAggregate
        )
    }
}

/// The first columns of a batch an aggregate operator sends its runner, before the argument
/// columns: the group slot of each row (`Int64`), whether the row is retracted (`Boolean`),
/// and then one `Binary` column per aggregate call holding, on the first row of each group in
/// the batch, that group's accumulator as the engine stored it (NULL: a new group). An
/// aggregate call's [`UdfCall::args`] start with these three columns (slot, retract, its
/// accumulator). The answer per call is a `Struct{acc: Binary, value: T}` column that is
/// non-NULL on the last kept row of each group: the new accumulator and the current value.
pub const AGG_SLOT: usize = 0;
/// See [`AGG_SLOT`].
pub const AGG_RETRACT: usize = 1;
/// See [`AGG_SLOT`]: the first accumulator column.
pub const AGG_ACCS: usize = 2;

/// The answer type of an aggregate call whose value is `value`.
pub fn aggregate_answer_type(value: &DataType) -> DataType {
    DataType::Struct(
        vec![
            arrow_schema::Field::new("acc", DataType::Binary, true),
            arrow_schema::Field::new("value", value.clone(), true),
        ]
        .into(),
    )
}

/// A user-defined function known to the planner.
pub struct UdfRef {
    /// The name it was registered under (shown in plans and errors).
    pub name: String,
    /// What it returns (for a table function: a list of rows per input row).
    pub result_type: DataType,
    /// Scalar, table or aggregate function.
    pub kind: FunctionKind,
    /// Whatever the backend needs to run it (for Python: the pickled function).
    pub payload: Arc<dyn Any + Send + Sync>,
    /// The backend that runs it.
    pub backend: Arc<dyn UdfBackend>,
}

impl fmt::Debug for UdfRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Udf({}: {:?}, {:?})",
            self.name, self.kind, self.result_type
        )
    }
}

impl PartialEq for UdfRef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.payload, &other.payload)
    }
}

impl UdfRef {
    /// A table (aggregate) function's output fields (the struct inside its list result).
    pub fn table_fields(&self) -> Option<&arrow_schema::Fields> {
        match (&self.kind, &self.result_type) {
            (FunctionKind::Table | FunctionKind::TableAggregate, DataType::List(item)) => {
                match item.data_type() {
                    DataType::Struct(fields) => Some(fields),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// One call in a UDF operator: the function and which argument columns it takes.
#[derive(Clone, Debug)]
pub struct UdfCall {
    pub udf: Arc<UdfRef>,
    /// Column indexes into the argument batch.
    pub args: Vec<usize>,
}

/// Where a runner runs.
#[derive(Clone)]
pub struct RunnerContext {
    pub job_name: String,
    pub operator: String,
    pub subtask: usize,
    pub parallelism: usize,
    /// The job's registry, for the runner's own metrics and the functions' metrics.
    pub registry: Registry,
    /// The job's configuration (`--set` / `get_config().set`).
    pub config: Arc<std::collections::BTreeMap<String, String>>,
}

/// Starts runners for a UDF operator's subtasks.
pub trait UdfBackend: Send + Sync {
    /// A runner for one subtask evaluating `calls` on batches of `args_schema`.
    fn start(
        &self,
        ctx: &RunnerContext,
        calls: &[UdfCall],
        args_schema: SchemaRef,
    ) -> Result<Box<dyn FunctionRunner>>;
}

/// What a runner made of one submitted batch.
#[derive(Clone, Debug)]
pub struct Evaluated {
    /// One result column per call, one value per kept row.
    pub columns: Vec<ArrayRef>,
    /// Which input rows were kept (`python.udf.on-error=skip` drops the rows a function raised
    /// on); `None` keeps all.
    pub keep: Option<BooleanArray>,
}

impl Evaluated {
    /// Results for every input row.
    pub fn all(columns: Vec<ArrayRef>) -> Self {
        Self {
            columns,
            keep: None,
        }
    }
}

/// The answer to one submitted batch.
pub type Pending = oneshot::Receiver<Result<Evaluated>>;

/// Evaluates batches of arguments out of the engine's tasks.
pub trait FunctionRunner: Send {
    /// Hands over one batch; the result comes on the returned receiver. Results of one
    /// runner may finish in any order; the operator emits them in submission order.
    fn submit(&mut self, args: RecordBatch) -> Result<Pending>;
    /// How many batches may be in flight before the operator waits for the oldest.
    fn max_in_flight(&self) -> usize {
        4
    }
    /// Called about every `tick_interval` while the operator runs, with or without input.
    fn tick(&mut self) -> Result<()> {
        Ok(())
    }
    /// How often [`FunctionRunner::tick`] is wanted, if at all.
    fn tick_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Finish what is buffered: the operator is about to wait for every pending result (a
    /// watermark or the end of input must not overtake rows). A runner that collects rows
    /// into bundles ends the current bundle here.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    /// End of input (every pending result has been received): release the workers.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
    /// After [`FunctionRunner::close`]: resolves when the runner is done, with what its
    /// workers sent while closing (the metrics of `close()`, last gauge values) applied. The
    /// operator waits for it (a bounded time) before it ends, so a finished job's metrics
    /// are complete.
    fn finished(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        None
    }
}

/// The longest an operator waits for [`FunctionRunner::finished`].
pub const FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
