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

# A print sink's row, after the `N> ` subtask prefix Flink adds when the sink runs in parallel.
CHANGE = re.compile(r"^(?:\d+> )?(\+I|-U|\+U|-D)\[(.*)\]$")
BORDER = re.compile(r"^\+-[-+]*\+$")
EXPLAIN_HEADS = ("== Abstract Syntax Tree ==", "== Optimized", "== Physical Plan", "== Logical Plan")


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
            # The row's text as printed: values may hold commas (JSON), so it is not split.
            changes.append((m.group(1), (m.group(2),)))
            i += 1
            continue
        flush()
        if BORDER.match(line) and i + 1 < len(lines) and lines[i + 1].startswith("|"):
            j = i + 1
            block = []
            while j < len(lines) and (lines[j].startswith("|") or BORDER.match(lines[j])):
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
        if line.startswith(EXPLAIN_HEADS):
            # An explain() text: up to the next table, changelog or printed schema.
            j = i
            while j < len(lines) and not (
                BORDER.match(lines[j])
                or CHANGE.match(lines[j])
                or (lines[j] == "(" and j + 1 < len(lines) and lines[j + 1].startswith("  `"))
            ):
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
    """The async example's shape: its messages, table headers and row counts (its rows are
    random: datagen strings, ``random.randint``)."""
    shaped = []
    for item in items:
        m = re.match(r"table \[(.*?)\] ending as \[(.*)\]$", item)
        shaped.append(f"table [{m.group(1)}] {len(re.findall(r'[(]', m.group(2)))} rows" if m else item)
    return shaped


def async_rows_are_right(items: List[str]) -> List[str]:
    """What is wrong in weir's async output: every ``async_db_lookup(k)`` is
    ``db_value_for_k`` and every ``async_api_call(p)`` is ``Product p: $n``."""
    wrong = []
    for item in items:
        m = re.match(r"table \[(.*?)\] ending as \[(.*)\]$", item)
        if not m:
            continue
        for row in re.findall(r"\(([^()]*)\)", m.group(2)):
            ok = re.fullmatch(r"'(.*)', 'db_value_for_\1'", row) or re.fullmatch(r"'(.*)', 'Product \1: \$\d+'", row)
            if not ok:
                wrong.append(row)
    return wrong


def same(items: List[str]) -> List[str]:
    return items


def nothing_wrong(items: List[str]) -> List[str]:
    return []


# name, relative path, source transform, output transform, what must hold of weir's own
# output (a list of what is wrong), how compared
EXAMPLES: List[Tuple[str, str, Callable[[str], str], Callable[[List[str]], List[str]], Callable[[List[str]], List[str]], str]] = [
    ("word_count", "word_count.py", lambda s: s, same, nothing_wrong, "final rows of the print sink's changelog"),
    ("basic_operations", "basic_operations.py", lambda s: s, same, nothing_wrong,
     "printed tables cell by cell, explain() left out; both stop where PyFlink's own example fails"),
    ("multi_sink", "multi_sink.py", lambda s: s, same, nothing_wrong, "rows of both print sinks"),
    ("process_json_data", "process_json_data.py", lambda s: s, same, nothing_wrong, "rows of the print sink"),
    ("process_json_data_with_udf", "process_json_data_with_udf.py", lambda s: s, same, nothing_wrong, "rows of the print sink"),
    ("conversion_from_dataframe", "pandas/conversion_from_dataframe.py", seed_numpy, same, nothing_wrong,
     "printed DataFrame, numpy seeded in both"),
    ("async_scalar_function", "async/async_scalar_function.py", lambda s: s, async_shape, async_rows_are_right,
     "random data: headers and row counts; weir's values checked against their keys"),
]


def run(python: str, path: str, cwd: str, timeout: float = 300) -> Tuple[int, str, str]:
    """Exit code, standard output, and the last line of standard error (a failure's exception)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    p = subprocess.run([python, path], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    last = next((line.strip() for line in reversed(p.stderr.splitlines()) if re.match(r"^\w+(\.\w+)*(Error|Exception): ", line.strip())), "")
    return p.returncode, p.stdout, last


def exception_name(line: str) -> str:
    """``AttributeError: ...`` of either engine (PyFlink wraps Python errors in Java ones)."""
    m = re.search(r"(\w+Error): (.*)$", line)
    return f"{m.group(1)}: {m.group(2)}" if m else line


def compare_all(tmp: str, names: Optional[List[str]] = None) -> Dict[str, Tuple[bool, str, str]]:
    py = pyflink_python()
    src = examples_dir(py)
    results: Dict[str, Tuple[bool, str, str]] = {}
    for name, rel, transform, shape, check, how in EXAMPLES:
        if names and name not in names:
            continue
        source = transform(open(os.path.join(src, rel)).read())
        pf_path = os.path.join(tmp, f"pyflink_{name}.py")
        weir_path = os.path.join(tmp, f"weir_{name}.py")
        with open(pf_path, "w") as f:
            f.write(source)
        with open(weir_path, "w") as f:
            f.write(source.replace("pyflink", "weir"))
        rc_pf, out_pf, err_pf = run(py, pf_path, tmp)
        rc_w, out_w, err_w = run(sys.executable, weir_path, tmp)
        a, b = shape(normalise(out_pf)), shape(normalise(out_w))
        # A program that fails must fail on both, with the same Python exception.
        if rc_pf != 0 or rc_w != 0:
            a.append(f"exit {'0' if rc_pf == 0 else 'non-zero'}: {exception_name(err_pf)}")
            b.append(f"exit {'0' if rc_w == 0 else 'non-zero'}: {exception_name(err_w)}")
        wrong = check(normalise(out_w))
        ok = a == b and not wrong
        detail = ""
        if not ok:
            import difflib

            detail = "\n".join(difflib.unified_diff(a, b, "pyflink", "weir", lineterm="", n=1))
            if wrong:
                detail += f"\nwrong in weir's output: {wrong}"
        if rc_pf != 0:
            how += f"; PyFlink itself fails: {exception_name(err_pf)}"
        results[name] = (ok, how, detail)
    return results


def table_lines(results: Dict[str, Tuple[bool, str, str]]) -> List[str]:
    return [f"{name:<28} {'identical' if same else 'DIFFERENT':<10} ({how})" for name, (same, how, _) in results.items()]


def print_table(results: Dict[str, Tuple[bool, str, str]]) -> None:
    print("\nPyFlink 2.3 examples on weir (pyflink -> weir):")
    for line in table_lines(results):
        print("  " + line)


@pytest.mark.skipif(os.environ.get("WEIR_SKIP_PYFLINK") == "1", reason="WEIR_SKIP_PYFLINK=1")
@pytest.mark.skipif(shutil.which("java") is None, reason="PyFlink needs Java 17 (not on this machine)")
def test_pyflink_table_examples_give_pyflinks_output(tmp_path):
    from conftest import summary_lines

    results = compare_all(str(tmp_path))
    summary_lines("PyFlink 2.3 examples on weir (pyflink -> weir)", table_lines(results))
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
