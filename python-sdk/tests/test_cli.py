"""The `weir` command that `pip install ./python-sdk` installs: `weir sql` scripts with Python
functions of every kind from `-pyfs`, an archive from `-pyarch`, offline requirements from
`-pyreq`, the interpreter from `-pyexec`; metrics exact at a real Pushgateway."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
import zipfile

import pytest

from conftest import free_port, samples
from test_dependencies import wheel

def _installed_command():
    """The `weir` pip installed beside this interpreter (a PATH shim may not exist yet)."""
    beside = os.path.join(os.path.dirname(sys.executable), "weir")
    return beside if os.path.exists(beside) else shutil.which("weir")


WEIR = _installed_command()


@pytest.fixture(autouse=True)
def _the_command_is_installed():
    if WEIR is None:
        pytest.fail("the `weir` command is not installed: pip install ./python-sdk (scripts/test.sh does)")

MODULE = """
    import os

    import pandas as pd

    from weir.table import DataTypes
    from weir.table.udf import AggregateFunction, ScalarFunction, udaf, udf, udtf


    class Shout(ScalarFunction):
        def open(self, ctx):
            global cli_req
            import cli_req  # installed for the workers by -pyreq, offline

            self.n = ctx.get_metric_group().add_group("cli").counter("shouted")
            with open(os.path.join("lex", "suffix.txt")) as f:  # from -pyarch
                self.suffix = f.read().strip()

        def eval(self, s):
            self.n.inc()
            return cli_req.shout(s) + self.suffix


    shout = udf(Shout(), result_type=DataTypes.STRING())


    @udf(result_type=DataTypes.BIGINT(), func_type="pandas")
    def lengths(s: pd.Series) -> pd.Series:
        return s.str.len()


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

SCRIPT = """
    SET 'execution.runtime-mode' = 'batch';
    CREATE TEMPORARY FUNCTION shout AS 'cli_fns.shout' LANGUAGE PYTHON;
    CREATE TEMPORARY SYSTEM FUNCTION lengths AS 'cli_fns.lengths' LANGUAGE PYTHON;
    CREATE FUNCTION letters AS 'cli_fns.letters' LANGUAGE PYTHON;
    CREATE TEMPORARY FUNCTION longest AS 'cli_fns.longest' LANGUAGE PYTHON;
    CREATE TEMPORARY VIEW words AS SELECT * FROM (VALUES (1, 'ab'), (1, 'xyz'), (2, 'q')) AS t(k, w);
    CREATE TABLE shouted (s STRING, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{out}/shouted', 'format' = 'csv');
    CREATE TABLE letter_counts (c STRING, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{out}/letters', 'format' = 'csv');
    CREATE TABLE longest_words (k INT, l STRING) WITH ('connector' = 'filesystem', 'path' = '{out}/longest', 'format' = 'csv');
    INSERT INTO shouted SELECT shout(w), lengths(w) FROM words;
    INSERT INTO letter_counts SELECT c, COUNT(*) FROM words, LATERAL TABLE(letters(w)) AS T(c) GROUP BY c;
    INSERT INTO longest_words SELECT k, longest(w) FROM words GROUP BY k;
"""


def rows(directory):
    out = []
    for f in glob.glob(os.path.join(directory, "**", "*"), recursive=True):
        if os.path.isfile(f) and not os.path.basename(f).startswith("."):
            with open(f) as fh:
                out += [line for line in fh.read().splitlines() if line]
    return sorted(out)


@pytest.fixture
def pushgateway():
    exe = shutil.which("prometheus-pushgateway")
    if exe is None:
        pytest.fail("prometheus-pushgateway is not installed (scripts/test.sh installs it)")
    port = free_port()
    p = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
            break
        except Exception:
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                pytest.fail("the Pushgateway did not start")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    p.terminate()
    p.wait(10)


def project(tmp_path):
    """The module, its archive, its offline requirement and the script, in their own places."""
    fns = tmp_path / "fns"
    fns.mkdir()
    (fns / "cli_fns.py").write_text(textwrap.dedent(MODULE))
    lex = tmp_path / "lex.zip"
    with zipfile.ZipFile(lex, "w") as z:
        z.writestr("suffix.txt", "!\n")
    cache = tmp_path / "wheels"
    cache.mkdir()
    wheel(cache, "cli_req", "2.0", "def shout(s):\n    return s.upper()\n")
    req = tmp_path / "requirements.txt"
    req.write_text("cli_req==2.0\n")
    out = tmp_path / "out"
    script = tmp_path / "job.sql"
    script.write_text(textwrap.dedent(SCRIPT.format(out=out)))
    return fns / "cli_fns.py", lex, f"{req}#{cache}", script, out


def test_weir_sql_runs_every_python_function_kind_with_dependencies(tmp_path, pushgateway):
    module, lex, req, script, out = project(tmp_path)
    tmp = os.environ.get("TMPDIR", "/tmp")
    before = set(glob.glob(os.path.join(tmp, "weir-*")))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    p = subprocess.run(
        [WEIR, "sql", str(script), "-pyfs", str(module), "-pyarch", f"{lex}#lex", "-pyreq", req,
         "-pyexec", str(venv / "bin" / "python"), "--metrics-port", "0",
         "--set", "pipeline.name=cli-kinds",
         "--set", f"metrics.reporter.promgateway.hostUrl=http://{pushgateway}",
         "--set", "metrics.reporter.promgateway.jobName=cli-test",
         "--set", "metrics.reporter.promgateway.interval=10 min",
         "--set", "metrics.reporter.promgateway.deleteOnShutdown=false"],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert rows(out / "shouted") == ["AB!,2", "Q!,1", "XYZ!,3"]
    assert rows(out / "letters") == ["a,1", "b,1", "q,1", "x,1", "y,1", "z,1"]
    assert rows(out / "longest") == ["1,xyz", "2,q"]
    with urllib.request.urlopen(f"http://{pushgateway}/metrics", timeout=5) as r:
        pushed = samples(r.read().decode())
    shouted = [v for (name, labels), v in pushed.items() if name == "weir_user_cli_shouted_total"]
    assert shouted == [3.0], pushed.keys()
    # Nothing of the job is left in the temporary directory.
    assert set(glob.glob(os.path.join(tmp, "weir-*"))) - before == set(), "job directories left behind"


def test_weir_sql_says_which_function_cannot_be_loaded(tmp_path):
    script = tmp_path / "bad.sql"
    script.write_text("CREATE TEMPORARY FUNCTION f AS 'no_such_module_here.f' LANGUAGE PYTHON;\n")
    p = subprocess.run([WEIR, "sql", str(script)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert "CREATE FUNCTION f AS 'no_such_module_here.f'" in p.stderr and "No module named 'no_such_module_here'" in p.stderr, p.stderr


def test_weir_sql_fails_before_running_when_requirements_do_not_install(tmp_path):
    module, lex, _, script, out = project(tmp_path)
    (tmp_path / "empty").mkdir()
    req = tmp_path / "bad.txt"
    req.write_text("weir-no-such-package==1\n")
    p = subprocess.run(
        [WEIR, "sql", str(script), "-pyfs", str(module), "-pyarch", f"{lex}#lex",
         "-pyreq", f"{req}#{tmp_path / 'empty'}", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 1, p.stderr
    assert "python.requirements" in p.stderr and "No matching distribution found for weir-no-such-package==1" in p.stderr, p.stderr
    assert rows(out / "shouted") == []


def test_help_lists_the_python_options():
    p = subprocess.run([WEIR, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for opt in ("-pyfs, --pyFiles", "-pyarch, --pyArchives", "-pyreq, --pyRequirements", "-pyexec, --pyExecutable"):
        assert opt in p.stdout


def test_weir_sql_in_thread_mode_runs_the_functions_in_its_own_process(tmp_path):
    (tmp_path / "tm_cli.py").write_text(textwrap.dedent("""
        import os
        from weir.table.udf import udf

        @udf(result_type="BIGINT")
        def pid(x):
            return os.getpid()
    """))
    out = tmp_path / "out"
    script = tmp_path / "tm.sql"
    script.write_text(textwrap.dedent(f"""
        SET 'execution.runtime-mode' = 'batch';
        SET 'python.execution-mode' = 'thread';
        CREATE TEMPORARY FUNCTION pid AS 'tm_cli.pid' LANGUAGE PYTHON;
        CREATE TABLE pids (p BIGINT) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');
        INSERT INTO pids SELECT pid(x) FROM (VALUES (1), (2), (3)) AS t(x);
    """))
    p = subprocess.Popen([WEIR, "sql", str(script), "-pyfs", str(tmp_path / "tm_cli.py"), "--metrics-port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert rows(out) == [str(p.pid)] * 3
