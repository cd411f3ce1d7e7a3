//! What flows between operators: Arrow record batches with, where an operator produces
//! updates, the change kind of each row (Flink's changelog: `+I`, `-U`, `+U`, `-D`).

use std::fmt;
use std::sync::Arc;

use arrow_array::{Array, Int8Array, RecordBatch};

/// Rows per batch a source emits when it is not rate-limited, and the most rows an
/// operator emits in one batch.
pub const MAX_BATCH_ROWS: usize = 8192;

/// The change a row stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the old value of an updated row.
    UpdateBefore = 1,
    /// `+U`: the new value of an updated row.
    UpdateAfter = 2,
    /// `-D`: a removed row.
    Delete = 3,
}

impl RowKind {
    /// Flink's short form: `+I`, `-U`, `+U`, `-D`.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// From the stored code; `None` for a code that is not a kind.
    pub fn from_code(code: i8) -> Option<RowKind> {
        Some(match code {
            0 => RowKind::Insert,
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => return None,
        })
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// A batch of rows and their change kinds.
#[derive(Clone, Debug)]
pub struct StreamBatch {
    pub data: RecordBatch,
    /// One code per row (see [`RowKind`]); `None` when every row is an insert, which is the
    /// common case and costs nothing.
    pub kinds: Option<Arc<Int8Array>>,
}

impl StreamBatch {
    /// A batch of inserts.
    pub fn inserts(data: RecordBatch) -> Self {
        Self { data, kinds: None }
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    /// The kind of row `i`.
    pub fn kind(&self, i: usize) -> RowKind {
        match &self.kinds {
            None => RowKind::Insert,
            Some(k) => RowKind::from_code(k.value(i)).unwrap_or(RowKind::Insert),
        }
    }

    /// The rows where `mask` is true, with their kinds.
    pub fn filter(&self, mask: &arrow_array::BooleanArray) -> crate::error::Result<StreamBatch> {
        let err = |source| crate::error::EngineError::Arrow {
            context: "filtering rows".into(),
            source,
        };
        let data = arrow_select::filter::filter_record_batch(&self.data, mask).map_err(err)?;
        let kinds = match &self.kinds {
            None => None,
            Some(k) => Some(Arc::new(
                arrow_select::filter::filter(k.as_ref(), mask)
                    .map_err(err)?
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .cloned()
                    .ok_or_else(|| {
                        crate::error::EngineError::Execution("row kinds lost their type".into())
                    })?,
            )),
        };
        Ok(StreamBatch { data, kinds })
    }

    /// The rows at `indices` (in that order, repeats allowed), with their kinds.
    pub fn take(&self, indices: &arrow_array::UInt32Array) -> crate::error::Result<StreamBatch> {
        let err = |source| crate::error::EngineError::Arrow {
            context: "selecting rows".into(),
            source,
        };
        let data = arrow_select::take::take_record_batch(&self.data, indices).map_err(err)?;
        let kinds = match &self.kinds {
            None => None,
            Some(k) => Some(Arc::new(
                arrow_select::take::take(k.as_ref(), indices, None)
                    .map_err(err)?
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .cloned()
                    .ok_or_else(|| {
                        crate::error::EngineError::Execution("row kinds lost their type".into())
                    })?,
            )),
        };
        Ok(StreamBatch { data, kinds })
    }

    /// Whether every row is an insert.
    pub fn is_insert_only(&self) -> bool {
        match &self.kinds {
            None => true,
            Some(k) => {
                k.values().iter().all(|c| *c == RowKind::Insert as i8) && k.null_count() == 0
            }
        }
    }
}

/// A message on a channel between two operators.
#[derive(Clone, Debug)]
pub enum Message {
    Batch(StreamBatch),
    /// Event time (ms since the epoch) up to which no more rows are expected.
    Watermark(i64),
}

/// Flink's text form of row `i` with its kind: `+I[1, abc, null]`.
pub fn format_row(batch: &StreamBatch, i: usize) -> crate::error::Result<String> {
    let values = format_values(&batch.data, i)?;
    Ok(format!("{}[{}]", batch.kind(i).short(), values.join(", ")))
}

/// Each column's value of row `i` as text (`null` for NULL, timestamps as
/// `2020-01-01 12:00:00.000`).
pub fn format_values(
    data: &arrow_array::RecordBatch,
    i: usize,
) -> crate::error::Result<Vec<String>> {
    let opts = arrow_cast::display::FormatOptions::new()
        .with_null("null")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3fZ"));
    data.columns()
        .iter()
        .map(|c| {
            let f = arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &opts).map_err(
                |source| crate::error::EngineError::Arrow {
                    context: "formatting a row".into(),
                    source,
                },
            )?;
            Ok(f.value(i).to_string())
        })
        .collect()
}
