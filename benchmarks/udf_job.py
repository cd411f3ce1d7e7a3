"""The benchmark job, written once for PyFlink and weir (only the imports differ):
a BIGINT sequence of N rows -> Python scalar UDF `x + 1` -> blackhole, parallelism 1.

    python udf_job.py --engine weir --rows 3000000 [--metrics]

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
f = udf(Measured() if args.metrics else Plain(), result_type=DataTypes.BIGINT())
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
