"""``TableEnvironment``: where tables and functions are registered and jobs run."""

from __future__ import annotations

import atexit
import datetime
import decimal
import importlib
import itertools
import os
import signal
import sys
import threading
import weakref
from typing import Any, Dict, Iterable, List, Optional, Union

import cloudpickle

from weir import _native
from weir.common import Configuration, Row
from weir.table.table import Table
from weir.table.table_descriptor import TableDescriptor
from weir.table.table_result import ResultKind, TableResult
from weir.table.types import DataType, RowType
from weir.table.udf import (
    UserDefinedAggregateFunctionWrapper,
    UserDefinedTableAggregateFunctionWrapper,
    UserDefinedScalarFunctionWrapper,
    UserDefinedTableFunctionWrapper,
)

_udf_ids = itertools.count(1)
_anonymous_ids = itertools.count(1)


def _arrow_type_text(t: Any, name: str) -> str:
    """The Flink type of a pyarrow type (from_pandas)."""
    import pyarrow as pa  # type: ignore[import-not-found]

    simple = [
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_int8, "TINYINT"),
        (pa.types.is_int16, "SMALLINT"),
        (pa.types.is_int32, "INT"),
        (pa.types.is_int64, "BIGINT"),
        (pa.types.is_float32, "FLOAT"),
        (pa.types.is_float64, "DOUBLE"),
        (pa.types.is_string, "STRING"),
        (pa.types.is_large_string, "STRING"),
        (pa.types.is_binary, "BYTES"),
        (pa.types.is_date32, "DATE"),
    ]
    for test, text in simple:
        if test(t):
            return text
    if pa.types.is_timestamp(t):
        p = {"s": 0, "ms": 3, "us": 6, "ns": 9}[t.unit]
        return f"TIMESTAMP_LTZ({p})" if t.tz is not None else f"TIMESTAMP({p})"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_list(t):
        return f"ARRAY<{_arrow_type_text(t.value_type, name)}>"
    raise TypeError(f"from_pandas: column {name} has type {t}, which has no Flink type here; pass a schema")


def _descriptor(d: Any, what: str) -> TableDescriptor:
    if not isinstance(d, TableDescriptor):
        raise TypeError(f"{what} takes a TableDescriptor (TableDescriptor.for_connector(...)...build()), not {type(d).__name__}")
    return d
_live_envs: "weakref.WeakSet[TableEnvironment]" = weakref.WeakSet()


class EnvironmentSettings:
    """Streaming or batch mode (``EnvironmentSettings.in_streaming_mode()``)."""

    def __init__(self, streaming: bool = True, configuration: Optional[Configuration] = None):
        self._streaming = streaming
        self._configuration = configuration or Configuration()

    @staticmethod
    def in_streaming_mode() -> "EnvironmentSettings":
        return EnvironmentSettings(True)

    @staticmethod
    def in_batch_mode() -> "EnvironmentSettings":
        return EnvironmentSettings(False)

    @staticmethod
    def new_instance() -> "EnvironmentSettings.Builder":
        return EnvironmentSettings.Builder()

    def is_streaming_mode(self) -> bool:
        return self._streaming

    def get_configuration(self) -> Configuration:
        return self._configuration

    class Builder:
        def __init__(self) -> None:
            self._streaming = True
            self._config = Configuration()

        def in_streaming_mode(self) -> "EnvironmentSettings.Builder":
            self._streaming = True
            return self

        def in_batch_mode(self) -> "EnvironmentSettings.Builder":
            self._streaming = False
            return self

        def with_configuration(self, config: Configuration) -> "EnvironmentSettings.Builder":
            self._config = Configuration(config)
            return self

        def build(self) -> "EnvironmentSettings":
            return EnvironmentSettings(self._streaming, self._config)


# The python.* keys weir reads (docs/python.md); others are accepted for PyFlink jobs that set
# them, with a warning, because a misspelt key would otherwise do nothing silently.
KNOWN_PYTHON_KEYS = {
    "python.executable",
    "python.client.executable",
    "python.fn-execution.bundle.size",
    "python.fn-execution.bundle.time",
    "python.fn-execution.arrow.batch.size",
    "python.fn-execution.max-in-flight",
    "python.metric.enabled",
    "python.udf.on-error",
    "python.worker.restart.max-attempts",
    "python.worker.heartbeat-timeout",
    "python.worker.start-timeout",
    "python.execution-mode",
    "python.files",
    "python.archives",
    "python.requirements",
    "python.pythonpath",
    "python.internal.sys-path",
}


class TableConfig:
    """``t_env.get_config()``: ``set(key, value)``, ``get(key, default)``."""

    def __init__(self, env: "TableEnvironment") -> None:
        self._env = env

    def set(self, key: str, value: Any) -> "TableConfig":
        if key.startswith("python.") and key not in KNOWN_PYTHON_KEYS:
            import difflib
            import warnings

            close = difflib.get_close_matches(key, sorted(KNOWN_PYTHON_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            warnings.warn(f"weir does not read configuration key {key!r}{hint}", stacklevel=2)
        if isinstance(value, dict):
            value = ",".join(f"{k}:{v}" for k, v in value.items())
        elif isinstance(value, bool):
            value = "true" if value else "false"
        self._env._native.set_config(key, str(value))
        return self

    def get(self, key: str, default_value: Optional[str] = None) -> Optional[str]:
        v = self._env._native.get_config(key)
        return default_value if v is None else v

    def get_configuration(self) -> Configuration:
        """The environment's configuration itself, as in PyFlink: ``set_string`` on it changes
        what jobs of this environment read."""
        return _LiveConfiguration(self)

    def set_local_timezone(self, timezone_id: str) -> None:
        """weir runs in UTC (``TIMESTAMP_LTZ`` values print with UTC wall-clock time): ``UTC``
        is accepted, any other zone is refused rather than silently ignored."""
        if timezone_id.upper() not in ("UTC", "Z", "GMT", "ETC/UTC", "+00:00"):
            raise ValueError(f"weir runs in UTC; table.local-time-zone = {timezone_id!r} is not supported")
        self.set("table.local-time-zone", "UTC")

    def get_local_timezone(self) -> str:
        return "UTC"

    def add_configuration(self, configuration: Configuration) -> None:
        for k, v in configuration:
            self.set(k, v)

    def set_python_executable(self, python_exec: str) -> None:
        self.set("python.executable", python_exec)

    def get_python_executable(self) -> Optional[str]:
        return self.get("python.executable")


class _LiveConfiguration(Configuration):
    """``get_config().get_configuration()``: reads and writes go to the environment."""

    def __init__(self, config: "TableConfig") -> None:
        super().__init__()
        self._table_config = config

    @property  # type: ignore[override]
    def _data(self) -> Dict[str, str]:  # type: ignore[override]
        return dict(self._table_config._env._native.config())

    @_data.setter
    def _data(self, value: Dict[str, str]) -> None:
        pass  # the environment holds the values

    def set_string(self, key: str, value: str) -> "Configuration":
        self._table_config.set(key, value)
        return self

    def remove_config(self, key: str) -> bool:
        raise NotImplementedError("weir cannot remove a configuration key; set it to its default instead")


class StatementSet:
    """Several INSERTs run together (``t_env.create_statement_set()``)."""

    def __init__(self, env: "TableEnvironment") -> None:
        self._env = env
        self._inserts: List[Any] = []

    def add_insert_sql(self, stmt: str) -> "StatementSet":
        self._inserts.append(stmt)
        return self

    def add_insert(self, target_path_or_descriptor: Any, table: Table, overwrite: bool = False) -> "StatementSet":
        self._inserts.append((self._env._sink_path(target_path_or_descriptor), table))
        return self

    def execute(self) -> TableResult:
        jobs = []
        for i in self._inserts:
            if isinstance(i, str):
                jobs.append(self._env.execute_sql(i)._job)
            else:
                jobs.append(self._env._execute_insert(i[1], i[0]))
        return TableResult(job=_AllJobs(jobs), kind=ResultKind.SUCCESS)


class _AllJobs:
    def __init__(self, jobs: List[Any]) -> None:
        self._jobs = jobs
        self.job_name = ",".join(j.job_name for j in jobs)

    def wait(self, timeout: Optional[float] = None) -> None:
        for j in self._jobs:
            j.wait(timeout)

    def cancel(self) -> None:
        for j in self._jobs:
            j.cancel()

    def is_done(self) -> bool:
        return all(j.is_done() for j in self._jobs)


def _infer_type(v: Any) -> str:
    if isinstance(v, bool):
        return "BOOLEAN"
    if isinstance(v, int):
        return "BIGINT"
    if isinstance(v, float):
        return "DOUBLE"
    if isinstance(v, str):
        return "STRING"
    if isinstance(v, bytes):
        return "BYTES"
    if isinstance(v, decimal.Decimal):
        return "DECIMAL(38, 18)"
    if isinstance(v, datetime.datetime):
        return "TIMESTAMP(6)"
    if isinstance(v, datetime.date):
        return "DATE"
    if isinstance(v, datetime.time):
        return "TIME(0)"
    if isinstance(v, (list, tuple)) and v:
        return f"ARRAY<{_infer_type(v[0])}>"
    if isinstance(v, dict) and v:
        k, x = next(iter(v.items()))
        return f"MAP<{_infer_type(k)}, {_infer_type(x)}>"
    raise TypeError(f"cannot infer a column type from {v!r}; pass a schema")


class TableEnvironment:
    """Creates tables, registers functions and runs jobs (``TableEnvironment.create(settings)``)."""

    def __init__(self, settings: EnvironmentSettings) -> None:
        self._native = _native.Env(settings.is_streaming_mode())
        self._config = TableConfig(self)
        self._inline_keys: Dict[int, str] = {}
        # Keeps inline functions alive, so that their id() is never reused by another.
        self._inline_funcs: List[Any] = []
        for k, v in settings.get_configuration():
            self._native.set_config(k, v)
        _live_envs.add(self)
        _stop_on_sigterm()

    @staticmethod
    def create(environment_settings: Union[EnvironmentSettings, Configuration, None] = None) -> "TableEnvironment":
        if environment_settings is None:
            environment_settings = EnvironmentSettings.in_streaming_mode()
        if isinstance(environment_settings, Configuration):
            mode = environment_settings.get_string("execution.runtime-mode", "streaming")
            environment_settings = EnvironmentSettings(mode != "batch", environment_settings)
        return TableEnvironment(environment_settings)

    # -- configuration --
    def get_config(self) -> TableConfig:
        return self._config

    def add_python_file(self, file_path: str) -> None:
        """Makes a module (``.py``), a directory of modules, or a ``.zip``/``.whl``/``.egg``
        importable in the workers and here (``python.files``). The workers get a copy in
        their job's directory."""
        self._append_config("python.files", os.path.abspath(file_path))
        _client_path(os.path.abspath(file_path))

    def add_python_archive(self, archive_path: str, target_dir: Optional[str] = None) -> None:
        """Extracts a zip or tar archive into the workers' working directory, under
        ``target_dir`` (default: the archive's file name), as ``python.archives``: data
        files the functions open by relative path, or a whole environment used with
        ``get_config().set_python_executable("venv.zip/venv/bin/python")``."""
        entry = os.path.abspath(archive_path)
        if target_dir:
            entry += "#" + target_dir
        self._append_config("python.archives", entry)

    def set_python_requirements(self, requirements_file_path: str, requirements_cache_dir: Optional[str] = None) -> None:
        """Installs a requirements file for the workers, once per job, with pip into the job's
        own directory (``python.requirements``); offline, from the packages in
        ``requirements_cache_dir``, when given. A failed install fails the job before any row
        is processed, with pip's message."""
        value = os.path.abspath(requirements_file_path)
        if requirements_cache_dir:
            value += "#" + os.path.abspath(requirements_cache_dir)
        self._native.set_config("python.requirements", value)

    def _append_config(self, key: str, entry: str) -> None:
        old = self._native.get_config(key)
        self._native.set_config(key, f"{old},{entry}" if old else entry)

    # -- catalog --
    def execute_sql(self, stmt: str) -> TableResult:
        """Runs one statement: DDL, SET, SHOW/DESCRIBE/EXPLAIN, a query, or INSERT INTO."""
        # An INSERT or query here may run Python functions: their workers use this interpreter.
        self._prepare_python()
        out = self._native.execute_sql(stmt)
        kind = out[0]
        if kind == "ok":
            return TableResult(rows=[("OK",)], kind=ResultKind.SUCCESS)
        if kind == "text":
            return TableResult(rows=[(line,) for line in out[1].splitlines()])
        if kind == "query":
            return Table(out[1], self).execute()
        if kind == "insert":
            return TableResult(job=out[1], kind=ResultKind.SUCCESS)
        if kind == "function":
            _, name, path, language = out
            if language.upper() != "PYTHON":
                raise ValueError(f"function {name}: weir runs PYTHON functions, not {language}")
            for f in (self._native.get_config("python.files") or "").split(","):
                if f.strip():
                    _client_path(os.path.abspath(f.strip()))
            self.create_temporary_function(name, _load_function(path))
            return TableResult(rows=[("OK",)], kind=ResultKind.SUCCESS)
        raise RuntimeError(f"unexpected statement outcome {kind}")

    def sql_query(self, query: str) -> Table:
        return Table(self._native.sql_query(query), self)

    def explain_sql(self, stmt: str, *extra_details: Any) -> str:
        return self.sql_query(stmt).explain(*extra_details)

    def from_path(self, path: str) -> Table:
        return Table(self._native.from_path(path), self)

    def create_temporary_view(self, view_path: str, table: Table, *fields: Any) -> None:
        if fields:
            table = table.alias(*[f if isinstance(f, str) else f._output_name() for f in fields])
        self._native.create_temporary_view(view_path, table._native)

    def drop_temporary_view(self, view_path: str) -> bool:
        return self._native.drop_temporary_view(view_path)

    # -- tables from descriptors --
    def create_temporary_table(self, path: str, descriptor: TableDescriptor) -> None:
        """Registers the table ``descriptor`` describes under ``path`` (as ``CREATE TEMPORARY
        TABLE``); a table already there is an error."""
        self.execute_sql(_descriptor(descriptor, "create_temporary_table")._ddl(path, temporary=True))

    def create_table(self, path: str, descriptor: TableDescriptor, ignore_if_exists: bool = False) -> bool:
        """As ``create_temporary_table`` (weir's catalog lives as long as the environment);
        with ``ignore_if_exists`` an existing table is kept. Whether it was created."""
        if ignore_if_exists and path in self.list_tables():
            return False
        self.execute_sql(_descriptor(descriptor, "create_table")._ddl(path, temporary=False))
        return True

    def from_descriptor(self, descriptor: TableDescriptor) -> Table:
        """The table ``descriptor`` describes, registered under a generated name."""
        return self.from_path(self._anonymous_table(descriptor))

    def _anonymous_table(self, descriptor: TableDescriptor) -> str:
        d = _descriptor(descriptor, "from_descriptor")
        name = f"*anonymous_{d.get_options()['connector']}${next(_anonymous_ids)}*"
        self.execute_sql(d._ddl(name, temporary=True))
        return name

    def drop_temporary_table(self, table_path: str) -> bool:
        """Drops a temporary table; whether it existed."""
        return self._native.drop_temporary_view(table_path)

    def drop_table(self, table_path: str, ignore_if_not_exists: bool = True) -> bool:
        dropped = self._native.drop_temporary_view(table_path)
        if not dropped and not ignore_if_not_exists:
            raise ValueError(f"no table `{table_path}`")
        return dropped

    def list_temporary_tables(self) -> List[str]:
        return self.list_tables()

    def list_tables(self) -> List[str]:
        return self._native.list_tables()

    list_temporary_views = list_tables
    list_views = list_tables

    def from_pandas(self, pdf: Any, schema: Any = None, splits_num: int = 1) -> Table:
        """A table of a ``pandas.DataFrame``'s rows (bounded). ``schema``: a ``DataTypes.ROW``, a
        list of names (types from the frame) or a list of types (names from the frame's
        columns); by default names and types both come from the frame, through pyarrow as in
        PyFlink. ``splits_num`` is accepted for PyFlink's signature."""
        try:
            import pandas as pd  # type: ignore[import-not-found]
            import pyarrow as pa  # type: ignore[import-not-found]
        except ImportError as e:
            raise ImportError("from_pandas needs pandas and pyarrow: pip install 'weir-stream[pandas]'") from e
        if not isinstance(pdf, pd.DataFrame):
            raise TypeError(f"from_pandas takes a pandas.DataFrame, not {type(pdf).__name__}")
        table = pa.Table.from_pandas(pdf, preserve_index=False)
        arrow_names = [str(n) for n in table.schema.names]
        arrow_types = [_arrow_type_text(f.type, f.name) for f in table.schema]
        if schema is None:
            names, types = arrow_names, arrow_types
        elif isinstance(schema, RowType):
            names, types = schema.field_names(), [str(t) for t in schema.field_types()]
        elif isinstance(schema, (list, tuple)) and schema and all(isinstance(x, str) for x in schema):
            names, types = list(schema), arrow_types
        elif isinstance(schema, (list, tuple)) and schema and all(isinstance(x, DataType) for x in schema):
            names, types = arrow_names, [str(t) for t in schema]
        else:
            raise TypeError(f"from_pandas: schema is a DataTypes.ROW, a list of names or a list of DataTypes, not {schema!r}")
        if len(names) != len(arrow_names) or len(types) != len(arrow_names):
            raise ValueError(f"from_pandas: the schema has {len(names)} fields, the DataFrame {len(arrow_names)} columns")
        rows = [tuple(r.values()) for r in table.to_pylist()]
        return Table(self._native.from_rows(rows, names, types), self)

    def from_elements(self, elements: Iterable[Any], schema: Any = None, verify_schema: bool = True) -> Table:
        """A table of the given rows; ``schema`` is a list of names, a ``DataTypes.ROW``, or
        None (names ``_1, _2, ...`` and types from the first row)."""
        rows = [tuple(e) if isinstance(e, (tuple, list, Row)) else (e,) for e in elements]
        if isinstance(schema, RowType):
            names, types = schema.field_names(), [str(t) for t in schema.field_types()]
        else:
            width = len(rows[0]) if rows else 0
            names = list(schema) if schema is not None else [f"_{i + 1}" for i in range(width)]
            if not rows:
                raise ValueError("from_elements of no rows needs a DataTypes.ROW schema")
            types = []
            for c in range(width):
                sample = next((r[c] for r in rows if r[c] is not None), None)
                if sample is None:
                    raise TypeError(f"column {names[c]} is all NULL; pass a DataTypes.ROW schema")
                types.append(_infer_type(sample))
        for i, r in enumerate(rows):
            if len(r) != len(names):
                raise ValueError(f"from_elements: row {i} has {len(r)} fields, the schema {len(names)}")
        return Table(self._native.from_rows(rows, names, types), self)

    # -- functions --
    def create_temporary_function(self, path: str, function: Any) -> None:
        """Registers a UDF under ``path`` for SQL and ``call(path, ...)``."""
        f = _as_udf(function, path)
        self._native.register_python_function(path, _pickle(f), f.result_type, None, _vectorized(f), f._kind)

    create_temporary_system_function = create_temporary_function
    register_function = create_temporary_function

    def _register_inline_udf(self, f: Any) -> str:
        # An inline call refers to its function object: it is registered under a key no
        # built-in function or user registration can have, and keeps its own name for
        # errors, operators and metrics.
        key = self._inline_keys.get(id(f))
        if key is None:
            key = f"__weir_udf_{next(_udf_ids)}"
            self._native.register_python_function(key, _pickle(f), f.result_type, f.name, _vectorized(f), f._kind)
            self._inline_keys[id(f)] = key
            self._inline_funcs.append(f)
        return key

    # -- running --
    def create_statement_set(self) -> StatementSet:
        return StatementSet(self)

    def _prepare_python(self) -> None:
        if self._native.get_config("python.executable") is None:
            self._native.set_config("python.executable", sys.executable)
        if self._native.get_config("python.client.executable") is None:
            self._native.set_config("python.client.executable", sys.executable)
        path = [p for p in sys.path if p]
        self._native.set_config("python.internal.sys-path", os.pathsep.join(path))

    def _execute_collect(self, table: Table) -> Any:
        self._prepare_python()
        return self._native.execute_collect(table._native)

    def _sink_path(self, target: Any) -> str:
        """A sink's path: as given, or a descriptor's table registered under a generated name."""
        if isinstance(target, TableDescriptor):
            return self._anonymous_table(target)
        if not isinstance(target, str):
            raise TypeError(f"an insert goes into a table path or a TableDescriptor, not {type(target).__name__}")
        return target

    def _execute_insert(self, table: Table, sink: str) -> Any:
        self._prepare_python()
        return self._native.execute_insert(table._native, sink)

    # -- weir's own --
    def metrics_address(self) -> Optional[str]:
        """``host:port`` of the process's Prometheus endpoint, once started (by the first job
        of any environment, or ``start_metrics()``); None when it is not served."""
        return self._native.metrics_address()

    def start_metrics(self) -> Optional[str]:
        """Starts the process's metrics reporters now (if no environment has); returns the
        Prometheus endpoint's address."""
        return self._native.start_reporters()

    def metrics_text(self) -> str:
        """What a scrape of ``/metrics`` would return now (every environment's jobs)."""
        return self._native.metrics_text()

    def close(self) -> None:
        """Ends this environment: the series of its finished jobs leave ``/metrics``. When it
        is the last open environment of the process, the reporters stop after a last OTLP
        export / Pushgateway push (they start again with the next job)."""
        self._native.close()


class StreamTableEnvironment(TableEnvironment):
    """PyFlink's ``StreamTableEnvironment`` for jobs that use only the Table API: a streaming
    ``TableEnvironment``. weir has no DataStream API, so a ``StreamExecutionEnvironment`` or
    the DataStream conversions are refused with an error saying so."""

    @staticmethod
    def create(  # type: ignore[override]
        stream_execution_environment: Any = None,
        environment_settings: Optional[EnvironmentSettings] = None,
    ) -> "TableEnvironment":
        if stream_execution_environment is not None:
            raise NotImplementedError(
                "weir has no DataStream API: create the environment with "
                "StreamTableEnvironment.create(environment_settings=EnvironmentSettings.in_streaming_mode()) "
                "or TableEnvironment.create(...)"
            )
        settings = environment_settings or EnvironmentSettings.in_streaming_mode()
        if not settings.is_streaming_mode():
            raise ValueError("a StreamTableEnvironment runs in streaming mode; use TableEnvironment for batch")
        return StreamTableEnvironment(settings)

    def from_data_stream(self, *args: Any, **kwargs: Any) -> Table:
        raise NotImplementedError("weir has no DataStream API (from_data_stream); read a table with from_path, from_elements or SQL")

    def to_data_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("weir has no DataStream API (to_data_stream); collect the table with execute().collect()")

    to_changelog_stream = to_data_stream
    to_append_stream = to_data_stream
    to_retract_stream = to_data_stream
    from_changelog_stream = from_data_stream


_WRAPPERS = (
    UserDefinedScalarFunctionWrapper,
    UserDefinedTableFunctionWrapper,
    UserDefinedAggregateFunctionWrapper,
    UserDefinedTableAggregateFunctionWrapper,
)


def _as_udf(function: Any, name: str) -> Any:
    if isinstance(function, _WRAPPERS):
        return function
    raise TypeError(
        f"function {name}: register a udf(...), udtf(...), udaf(...) or udtaf(...) object (with its result "
        f"type), not a {type(function).__name__}"
    )


def _vectorized(f: Any) -> bool:
    """A scalar UDF called once per batch (pandas or arrow)."""
    return f._kind == "scalar" and f.func_type != "general"


def _pickle(f: Any) -> bytes:
    try:
        return cloudpickle.dumps(f._payload())
    except Exception as e:  # noqa: BLE001 - any pickling failure is the user's to see
        raise TypeError(
            f"Python function `{f.name}` cannot be sent to the workers: cloudpickle failed "
            f"with {type(e).__name__}: {e}. Create what it holds (connections, locks, files) "
            f"in open() instead."
        ) from e


def _client_path(entry: str) -> None:
    """A ``python.files`` entry importable here too (as in PyFlink), for ``CREATE FUNCTION ...
    AS 'module.f'`` and for functions pickled by reference to their module."""
    p = entry if os.path.isdir(entry) or entry.lower().endswith((".zip", ".whl", ".egg")) else os.path.dirname(entry)
    if p not in sys.path:
        sys.path.append(p)


def _load_function(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    if not module:
        raise ValueError(f"function path {path!r} must be 'module.name'")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load Python function {path!r}: {e}") from e
    return _as_udf(obj, path)


def _on_sigterm(signum: int, frame: Any) -> None:
    print("weir: stopping (SIGTERM)", file=sys.stderr, flush=True)
    # Unwinds like Ctrl-C: the running job is cancelled where it is waited for, and the exit
    # runs _close_all (the last export and push, workers and socket directories gone).
    raise SystemExit(128 + signal.SIGTERM)


def _stop_on_sigterm() -> None:
    """SIGTERM ends a weir program as Ctrl-C does, unless the program handles it itself."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main interpreter
        pass


@atexit.register
def _close_all() -> None:
    for env in list(_live_envs):
        try:
            env.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
    # Environments collected earlier did not close: the last OTLP export / Pushgateway push
    # of the process happens here in any case.
    try:
        _native.shutdown()
    except Exception:  # noqa: BLE001 - exiting anyway
        pass


__all__ = ["TableEnvironment", "EnvironmentSettings", "TableConfig", "StatementSet"]
