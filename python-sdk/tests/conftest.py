"""Helpers for weir's Python tests: environments with their own metrics port, the exposition
parsed into samples, and a real Prometheus server scraping weir."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from weir.table import EnvironmentSettings, TableEnvironment

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> Dict[Tuple[str, frozenset], float]:
    """Prometheus text exposition -> {(name, labels): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable exposition line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(text: str, name: str, **labels: str) -> Optional[float]:
    """The sum of the samples of `name` whose labels include `labels` (None if there is none)."""
    found = [
        v
        for (n, ls), v in samples(text).items()
        if n == name and all((k, v2) in ls for k, v2 in labels.items())
    ]
    return sum(found) if found else None


_test_envs: list = []


def make_env(streaming: bool = True, **config: str) -> TableEnvironment:
    """An environment (of this process's one session, whose endpoint takes any free port);
    `python__udf__on_error="skip"` sets `python.udf.on-error`. Closed after the test, so its
    jobs' series do not reach the next test's scrapes."""
    settings = EnvironmentSettings.in_streaming_mode() if streaming else EnvironmentSettings.in_batch_mode()
    env = TableEnvironment.create(settings)
    env.get_config().set("metrics.reporter.prom.port", "0")
    for k, v in config.items():
        env.get_config().set(k.replace("__", ".").replace("_", "-"), v)
    _test_envs.append(env)
    return env


@pytest.fixture(autouse=True)
def _close_test_envs() -> Iterator[None]:
    yield
    while _test_envs:
        _test_envs.pop().close()


def run_program(code: str, *args: str, timeout: float = 180, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs `code` as a Python program of its own (a process with its own session), as a user
    would; fails the test with its output when it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    try:
        p = subprocess.run(
            [sys.executable, f.name, *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    finally:
        os.unlink(f.name)
    assert p.returncode == 0, f"program failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        return r.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A real Prometheus server scraping the given targets every second."""

    def __init__(self, targets: list) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("the prometheus server is not installed (scripts/test.sh installs it)")
        self.dir = tempfile.mkdtemp(prefix="weir-prom-")
        self.port = free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: weir\n    static_configs:\n"
                f"      - targets: {json.dumps(targets)}\n"
            )
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.dir}/data",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
                return
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.close()
                    pytest.fail(f"prometheus did not become ready: {err[-2000:]}")
                time.sleep(0.2)

    def query(self, promql: str) -> list:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, promql: str) -> Optional[float]:
        res = self.query(promql)
        if not res:
            return None
        assert len(res) == 1, res
        return float(res[0]["value"][1])

    def wait_for(self, promql: str, expected: float, timeout: float = 30) -> Optional[float]:
        """Polls until the query returns `expected` (a failure guard, not a performance check)."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.scalar(promql)
            if got == expected:
                return got
            time.sleep(0.5)
        return got

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def prometheus_for() -> Iterator:
    started = []

    def start(*targets: str) -> Prometheus:
        p = Prometheus(list(targets))
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


def worker_pids(parent: Optional[int] = None) -> list:
    """Process ids of the weir workers of this process (or of `parent`)."""
    me = os.getpid() if parent is None else parent
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if ppid == me and b"weir.worker" in cmd:
            pids.append(int(d))
    return pids


class RandomKills:
    """SIGKILLs `kills` of this process's workers at random moments in the first 2 s (times
    and victims from `rng`), on a thread: `with RandomKills(rng, 3) as k: ...run...; k.landed`."""

    def __init__(self, rng, kills: int) -> None:
        self.rng, self.kills = rng, kills
        self.before = set(worker_pids())
        self.landed: list = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        start = time.monotonic()
        for at in sorted(self.rng.uniform(0.3, 2.0) for _ in range(self.kills)):
            while time.monotonic() - start < at and not self.done.is_set():
                time.sleep(0.005)
            # A random one of the live workers (sometimes one that is still starting).
            live = [p for p in worker_pids() if p not in self.before and p not in self.landed]
            if self.done.is_set() or not live:
                continue
            pid = self.rng.choice(sorted(live))
            try:
                os.kill(pid, signal.SIGKILL)
                self.landed.append(pid)
            except ProcessLookupError:
                pass

    def __enter__(self) -> "RandomKills":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


# -- the fault-injection table --
_fault_details: Dict[str, str] = {}
_fault_results: list = []


def fault_outcome(case: str, outcome: str) -> None:
    """Records what a fault-injection test saw, for the table printed at the end of the run."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "? (call)").rsplit(" ", 1)[0]
    _fault_details[test] = f"{case}: {outcome}"


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" and ("test_faults.py" in report.nodeid or report.nodeid in _fault_details):
        _fault_results.append((report.nodeid, report.outcome))


# Lines of tables other tests print at the end of the run (section title -> lines).
_summaries: Dict[str, List[str]] = {}


def summary_lines(section: str, lines: List[str]) -> None:
    """Prints `lines` under `section` at the end of the run (pytest hides a passing test's output)."""
    _summaries.setdefault(section, []).extend(lines)


def pytest_terminal_summary(terminalreporter) -> None:
    for section, lines in _summaries.items():
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)
    if not _fault_results:
        return
    w = terminalreporter
    w.section("fault injection")
    for nodeid, outcome in _fault_results:
        detail = _fault_details.get(nodeid, nodeid.split("::", 1)[-1])
        w.write_line(f"{outcome.upper():7} {detail}")
