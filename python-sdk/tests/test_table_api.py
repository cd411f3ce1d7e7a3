"""The PyFlink-style Table API and SQL from Python, with Python values in and out."""

from __future__ import annotations

import datetime
import decimal
import textwrap

import pytest

from conftest import make_env
from weir.common import Row, RowKind
from weir.table import DataTypes, ResultKind
from weir.table.expressions import call, call_sql, col, lit
from weir.table.udf import ScalarFunction, udf
from weir.table.window import Tumble


def collect(table):
    return [tuple(r) for r in table.execute().collect()]


def test_values_round_trip_as_pyflink_types():
    env = make_env(streaming=False)
    schema = DataTypes.ROW([
        DataTypes.FIELD("i", DataTypes.BIGINT()),
        DataTypes.FIELD("f", DataTypes.DOUBLE()),
        DataTypes.FIELD("s", DataTypes.STRING()),
        DataTypes.FIELD("d", DataTypes.DECIMAL(10, 2)),
        DataTypes.FIELD("ts", DataTypes.TIMESTAMP(3)),
        DataTypes.FIELD("day", DataTypes.DATE()),
        DataTypes.FIELD("tags", DataTypes.ARRAY(DataTypes.STRING())),
        DataTypes.FIELD("attrs", DataTypes.MAP(DataTypes.STRING(), DataTypes.BIGINT())),
        DataTypes.FIELD("b", DataTypes.BOOLEAN()),
    ])
    row = (
        1, 2.5, "x", decimal.Decimal("12.34"), datetime.datetime(2026, 11, 25, 10, 0, 1, 500000),
        datetime.date(2026, 11, 25), ["a", "b"], {"k": 7}, True,
    )
    out = list(env.from_elements([row, (None,) * 9], schema).execute().collect())
    assert tuple(out[0]) == row
    assert all(v is None for v in out[1])
    assert out[0].s == "x" and out[0]["d"] == decimal.Decimal("12.34") and out[0][0] == 1
    assert out[0].get_row_kind() == RowKind.INSERT


def test_relational_operations():
    env = make_env(streaming=False)
    t = env.from_elements([(1, "a", 10), (2, "b", 20), (3, "a", 30)], ["id", "k", "v"])
    assert collect(t.filter(col("v") > 15).select(col("id"), (col("v") * 2).alias("w"))) == [(2, 40), (3, 60)]
    agg = t.group_by(col("k")).select(col("k"), col("v").sum.alias("total"), col("id").count.alias("n"))
    assert sorted(collect(agg)) == [("a", 40, 2), ("b", 20, 1)]
    names = env.from_elements([("a", "alpha"), ("b", "beta")], ["key", "name"])
    joined = t.join(names).where(col("k") == col("key")).select(col("id"), col("name"))
    assert sorted(collect(joined)) == [(1, "alpha"), (2, "beta"), (3, "alpha")]
    assert sorted(collect(t.join(names, col("k") == col("key")).select(col("id")))) == [(1,), (2,), (3,)]
    with pytest.raises(AttributeError, match="a join needs its condition first"):
        t.join(names).select(col("id"))
    assert collect(t.order_by(col("v").desc).limit(2).select(col("id"))) == [(3,), (2,)]
    assert sorted(collect(t.select(col("k")).distinct())) == [("a",), ("b",)]
    assert len(collect(t.union_all(t))) == 6
    assert collect(t.add_columns((col("v") + 1).alias("v1")).drop_columns(col("k"), col("v")).limit(1)) == [(1, 11)]
    assert t.rename_columns(col("v").alias("value")).get_schema().get_field_names() == ["id", "k", "value"]
    assert collect(t.select(col("k").upper_case, lit("z"), col("v").cast(DataTypes.STRING())).limit(1)) == [("A", "z", "10")]


def test_tumbling_window_over_event_time():
    env = make_env()
    env.execute_sql(textwrap.dedent("""
        CREATE TABLE clicks (user_id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
        WITH ('connector' = 'datagen', 'number-of-rows' = '100', 'rows-per-second' = '0',
              'fields.user_id.kind' = 'sequence', 'fields.user_id.start' = '1', 'fields.user_id.end' = '100')
    """))
    t = env.from_path("clicks")
    w = t.window(Tumble.over(lit(10).minutes).on(col("ts")).alias("w"))
    out = collect(w.group_by(col("w")).select(col("w").start.alias("s"), col("user_id").count.alias("n")))
    assert sum(n for _, n in out) == 100


def test_updating_result_yields_changelog_kinds():
    env = make_env()
    t = env.from_elements([("a", 1), ("a", 2)], ["k", "v"])
    rows = list(t.group_by(col("k")).select(col("k"), col("v").sum.alias("s")).execute().collect())
    kinds = [r.get_row_kind() for r in rows]
    assert kinds[-1] in (RowKind.INSERT, RowKind.UPDATE_AFTER)
    assert rows[-1].s == 3
    # The final state: inserts and update-afters minus retractions.
    state = {}
    for r in rows:
        if r.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            state[r.k] = r.s
        else:
            state.pop(r.k, None)
    assert state == {"a": 3}


def test_sql_with_a_python_function_registered_by_name_and_by_path(tmp_path, monkeypatch):
    mod = tmp_path / "my_udfs.py"
    mod.write_text(textwrap.dedent("""
        from weir.table.udf import udf
        @udf(result_type='STRING')
        def shout(s):
            return s.upper() + '!'
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    env = make_env(streaming=False)
    env.execute_sql("CREATE TEMPORARY FUNCTION shout AS 'my_udfs.shout' LANGUAGE PYTHON")
    env.create_temporary_system_function("twice", udf(lambda x: x * 2, result_type=DataTypes.BIGINT()))
    env.create_temporary_view("t", env.from_elements([(1, "hi"), (2, "yo")], ["n", "s"]))
    out = collect(env.sql_query("SELECT twice(n), shout(s) FROM t WHERE twice(n) > 2"))
    assert out == [(4, "YO!")]
    assert env.execute_sql("CREATE TEMPORARY VIEW v AS SELECT * FROM t").get_result_kind() == ResultKind.SUCCESS
    result = env.execute_sql("SELECT shout(s) AS loud FROM t")
    assert result.get_result_kind() == ResultKind.SUCCESS_WITH_CONTENT
    assert sorted(r.loud for r in result.collect()) == ["HI!", "YO!"]
    with pytest.raises(ValueError, match="cannot load Python function 'nowhere.f'"):
        env.execute_sql("CREATE TEMPORARY FUNCTION f AS 'nowhere.f' LANGUAGE PYTHON")


def test_udf_kinds_and_nested_calls():
    class Add(ScalarFunction):
        def eval(self, a, b):
            return a + b

    class Callable:
        def __call__(self, x):
            return x * 10

    env = make_env(streaming=False)
    add = udf(Add(), result_type="BIGINT")
    tens = udf(Callable(), result_type=DataTypes.BIGINT())
    neg = udf(lambda x: -x, input_types=[DataTypes.BIGINT()], result_type=DataTypes.BIGINT())
    t = env.from_elements([(1, 2), (3, 4)], ["a", "b"])
    out = collect(t.select(add(col("a"), col("b")), tens(add(col("a"), lit(1))), neg(col("b")), call(add, col("b"), col("b"))))
    assert out == [(3, 20, -2, 4), (7, 40, -4, 8)]
    # Two different lambdas share the name `lambda`; each keeps its own registration.
    pos = udf(lambda x: x + 100, result_type="BIGINT")
    assert collect(t.select(neg(col("a")), pos(col("a")))) == [(-1, 101), (-3, 103)]


def test_insert_into_a_sink_and_print(tmp_path, capsys):
    env = make_env(streaming=False)
    out = tmp_path / "out"
    env.execute_sql(f"CREATE TABLE sink (k STRING, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv')")
    t = env.from_elements([("a", 1), ("b", 2)], ["k", "n"])
    t.execute_insert("sink").wait()
    written = "".join(p.read_text() for p in sorted(out.rglob("*")) if p.is_file())
    assert sorted(written.split()) == ["a,1", "b,2"]
    t.execute().print()
    printed = capsys.readouterr().out.splitlines()
    # As Flink prints it in batch mode: no change-kind column, widths from the types (STRING
    # 30, BIGINT 20), values right-aligned.
    border = "+" + "-" * 32 + "+" + "-" * 22 + "+"
    assert printed == [
        border,
        "|" + " " * 30 + "k |" + " " * 20 + "n |",
        border,
        "|" + " " * 30 + "a |" + " " * 20 + "1 |",
        "|" + " " * 30 + "b |" + " " * 20 + "2 |",
        border,
        "2 rows in set",
    ], printed


def test_print_lays_tables_out_as_flink_does(capsys):
    """Widths from the types, `<NULL>`, strings cut at 30 characters with `...`, booleans in
    capitals, timestamps with exactly their precision's digits, the `op` column in streaming
    mode, `Empty set` for no rows (checked against PyFlink 2.3's output for the same query)."""
    env = make_env()
    t = env.from_elements(
        [(1, None, 1.5, True), (22222, "a very long string that is longer than thirty characters", None, None)],
        DataTypes.ROW([DataTypes.FIELD("id", DataTypes.INT()), DataTypes.FIELD("s", DataTypes.STRING()),
                       DataTypes.FIELD("d", DataTypes.DOUBLE()), DataTypes.FIELD("b", DataTypes.BOOLEAN())]),
    )
    t.execute().print()
    env.sql_query("SELECT CAST(1 AS DECIMAL(10,2)) AS dc, DATE '2026-01-02' AS d, TO_TIMESTAMP_LTZ(1500, 3) AS ltz").execute().print()
    t.where(col("id") < 0).execute().print()
    assert capsys.readouterr().out.splitlines() == [
        "+----+-------------+--------------------------------+--------------------------------+--------+",
        "| op |          id |                              s |                              d |      b |",
        "+----+-------------+--------------------------------+--------------------------------+--------+",
        "| +I |           1 |                         <NULL> |                            1.5 |   TRUE |",
        "| +I |       22222 | a very long string that is ... |                         <NULL> | <NULL> |",
        "+----+-------------+--------------------------------+--------------------------------+--------+",
        "2 rows in set",
        "+----+--------------+------------+-------------------------+",
        "| op |           dc |          d |                     ltz |",
        "+----+--------------+------------+-------------------------+",
        "| +I |         1.00 | 2026-01-02 | 1970-01-01 00:00:01.500 |",
        "+----+--------------+------------+-------------------------+",
        "1 row in set",
        "Empty set",
    ]


def test_plan_errors_are_clear():
    env = make_env(streaming=False)
    with pytest.raises(ValueError, match="row 1 has 2 fields, the schema 1"):
        env.from_elements([(1,), (2, 3)], ["a"])
    t = env.from_elements([(1,)], ["a"])
    with pytest.raises(ValueError, match="nope"):
        t.select(col("nope"))
    with pytest.raises(TypeError, match="truth value"):
        bool(col("a") > 1)
    with pytest.raises(TypeError, match="result_type"):
        udf(lambda x: x)


def test_row_behaves_like_pyflinks():
    r = Row(name="Alice", age=11)
    assert r.name == "Alice" and r["age"] == 11 and r[0] == "Alice"
    assert r.as_dict() == {"name": "Alice", "age": 11}
    assert Row("a", "b")(1, 2).b == 2
    r.set_row_kind(RowKind.DELETE)
    assert r.get_row_kind() == RowKind.DELETE and str(RowKind.DELETE) == "-D"
    import pickle

    assert pickle.loads(pickle.dumps(r)).get_row_kind() == RowKind.DELETE


def test_errors_are_pyflinks_exceptions_and_name_the_users_own_columns():
    from weir.util.exceptions import (
        SqlParseException,
        TableException,
        TableNotExistException,
        ValidationException,
    )

    env = make_env(streaming=False)
    t = env.from_elements([(1, "a")], ["x", "s"])
    with pytest.raises(ValidationException) as e:
        t.select(col("nope") + 1)
    assert "no column `nope`; the input has x, s" in str(e.value)
    assert "__weir" not in str(e.value)
    assert isinstance(e.value, ValueError), "except ValueError keeps working"
    with pytest.raises(ValidationException, match="cannot be applied to BIGINT and STRING"):
        t.select(col("x") + col("s"))
    with pytest.raises(SqlParseException):
        env.execute_sql("SELEC x FROM nowhere")
    with pytest.raises(TableNotExistException, match="no table or view `missing`"):
        env.from_path("missing")
    with pytest.raises(ValidationException, match="no column `y` to drop"):
        t.drop_columns(col("y"))
    boom = udf(lambda x: 1 // 0, result_type="BIGINT", name="boom")
    with pytest.raises(TableException) as e:
        list(t.select(boom(col("x"))).execute().collect())
    assert isinstance(e.value, RuntimeError) and "ZeroDivisionError" in str(e.value)


def test_string_expressions_and_call_sql_are_planned_over_the_tables_columns():
    env = make_env(streaming=False)
    t = env.from_elements([(1, 10), (2, 20), (3, 30)], ["a", "b"])
    assert collect(t.select("a, b + 1 AS c").filter("a > 1")) == [(2, 21), (3, 31)]
    assert collect(t.select(call_sql("a * b").alias("p"), col("a"))) == [(10, 1), (40, 2), (90, 3)]
    other = env.from_elements([(1, "one"), (3, "three")], ["k", "name"])
    assert sorted(collect(t.join(other, "a = k").select(col("name"), col("b")))) == [("one", 10), ("three", 30)]
    with pytest.raises(ValueError, match="expected a comma-separated list of expressions"):
        t.select("a FROM secret")


def test_a_table_names_itself_in_sql_and_its_columns_are_attributes_as_in_pyflink():
    env = make_env(streaming=False)
    t = env.from_elements([(1, "Hello"), (2, "World"), (3, "Flink")], ["id", "data"])
    assert collect(t.where(t.id > 1).select(t.data)) == [("World",), ("Flink",)]
    name = str(t)
    assert name == str(t) and name.startswith("UnnamedTable$")
    got = [tuple(r) for r in env.execute_sql(f"SELECT data FROM {t} WHERE id <= 2").collect()]
    assert got == [("Hello",), ("World",)]
    with pytest.raises(AttributeError, match="no column or attribute 'nope'; its columns are id, data"):
        t.nope


def test_an_integer_literal_too_big_for_bigint_is_a_clear_error():
    from weir.util.exceptions import ValidationException

    env = make_env(streaming=False)
    t = env.from_elements([(1,)], ["x"])
    with pytest.raises(ValidationException, match="must fit BIGINT"):
        t.select(col("x") + lit(2**70))
    assert collect(t.select(col("x") + lit(2**62))) == [(1 + 2**62,)]


def test_a_batch_left_outer_join_gives_final_rows_only():
    """Batch results are final and insert-only: the left rows that find their match later are
    not shown first with NULLs (weir printed 8 rows here, PyFlink 4)."""
    env = make_env(streaming=False)
    left = env.from_elements([(1, "a"), (2, "b"), (3, "c")], ["id", "v"])
    right = env.from_elements([(1, "x"), (3, "y"), (3, "z")], ["rid", "w"])
    got = [(r.get_row_kind(), tuple(r)) for r in left.left_outer_join(right, col("id") == col("rid")).execute().collect()]
    assert all(k == RowKind.INSERT for k, _ in got), got
    assert sorted(r for _, r in got) == [(1, "a", 1, "x"), (2, "b", None, None), (3, "c", 3, "y"), (3, "c", 3, "z")]


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_right_and_full_outer_joins(streaming):
    env = make_env(streaming=streaming)
    left = env.from_elements([(1, "a"), (2, "b")], ["id", "v"])
    right = env.from_elements([(1, "x"), (3, "y")], ["rid", "w"])

    assert final(left.right_outer_join(right, col("id") == col("rid"))) == sorted([(1, "a", 1, "x"), (None, None, 3, "y")], key=repr)
    full = left.full_outer_join(right, col("id") == col("rid"))
    assert final(full) == sorted([(1, "a", 1, "x"), (2, "b", None, None), (None, None, 3, "y")], key=repr)
    if not streaming:
        assert all(r.get_row_kind() == RowKind.INSERT for r in full.execute().collect())
    with pytest.raises(Exception, match="an outer join takes only equalities"):
        left.full_outer_join(right, (col("id") == col("rid")) & (col("v") == "a"))


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_intersect_and_minus(streaming):
    env = make_env(streaming=streaming)
    a = env.from_elements([(1, "x"), (2, "y"), (2, "y"), (3, None)], ["n", "s"])
    b = env.from_elements([(2, "y"), (3, None), (4, "z")], ["m", "t"])

    assert final(a.intersect(b)) == [(2, "y"), (3, None)]
    assert final(a.minus(b)) == [(1, "x")]
    assert final(b.minus(a)) == [(4, "z")]

    # ALL: a row min(left, right) times, or left - right times.
    c = env.from_elements([(2, "y"), (2, "y"), (2, "y"), (1, "x"), (3, None), (3, None)], ["n", "s"])
    assert final(a.intersect_all(c)) == [(1, "x"), (2, "y"), (2, "y"), (3, None)]
    assert final(c.minus_all(a)) == [(2, "y"), (3, None)]
    assert final(a.minus_all(c)) == []
    assert final(a.minus_all(b)) == [(1, "x"), (2, "y")]
    if not streaming:
        assert all(r.get_row_kind() == RowKind.INSERT for r in c.minus_all(a).execute().collect())
    # SQL spells them the same way.
    env.create_temporary_view("ta", a)
    env.create_temporary_view("tc", c)
    assert final(env.sql_query("SELECT * FROM tc EXCEPT ALL SELECT * FROM ta")) == [(2, "y"), (3, None)]
    assert final(env.sql_query("SELECT * FROM ta INTERSECT ALL SELECT * FROM tc")) == final(a.intersect_all(c))


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_in_a_table_is_a_semi_join(streaming):
    env = make_env(streaming=streaming)
    orders = env.from_elements([(1, "a"), (2, "b"), (3, "c"), (1, "d")], ["uid", "item"])
    vip = env.from_elements([(1,), (3,), (3,), (9,)], ["id"])

    got = orders.where(col("uid").in_(vip))
    assert got.get_schema().get_field_names() == ["uid", "item"]
    assert final(got) == [(1, "a"), (1, "d"), (3, "c")]
    assert final(orders.where(col("uid").in_(1, 2))) == [(1, "a"), (1, "d"), (2, "b")]
    with pytest.raises(ValueError, match="whole where"):
        orders.where(col("uid").in_(vip) & (col("item") == "a"))
    with pytest.raises(Exception, match="has 2 columns, not one"):
        orders.where(col("uid").in_(orders))


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_not_in_a_subquery_follows_sqls_null_rules(streaming):
    """Against a plain Python reading of SQL's three-valued NOT IN, over random keys and
    values with NULLs, in several batches (streaming: the values change while rows come)."""
    import random

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for case in range(4):
        keys = [(None if rng.random() < 0.1 else rng.randrange(12),) for _ in range(60)]
        values = [(None if case == 3 and rng.random() < 0.2 else rng.randrange(8),) for _ in range(rng.choice([0, 5, 20]))]
        env = make_env(streaming=streaming)
        row = lambda n: DataTypes.ROW([DataTypes.FIELD(n, DataTypes.BIGINT())])  # noqa: E731
        env.create_temporary_view("k", env.from_elements(keys, row("x")))
        # No values: a table that ends empty.
        v = env.from_elements(values, row("y")) if values else env.from_elements([(1,)], row("y")).where(col("y") > 5)
        env.create_temporary_view("v", v)
        got = final(env.sql_query("SELECT x FROM k WHERE x NOT IN (SELECT y FROM v)"))
        vs = [v for (v,) in values]
        want = sorted(
            ((x,) for (x,) in keys if not vs or (x is not None and x not in vs and None not in vs)),
            key=repr,
        )
        assert got == want, f"seed {seed}, case {case}"


def final(t):
    """The rows a changelog ends as (checked: a retracted row was emitted), sorted."""
    state = []
    for r in t.execute().collect():
        if r.get_row_kind() in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            state.append(tuple(r))
        else:
            assert tuple(r) in state, f"{r} retracted but never emitted"
            state.remove(tuple(r))
    return sorted(state, key=repr)
