//! Gauge: a value that goes up and down, integer or floating point, set directly or read from
//! a callback when an exporter reads it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

/// A gauge reading: integers stay integers (no truncation of floats, unlike PyFlink).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GaugeValue {
    Int(i64),
    Float(f64),
}

impl GaugeValue {
    /// The value as `f64` (what Prometheus stores).
    pub fn as_f64(self) -> f64 {
        match self {
            GaugeValue::Int(i) => i as f64,
            GaugeValue::Float(f) => f,
        }
    }
}

/// A callback that produces a gauge's value when an exporter reads it; `Err` holds the reason
/// it could not (for example a Python exception's text).
pub type GaugeFn = dyn Fn() -> Result<GaugeValue, String> + Send + Sync;

/// A value that goes up and down.
///
/// ```
/// use weir_metrics::{Gauge, GaugeValue};
/// let g = Gauge::default();
/// g.set_f64(0.25);
/// assert_eq!(g.value(), Ok(Some(GaugeValue::Float(0.25))));
/// let cb = Gauge::from_fn(|| Ok(GaugeValue::Int(7)));
/// assert_eq!(cb.value(), Ok(Some(GaugeValue::Int(7))));
/// ```
#[derive(Clone, Default)]
pub struct Gauge(pub(crate) Arc<GaugeCell>);

#[derive(Default)]
pub(crate) struct GaugeCell {
    /// 0 = never set, 1 = int, 2 = float.
    tag: AtomicU8,
    bits: AtomicU64,
    callback: Option<Box<GaugeFn>>,
    /// Timestamp (ms) of the value when it came from another process; 0 for local sets.
    timestamp_ms: AtomicU64,
    /// Set while the callback keeps failing, so a failure streak is logged once.
    failing: AtomicBool,
}

const UNSET: u8 = 0;
const INT: u8 = 1;
const FLOAT: u8 = 2;

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge")
            .field("callback", &self.0.callback.is_some())
            .finish()
    }
}

impl Gauge {
    /// A gauge whose value is read from `f` each time it is exported.
    pub fn from_fn(f: impl Fn() -> Result<GaugeValue, String> + Send + Sync + 'static) -> Self {
        Gauge(Arc::new(GaugeCell {
            callback: Some(Box::new(f)),
            ..Default::default()
        }))
    }

    /// Sets an integer value.
    #[inline]
    pub fn set_i64(&self, v: i64) {
        self.0.bits.store(v as u64, Relaxed);
        self.0.tag.store(INT, Relaxed);
    }

    /// Sets a floating point value.
    #[inline]
    pub fn set_f64(&self, v: f64) {
        self.0.bits.store(v.to_bits(), Relaxed);
        self.0.tag.store(FLOAT, Relaxed);
    }

    /// Sets either kind of value.
    pub fn set(&self, v: GaugeValue) {
        match v {
            GaugeValue::Int(i) => self.set_i64(i),
            GaugeValue::Float(f) => self.set_f64(f),
        }
    }

    /// Sets `v` measured at `timestamp_ms` unless the gauge holds a value measured later
    /// (values from several workers merged into one gauge: the most recent wins, whatever the
    /// order they arrive in).
    pub fn set_if_newer(&self, v: GaugeValue, timestamp_ms: u64) {
        let mut cur = self.0.timestamp_ms.load(Relaxed);
        loop {
            if timestamp_ms < cur {
                return;
            }
            match self
                .0
                .timestamp_ms
                .compare_exchange_weak(cur, timestamp_ms, Relaxed, Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.set(v);
    }

    /// Whether the value comes from a callback.
    pub fn is_callback(&self) -> bool {
        self.0.callback.is_some()
    }

    /// The current value: `Ok(None)` if never set, `Err` with the reason if the callback failed.
    pub fn value(&self) -> Result<Option<GaugeValue>, String> {
        if let Some(cb) = &self.0.callback {
            return cb().map(Some);
        }
        let bits = self.0.bits.load(Relaxed);
        Ok(match self.0.tag.load(Relaxed) {
            UNSET => None,
            INT => Some(GaugeValue::Int(bits as i64)),
            _ => Some(GaugeValue::Float(f64::from_bits(bits))),
        })
    }

    /// Reads the value for an export. A failing callback is logged once per failure streak
    /// (naming `series`) and yields `None`, so the series is left out of that export.
    pub(crate) fn read_for_export(&self, series: &dyn fmt::Display) -> Option<GaugeValue> {
        match self.value() {
            Ok(v) => {
                if self.0.failing.swap(false, Relaxed) {
                    tracing::info!("gauge {series} reads again");
                }
                v
            }
            Err(e) => {
                if !self.0.failing.swap(true, Relaxed) {
                    tracing::warn!(
                        "gauge {series}: callback failed, series left out of exports until it recovers: {e}"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    #[test]
    fn int_and_float_values() {
        let g = Gauge::default();
        assert_eq!(g.value(), Ok(None));
        g.set_i64(-5);
        assert_eq!(g.value(), Ok(Some(GaugeValue::Int(-5))));
        g.set_f64(2.5);
        assert_eq!(g.value(), Ok(Some(GaugeValue::Float(2.5))));
    }

    #[test]
    fn failing_callback_is_left_out_and_recovers() {
        let n = Arc::new(AtomicI64::new(0));
        let n2 = n.clone();
        let g = Gauge::from_fn(move || {
            let v = n2.fetch_add(1, Relaxed);
            if v % 3 == 0 {
                Err(format!("ValueError: {v}"))
            } else {
                Ok(GaugeValue::Int(v))
            }
        });
        assert_eq!(g.read_for_export(&"g"), None);
        assert!(g.0.failing.load(Relaxed));
        assert_eq!(g.read_for_export(&"g"), Some(GaugeValue::Int(1)));
        assert!(!g.0.failing.load(Relaxed));
    }
}
