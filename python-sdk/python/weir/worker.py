"""The Python worker: ``python -m weir.worker --socket PATH``.

Started by the engine, one per subtask of a Python UDF operator. It connects to the engine's
socket, receives the pickled functions and the configuration, opens the functions, and then
evaluates bundles of argument rows until told to close. Each result goes back with the metric
updates made while computing it. Logging and ``print`` go to the engine's log.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import io
import logging
import os
import pickle
import re
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

from weir import _native


# The engine's limit on an operator's subtasks (engine/src/options.rs MAX_PARALLELISM).
MAX_PARALLELISM = 1024


def _job_parameters(text: Optional[str]) -> Dict[str, str]:
    """``pipeline.global-job-parameters``: ``k1:v1,k2:v2``."""
    out: Dict[str, str] = {}
    if not text:
        return out
    for part in text.split(","):
        if ":" in part:
            k, v = part.split(":", 1)
            out[k.strip()] = v.strip()
    return out


class _ChannelHandler(logging.Handler):
    def __init__(self, channel: Any) -> None:
        super().__init__()
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._channel.send_log(record.levelno, record.name, self.format(record))
        except Exception:  # noqa: BLE001 - the engine is gone; nothing to tell
            pass


class _ChannelStream(io.TextIOBase):
    """``print`` in a UDF: whole lines go to the engine's log."""

    def __init__(self, channel: Any, name: str, level: int) -> None:
        self._channel = channel
        self._name = name
        self._level = level
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._pending += s
        if len(self._pending) > 65536 and "\n" not in self._pending:
            # No newline for 64 KiB: sent as a line of its own rather than kept growing.
            self.flush()
            return len(s)
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            try:
                self._channel.send_log(self._level, self._name, line)
            except Exception:  # noqa: BLE001
                pass
        return len(s)

    def flush(self) -> None:
        if self._pending:
            line, self._pending = self._pending, ""
            try:
                self._channel.send_log(self._level, self._name, line)
            except Exception:  # noqa: BLE001
                pass


class _Function:
    def __init__(self, name: str, obj: Any, args: List[int]) -> None:
        from weir.table.udf import UserDefinedFunction, _AggregateFunc, _TableFunc, _Vectorized

        # "general" (one call per row), "pandas" or "arrow" (one call per batch), "table"
        # (rows per row), "aggregate" (accumulators per group, see `Worker.aggregate`).
        self.kind = "general"
        width = 0
        if isinstance(obj, _Vectorized):
            self.kind, obj = obj.kind, obj.func
        elif isinstance(obj, _TableFunc):
            self.kind, width, obj = "table", obj.width, obj.func
        elif isinstance(obj, _AggregateFunc):
            self.kind, width, obj = obj.kind, obj.width, obj.func
        self.name = name
        self.obj = obj
        self.args = args
        self.is_class = isinstance(obj, UserDefinedFunction)
        self.call: Callable[..., Any] = obj.eval if self.is_class and "aggregate" not in self.kind else obj
        if self.kind == "general" and inspect.iscoroutinefunction(self.call):
            # ``async def`` (a function or an AsyncScalarFunction's eval): see `Worker.run_async`.
            self.kind = "async"
        if self.kind == "table":
            self.call = _table_call(self.call, width)
            self.kind = "general"
        # An aggregate's value from its accumulator: ``get_value``, or for a table aggregate
        # the list of rows ``emit_value`` yields.
        self.value: Optional[Callable[[Any], Any]] = None
        self.value_name = "get_value"
        if self.kind == "aggregate":
            self.value = obj.get_value
        elif self.kind == "pandas_aggregate" and hasattr(obj, "create_accumulator"):
            # PyFlink's class form of a pandas aggregate: create_accumulator, then one
            # accumulate(acc, *series) with the group's Series, then get_value.
            self.call = _pandas_aggregate_call(obj)
        elif self.kind == "table_aggregate":
            self.value = _table_call(obj.emit_value, width)
            self.value_name = "emit_value"
            self.kind = "aggregate"


def _table_call(f: Callable[..., Any], width: int) -> Callable[..., Any]:
    """A table function as a function of one row returning the list of rows it yielded: each
    a tuple (a ``Row``, list or tuple as it is; a single value for a one-column function)."""

    def one(*args: Any) -> list:
        out = f(*args)
        if out is None:
            return []
        return [r if isinstance(r, (tuple, list)) else (r,) for r in out]

    def many(*args: Any) -> list:
        out = f(*args)
        if out is None:
            return []
        if isinstance(out, (tuple, list)) and out and not isinstance(out[0], (tuple, list)):
            # One row returned rather than yielded (``return Row(a, b)``).
            return [out]
        return list(out)

    return one if width == 1 else many


def _pandas_aggregate_call(obj: Any) -> Callable[..., Any]:
    def call(*series: Any) -> Any:
        acc = obj.create_accumulator()
        obj.accumulate(acc, *series)
        return obj.get_value(acc)

    return call


class _BadResult(Exception):
    """A vectorized UDF returned the wrong thing (length, kind): the function is wrong, not a row."""


def _vector_inputs(f: _Function, start: int, n: int, whole: List[Any]) -> List[Any]:
    """The arguments of one call of a vectorized UDF: rows start..start+n of each column."""
    if f.kind == "arrow":
        return [a.slice(start, n) for a in whole]
    out = []
    for s in whole:
        part = s.iloc[start : start + n]
        out.append(part.reset_index(drop=True) if start else part)
    return out


def _pandas_column(a: Any) -> Any:
    """A pyarrow array as PyFlink hands it to a Pandas UDF: a Series, or a DataFrame for a ROW."""
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_struct(a.type):
        return pd.DataFrame({a.type.field(i).name: a.field(i).to_pandas() for i in range(a.type.num_fields)})
    return a.to_pandas()


def _to_arrow(f: _Function, result: Any, n: int) -> Any:
    import pyarrow as pa

    kind = "pandas UDF" if f.kind == "pandas" else "arrow UDF"
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    if f.kind == "pandas" and not isinstance(result, pa.Array):
        import pandas as pd

        if isinstance(result, pd.DataFrame):
            raise _BadResult(f"{kind} `{f.name}` returned a DataFrame; return a Series of {n} values")
        if not isinstance(result, pd.Series):
            raise _BadResult(f"{kind} `{f.name}` returned {type(result).__name__}; return a pandas.Series of {n} values")
        try:
            result = pa.Array.from_pandas(result)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise _BadResult(f"{kind} `{f.name}` returned values Arrow cannot hold: {e}") from None
    if not isinstance(result, pa.Array):
        raise _BadResult(f"{kind} `{f.name}` returned {type(result).__name__}; return a pyarrow.Array of {n} values")
    if len(result) != n:
        raise _BadResult(f"{kind} `{f.name}` returned {len(result)} values for a batch of {n} rows")
    return result


_ROW_IN_MESSAGE = re.compile(r"row (\d+):")
_MISSING = object()


class Worker:
    def __init__(self, socket_path: Optional[str] = None, channel: Any = None) -> None:
        # A process connects to the engine's socket; a thread-mode worker gets its channel.
        self.channel = channel if channel is not None else _native.WorkerChannel(socket_path)
        self.thread = channel is not None
        self.paths: List[str] = []
        self.functions: List[_Function] = []
        self.skip = False
        self.bundle_ms = 1000
        self.skipped_logged = 0
        # Most rows a vectorized UDF gets in one call (Flink's key and default).
        self.arrow_batch = 10000
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.async_capacity, self.async_timeout, self.async_delay, self.async_attempts = 10, 180.0, 0.1, 3
        # The bundle to evaluate row by row, reporting each row first (after a worker died).
        self.traced: Optional[int] = None

    def setup(self) -> Dict[str, Any]:
        hs = self.channel.handshake()
        config: Dict[str, str] = hs["config"]
        if self.thread:
            # The process's own interpreter: its path, output and logging are the program's.
            # The job's dependencies go first on sys.path while its workers run.
            self.paths = [p for p in config.get("python.internal.thread-path", "").split("\n") if p]
            _add_paths(self.paths)
        else:
            # The driver's path, where the worker's own lacks it: after the job's dependencies
            # (PYTHONPATH: python.files, python.requirements, python.pythonpath), the program's
            # own directories before the interpreter's libraries, as in the driver; its
            # installed packages last, so an interpreter of another environment keeps its own.
            own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            at = min(len(sys.path), 1 + len(own))
            early, late = [], []
            for p in config.get("python.internal.sys-path", "").split(os.pathsep):
                if p and p not in sys.path and p not in early and p not in late:
                    installed = "site-packages" in p or "dist-packages" in p
                    (late if installed else early).append(p)
            sys.path[at:at] = early
            sys.path.extend(late)
            root = logging.getLogger()
            root.handlers[:] = [_ChannelHandler(self.channel)]
            root.setLevel(logging.INFO)
            sys.stdout = _ChannelStream(self.channel, "stdout", logging.INFO)
            sys.stderr = _ChannelStream(self.channel, "stderr", logging.WARNING)
        self.skip = config.get("python.udf.on-error", "fail") == "skip"
        # The engine sends it as plain milliseconds, whatever form the user wrote.
        self.bundle_ms = int(config.get("python.fn-execution.bundle.time", "1000"))
        self.arrow_batch = max(1, int(config.get("python.fn-execution.arrow.batch.size", "10000")))
        # Async functions (the engine sends the durations as plain milliseconds).
        self.async_capacity = max(1, int(config.get("table.exec.async-scalar.max-concurrent-operations", "10")))
        self.async_timeout = int(config.get("table.exec.async-scalar.timeout", "180000")) / 1000.0
        self.async_delay = int(config.get("table.exec.async-scalar.retry-delay", "100")) / 1000.0
        fixed = config.get("table.exec.async-scalar.retry-strategy", "FIXED_DELAY").strip() == "FIXED_DELAY"
        self.async_attempts = max(1, int(config.get("table.exec.async-scalar.max-attempts", "3"))) if fixed else 1
        return hs

    def open(self, hs: Dict[str, Any]) -> bool:
        import cloudpickle

        from weir.table.udf import FunctionContext

        config = hs["config"]
        enabled = config.get("python.metric.enabled", "true").lower() != "false"
        group = self.channel.metric_group() if enabled else _native.MetricGroup.disabled()
        params = _job_parameters(config.get("pipeline.global-job-parameters"))
        for spec in hs["functions"]:
            name = spec["name"]
            where = "unpickling"
            try:
                obj = cloudpickle.loads(spec["payload"])
                where = "open()"
                f = _Function(name, obj, list(spec["args"]))
                if f.is_class:
                    ctx = FunctionContext(
                        group,
                        params,
                        task_name=hs["operator"],
                        number_of_parallel_subtasks=hs["parallelism"],
                        max_number_of_parallel_subtasks=MAX_PARALLELISM,
                        index_of_this_subtask=hs["subtask"],
                        attempt_number=hs["attempt"],
                    )
                    f.obj.open(ctx)
                self.functions.append(f)
            except BaseException as e:  # noqa: BLE001 - reported to the engine
                tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None))
                self.channel.send_error(0, name, type(e).__name__, f"{e} (in {where} of the function)", tb, "")
                return False
        self.channel.ready()
        return True

    def serve(self) -> int:
        """Handshake, open the functions, evaluate bundles until the engine closes; the exit
        status (1: a function could not be opened)."""
        hs = self.setup()
        if not self.open(hs):
            # The engine fails the job with the error sent; wait for it to hang up.
            try:
                while self.channel.next(60_000) is not None:
                    pass
            except ConnectionError:
                pass
            return 1
        self.run()
        return 0

    def read_gauges(self) -> None:
        """Sends the gauges' values every ``bundle.time``, from a thread of its own: a slow
        gauge callback holds up this thread, not the bundles."""
        while True:
            time.sleep(self.bundle_ms / 1000)
            try:
                self.channel.send_gauges()
            except ConnectionError:
                return
            except Exception:  # noqa: BLE001 - a bad callback is logged by the channel
                pass

    def run(self) -> None:
        ch = self.channel
        threading.Thread(target=self.read_gauges, name="weir-gauges", daemon=True).start()
        while True:
            try:
                msg = ch.next(self.bundle_ms)
            except ConnectionError:
                return
            if msg is None:
                # Idle: send what changed (gauges are read again) so values stay fresh.
                ch.send_metrics()
                continue
            tag = msg[0]
            if tag == "trace":
                self.traced = msg[1]
            elif tag == "input":
                if not self.bundle(msg[1], msg[2], msg[3]):
                    return
            elif tag == "close":
                for f in self.functions:
                    if f.is_class:
                        try:
                            f.obj.close()
                        except Exception:  # noqa: BLE001
                            logging.getLogger("weir.worker").exception("close() of %s raised", f.name)
                ch.send_metrics()
                return

    def bundle(self, bundle: int, cols: List[list], rows: int) -> bool:
        t0 = time.perf_counter_ns()
        results: List[list] = []
        keep: Optional[List[bool]] = None
        traced = self.traced == bundle
        for fi, f in enumerate(self.functions):
            if f.kind in ("aggregate", "pandas_aggregate"):
                run = self.aggregate if f.kind == "aggregate" else self.pandas_aggregate
                ok, out, keep = run(bundle, f, fi, cols, rows, keep, traced)
                if not ok:
                    return False
                results.append(out)
                continue
            if f.kind == "async":
                ok, out, keep = self.run_async(bundle, f, fi, cols, rows, keep)
                if not ok:
                    return False
                results.append(out)
                continue
            if f.kind != "general":
                ok, out, keep = self.vectorized(bundle, f, fi, cols, rows, keep, traced)
                if not ok:
                    return False
                results.append(out)
                continue
            args = [cols[i] for i in f.args]
            if traced:
                out, keep, failed = self.row_by_row(f, args, rows, keep, (bundle, fi))
                if failed is not None:
                    row, e, tb = failed
                    self.channel.send_error(bundle, f.name, type(e).__name__, str(e), tb, _row_text(args, row))
                    return False
                results.append(out)
                continue
            # Values are appended as they come, so when a row raises, `out` holds the rows
            # before it: the rest is evaluated one by one from that row on, and no row is
            # called twice (its metric updates count once).
            out = []
            try:
                if len(args) == 1:
                    out.extend(map(f.call, args[0]))
                elif args:
                    out.extend(map(f.call, *args))
                else:
                    out.extend(f.call() for _ in range(rows))
                raised = None
            except Exception as e:  # noqa: BLE001 - fail or skip below
                raised = e
            if raised is not None:
                out, keep, failed = self.row_by_row(f, args, rows, keep, out=out, first_error=raised)
                if failed is not None:
                    row, e, tb = failed
                    ch = self.channel
                    ch.send_error(bundle, f.name, type(e).__name__, str(e), tb, _row_text(args, row))
                    return False
            results.append(out)
        try:
            self.channel.send_result(bundle, results, rows, time.perf_counter_ns() - t0, keep)
        except ValueError as e:
            text = str(e)
            m = _ROW_IN_MESSAGE.search(text)
            row = ""
            name = next((f.name for f in self.functions if f"`{f.name}`" in text), "?")
            if m:
                f = next((f for f in self.functions if f.name == name), None)
                if f is not None:
                    row = _row_text([cols[i] for i in f.args], int(m.group(1)))
            self.channel.send_error(bundle, name, "TypeError", text, "", row)
            return False
        return True

    def run_async(
        self,
        bundle: int,
        f: _Function,
        fi: int,
        cols: Any,
        rows: int,
        keep: Optional[List[bool]],
    ) -> Tuple[bool, Any, Optional[List[bool]]]:
        """Runs an async function's calls for a bundle's rows concurrently on this worker's
        event loop: at most ``table.exec.async-scalar.max-concurrent-operations`` at once, each
        attempt within the timeout, up to ``max-attempts`` attempts ``retry-delay`` apart (as
        Flink's FIXED_DELAY strategy). Results keep the rows' order. A row whose last attempt
        raises fails the job naming it, or is skipped with ``python.udf.on-error=skip``."""
        args = [cols[i] for i in f.args]
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        timeout, attempts, delay, capacity = self.async_timeout, self.async_attempts, self.async_delay, self.async_capacity

        async def one(i: int, limit: asyncio.Semaphore) -> Any:
            async def attempt() -> Any:
                return await asyncio.wait_for(f.call(*[a[i] for a in args]), timeout)

            for n in range(attempts):
                try:
                    async with limit:
                        return await attempt()
                except asyncio.TimeoutError:
                    if n + 1 == attempts:
                        raise TimeoutError(f"no result within {timeout:g} s (table.exec.async-scalar.timeout), {attempts} attempt(s)") from None
                except Exception:  # noqa: BLE001 - retried, then reported below
                    if n + 1 == attempts:
                        raise
                await asyncio.sleep(delay)

        async def all_rows() -> List[Any]:
            todo = [i for i in range(rows) if keep is None or keep[i]]
            limit = asyncio.Semaphore(capacity)  # made on the running loop
            got = await asyncio.gather(*(one(i, limit) for i in todo), return_exceptions=True)
            out: List[Any] = [None] * rows
            for i, v in zip(todo, got):
                out[i] = v
            return out

        out = self.loop.run_until_complete(all_rows())
        for i, v in enumerate(out):
            if isinstance(v, BaseException):
                if not self.skip:
                    self.channel.send_error(bundle, f.name, type(v).__name__, str(v), _user_traceback(v), _row_text(args, i))
                    return False, None, keep
                keep = _dropped(keep, rows, i)
                out[i] = None
                self._log_skip(f, v, args, i)
        return True, out, keep

    def aggregate(
        self,
        bundle: int,
        f: _Function,
        fi: int,
        cols: Any,
        rows: int,
        keep: Optional[List[bool]],
        traced: bool,
    ) -> Tuple[bool, Any, Optional[List[bool]]]:
        """Folds a bundle's rows into their groups' accumulators (the state link): the first
        row of each group carries the accumulator the engine keeps (NULL: a new group); each
        row is accumulated (or retracted); the last kept row of each group gets back the
        pickled accumulator and ``get_value``. Nothing stays here between bundles."""
        slots, retract, stored = cols[f.args[0]], cols[f.args[1]], cols[f.args[2]]
        args = [cols[i] for i in f.args[3:]]
        obj = f.obj
        accumulate, undo = obj.accumulate, obj.retract
        accs: Dict[Any, Any] = {}
        last: Dict[Any, int] = {}
        loads = pickle.loads
        nargs = len(args)
        a0 = args[0] if nargs else None
        for i in range(rows):
            if keep is not None and not keep[i]:
                continue
            s = slots[i]
            if traced:
                self.channel.progress(bundle, fi, i)
            try:
                acc = accs.get(s, _MISSING)
                if acc is _MISSING:
                    b = stored[i]
                    acc = loads(b) if b is not None else obj.create_accumulator()
                    accs[s] = acc
                g = undo if retract[i] else accumulate
                if nargs == 1:
                    g(acc, a0[i])
                else:
                    g(acc, *[a[i] for a in args])
                last[s] = i
            except Exception as e:  # noqa: BLE001 - fail or skip below
                if not self.skip:
                    self.channel.send_error(bundle, f.name, type(e).__name__, str(e), _user_traceback(e), _row_text(args, i))
                    return False, None, keep
                keep = _dropped(keep, rows, i)
                self._log_skip(f, e, args, i)
        out: List[Any] = [None] * rows
        dumps, protocol = pickle.dumps, pickle.HIGHEST_PROTOCOL
        value = f.value
        for s, i in last.items():
            acc = accs[s]
            try:
                out[i] = (dumps(acc, protocol), value(acc))
            except Exception as e:  # noqa: BLE001 - a group's value cannot be skipped
                self.channel.send_error(bundle, f.name, type(e).__name__, f"{e} (in {f.value_name} or pickling the accumulator)", _user_traceback(e), _row_text(args, i))
                return False, None, keep
        return True, out, keep

    def pandas_aggregate(
        self,
        bundle: int,
        f: _Function,
        fi: int,
        cols: Any,
        rows: int,
        keep: Optional[List[bool]],
        traced: bool,
    ) -> Tuple[bool, Any, Optional[List[bool]]]:
        """Calls a pandas aggregate once per group with a Series per argument: the engine sends
        complete groups, their rows together. The value goes on each group's last row; with
        ``python.udf.on-error=skip`` a group whose call raises has no value (NULL) and its rows
        count as skipped."""
        slots = cols[f.args[0]]
        series = [_pandas_column(cols.arrow(i)) for i in f.args[3:]]
        out: List[Any] = [None] * rows
        start = 0
        while start < rows:
            s = slots[start]
            end = start + 1
            while end < rows and slots[end] == s:
                end += 1
            if traced:
                self.channel.progress(bundle, fi, start)
            parts = [x.iloc[start:end].reset_index(drop=True) if start else x.iloc[start:end] for x in series]
            try:
                v = f.call(*parts)
                if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str, bytes)):
                    v = v.item()  # a numpy scalar
                out[end - 1] = (None, v)
            except Exception as e:  # noqa: BLE001 - fail or skip below
                group = [_row_text([c.tolist() for c in parts], j) for j in range(min(3, end - start))]
                where = f"{', '.join(group)}{' ...' if end - start > 3 else ''} ({end - start} rows)"
                if not self.skip:
                    self.channel.send_error(bundle, f.name, type(e).__name__, str(e), _user_traceback(e), where)
                    return False, None, keep
                keep = _dropped(keep, rows, *range(start, end))
                self._log_skip(f, e, [c.tolist() for c in parts], 0)
            start = end
        return True, out, keep

    def _log_skip(self, f: _Function, e: BaseException, args: List[list], i: int) -> None:
        if self.skipped_logged < 10:
            self.skipped_logged += 1
            logging.getLogger("weir.worker").warning(
                "skipping a row (python.udf.on-error=skip): %s raised %s: %s; input row: %s%s",
                f.name,
                type(e).__name__,
                e,
                _row_text(args, i),
                "" if self.skipped_logged < 10 else " (further skips are only counted)",
            )

    def vectorized(
        self,
        bundle: int,
        f: _Function,
        fi: int,
        cols: Any,
        rows: int,
        keep: Optional[List[bool]],
        traced: bool,
    ) -> Tuple[bool, Any, Optional[List[bool]]]:
        """Evaluates a pandas or arrow UDF over a bundle in batches of ``arrow_batch`` rows.
        A batch that raises, and every batch of a traced bundle, is evaluated one row per call
        (to name or skip the row); the other batches are not called again. Returns (ok,
        result, keep): a pyarrow array, or a list of values once rows went one by one."""
        import pyarrow as pa

        whole = [cols.arrow(i) for i in f.args]
        if f.kind == "pandas":
            whole = [_pandas_column(a) for a in whole]

        def call(start: int, n: int) -> Any:
            return _to_arrow(f, f.call(*_vector_inputs(f, start, n, whole)), n)

        parts: List[Any] = []
        try:
            for start in range(0, rows, self.arrow_batch):
                n = min(self.arrow_batch, rows - start)
                if not traced:
                    try:
                        parts.append(call(start, n))
                        continue
                    except _BadResult:
                        raise
                    except Exception:  # noqa: BLE001 - find the row below, then fail or skip
                        pass
                args = [cols[i] for i in f.args]
                out, keep, failed = self.row_by_row(
                    f,
                    args,
                    rows,
                    keep,
                    (bundle, fi) if traced else None,
                    lambda i: call(i, 1)[0].as_py(),
                    out=[None] * start,
                    stop=start + n,
                )
                if failed is not None:
                    row, e, tb = failed
                    self.channel.send_error(bundle, f.name, type(e).__name__, str(e), tb, _row_text(args, row))
                    return False, None, keep
                parts.append(out[start:])
        except _BadResult as e:
            self.channel.send_error(bundle, f.name, "ValueError", str(e), "", "")
            return False, None, keep
        if all(isinstance(p, pa.Array) for p in parts):
            if not parts:
                return True, pa.nulls(0), keep
            return True, parts[0] if len(parts) == 1 else pa.concat_arrays(parts), keep
        values: list = []
        for p in parts:
            values.extend(p.to_pylist() if isinstance(p, pa.Array) else p)
        return True, values, keep

    def row_by_row(
        self,
        f: _Function,
        args: List[list],
        rows: int,
        keep: Optional[List[bool]],
        trace: Optional[Tuple[int, int]] = None,
        one_row: Optional[Callable[[int], Any]] = None,
        out: Optional[list] = None,
        first_error: Optional[BaseException] = None,
        stop: Optional[int] = None,
    ) -> Tuple[list, Optional[List[bool]], Optional[Tuple[int, BaseException, str]]]:
        """Evaluates rows ``len(out)`` to ``stop`` (default: all ``rows``) one by one;
        ``first_error`` is what the first of them already raised (it is not called again)."""
        out = [] if out is None else out
        for i in range(len(out), rows if stop is None else stop):
            if trace is not None:
                # Said before the row is evaluated: if it takes the process down, the engine
                # knows which row it was.
                self.channel.progress(trace[0], trace[1], i)
            try:
                if first_error is not None:
                    e, first_error = first_error, None
                    raise e
                out.append(one_row(i) if one_row is not None else f.call(*[a[i] for a in args]))
            except _BadResult:
                raise
            except Exception as e:  # noqa: BLE001
                if not self.skip:
                    tb = _user_traceback(e)
                    return out, keep, (i, e, tb)
                keep = _dropped(keep, rows, i)
                out.append(None)
                self._log_skip(f, e, args, i)
        return out, keep, None


def _dropped(keep: Optional[List[bool]], rows: int, *dropped: int) -> List[bool]:
    """The keep mask of a bundle (all rows kept until one is skipped) with `dropped` left out."""
    if keep is None:
        keep = [True] * rows
    for i in dropped:
        keep[i] = False
    return keep


def _user_traceback(e: BaseException) -> str:
    """The traceback from the user's function down: the worker's own frames left out."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def _row_text(args: List[list], i: int) -> str:
    try:
        return repr(tuple(a[i] for a in args))
    except Exception:  # noqa: BLE001
        return "?"


_path_users: Dict[str, int] = {}
_path_lock = threading.Lock()


def _add_paths(paths: List[str]) -> None:
    """Puts a thread-mode job's dependency paths first on sys.path (counted: the workers of a
    job share them)."""
    with _path_lock:
        for p in reversed(paths):
            _path_users[p] = _path_users.get(p, 0) + 1
            if p not in sys.path:
                sys.path.insert(0, p)


def _remove_paths(paths: List[str]) -> None:
    with _path_lock:
        for p in paths:
            n = _path_users.get(p, 0) - 1
            if n > 0:
                _path_users[p] = n
                continue
            _path_users.pop(p, None)
            while p in sys.path:
                sys.path.remove(p)


def run_thread(fd: int, who: str) -> int:
    """A thread-mode worker (``python.execution-mode=thread``): called by the engine on a
    thread of its own with its end of a socket pair; returns when the engine closes it."""
    channel = _native.WorkerChannel.from_fd(fd)
    worker = Worker(channel=channel)
    try:
        return worker.serve()
    except ConnectionError:
        return 0
    except BaseException:  # noqa: BLE001 - the thread ends; the engine sees its channel close
        traceback.print_exc()
        return 1
    finally:
        _remove_paths(worker.paths)
        channel.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weir.worker")
    parser.add_argument("--socket", required=True, help="the engine's Unix socket")
    args = parser.parse_args(argv)
    return Worker(args.socket).serve()


if __name__ == "__main__":
    sys.exit(main())
