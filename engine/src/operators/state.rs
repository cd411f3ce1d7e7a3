//! Aggregation state: a table from group keys to dense group ids, and accumulators that keep
//! one slot per group in flat vectors (updated a column at a time, not a row at a time).
//!
//! Accumulators take retractions (`-U`/`-D` rows subtract) so aggregates over updating input
//! stay exact; MIN and MAX then keep a count per value. Group ids are reused after a group
//! is emitted and freed (windows), so state stays bounded by what is live.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Decimal128Array, Float64Array, Int64Array, UInt32Array};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::DataType;

use super::arrow;
use crate::error::{EngineError, Result};
use crate::expr::AggFunc;
use crate::types::type_name;

/// Hash builder with a fixed seed: the same key goes to the same subtask in every process.
pub fn fixed_hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x5745_4952)
}

/// Hash of one encoded row.
pub fn hash_bytes(b: &[u8]) -> u64 {
    fixed_hasher().hash_one(b)
}

/// Maps group keys (encoded rows) to dense ids, reusing freed ids.
pub struct GroupTable {
    map: HashMap<Box<[u8]>, u32, foldhash::fast::FixedState>,
    keys: Vec<Box<[u8]>>,
    free: Vec<u32>,
}

impl Default for GroupTable {
    fn default() -> Self {
        Self {
            map: HashMap::with_hasher(fixed_hasher()),
            keys: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl GroupTable {
    /// The id of `key`, and whether it is new.
    #[inline]
    pub fn intern(&mut self, key: &[u8]) -> (u32, bool) {
        if let Some(g) = self.map.get(key) {
            return (*g, false);
        }
        let boxed: Box<[u8]> = key.into();
        let id = match self.free.pop() {
            Some(id) => {
                self.keys[id as usize] = boxed.clone();
                id
            }
            None => {
                self.keys.push(boxed.clone());
                (self.keys.len() - 1) as u32
            }
        };
        self.map.insert(boxed, id);
        (id, true)
    }

    /// The id of `key` if it is live.
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        self.map.get(key).copied()
    }

    /// The key of a live id.
    pub fn key(&self, id: u32) -> &[u8] {
        &self.keys[id as usize]
    }

    /// Forgets a group; its id will be reused.
    pub fn remove(&mut self, id: u32) {
        let key = std::mem::take(&mut self.keys[id as usize]);
        self.map.remove(&key);
        self.free.push(id);
    }

    /// Live groups.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no group is live.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Slots to allocate in accumulators (live and free ids).
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }
}

/// One aggregate's state for every group.
pub trait Accumulator: Send {
    /// Makes room for ids below `n`.
    fn resize(&mut self, n: usize);
    /// Adds (sign +1) or retracts (sign -1) each row's value into its group. `values` is
    /// `None` for `COUNT(*)`.
    fn update(
        &mut self,
        values: Option<&ArrayRef>,
        groups: &[u32],
        signs: Option<&[i8]>,
    ) -> Result<()>;
    /// The results of these groups, as one column.
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef>;
    /// Folds `src` into `dst` (session windows merging).
    fn merge(&mut self, dst: u32, src: u32);
    /// Clears a group's slot.
    fn reset(&mut self, group: u32);
    /// The state of a function computed out of process, if this is one.
    fn as_external(&mut self) -> Option<&mut super::udaf::ExternalAcc> {
        None
    }
}

/// What is being summed: integers exactly, floats, or decimals exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
enum NumKind {
    Int,
    Float,
    Decimal,
}

fn num_kind(t: &DataType) -> Option<NumKind> {
    if t.is_integer() || *t == DataType::Null {
        Some(NumKind::Int)
    } else if t.is_floating() {
        Some(NumKind::Float)
    } else if matches!(t, DataType::Decimal128(..)) {
        Some(NumKind::Decimal)
    } else {
        None
    }
}

/// The output type of `func` over `input` (Flink's rules: SUM, MIN, MAX and AVG keep the
/// input's type; COUNT is BIGINT), or why it cannot be computed.
pub fn result_type(
    func: AggFunc,
    input: Option<&DataType>,
) -> std::result::Result<DataType, String> {
    let Some(t) = input else {
        return Ok(DataType::Int64);
    };
    match func {
        AggFunc::Count => Ok(DataType::Int64),
        AggFunc::Udf => Err("a user-defined aggregate declares its result type".into()),
        AggFunc::Sum | AggFunc::Avg => match num_kind(t) {
            Some(_) if *t == DataType::Null => Ok(DataType::Int32),
            Some(_) => Ok(t.clone()),
            None => Err(format!(
                "{} needs a numeric argument, not {}",
                func.name(),
                type_name(t)
            )),
        },
        AggFunc::Min | AggFunc::Max => {
            if matches!(
                t,
                DataType::Map(..) | DataType::List(_) | DataType::Struct(_)
            ) {
                Err(format!(
                    "{} cannot order values of {}",
                    func.name(),
                    type_name(t)
                ))
            } else {
                Ok(t.clone())
            }
        }
    }
}

/// A new accumulator for `func` on `input` values with output type `output`.
pub fn new_accumulator(
    func: AggFunc,
    input: Option<&DataType>,
    output: &DataType,
    distinct: bool,
) -> Result<Box<dyn Accumulator>> {
    if distinct {
        if func != AggFunc::Count {
            return Err(EngineError::Plan {
                expr: format!("{}(DISTINCT ...)", func.name()),
                detail: "only COUNT takes DISTINCT so far".into(),
            });
        }
        let t = input.cloned().unwrap_or(DataType::Int64);
        return Ok(Box::new(CountDistinct::new(t)?));
    }
    Ok(match (func, input) {
        // A pandas aggregate has its arguments as one ROW to buffer; the other kind none.
        (AggFunc::Udf, input) => Box::new(super::udaf::ExternalAcc::new(
            "UDAF",
            output,
            input.is_some(),
        )?),
        (AggFunc::Count, _) => Box::new(Count::default()),
        (AggFunc::Sum | AggFunc::Avg, Some(t)) => {
            let kind = num_kind(t).unwrap_or(NumKind::Int);
            Box::new(SumAvg {
                kind,
                avg: func == AggFunc::Avg,
                output: output.clone(),
                ints: Vec::new(),
                floats: Vec::new(),
                decs: Vec::new(),
                counts: Vec::new(),
            })
        }
        (AggFunc::Min | AggFunc::Max, Some(t)) => {
            Box::new(MinMax::new(func == AggFunc::Max, t.clone())?)
        }
        (f, None) => {
            return Err(EngineError::Plan {
                expr: format!("{}(*)", f.name()),
                detail: "only COUNT takes *".into(),
            })
        }
    })
}

#[inline]
fn sign_at(signs: Option<&[i8]>, i: usize) -> i64 {
    match signs {
        None => 1,
        Some(s) => s[i] as i64,
    }
}

/// Adds `sign` to the count of `key`, forgetting keys whose count drops to zero.
fn add_count<M: CountMap>(m: &mut M, key: &[u8], sign: i64) {
    match m.count_mut(key) {
        Some(c) => {
            *c += sign;
            if *c <= 0 {
                m.forget(key);
            }
        }
        None if sign > 0 => m.put(key, sign),
        None => {}
    }
}

/// The maps of value counts MIN/MAX and COUNT DISTINCT keep.
trait CountMap {
    fn count_mut(&mut self, key: &[u8]) -> Option<&mut i64>;
    fn forget(&mut self, key: &[u8]);
    fn put(&mut self, key: &[u8], count: i64);
}

impl CountMap for BTreeMap<Box<[u8]>, i64> {
    fn count_mut(&mut self, key: &[u8]) -> Option<&mut i64> {
        self.get_mut(key)
    }
    fn forget(&mut self, key: &[u8]) {
        self.remove(key);
    }
    fn put(&mut self, key: &[u8], count: i64) {
        self.insert(key.into(), count);
    }
}

impl CountMap for HashMap<Box<[u8]>, i64, foldhash::fast::FixedState> {
    fn count_mut(&mut self, key: &[u8]) -> Option<&mut i64> {
        self.get_mut(key)
    }
    fn forget(&mut self, key: &[u8]) {
        self.remove(key);
    }
    fn put(&mut self, key: &[u8], count: i64) {
        self.insert(key.into(), count);
    }
}

/// `COUNT(*)` and `COUNT(x)` (non-NULL values).
#[derive(Default)]
struct Count {
    counts: Vec<i64>,
}

impl Accumulator for Count {
    fn resize(&mut self, n: usize) {
        self.counts.resize(n, 0);
    }
    fn update(
        &mut self,
        values: Option<&ArrayRef>,
        groups: &[u32],
        signs: Option<&[i8]>,
    ) -> Result<()> {
        match values.filter(|v| v.null_count() > 0) {
            None => {
                for (i, g) in groups.iter().enumerate() {
                    self.counts[*g as usize] += sign_at(signs, i);
                }
            }
            Some(v) => {
                for (i, g) in groups.iter().enumerate() {
                    if v.is_valid(i) {
                        self.counts[*g as usize] += sign_at(signs, i);
                    }
                }
            }
        }
        Ok(())
    }
    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|g| self.counts[*g as usize]),
        )))
    }
    fn merge(&mut self, dst: u32, src: u32) {
        self.counts[dst as usize] += self.counts[src as usize];
    }
    fn reset(&mut self, group: u32) {
        self.counts[group as usize] = 0;
    }
}

/// SUM and AVG: a running sum and a count of non-NULL values per group.
struct SumAvg {
    kind: NumKind,
    avg: bool,
    output: DataType,
    ints: Vec<i64>,
    floats: Vec<f64>,
    decs: Vec<i128>,
    counts: Vec<i64>,
}

impl Accumulator for SumAvg {
    fn resize(&mut self, n: usize) {
        self.counts.resize(n, 0);
        match self.kind {
            NumKind::Int => self.ints.resize(n, 0),
            NumKind::Float => self.floats.resize(n, 0.0),
            NumKind::Decimal => self.decs.resize(n, 0),
        }
    }

    fn update(
        &mut self,
        values: Option<&ArrayRef>,
        groups: &[u32],
        signs: Option<&[i8]>,
    ) -> Result<()> {
        let Some(v) = values else { return Ok(()) };
        if v.data_type() == &DataType::Null {
            return Ok(());
        }
        let nulls = v.null_count() > 0;
        match self.kind {
            NumKind::Int => {
                let a = arrow_cast::cast(v, &DataType::Int64).map_err(arrow("SUM"))?;
                let a = a.as_primitive::<Int64Type>();
                let vals = a.values();
                for (i, g) in groups.iter().enumerate() {
                    if nulls && a.is_null(i) {
                        continue;
                    }
                    let s = sign_at(signs, i);
                    let g = *g as usize;
                    self.ints[g] = self.ints[g].wrapping_add(vals[i].wrapping_mul(s));
                    self.counts[g] += s;
                }
            }
            NumKind::Float => {
                let a = arrow_cast::cast(v, &DataType::Float64).map_err(arrow("SUM"))?;
                let a = a.as_primitive::<Float64Type>();
                let vals = a.values();
                for (i, g) in groups.iter().enumerate() {
                    if nulls && a.is_null(i) {
                        continue;
                    }
                    let s = sign_at(signs, i);
                    let g = *g as usize;
                    self.floats[g] += vals[i] * s as f64;
                    self.counts[g] += s;
                }
            }
            NumKind::Decimal => {
                let a = v.as_primitive::<Decimal128Type>();
                let vals = a.values();
                for (i, g) in groups.iter().enumerate() {
                    if nulls && a.is_null(i) {
                        continue;
                    }
                    let s = sign_at(signs, i);
                    let g = *g as usize;
                    self.decs[g] += vals[i] * s as i128;
                    self.counts[g] += s;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let valid = |g: &u32| self.counts[*g as usize] > 0;
        let out: ArrayRef = match self.kind {
            NumKind::Int => Arc::new(
                groups
                    .iter()
                    .map(|g| {
                        valid(g).then(|| {
                            let s = self.ints[*g as usize];
                            if self.avg {
                                s / self.counts[*g as usize]
                            } else {
                                s
                            }
                        })
                    })
                    .collect::<Int64Array>(),
            ),
            NumKind::Float => Arc::new(
                groups
                    .iter()
                    .map(|g| {
                        valid(g).then(|| {
                            let s = self.floats[*g as usize];
                            if self.avg {
                                s / self.counts[*g as usize] as f64
                            } else {
                                s
                            }
                        })
                    })
                    .collect::<Float64Array>(),
            ),
            NumKind::Decimal => {
                let (p, s) = match self.output {
                    DataType::Decimal128(p, s) => (p, s),
                    _ => (38, 0),
                };
                let a: Decimal128Array = groups
                    .iter()
                    .map(|g| {
                        valid(g).then(|| {
                            let v = self.decs[*g as usize];
                            if self.avg {
                                v / self.counts[*g as usize] as i128
                            } else {
                                v
                            }
                        })
                    })
                    .collect();
                Arc::new(a.with_precision_and_scale(p, s).map_err(arrow("SUM"))?)
            }
        };
        if out.data_type() == &self.output {
            return Ok(out);
        }
        arrow_cast::cast(&out, &self.output).map_err(arrow("SUM result"))
    }

    fn merge(&mut self, dst: u32, src: u32) {
        let (d, s) = (dst as usize, src as usize);
        self.counts[d] += self.counts[s];
        match self.kind {
            NumKind::Int => self.ints[d] = self.ints[d].wrapping_add(self.ints[s]),
            NumKind::Float => self.floats[d] += self.floats[s],
            NumKind::Decimal => self.decs[d] += self.decs[s],
        }
    }

    fn reset(&mut self, group: u32) {
        let g = group as usize;
        self.counts[g] = 0;
        match self.kind {
            NumKind::Int => self.ints[g] = 0,
            NumKind::Float => self.floats[g] = 0.0,
            NumKind::Decimal => self.decs[g] = 0,
        }
    }
}

/// MIN and MAX of any orderable type, through arrow-row's order-preserving encoding; each
/// group keeps a count per value so retractions are exact.
struct MinMax {
    max: bool,
    converter: RowConverter,
    values: Vec<BTreeMap<Box<[u8]>, i64>>,
}

impl MinMax {
    fn new(max: bool, t: DataType) -> Result<Self> {
        Ok(Self {
            max,
            converter: RowConverter::new(vec![SortField::new(t)]).map_err(arrow("MIN/MAX"))?,
            values: Vec::new(),
        })
    }
}

impl Accumulator for MinMax {
    fn resize(&mut self, n: usize) {
        self.values.resize_with(n, BTreeMap::new);
    }

    fn update(
        &mut self,
        values: Option<&ArrayRef>,
        groups: &[u32],
        signs: Option<&[i8]>,
    ) -> Result<()> {
        let Some(v) = values else { return Ok(()) };
        let rows = self
            .converter
            .convert_columns(std::slice::from_ref(v))
            .map_err(arrow("MIN/MAX"))?;
        for (i, g) in groups.iter().enumerate() {
            if v.is_null(i) {
                continue;
            }
            let s = sign_at(signs, i);
            let m = &mut self.values[*g as usize];
            let bytes = rows.row(i);
            let bytes: &[u8] = bytes.as_ref();
            if s > 0 && signs.is_none() {
                // Insert-only input keeps just the best value.
                let best = if self.max {
                    m.keys().next_back()
                } else {
                    m.keys().next()
                };
                let better = match best {
                    None => true,
                    Some(k) if self.max => bytes > &**k,
                    Some(k) => bytes < &**k,
                };
                if better {
                    m.clear();
                    m.insert(bytes.into(), 1);
                }
                continue;
            }
            add_count(m, bytes, s);
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        let parser = self.converter.parser();
        let mut rows: Vec<Option<arrow_row::Row<'_>>> = Vec::with_capacity(groups.len());
        for g in groups {
            let m = &self.values[*g as usize];
            let best = if self.max {
                m.keys().next_back()
            } else {
                m.keys().next()
            };
            rows.push(best.map(|b| parser.parse(b)));
        }
        // Rows for NULL results: convert the present ones, then spread them out.
        let present: Vec<arrow_row::Row<'_>> = rows.iter().flatten().copied().collect();
        let cols = self
            .converter
            .convert_rows(present)
            .map_err(arrow("MIN/MAX result"))?;
        let col = cols
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::Execution("MIN/MAX produced no column".into()))?;
        if rows.iter().all(Option::is_some) {
            return Ok(col);
        }
        let mut next = 0u32;
        let idx: UInt32Array = rows
            .iter()
            .map(|r| {
                r.map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        arrow_select::take::take(&col, &idx, None).map_err(arrow("MIN/MAX result"))
    }

    fn merge(&mut self, dst: u32, src: u32) {
        let src = std::mem::take(&mut self.values[src as usize]);
        let d = &mut self.values[dst as usize];
        for (k, c) in src {
            *d.entry(k).or_insert(0) += c;
        }
    }

    fn reset(&mut self, group: u32) {
        self.values[group as usize].clear();
    }
}

/// `COUNT(DISTINCT x)`: a count per distinct value per group.
struct CountDistinct {
    converter: RowConverter,
    seen: Vec<HashMap<Box<[u8]>, i64, foldhash::fast::FixedState>>,
}

impl CountDistinct {
    fn new(t: DataType) -> Result<Self> {
        Ok(Self {
            converter: RowConverter::new(vec![SortField::new(t)])
                .map_err(arrow("COUNT DISTINCT"))?,
            seen: Vec::new(),
        })
    }
}

impl Accumulator for CountDistinct {
    fn resize(&mut self, n: usize) {
        self.seen
            .resize_with(n, || HashMap::with_hasher(fixed_hasher()));
    }

    fn update(
        &mut self,
        values: Option<&ArrayRef>,
        groups: &[u32],
        signs: Option<&[i8]>,
    ) -> Result<()> {
        let Some(v) = values else { return Ok(()) };
        let rows: Rows = self
            .converter
            .convert_columns(std::slice::from_ref(v))
            .map_err(arrow("COUNT DISTINCT"))?;
        for (i, g) in groups.iter().enumerate() {
            if v.is_null(i) {
                continue;
            }
            let s = sign_at(signs, i);
            let m = &mut self.seen[*g as usize];
            let key = rows.row(i);
            let key: &[u8] = key.as_ref();
            add_count(m, key, s);
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[u32]) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|g| self.seen[*g as usize].len() as i64),
        )))
    }

    fn merge(&mut self, dst: u32, src: u32) {
        let src = std::mem::take(&mut self.seen[src as usize]);
        let d = &mut self.seen[dst as usize];
        for (k, c) in src {
            *d.entry(k).or_insert(0) += c;
        }
    }

    fn reset(&mut self, group: u32) {
        self.seen[group as usize].clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn accumulators_add_and_retract() {
        let v: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), Some(3), None, Some(9)]));
        let groups = [0u32, 0, 0, 1];
        for (func, want) in [
            (AggFunc::Count, "[2, 1]"),
            (AggFunc::Sum, "[8, 9]"),
            (AggFunc::Min, "[3, 9]"),
            (AggFunc::Max, "[5, 9]"),
            (AggFunc::Avg, "[4, 9]"),
        ] {
            let t = result_type(func, Some(&DataType::Int64)).unwrap();
            let mut acc = new_accumulator(func, Some(&DataType::Int64), &t, false).unwrap();
            acc.resize(2);
            acc.update(Some(&v), &groups, None).unwrap();
            let out = acc.evaluate(&[0, 1]).unwrap();
            let got = format!(
                "{:?}",
                arrow_cast::cast(&out, &DataType::Int64)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            );
            assert_eq!(got, want, "{func:?}");
        }
        // Retracting the 3 from group 0 leaves MIN 5 (MIN keeps every value it saw).
        let mut acc = new_accumulator(
            AggFunc::Min,
            Some(&DataType::Int64),
            &DataType::Int64,
            false,
        )
        .unwrap();
        acc.resize(1);
        let signs = [1i8, 1, 1];
        let v: ArrayRef = Arc::new(Int64Array::from(vec![5, 3, 7]));
        acc.update(Some(&v), &[0, 0, 0], Some(&signs)).unwrap();
        let r: ArrayRef = Arc::new(Int64Array::from(vec![3]));
        acc.update(Some(&r), &[0], Some(&[-1])).unwrap();
        let out = acc.evaluate(&[0]).unwrap();
        assert_eq!(out.as_primitive::<Int64Type>().value(0), 5);
    }

    #[test]
    fn count_distinct_and_string_max_and_empty_groups() {
        let v: ArrayRef = Arc::new(StringArray::from(vec!["b", "a", "b", "c"]));
        let mut cd = new_accumulator(
            AggFunc::Count,
            Some(&DataType::Utf8),
            &DataType::Int64,
            true,
        )
        .unwrap();
        cd.resize(2);
        cd.update(Some(&v), &[0, 0, 0, 1], None).unwrap();
        assert_eq!(
            cd.evaluate(&[0, 1])
                .unwrap()
                .as_primitive::<Int64Type>()
                .values(),
            &[2, 1]
        );
        let mut mx =
            new_accumulator(AggFunc::Max, Some(&DataType::Utf8), &DataType::Utf8, false).unwrap();
        mx.resize(3);
        mx.update(Some(&v), &[0, 0, 0, 1], None).unwrap();
        let out = mx.evaluate(&[0, 2, 1]).unwrap();
        let out: Vec<_> = out.as_string::<i32>().iter().collect();
        assert_eq!(out, [Some("b"), None, Some("c")]);
    }

    #[test]
    fn group_ids_are_reused() {
        let mut t = GroupTable::default();
        assert_eq!(t.intern(b"a"), (0, true));
        assert_eq!(t.intern(b"b"), (1, true));
        assert_eq!(t.intern(b"a"), (0, false));
        t.remove(0);
        assert_eq!(t.get(b"a"), None);
        assert_eq!(t.intern(b"c"), (0, true));
        assert_eq!(t.key(0), b"c");
        assert_eq!((t.len(), t.capacity()), (2, 2));
    }
}
