//! Operators: what transforms batches between a source and a sink, one file per family:
//! [`calc`] (filter + projection), [`aggregate`] (GROUP BY), [`window`] (group windows and
//! window assignment), [`join`], [`union`], [`sort`] (ORDER BY, LIMIT), and [`state`] (the
//! group tables and accumulators the aggregates keep).

pub mod aggregate;
pub mod calc;
pub mod correlate;
pub mod join;
pub mod over;
pub mod rank;
pub mod sort;
pub mod state;
pub mod udaf;
pub mod union;
pub mod window;

pub use aggregate::{AggSpec, GroupAggregate};
pub use calc::{filter_batch, Calc};
pub use correlate::Correlate;
pub use join::{HashJoin, JoinKind};
pub use over::{OverAgg, OverAggregate, OverFrame, OverTime};
pub use rank::{Rank, RankFunc};
pub use sort::{Limit, Sort};
pub use union::Union;
pub use window::{clamp_time, millis_of, WindowAggregate, WindowAssign, WindowKind};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::{EngineError, Result};
use crate::stream::StreamBatch;

/// A synchronous operator: each input batch gives zero or more output batches. (Operators
/// that call out of process, such as Python UDF runners, get an asynchronous interface of
/// their own with several batches in flight.)
pub trait Operator: Send {
    /// Name shown in metrics (`operator` label) and errors.
    fn name(&self) -> &str;
    /// Schema of what it emits.
    fn output_schema(&self) -> SchemaRef;
    /// Handles one batch, pushing results to `out`.
    fn process(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<()>;
    /// Handles one batch of input number `input` (joins and unions have several).
    fn process_input(
        &mut self,
        _input: usize,
        batch: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<()> {
        self.process(batch, out)
    }
    /// The watermark of the operator's inputs advanced to `wm` (ms): fire what is due. Returns
    /// the watermark to pass downstream.
    fn on_watermark(&mut self, wm: i64, _out: &mut Vec<StreamBatch>) -> Result<i64> {
        Ok(wm)
    }
    /// How often the operator wants [`Operator::on_timer`] (processing-time windows).
    fn timer_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Processing time reached `now_ms`.
    fn on_timer(&mut self, _now_ms: i64, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
    /// Registers the operator's own metrics (late rows, state size) in its subtask's group.
    fn open(&mut self, _metrics: &weir_metrics::MetricGroup) -> Result<()> {
        Ok(())
    }
    /// End of input: emit what is left.
    fn finish(&mut self, _out: &mut Vec<StreamBatch>) -> Result<()> {
        Ok(())
    }
    /// Whether the operator wants no more input (a satisfied LIMIT); its inputs are stopped.
    fn is_done(&self) -> bool {
        false
    }
    /// For an operator whose state is computed out of process (aggregates of Python
    /// functions): what its function runner must evaluate before `batch` can be processed.
    /// The runtime sends it, waits, hands the answer to [`Operator::on_evaluated`], then calls
    /// [`Operator::process_input`] with the same batch.
    fn request(&mut self, _input: usize, _batch: &StreamBatch) -> Result<Option<RecordBatch>> {
        Ok(None)
    }
    /// The answer to the last [`Operator::request`] or [`Operator::fire_request`].
    fn on_evaluated(&mut self, _answer: crate::udf::Evaluated) -> Result<()> {
        Ok(())
    }
    /// What its function runner must evaluate before the watermark (or the clock, for
    /// processing time) reaches `wm`, or before [`Operator::finish`] (`None`): the groups
    /// that are about to be emitted, for functions of a whole group (pandas aggregates).
    fn fire_request(&mut self, _wm: Option<i64>) -> Result<Option<RecordBatch>> {
        Ok(None)
    }
}

/// Registers a metric of an operator, turning a registry error into an engine error.
pub fn metric<T>(
    operator: &str,
    r: std::result::Result<T, weir_metrics::MetricsError>,
) -> Result<T> {
    r.map_err(|e| EngineError::Execution(format!("registering metrics of {operator}: {e}")))
}

/// An Arrow error of an operator, with where it happened.
pub(crate) fn arrow(context: &str) -> impl Fn(arrow_schema::ArrowError) -> EngineError + '_ {
    move |source| EngineError::Arrow {
        context: context.to_string(),
        source,
    }
}
