//! The binary encoding of metric updates sent by a worker process to the engine.
//!
//! A batch holds the definitions of metrics not sent before on this channel (a short id, the
//! kind, the group path, the name, extra labels, a meter's span) and then updates that carry
//! only an id and a payload: a counter delta, a meter's event delta, a distribution delta
//! (count, sum, min, max and bucket counts of the interval) or a gauge value with its
//! timestamp. Deltas make merging exact: the engine adds them, so the totals do not depend on
//! the order or grouping in which batches arrive (see `remote` and the property tests).
//!
//! Layout (all integers LEB128 varints, signed ones zigzag-encoded, floats 8 bytes
//! little-endian, strings a varint length then UTF-8):
//!
//! ```text
//! batch      = "WM" version:u8 flags:u8 ndefs:varint def* nupdates:varint update*
//! def        = id:varint kind:u8 nparts:varint part* name:str nlabels:varint (key:str value:str)* [span:varint if meter]
//! part       = name:str has_value:u8 [value:str]
//! update     = id:varint kind:u8 payload
//! counter    = delta:zigzag
//! meter      = events:varint
//! gauge      = 0 value:zigzag ts_ms:varint | 1 value:f64 ts_ms:varint
//! dist       = count:varint sum_int:zigzag sum_float:f64 min:f64 max:f64 zero:varint buckets(positive) buckets(negative)
//! buckets    = n:varint [first_index:zigzag count:varint (gap:varint count:varint)*]   gap = index - previous - 1
//! ```
//!
//! Decoding checks everything and never panics: a truncated or malformed batch is an error that
//! names the byte offset and what was expected there.

use crate::buckets::{MAX_INDEX, MIN_INDEX};
use crate::distribution::DistributionData;
use crate::error::{MetricsError, Result};
use crate::gauge::GaugeValue;
use crate::snapshot::MetricKind;

/// Version written in every batch; a decoder refuses other versions.
pub const PROTOCOL_VERSION: u8 = 1;
const MAGIC: &[u8; 2] = b"WM";
const MAX_STR: usize = 4096;

/// One step of a group path: `add_group(name)` or `add_group(name, value)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathPart {
    pub name: String,
    pub value: Option<String>,
}

/// A metric as defined once per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub id: u32,
    pub kind: MetricKind,
    pub path: Vec<PathPart>,
    pub name: String,
    /// Labels beyond those the path implies.
    pub labels: Vec<(String, String)>,
    /// Time span of a meter (0 for other kinds).
    pub meter_span_secs: u32,
}

/// The change of one metric since the previous batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Counter(i64),
    Meter(u64),
    Gauge {
        value: GaugeValue,
        timestamp_ms: u64,
    },
    Distribution(DistributionData),
}

impl Payload {
    /// The kind of metric this payload belongs to.
    pub fn kind(&self) -> MetricKind {
        match self {
            Payload::Counter(_) => MetricKind::Counter,
            Payload::Meter(_) => MetricKind::Meter,
            Payload::Gauge { .. } => MetricKind::Gauge,
            Payload::Distribution(_) => MetricKind::Distribution,
        }
    }
}

/// An update of one defined metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub id: u32,
    pub payload: Payload,
}

/// What a worker sends at the end of a bundle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateBatch {
    pub definitions: Vec<Definition>,
    pub updates: Vec<Update>,
    /// Series the worker did not register because their family reached its cardinality limit:
    /// `(family, how many registrations were refused)` since the last batch. The engine adds
    /// them to `weir_metrics_series_dropped_total`, so drops in a worker are counted too.
    pub dropped: Vec<(String, u64)>,
}

/// Flag bit: a section of dropped-series counts follows the updates.
const FLAG_DROPPED: u8 = 1;

impl UpdateBatch {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty() && self.updates.is_empty() && self.dropped.is_empty()
    }

    /// Encodes into `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(if self.dropped.is_empty() {
            0
        } else {
            FLAG_DROPPED
        });
        put_varint(out, self.definitions.len() as u64);
        for d in &self.definitions {
            put_varint(out, d.id as u64);
            out.push(kind_tag(d.kind));
            put_varint(out, d.path.len() as u64);
            for p in &d.path {
                put_str(out, &p.name);
                match &p.value {
                    Some(v) => {
                        out.push(1);
                        put_str(out, v);
                    }
                    None => out.push(0),
                }
            }
            put_str(out, &d.name);
            put_varint(out, d.labels.len() as u64);
            for (k, v) in &d.labels {
                put_str(out, k);
                put_str(out, v);
            }
            if d.kind == MetricKind::Meter {
                put_varint(out, d.meter_span_secs as u64);
            }
        }
        put_varint(out, self.updates.len() as u64);
        for u in &self.updates {
            put_varint(out, u.id as u64);
            out.push(kind_tag(u.payload.kind()));
            match &u.payload {
                Payload::Counter(d) => put_zigzag(out, *d),
                Payload::Meter(n) => put_varint(out, *n),
                Payload::Gauge {
                    value,
                    timestamp_ms,
                } => {
                    match value {
                        GaugeValue::Int(i) => {
                            out.push(0);
                            put_zigzag(out, *i);
                        }
                        GaugeValue::Float(f) => {
                            out.push(1);
                            out.extend_from_slice(&f.to_le_bytes());
                        }
                    }
                    put_varint(out, *timestamp_ms);
                }
                Payload::Distribution(d) => {
                    put_varint(out, d.count);
                    put_zigzag(out, d.sum_int);
                    out.extend_from_slice(&d.sum_float.to_le_bytes());
                    out.extend_from_slice(&d.min.to_le_bytes());
                    out.extend_from_slice(&d.max.to_le_bytes());
                    put_varint(out, d.zero);
                    put_buckets(out, &d.positive);
                    put_buckets(out, &d.negative);
                }
            }
        }
        if !self.dropped.is_empty() {
            put_varint(out, self.dropped.len() as u64);
            for (family, n) in &self.dropped {
                put_str(out, family);
                put_varint(out, *n);
            }
        }
    }

    /// Encodes into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Decodes a batch, checking every field.
    pub fn decode(bytes: &[u8]) -> Result<UpdateBatch> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let magic = r.take(2, "the magic bytes \"WM\"")?;
        if magic != MAGIC {
            return Err(r.err_at(
                0,
                format!("expected the magic bytes \"WM\", found {magic:02x?}"),
            ));
        }
        let version = r.u8("the protocol version")?;
        if version != PROTOCOL_VERSION {
            return Err(r.err_at(
                2,
                format!("protocol version {version} is not supported (this engine speaks {PROTOCOL_VERSION})"),
            ));
        }
        let flags = r.u8("the flags byte")?;
        if flags & !FLAG_DROPPED != 0 {
            return Err(r.err_at(3, format!("unknown flags {flags:#04x}")));
        }
        let ndefs = r.count("the number of definitions")?;
        let mut definitions = Vec::with_capacity(ndefs);
        for _ in 0..ndefs {
            let id = r.id()?;
            let kind = r.kind()?;
            let nparts = r.count("the number of group path parts")?;
            let mut path = Vec::with_capacity(nparts);
            for _ in 0..nparts {
                let name = r.str("a group name")?;
                let value = match r.u8("a key group marker")? {
                    0 => None,
                    1 => Some(r.str("a key group value")?),
                    b => {
                        return Err(
                            r.err_back(1, format!("key group marker must be 0 or 1, found {b}"))
                        )
                    }
                };
                path.push(PathPart { name, value });
            }
            let name = r.str("a metric name")?;
            let nlabels = r.count("the number of labels")?;
            let mut labels = Vec::with_capacity(nlabels);
            for _ in 0..nlabels {
                labels.push((r.str("a label key")?, r.str("a label value")?));
            }
            let meter_span_secs = if kind == MetricKind::Meter {
                let s = r.varint("a meter time span")?;
                u32::try_from(s).ok().filter(|s| *s > 0).ok_or_else(|| {
                    r.err_back(1, format!("meter time span {s} s is out of range"))
                })?
            } else {
                0
            };
            definitions.push(Definition {
                id,
                kind,
                path,
                name,
                labels,
                meter_span_secs,
            });
        }
        let nupdates = r.count("the number of updates")?;
        let mut updates = Vec::with_capacity(nupdates);
        for _ in 0..nupdates {
            let id = r.id()?;
            let payload = match r.kind()? {
                MetricKind::Counter => Payload::Counter(r.zigzag("a counter delta")?),
                MetricKind::Meter => Payload::Meter(r.varint("a meter event count")?),
                MetricKind::Gauge => {
                    let value = match r.u8("a gauge value type")? {
                        0 => GaugeValue::Int(r.zigzag("an integer gauge value")?),
                        1 => GaugeValue::Float(r.f64("a float gauge value")?),
                        b => {
                            return Err(r.err_back(
                                1,
                                format!("gauge value type must be 0 or 1, found {b}"),
                            ))
                        }
                    };
                    Payload::Gauge {
                        value,
                        timestamp_ms: r.varint("a gauge timestamp")?,
                    }
                }
                MetricKind::Distribution => Payload::Distribution(r.distribution()?),
            };
            updates.push(Update { id, payload });
        }
        let mut dropped = Vec::new();
        if flags & FLAG_DROPPED != 0 {
            let n = r.count("the number of dropped-series counts")?;
            for _ in 0..n {
                let family = r.str("a metric family name")?;
                dropped.push((family, r.varint("a dropped-series count")?));
            }
        }
        if r.pos != bytes.len() {
            return Err(r.err_at(
                r.pos,
                format!("{} bytes after the end of the batch", bytes.len() - r.pos),
            ));
        }
        Ok(UpdateBatch {
            definitions,
            updates,
            dropped,
        })
    }
}

fn kind_tag(k: MetricKind) -> u8 {
    match k {
        MetricKind::Counter => 1,
        MetricKind::Gauge => 2,
        MetricKind::Meter => 3,
        MetricKind::Distribution => 4,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_buckets(out: &mut Vec<u8>, b: &[(i32, u64)]) {
    put_varint(out, b.len() as u64);
    let mut prev: Option<i32> = None;
    for &(i, c) in b {
        match prev {
            None => put_zigzag(out, i as i64),
            Some(p) => put_varint(out, (i as i64 - p as i64 - 1) as u64),
        }
        put_varint(out, c);
        prev = Some(i);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err_at(&self, offset: usize, detail: String) -> MetricsError {
        MetricsError::Decode { offset, detail }
    }

    fn err_back(&self, back: usize, detail: String) -> MetricsError {
        self.err_at(self.pos.saturating_sub(back), detail)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(self.err_at(
                self.pos,
                format!(
                    "truncated: expected {what} ({n} bytes), {} left",
                    self.buf.len() - self.pos
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn varint(&mut self, what: &str) -> Result<u64> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err_at(start, format!("truncated: expected {what}")));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                break;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err_at(
            start,
            format!("{what} is not a valid varint (longer than 64 bits)"),
        ))
    }

    fn zigzag(&mut self, what: &str) -> Result<i64> {
        let v = self.varint(what)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn f64(&mut self, what: &str) -> Result<f64> {
        let b = self.take(8, what)?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A count of following elements, each at least one byte: more than the bytes left is an
    /// error (and never a huge allocation).
    fn count(&mut self, what: &str) -> Result<usize> {
        let n = self.varint(what)?;
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(self.err_back(1, format!("{what} is {n}, more than the {left} bytes left")));
        }
        Ok(n as usize)
    }

    fn id(&mut self) -> Result<u32> {
        let v = self.varint("a metric id")?;
        u32::try_from(v)
            .map_err(|_| self.err_back(1, format!("metric id {v} does not fit 32 bits")))
    }

    fn kind(&mut self) -> Result<MetricKind> {
        Ok(match self.u8("a metric kind")? {
            1 => MetricKind::Counter,
            2 => MetricKind::Gauge,
            3 => MetricKind::Meter,
            4 => MetricKind::Distribution,
            b => return Err(self.err_back(1, format!("unknown metric kind {b} (expected 1 to 4)"))),
        })
    }

    fn str(&mut self, what: &str) -> Result<String> {
        let start = self.pos;
        let n = self.varint(what)? as usize;
        if n > MAX_STR {
            return Err(self.err_at(
                start,
                format!("{what} is {n} bytes long, the limit is {MAX_STR}"),
            ));
        }
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| self.err_at(start, format!("{what} is not valid UTF-8")))
    }

    fn buckets(&mut self, what: &str) -> Result<Vec<(i32, u64)>> {
        let n = self.count(what)?;
        let mut out = Vec::with_capacity(n);
        let mut prev: Option<i64> = None;
        for _ in 0..n {
            let start = self.pos;
            let index = match prev {
                None => self.zigzag("a bucket index")?,
                Some(p) => p
                    .checked_add(self.varint("a bucket index gap")? as i64)
                    .and_then(|x| x.checked_add(1))
                    .unwrap_or(i64::MAX),
            };
            if !(MIN_INDEX as i64..=MAX_INDEX as i64).contains(&index) {
                return Err(self.err_at(
                    start,
                    format!("bucket index {index} is outside {MIN_INDEX}..={MAX_INDEX}"),
                ));
            }
            let count = self.varint("a bucket count")?;
            if count == 0 {
                return Err(self.err_back(1, "a bucket count of 0 is not allowed".into()));
            }
            out.push((index as i32, count));
            prev = Some(index);
        }
        Ok(out)
    }

    fn distribution(&mut self) -> Result<DistributionData> {
        let start = self.pos;
        let d = DistributionData {
            count: self.varint("a distribution count")?,
            sum_int: self.zigzag("a distribution integer sum")?,
            sum_float: self.f64("a distribution float sum")?,
            min: self.f64("a distribution minimum")?,
            max: self.f64("a distribution maximum")?,
            zero: self.varint("a distribution zero count")?,
            positive: self.buckets("the number of positive buckets")?,
            negative: self.buckets("the number of negative buckets")?,
        };
        let in_buckets = d
            .positive
            .iter()
            .chain(&d.negative)
            .try_fold(d.zero, |acc, b| acc.checked_add(b.1));
        if in_buckets != Some(d.count) {
            return Err(self.err_at(
                start,
                format!(
                    "distribution count {} does not match its buckets ({in_buckets:?})",
                    d.count
                ),
            ));
        }
        // A sum may overflow to an infinity (values near f64::MAX): exported as `+Inf`.
        // NaN is never the sum of finite values.
        if d.sum_float.is_nan() {
            return Err(self.err_at(
                start,
                format!("distribution float sum {} is not a number", d.sum_float),
            ));
        }
        if d.count > 0 && !(d.min.is_finite() && d.max.is_finite() && d.min <= d.max) {
            return Err(self.err_at(
                start,
                format!(
                    "distribution min {} / max {} are not finite and ordered",
                    d.min, d.max
                ),
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_batch() -> UpdateBatch {
        UpdateBatch {
            definitions: vec![
                Definition {
                    id: 0,
                    kind: MetricKind::Counter,
                    path: vec![PathPart {
                        name: "my_group".into(),
                        value: None,
                    }],
                    name: "rows".into(),
                    labels: vec![],
                    meter_span_secs: 0,
                },
                Definition {
                    id: 1,
                    kind: MetricKind::Meter,
                    path: vec![PathPart {
                        name: "country".into(),
                        value: Some("fr".into()),
                    }],
                    name: "events".into(),
                    labels: vec![("udf".into(), "score".into())],
                    meter_span_secs: 60,
                },
            ],
            updates: vec![
                Update {
                    id: 0,
                    payload: Payload::Counter(-2),
                },
                Update {
                    id: 1,
                    payload: Payload::Meter(3),
                },
                Update {
                    id: 2,
                    payload: Payload::Gauge {
                        value: GaugeValue::Float(0.5),
                        timestamp_ms: 1_700_000_000_000,
                    },
                },
                Update {
                    id: 3,
                    payload: Payload::Distribution(DistributionData {
                        count: 3,
                        sum_int: 12,
                        sum_float: 0.5,
                        min: -1.0,
                        max: 10.5,
                        zero: 0,
                        positive: vec![(-5, 1), (300, 1)],
                        negative: vec![(-1, 1)],
                    }),
                },
            ],
            dropped: vec![("weir_user_ids_c".into(), 3)],
        }
    }

    #[test]
    fn round_trip() {
        let b = sample_batch();
        let bytes = b.encode();
        assert_eq!(UpdateBatch::decode(&bytes).unwrap(), b);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample_batch().encode();
        for n in 0..bytes.len() {
            let e = UpdateBatch::decode(&bytes[..n]).unwrap_err();
            assert!(matches!(e, MetricsError::Decode { .. }), "{n}: {e}");
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let mut bytes = sample_batch().encode();
        bytes[2] = 9;
        let e = UpdateBatch::decode(&bytes).unwrap_err().to_string();
        assert_eq!(e, "malformed metric update batch at byte 2: protocol version 9 is not supported (this engine speaks 1)");
        let e = UpdateBatch::decode(b"WM\x01\x00\x05")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the number of definitions is 5, more than the 0 bytes left"),
            "{e}"
        );
        let mut bytes = sample_batch().encode();
        bytes.push(0);
        let e = UpdateBatch::decode(&bytes).unwrap_err().to_string();
        assert!(e.contains("1 bytes after the end"), "{e}");
    }

    #[test]
    fn inconsistent_distribution_is_refused() {
        let mut b = sample_batch();
        if let Payload::Distribution(d) = &mut b.updates[3].payload {
            d.count = 4;
        }
        let e = UpdateBatch::decode(&b.encode()).unwrap_err().to_string();
        assert!(
            e.contains("distribution count 4 does not match its buckets"),
            "{e}"
        );
    }
}
