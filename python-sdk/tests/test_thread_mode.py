"""python.execution-mode=thread: every UDF kind on threads of this process's interpreter, with
the results, exact metrics (scraped by a real Prometheus), system metrics and error messages of
process mode, and the job's dependencies on sys.path only while its workers run."""

from __future__ import annotations

import os
import sys
import textwrap

import pandas as pd
import pytest

from conftest import make_env, value, worker_pids
from weir.table import DataTypes
from weir.table.expressions import col
from weir.table.udf import AggregateFunction, ScalarFunction, TableAggregateFunction, TableFunction, udaf, udf, udtaf, udtf


class Plus(ScalarFunction):
    def open(self, ctx):
        g = ctx.get_metric_group().add_group("tm").add_group("kind", "scalar")
        self.rows = g.counter("rows")
        self.values = g.distribution("values")
        self.pid = os.getpid()

    def eval(self, x):
        self.rows.inc()
        self.values.update(x)
        return x + 1 if self.pid == os.getpid() else None


class PandasPlus(ScalarFunction):
    def open(self, ctx):
        self.rows = ctx.get_metric_group().add_group("tm").add_group("kind", "pandas").counter("rows")

    def eval(self, x):
        self.rows.inc(len(x))
        return x + 1


class Split(TableFunction):
    def open(self, ctx):
        self.rows = ctx.get_metric_group().add_group("tm").add_group("kind", "table").counter("rows")

    def eval(self, x):
        self.rows.inc()
        for i in range(x % 3):
            yield x, i


class Total(AggregateFunction):
    def open(self, ctx):
        self.rows = ctx.get_metric_group().add_group("tm").add_group("kind", "aggregate").counter("rows")

    def create_accumulator(self):
        return [0]

    def accumulate(self, acc, x):
        self.rows.inc()
        acc[0] += x

    def get_value(self, acc):
        return acc[0]


class Top2(TableAggregateFunction):
    def open(self, ctx):
        self.rows = ctx.get_metric_group().add_group("tm").add_group("kind", "table_aggregate").counter("rows")

    def create_accumulator(self):
        return []

    def accumulate(self, acc, x):
        self.rows.inc()
        acc.append(x)
        acc.sort(reverse=True)
        del acc[2:]

    def emit_value(self, acc):
        for v in acc:
            yield v,


N = 3_000


class Results(dict):
    """Job name per kind (jobs of one name replace each other's series): `prefix-kind`."""

    def __init__(self, env, prefix):
        super().__init__()
        self.env, self.prefix = env, prefix

    def next(self, kind):
        self.env.get_config().set("pipeline.name", f"{self.prefix}-{kind}")


def jobs(env, prefix):
    """Runs each kind over 0..N-1, each as job `prefix-kind`; their results."""
    t = env.from_elements([(i, i % 7) for i in range(N)], ["x", "k"])
    out = Results(env, prefix)
    out.next("scalar")
    out["scalar"] = sorted(r[0] for r in t.select(udf(Plus(), result_type="BIGINT")(col("x"))).execute().collect())
    pandas_plus = udf(PandasPlus(), result_type="BIGINT", func_type="pandas")
    out.next("pandas")
    out["pandas"] = sorted(r[0] for r in t.select(pandas_plus(col("x"))).execute().collect())

    @udf(result_type="BIGINT")
    async def later(x):
        return x * 2

    out.next("async")
    out["async"] = sorted(r[0] for r in t.select(later(col("x"))).execute().collect())
    split = udtf(Split(), result_types=["BIGINT", "BIGINT"])
    out.next("table")
    out["table"] = sorted(tuple(r) for r in t.join_lateral(split(col("x")).alias("a", "b")).select(col("a"), col("b")).execute().collect())
    total = udaf(Total(), result_type="BIGINT", accumulator_type="ARRAY<BIGINT>")
    out.next("aggregate")
    out["aggregate"] = sorted(tuple(r) for r in t.group_by(col("k")).select(col("k"), total(col("x"))).execute().collect())

    @udaf(result_type="DOUBLE", func_type="pandas")
    def mean(x: pd.Series) -> float:
        return x.mean()

    out.next("pandas_aggregate")
    out["pandas_aggregate"] = sorted(tuple(r) for r in t.group_by(col("k")).select(col("k"), mean(col("x"))).execute().collect())
    top2 = udtaf(Top2(), result_type=DataTypes.ROW([DataTypes.FIELD("v", DataTypes.BIGINT())]), accumulator_type="ARRAY<BIGINT>")
    out.next("table_aggregate")
    out["table_aggregate"] = sorted(tuple(r) for r in t.group_by(col("k")).flat_aggregate(top2(col("x"))).select(col("k"), col("v")).execute().collect())
    return out


def test_every_kind_gives_process_modes_results_and_exact_metrics(prometheus_for):
    threaded = make_env(streaming=False, python__execution_mode="thread")
    before = set(worker_pids())
    got = jobs(threaded, "tm-thread")
    assert set(worker_pids()) - before == set(), "thread mode started worker processes"
    want = jobs(make_env(streaming=False), "tm-process")
    assert dict(got) == dict(want)
    assert got["scalar"] == list(range(1, N + 1)), "the functions ran in this process"
    text = threaded.metrics_text()
    expected = {"scalar": N, "pandas": N, "table": N, "aggregate": N, "table_aggregate": N}
    for kind, n in expected.items():
        assert value(text, "weir_user_tm_kind_rows_total", job_name=f"tm-thread-{kind}", kind=kind) == n, kind
    assert value(text, "weir_user_tm_kind_values_count", job_name="tm-thread-scalar", kind="scalar") == N
    prom = prometheus_for(threaded.start_metrics())
    for kind, n in expected.items():
        q = f'sum(weir_user_tm_kind_rows_total{{job_name="tm-thread-{kind}",kind="{kind}"}})'
        assert prom.wait_for(q, n) == n, kind
    # The system metrics of process mode, the same counts.
    q = 'sum(weir_python_udf_rows_total{job_name="tm-thread-scalar",operator="PythonCalc[Plus]"})'
    assert prom.wait_for(q, N) == N


def error_of(mode):
    env = make_env(streaming=False, python__execution_mode=mode)

    @udf(result_type="BIGINT")
    def picky(x):
        if x == 42:
            raise ValueError(f"no {x}")
        return x

    t = env.from_elements([(i,) for i in range(100)], ["x"])
    with pytest.raises(Exception) as e:
        list(t.select(picky(col("x"))).execute().collect())
    return str(e.value)


def test_an_exception_reads_as_in_process_mode():
    thread, process = error_of("thread"), error_of("process")
    for text in (thread, process):
        assert "picky" in text and "ValueError: no 42" in text and "(42,)" in text, text
    # The same message, but for who ran it.
    strip = lambda s: s.split("ValueError", 1)[1]  # noqa: E731
    assert strip(thread) == strip(process)


def test_skip_mode_counts_the_same():
    env = make_env(streaming=False, python__execution_mode="thread", python__udf__on_error="skip", pipeline__name="tm-skip")
    f = udf(lambda x: 1 // (x % 10), result_type="BIGINT")
    t = env.from_elements([(i,) for i in range(100)], ["x"])
    assert len(list(t.select(f(col("x"))).execute().collect())) == 90
    assert value(env.metrics_text(), "weir_python_udf_errors_total", job_name="tm-skip") == 10


def test_dependencies_are_on_sys_path_only_while_the_job_runs(tmp_path):
    (tmp_path / "tm_dep_mod.py").write_text(textwrap.dedent("""
        def where():
            return __file__
    """))
    env = make_env(streaming=False, python__execution_mode="thread")
    env.get_config().set("python.files", str(tmp_path / "tm_dep_mod.py"))
    path_before = list(sys.path)
    f = udf(lambda x: __import__("tm_dep_mod").where(), result_type="STRING")
    t = env.from_elements([(1,)], ["x"])
    where = list(t.select(f(col("x"))).execute().collect())[0][0]
    # The job's copy, in its private directory, imported by this very interpreter.
    assert where != str(tmp_path / "tm_dep_mod.py") and "weir-" in where
    assert sys.modules["tm_dep_mod"].__file__ == where
    assert sys.path == path_before, "the job's paths were left on sys.path"
    assert not os.path.exists(where), "the job's directory was left behind"


def test_an_unknown_mode_is_refused_naming_both():
    env = make_env(streaming=False, python__execution_mode="threads")
    t = env.from_elements([(1,)], ["x"])
    with pytest.raises(Exception, match="python.execution-mode.*`process` or `thread`"):
        list(t.select(udf(lambda x: x, result_type="BIGINT")(col("x"))).execute().collect())


def test_two_subtasks_share_the_interpreter_exactly():
    env = make_env(streaming=False, python__execution_mode="thread", parallelism__default="2", pipeline__name="tm-p2")
    n = 20_000
    env.execute_sql(
        f"""CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}',
            'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
    )
    t = env.from_path("src")
    out = sorted(r[0] for r in t.select(udf(Plus(), result_type="BIGINT")(col("x"))).execute().collect())
    assert out == list(range(2, n + 2))
    text = env.metrics_text()
    per_subtask = [value(text, "weir_user_tm_kind_rows_total", job_name="tm-p2", kind="scalar", subtask=s) for s in ("0", "1")]
    assert sum(per_subtask) == n and all(per_subtask), per_subtask


def test_a_function_that_ends_its_thread_fails_the_job_naming_the_row_and_the_process_lives():
    env = make_env(streaming=False, python__execution_mode="thread", python__worker__restart__max_attempts="2")

    @udf(result_type="BIGINT")
    def leaves(x):
        if x == 7:
            raise SystemExit(3)  # ends a worker process in process mode, a thread here
        return x

    t = env.from_elements([(i,) for i in range(20)], ["x"])
    with pytest.raises(Exception) as e:
        list(t.select(leaves(col("x"))).execute().collect())
    msg = str(e.value)
    assert "(a thread)" in msg and "(7,)" in msg and "python.worker.restart.max-attempts" in msg, msg
    # This interpreter goes on: the next job runs.
    assert [r[0] for r in t.select(udf(lambda x: x * 2, result_type="BIGINT")(col("x"))).execute().collect()][:3] == [0, 2, 4]


THREAD_JOB = """
import sys, time
from weir.table import EnvironmentSettings, TableEnvironment
from weir.table.udf import udf
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("metrics.reporter.prom.port", "0")
env.get_config().set("python.execution-mode", "thread")
env.get_config().set("parallelism.default", "2")
env.execute_sql("CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '5000')")
env.execute_sql("CREATE TABLE snk (y BIGINT) WITH ('connector' = 'blackhole')")

@udf(result_type="BIGINT")
def slow(x):
    time.sleep({sleep})
    return x

env.create_temporary_function("slow", slow)
print("started", flush=True)
env.execute_sql("INSERT INTO snk SELECT slow(x) FROM src").wait()
"""


def stop_thread_job(sig, sleep, after=1.0):
    """Starts THREAD_JOB with functions taking `sleep` a call, sends `sig` after `after`
    seconds (randomised a little, printed); the exit status, stderr and seconds to stop."""
    import random
    import signal as signals
    import subprocess
    import time

    after += random.uniform(0, 0.5)
    p = subprocess.Popen([sys.executable, "-c", THREAD_JOB.replace("{sleep}", str(sleep))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    time.sleep(after)
    p.send_signal(getattr(signals, sig))
    t0 = time.monotonic()
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError(f"{sig} after {after:.2f} s did not stop the thread-mode job")
    return p.returncode, err, time.monotonic() - t0, after


# SIGINT: Python's KeyboardInterrupt, which ends the program as killed by SIGINT (-2).
@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", -2)])
@pytest.mark.parametrize("sleep,times", [(0.0001, 5), (5, 1)])
def test_a_signal_stops_a_thread_mode_job_promptly_even_inside_a_call(sig, code, sleep, times):
    """The functions' threads belong to the program: a signal ends it as in process mode, also
    while a function is in a long call. Short calls five times at random moments: the abort this
    guards against (a thread taking the GIL during finalization) came in one run of five."""
    for _ in range(times):
        status, err, _, after = stop_thread_job(sig, sleep)
        assert status == code, f"{sig} after {after:.2f} s: {err}"
        assert "Fatal Python error" not in err and "Segmentation" not in err, err


def test_a_function_still_in_a_call_10_s_into_the_exit_is_not_waited_for():
    status, err, took, _ = stop_thread_job("SIGTERM", 60)
    assert status == 70, err
    assert "thread-mode function(s) still in a call 10s after the exit began" in err, err
    assert took < 30, took
