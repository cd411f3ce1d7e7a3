"""Table functions (``udtf``, ``TableFunction``): rows per row in ``join_lateral``,
``left_outer_join_lateral``, ``flat_map`` and SQL ``LATERAL TABLE``, with the metric group,
errors and restart guarantees of scalar UDFs: results and metric totals are exact, also when
workers are SIGKILLed."""

from __future__ import annotations

import os
import random
import textwrap

import pytest

from conftest import RandomKills, fault_outcome, make_env, run_program, value
from weir.common import Row
from weir.table import DataTypes
from weir.table.expressions import col
from weir.table.udf import TableFunction, udtf

SEED = int(os.environ.get("WEIR_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))


@udtf(result_types=[DataTypes.STRING(), DataTypes.INT()])
def split(s):
    for w in s.split(","):
        if w:
            yield w, len(w)


class Repeat(TableFunction):
    """Yields x, x times (0 for x <= 0); counts input rows and yielded rows."""

    def open(self, ctx):
        g = ctx.get_metric_group().add_group("tf")
        self.rows = g.counter("rows")
        self.out = g.counter("yielded")

    def eval(self, x):
        self.rows.inc()
        for _ in range(x % 4):
            self.out.inc()
            yield x


def rows(table):
    return sorted(tuple(r) for r in table.execute().collect())


def words(env):
    return env.from_elements([(1, "a,bb"), (2, ""), (3, "ccc,d,ee")], ["id", "s"])


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_lateral_joins_flat_map_and_sql_give_the_rows_the_function_yields(streaming):
    env = make_env(streaming=streaming)
    t = words(env)
    inner = t.join_lateral(split(col("s")).alias("w", "n")).select(col("id"), col("w"), col("n"))
    expected = [(1, "a", 1), (1, "bb", 2), (3, "ccc", 3), (3, "d", 1), (3, "ee", 2)]
    assert rows(inner) == expected
    # Row 2 yields nothing: dropped by the inner join, kept with NULLs by the outer one.
    outer = t.left_outer_join_lateral(split(col("s")).alias("w", "n")).select(col("id"), col("w"), col("n"))
    assert rows(outer) == sorted(expected + [(2, None, None)], key=lambda r: (r[0], r[1] or ""))
    # Columns are named f0, f1 unless aliased; a predicate filters the joined rows.
    assert [tuple(r) for r in t.join_lateral(split(col("s"))).execute().collect()][0][2:] in [("a", 1), ("bb", 2), ("ccc", 3)]
    assert rows(t.join_lateral(split(col("s")), col("f1") > 1).select(col("f0"))) == [("bb",), ("ccc",), ("ee",)]
    # flat_map: only the function's columns.
    assert rows(t.flat_map(split(col("s")).alias("word", "len"))) == sorted((w, n) for _, w, n in expected)
    env.create_temporary_function("split", split)
    env.create_temporary_view("words", t)
    sql = "SELECT id, w, n FROM words, LATERAL TABLE(split(s)) AS T(w, n)"
    assert rows(env.sql_query(sql)) == expected
    sql = "SELECT id, T.w FROM words LEFT JOIN LATERAL TABLE(split(s)) AS T(w, n) ON TRUE"
    assert rows(env.sql_query(sql)) == sorted([(i, w) for i, w, _ in expected] + [(2, None)], key=lambda r: (r[0], r[1] or ""))
    sql = "SELECT id, w FROM words JOIN LATERAL TABLE(split(s)) AS T(w, n) ON n > 1"
    assert rows(env.sql_query(sql)) == [(1, "bb"), (3, "ccc"), (3, "ee")]


def test_flat_map_of_a_function_gets_the_whole_row_and_rows_of_any_shape_count():
    env = make_env(streaming=False)
    t = env.from_elements([(1, "x,y"), (2, "z")], ["id", "data"])

    @udtf(result_types=[DataTypes.BIGINT(), DataTypes.STRING()])
    def explode(r: Row):
        # The row's fields by name, as in PyFlink's flat_map example; Rows, lists and tuples.
        for i, s in enumerate(r.data.split(",")):
            yield Row(r.id, s) if i == 0 else ([r.id * 10, s] if i == 1 else (r.id, s))

    assert rows(t.flat_map(explode)) == [(1, "x"), (2, "z"), (10, "y")]

    @udtf(result_types=DataTypes.STRING())
    def chars(s):
        return list(s)  # a one-column function may return single values

    assert rows(t.join_lateral(chars(col("data")).alias("c")).select(col("c"))) == [(",",), ("x",), ("y",), ("z",)]


def test_table_function_metrics_are_exact_in_a_real_prometheus(prometheus_for):
    job = "tf-metrics"
    env = make_env(pipeline__name=job, parallelism__default="2", python__fn_execution__bundle__size="700")
    n = 20_000
    env.execute_sql(
        f"""CREATE TABLE src (x INT) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}',
            'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
    )
    rep = udtf(Repeat(), result_types=[DataTypes.INT()])
    out = env.from_path("src").join_lateral(rep(col("x")).alias("y")).select(col("y"))
    got = [r.y for r in out.execute().collect()]
    want = sum(x % 4 for x in range(1, n + 1))
    assert len(got) == want and sum(got) == sum(x * (x % 4) for x in range(1, n + 1))
    text = env.metrics_text()
    assert value(text, "weir_user_tf_rows_total", job_name=job) == n
    assert value(text, "weir_user_tf_yielded_total", job_name=job) == want
    prom = prometheus_for(env.start_metrics())
    assert prom.wait_for(f'sum(weir_user_tf_yielded_total{{job_name="{job}"}})', want) == want
    assert prom.wait_for(f'sum(weir_python_udf_rows_total{{job_name="{job}"}})', n) == n


JOB = """
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.expressions import col
    from weir.table.udf import udtf, TableFunction

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("metrics.reporter.prom.port", "0")
    {config}
    t = env.from_elements([(i,) for i in range(1, 101)], ["x"])

    class Fragile(TableFunction):
        def open(self, ctx):
            self.rows = ctx.get_metric_group().counter("rows")

        def eval(self, x):
            if x == 77:
                raise ValueError("bad value 77")
            self.rows.inc()
            yield x, -x

    f = udtf(Fragile(), result_types=["BIGINT", "BIGINT"])
    try:
        out = list(t.join_lateral(f(col("x")).alias("a", "b")).select(col("a"), col("b")).execute().collect())
        print("ROWS", len(out), sum(r.a for r in out))
    except Exception as e:
        print("ERROR", type(e).__name__, e)
    print(env.metrics_text())
"""


def test_an_exception_names_the_function_and_row_or_skips_exactly_that_row():
    out = run_program(textwrap.dedent(JOB.replace("{config}", ""))).stdout
    assert "ERROR" in out and "`Fragile` raised ValueError: bad value 77" in out and "(77,)" in out, out
    skip = 'env.get_config().set("python.udf.on-error", "skip")'
    out = run_program(textwrap.dedent(JOB.replace("{config}", skip))).stdout
    assert f"ROWS 99 {sum(range(1, 101)) - 77}" in out, out
    metrics = "\n".join(line for line in out.splitlines() if line.startswith(("# ", "weir_")))
    assert value(metrics, "weir_python_udf_errors_total", job_name="collect") == 1
    assert value(metrics, "weir_user_rows_total", job_name="collect") == 99


def test_misuse_is_a_clear_error():
    env = make_env(streaming=False)
    t = words(env)
    with pytest.raises(Exception, match="`split` is a table function: it gives rows, not a value"):
        t.select(split(col("s"))).execute()
    with pytest.raises(Exception, match=r"1 names \(w\) for the 2 columns of `split`"):
        t.join_lateral(split(col("s")).alias("w"))
    with pytest.raises(Exception, match="the input already has a column `id`"):
        t.join_lateral(split(col("s")).alias("id", "n"))
    with pytest.raises(ValueError, match="several names only name the columns of a table function"):
        t.select(col("s").alias("a", "b"))
    env.create_temporary_function("split", split)
    env.create_temporary_view("words", t)
    with pytest.raises(Exception, match="LEFT JOIN LATERAL TABLE"):
        env.sql_query("SELECT id FROM words LEFT JOIN LATERAL TABLE(split(s)) AS T(w, n) ON n > 1")

    @udtf(result_types=[DataTypes.STRING(), DataTypes.INT()])
    def narrow(s):
        yield (s,)

    with pytest.raises(Exception, match="narrow"):
        list(t.join_lateral(narrow(col("s"))).execute().collect())


def test_sigkills_of_table_function_workers_lose_nothing():
    rng = random.Random(SEED + 3)
    print(f"seed {SEED + 3} (WEIR_FAULT_SEED={SEED})")
    job = "tf-kill"
    env = make_env(
        pipeline__name=job,
        parallelism__default="2",
        python__fn_execution__bundle__size="1000",
        **{"python.worker.restart.max-attempts": "4"},
    )
    n = 300_000
    env.execute_sql(
        f"""CREATE TABLE src (x INT) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}',
            'rows-per-second' = '100000', 'fields.x.kind' = 'sequence', 'fields.x.start' = '1',
            'fields.x.end' = '{n}')"""
    )
    rep = udtf(Repeat(), result_types=[DataTypes.INT()])
    t = env.from_path("src").flat_map(rep(col("x")))
    with RandomKills(rng, 3) as k:
        got = [r[0] for r in t.execute().collect()]
    assert k.landed, "no kill landed"
    want = sum(x % 4 for x in range(1, n + 1))
    assert len(got) == want and sum(got) == sum(x * (x % 4) for x in range(1, n + 1)), "every row exactly once"
    text = env.metrics_text()
    assert value(text, "weir_user_tf_rows_total", job_name=job) == n
    assert value(text, "weir_user_tf_yielded_total", job_name=job) == want
    assert value(text, "weir_python_udf_worker_restarts_total", job_name=job) == len(k.landed)
    fault_outcome(f"{len(k.landed)} SIGKILL(s) of table function workers, p=2, seed {SEED + 3}", "exact")
