"""The ``weir`` command that ``pip install`` puts on the PATH: ``weir sql FILE.sql`` with
``CREATE [TEMPORARY] FUNCTION name AS 'module.function' LANGUAGE PYTHON`` and Flink's SQL client
options for Python (``-pyfs``, ``-pyarch``, ``-pyreq``, ``-pyexec``). The command line itself
is the engine's (the cargo-built ``weir`` is the same, without Python functions)."""

from __future__ import annotations

import os
import sys
from typing import List, Optional, Tuple

from weir import _native


def _function(path: str, language: str, python_files: str) -> Tuple[bytes, str, bool, str]:
    """What registering ``CREATE FUNCTION ... AS 'path'`` needs: the function pickled, its
    result type, whether it is vectorized, and its kind."""
    from weir.table.table_environment import _client_path, _load_function, _pickle, _vectorized

    if language.upper() != "PYTHON":
        raise ValueError(f"weir runs PYTHON functions, not {language}")
    # python.files (-pyfs) are importable here too, as in PyFlink's client.
    for f in python_files.split(","):
        if f.strip():
            _client_path(os.path.abspath(f.strip()))
    f = _load_function(path)
    return _pickle(f), f.result_type, _vectorized(f), f._kind


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    # Modules beside the script one runs are importable, after everything else (`-pyfs` is
    # the way to ship them, as with Flink's SQL client).
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    # The workers use this interpreter and find what it finds, unless the command line or
    # the script's SET says otherwise.
    defaults = [
        ("python.executable", sys.executable),
        ("python.client.executable", sys.executable),
        ("python.internal.sys-path", os.pathsep.join(p for p in sys.path if p)),
    ]
    return _native.cli_main(args, defaults, _function)


if __name__ == "__main__":
    sys.exit(main())
