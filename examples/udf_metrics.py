"""A PyFlink-style streaming job whose Python UDFs register every metric kind.

    pip install ./python-sdk
    python examples/udf_metrics.py            # runs until Ctrl-C, /metrics on port 9249
    python examples/udf_metrics.py --seconds 20 --port 0
    python examples/udf_metrics.py --set metrics.reporters=prom,promgateway \
        --set metrics.reporter.promgateway.hostUrl=http://localhost:9091

datagen -> Python UDFs (a counter, a meter, a distribution and a gauge, under scoped groups)
-> a 5-second event-time tumbling window (watermark: 1 s behind the order time) counted per
category -> print. `--set key=value` passes any configuration key. While it runs, `curl
http://127.0.0.1:9249/metrics | grep weir_user_` shows the UDFs' metrics; the bundled Grafana
dashboards read the same names. With PyFlink the imports would start with `pyflink.`; that
is the only difference.
"""

import argparse
import signal
import threading
import time

from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
from weir.table.expressions import col, lit
from weir.table.udf import ScalarFunction, udf
from weir.table.window import Tumble


class Categorize(ScalarFunction):
    """Buckets an order amount, counting what it sees."""

    def open(self, function_context):
        group = function_context.get_metric_group().add_group("orders")
        self.orders = group.counter("seen")
        self.big = group.add_group("size", "big").counter("seen")
        self.rate = group.meter("rate", time_span_in_seconds=10)
        self.amounts = group.distribution("amount")
        self.threshold = float(function_context.get_job_parameter("big_threshold", "900"))
        self.last = 0.0
        group.gauge("last_amount", lambda: self.last)

    def eval(self, amount):
        self.orders.inc()
        self.rate.mark_event()
        self.amounts.update(amount)
        self.last = amount
        if amount >= self.threshold:
            self.big.inc()
            return "big"
        return "small" if amount < 100 else "medium"


@udf(result_type=DataTypes.STRING())
def region_of(user_id):
    return ("eu", "us", "apac")[user_id % 3]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", default="9249", help="Prometheus port (0 = any free port)")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = run until Ctrl-C)")
    p.add_argument("--rate", default="2000", help="generated orders per second")
    p.add_argument("--parallelism", default="2")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any configuration key (repeatable)")
    args = p.parse_args()

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = t_env.get_config()
    config.set("parallelism.default", args.parallelism)
    config.set("pipeline.name", "udf-metrics-demo")
    config.set("pipeline.global-job-parameters", {"big_threshold": "900"})
    config.set("metrics.reporter.prom.port", args.port)
    config.set("python.fn-execution.bundle.time", "1000")
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep:
            p.error(f"--set takes KEY=VALUE, not {pair!r}")
        config.set(key.strip(), value.strip())

    t_env.execute_sql(f"""
        CREATE TABLE orders (
            user_id BIGINT,
            amount DOUBLE,
            ts AS LOCALTIMESTAMP,
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
        ) WITH (
            'connector' = 'datagen',
            'rows-per-second' = '{args.rate}',
            'fields.user_id.min' = '1', 'fields.user_id.max' = '10000',
            'fields.amount.min' = '1', 'fields.amount.max' = '1000'
        )""")
    categorize = udf(Categorize(), result_type=DataTypes.STRING())

    orders = t_env.from_path("orders").select(
        col("ts"),
        categorize(col("amount")).alias("category"),
        region_of(col("user_id")).alias("region"),
    )
    per_window = (
        orders.window(Tumble.over(lit(5).seconds).on(col("ts")).alias("w"))
        .group_by(col("w"), col("category"))
        .select(col("w").start.alias("window_start"), col("category"), col("region").count.alias("orders"))
    )
    address = t_env.start_metrics()
    print(f"metrics: http://{address}/metrics  (Ctrl-C stops)", flush=True)
    result = per_window.execute()
    rows = result.collect()
    if args.seconds:
        threading.Timer(args.seconds, rows.close).start()
    signal.signal(signal.SIGINT, lambda *_: rows.close())
    started = time.monotonic()
    for row in rows:
        print(f"{row.get_row_kind()} {row.window_start} {row.category:>6} {row.orders}", flush=True)
    print(f"stopped after {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
