"""PyFlink's metric semantics, checked through real worker processes and the exposition."""

from __future__ import annotations

from conftest import make_env, samples, value
from weir.table import DataTypes
from weir.table.expressions import col
from weir.table.udf import ScalarFunction, udf


class Semantics(ScalarFunction):
    def open(self, ctx):
        g = ctx.get_metric_group()
        self.plain = g.add_group("my_group").counter("plain")
        keyed = g.add_group("key", "value")
        self.keyed = keyed.counter("keyed")
        self.scope = keyed.get_scope_components()
        self.down = g.counter("down")
        self.meter = g.meter("events")
        self.dist = g.distribution("sizes")
        self.region = ctx.get_job_parameter("region", "none")
        self.missing = ctx.get_job_parameter("missing", "fallback")
        self.task = ctx.get_task_name()
        self.parallelism = ctx.get_number_of_parallel_subtasks()
        self.index = ctx.get_index_of_this_subtask()
        self.attempt = ctx.get_attempt_number()

    def eval(self, x):
        if x == 1:
            self.plain.inc()
            self.keyed.inc()
            self.down.inc(-2)
            self.meter.mark_event(3)
            self.dist.update(10)
            self.dist.update(2)
        return f"{self.region}|{self.missing}|{self.task}|{self.parallelism}|{self.index}|{self.attempt}|{self.scope}"


def run_one(env, fn):
    t = env.from_elements([(1,)], ["x"])
    rows = list(t.select(fn(col("x")).alias("r")).execute().collect())
    assert len(rows) == 1
    return rows[0][0], env.metrics_text()


def test_groups_counters_meters_distributions_and_job_parameters():
    env = make_env(streaming=False)
    env.get_config().set("pipeline.global-job-parameters", {"region": "eu-west"})
    env.get_config().set("pipeline.name", "semantics")
    text_out, text = run_one(env, udf(Semantics(), result_type=DataTypes.STRING()))
    region, missing, task, parallelism, index, attempt, scope = text_out.split("|")
    assert (region, missing) == ("eu-west", "fallback")
    assert task.startswith("PythonCalc[") and (parallelism, index, attempt) == ("1", "0", "0")
    assert scope == "['key', 'value']"
    job = {"job_name": "semantics"}
    # add_group('my_group'): the group is part of the name.
    assert value(text, "weir_user_my_group_plain_total", **job) == 1
    # add_group('key', 'value'): the key joins the name, the value becomes a label.
    assert value(text, "weir_user_key_keyed_total", key="value", **job) == 1
    # A counter after inc(-2) is -2.
    assert value(text, "weir_user_down_total", **job) == -2
    # A meter after mark_event(3) has counted 3.
    assert value(text, "weir_user_events_total", **job) == 3
    # A distribution after update(10), update(2): sum 12, count 2, min 2, max 10.
    assert value(text, "weir_user_sizes_sum", **job) == 12
    assert value(text, "weir_user_sizes_count", **job) == 2
    assert value(text, "weir_user_sizes_min", **job) == 2
    assert value(text, "weir_user_sizes_max", **job) == 10
    assert value(text, "weir_user_sizes_mean", **job) == 6
    # Every user series carries the operator and subtask.
    for (name, labels), _ in samples(text).items():
        if name.startswith("weir_user_"):
            keys = {k for k, _ in labels}
            assert {"job_name", "operator", "subtask"} <= keys, (name, labels)


class Registers(ScalarFunction):
    def open(self, ctx):
        g = ctx.get_metric_group()
        self.enabled = getattr(g, "enabled", True)
        self.c = g.add_group("off").counter("calls")
        g.gauge("level", lambda: 1)
        self.m = g.meter("m")
        self.d = g.distribution("d")

    def eval(self, x):
        self.c.inc()
        self.m.mark_event()
        self.d.update(x)
        return self.enabled


def test_disabled_metric_group_records_nothing_and_does_not_raise():
    env = make_env(streaming=False, python__metric__enabled="false")
    enabled, text = run_one(env, udf(Registers(), result_type=DataTypes.BOOLEAN()))
    assert enabled is False
    assert not [n for (n, _) in samples(text) if n.startswith("weir_user_")]
    # The system metrics of the UDF are still there.
    assert value(text, "weir_python_udf_rows_total") == 1


def test_float_gauges_and_settable_gauges():
    class Gauges(ScalarFunction):
        def open(self, ctx):
            g = ctx.get_metric_group()
            g.gauge("ratio", lambda: 0.25)
            self.g = g.gauge("last_seen")

        def eval(self, x):
            self.g.set(x * 1.5)
            return x

    env = make_env(streaming=False)
    t = env.from_elements([(1,), (2,), (4,)], ["x"])
    list(t.select(udf(Gauges(), result_type="BIGINT")(col("x"))).execute().collect())
    text = env.metrics_text()
    assert value(text, "weir_user_ratio") == 0.25
    assert value(text, "weir_user_last_seen") == 6.0


class ArgumentForms(ScalarFunction):
    """Every argument form of the per-row updates (native methods), and the errors of the
    ones that do not fit, checked where the functions run; the totals checked by the engine."""

    def open(self, ctx):
        g = ctx.get_metric_group().add_group("forms")
        self.c, self.m, self.d = g.counter("c"), g.meter("m"), g.distribution("d")

    def eval(self, x):
        c, m, d = self.c, self.m, self.d
        c.inc()
        c.inc(2)
        c.inc(n=3)
        c.inc(True)  # an int (1), as in Python
        m.mark_event()
        m.mark_event(4)
        m.mark_event(value=5)
        d.update(7)
        d.update(2.5)
        d.update(2**70)  # beyond i64: recorded as a float
        d.update(value=1)
        d.update(float("nan"))  # ignored, as NaN would poison sum and mean
        errors = []
        for call in (
            lambda: c.inc("x"),
            lambda: c.inc(1, 2),
            lambda: c.inc(k=1),
            lambda: c.inc(2**70),
            lambda: m.mark_event(-1),
            lambda: m.mark_event(1.5),
            lambda: d.update("x"),
            lambda: d.update(),
            lambda: d.update(1, 2),
        ):
            try:
                call()
                errors.append("none")
            except Exception as e:  # noqa: BLE001 - the kind is the point
                errors.append(type(e).__name__)
        return ",".join(errors)


def test_update_methods_take_pyflinks_argument_forms_and_refuse_the_rest():
    env = make_env(streaming=False, pipeline__name="forms")
    for mode in ("process", "thread"):
        env.get_config().set("python.execution-mode", mode)
        env.get_config().set("pipeline.name", f"forms-{mode}")
        errors, text = run_one(env, udf(ArgumentForms(), result_type=DataTypes.STRING()))
        assert errors.split(",") == [
            "TypeError", "TypeError", "TypeError", "OverflowError",
            "OverflowError", "TypeError",
            "ValueError", "TypeError", "TypeError",
        ], (mode, errors)
        job = {"job_name": f"forms-{mode}"}
        assert value(text, "weir_user_forms_c_total", **job) == 7
        assert value(text, "weir_user_forms_m_total", **job) == 10
        assert value(text, "weir_user_forms_d_count", **job) == 4
        assert value(text, "weir_user_forms_d_sum", **job) == 7 + 2.5 + 2.0**70 + 1
