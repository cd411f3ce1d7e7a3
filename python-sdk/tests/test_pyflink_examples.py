"""PyFlink's own Table API examples, run on PyFlink 2.3 and on weir, outputs compared.

The programs are copied at test time from the ``apache-flink==2.3.0`` package (installed into
its own virtual environment, ``~/.cache/weir-bench/pyflink``, shared with the benchmarks;
Java 17 runs it), ``pyflink`` replaced by ``weir``; none of their code is in this repository.
Only the examples that need no DataStream API are run (the DataStream API is out of weir's
scope). ``WEIR_SKIP_PYFLINK=1`` skips this file (for machines without Java).

Outputs are compared after normalising what is not the programs' result:
- log noise of either engine (Beam/PyFlink start-up warnings, weir's metrics endpoint line);
- changelogs (``+I[...]``, ``-U[...]`` lines of the print connector, ``op`` columns of
  ``print()``) are compared as the tables they end as: the two engines emit the same final
  rows, but how many intermediate updates they show depends on how rows are batched (Flink
  updates per row, weir per batch), which is not a result;
- ``print()`` tables are compared cell by cell (layout apart), rows in order unless the output
  is a changelog;
- ``explain()`` text is left out (each engine prints its own plan).
Where an example is random (``np.random``, ``random``, datagen), a seed is set in both copies
or only the shape of the output is compared; the table printed at the end says which.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Tuple

import pytest

VENV = os.path.expanduser("~/.cache/weir-bench/pyflink")
HERE = os.path.dirname(os.path.abspath(__file__))

NOISE = (
    "Using Any for unsupported type",
    "No module named google.cloud",
    "PYFLINK_CYTHON_ENABLED",
    "serving Prometheus metrics at",
    "WARNING: An illegal reflective",
    "SLF4J:",
)


def pyflink_python() -> str:
    """A Python with apache-flink 2.3.0, made once (pip from PyPI)."""
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    if subprocess.run([py, "-c", "import pyflink"], capture_output=True).returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "apache-flink==2.3.0"], check=True)
    return py


def examples_dir(py: str) -> str:
    out = subprocess.run(
        [py, "-c", "import os, pyflink; print(os.path.join(os.path.dirname(pyflink.__file__), 'examples', 'table'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# -- normalising outputs --

CHANGE = re.compile(r"^(\+I|-U|\+U|-D)\[(.*)\]$")


def _materialize(entries: List[Tuple[str, Tuple[str, ...]]]) -> List[Tuple[str, ...]]:
    """The rows a changelog ends as (sorted)."""
    rows: List[Tuple[str, ...]] = []
    for kind, row in entries:
        if kind in ("+I", "+U"):
            rows.append(row)
        elif row in rows:
            rows.remove(row)
        else:
            rows.append(("<retracted but never emitted>",) + row)
    return sorted(rows)


def _table_rows(lines: List[str]) -> Tuple[List[str], List[Tuple[str, ...]]]:
    """Header and rows of a boxed table printed by ``TableResult.print()``."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if line.startswith("|")]
    return cells[0], [tuple(c) for c in cells[1:]]


def normalise(text: str) -> List[str]:
    """The output as comparable items (see the module's description)."""
    lines = [line.rstrip() for line in text.splitlines() if not any(n in line for n in NOISE)]
    out: List[str] = []
    changes: List[Tuple[str, Tuple[str, ...]]] = []
    i = 0

    def flush() -> None:
        if changes:
            out.append(f"changelog ending as {_materialize(changes)}")
            changes.clear()

    while i < len(lines):
        line = lines[i]
        m = CHANGE.match(line)
        if m:
            changes.append((m.group(1), tuple(c.strip() for c in m.group(2).split(","))))
            i += 1
            continue
        flush()
        if line.startswith("+-") and i + 1 < len(lines) and lines[i + 1].startswith("|"):
            j = i + 1
            block = []
            while j < len(lines) and (lines[j].startswith("|") or lines[j].startswith("+-")):
                block.append(lines[j])
                j += 1
            header, rows = _table_rows(block)
            if header and header[0] == "op":
                out.append(f"table {header[1:]} ending as {_materialize([(r[0], r[1:]) for r in rows])}")
            else:
                out.append(f"table {header} rows {rows}")
            i = j
            if i < len(lines) and re.match(r"^\d+ rows? in set$", lines[i]):
                i += 1
            continue
        if line.startswith("== Abstract Syntax Tree ==") or line.startswith("== Physical Plan") or line.startswith("== Optimized"):
            # An explain() text: up to the next blank-line-separated block that is not a plan.
            j = i
            while j < len(lines) and not (lines[j].startswith("+-") or CHANGE.match(lines[j]) or lines[j].startswith("(")):
                j += 1
            out.append("<explain text>")
            i = j
            continue
        if line.strip():
            out.append(line.strip())
        i += 1
    flush()
    # Consecutive explain texts (an engine may print one or two blocks per call).
    dedup: List[str] = []
    for item in out:
        if not (item == "<explain text>" and dedup and dedup[-1] == "<explain text>"):
            dedup.append(item)
    return dedup


def seed_numpy(source: str) -> str:
    return source.replace("import numpy as np\n", "import numpy as np\nnp.random.seed(7)\n", 1)


def async_shape(items: List[str]) -> List[str]:
    """The async example's shape: its messages, table headers and row counts, and that every
    ``async_db_lookup`` value is ``db_value_for_<key>`` (its rows are random)."""
    shaped = []
    for item in items:
        m = re.match(r"table \[(.*?)\] ending as \[(.*)\]$", item)
        if not m:
            shaped.append(item)
            continue
        header = m.group(1)
        rows = re.findall(r"\(([^()]*)\)", m.group(2))
        if "user_info" in header:
            bad = [r for r in rows if not re.fullmatch(r"'(.*)', 'db_value_for_\1'", r)]
            shaped.append(f"table [{header}] {len(rows)} rows, lookups wrong: {bad}")
        else:
            ok = all(re.fullmatch(r"'(.*)', 'Product \1: \$\d+'", r) for r in rows)
            shaped.append(f"table [{header}] {len(rows)} rows, api values well formed: {ok}")
    return shaped


# name, relative path, source transform, output transform, how compared
EXAMPLES: List[Tuple[str, str, Callable[[str], str], Callable[[List[str]], List[str]], str]] = [
    ("word_count", "word_count.py", lambda s: s, lambda o: o, "final rows of the print sink's changelog"),
    ("basic_operations", "basic_operations.py", lambda s: s, lambda o: o, "printed tables cell by cell; explain() left out"),
    ("multi_sink", "multi_sink.py", lambda s: s, lambda o: o, "rows of both print sinks"),
    ("process_json_data", "process_json_data.py", lambda s: s, lambda o: o, "rows of the print sink"),
    ("process_json_data_with_udf", "process_json_data_with_udf.py", lambda s: s, lambda o: o, "rows of the print sink"),
    ("conversion_from_dataframe", "pandas/conversion_from_dataframe.py", seed_numpy, lambda o: o, "printed DataFrame, numpy seeded in both"),
    ("async_scalar_function", "async/async_scalar_function.py", lambda s: s, async_shape, "shape (random data): headers, row counts, values well formed"),
]


def run(python: str, path: str, cwd: str, timeout: float = 300) -> Tuple[int, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    p = subprocess.run([python, path], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    return p.returncode, p.stdout + ("" if p.returncode == 0 else "\n" + p.stderr[-4000:])


def compare_all(tmp: str, names: Optional[List[str]] = None) -> Dict[str, Tuple[bool, str, str]]:
    py = pyflink_python()
    src = examples_dir(py)
    results: Dict[str, Tuple[bool, str, str]] = {}
    for name, rel, transform, shape, how in EXAMPLES:
        if names and name not in names:
            continue
        source = transform(open(os.path.join(src, rel)).read())
        pf_path = os.path.join(tmp, f"pyflink_{name}.py")
        weir_path = os.path.join(tmp, f"weir_{name}.py")
        with open(pf_path, "w") as f:
            f.write(source)
        with open(weir_path, "w") as f:
            f.write(source.replace("pyflink", "weir"))
        rc_pf, out_pf = run(py, pf_path, tmp)
        rc_w, out_w = run(sys.executable, weir_path, tmp)
        a, b = shape(normalise(out_pf)), shape(normalise(out_w))
        same = rc_pf == 0 and rc_w == 0 and a == b
        detail = ""
        if not same:
            import difflib

            detail = "\n".join(difflib.unified_diff(a, b, "pyflink", "weir", lineterm="", n=1))
            if rc_w != 0:
                detail += f"\nweir exited {rc_w}:\n{out_w[-3000:]}"
            if rc_pf != 0:
                detail += f"\npyflink exited {rc_pf}:\n{out_pf[-3000:]}"
        results[name] = (same, how, detail)
    return results


def print_table(results: Dict[str, Tuple[bool, str, str]]) -> None:
    print("\nPyFlink 2.3 examples on weir (pyflink -> weir):")
    for name, (same, how, _) in results.items():
        print(f"  {name:<28} {'identical' if same else 'DIFFERENT':<10} ({how})")


@pytest.mark.skipif(os.environ.get("WEIR_SKIP_PYFLINK") == "1", reason="WEIR_SKIP_PYFLINK=1")
@pytest.mark.skipif(shutil.which("java") is None, reason="PyFlink needs Java 17 (not on this machine)")
def test_pyflink_table_examples_give_pyflinks_output(tmp_path):
    results = compare_all(str(tmp_path))
    print_table(results)
    different = {n: d for n, (same, _, d) in results.items() if not same}
    assert not different, "\n\n".join(f"== {n}\n{d}" for n, d in different.items())


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        res = compare_all(d, sys.argv[1:] or None)
        for n, (same, _, detail) in res.items():
            if not same:
                print(f"== {n}\n{detail}\n")
        print_table(res)
