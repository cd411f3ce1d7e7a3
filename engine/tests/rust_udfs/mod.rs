//! Functions the data-driven SQL files may call, run through the engine's UDF seam by a Rust
//! backend (no Python): the table function `split_words(s)` (a row `(word, len)` per word)
//! and the aggregate `rsum(x)` (a sum with retraction), whose accumulators travel with each
//! request as the state link says (`weir_engine::udf::AGG_SLOT`), 8 little-endian bytes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, SchemaRef};
use tokio::sync::oneshot;
use weir_engine::error::{EngineError, Result};
use weir_engine::table::TableEnvironment;
use weir_engine::udf::{
    aggregate_answer_type, Evaluated, FunctionKind, FunctionRunner, Pending, RunnerContext,
    UdfBackend, UdfCall, UdfRef, AGG_ACCS, AGG_RETRACT, AGG_SLOT,
};

/// Which function a call is (the payload of its [`UdfRef`]).
#[derive(Clone, Copy)]
enum Which {
    SplitWords,
    Rsum,
}

struct Backend;

struct Runner {
    calls: Vec<(Which, Vec<usize>)>,
}

fn word_fields() -> Fields {
    vec![
        Field::new("word", DataType::Utf8, true),
        Field::new("len", DataType::Int32, true),
    ]
    .into()
}

impl UdfBackend for Backend {
    fn start(
        &self,
        _ctx: &RunnerContext,
        calls: &[UdfCall],
        _args: SchemaRef,
    ) -> Result<Box<dyn FunctionRunner>> {
        let calls = calls
            .iter()
            .map(|c| {
                let w = *c
                    .udf
                    .payload
                    .downcast_ref::<Which>()
                    .expect("a test function");
                (w, c.args.clone())
            })
            .collect();
        Ok(Box::new(Runner { calls }))
    }
}

fn split_words(s: &ArrayRef) -> ArrayRef {
    let s = s.as_string::<i32>();
    let fields = word_fields();
    let rows = StructBuilder::new(
        fields.clone(),
        vec![
            Box::new(StringBuilder::new()),
            Box::new(Int32Builder::new()),
        ],
    );
    let mut out = ListBuilder::new(rows).with_field(Arc::new(Field::new(
        "item",
        DataType::Struct(fields),
        true,
    )));
    for v in s.iter() {
        for w in v.unwrap_or("").split_whitespace() {
            let r = out.values();
            r.field_builder::<StringBuilder>(0)
                .expect("word")
                .append_value(w);
            r.field_builder::<Int32Builder>(1)
                .expect("len")
                .append_value(w.chars().count() as i32);
            r.append(true);
        }
        out.append(true);
    }
    Arc::new(out.finish())
}

fn rsum(batch: &RecordBatch, args: &[usize]) -> Result<ArrayRef> {
    let slots = batch.column(args[0]).as_primitive::<Int64Type>();
    let retract = batch.column(args[1]).as_boolean();
    let stored = batch.column(args[2]).as_binary::<i32>();
    let x = arrow_cast::cast(batch.column(args[3]), &DataType::Int64)
        .map_err(|e| EngineError::Execution(format!("rsum: {e}")))?;
    let x = x.as_primitive::<Int64Type>();
    let mut sums: HashMap<i64, i64> = HashMap::new();
    let mut last: HashMap<i64, usize> = HashMap::new();
    for i in 0..batch.num_rows() {
        let s = slots.value(i);
        let sum = sums.entry(s).or_insert_with(|| {
            if stored.is_valid(i) {
                let b: [u8; 8] = stored.value(i).try_into().expect("8 bytes");
                i64::from_le_bytes(b)
            } else {
                0
            }
        });
        if x.is_valid(i) {
            let v = x.value(i);
            *sum += if retract.value(i) { -v } else { v };
        }
        last.insert(s, i);
    }
    let fields = match aggregate_answer_type(&DataType::Int64) {
        DataType::Struct(f) => f,
        _ => unreachable!("a struct"),
    };
    let mut out = StructBuilder::new(
        fields,
        vec![
            Box::new(BinaryBuilder::new()),
            Box::new(Int64Builder::new()),
        ],
    );
    let by_row: HashMap<usize, i64> = last.iter().map(|(s, i)| (*i, *s)).collect();
    for i in 0..batch.num_rows() {
        match by_row.get(&i) {
            Some(s) => {
                let v = sums[s];
                out.field_builder::<BinaryBuilder>(0)
                    .expect("acc")
                    .append_value(v.to_le_bytes());
                out.field_builder::<Int64Builder>(1)
                    .expect("value")
                    .append_value(v);
                out.append(true);
            }
            None => {
                out.field_builder::<BinaryBuilder>(0)
                    .expect("acc")
                    .append_null();
                out.field_builder::<Int64Builder>(1)
                    .expect("value")
                    .append_null();
                out.append(false);
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

impl FunctionRunner for Runner {
    fn submit(&mut self, batch: RecordBatch) -> Result<Pending> {
        let (reply, pending) = oneshot::channel();
        let mut cols = Vec::new();
        for (w, args) in &self.calls {
            cols.push(match w {
                Which::SplitWords => split_words(batch.column(args[0])),
                Which::Rsum => {
                    if args[..3] != [AGG_SLOT, AGG_RETRACT, args[2]] || args[2] < AGG_ACCS {
                        return Err(EngineError::Execution("bad aggregate layout".into()));
                    }
                    rsum(&batch, args)?
                }
            });
        }
        let _ = reply.send(Ok(Evaluated::all(cols)));
        Ok(pending)
    }
}

/// Registers `split_words` and `rsum` in `env`.
pub fn register(env: &TableEnvironment) {
    let backend: Arc<dyn UdfBackend> = Arc::new(Backend);
    env.create_temporary_function(
        "split_words",
        Arc::new(UdfRef {
            name: "split_words".into(),
            result_type: DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(word_fields()),
                true,
            ))),
            kind: FunctionKind::Table,
            payload: Arc::new(Which::SplitWords),
            backend: backend.clone(),
        }),
    );
    env.create_temporary_function(
        "rsum",
        Arc::new(UdfRef {
            name: "rsum".into(),
            result_type: DataType::Int64,
            kind: FunctionKind::Aggregate,
            payload: Arc::new(Which::Rsum),
            backend,
        }),
    );
}
