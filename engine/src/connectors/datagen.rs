//! The `datagen` connector: generated rows, as Flink's `'connector' = 'datagen'`.
//!
//! Options (Flink's names): `rows-per-second` (default 10000 as in Flink; `0` means no limit),
//! `number-of-rows` (unbounded when absent), and per field `fields.<name>.kind` = `sequence`
//! (with `.start`, `.end`; integer types) or `random` (with `.min`, `.max` for numbers,
//! `.length` for strings; the default). A bad option fails before the job starts, naming the
//! table and the option.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};

use crate::error::{EngineError, Result};
use crate::runtime::{Source, SourceFactory};
use crate::types::type_name;

enum FieldGen {
    Sequence { next: i64, end: i64 },
    Random { min: f64, max: f64, length: usize },
}

/// A source of generated batches.
pub struct Datagen {
    table: String,
    schema: SchemaRef,
    fields: Vec<FieldGen>,
    /// Rows per second; 0 = unlimited.
    pub rows_per_second: u64,
    remaining: Option<u64>,
    rng: u64,
}

/// Longest random string or byte string (`fields.#.length`): a batch holds thousands of them.
pub const MAX_LENGTH: usize = 1 << 20;

fn option_err(table: &str, key: &str, detail: impl Into<String>) -> EngineError {
    EngineError::TableOption {
        table: table.into(),
        key: key.into(),
        detail: detail.into(),
    }
}

impl Datagen {
    /// Plans a datagen table from its options.
    pub fn new(
        table: &str,
        schema: SchemaRef,
        options: &BTreeMap<String, String>,
    ) -> Result<Datagen> {
        let opts = crate::options::Options::table(table, options);
        let num = |key: &str| opts.number::<i64>(key);
        let float = |key: &str| opts.number::<f64>(key);
        let mut known = vec![
            "connector".to_string(),
            "rows-per-second".into(),
            "number-of-rows".into(),
            "scan.parallelism".into(),
        ];
        let mut fields = Vec::new();
        for f in schema.fields() {
            let p = format!("fields.{}.", f.name());
            for suffix in ["kind", "start", "end", "min", "max", "length", "max-past"] {
                known.push(format!("{p}{suffix}"));
            }
            let kind = options
                .get(&format!("{p}kind"))
                .map(String::as_str)
                .unwrap_or("random");
            let integer = matches!(
                f.data_type(),
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
            );
            let supported = integer
                || matches!(
                    f.data_type(),
                    DataType::Float32
                        | DataType::Float64
                        | DataType::Utf8
                        | DataType::Boolean
                        | DataType::Timestamp(..)
                        | DataType::Date32
                );
            if !supported {
                return Err(option_err(
                    table,
                    &format!("fields.{}", f.name()),
                    format!(
                        "datagen does not generate {} yet (TINYINT, SMALLINT, INT, BIGINT, FLOAT, \
                         DOUBLE, STRING, BOOLEAN, TIMESTAMP, DATE); declare it as a computed \
                         column instead",
                        type_name(f.data_type())
                    ),
                ));
            }
            fields.push(match kind {
                "sequence" => {
                    if !integer {
                        return Err(option_err(
                            table,
                            &format!("{p}kind"),
                            "a sequence needs an INT or BIGINT field",
                        ));
                    }
                    let (Some(start), Some(end)) =
                        (num(&format!("{p}start"))?, num(&format!("{p}end"))?)
                    else {
                        return Err(option_err(
                            table,
                            &format!("{p}start"),
                            "a sequence needs both 'start' and 'end'",
                        ));
                    };
                    if end < start {
                        return Err(option_err(
                            table,
                            &format!("{p}end"),
                            "'end' must not be below 'start'",
                        ));
                    }
                    if end as i128 - start as i128 >= 1 << 62 {
                        return Err(option_err(
                            table,
                            &format!("{p}end"),
                            "a sequence of more than 2^62 values never ends; use 'random'",
                        ));
                    }
                    FieldGen::Sequence { next: start, end }
                }
                "random" if matches!(f.data_type(), DataType::Timestamp(..) | DataType::Date32) => {
                    // Flink: now minus a random part of 'max-past' (ms).
                    FieldGen::Random {
                        min: -(num(&format!("{p}max-past"))?.unwrap_or(0) as f64),
                        max: 0.0,
                        length: 0,
                    }
                }
                "random" => {
                    let min = float(&format!("{p}min"))?.unwrap_or(0.0);
                    let max = float(&format!("{p}max"))?.unwrap_or(if integer {
                        i32::MAX as f64
                    } else {
                        1.0
                    });
                    if min > max {
                        return Err(option_err(
                            table,
                            &format!("{p}min"),
                            format!("min {min} is greater than max {max}"),
                        ));
                    }
                    let length = num(&format!("{p}length"))?.unwrap_or(100);
                    if !(0..=MAX_LENGTH as i64).contains(&length) {
                        return Err(option_err(
                            table,
                            &format!("{p}length"),
                            format!(
                                "a length of {length}; random strings and bytes are from 0 to \
                                 {MAX_LENGTH} long"
                            ),
                        ));
                    }
                    FieldGen::Random {
                        min,
                        max,
                        length: length as usize,
                    }
                }
                other => {
                    return Err(option_err(
                        table,
                        &format!("{p}kind"),
                        format!("expected 'sequence' or 'random', found '{other}'"),
                    ))
                }
            });
        }
        for key in options.keys() {
            if !known.contains(key) {
                return Err(option_err(
                    table,
                    key,
                    "unknown datagen option; see the datagen connector's options",
                ));
            }
        }
        let rows_per_second = num("rows-per-second")?.unwrap_or(10_000);
        if rows_per_second < 0 {
            return Err(option_err(table, "rows-per-second", "must not be negative"));
        }
        let mut remaining = match num("number-of-rows")? {
            Some(n) if n < 0 => {
                return Err(option_err(table, "number-of-rows", "must not be negative"))
            }
            n => n.map(|n| n as u64),
        };
        // A sequence ends the source when it is exhausted, as in Flink.
        for f in &fields {
            if let FieldGen::Sequence { next, end } = f {
                let len = (*end as i128 - *next as i128 + 1).min(u64::MAX as i128) as u64;
                remaining = Some(remaining.map_or(len, |r| r.min(len)));
            }
        }
        Ok(Datagen {
            table: table.to_string(),
            schema,
            fields,
            rows_per_second: rows_per_second as u64,
            remaining,
            rng: 0x2545_F491_4F6C_DD1D,
        })
    }

    /// The part of this table that subtask `subtask` of `parallelism` generates: sequences
    /// are cut into consecutive ranges, row counts and rates are shared out, random fields
    /// get their own seeds.
    pub fn split(&self, subtask: usize, parallelism: usize) -> Datagen {
        let p = parallelism.max(1) as u64;
        let i = subtask as u64;
        let share = |total: u64| total / p + u64::from(i < total % p);
        let offset = |total: u64| {
            (0..i)
                .map(|j| total / p + u64::from(j < total % p))
                .sum::<u64>()
        };
        let fields = self
            .fields
            .iter()
            .map(|f| match f {
                FieldGen::Sequence { next, end } => {
                    let total = (*end as i128 - *next as i128 + 1).min(u64::MAX as i128) as u64;
                    let start = next + offset(total) as i64;
                    FieldGen::Sequence {
                        next: start,
                        end: start.saturating_add(share(total) as i64 - 1),
                    }
                }
                FieldGen::Random { min, max, length } => FieldGen::Random {
                    min: *min,
                    max: *max,
                    length: *length,
                },
            })
            .collect();
        Datagen {
            table: self.table.clone(),
            schema: self.schema.clone(),
            fields,
            rows_per_second: if self.rows_per_second == 0 {
                0
            } else {
                share(self.rows_per_second).max(1)
            },
            remaining: self.remaining.map(share),
            rng: self.rng ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1)),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The schema of the rows.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Whether the source ends by itself.
    pub fn is_bounded(&self) -> bool {
        self.remaining.is_some()
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Up to `max_rows` more rows, or `None` at the end.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let n = match self.remaining {
            Some(0) => return Ok(None),
            Some(r) => (r as usize).min(max_rows),
            None => max_rows,
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.fields.len());
        for i in 0..self.fields.len() {
            let dt = self.schema.field(i).data_type().clone();
            let col: ArrayRef = match &mut self.fields[i] {
                FieldGen::Sequence { next, .. } => {
                    let start = *next;
                    *next = next.saturating_add(n as i64);
                    match dt {
                        DataType::Int64 => Arc::new(Int64Array::from_iter_values(
                            (0..n as i64).map(|k| start + k),
                        )),
                        t => {
                            let a = Int64Array::from_iter_values((0..n as i64).map(|k| start + k));
                            arrow_cast::cast(&a, &t).map_err(|source| EngineError::Arrow {
                                context: format!("datagen table {}", self.table),
                                source,
                            })?
                        }
                    }
                }
                FieldGen::Random { min, max, length } => {
                    let (min, max, length) = (*min, *max, *length);
                    let mut unit = || (self.next_random() >> 11) as f64 / (1u64 << 53) as f64;
                    match dt {
                        DataType::Int32 => Arc::new(Int32Array::from_iter_values(
                            (0..n).map(|_| (min + unit() * (max - min)).floor() as i32),
                        )),
                        DataType::Int64 => Arc::new(Int64Array::from_iter_values(
                            (0..n).map(|_| (min + unit() * (max - min)).floor() as i64),
                        )),
                        DataType::Float64 => Arc::new(Float64Array::from_iter_values(
                            (0..n).map(|_| min + unit() * (max - min)),
                        )),
                        DataType::Boolean => Arc::new(arrow_array::BooleanArray::from_iter(
                            (0..n).map(|_| Some(unit() < 0.5)),
                        )),
                        DataType::Timestamp(..) | DataType::Date32 => {
                            let now = crate::expr::functions::now_millis();
                            let a = arrow_array::TimestampMillisecondArray::from_iter_values(
                                (0..n).map(|_| now + (min * unit()) as i64),
                            );
                            arrow_cast::cast(&a, &dt).map_err(|source| EngineError::Arrow {
                                context: format!("datagen table {}", self.table),
                                source,
                            })?
                        }
                        DataType::Int8 | DataType::Int16 | DataType::Float32 => {
                            let a = Float64Array::from_iter_values(
                                (0..n).map(|_| (min + unit() * (max - min)).floor()),
                            );
                            arrow_cast::cast(&a, &dt).map_err(|source| EngineError::Arrow {
                                context: format!("datagen table {}", self.table),
                                source,
                            })?
                        }
                        _ => {
                            const HEX: &[u8] = b"0123456789abcdef";
                            let s: Vec<String> = (0..n)
                                .map(|_| {
                                    (0..length)
                                        .map(|_| HEX[(unit() * 16.0) as usize % 16] as char)
                                        .collect()
                                })
                                .collect();
                            Arc::new(StringArray::from(s))
                        }
                    }
                }
            };
            columns.push(col);
        }
        if let Some(r) = &mut self.remaining {
            *r -= n as u64;
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(Some)
            .map_err(|source| EngineError::Arrow {
                context: format!("datagen table {}", self.table),
                source,
            })
    }
}

/// The datagen source as the runtime starts it.
pub(crate) struct DatagenSource(pub(crate) Datagen);

impl Source for Datagen {
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        Datagen::next_batch(self, max_rows)
    }
    fn rows_per_second(&self) -> u64 {
        self.rows_per_second
    }
}

impl SourceFactory for DatagenSource {
    fn name(&self) -> &str {
        self.0.table()
    }
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }
    fn is_bounded(&self) -> bool {
        self.0.is_bounded()
    }
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.0.split(subtask, parallelism)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::{Field, Schema};

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("score", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn sequence_ends_the_source() {
        let mut d = Datagen::new(
            "t",
            schema(),
            &opts(&[
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "1"),
                ("fields.id.end", "10"),
                ("fields.name.length", "4"),
            ]),
        )
        .unwrap();
        assert!(d.is_bounded());
        let a = d.next_batch(7).unwrap().unwrap();
        let b = d.next_batch(7).unwrap().unwrap();
        assert!(d.next_batch(7).unwrap().is_none());
        let ids: Vec<i64> = [a, b]
            .iter()
            .flat_map(|x| x.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn random_values_stay_in_range() {
        let mut d = Datagen::new(
            "t",
            schema(),
            &opts(&[
                ("fields.score.min", "5"),
                ("fields.score.max", "6"),
                ("number-of-rows", "1000"),
            ]),
        )
        .unwrap();
        let b = d.next_batch(5000).unwrap().unwrap();
        assert_eq!(b.num_rows(), 1000);
        let s = b
            .column(1)
            .as_primitive::<arrow_array::types::Float64Type>();
        assert!(s.values().iter().all(|v| (5.0..6.0).contains(v)));
        assert_eq!(b.column(2).as_string::<i32>().value(0).len(), 100);
    }

    #[test]
    fn bad_options_name_the_table_and_option() {
        let e = |o: &[(&str, &str)]| {
            Datagen::new("orders", schema(), &opts(o))
                .err()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            e(&[("rows-per-secnd", "5")]),
            "table `orders`, option 'rows-per-secnd': unknown datagen option; see the datagen connector's options"
        );
        assert!(e(&[("fields.id.kind", "sequence")])
            .contains("a sequence needs both 'start' and 'end'"));
        assert!(e(&[
            ("fields.name.kind", "sequence"),
            ("fields.name.start", "1"),
            ("fields.name.end", "2")
        ])
        .contains("a sequence needs an INT or BIGINT field"));
        assert!(e(&[("rows-per-second", "fast")]).contains("expected a whole number, found 'fast'"));
        assert!(e(&[("number-of-rows", "-5")]).contains("'number-of-rows': must not be negative"));
    }
}
