"""One session per process: every TableEnvironment of a program shares one registry and one
`/metrics` endpoint, each job's series carry its own job name, process-wide settings are
taken from the first environment (later conflicts warn), and reporters never fail a job.

Settings that belong to the process are tested in programs of their own (`run_program`),
since this test process's session fixed them with its first environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time


from conftest import make_env, run_program, samples, scrape, value
from weir.table import DataTypes
from weir.table.expressions import call, col
from weir.table.udf import ScalarFunction, udf

# A PyFlink program (three environments, batch and streaming, each running a UDF job that
# registers a counter) with only its imports changed. It scrapes its own endpoint, then waits
# for a peer copy (argv: its marker file, the peer's) so that two copies run at once.
THREE_ENVIRONMENTS = textwrap.dedent('''
    import json, os, sys, time, urllib.request
    from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
    from weir.table.expressions import col
    from weir.table.udf import ScalarFunction, udf

    class Tally(ScalarFunction):
        def open(self, function_context):
            self.rows = function_context.get_metric_group().add_group("tally").counter("rows")

        def eval(self, x):
            self.rows.inc()
            return x * 2

    def word_job(settings, n):
        t_env = TableEnvironment.create(settings)
        t = t_env.from_elements([(i,) for i in range(n)], ["x"])
        doubled = udf(Tally(), result_type=DataTypes.BIGINT())
        got = sorted(r[0] for r in t.select(doubled(col("x"))).execute().collect())
        assert got == [2 * i for i in range(n)], got
        return t_env

    envs = [
        word_job(EnvironmentSettings.in_batch_mode(), 10),
        word_job(EnvironmentSettings.in_streaming_mode(), 20),
        word_job(EnvironmentSettings.in_batch_mode(), 30),
    ]
    addresses = {e.metrics_address() for e in envs}
    assert len(addresses) == 1, addresses
    address = addresses.pop()
    mine, peer = sys.argv[1], sys.argv[2]
    open(mine, "w").write(address)
    deadline = time.monotonic() + 120
    while not os.path.exists(peer):
        assert time.monotonic() < deadline, "the peer program never came"
        time.sleep(0.1)
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    print(json.dumps({"address": address, "text": text}))
''')


def test_three_environments_share_one_endpoint_and_two_copies_run_at_once():
    d = tempfile.mkdtemp(prefix="weir-two-")
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(THREE_ENVIRONMENTS)
    # Default settings: no port is set, so both want 9249.
    procs = [
        subprocess.Popen([sys.executable, f.name, mine, peer], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for mine, peer in ((a, b), (b, a))
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    os.unlink(f.name)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert results[0]["address"] != results[1]["address"]
    for r in results:
        port = int(r["address"].rsplit(":", 1)[1])
        assert 9249 <= port <= 9259, r["address"]
        text = r["text"]
        # One scrape, each job's counter under its own job name, exact.
        by_job = {}
        for (name, labels), v in samples(text).items():
            if name == "weir_user_tally_rows_total":
                job = dict(labels)["job_name"]
                by_job[job] = by_job.get(job, 0) + v
        assert sorted(by_job.values()) == [10, 20, 30], by_job
        for job in by_job:
            assert value(text, "weir_job_running", job_name=job) == 0
            assert value(text, "weir_job_uptime_seconds", job_name=job) > 0


def test_metrics_weir_settings_from_python_take_effect():
    p = run_program(textwrap.dedent('''
        import json, time
        from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
        from weir.table.expressions import col
        from weir.table.udf import ScalarFunction, udf

        class PerValue(ScalarFunction):
            def open(self, ctx):
                self.g = ctx.get_metric_group()
                self.d = self.g.distribution("sizes")

            def eval(self, x):
                self.g.add_group("value", str(x)).counter("seen").inc()
                self.d.update(x)
                return x

        t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
        c = t_env.get_config()
        c.set("metrics.reporter.prom.port", "0")
        c.set("metrics.weir.name-prefix", "acme")
        c.set("metrics.weir.cardinality-limit", "2")
        c.set("metrics.weir.distribution.window", "2 s")
        c.set("pipeline.name", "settings")
        t = t_env.from_elements([(1,), (2,), (3,), (3,)], ["x"])
        list(t.select(udf(PerValue(), result_type="BIGINT")(col("x"))).execute().collect())
        first = t_env.metrics_text()
        # The quantiles cover the last 2 s only: they empty out; count and sum stay.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and 'quantile="0.5"' in t_env.metrics_text():
            time.sleep(0.5)
        print(json.dumps({"first": first, "later": t_env.metrics_text()}))
    '''))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    first, later = out["first"], out["later"]
    assert "weir_" not in first, "the prefix replaces weir_ everywhere"
    seen = [v for (n, _), v in samples(first).items() if n == "acme_user_value_seen_total"]
    assert len(seen) == 2, f"cardinality limit 2: {seen}"
    assert value(first, "acme_metrics_series_dropped_total", metric="acme_user_value_seen") == 1
    assert value(first, "acme_user_sizes_count", job_name="settings") == 4
    assert 'acme_user_sizes_window{' in first and 'quantile="0.5"' in first
    assert 'quantile="0.5"' not in later, "a 2 s window must have emptied within 20 s"
    assert value(later, "acme_user_sizes_count", job_name="settings") == 4


def test_histogram_settings_from_python_and_metrics_keys_in_any_order():
    p = run_program(textwrap.dedent('''
        import json
        from weir.table import DataTypes, EnvironmentSettings, TableEnvironment
        from weir.table.expressions import col
        from weir.table.udf import ScalarFunction, udf

        class Sizes(ScalarFunction):
            def open(self, ctx):
                self.d = ctx.get_metric_group().distribution("size_bytes")

            def eval(self, x):
                self.d.update(x)
                return x

        t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
        c = t_env.get_config()
        # The reporter list before the URL it needs, as Flink users write it.
        c.set("metrics.reporters", "prom,promgateway")
        c.set("metrics.reporter.promgateway.hostUrl", "http://127.0.0.1:9")
        c.set("metrics.reporter.promgateway.deleteOnShutdown", "false")
        c.set("metrics.reporter.prom.port", "0")
        c.set("metrics.weir.histogram.buckets.weir_user_size_bytes", "10, 100, 1000")
        errors = []
        for key, bad in [("metrics.weir.histogram.buckets", "5,1"),
                         ("metrics.weir.histogram.native-schema", "9"),
                         ("metrics.weir.histogram.buckets.", "1")]:
            try:
                c.set(key, bad)
            except Exception as e:
                errors.append(str(e))
        c.set("pipeline.name", "hist")
        t = t_env.from_elements([(1,), (10,), (50,), (100,), (5000,)], ["x"])
        list(t.select(udf(Sizes(), result_type="BIGINT")(col("x"))).execute().collect())
        print(json.dumps({"text": t_env.metrics_text(), "errors": errors}))
    '''))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    text, errors = out["text"], out["errors"]
    bucket = lambda le: value(text, "weir_user_size_bytes_bucket", job_name="hist", le=le)
    assert [bucket("10.0"), bucket("100.0"), bucket("1000.0"), bucket("+Inf")] == [2, 4, 4, 5], text
    assert value(text, "weir_user_size_bytes_count", job_name="hist") == 5
    assert value(text, "weir_user_size_bytes_sum", job_name="hist") == 5161
    assert len(errors) == 3, errors
    assert errors[0].startswith('configuration `metrics.weir.histogram.buckets` = "5,1": '), errors[0]
    assert "bounds must increase: `1` follows `5`" in errors[0], errors[0]
    assert "metrics.weir.histogram.native-schema" in errors[1] and "-4 to 7" in errors[1], errors[1]
    assert "metrics.weir.histogram.buckets." in errors[2] and "unknown metrics setting" in errors[2], errors[2]


def test_a_later_environment_asking_for_other_process_settings_gets_a_warning():
    p = run_program(textwrap.dedent('''
        import warnings
        from weir.table import EnvironmentSettings, TableEnvironment

        first = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
        first.get_config().set("metrics.reporter.prom.port", "0")
        first.get_config().set("metrics.weir.name-prefix", "first")
        first.execute_sql("CREATE TABLE s (x BIGINT) WITH ('connector' = 'blackhole')")
        first.execute_sql("INSERT INTO s VALUES (1)").wait()

        second = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
        second.get_config().set("metrics.reporter.prom.port", "0")
        second.get_config().set("metrics.weir.name-prefix", "second")
        second.execute_sql("CREATE TABLE s (x BIGINT) WITH ('connector' = 'blackhole')")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            second.execute_sql("INSERT INTO s VALUES (1)").wait()
        for w in caught:
            print("WARNING", w.message)
        print("PREFIXES", sorted({l.split("_")[0] for l in second.metrics_text().splitlines() if l and l[0] != "#"}))
    '''))
    warned = [line for line in p.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warned) == 1, p.stdout
    assert "metrics.weir.name-prefix" in warned[0] and "`first`" in warned[0], warned
    assert "PREFIXES ['first']" in p.stdout


def test_a_busy_explicit_port_is_a_warning_naming_the_key_and_the_job_runs():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        p = run_program(textwrap.dedent(f'''
            import warnings
            from weir.table import EnvironmentSettings, TableEnvironment
            t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
            t_env.get_config().set("metrics.reporter.prom.port", "{port}")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rows = [tuple(r) for r in t_env.from_elements([(1,), (2,)], ["x"]).execute().collect()]
            print("ROWS", rows)
            print("ADDRESS", t_env.metrics_address())
            for w in caught:
                print("WARNING", w.message)
        '''))
    finally:
        s.close()
    assert "ROWS [(1,), (2,)]" in p.stdout
    assert "ADDRESS None" in p.stdout
    warned = [line for line in p.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warned) == 1 and "metrics.reporter.prom.port" in warned[0] and str(port) in warned[0], p.stdout


def test_default_job_names_never_mix_and_finished_jobs_stay_until_close():
    env = make_env(streaming=False)
    f = udf(lambda x: x, result_type="BIGINT", name="same")
    t = env.from_elements([(1,), (2,)], ["x"])
    r1, r2 = t.select(f(col("x"))).execute(), t.select(f(col("x"))).execute()
    list(r1.collect()), list(r2.collect())
    j1, j2 = r1.get_job_client().get_job_id(), r2.get_job_client().get_job_id()
    assert j1 != j2 and j1.startswith("collect") and j2.startswith("collect"), (j1, j2)
    text = env.metrics_text()
    for j in (j1, j2):
        assert value(text, "weir_python_udf_rows_total", job_name=j) == 2
    env.close()
    text = env.metrics_text()
    assert value(text, "weir_python_udf_rows_total", job_name=j1) is None
    assert value(text, "weir_job_running", job_name=j2) is None


def test_only_the_latest_finished_jobs_are_kept():
    env = make_env(streaming=False)
    env.execute_sql("CREATE TABLE s (x BIGINT) WITH ('connector' = 'blackhole')")
    names = [f"kept-{i}" for i in range(18)]
    for n in names:
        env.get_config().set("pipeline.name", n)
        env.execute_sql("INSERT INTO s VALUES (1)").wait()
    jobs = env._native.session_jobs()
    text = env.metrics_text()
    assert [j for j in jobs if j.startswith("kept-")] == names[2:], jobs
    assert value(text, "weir_job_running", job_name="kept-0") is None
    assert value(text, "weir_job_running", job_name="kept-17") == 0


class Count(ScalarFunction):
    def eval(self, s):
        return len(s)


def test_udfs_named_like_built_ins_are_the_users_functions():
    env = make_env(streaming=False)
    t = env.from_elements([("ab",), ("abc",), ("a",)], ["s"])
    count = udf(Count(), result_type=DataTypes.BIGINT())
    # Inline: one row per input row, not SQL's COUNT.
    assert [tuple(r) for r in t.select(col("s"), count(col("s"))).execute().collect()] == [
        ("ab", 2), ("abc", 3), ("a", 1)]
    upper = udf(lambda s: s + "!", result_type="STRING", name="upper")
    assert [r[0] for r in t.select(upper(col("s"))).execute().collect()] == ["ab!", "abc!", "a!"]
    # Registered: SQL and call() find the user's function before the built-in.
    env.create_temporary_function("sum", udf(lambda s: len(s) * 10, result_type="BIGINT"))
    env.create_temporary_view("words", t)
    got = [tuple(r) for r in env.sql_query("SELECT s, sum(s) FROM words").execute().collect()]
    assert got == [("ab", 20), ("abc", 30), ("a", 10)]
    env.create_temporary_system_function("upper", upper)
    assert [r[0] for r in t.select(call("upper", col("s"))).execute().collect()] == ["ab!", "abc!", "a!"]
    assert [r[0] for r in env.sql_query("SELECT UPPER(s) FROM words").execute().collect()] == [
        "ab!", "abc!", "a!"]


def test_the_session_is_shared_with_a_second_environment_in_this_process():
    stmt = "INSERT INTO s SELECT plus_one(x) FROM (VALUES (1), (2)) AS v(x)"
    first, second = make_env(streaming=False), make_env(streaming=False)
    address = first.start_metrics()
    assert address and second.metrics_address() == address
    second.get_config().set("pipeline.name", "second-env")
    second.create_temporary_function("plus_one", udf(lambda x: x + 1, result_type="BIGINT"))
    second.execute_sql("CREATE TABLE s (y BIGINT) WITH ('connector' = 'blackhole')")
    second.execute_sql(stmt).wait()
    deadline = time.monotonic() + 10
    while value(scrape(address), "weir_python_udf_rows_total", job_name="second-env") != 2:
        assert time.monotonic() < deadline, scrape(address)
        time.sleep(0.2)


def test_two_environments_run_udf_jobs_at_once_from_two_threads():
    import threading

    class Counted(ScalarFunction):
        def open(self, ctx):
            self.c = ctx.get_metric_group().counter("threaded")

        def eval(self, x):
            self.c.inc()
            return x + 1

    envs = [make_env(streaming=False), make_env(streaming=True)]
    results, names, errors = {}, {}, []

    def run(i, env):
        try:
            t = env.from_elements([(j,) for j in range(5000 * (i + 1))], ["x"])
            r = t.select(udf(Counted(), result_type="BIGINT")(col("x"))).execute()
            results[i] = sorted(row[0] for row in r.collect())
            names[i] = r.get_job_client().get_job_id()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, e)) for i, e in enumerate(envs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert names[0] != names[1]
    text = envs[0].metrics_text()
    for i in (0, 1):
        n = 5000 * (i + 1)
        assert results[i] == list(range(1, n + 1))
        assert value(text, "weir_user_threaded_total", job_name=names[i]) == n


def test_aggregation_level_is_per_job_and_takes_effect():
    class Seen(ScalarFunction):
        def open(self, ctx):
            self.c = ctx.get_metric_group().counter("seen_per_level")

        def eval(self, x):
            self.c.inc()
            return x

    env = make_env(streaming=False, parallelism__default="2")
    env.execute_sql("CREATE TABLE nums (x BIGINT) WITH ('connector' = 'datagen', 'fields.x.kind' = 'sequence', "
                    "'fields.x.start' = '1', 'fields.x.end' = '1000', 'rows-per-second' = '0')")
    env.execute_sql("CREATE TABLE out_nums (x BIGINT) WITH ('connector' = 'blackhole')")
    env.create_temporary_function("seen", udf(Seen(), result_type="BIGINT"))
    for level in ("subtask", "operator"):
        env.get_config().set("metrics.weir.aggregation-level", level)
        env.get_config().set("pipeline.name", f"level-{level}")
        env.execute_sql("INSERT INTO out_nums SELECT seen(x) FROM nums").wait()
    # (has a subtask label, value) of each series, per job.
    per_job = {}
    for (name, labels), v in samples(env.metrics_text()).items():
        if name == "weir_user_seen_per_level_total":
            d = dict(labels)
            per_job.setdefault(d["job_name"], []).append(("subtask" in d, v))
    assert len(per_job["level-subtask"]) == 2 and all(s for s, _ in per_job["level-subtask"]), per_job
    assert sum(v for _, v in per_job["level-subtask"]) == 1000
    assert per_job["level-operator"] == [(False, 1000.0)], per_job
