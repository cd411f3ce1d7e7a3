"""PyFlink's Table API beyond the basics: descriptors and schemas, JSON functions, from_pandas,
async scalar functions, ``pyflink.common.time``/``typeinfo``, explain details."""

from __future__ import annotations

import asyncio
import datetime
import textwrap

import pytest

from conftest import make_env, run_program, value
from weir.common import Types
from weir.common.time import Duration, Instant, Time
from weir.table import (
    DataTypes,
    ExplainDetail,
    FormatDescriptor,
    JsonExistsOnError,
    JsonOnNull,
    JsonQueryOnEmptyOrError,
    JsonQueryWrapper,
    JsonValueOnEmptyOrError,
    Schema,
    TableDescriptor,
)
from weir.table.expressions import call_sql, col, json, json_array, json_object, json_string, lit
from weir.table.udf import AsyncScalarFunction, udf
from weir.table.udf import ScalarFunction as ScalarFunctionBase


def rows(table):
    return sorted(tuple(r) for r in table.execute().collect())


def test_descriptors_become_tables_as_their_ddl_would(tmp_path):
    env = make_env(streaming=False)
    src = tmp_path / "in.csv"
    src.write_text("1;a\n2;b\n3;c\n")
    schema = (
        Schema.new_builder()
        .column("id", DataTypes.BIGINT())
        .column("name", DataTypes.STRING())
        .column_by_expression("twice", "id * 2")
        .build()
    )
    descriptor = (
        TableDescriptor.for_connector("filesystem")
        .schema(schema)
        .option("path", str(src))
        .format(FormatDescriptor.for_format("csv").option("field-delimiter", ";").build())
        .build()
    )
    assert descriptor.get_options() == {
        "connector": "filesystem",
        "path": str(src),
        "format": "csv",
        "csv.field-delimiter": ";",
    }
    env.create_temporary_table("src", descriptor)
    assert rows(env.from_path("src")) == [(1, "a", 2), (2, "b", 4), (3, "c", 6)]
    assert rows(env.from_descriptor(descriptor).select(col("name"))) == [("a",), ("b",), ("c",)]
    with pytest.raises(Exception, match="already exists"):
        env.create_temporary_table("src", descriptor)
    assert env.create_table("src", descriptor, ignore_if_exists=True) is False
    # Insert into a descriptor, read it back.
    out = tmp_path / "out"
    sink = (
        TableDescriptor.for_connector("filesystem")
        .schema(Schema.new_builder().column("id", DataTypes.BIGINT()).column("name", DataTypes.STRING()).build())
        .option("path", str(out))
        .format("csv")
        .build()
    )
    env.from_path("src").select(col("id"), col("name")).execute_insert(sink).wait()
    written = "".join(p.read_text() for p in sorted(out.rglob("*")) if p.is_file())
    assert sorted(written.split()) == ["1,a", "2,b", "3,c"]
    assert env.drop_temporary_table("src") is True
    assert env.drop_temporary_table("src") is False


def test_schema_watermarks_metadata_and_primary_keys_and_their_errors():
    s = (
        Schema.new_builder()
        .column("x", "BIGINT")
        .column_by_expression("ts", call_sql("TO_TIMESTAMP_LTZ(x, 3)"))
        .column_by_metadata("part", DataTypes.STRING(), "partition", is_virtual=True)
        .watermark("ts", "ts - INTERVAL '1' SECOND")
        .primary_key("x")
        .build()
    )
    text = str(s)
    assert "`ts` AS TO_TIMESTAMP_LTZ(x, 3)" in text
    assert "`part` STRING METADATA FROM 'partition' VIRTUAL" in text
    assert "WATERMARK FOR `ts` AS ts - INTERVAL '1' SECOND" in text
    assert "PRIMARY KEY (`x`) NOT ENFORCED" in text
    with pytest.raises(ValueError, match="defined twice"):
        Schema.new_builder().column("a", "INT").column("a", "INT")
    with pytest.raises(TypeError, match="as SQL text"):
        Schema.new_builder().column_by_expression("b", col("a") + 1)
    # Names with spaces, quotes and backticks survive the DDL they are written into.
    odd = make_env(streaming=False)
    odd.create_temporary_table(
        "we`ird ta'ble (1)",
        TableDescriptor.for_connector("datagen")
        .schema(Schema.new_builder().column("c`o'l (x)", DataTypes.INT()).column("t s", DataTypes.TIMESTAMP(3)).watermark("t s", "`t s`").build())
        .option("number-of-rows", 2)
        .build(),
    )
    assert odd.list_tables() == ["we`ird ta'ble (1)"]
    assert odd.from_path("we`ird ta'ble (1)").get_schema().get_field_names() == ["c`o'l (x)", "t s"]
    with pytest.raises(ValueError, match="non-empty string"):
        odd.create_temporary_table("x", TableDescriptor.for_connector("datagen").schema(Schema.new_builder().column("", "INT").build()).build())
    with pytest.raises(ValueError, match="connector is given to for_connector"):
        TableDescriptor.for_connector("print").option("connector", "x")
    env = make_env()
    with pytest.raises(ValueError, match="has no schema"):
        env.create_temporary_table("t", TableDescriptor.for_connector("datagen").build())
    # A watermarked datagen table from a descriptor runs an event-time window.
    env.create_temporary_table(
        "ticks",
        TableDescriptor.for_connector("datagen")
        .schema(
            Schema.new_builder()
            .column("x", DataTypes.BIGINT())
            .column_by_expression("ts", "TO_TIMESTAMP_LTZ(x, 3)")
            .watermark("ts", "ts")
            .build()
        )
        .option("number-of-rows", 3000)
        .option("fields.x.kind", "sequence")
        .option("fields.x.start", 0)
        .option("fields.x.end", 2999)
        .build(),
    )
    got = env.sql_query(
        "SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end"
    )
    assert [r[1] for r in sorted(got.execute().collect(), key=lambda r: r[0])] == [1000, 1000, 1000]


def test_json_functions_in_the_table_api():
    env = make_env(streaming=False)
    doc = '{"name": "Flink", "tel": 123, "addr": {"country": "Germany"}, "tags": ["a", "b"]}'
    t = env.from_elements([(1, doc), (2, "not json")], ["id", "data"])
    got = rows(
        t.select(
            col("id"),
            col("data").json_value("$.addr.country"),
            col("data").json_value("$.tel", DataTypes.INT()),
            col("data").json_value("$.missing", DataTypes.INT(), JsonValueOnEmptyOrError.DEFAULT, 7),
            col("data").json_query("$.tags"),
            col("data").json_query("$.tags[*]", JsonQueryWrapper.CONDITIONAL_ARRAY),
            col("data").json_query("$.name", on_error=JsonQueryOnEmptyOrError.EMPTY_ARRAY),
            col("data").json_exists("$.addr"),
            col("data").json_exists("$.addr", JsonExistsOnError.UNKNOWN),
        )
    )
    assert got == [
        (1, "Germany", 123, 7, '["a","b"]', '["a","b"]', "[]", True, True),
        (2, None, None, None, None, None, "[]", False, None),
    ]
    got = rows(
        t.where(col("id") == 1).select(
            json_object(JsonOnNull.NULL, "id", col("id"), "none", lit(None, DataTypes.STRING())),
            json_object(JsonOnNull.ABSENT, "id", col("id"), "none", lit(None, DataTypes.STRING())),
            json_array(JsonOnNull.ABSENT, col("id"), json_array(JsonOnNull.NULL, 1, 2), json('{"raw": true}')),
            json_string(col("id")),
        )
    )
    assert got == [('{"id":1,"none":null}', '{"id":1}', '[1,[1,2],{"raw":true}]', "1")]
    # ERROR ON ERROR fails the job naming the path and the document.
    with pytest.raises(Exception, match="JSON_VALUE: the path '\\$.a' cannot be read"):
        rows(t.select(col("data").json_value("$.a", on_error=JsonValueOnEmptyOrError.ERROR)))


def test_from_pandas_and_back():
    pd = pytest.importorskip("pandas")
    env = make_env(streaming=False)
    pdf = pd.DataFrame(
        {
            "a": [1, 2, 3],
            "b": [0.5, None, 2.5],
            "c": ["x", "y", None],
            "t": pd.to_datetime(["2026-01-01 00:00:01", "2026-01-01 00:00:02", "2026-01-01 00:00:03"]),
        }
    )
    t = env.from_pandas(pdf)
    assert t.get_schema().get_field_names() == ["a", "b", "c", "t"]
    assert [str(x) for x in t.get_schema().get_field_data_types()][:3] == ["BIGINT", "DOUBLE", "STRING"]
    back = t.where(col("a") > 1).to_pandas()
    assert back["a"].tolist() == [2, 3] and back["c"].tolist()[0] == "y"
    named = env.from_pandas(pdf[["a", "b"]], ["x", "y"])
    assert rows(named.select(col("x"))) == [(1,), (2,), (3,)]
    typed = env.from_pandas(pdf[["a"]], [DataTypes.INT()])
    assert str(typed.get_schema().get_field_data_types()[0]) == "INT"
    with pytest.raises(TypeError, match="takes a pandas.DataFrame"):
        env.from_pandas([(1, 2)])


class Lookup(AsyncScalarFunction):
    """Counts its calls, the calls that started while another was running, and the calls that
    found more than 8 running."""

    def open(self, ctx):
        g = ctx.get_metric_group()
        self.calls, self.overlapped, self.over = g.counter("lookups"), g.counter("overlapped"), g.counter("over_limit")
        self.active = 0

    async def eval(self, key):
        self.calls.inc()
        self.active += 1
        if self.active > 1:
            self.overlapped.inc()
        if self.active > 8:
            self.over.inc()
        await asyncio.sleep(0.02)
        self.active -= 1
        return f"value_for_{key}"


def test_async_scalar_functions_run_concurrently_in_order():
    env = make_env(pipeline__name="async-job", **{"table.exec.async-scalar.max-concurrent-operations": "8"})
    t = env.from_elements([(i,) for i in range(200)], ["k"])
    lookup = udf(Lookup(), result_type=DataTypes.STRING())

    @udf(result_type=DataTypes.BIGINT())
    async def double(x):
        await asyncio.sleep(0)
        return x * 2

    got = [tuple(r) for r in t.select(col("k"), lookup(col("k")), double(col("k"))).execute().collect()]
    assert got == [(i, f"value_for_{i}", 2 * i) for i in range(200)]
    text = env.metrics_text()
    assert value(text, "weir_user_lookups_total", job_name="async-job") == 200
    # Calls ran side by side, never more than the 8 allowed.
    assert value(text, "weir_user_overlapped_total", job_name="async-job") > 0
    assert value(text, "weir_user_over_limit_total", job_name="async-job") == 0


ASYNC_JOB = """
    import asyncio
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.expressions import col
    from weir.table.udf import udf

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("metrics.reporter.prom.port", "0")
    env.get_config().set("table.exec.async-scalar.timeout", "200 ms")
    env.get_config().set("table.exec.async-scalar.max-attempts", "2")
    env.get_config().set("table.exec.async-scalar.retry-delay", "10 ms")
    {config}
    attempts = []

    @udf(result_type=DataTypes.STRING())
    async def slow(x):
        if x == 3:
            await asyncio.sleep(5)
        if x == 5:
            raise KeyError("no such key 5")
        return str(x)

    try:
        out = list(env.from_elements([(i,) for i in range(8)], ["x"]).select(slow(col("x"))).execute().collect())
        print("ROWS", [r[0] for r in out])
    except Exception as e:
        print("ERROR", e)
"""


def test_async_timeouts_and_errors_fail_naming_the_row_or_are_skipped():
    out = run_program(textwrap.dedent(ASYNC_JOB.replace("{config}", ""))).stdout
    assert "ERROR" in out and "`slow` raised" in out and ("no result within 0.2 s" in out or "no such key 5" in out), out
    skip = 'env.get_config().set("python.udf.on-error", "skip")'
    out = run_program(textwrap.dedent(ASYNC_JOB.replace("{config}", skip))).stdout
    assert "ROWS ['0', '1', '2', '4', '6', '7']" in out, out
    with pytest.raises(ValueError, match="func_type must be 'general'"):

        async def f(x):
            return x

        udf(f, result_type="INT", func_type="pandas")


def test_common_time_typeinfo_and_explain_details():
    assert Instant.of_epoch_milli(1500).to_epoch_milli() == 1500
    assert Instant.of_epoch_milli(1500).to_datetime() == datetime.datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=datetime.timezone.utc)
    assert Duration.of_seconds(2) == Duration.of_millis(2000) and Duration.of_minutes(1).to_millis() == 60_000
    assert Time.seconds(3).to_milliseconds() == 3000
    row = Types.ROW_NAMED(["a", "b"], [Types.LONG(), Types.STRING()])
    assert str(row.to_data_type()) == "ROW<a BIGINT, b STRING>"
    assert str(Types.LIST(Types.INT()).to_data_type()) == "ARRAY<INT>"
    env = make_env()
    t = env.from_elements([(1,)], ["a"])
    assert t.explain() in t.explain(ExplainDetail.CHANGELOG_MODE)
    assert "no CHANGELOG_MODE, PLAN_ADVICE" in t.explain(ExplainDetail.CHANGELOG_MODE, ExplainDetail.PLAN_ADVICE)
    with pytest.raises(ValueError, match="unknown ExplainDetail"):
        t.explain(42)


def test_stream_table_environment_without_a_datastream():
    from weir.table import EnvironmentSettings, StreamTableEnvironment

    env = StreamTableEnvironment.create(environment_settings=EnvironmentSettings.in_streaming_mode())
    env.get_config().set("metrics.reporter.prom.port", "0")
    try:
        assert [tuple(r) for r in env.from_elements([(1, "a")], ["n", "s"]).execute().collect()] == [(1, "a")]
        with pytest.raises(NotImplementedError, match="no DataStream API"):
            env.from_data_stream(None)
    finally:
        env.close()
    with pytest.raises(NotImplementedError, match="no DataStream API"):
        StreamTableEnvironment.create(object())
    with pytest.raises(ValueError, match="streaming mode"):
        StreamTableEnvironment.create(environment_settings=EnvironmentSettings.in_batch_mode())


def test_function_context_as_pyflinks():
    from weir.table.udf import FunctionContext

    bare = FunctionContext(None, {"k": "v"})
    with pytest.raises(RuntimeError, match="Metric has not been enabled"):
        bare.get_metric_group()
    assert bare.get_job_parameter("k", "d") == "v" and bare.get_job_parameter("x", "d") == "d"
    ctx = FunctionContext(
        None, {}, task_name="Calc", number_of_parallel_subtasks=6, max_number_of_parallel_subtasks=128,
        index_of_this_subtask=2, attempt_number=1,
    )
    assert (ctx.get_task_name(), ctx.get_task_name_with_subtasks()) == ("Calc", "Calc (3/6)")
    assert (ctx.get_number_of_parallel_subtasks(), ctx.get_max_number_of_parallel_subtasks()) == (6, 128)
    assert (ctx.get_index_of_this_subtask(), ctx.get_attempt_number()) == (2, 1)
    # In a worker: the operator's values, and a metric group whose scope functions answer.

    class Probe(ScalarFunctionBase):
        def open(self, ctx):
            g = ctx.get_metric_group().add_group("probe").add_group("lang", "en")
            self.info = (ctx.get_task_name_with_subtasks(), ctx.get_number_of_parallel_subtasks(),
                         ctx.get_max_number_of_parallel_subtasks(), g.get_scope_components(),
                         dict(g.get_all_variables()))

        def eval(self, x):
            return repr(self.info)

    env = make_env(parallelism__default="2")
    t = env.from_elements([(1,), (2,), (3,), (4,)], ["x"]).select(udf(Probe(), result_type="STRING")(col("x")))
    infos = [eval(r[0]) for r in t.execute().collect()]
    assert all(i[0].startswith("PythonCalc[Probe] (") and i[0].endswith(f"/{i[1]})") for i in infos), infos
    assert {i[2] for i in infos} == {1024}
    assert all(i[3] == ["probe", "lang", "en"] and i[4] == {"lang": "en"} for i in infos), infos
