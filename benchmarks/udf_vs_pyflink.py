"""weir vs PyFlink 2.3 vs a pure Python loop, side by side in one run.

    python benchmarks/udf_vs_pyflink.py [--rows 3000000] [--repeat 3] [--skip-pyflink]
        [--pyflink-python PATH] [--kinds general,pandas,arrow]

The job (benchmarks/udf_job.py, the same file for both engines): a BIGINT sequence of N rows ->
Python scalar UDF `x + 1` -> blackhole, parallelism 1, datagen not rate-limited, start-up
included, each run in a fresh process; with and without a counter, a meter and a distribution
updated per row. PyFlink is installed from PyPI into its own virtual environment
(~/.cache/weir-bench/pyflink) on first use; it needs Java 17. The floor is a pure Python loop
(`for x in xs: out.append(f(x))`) calling the same function over the same rows, with and
without three method-call updates on plain Python objects. `--kinds pandas,arrow` adds the same
job as a Pandas UDF (both engines) and as weir's arrow UDF (weir only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.expanduser("~/.cache/weir-bench/pyflink")


def run_job(python: str, engine: str, rows: int, metrics: bool, kind: str = "general") -> dict:
    cmd = [python, os.path.join(HERE, "udf_job.py"), "--engine", engine, "--rows", str(rows), "--kind", kind]
    if metrics:
        cmd.append("--metrics")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def pyflink_python() -> str:
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"installing apache-flink 2.3 into {VENV} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    check = subprocess.run([py, "-c", "import pyflink"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "apache-flink==2.3.*"], check=True)
    return py


class Counter:
    def __init__(self):
        self.count = 0

    def inc(self, n=1):
        self.count += n


class Meter:
    def __init__(self):
        self.count = 0

    def mark_event(self, n=1):
        self.count += n


class Distribution:
    def __init__(self):
        self.sum = self.count = 0
        self.min = self.max = None

    def update(self, v):
        self.sum += v
        self.count += 1
        if self.min is None or v < self.min:
            self.min = v
        if self.max is None or v > self.max:
            self.max = v


def python_loop(rows: int, metrics: bool) -> dict:
    xs = list(range(1, rows + 1))
    c, m, d = Counter(), Meter(), Distribution()

    def plus_one(x):
        return x + 1

    def measured(x):
        c.inc()
        m.mark_event()
        d.update(x)
        return x + 1

    f = measured if metrics else plus_one
    t0 = time.perf_counter()
    out = []
    append = out.append
    for x in xs:
        append(f(x))
    seconds = time.perf_counter() - t0
    assert len(out) == rows
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


def best(runs: list) -> dict:
    r = max(runs, key=lambda x: x["rows_per_second"])
    r = dict(r)
    r["median_rows_per_second"] = statistics.median(x["rows_per_second"] for x in runs)
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=3_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-pyflink", action="store_true")
    p.add_argument("--pyflink-python", help="a Python that has apache-flink 2.3 (default: a venv made on first use)")
    p.add_argument("--kinds", default="general", help="UDF kinds, comma-separated: general, pandas, arrow")
    args = p.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    print(f"{args.rows:,} rows, best of {args.repeat}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
    results = {}
    cases = [("python loop", None, "general")]
    pyflink = None if args.skip_pyflink else (args.pyflink_python or pyflink_python())
    for kind in kinds:
        suffix = "" if kind == "general" else f" {kind}"
        cases.append((f"weir{suffix}", sys.executable, kind))
        if pyflink and kind != "arrow":
            cases.append((f"pyflink 2.3{suffix}", pyflink, kind))
    for name, python, kind in cases:
        for metrics in (False, True):
            runs = []
            for _ in range(args.repeat if not name.startswith("pyflink") else 1):
                if python is None:
                    runs.append(python_loop(args.rows, metrics))
                else:
                    engine = "pyflink" if name.startswith("pyflink") else "weir"
                    r = run_job(python, engine, args.rows, metrics, kind)
                    if "udf_rows" in r and r["udf_rows"] != args.rows:
                        raise RuntimeError(f"weir evaluated {r['udf_rows']} rows, not {args.rows}")
                    runs.append(r)
            results[(name, metrics)] = best(runs)
            r = results[(name, metrics)]
            what = ("3 metric updates/batch" if kind != "general" else "3 metric updates/row") if metrics else "no metrics"
            print(f"  {name:<20} {what:<24} "
                  f"{r['rows_per_second']:>14,.0f} rows/s  ({r['seconds']:.2f} s)", flush=True)
    print()
    floor = results[("python loop", False)]["rows_per_second"]
    for kind in ("pandas", "arrow"):
        if (f"weir {kind}", False) in results:
            w = results[(f"weir {kind}", False)]["rows_per_second"]
            line = f"weir {kind} / python loop floor: {w / floor:.1f}"
            if (f"pyflink 2.3 {kind}", False) in results:
                line += f"; weir {kind} / pyflink {kind}: {w / results[(f'pyflink 2.3 {kind}', False)]['rows_per_second']:.1f}x"
            if kind == "arrow" and ("weir pandas", False) in results:
                line += f"; arrow / pandas on weir: {w / results[('weir pandas', False)]['rows_per_second']:.2f}"
            print(line)
    if ("weir", False) not in results:
        return
    weir = results[("weir", False)]["rows_per_second"]
    print(f"weir / python loop floor: {weir / floor:.2f} (target >= 0.5)")
    per_row = lambda k: 1e9 / results[k]["rows_per_second"]  # noqa: E731
    weir_cost = per_row(("weir", True)) - per_row(("weir", False))
    loop_cost = per_row(("python loop", True)) - per_row(("python loop", False))
    print(f"3 metric updates per row cost: weir {weir_cost:.0f} ns, python loop {loop_cost:.0f} ns "
          f"(target: weir <= python loop)")
    if ("pyflink 2.3", False) in results:
        pf = results[("pyflink 2.3", False)]["rows_per_second"]
        pfm = results[("pyflink 2.3", True)]["rows_per_second"]
        print(f"weir / pyflink: {weir / pf:.0f}x without metrics, "
              f"{results[('weir', True)]['rows_per_second'] / pfm:.0f}x with (target >= 50x)")


if __name__ == "__main__":
    main()
