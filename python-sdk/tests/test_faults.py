"""Fault injection: workers killed, stopped, crashing on a row, never saying hello, sending
garbage; the promise is that rows and metric totals stay exact or that the job fails fast with
a message that says why. Every random choice comes from a printed seed (``WEIR_FAULT_SEED``
replays one); the outcome of every case is printed in a table at the end of the run."""

from __future__ import annotations

import os
import random
import signal
import sys
import textwrap
import threading
import time

import pytest

from conftest import RandomKills, fault_outcome, make_env, run_program, value, worker_pids
from weir.table import DataTypes
from weir.table.expressions import col
from weir.table.udf import ScalarFunction, udf

SEED = int(os.environ.get("WEIR_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))


class Counted(ScalarFunction):
    def open(self, ctx):
        g = ctx.get_metric_group().add_group("faults")
        self.rows = g.counter("rows")
        self.xs = g.distribution("x")

    def eval(self, x):
        self.rows.inc()
        self.xs.update(x)
        return x * 2


class Busy(Counted):
    """A few microseconds of work per row: the workers are busy, bundles are in flight."""

    def eval(self, x):
        sum(range(40))
        return super().eval(x)


def source(env, n, rate):
    env.execute_sql(
        f"""CREATE TABLE src (x BIGINT) WITH (
            'connector' = 'datagen', 'number-of-rows' = '{n}', 'rows-per-second' = '{rate}',
            'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
    )
    return env.from_path("src")


def check_exact(env, job, ys, n, restarts):
    assert len(ys) == n, f"{len(ys)} rows for {n}"
    assert sorted(ys) == [2 * x for x in range(1, n + 1)], "every row exactly once"
    text = env.metrics_text()
    assert value(text, "weir_user_faults_rows_total", job_name=job) == n
    assert value(text, "weir_user_faults_x_count", job_name=job) == n
    assert value(text, "weir_user_faults_x_sum", job_name=job) == n * (n + 1) // 2
    assert value(text, "weir_python_udf_rows_total", job_name=job) == n
    assert value(text, "weir_python_udf_worker_restarts_total", job_name=job) == restarts


@pytest.mark.parametrize("kills", [1, 3, 10])
def test_random_sigkills_at_parallelism_2_lose_nothing(kills):
    seed = SEED + kills
    rng = random.Random(seed)
    print(f"seed {seed} (WEIR_FAULT_SEED={SEED})")
    job = f"sigkill-{kills}"
    env = make_env(
        pipeline__name=job,
        parallelism__default="2",
        python__fn_execution__bundle__size="500",
        **{"python.worker.restart.max-attempts": str(kills + 1)},
    )
    n = 450_000
    f = udf(Busy(), result_type=DataTypes.BIGINT())
    t = source(env, n, rate=150_000).select(f(col("x")).alias("y"))
    # Kills spread over the first 2 s of a job of about 3 s.
    with RandomKills(rng, kills) as k:
        ys = [r.y for r in t.execute().collect()]
    landed = k.landed
    print(f"{len(landed)} of {kills} kills landed")
    assert landed, "no kill landed"
    check_exact(env, job, ys, n, restarts=len(landed))
    fault_outcome(f"{kills} random SIGKILL(s), p=2, seed {seed}", f"exact; {len(landed)} restarts")


def test_sigstop_is_detected_by_the_heartbeat_and_the_worker_replaced():
    job = "sigstop"
    env = make_env(
        pipeline__name=job,
        **{"python.worker.heartbeat-timeout": "1 s"},
    )
    n = 20_000
    f = udf(Counted(), result_type=DataTypes.BIGINT())
    t = source(env, n, rate=8_000).select(f(col("x")).alias("y"))
    before = set(worker_pids())
    stopped = []

    def stopper():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not stopped:
            pids = [p for p in worker_pids() if p not in before]
            if pids:
                time.sleep(0.8)
                os.kill(pids[0], signal.SIGSTOP)
                stopped.append(pids[0])
            time.sleep(0.02)
        # Should the heartbeat never fire, let the worker go on after 30 s: the job ends and
        # the assertions below fail, instead of the test hanging.
        give_up = time.monotonic() + 30
        while stopped and stopped[0] in worker_pids() and time.monotonic() < give_up:
            time.sleep(0.1)
        if stopped and stopped[0] in worker_pids():
            os.kill(stopped[0], signal.SIGCONT)

    k = threading.Thread(target=stopper)
    k.start()
    t0 = time.monotonic()
    ys = [r.y for r in t.execute().collect()]
    k.join()
    assert stopped
    assert stopped[0] not in worker_pids(), "the stopped worker was killed"
    check_exact(env, job, ys, n, restarts=1)
    fault_outcome("SIGSTOP of a worker, heartbeat-timeout 1 s", f"exact; 1 restart; job {time.monotonic() - t0:.1f} s")


CRASH = """
import os, sys, time, ctypes
from weir.table import EnvironmentSettings, TableEnvironment, DataTypes
from weir.table.expressions import col
from weir.table.udf import udf

@udf(result_type=DataTypes.BIGINT())
def fragile(x):
    if x == 777:
        {how}
    return x

env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("metrics.reporter.prom.port", "0")
env.get_config().set("python.worker.restart.max-attempts", "3")
env.execute_sql("CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '2000', "
                "'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '2000')")
t0 = time.monotonic()
try:
    list(env.from_path("src").select(fragile(col("x"))).execute().collect())
    print("NO ERROR")
except Exception as e:
    print("ERROR", type(e).__name__, e)
print(f"after {time.monotonic() - t0:.1f} s")
"""


@pytest.mark.parametrize("how", ["os._exit(3)", "ctypes.string_at(0)"], ids=["exit", "segfault"])
def test_a_udf_that_kills_its_worker_on_one_row_fails_the_job_naming_function_row_and_limit(how):
    p = run_program(CRASH.replace("{how}", how), timeout=120)
    out = p.stdout
    assert "NO ERROR" not in out, out
    assert "`fragile`" in out, out
    assert "(777,)" in out, out
    assert "python.worker.restart.max-attempts = 3" in out, out
    assert ("exited with status 3" if "exit" in how else "SIGSEGV") in out, out
    print(out)
    fault_outcome(f"UDF {how} on one row", "fails " + out.strip().splitlines()[-1])


def fake_python(tmp_path, name, body):
    """An executable standing in for python.executable: `body` is Python run by the real
    interpreter with the socket path in `SOCKET`."""
    path = tmp_path / name
    path.write_text(
        f"#!{sys.executable}\nimport os, socket, sys, time, struct\n"
        "SOCKET = sys.argv[sys.argv.index('--socket') + 1]\n" + textwrap.dedent(body)
    )
    path.chmod(0o755)
    return str(path)


def run_udf_job(env, n=1000):
    f = udf(Counted(), result_type=DataTypes.BIGINT())
    return [r.y for r in source(env, n, rate=0).select(f(col("x")).alias("y")).execute().collect()]


HELLO = "s = socket.socket(socket.AF_UNIX); s.connect(SOCKET)\n"

BAD_WORKERS = {
    "never connects": ("time.sleep(60)\n", "did not connect within 1s"),
    "never says hello": (HELLO + "time.sleep(60)\n", "did not finish saying hello within 1s"),
    "announces a 200 MB frame and stalls": (
        HELLO + "s.sendall(b'WF' + bytes([2, 7]) + struct.pack('<I', 200 << 20))\ntime.sleep(60)\n",
        "did not finish saying hello within 1s",
    ),
    "sends a frame over the size limit": (
        HELLO + "s.sendall(b'WF' + bytes([2, 7]) + struct.pack('<I', 0x7fffffff))\ntime.sleep(60)\n",
        "over the limit",
    ),
    "cuts a frame and exits": (
        HELLO + "s.sendall(b'WF' + bytes([2, 1]) + struct.pack('<I', 100) + b'abc')\n",
        "in the middle of a 100-byte body",
    ),
    "sends garbage": (HELLO + "s.sendall(os.urandom(4096))\ntime.sleep(60)\n", "not a weir worker frame"),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKERS))
def test_a_worker_that_misbehaves_from_the_start_fails_the_job_with_the_reason(tmp_path, case):
    body, want = BAD_WORKERS[case]
    env = make_env(
        python__executable=fake_python(tmp_path, "bad-python", body),
        **{"python.worker.start-timeout": "1 s", "python.worker.restart.max-attempts": "2"},
    )
    t0 = time.monotonic()
    with pytest.raises(Exception) as e:
        run_udf_job(env)
    took = time.monotonic() - t0
    msg = str(e.value)
    assert want in msg, msg
    assert "python.worker.restart.max-attempts = 2" in msg, msg
    fault_outcome(f"fake worker: {case}", f"fails in {took:.1f} s: ...{want}...")


def test_garbage_from_a_worker_once_is_a_dead_worker_replaced_and_nothing_is_lost(tmp_path):
    # The first worker connects, says hello as the real one would not, and sends garbage;
    # every later start is the real worker.
    marker = tmp_path / "first-done"
    exe = fake_python(
        tmp_path,
        "flaky-python",
        f"""
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            {HELLO.strip()}
            s.sendall(os.urandom(64))
            time.sleep(60)
        os.execv({sys.executable!r}, [{sys.executable!r}] + sys.argv[1:])
        """,
    )
    job = "garbage-once"
    env = make_env(pipeline__name=job, python__executable=exe)
    n = 5000
    ys = run_udf_job(env, n)
    assert marker.exists()
    check_exact(env, job, ys, n, restarts=1)
    fault_outcome("garbage frames from a worker once", "exact; 1 restart")


LONG_JOB = """
import time
from weir.table import EnvironmentSettings, TableEnvironment, DataTypes
from weir.table.expressions import col
from weir.table.udf import udf

@udf(result_type=DataTypes.BIGINT())
def slow(x):
    time.sleep({sleep})
    return x

env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("metrics.reporter.prom.port", "0")
env.get_config().set("python.worker.heartbeat-timeout", "1 s")
env.execute_sql("CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '100')")
for r in env.from_path("src").select(slow(col("x"))).execute().collect():
    pass
"""


def socket_of(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = f.read().split(b"\0")
    return args[args.index(b"--socket") + 1].decode()


def start_driver(sleep):
    import subprocess

    code = LONG_JOB.replace("{sleep}", str(sleep))
    p = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not worker_pids(p.pid):
        assert p.poll() is None, p.stderr.read()
        time.sleep(0.05)
    workers = worker_pids(p.pid)
    assert workers, "no worker started"
    return p, workers


def gone(pid, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_of_a_python_job_stops_it_cleanly_and_leaves_nothing_behind():
    p, workers = start_driver(0.001)
    sock_dir = os.path.dirname(socket_of(workers[0]))
    assert os.path.isdir(sock_dir)
    assert os.stat(sock_dir).st_mode & 0o777 == 0o700
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "weir: stopping (SIGTERM)" in err, err
    assert "Traceback" not in err, err
    assert not os.path.exists(sock_dir), "socket directory left behind"
    assert all(gone(w, 10) for w in workers), "a worker outlived its driver"
    fault_outcome("SIGTERM of a Python job", "exit 143; socket directory and workers gone")


def test_workers_of_a_killed_driver_exit_even_inside_a_long_udf_call():
    p, workers = start_driver(60)  # each row sleeps a minute: the worker never reads
    time.sleep(0.5)
    p.kill()
    p.communicate(timeout=30)
    # The heartbeat thread's write fails (or its parent changes) within an interval (200 ms).
    assert all(gone(w, 10) for w in workers), "an orphaned worker kept running"
    fault_outcome("SIGKILL of the driver during a 60 s UDF call", "workers exit")


def test_a_worker_stopped_and_continued_goes_on_without_a_restart():
    # SIGCONT interrupts the worker's wait for input; that is not the engine going away.
    job = "sigcont"
    env = make_env(pipeline__name=job)
    n = 20_000
    f = udf(Counted(), result_type=DataTypes.BIGINT())
    t = source(env, n, rate=8_000).select(f(col("x")).alias("y"))
    before = set(worker_pids())
    paused = []

    def pauser():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not paused:
            pids = [p for p in worker_pids() if p not in before]
            if pids:
                time.sleep(0.8)
                for _ in range(3):
                    os.kill(pids[0], signal.SIGSTOP)
                    time.sleep(0.2)
                    os.kill(pids[0], signal.SIGCONT)
                    time.sleep(0.1)
                paused.append(pids[0])
            time.sleep(0.02)

    k = threading.Thread(target=pauser)
    k.start()
    ys = [r.y for r in t.execute().collect()]
    k.join()
    assert paused
    check_exact(env, job, ys, n, restarts=0)
    fault_outcome("SIGSTOP + SIGCONT of a worker, 3 times", "exact; no restart")
