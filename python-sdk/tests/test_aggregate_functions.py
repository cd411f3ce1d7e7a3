"""Aggregate functions (``udaf``, ``AggregateFunction``) in ``group_by(...).select``,
``aggregate``, tumbling and sliding windows and SQL, in streaming mode with an updating
changelog and in batch mode. Accumulators belong to the engine (the state link): a worker gets
them with a bundle's rows and gives them back with the result, so results and metric totals are
exact, also when workers are SIGKILLed."""

from __future__ import annotations

import datetime
import os
import random
import textwrap

import pytest

from conftest import RandomKills, fault_outcome, make_env, run_program, value
from weir.common import Row
from weir.table import DataTypes
from weir.table.expressions import col, lit
from weir.table.udf import AggregateFunction, UserDefinedFunction, udaf
from weir.table.window import Slide, Tumble

SEED = int(os.environ.get("WEIR_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))


class WeightedAvg(AggregateFunction):
    """PyFlink's documentation example: a Row accumulator updated in place."""

    def create_accumulator(self):
        return Row(0, 0)

    def get_value(self, accumulator):
        return None if accumulator[1] == 0 else accumulator[0] / accumulator[1]

    def accumulate(self, accumulator, value, weight):
        accumulator[0] += value * weight
        accumulator[1] += weight

    def retract(self, accumulator, value, weight):
        accumulator[0] -= value * weight
        accumulator[1] -= weight


class CountingSum(AggregateFunction):
    """A sum that counts, in its metric group, the rows it accumulates and retracts."""

    def open(self, ctx):
        g = ctx.get_metric_group().add_group("agg")
        self.added = g.counter("accumulated")
        self.removed = g.counter("retracted")

    def create_accumulator(self):
        return [0]

    def accumulate(self, acc, v):
        self.added.inc()
        acc[0] += v

    def retract(self, acc, v):
        self.removed.inc()
        acc[0] -= v

    def get_value(self, acc):
        return acc[0]


wavg = udaf(WeightedAvg(), result_type=DataTypes.DOUBLE(), name="wavg")


def final(table):
    """The table a changelog ends as: +I/+U add a row, -U/-D remove one (checked present)."""
    state: list = []
    for r in table.execute().collect():
        kind = r.get_row_kind().value
        if kind in (0, 2):
            state.append(tuple(r))
        else:
            assert tuple(r) in state, f"{r} retracted but never emitted"
            state.remove(tuple(r))
    return sorted(state)


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_group_by_select_aggregate_and_sql_give_the_functions_values(streaming):
    env = make_env(streaming=streaming)
    t = env.from_elements([("a", 1, 2), ("b", 5, 1), ("a", 4, 1), ("c", 3, 0), ("a", 7, 1)], ["k", "v", "w"])
    expected = [("a", (2 + 4 + 7) / 4), ("b", 5.0), ("c", None)]
    assert final(t.group_by(col("k")).select(col("k"), wavg(col("v"), col("w")).alias("avg"))) == expected
    # Mixed with built-in aggregates, in one operator.
    mixed = t.group_by(col("k")).select(col("k"), wavg(col("v"), col("w")), col("v").sum, col("v").count)
    assert final(mixed) == [("a", 3.25, 12, 3), ("b", 5.0, 5, 1), ("c", None, 3, 1)]
    # A global aggregate.
    assert final(t.select(wavg(col("v"), col("w")).alias("all"))) == [((2 + 5 + 4 + 7) / 5,)]

    # aggregate(): a ROW result becomes columns, named by the alias.
    class MinMax(AggregateFunction):
        def create_accumulator(self):
            return Row(None, None)

        def accumulate(self, acc, v):
            acc[0] = v if acc[0] is None else min(acc[0], v)
            acc[1] = v if acc[1] is None else max(acc[1], v)

        def retract(self, acc, v):
            raise NotImplementedError

        def get_value(self, acc):
            return Row(acc[0], acc[1])

    row_type = DataTypes.ROW([DataTypes.FIELD("lo", DataTypes.BIGINT()), DataTypes.FIELD("hi", DataTypes.BIGINT())])
    mm = udaf(MinMax(), result_type=row_type)
    got = final(t.group_by(col("k")).aggregate(mm(col("v")).alias("small", "big")).select(col("k"), col("big"), col("small")))
    assert got == [("a", 7, 1), ("b", 5, 5), ("c", 3, 3)]
    assert final(t.aggregate(mm(col("v"))).select(col("hi"))) == [(7,)]

    env.create_temporary_function("wavg", wavg)
    env.create_temporary_view("t", t)
    assert final(env.sql_query("SELECT k, wavg(v, w) FROM t GROUP BY k")) == expected
    sql = "SELECT k, wavg(v, w) AS a FROM t GROUP BY k HAVING wavg(v, w) > 4"
    assert final(env.sql_query(sql)) == [("b", 5.0)]


def test_an_updating_input_is_retracted_from_the_accumulators():
    # The inner aggregate updates its rows as the three inputs arrive; the outer function
    # retracts each old value before accumulating the new one.
    env = make_env(pipeline__name="agg-retract")
    parts = [env.from_elements([(k, i * 10 + k) for k in range(6)], ["id", "v"]) for i in range(3)]
    t = parts[0].union_all(parts[1]).union_all(parts[2])
    inner = t.group_by(col("id")).select(col("id"), col("v").sum.alias("s"), (col("id") % 2).alias("g"))
    f = udaf(CountingSum(), result_type=DataTypes.BIGINT())
    outer = inner.group_by(col("g")).select(col("g"), f(col("s")).alias("total"))
    # Each id sums to 30 + 3 * id; the ids of a group are 0, 2, 4 and 1, 3, 5.
    assert final(outer) == [(0, 90 + 3 * (0 + 2 + 4)), (1, 90 + 3 * (1 + 3 + 5))]
    text = env.metrics_text()
    added = value(text, "weir_user_agg_accumulated_total", job_name="agg-retract")
    removed = value(text, "weir_user_agg_retracted_total", job_name="agg-retract")
    # Every update of an id retracted its old sum: one row per id stays accumulated.
    assert removed and added - removed == 6, (added, removed)


def test_tumbling_and_sliding_windows_and_the_window_tvf_in_batch_mode():
    env = make_env(streaming=False)
    base = datetime.datetime(2026, 1, 1)
    data = [("a", 1, 1, 0), ("a", 3, 1, 4), ("b", 2, 2, 6), ("a", 10, 2, 12), ("b", 4, 1, 14)]
    t = env.from_elements(
        [(k, v, w, base + datetime.timedelta(seconds=s)) for k, v, w, s in data],
        DataTypes.ROW([
            DataTypes.FIELD("k", DataTypes.STRING()),
            DataTypes.FIELD("v", DataTypes.BIGINT()),
            DataTypes.FIELD("w", DataTypes.BIGINT()),
            DataTypes.FIELD("ts", DataTypes.TIMESTAMP(3)),
        ]),
    )
    tumble = t.window(Tumble.over(lit(10).seconds).on(col("ts")).alias("win"))
    got = final(tumble.group_by(col("win"), col("k")).select(col("k"), col("win").start.alias("s"), wavg(col("v"), col("w")).alias("a")))
    at = lambda s: base + datetime.timedelta(seconds=s)  # noqa: E731
    assert got == [("a", at(0), 2.0), ("a", at(10), 10.0), ("b", at(0), 2.0), ("b", at(10), 4.0)]
    hop = t.window(Slide.over(lit(10).seconds).every(lit(5).seconds).on(col("ts")).alias("win"))
    got = final(hop.group_by(col("win")).select(col("win").start.alias("s"), wavg(col("v"), col("w")).alias("a")))
    assert got == [
        (at(-5), 2.0), (at(0), (1 + 3 + 4) / 4), (at(5), (4 + 20 + 4) / 5), (at(10), (20 + 4) / 3),
    ]
    env.create_temporary_function("wavg", wavg)
    env.create_temporary_view("ev", t)
    sql = """SELECT window_start, k, wavg(v, w) AS a FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '10' SECOND))
             GROUP BY window_start, window_end, k"""
    assert final(env.sql_query(sql)) == [(at(0), "a", 2.0), (at(0), "b", 2.0), (at(10), "a", 10.0), (at(10), "b", 4.0)]


def test_event_time_windows_in_streaming_mode_fire_exact_values():
    job = "agg-windows"
    env = make_env(pipeline__name=job, parallelism__default="2", python__fn_execution__bundle__size="500")
    n = 50_000
    env.execute_sql(
        f"""CREATE TABLE events (x BIGINT, ts AS TO_TIMESTAMP_LTZ(x * 10, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
            WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '0',
                  'fields.x.end' = '{n - 1}', 'rows-per-second' = '0')"""
    )
    f = udaf(CountingSum(), result_type=DataTypes.BIGINT())
    env.create_temporary_function("csum", f)
    sql = """SELECT window_start, x % 3 AS k, csum(x) AS s FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))
             GROUP BY window_start, window_end, x % 3"""
    out = env.sql_query(sql).execute().collect()
    got = {}
    for r in out:
        assert r.get_row_kind().value == 0, "a window fires once"
        got[(int(r[0].timestamp()), r[1])] = r[2]
    want = {}
    for x in range(n):
        key = ((x * 10) // 10_000 * 10, x % 3)
        want[key] = want.get(key, 0) + x
    assert got == want
    assert value(env.metrics_text(), "weir_user_agg_accumulated_total", job_name=job) == n


def datagen(env, n, rate=None, name="src"):
    rate_opt = f", 'rows-per-second' = '{rate}'" if rate else ""
    env.execute_sql(
        f"""CREATE TABLE {name} (x BIGINT, ts AS PROCTIME()) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}'{rate_opt},
            'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
    )
    return env.from_path(name)


def test_aggregate_metrics_are_exact_in_a_real_prometheus(prometheus_for):
    job = "agg-metrics"
    env = make_env(pipeline__name=job, parallelism__default="2")
    n = 30_000
    f = udaf(CountingSum(), result_type=DataTypes.BIGINT())
    t = datagen(env, n).group_by(col("x") % 7).select((col("x") % 7).alias("k"), f(col("x")).alias("s"))
    assert final(t) == [(k, sum(x for x in range(1, n + 1) if x % 7 == k)) for k in range(7)]
    text = env.metrics_text()
    assert value(text, "weir_user_agg_accumulated_total", job_name=job) == n
    prom = prometheus_for(env.start_metrics())
    assert prom.wait_for(f'sum(weir_user_agg_accumulated_total{{job_name="{job}"}})', n) == n
    assert prom.wait_for(f'sum(weir_python_udf_rows_total{{job_name="{job}"}})', n) == n


JOB = """
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.expressions import col
    from weir.table.udf import udaf, AggregateFunction

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("metrics.reporter.prom.port", "0")
    {config}
    t = env.from_elements([(i % 3, i) for i in range(1, 101)], ["k", "x"])

    class Fragile(AggregateFunction):
        def open(self, ctx):
            self.rows = ctx.get_metric_group().counter("rows")

        def create_accumulator(self):
            return [0]

        def accumulate(self, acc, x):
            if x == 77:
                raise ValueError("bad value 77")
            self.rows.inc()
            acc[0] += x

        def get_value(self, acc):
            return acc[0]

    f = udaf(Fragile(), result_type="BIGINT")
    try:
        out = list(t.group_by(col("k")).select(col("k"), f(col("x")).alias("s")).execute().collect())
        print("ROWS", sorted(tuple(r) for r in out))
    except Exception as e:
        print("ERROR", type(e).__name__, e)
    print(env.metrics_text())
"""


def test_an_exception_names_the_function_and_row_or_skips_exactly_that_row():
    out = run_program(textwrap.dedent(JOB.replace("{config}", ""))).stdout
    assert "ERROR" in out and "`Fragile` raised ValueError: bad value 77" in out and "(77,)" in out, out
    skip = 'env.get_config().set("python.udf.on-error", "skip")'
    out = run_program(textwrap.dedent(JOB.replace("{config}", skip))).stdout
    sums = {k: sum(x for x in range(1, 101) if x % 3 == k and x != 77) for k in range(3)}
    assert f"ROWS {sorted(sums.items())}" in out, out
    metrics = "\n".join(line for line in out.splitlines() if line.startswith(("# ", "weir_")))
    assert value(metrics, "weir_python_udf_errors_total", job_name="collect") == 1
    assert value(metrics, "weir_user_rows_total", job_name="collect") == 99


def test_misuse_is_a_clear_error():
    env = make_env()
    t = env.from_elements([(1, 2)], ["a", "b"])
    with pytest.raises(TypeError, match="udaf\\(\\) takes an AggregateFunction"):
        udaf(lambda x: x, result_type="BIGINT")
    with pytest.raises(TypeError, match="needs result_type"):
        udaf(CountingSum())

    class NoRetract(AggregateFunction):
        def create_accumulator(self):
            return [0]

        def accumulate(self, acc, v):
            acc[0] += v

        def get_value(self, acc):
            return acc[0]

    # An updating input needs retract().
    parts = [env.from_elements([(1, i)], ["id", "v"]) for i in range(3)]
    inner = parts[0].union_all(parts[1]).union_all(parts[2]).group_by(col("id")).select(col("id"), col("v").sum.alias("s"))
    nr = udaf(NoRetract(), result_type="BIGINT")
    with pytest.raises(Exception, match="NoRetract does not implement retract"):
        final(inner.group_by(col("id")).select(nr(col("s"))))
    from weir.table.window import Session

    win = make_env(streaming=False).from_elements([(1, datetime.datetime(2026, 1, 1))], ["a", "ts"])
    with pytest.raises(Exception, match="session windows, which merge accumulators, do not take them yet"):
        win.window(Session.with_gap(lit(5).seconds).on(col("ts")).alias("w")).group_by(col("w")).select(nr(col("a"))).execute()

    class Unpicklable(NoRetract):
        def create_accumulator(self):
            import threading

            return [threading.Lock()]

        def accumulate(self, acc, v):
            pass

        def get_value(self, acc):
            return 1

    up = udaf(Unpicklable(), result_type="BIGINT")
    with pytest.raises(Exception, match="pickling the accumulator"):
        final(t.group_by(col("a")).select(up(col("b"))))


def test_a_hundred_thousand_groups_in_one_job():
    env = make_env(streaming=False, python__fn_execution__bundle__size="1000")
    n = 200_000
    f = udaf(CountingSum(), result_type=DataTypes.BIGINT())
    t = datagen(env, n).group_by(col("x") % 100_000).select(f(col("x")).alias("s"))
    got = [r.s for r in t.execute().collect()]
    assert len(got) == 100_000 and sum(got) == n * (n + 1) // 2


def test_sigkills_of_aggregate_workers_lose_nothing():
    rng = random.Random(SEED + 4)
    print(f"seed {SEED + 4} (WEIR_FAULT_SEED={SEED})")
    job = "agg-kill"
    env = make_env(pipeline__name=job, parallelism__default="2", **{"python.worker.restart.max-attempts": "4"})
    n = 300_000
    f = udaf(CountingSum(), result_type=DataTypes.BIGINT())
    t = datagen(env, n, rate=100_000).group_by(col("x") % 50).select((col("x") % 50).alias("k"), f(col("x")).alias("s"))
    with RandomKills(rng, 3) as k:
        got = final(t)
    assert k.landed, "no kill landed"
    assert got == [(g, sum(range(g if g else 50, n + 1, 50))) for g in range(50)], "exact sums"
    text = env.metrics_text()
    assert value(text, "weir_user_agg_accumulated_total", job_name=job) == n
    assert value(text, "weir_python_udf_worker_restarts_total", job_name=job) == len(k.landed)
    fault_outcome(f"{len(k.landed)} SIGKILL(s) of aggregate function workers, p=2, seed {SEED + 4}", "exact")


def test_create_temporary_function_language_python_registers_every_kind(tmp_path, monkeypatch):
    (tmp_path / "kinds_mod.py").write_text(
        textwrap.dedent(
            """
            from weir.table import DataTypes
            from weir.table.udf import AggregateFunction, UserDefinedFunction, udaf, udtf

            @udtf(result_types=[DataTypes.STRING()])
            def letters(s):
                yield from s

            class Longest(AggregateFunction):
                def create_accumulator(self):
                    return [""]

                def accumulate(self, acc, s):
                    if len(s) > len(acc[0]):
                        acc[0] = s

                def get_value(self, acc):
                    return acc[0]

            longest = udaf(Longest(), result_type=DataTypes.STRING())
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    env = make_env(streaming=False)
    env.create_temporary_view("w", env.from_elements([(1, "ab"), (1, "xyz"), (2, "q")], ["k", "s"]))
    env.execute_sql("CREATE TEMPORARY FUNCTION letters AS 'kinds_mod.letters' LANGUAGE PYTHON")
    env.execute_sql("CREATE TEMPORARY SYSTEM FUNCTION longest AS 'kinds_mod.longest' LANGUAGE PYTHON")
    got = final(env.sql_query("SELECT k, longest(s) AS l FROM w GROUP BY k"))
    assert got == [(1, "xyz"), (2, "q")]
    got = final(env.sql_query("SELECT c, COUNT(*) FROM w, LATERAL TABLE(letters(s)) AS T(c) GROUP BY c"))
    assert got == [("a", 1), ("b", 1), ("q", 1), ("x", 1), ("y", 1), ("z", 1)]


# -- pandas aggregate functions: a Series per argument, one call per group --


class PandasSum(UserDefinedFunction):
    """A pandas aggregate with open(): counts its calls and the rows it saw."""

    def open(self, ctx):
        g = ctx.get_metric_group().add_group("pagg")
        self.calls = g.counter("calls")
        self.rows = g.counter("rows")

    def __call__(self, v):
        self.calls.inc()
        self.rows.inc(len(v))
        return v.sum()


def pandas_udaf():
    pytest.importorskip("pandas")
    return udaf(PandasSum(), result_type="BIGINT", func_type="pandas")


def test_pandas_aggregates_in_batch_group_by_windows_and_sql():
    pytest.importorskip("pandas")
    env = make_env(streaming=False)
    t = env.from_elements([("a", 1, 2), ("b", 5, 1), ("a", 4, 1), ("c", 3, 0), ("a", 7, 1)], ["k", "v", "w"])

    @udaf(result_type=DataTypes.DOUBLE(), func_type="pandas")
    def mean(v):
        return v.mean()

    @udaf(result_type=DataTypes.BIGINT(), func_type="pandas")
    def weighted(v, w):
        return (v * w).sum()

    got = final(t.group_by(col("k")).select(col("k"), mean(col("v")), weighted(col("v"), col("w"))))
    assert got == [("a", 4.0, 13), ("b", 5.0, 5), ("c", 3.0, 0)]

    # PyFlink's class form: an AggregateFunction whose accumulate gets the group's Series once.
    class Spread(AggregateFunction):
        def open(self, ctx):
            self.groups = ctx.get_metric_group().counter("spread_groups")

        def create_accumulator(self):
            return []

        def accumulate(self, acc, v):
            self.groups.inc()
            acc.append(v.max() - v.min())

        def get_value(self, acc):
            return acc[0]

    spread = udaf(Spread(), result_type=DataTypes.BIGINT(), func_type="pandas")
    assert final(t.group_by(col("k")).select(col("k"), spread(col("v")))) == [("a", 6), ("b", 0), ("c", 0)]
    assert value(env.metrics_text(), "weir_user_spread_groups_total") == 3
    env.create_temporary_function("mean_udaf", mean)
    env.create_temporary_view("t", t)
    assert final(env.sql_query("SELECT k, mean_udaf(v) FROM t GROUP BY k")) == [("a", 4.0), ("b", 5.0), ("c", 3.0)]
    # Not mixed with other aggregate functions (as in PyFlink), and not without complete groups.
    with pytest.raises(Exception, match="cannot be mixed"):
        t.group_by(col("k")).select(mean(col("v")), wavg(col("v"), col("w"))).execute()
    s = make_env()
    with pytest.raises(Exception, match="use it in batch mode or in a window"):
        s.from_elements([(1,)], ["v"]).group_by(col("v")).select(mean(col("v"))).execute()


def test_pandas_aggregate_in_a_streaming_window_is_exact_with_metrics_in_prometheus(prometheus_for):
    pytest.importorskip("pandas")
    job = "pagg-window"
    env = make_env(pipeline__name=job, parallelism__default="2")
    n = 40_000
    env.execute_sql(
        f"""CREATE TABLE events (x BIGINT, ts AS TO_TIMESTAMP_LTZ(x * 10, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
            WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '0',
                  'fields.x.end' = '{n - 1}', 'rows-per-second' = '0')"""
    )
    f = pandas_udaf()
    w = env.from_path("events").window(Tumble.over(lit(10).seconds).on(col("ts")).alias("w"))
    out = w.group_by(col("w"), col("x") % 2).select(col("w").start.alias("s"), (col("x") % 2).alias("k"), f(col("x")).alias("total"))
    got = {(int(r.s.timestamp()), r.k): r.total for r in out.execute().collect()}
    want = {}
    for x in range(n):
        key = (x // 1000 * 10, x % 2)
        want[key] = want.get(key, 0) + x
    assert got == want
    text = env.metrics_text()
    assert value(text, "weir_user_pagg_rows_total", job_name=job) == n
    assert value(text, "weir_user_pagg_calls_total", job_name=job) == len(want)
    prom = prometheus_for(env.start_metrics())
    assert prom.wait_for(f'sum(weir_user_pagg_rows_total{{job_name="{job}"}})', n) == n


PANDAS_JOB = """
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.expressions import col
    from weir.table.udf import udaf

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("metrics.reporter.prom.port", "0")
    {config}
    t = env.from_elements([(i % 10, i) for i in range(1, 101)], ["k", "x"])

    @udaf(result_type="BIGINT", func_type="pandas")
    def fragile(x):
        if (x == 77).any():
            raise ValueError("bad value 77")
        return x.sum()

    try:
        out = list(t.group_by(col("k")).select(col("k"), fragile(col("x")).alias("s")).execute().collect())
        print("ROWS", sorted(tuple(r) for r in out))
    except Exception as e:
        print("ERROR", type(e).__name__, e)
    print(env.metrics_text())
"""


def test_a_pandas_aggregate_exception_names_the_group_or_gives_it_no_value():
    pytest.importorskip("pandas")
    out = run_program(textwrap.dedent(PANDAS_JOB.replace("{config}", ""))).stdout
    assert "ERROR" in out and "`fragile` raised ValueError: bad value 77" in out and "(7,)" in out, out
    skip = 'env.get_config().set("python.udf.on-error", "skip")'
    out = run_program(textwrap.dedent(PANDAS_JOB.replace("{config}", skip))).stdout
    sums = sorted((k, None if k == 7 else sum(x for x in range(1, 101) if x % 10 == k)) for k in range(10))
    assert f"ROWS {sums}" in out, out
    metrics = "\n".join(line for line in out.splitlines() if line.startswith(("# ", "weir_")))
    assert value(metrics, "weir_python_udf_errors_total", job_name="collect") == 10  # the group's rows


def test_sigkills_of_pandas_aggregate_workers_lose_nothing():
    pytest.importorskip("pandas")
    rng = random.Random(SEED + 5)
    print(f"seed {SEED + 5} (WEIR_FAULT_SEED={SEED})")
    job = "pagg-kill"
    env = make_env(pipeline__name=job, parallelism__default="2", **{"python.worker.restart.max-attempts": "4"})
    n = 300_000
    env.execute_sql(
        f"""CREATE TABLE events (x BIGINT, ts AS TO_TIMESTAMP_LTZ(x, 3), WATERMARK FOR ts AS ts)
            WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', 'fields.x.start' = '0',
                  'fields.x.end' = '{n - 1}', 'rows-per-second' = '100000')"""
    )
    f = pandas_udaf()
    w = env.from_path("events").window(Tumble.over(lit(100).millis).on(col("ts")).alias("w"))
    t = w.group_by(col("w")).select(col("w").start.alias("s"), f(col("x")).alias("total"))
    with RandomKills(rng, 3) as k:
        got = {round(r.s.timestamp() * 1000): r.total for r in t.execute().collect()}
    assert k.landed, "no kill landed"
    assert got == {s: sum(range(s, s + 100)) for s in range(0, n, 100)}, "every window exact"
    text = env.metrics_text()
    assert value(text, "weir_user_pagg_rows_total", job_name=job) == n
    assert value(text, "weir_user_pagg_calls_total", job_name=job) == n // 100
    assert value(text, "weir_python_udf_worker_restarts_total", job_name=job) == len(k.landed)
    fault_outcome(f"{len(k.landed)} SIGKILL(s) of pandas aggregate workers, p=2, seed {SEED + 5}", "exact")
