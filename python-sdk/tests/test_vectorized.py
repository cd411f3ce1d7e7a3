"""Vectorized scalar UDFs: ``func_type="pandas"`` (PyFlink's Pandas UDFs: a Series per argument,
a DataFrame for a ROW) and ``func_type="arrow"`` (a pyarrow Array per argument, straight from the
engine's Arrow data). They get the same metric group, errors and restart guarantees as
row-at-a-time UDFs: results and metric totals are exact, also when workers are SIGKILLed."""

from __future__ import annotations

import os
import random
import textwrap

import pytest

from conftest import RandomKills, fault_outcome, make_env, run_program, value

pd = pytest.importorskip("pandas", reason="pandas UDFs need pandas (scripts/test.sh installs it)")
pa = pytest.importorskip("pyarrow", reason="vectorized UDFs need pyarrow (scripts/test.sh installs it)")
import pyarrow.compute as pc  # noqa: E402

from weir.table import DataTypes  # noqa: E402
from weir.table.expressions import col  # noqa: E402
from weir.table.udf import ScalarFunction, udf  # noqa: E402

SEED = int(os.environ.get("WEIR_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))


class PlusOne(ScalarFunction):
    """Counts rows and calls; records each batch's length."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def open(self, ctx):
        g = ctx.get_metric_group().add_group("vec", self.kind)
        self.rows = g.counter("rows")
        self.calls = g.counter("calls")
        self.batch = g.distribution("batch_rows")

    def eval(self, x):
        n = len(x)
        self.rows.inc(n)
        self.calls.inc()
        self.batch.update(n)
        if self.kind == "pandas":
            assert isinstance(x, pd.Series), type(x)
            return x + 1
        assert isinstance(x, pa.Array), type(x)
        return pc.add(x, 1)


def source(env, n, rate=None, name="src"):
    rate_opt = f", 'rows-per-second' = '{rate}'" if rate else ""
    env.execute_sql(
        f"""CREATE TABLE {name} (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '{n}'{rate_opt},
            'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
    )
    return env.from_path(name)


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_results_and_metrics_are_exact_in_batches_of_the_configured_size(kind, prometheus_for):
    job = f"vec-{kind}"
    n = 25_000
    env = make_env(
        pipeline__name=job,
        parallelism__default="2",
        python__fn_execution__bundle__size="4000",
        **{"python.fn-execution.arrow.batch.size": "1500"},
    )
    f = udf(PlusOne(kind), result_type=DataTypes.BIGINT(), func_type=kind)
    ys = sorted(r.y for r in source(env, n).select(f(col("x")).alias("y")).execute().collect())
    assert ys == list(range(2, n + 2))
    text = env.metrics_text()
    assert value(text, "weir_user_vec_rows_total", job_name=job, vec=kind) == n
    # No call got more than arrow.batch.size rows, and the batches add up to the rows.
    assert max(value(text, "weir_user_vec_batch_rows_max", job_name=job, vec=kind, subtask=s) for s in "01") <= 1500
    assert value(text, "weir_user_vec_batch_rows_sum", job_name=job, vec=kind) == n
    calls = value(text, "weir_user_vec_calls_total", job_name=job, vec=kind)
    assert n / 1500 <= calls < n / 100, calls
    # The same totals through a real Prometheus scrape.
    prom = prometheus_for(env.start_metrics())
    assert prom.wait_for(f'sum(weir_user_vec_rows_total{{job_name="{job}"}})', n) == n
    assert prom.wait_for(f'sum(weir_python_udf_rows_total{{job_name="{job}"}})', n) == n


def test_pandas_udfs_take_several_series_and_return_strings_and_nullable_integers():
    env = make_env(pipeline__name="vec-types")

    @udf(result_type=DataTypes.STRING(), func_type="pandas")
    def label(name, score):
        assert isinstance(name, pd.Series) and isinstance(score, pd.Series)
        return name.str.upper() + ":" + (score * 2).astype(str)

    @udf(result_type=DataTypes.BIGINT(), func_type="pandas")
    def maybe(x):
        # An integer Series with a missing value is float64 in pandas; whole values convert back.
        return x.where(x != 2)

    @udf(result_type=DataTypes.DOUBLE(), func_type="arrow")
    def half(x):
        return pc.divide(pc.cast(x, pa.float64()), 2)

    t = env.from_elements([("ann", 1.5, 1), ("bob", 2.0, 2)], ["name", "score", "a"])
    rows = t.select(
        label(col("name"), col("score")).alias("l"), maybe(col("a")).alias("m"), half(col("a")).alias("h")
    ).execute().collect()
    got = sorted((r.l, r.m, r.h) for r in rows)
    assert got == [("ANN:3.0", 1, 0.5), ("BOB:4.0", None, 1.0)], got


def run_job(code: str) -> str:
    p = run_program(textwrap.dedent(code), timeout=180)
    return p.stdout + p.stderr


JOB = """
    import pandas as pd, pyarrow as pa
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.expressions import col
    from weir.table.udf import udf

    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("metrics.reporter.prom.port", "0")
    {config}
    t = env.from_elements([(i,) for i in range(1, 2001)], ["x"])

    {udf}

    try:
        rows = list(t.select(f(col("x")).alias("y")).execute().collect())
        print("ROWS", len(rows), sum(r.y for r in rows if r.y is not None))
    except Exception as e:
        print("ERROR", type(e).__name__, e)
    print(env.metrics_text())
"""


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            '@udf(result_type="BIGINT", func_type="pandas")\n    def f(x):\n        return x.head(3)',
            "pandas UDF `f` returned 3 values for a batch of 2000 rows",
        ),
        (
            '@udf(result_type="BIGINT", func_type="pandas")\n    def f(x):\n        return list(x)',
            "pandas UDF `f` returned list; return a pandas.Series of 2000 values",
        ),
        (
            '@udf(result_type="BIGINT", func_type="arrow")\n    def f(x):\n        return x.to_pylist()',
            "arrow UDF `f` returned list; return a pyarrow.Array of 2000 values",
        ),
        (
            '@udf(result_type="BIGINT", func_type="arrow")\n    def f(x):\n        return pa.array(["a"] * len(x))',
            "function `f` returned values of type STRING (Arrow Utf8) where BIGINT was declared",
        ),
        (
            '@udf(result_type="BIGINT", func_type="pandas")\n    def f(x):\n        return x / 3',
            "is not a whole number, and BIGINT was declared",
        ),
        (
            # Dictionary-encoded strings are decoded, not parsed as numbers.
            '@udf(result_type="BIGINT", func_type="arrow")\n    def f(x):\n        return pa.array(["1"] * len(x)).dictionary_encode()',
            "function `f` returned values of type STRING (Arrow Utf8) where BIGINT was declared",
        ),
    ],
    ids=["wrong-length", "pandas-not-a-series", "arrow-not-an-array", "wrong-type", "not-whole", "dictionary"],
)
def test_a_wrong_result_fails_the_job_naming_the_udf_expected_and_actual(body, expected):
    out = run_job(JOB.replace("{config}", "").replace("{udf}", body))
    assert "ERROR" in out and expected in out, out


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_an_exception_names_the_row_or_skips_exactly_that_row(kind):
    # 2000 rows in one bundle, four batches of 500; row 1777 is in the last one. Rows are
    # counted after the check, so each row that came out is counted once only if no batch
    # that succeeded is called again while the failing one is searched row by row.
    bad = "(x == 1777).any()" if kind == "pandas" else "pc.any(pc.equal(x, 1777)).as_py()"
    body = f"""import pyarrow.compute as pc
    from weir.table.udf import ScalarFunction

    class Fragile(ScalarFunction):
        def open(self, ctx):
            self.rows = ctx.get_metric_group().counter("rows")

        def eval(self, x):
            if {bad}:
                raise ValueError("bad value 1777")
            self.rows.inc(len(x))
            return x * 2 if {kind!r} == "pandas" else pc.multiply(x, 2)

    f = udf(Fragile(), result_type="BIGINT", func_type="{kind}")"""
    config = 'env.get_config().set("python.fn-execution.arrow.batch.size", "500")'
    out = run_job(JOB.replace("{config}", config).replace("{udf}", body))
    assert "ERROR" in out and "bad value 1777" in out and "(1777,)" in out and "`Fragile`" in out, out
    skip = config + '\n    env.get_config().set("python.udf.on-error", "skip")'
    out = run_job(JOB.replace("{config}", skip).replace("{udf}", body))
    total = sum(2 * i for i in range(1, 2001)) - 2 * 1777
    assert f"ROWS 1999 {total}" in out, out
    metrics = "\n".join(line for line in out.splitlines() if line.startswith(("# ", "weir_")))
    assert value(metrics, "weir_python_udf_errors_total", job_name="collect") == 1, out
    assert value(metrics, "weir_user_rows_total", job_name="collect") == 1999, out


def test_a_pandas_udf_without_pandas_says_what_to_install():
    out = run_job(
        """
        import sys
        sys.modules["pandas"] = None
        from weir.table.udf import udf
        try:
            udf(lambda x: x, result_type="BIGINT", func_type="pandas")
        except ImportError as e:
            print("IMPORT", e)
        try:
            udf(lambda x: x, result_type="BIGINT", func_type="numpy")
        except ValueError as e:
            print("VALUE", e)
        """
    )
    assert "IMPORT func_type='pandas' needs pandas and pyarrow (missing: pandas): pip install 'weir-stream[pandas]'" in out, out
    assert "VALUE func_type must be one of 'general', 'pandas', 'arrow', not 'numpy'" in out, out


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_sigkills_of_vectorized_workers_lose_nothing(kind):
    seed = SEED + (1 if kind == "pandas" else 2)
    rng = random.Random(seed)
    print(f"seed {seed} (WEIR_FAULT_SEED={SEED})")
    job = f"vec-kill-{kind}"
    env = make_env(
        pipeline__name=job,
        parallelism__default="2",
        python__fn_execution__bundle__size="2000",
        **{"python.fn-execution.arrow.batch.size": "500", "python.worker.restart.max-attempts": "4"},
    )
    n = 600_000
    f = udf(PlusOne(kind), result_type=DataTypes.BIGINT(), func_type=kind)
    t = source(env, n, rate=200_000).select(f(col("x")).alias("y"))
    with RandomKills(rng, 3) as k:
        ys = [r.y for r in t.execute().collect()]
    landed = k.landed
    assert landed, "no kill landed"
    assert len(ys) == n and sorted(ys) == list(range(2, n + 2)), "every row exactly once"
    text = env.metrics_text()
    assert value(text, "weir_user_vec_rows_total", job_name=job, vec=kind) == n
    assert value(text, "weir_python_udf_rows_total", job_name=job) == n
    assert value(text, "weir_python_udf_worker_restarts_total", job_name=job) == len(landed)
    fault_outcome(f"{len(landed)} SIGKILL(s) of {kind} UDF workers, p=2, seed {seed}", "exact")


def test_a_row_argument_is_a_dataframe_and_results_convert_to_the_declared_type():
    from weir.common import Row

    env = make_env(streaming=False)
    row_type = DataTypes.ROW([DataTypes.FIELD("a", DataTypes.BIGINT()), DataTypes.FIELD("b", DataTypes.DOUBLE())])
    t = env.from_elements([(Row(a=1, b=2.0),), (Row(a=3, b=4.5),)], DataTypes.ROW([DataTypes.FIELD("r", row_type)]))

    @udf(result_type=DataTypes.DOUBLE(), func_type="pandas")
    def total(r):
        assert isinstance(r, pd.DataFrame) and list(r.columns) == ["a", "b"], r
        return r["a"] + r["b"]

    @udf(result_type=DataTypes.TIMESTAMP(3), func_type="arrow")
    def stamp(r):
        # Microseconds where TIMESTAMP(3) (milliseconds) is declared: converted.
        return pa.array([1_700_000_000_123_000] * len(r), pa.timestamp("us"))

    @udf(result_type=DataTypes.STRING(), func_type="arrow")
    def kind(r):
        return pa.array(["x"] * len(r)).dictionary_encode()

    rows = t.select(total(col("r")).alias("t"), stamp(col("r")).alias("s"), kind(col("r")).alias("k")).execute().collect()
    got = sorted((r.t, r.s.isoformat(), r.k) for r in rows)
    assert got == [(3.0, "2023-11-14T22:13:20.123000", "x"), (7.5, "2023-11-14T22:13:20.123000", "x")], got


@pytest.mark.parametrize("bundle_size, largest", [(None, 3000), ("1000", 1000)])
def test_vectorized_operators_send_whole_arrow_batches_unless_the_bundle_size_is_set(bundle_size, largest):
    job = f"vec-bundles-{bundle_size}"
    config = {"python.fn-execution.arrow.batch.size": "3000"}
    if bundle_size:
        config["python.fn-execution.bundle.size"] = bundle_size
    env = make_env(streaming=False, pipeline__name=job, **config)
    f = udf(PlusOne("arrow"), result_type=DataTypes.BIGINT(), func_type="arrow")
    t = env.from_elements([(i,) for i in range(9000)], ["x"])
    assert len(list(t.select(f(col("x"))).execute().collect())) == 9000
    text = env.metrics_text()
    assert value(text, "weir_user_vec_batch_rows_max", job_name=job) == largest
    assert value(text, "weir_user_vec_calls_total", job_name=job) == 9000 // largest
