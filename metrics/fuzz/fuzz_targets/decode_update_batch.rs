//! Fuzzes the decoder of worker update batches, the one place weir reads metric bytes from
//! another process, and everything a decoded batch reaches: merging into a registry and
//! rendering it.
//!
//! `cd metrics/fuzz && cargo fuzz run decode_update_batch` (needs nightly, or
//! `RUSTC_BOOTSTRAP=1` on stable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_metrics::protocol::UpdateBatch;
use weir_metrics::remote::{AggregationLevel, RemoteMetrics};
use weir_metrics::Registry;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = UpdateBatch::decode(data) else { return };
    // What decodes re-encodes to bytes that decode to the same encoding.
    let bytes = batch.encode();
    let again = UpdateBatch::decode(&bytes).expect("a re-encoded batch decodes");
    assert_eq!(again.encode(), bytes);
    let engine = Registry::default();
    for level in [AggregationLevel::Subtask, AggregationLevel::Operator] {
        let mut remote = RemoteMetrics::new(&engine, &[("subtask", "0")], level).expect("valid labels");
        let _ = remote.apply(&batch);
    }
    let _ = weir_metrics::prometheus::encode_text(&engine.snapshot());
});
