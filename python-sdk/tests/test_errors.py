"""Bad input gets a clear error, loses nothing and never hangs."""

from __future__ import annotations

import threading

import pytest

from conftest import make_env, value
from weir.table.expressions import col
from weir.table.udf import ScalarFunction, udf


def rows_of(env, f, values, result_type="BIGINT"):
    t = env.from_elements([(v,) for v in values], ["x"])
    g = udf(f, result_type=result_type)
    return [r[0] for r in t.select(g(col("x"))).execute().collect()]


def fails_on_seven(x):
    if x == 7:
        raise ValueError(f"seven is not allowed (got {x})")
    return x * 2


def test_udf_raises_fails_the_job_with_name_exception_traceback_and_row():
    env = make_env(streaming=False)
    with pytest.raises(RuntimeError) as e:
        rows_of(env, fails_on_seven, range(10))
    msg = str(e.value)
    assert "fails_on_seven" in msg
    assert "ValueError: seven is not allowed (got 7)" in msg
    assert "input row: (7,)" in msg
    assert "Traceback" in msg and "test_errors.py" in msg, msg


def test_udf_raises_with_skip_drops_and_counts_the_rows():
    env = make_env(streaming=False, python__udf__on_error="skip", pipeline__name="skips")
    out = rows_of(env, fails_on_seven, list(range(10)) * 3)
    assert sorted(out) == sorted([x * 2 for x in range(10) if x != 7] * 3)
    text = env.metrics_text()
    assert value(text, "weir_python_udf_errors_total", job_name="skips") == 3
    assert value(text, "weir_python_udf_rows_total", job_name="skips") == 30


class CountsThenFailsOnSeven(ScalarFunction):
    def open(self, ctx):
        self.calls = ctx.get_metric_group().counter("calls")

    def eval(self, x):
        self.calls.inc()
        return fails_on_seven(x)


def test_with_skip_every_row_is_called_once_so_its_metric_updates_count_once():
    # A row that raises is not called again to find it, nor are the rows before it.
    env = make_env(streaming=False, python__udf__on_error="skip", pipeline__name="once")
    out = rows_of(env, CountsThenFailsOnSeven(), list(range(10)) * 3)
    assert len(out) == 27
    text = env.metrics_text()
    assert value(text, "weir_user_calls_total", job_name="once") == 30
    assert value(text, "weir_python_udf_errors_total", job_name="once") == 3


def test_wrong_result_type_names_function_value_and_row():
    env = make_env(streaming=False)

    def says_hello(x):
        return "hello" if x == 3 else x

    with pytest.raises(RuntimeError) as e:
        rows_of(env, says_hello, range(5))
    msg = str(e.value)
    assert "says_hello" in msg and "'hello' (str) is not a BIGINT" in msg, msg
    assert "input row: (3,)" in msg, msg


class BadName(ScalarFunction):
    def open(self, ctx):
        self.c = ctx.get_metric_group().counter("rows per second!")

    def eval(self, x):
        return x


def test_invalid_metric_name_fails_in_open_with_the_name():
    env = make_env(streaming=False)
    with pytest.raises(RuntimeError) as e:
        rows_of(env, BadName(), [1])
    msg = str(e.value)
    assert "BadName" in msg and "rows per second!" in msg, msg
    assert "open()" in msg, msg


class GaugeRaises(ScalarFunction):
    def open(self, ctx):
        g = ctx.get_metric_group()
        g.gauge("broken", self.read)
        self.ok = g.counter("ok")

    def read(self):
        raise KeyError("no such key")

    def eval(self, x):
        self.ok.inc()
        return x


def test_gauge_callback_raising_is_logged_and_loses_nothing(capfd):
    env = make_env(streaming=False, pipeline__name="gauges")
    assert rows_of(env, GaugeRaises(), range(5)) == list(range(5))
    text = env.metrics_text()
    assert value(text, "weir_user_ok_total", job_name="gauges") == 5
    assert value(text, "weir_user_broken", job_name="gauges") is None
    err = capfd.readouterr().err
    assert "gauge `broken`: callback failed" in err and "KeyError: 'no such key'" in err, err
    assert err.count("callback failed") == 1, "said once, not at every collection"


def test_unpicklable_function_is_refused_at_registration():
    lock = threading.Lock()

    def holds_a_lock(x):
        with lock:
            return x

    env = make_env(streaming=False)
    with pytest.raises(TypeError) as e:
        env.create_temporary_function("holds_a_lock", udf(holds_a_lock, result_type="BIGINT"))
    msg = str(e.value)
    assert "holds_a_lock" in msg and "cloudpickle" in msg and "open()" in msg, msg


def test_worker_that_cannot_start_fails_the_job_after_the_restarts():
    env = make_env(streaming=False, python__executable="/bin/false",
                   python__worker__restart__max_attempts="1")
    with pytest.raises(RuntimeError) as e:
        rows_of(env, fails_on_seven, [1])
    msg = str(e.value)
    assert "exited with status 1 before connecting" in msg, msg
    assert "2 Python workers in a row ended without returning a result" in msg, msg
    assert "python.worker.restart.max-attempts = 1" in msg, msg


def test_print_and_logging_reach_the_engine_log(capfd):
    class Chatty(ScalarFunction):
        def open(self, ctx):
            import logging

            logging.getLogger("my.udf").warning("opened for %s", ctx.get_task_name())

        def eval(self, x):
            print(f"saw {x}")
            return x

    env = make_env(streaming=False, pipeline__name="chatty")
    assert rows_of(env, Chatty(), [41]) == [41]
    err = capfd.readouterr().err
    assert "WARN" in err and "my.udf: opened for PythonCalc[Chatty]" in err, err
    assert "stdout: saw 41" in err and "job `chatty`" in err, err


def test_misspelt_python_key_warns_with_a_suggestion():
    env = make_env(streaming=False)
    with pytest.warns(UserWarning, match="did you mean 'python.udf.on-error'"):
        env.get_config().set("python.udf.on_error", "skip")
