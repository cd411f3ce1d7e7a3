"""weir: PyFlink-style Table API jobs on a Rust streaming engine, with Python UDF metrics
that reach Prometheus exactly.

Replace ``pyflink`` with ``weir`` in a job's imports::

    from weir.table import EnvironmentSettings, TableEnvironment, DataTypes
    from weir.table.udf import udf, ScalarFunction
"""

from weir._native import PROTOCOL_VERSION, __version__

__all__ = ["__version__", "PROTOCOL_VERSION"]
