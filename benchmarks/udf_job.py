"""The benchmark jobs, written once for PyFlink and weir (only the imports differ), over a
BIGINT sequence of N rows into a blackhole, parallelism 1:

    python udf_job.py --engine weir --rows 3000000 [--metrics] [--mode process|thread]
        [--kind general|pandas|arrow|udtf|udaf|pandas_udaf]

- `general`: a scalar UDF `x + 1`; `pandas`: the same as a Pandas UDF (a Series in, a Series
  out); `arrow`: weir's arrow UDF (a pyarrow Array in and out; weir only).
- `udtf`: a table function splitting the string 'x,x+1' into its two parts
  (`LATERAL TABLE(split_parts(...))`): 2N rows out.
- `udaf`: a general aggregate function (PyFlink's weighted average) by key `x % 1000` in a
  streaming GROUP BY, an updating result.
- `pandas_udaf`: a Pandas aggregate function (mean of a Series) in a tumbling event-time window
  of 1 s over `ts = TO_TIMESTAMP_LTZ(x, 3)` (1000 rows per window).

With `--metrics` a row-at-a-time function updates a counter, a meter and a distribution per row;
a vectorized one once per call (by the batch's length), as such functions do.

Prints one JSON line: rows, seconds (start-up included), run_seconds (from the job's submission
to its end), rows_per_second (rows / seconds).
"""

import argparse
import json
import time

started = time.perf_counter()

p = argparse.ArgumentParser()
p.add_argument("--engine", choices=["weir", "pyflink"], required=True)
p.add_argument("--rows", type=int, default=3_000_000)
p.add_argument("--metrics", action="store_true", help="a counter, a meter and a distribution updated per row")
p.add_argument("--kind", choices=["general", "pandas", "arrow", "udtf", "udaf", "pandas_udaf"], default="general")
p.add_argument("--mode", choices=["process", "thread"], default="process", help="python.execution-mode")
args = p.parse_args()

if args.engine == "weir":
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.expressions import col, lit
    from weir.table.udf import AggregateFunction, ScalarFunction, TableFunction, udaf, udf, udtf
    from weir.table.window import Tumble
else:
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    from pyflink.table.expressions import col, lit
    from pyflink.table.udf import AggregateFunction, ScalarFunction, TableFunction, udaf, udf, udtf
    from pyflink.table.window import Tumble


class Plain(ScalarFunction):
    def eval(self, x):
        return x + 1


class Measured(ScalarFunction):
    def open(self, function_context):
        g = function_context.get_metric_group()
        self.rows = g.counter("rows")
        self.rate = g.meter("rate")
        self.values = g.distribution("values")

    def eval(self, x):
        self.rows.inc()
        self.rate.mark_event()
        self.values.update(x)
        return x + 1


class PlainBatch(ScalarFunction):
    def eval(self, x):
        if args.kind == "arrow":
            import pyarrow.compute as pc

            return pc.add(x, 1)
        return x + 1


class MeasuredBatch(PlainBatch):
    def open(self, function_context):
        g = function_context.get_metric_group()
        self.rows = g.counter("rows")
        self.rate = g.meter("rate")
        self.values = g.distribution("values")

    def eval(self, x):
        n = len(x)
        self.rows.inc(n)
        self.rate.mark_event(n)
        self.values.update(n)
        return super().eval(x)


class Split(TableFunction):
    def eval(self, s):
        for part in s.split(","):
            yield part


class MeasuredSplit(Split):
    def open(self, function_context):
        g = function_context.get_metric_group()
        self.rows = g.counter("rows")
        self.rate = g.meter("rate")
        self.values = g.distribution("values")

    def eval(self, s):
        self.rows.inc()
        self.rate.mark_event()
        self.values.update(len(s))
        yield from super().eval(s)


class WeightedAvg(AggregateFunction):
    """PyFlink's documentation example."""

    def create_accumulator(self):
        return [0, 0]

    def get_value(self, accumulator):
        return None if accumulator[1] == 0 else accumulator[0] / accumulator[1]

    def accumulate(self, accumulator, value, weight):
        accumulator[0] += value * weight
        accumulator[1] += weight

    def retract(self, accumulator, value, weight):
        accumulator[0] -= value * weight
        accumulator[1] -= weight


class MeasuredWeightedAvg(WeightedAvg):
    def open(self, function_context):
        g = function_context.get_metric_group()
        self.rows = g.counter("rows")
        self.rate = g.meter("rate")
        self.values = g.distribution("values")

    def accumulate(self, accumulator, value, weight):
        self.rows.inc()
        self.rate.mark_event()
        self.values.update(value)
        super().accumulate(accumulator, value, weight)


class MeasuredMean(AggregateFunction):
    """A pandas aggregate with metrics, in PyFlink's class form (accumulate gets the Series)."""

    def open(self, function_context):
        g = function_context.get_metric_group()
        self.rows = g.counter("rows")
        self.rate = g.meter("rate")
        self.values = g.distribution("values")

    def create_accumulator(self):
        return []

    def accumulate(self, accumulator, x):
        n = len(x)
        self.rows.inc(n)
        self.rate.mark_event(n)
        self.values.update(n)
        accumulator.append(x.mean())

    def get_value(self, accumulator):
        return accumulator[0]


t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t_env.get_config().set("parallelism.default", "1")
t_env.get_config().set("python.execution-mode", args.mode)
if args.engine == "weir":
    t_env.get_config().set("metrics.reporter.prom.port", "0")
n = args.rows
rowtime = ", ts AS TO_TIMESTAMP_LTZ(x, 3), WATERMARK FOR ts AS ts" if args.kind == "pandas_udaf" else ""
t_env.execute_sql(
    f"""CREATE TABLE src (x BIGINT{rowtime}) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}',
        'rows-per-second' = '1000000000', 'fields.x.kind' = 'sequence',
        'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
)
if args.kind in ("general", "pandas", "arrow"):
    t_env.execute_sql("CREATE TABLE snk (y BIGINT) WITH ('connector' = 'blackhole')")
    if args.kind == "general":
        f = udf(Measured() if args.metrics else Plain(), result_type=DataTypes.BIGINT())
    else:
        fn = MeasuredBatch() if args.metrics else PlainBatch()
        f = udf(fn, result_type=DataTypes.BIGINT(), func_type=args.kind)
    t_env.create_temporary_function("plus_one", f)
    run = lambda: t_env.execute_sql("INSERT INTO snk SELECT plus_one(x) FROM src")  # noqa: E731
elif args.kind == "udtf":
    t_env.execute_sql("CREATE TABLE snk (w STRING) WITH ('connector' = 'blackhole')")
    t_env.create_temporary_function("split_parts", udtf(MeasuredSplit() if args.metrics else Split(), result_types=[DataTypes.STRING()]))
    run = lambda: t_env.execute_sql(  # noqa: E731
        "INSERT INTO snk SELECT w FROM src, LATERAL TABLE(split_parts(CONCAT(CAST(x AS STRING), ',', CAST(x + 1 AS STRING)))) AS T(w)"
    )
elif args.kind == "udaf":
    t_env.execute_sql("CREATE TABLE snk (k BIGINT, a DOUBLE) WITH ('connector' = 'blackhole')")
    f = udaf(MeasuredWeightedAvg() if args.metrics else WeightedAvg(), result_type=DataTypes.DOUBLE(),
             accumulator_type=DataTypes.ARRAY(DataTypes.BIGINT()))
    t_env.create_temporary_function("wavg", f)
    run = lambda: t_env.execute_sql(  # noqa: E731
        "INSERT INTO snk SELECT MOD(x, 1000), wavg(x, MOD(x, 7) + 1) FROM src GROUP BY MOD(x, 1000)"
    )
else:  # pandas_udaf
    t_env.execute_sql("CREATE TABLE snk (s TIMESTAMP(3), m DOUBLE) WITH ('connector' = 'blackhole')")
    mean = udaf(MeasuredMean() if args.metrics else (lambda x: x.mean()), result_type=DataTypes.DOUBLE(), func_type="pandas")
    windowed = t_env.from_path("src").window(Tumble.over(lit(1).seconds).on(col("ts")).alias("w"))
    run = lambda: windowed.group_by(col("w")).select(col("w").start, mean(col("x"))).execute_insert("snk")  # noqa: E731
submitted = time.perf_counter()
run().wait()
seconds = time.perf_counter() - started
out = {"rows": n, "seconds": seconds, "run_seconds": time.perf_counter() - submitted, "rows_per_second": n / seconds}
if args.engine == "weir":
    # What the UDF really evaluated, from weir's own metrics (a check on the figure).
    for line in t_env.metrics_text().splitlines():
        if line.startswith("weir_python_udf_rows_total{"):
            out["udf_rows"] = out.get("udf_rows", 0) + int(float(line.rsplit(" ", 1)[1]))
print(json.dumps(out))
