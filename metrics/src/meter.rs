//! Meter: counts events and reports their rate per second averaged over a time span
//! (60 s by default, as PyFlink's `meter(name, time_span_in_seconds=60)`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default averaging span of a meter, as in PyFlink.
pub const DEFAULT_METER_SPAN_SECS: u32 = 60;

/// How often the count is sampled for the rate's history.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Events and their rate.
///
/// `mark_event` is one atomic add. The rate is `(count now - count at the start of the span) /
/// elapsed`, read when asked: it moves continuously with every event instead of in 5 s steps.
/// The count is sampled once a second (by the registry's ticker, or by any read), so the start
/// of the span is exact to a second. A meter younger than its span divides by the whole span,
/// as Flink's `MeterView` does (its history starts as zeros): 30 events in a meter's first
/// second read 0.5/s on a 60 s span, not 30/s.
///
/// ```
/// use std::time::{Duration, Instant};
/// let m = weir_metrics::Meter::new(60);
/// let t0 = Instant::now();
/// m.mark_event(3);
/// assert_eq!(m.count(), 3);
/// assert!(m.rate_at(t0 + Duration::from_secs(3)) > 0.0);
/// ```
#[derive(Clone, Debug)]
pub struct Meter(pub(crate) Arc<MeterCell>);

#[derive(Debug)]
pub(crate) struct MeterCell {
    count: AtomicU64,
    span: Duration,
    /// (time, count) samples, oldest first, reaching back one sample beyond the span.
    history: Mutex<VecDeque<(Instant, u64)>>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new(DEFAULT_METER_SPAN_SECS)
    }
}

impl Meter {
    /// A meter averaging over `span_secs` seconds (at least 1).
    pub fn new(span_secs: u32) -> Self {
        Self::new_at(span_secs, Instant::now())
    }

    pub(crate) fn new_at(span_secs: u32, now: Instant) -> Self {
        let mut history = VecDeque::new();
        history.push_back((now, 0));
        Meter(Arc::new(MeterCell {
            count: AtomicU64::new(0),
            span: Duration::from_secs(span_secs.max(1) as u64),
            history: Mutex::new(history),
        }))
    }

    /// Records `n` events.
    #[inline]
    pub fn mark_event(&self, n: u64) {
        // Saturates at u64::MAX instead of wrapping to zero.
        let c = &self.0.count;
        if n < crate::counter::FAST && c.load(Relaxed) < crate::counter::FAST {
            c.fetch_add(n, Relaxed);
        } else {
            let _ = c.fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_add(n)));
        }
    }

    /// All events recorded so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Relaxed)
    }

    /// The averaging span in seconds.
    pub fn span_secs(&self) -> u32 {
        self.0.span.as_secs() as u32
    }

    /// Events per second over the span, now.
    pub fn rate(&self) -> f64 {
        self.rate_at(Instant::now())
    }

    /// Records a sample of the count if the last one is at least a second old, and forgets
    /// samples no longer needed. Called by the registry's ticker.
    pub fn sample(&self, now: Instant) {
        let count = self.count();
        let mut h = self.0.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.back()
            .is_none_or(|(t, _)| now.saturating_duration_since(*t) >= SAMPLE_EVERY)
        {
            h.push_back((now, count));
        }
        // Keep exactly one sample at or before the span's start.
        while h.len() >= 2 && now.saturating_duration_since(h[1].0) >= self.0.span {
            h.pop_front();
        }
    }

    /// Events per second over the span ending at `now`.
    pub fn rate_at(&self, now: Instant) -> f64 {
        self.sample(now);
        let count = self.count();
        let h = self.0.history.lock().unwrap_or_else(|p| p.into_inner());
        let (t0, c0) = h.front().copied().unwrap_or((now, 0));
        // Over the span, or over a little more when the oldest sample is older (to a second).
        let elapsed = now
            .saturating_duration_since(t0)
            .max(self.0.span)
            .as_secs_f64();
        count.saturating_sub(c0) as f64 / elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_span() {
        let t0 = Instant::now();
        let m = Meter::new_at(10, t0);
        // 100 events per second for 30 s, sampled every second.
        for s in 1..=30u64 {
            m.mark_event(100);
            m.sample(t0 + Duration::from_secs(s));
        }
        let r = m.rate_at(t0 + Duration::from_secs(30));
        assert!((r - 100.0).abs() < 1e-9, "{r}");
        // Then it stops: after 5 s the rate over the last 10 s halves, continuously.
        let r = m.rate_at(t0 + Duration::from_secs(35));
        assert!((r - 50.0).abs() < 1e-9, "{r}");
        let r = m.rate_at(t0 + Duration::from_secs(41));
        assert_eq!(r, 0.0);
        assert_eq!(m.count(), 3000);
    }

    #[test]
    fn a_young_meter_divides_by_its_span_as_flinks_meter_view() {
        let t0 = Instant::now();
        let m = Meter::new_at(60, t0);
        m.mark_event(3);
        let r = m.rate_at(t0 + Duration::from_secs(3));
        assert!((r - 3.0 / 60.0).abs() < 1e-9, "{r}");
        // 60 events a second for 30 s: half the span has data, the rate reads 30/s.
        for s in 1..=30u64 {
            m.mark_event(60);
            m.sample(t0 + Duration::from_secs(3 + s));
        }
        let r = m.rate_at(t0 + Duration::from_secs(33));
        assert!((r - (3.0 + 1800.0) / 60.0).abs() < 1e-9, "{r}");
    }
}
