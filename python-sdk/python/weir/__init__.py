"""weir: PyFlink-style Table API jobs on a Rust streaming engine, with Python UDF metrics
that reach Prometheus exactly.

Replace ``pyflink`` with ``weir`` in a job's imports::

    from weir.table import EnvironmentSettings, TableEnvironment, DataTypes
    from weir.table.udf import udf, ScalarFunction
"""

import os as _os
import sys as _sys

# The `weir` command logs warnings only, as the cargo-built one does (it says where /metrics
# is itself); a Python program also gets the engine's info lines. WEIR_LOG chooses.
if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "weir":
    _os.environ.setdefault("WEIR_LOG", "warn")

from weir._native import PROTOCOL_VERSION, __version__  # noqa: E402

__all__ = ["__version__", "PROTOCOL_VERSION"]
