"""Hostile input through the Python API: deep and wide expressions built as objects, as
strings and in SQL must work (not crash the interpreter), and bad values must be errors."""

from __future__ import annotations

import functools
import operator

import pytest

from conftest import make_env, run_program
from weir.table.expressions import col, lit


def ten(env):
    env.execute_sql(
        "CREATE TABLE t (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10', "
        "'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '10')"
    )
    return env.from_path("t")


def values(table):
    return sorted(tuple(r) for r in table.execute().collect())


def test_wide_and_deep_expressions_from_objects_strings_and_sql():
    env = make_env(streaming=False)
    t = ten(env)
    assert values(t.filter(col("x").in_(*range(5, 10_005))).select(col("x"))) == [(i,) for i in range(5, 11)]
    total = functools.reduce(operator.add, [col("x")] * 2000)
    assert values(t.filter(col("x") == 3).select(total.alias("s"))) == [(6000,)]
    cond = functools.reduce(operator.and_, [col("x") > i % 5 for i in range(3000)])
    assert len(values(t.filter(cond).select(col("x")))) == 6
    assert values(t.filter(" AND ".join(["x > 4"] * 3000)).select(col("x"))) == [(i,) for i in range(5, 11)]
    s = env.sql_query("SELECT " + " + ".join(["x"] * 2000) + " AS s FROM t WHERE x = 1")
    assert values(s) == [(2000,)]


def test_too_deep_nesting_is_an_error_not_a_crash():
    env = make_env(streaming=False)
    ten(env)
    with pytest.raises(Exception) as e:
        env.sql_query("SELECT " + "(" * 5000 + "x" + ")" * 5000 + " FROM t")
    assert "more than 1000 levels deep" in str(e.value)


def test_cast_fails_as_in_flink_and_try_cast_gives_null():
    env = make_env(streaming=False)
    t = ten(env).filter(col("x") == 1)
    with pytest.raises(Exception) as e:
        values(t.select(lit("abc").cast("INT")))
    assert "Cannot cast string 'abc'" in str(e.value)
    assert values(t.select(lit("abc").try_cast("INT"), lit("12").try_cast("INT"))) == [(None, 12)]


def test_an_insert_with_a_udf_from_execute_sql_uses_the_drivers_interpreter(tmp_path):
    # No python3 on PATH: the workers must come from the driver's own interpreter.
    out = tmp_path / "out"
    p = run_program(
        f"""
from weir.table import EnvironmentSettings, TableEnvironment, DataTypes
from weir.table.udf import udf
env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
env.get_config().set("metrics.reporter.prom.port", "0")
env.create_temporary_function("twice", udf(lambda x: x * 2, result_type=DataTypes.BIGINT()))
env.execute_sql("CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '5', "
                "'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '5')")
env.execute_sql("CREATE TABLE dst (y BIGINT) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')")
env.execute_sql("INSERT INTO dst SELECT twice(x) FROM src").wait()
print("DONE")
""",
        env={"PATH": "/nonexistent"},
    )
    assert "DONE" in p.stdout, p.stdout + p.stderr
    got = sorted(int(line) for f in out.iterdir() for line in f.read_text().split())
    assert got == [2, 4, 6, 8, 10]
