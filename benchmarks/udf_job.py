"""The benchmark job, written once for PyFlink and weir (only the imports differ):
a BIGINT sequence of N rows -> Python scalar UDF `x + 1` -> blackhole, parallelism 1.

    python udf_job.py --engine weir --rows 3000000 [--metrics] [--kind general|pandas|arrow]

`--kind pandas` makes it a Pandas UDF (a Series in, a Series out), `--kind arrow` weir's arrow
UDF (a pyarrow Array in and out; weir only). With `--metrics` a vectorized UDF updates its
counter, meter and distribution once per batch (by the batch's length), as such UDFs do.

Prints one JSON line: rows, seconds (start-up included), rows_per_second.
"""

import argparse
import json
import time

started = time.perf_counter()

p = argparse.ArgumentParser()
p.add_argument("--engine", choices=["weir", "pyflink"], required=True)
p.add_argument("--rows", type=int, default=3_000_000)
p.add_argument("--metrics", action="store_true", help="a counter, a meter and a distribution updated per row")
p.add_argument("--kind", choices=["general", "pandas", "arrow"], default="general")
args = p.parse_args()

if args.engine == "weir":
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.udf import ScalarFunction, udf
else:
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    from pyflink.table.udf import ScalarFunction, udf


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


t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t_env.get_config().set("parallelism.default", "1")
if args.engine == "weir":
    t_env.get_config().set("metrics.reporter.prom.port", "0")
n = args.rows
t_env.execute_sql(
    f"""CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}',
        'rows-per-second' = '1000000000', 'fields.x.kind' = 'sequence',
        'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
)
t_env.execute_sql("CREATE TABLE snk (y BIGINT) WITH ('connector' = 'blackhole')")
if args.kind == "general":
    f = udf(Measured() if args.metrics else Plain(), result_type=DataTypes.BIGINT())
else:
    fn = MeasuredBatch() if args.metrics else PlainBatch()
    f = udf(fn, result_type=DataTypes.BIGINT(), func_type=args.kind)
t_env.create_temporary_function("plus_one", f)
t_env.execute_sql("INSERT INTO snk SELECT plus_one(x) FROM src").wait()
seconds = time.perf_counter() - started
out = {"rows": n, "seconds": seconds, "rows_per_second": n / seconds}
if args.engine == "weir":
    # What the UDF really evaluated, from weir's own metrics (a check on the figure).
    for line in t_env.metrics_text().splitlines():
        if line.startswith("weir_python_udf_rows_total{"):
            out["udf_rows"] = int(float(line.rsplit(" ", 1)[1]))
print(json.dumps(out))
