"""Metrics under abuse: a series per row for a million rows, label keys that weir adds
itself, values that overflow, slow gauge callbacks. Memory is read from /proc; durations are
printed, never asserted."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import fault_outcome, make_env, value, worker_pids
from weir.table import DataTypes
from weir.table.expressions import col
from weir.table.udf import ScalarFunction, udf


def source(env, n, name="src", rate=0):
    env.execute_sql(
        f"""CREATE TABLE {name} (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}',
            'rows-per-second' = '{rate}', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1',
            'fields.x.end' = '{n}')"""
    )
    return env.from_path(name)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PerRow(ScalarFunction):
    """A new labelled series on every row (a user id as a key group), or one plain counter."""

    def __init__(self, bomb):
        self.bomb = bomb

    def open(self, ctx):
        self.g = ctx.get_metric_group()
        self.c = self.g.counter("plain")

    def eval(self, x):
        if self.bomb:
            self.g.add_group("user", str(x)).counter("hits").inc()
        else:
            self.c.inc()
        return x


def run_measured(job, bomb, n):
    env = make_env(pipeline__name=job)
    f = udf(PerRow(bomb), result_type=DataTypes.BIGINT())
    t = source(env, n, name=f"src_{job.replace('-', '_')}").select(f(col("x")).alias("y"))
    before = set(worker_pids())
    peak = {"worker": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for p in worker_pids():
                if p not in before:
                    try:
                        peak["worker"] = max(peak["worker"], status_kib(p, "VmHWM"))
                    except OSError:
                        pass
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    rss0 = status_kib(os.getpid(), "VmRSS")
    t0 = time.monotonic()
    rows = sum(1 for _ in t.execute().collect())
    took = time.monotonic() - t0
    done.set()
    w.join()
    grown = status_kib(os.getpid(), "VmRSS") - rss0
    return env, rows, took, peak["worker"] // 1024, grown // 1024


def test_a_series_per_row_for_a_million_rows_stays_bounded_and_drops_are_counted_exactly():
    n = 1_000_000
    _, _, plain_s, plain_w, _ = run_measured("plain-counter", False, n)
    env, rows, took, worker_mib, engine_mib = run_measured("cardinality-bomb", True, n)
    print(
        f"plain counter: {n / plain_s:,.0f} rows/s (worker peak {plain_w} MiB); a series per row: "
        f"{n / took:,.0f} rows/s, worker peak {worker_mib} MiB, engine grew {engine_mib} MiB"
    )
    assert rows == n
    text = env.metrics_text()
    kept = sum(1 for line in text.splitlines() if line.startswith("weir_user_user_hits_total{"))
    assert kept == 10_000, "the default metrics.weir.cardinality-limit"
    dropped = value(text, "weir_metrics_series_dropped_total", metric="weir_user_user_hits")
    assert dropped == n - 10_000, dropped
    # The documented bound (docs/metrics.md): well under 200 MiB in each process.
    assert worker_mib < 200, worker_mib
    assert engine_mib < 200, engine_mib
    fault_outcome(
        "a new labelled series per row, 1,000,000 rows",
        f"{kept} kept, {int(dropped)} dropped (exact); worker {worker_mib} MiB, engine +{engine_mib} MiB; "
        f"{n / took:,.0f} rows/s vs {n / plain_s:,.0f} for a plain counter",
    )


@pytest.mark.parametrize("key", ["quantile", "le", "job_name", "operator", "subtask"])
def test_a_key_group_named_like_a_label_weir_adds_is_refused_with_a_message(key):
    class Clash(ScalarFunction):
        def open(self, ctx):
            self.c = ctx.get_metric_group().add_group(key, "v").distribution("d")

        def eval(self, x):
            return x

    env = make_env(streaming=False)
    with pytest.raises(Exception) as e:
        list(source(env, 3).select(udf(Clash(), result_type=DataTypes.BIGINT())(col("x"))).execute().collect())
    msg = str(e.value)
    assert f"label key `{key}`" in msg and "weir adds itself" in msg and "open()" in msg, msg


class Overflowing(ScalarFunction):
    def open(self, ctx):
        g = ctx.get_metric_group().add_group("abuse")
        self.c = g.counter("big")
        self.m = g.meter("events")
        self.d = g.distribution("huge")
        self.i = g.distribution("wide")
        g.gauge("inf", lambda: float("inf"))

    def eval(self, x):
        self.c.inc(2**62)
        self.m.mark_event(2**62)
        self.d.update(1e308)
        self.i.update(2**62)
        return x


def test_overflowing_values_saturate_and_the_scrape_stays_valid():
    env = make_env(pipeline__name="overflow")
    rows = list(source(env, 100).select(udf(Overflowing(), result_type=DataTypes.BIGINT())(col("x"))).execute().collect())
    assert len(rows) == 100
    text = env.metrics_text()
    assert value(text, "weir_user_abuse_big_total", job_name="overflow") == float(2**63 - 1), "saturated, not wrapped"
    assert value(text, "weir_user_abuse_events_total", job_name="overflow") == float(2**64 - 1)
    assert value(text, "weir_user_abuse_huge_sum", job_name="overflow") == float("inf")
    assert value(text, "weir_user_abuse_huge_count", job_name="overflow") == 100
    assert value(text, "weir_user_abuse_wide_sum", job_name="overflow") == pytest.approx(100 * 2**62)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (scripts/test.sh installs it)")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert "error" not in (p.stdout + p.stderr).lower(), p.stdout + p.stderr


class SlowGauge(ScalarFunction):
    def open(self, ctx):
        self.calls = ctx.get_metric_group().counter("gauge_calls")
        ctx.get_metric_group().gauge("slow", self.read)

    def read(self):
        self.calls.inc()
        time.sleep(0.5)
        return 1

    def eval(self, x):
        return x


def test_gauge_callbacks_are_read_on_their_own_thread_not_per_bundle():
    env = make_env(pipeline__name="slow-gauge", python__fn_execution__bundle__size="100",
                   python__fn_execution__bundle__time="200")
    n = 200_000
    t0 = time.monotonic()
    # About three seconds of input, so that the gauge thread reads while bundles flow.
    rows = sum(1 for _ in source(env, n, rate=70_000).select(udf(SlowGauge(), result_type=DataTypes.BIGINT())(col("x"))).execute().collect())
    took = time.monotonic() - t0
    assert rows == n
    text = env.metrics_text()
    bundles = value(text, "weir_python_udf_bundles_total", job_name="slow-gauge")
    calls = value(text, "weir_user_gauge_calls_total", job_name="slow-gauge") or 0
    print(f"{bundles:.0f} bundles, {calls:.0f} gauge reads of 0.5 s each, job {took:.1f} s")
    assert bundles >= n / 100
    # Read every 200 ms at most, never per bundle; a read takes 0.5 s, so at most one per
    # 0.5 s of job time (plus the reads at open and close).
    assert 2 <= calls <= took / 0.5 + 3, (calls, took)
    assert value(text, "weir_user_slow", job_name="slow-gauge") == 1
