"""What one metric update costs a Python function, beside the same update on a plain Python
object: a loop of N calls per method inside a UDF's open(), in each execution mode.

    python benchmarks/metric_calls.py [--calls 1000000]

Prints ns per call (best of 5 loops) with the loop's own cost (a call of an empty lambda)
subtracted.
"""

from __future__ import annotations

import argparse
import time

from weir.table import EnvironmentSettings, TableEnvironment
from weir.table.udf import ScalarFunction, udf

p = argparse.ArgumentParser()
p.add_argument("--calls", type=int, default=1_000_000)
args = p.parse_args()
N = args.calls


class Plain:
    def __init__(self):
        self.count = 0

    def inc(self, n=1):
        self.count += n


def per_call(f) -> float:
    """Best of 5 loops of N calls, ns per call."""
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(N):
            f()
        best = min(best, time.perf_counter() - t)
    return best / N * 1e9


class Probe(ScalarFunction):
    def open(self, ctx):
        g = ctx.get_metric_group()
        c, m, d, plain = g.counter("c"), g.meter("m"), g.distribution("d"), Plain()
        base = per_call(lambda: None)
        x = 12345
        self.lines = []
        for name, f in [
            ("Counter.inc()", lambda: c.inc()),
            ("Meter.mark_event()", lambda: m.mark_event()),
            ("Distribution.update(x)", lambda: d.update(x)),
            ("plain Python object .inc()", lambda: plain.inc()),
        ]:
            self.lines.append(f"  {name:<28} {per_call(f) - base:6.1f} ns")

    def eval(self, x):
        # Measured where the functions run (a worker process or a thread); printed here.
        return "\n".join(self.lines)


for mode in ("process", "thread"):
    print(f"python.execution-mode={mode}", flush=True)
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("python.execution-mode", mode)
    env.get_config().set("metrics.reporter.prom.port", "0")
    t = env.from_elements([(1,)], ["x"])
    for row in t.select(udf(Probe(), result_type="STRING")(t.x)).execute().collect():
        print(row[0], flush=True)
