"""Python user-defined functions, as in ``pyflink.table.udf``.

A scalar UDF is a function, lambda or callable decorated with ``@udf(result_type=...)``, or a
``ScalarFunction`` subclass with ``open(ctx)``, ``eval(*args)`` and ``close()``. It travels to
the worker processes with cloudpickle; ``open`` runs there, once per worker.

``func_type`` chooses how it is called: ``"general"`` once per row with Python values;
``"pandas"`` (vectorized, as PyFlink's Pandas UDFs) once per batch of at most
``python.fn-execution.arrow.batch.size`` rows with a ``pandas.Series`` per argument (a
``pandas.DataFrame`` for a ROW argument), returning a Series of the same length; ``"arrow"``
(weir's own) once per batch with a ``pyarrow.Array`` per argument, taken straight from the
engine's Arrow data, returning a ``pyarrow.Array``.

A table function (``@udtf(result_types=[...])`` or a ``TableFunction``) yields any number of
rows per input row: tuples, ``Row``s, or single values for one column. An aggregate function
(``udaf(MyAggregateFunction())``, an ``AggregateFunction`` with ``create_accumulator``,
``accumulate``, ``retract`` and ``get_value``) folds a group's rows into an accumulator that
the engine keeps: the worker gets it with the rows of a bundle and gives it back, pickled, with
the result, so a worker that dies loses nothing.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Dict, List, Optional, Union

from weir.table.expression import Expression, _UdfCall, _wrap
from weir.table.types import DataType, RowType, type_text


class FunctionContext:
    """What a UDF's ``open`` receives: the metric group, job parameters and where it runs
    (PyFlink's constructor and getters)."""

    def __init__(
        self,
        base_metric_group: Any,
        job_parameters: Optional[Dict[str, str]] = None,
        task_name: Optional[str] = None,
        task_name_with_subtasks: Optional[str] = None,
        number_of_parallel_subtasks: Optional[int] = None,
        max_number_of_parallel_subtasks: Optional[int] = None,
        index_of_this_subtask: Optional[int] = None,
        attempt_number: Optional[int] = None,
    ) -> None:
        self._metric_group = base_metric_group
        self._job_parameters = dict(job_parameters or {})
        self._task_name = task_name
        self._task_name_with_subtasks = task_name_with_subtasks
        self._parallelism = number_of_parallel_subtasks
        self._max_parallelism = max_number_of_parallel_subtasks
        self._subtask = index_of_this_subtask
        self._attempt = attempt_number

    def get_metric_group(self) -> Any:
        """The UDF's metric group. In a worker it always exists: with
        ``python.metric.enabled=false`` its metrics record nothing (PyFlink raises instead). A
        context made without a group raises, as PyFlink's does."""
        if self._metric_group is None:
            raise RuntimeError(
                "Metric has not been enabled. You can enable metric with the 'python.metric.enabled' configuration."
            )
        return self._metric_group

    def get_job_parameter(self, key: str, default_value: Optional[str] = None) -> Optional[str]:
        """A value of ``pipeline.global-job-parameters``."""
        return self._job_parameters.get(key, default_value)

    def get_task_name(self) -> Optional[str]:
        return self._task_name

    def get_task_name_with_subtasks(self) -> Optional[str]:
        """``"name (3/6)"``: the subtask's index + 1 of the parallelism, as Flink names it."""
        if self._task_name_with_subtasks is not None:
            return self._task_name_with_subtasks
        if self._task_name is None or self._subtask is None or self._parallelism is None:
            return self._task_name
        return f"{self._task_name} ({self._subtask + 1}/{self._parallelism})"

    def get_number_of_parallel_subtasks(self) -> Optional[int]:
        return self._parallelism

    def get_max_number_of_parallel_subtasks(self) -> Optional[int]:
        """The most subtasks the operator may have (weir's limit; it does not rescale)."""
        return self._max_parallelism

    def get_index_of_this_subtask(self) -> Optional[int]:
        return self._subtask

    def get_attempt_number(self) -> Optional[int]:
        return self._attempt


class UserDefinedFunction:
    """Base of user-defined functions: ``open``/``close`` hooks."""

    def open(self, function_context: FunctionContext) -> None:
        pass

    def close(self) -> None:
        pass

    def is_deterministic(self) -> bool:
        return True


class ScalarFunction(UserDefinedFunction):
    """A scalar function: one value per row from ``eval(*args)``."""

    def eval(self, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError("a ScalarFunction implements eval")


class AsyncScalarFunction(UserDefinedFunction):
    """A scalar function whose ``eval`` is a coroutine (``async def eval``), for I/O-bound work:
    the worker runs a bundle's calls concurrently on an asyncio loop, at most
    ``table.exec.async-scalar.max-concurrent-operations`` at once, each within
    ``table.exec.async-scalar.timeout``, retried as ``table.exec.async-scalar.max-attempts``
    says; results keep the rows' order."""

    async def eval(self, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError("an AsyncScalarFunction implements async def eval")


class TableFunction(UserDefinedFunction):
    """A table function: ``eval(*args)`` yields (or returns an iterable of) rows."""

    def eval(self, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError("a TableFunction implements eval")


class ImperativeAggregateFunction(UserDefinedFunction):
    """What aggregate and table aggregate functions share: an accumulator per group."""

    def create_accumulator(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError("an aggregate function implements create_accumulator")

    def accumulate(self, accumulator: Any, *args: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError("an aggregate function implements accumulate")

    def retract(self, accumulator: Any, *args: Any) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} does not implement retract(), which its input's updates need"
        )

    def merge(self, accumulator: Any, accumulators: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement merge()")

    def get_accumulator_type(self) -> Any:
        return None

    def get_result_type(self) -> Any:
        return None


class AggregateFunction(ImperativeAggregateFunction):
    """An aggregate function: ``get_value(accumulator)`` is the group's result."""

    def get_value(self, accumulator: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError("an AggregateFunction implements get_value")


class TableAggregateFunction(ImperativeAggregateFunction):
    """A table aggregate function: ``emit_value(accumulator)`` yields the group's rows
    (tuples, ``Row``s, or single values for a one-column result); ``flat_aggregate`` uses it."""

    def emit_value(self, accumulator: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError("a TableAggregateFunction implements emit_value")


FUNC_TYPES = ("general", "pandas", "arrow")


class _Vectorized:
    """What is sent to the workers for a vectorized UDF: how to call it, and the function."""

    def __init__(self, kind: str, func: Any) -> None:
        self.kind = kind
        self.func = func


def _require(func_type: str) -> None:
    needed = ["pyarrow"] if func_type == "arrow" else ["pandas", "pyarrow"]
    import importlib

    for module in needed:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(
                f"func_type={func_type!r} needs {' and '.join(needed)} (missing: {module}): "
                f"pip install 'weir-stream[pandas]'"
            ) from e


class _TableFunc:
    """What is sent to the workers for a table function: the function and its width."""

    def __init__(self, func: Any, width: int) -> None:
        self.func = func
        self.width = width


class _AggregateFunc:
    """What is sent to the workers for an aggregate function (``kind``: ``aggregate``,
    ``pandas_aggregate`` for a function of a group's Series, or ``table_aggregate``)."""

    def __init__(self, kind: str, func: Any, width: int = 0) -> None:
        self.kind = kind
        self.func = func
        # For ``table_aggregate``: how many columns each emitted row has.
        self.width = width


def _function_name(func: Any, name: Optional[str], base: type) -> str:
    if name is None:
        if isinstance(func, base):
            name = type(func).__name__
        else:
            name = getattr(func, "__name__", None) or type(func).__name__
    return "lambda" if name == "<lambda>" else name


class _Wrapper:
    """What every ``udf``/``udtf``/``udaf``/``udtaf`` object shares: called on expressions it
    makes a call expression; ``name``, ``result_type`` (as the engine declares it) and
    ``func_type``."""

    _name: str
    _result_type: str
    _func_type = "general"

    def __call__(self, *args: Any) -> Expression:
        return _UdfCall(self, [_wrap(a) for a in args])

    def alias(self, name: str, *extra: str) -> Any:
        """The function, not yet called, with names for its results: in ``map``,
        ``flat_map``, ``join_lateral``, ``aggregate`` and ``flat_aggregate`` it gets the whole
        row (``split.alias('word')``)."""
        from weir.table.expression import _Alias

        return _Alias(self, name, extra)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self._name

    @property
    def result_type(self) -> str:
        return self._result_type

    @property
    def func_type(self) -> str:
        return self._func_type


def _row_fields(result: Any) -> "tuple[List[str], List[str]]":
    """Names and type texts of the rows a function gives: a ``DataTypes.ROW``'s fields, or
    ``f0, f1, ...`` for a list of types or one type."""
    if isinstance(result, RowType):
        return list(result.field_names()), [type_text(t) for t in result.field_types()]
    types = list(result) if isinstance(result, (list, tuple)) else [result]
    return [f"f{i}" for i in range(len(types))], [type_text(t) for t in types]


def _rows_type(names: List[str], types: List[str]) -> str:
    """The engine's type for functions giving rows: a list of rows per call."""
    fields = ", ".join(f"`{n}` {t}" for n, t in zip(names, types))
    return f"ARRAY<ROW<{fields}>>"


class UserDefinedScalarFunctionWrapper(_Wrapper):
    """What ``udf(...)`` returns: call it on expressions, register it by name."""

    def __init__(
        self,
        func: Any,
        input_types: Optional[List[Union[DataType, str]]],
        result_type: Union[DataType, str],
        deterministic: Optional[bool] = None,
        name: Optional[str] = None,
        func_type: str = "general",
    ) -> None:
        if func_type not in FUNC_TYPES:
            raise ValueError(f"func_type must be one of {', '.join(map(repr, FUNC_TYPES))}, not {func_type!r}")
        if func_type != "general":
            _require(func_type)
        self._func_type = func_type
        if isinstance(func, type) and issubclass(func, UserDefinedFunction):
            func = func()
        if not callable(func) and not isinstance(func, (ScalarFunction, AsyncScalarFunction)):
            raise TypeError(f"udf() takes a function, a ScalarFunction or an AsyncScalarFunction, not {type(func).__name__}")
        if func_type != "general" and (
            isinstance(func, AsyncScalarFunction) or inspect.iscoroutinefunction(func)
        ):
            raise ValueError("an async function is a general UDF: func_type must be 'general'")
        if result_type is None:
            raise TypeError("udf() needs result_type, e.g. DataTypes.BIGINT() or 'BIGINT'")
        self._func = func
        self._input_types = input_types
        self._result_type = type_text(result_type)
        self._deterministic = deterministic if deterministic is not None else True
        if name is None:
            if isinstance(func, (ScalarFunction, AsyncScalarFunction)):
                name = type(func).__name__
            else:
                name = getattr(func, "__name__", None) or type(func).__name__
        if name == "<lambda>":
            name = "lambda"
        self._name = name
        functools.update_wrapper(
            self, func if not isinstance(func, (ScalarFunction, AsyncScalarFunction)) else type(func), updated=()
        )

    _kind = "scalar"

    def _payload(self) -> Any:
        """What the workers unpickle."""
        return self._func if self._func_type == "general" else _Vectorized(self._func_type, self._func)

    def __repr__(self) -> str:
        return f"<udf {self._name} -> {self._result_type}>"


class UserDefinedTableFunctionWrapper(_Wrapper):
    """What ``udtf(...)`` returns: call it on expressions inside ``join_lateral`` /
    ``flat_map``, or register it by name for ``LATERAL TABLE(...)``."""

    _kind = "table"
    _func_type = "general"

    def __init__(
        self,
        func: Any,
        input_types: Optional[List[Union[DataType, str]]],
        result_types: Any,
        deterministic: Optional[bool] = None,
        name: Optional[str] = None,
    ) -> None:
        if isinstance(func, type) and issubclass(func, UserDefinedFunction):
            func = func()
        if not callable(func) and not isinstance(func, TableFunction):
            raise TypeError(f"udtf() takes a function or a TableFunction, not {type(func).__name__}")
        if result_types is None:
            raise TypeError("udtf() needs result_types, e.g. [DataTypes.STRING(), DataTypes.INT()]")
        names, types = _row_fields(result_types)
        if not types:
            raise ValueError("udtf() needs at least one result type")
        self._func = func
        self._input_types = input_types
        self._names = names
        self._types = types
        self._deterministic = deterministic if deterministic is not None else True
        self._name = _function_name(func, name, TableFunction)
        functools.update_wrapper(self, func if not isinstance(func, TableFunction) else type(func), updated=())

    @property
    def result_type(self) -> str:
        """As the engine declares it: the rows yielded for each input row."""
        return _rows_type(self._names, self._types)

    def _payload(self) -> Any:
        return _TableFunc(self._func, len(self._types))

    def __repr__(self) -> str:
        return f"<udtf {self._name} -> ({', '.join(self._types)})>"


class UserDefinedAggregateFunctionWrapper(_Wrapper):
    """What ``udaf(...)`` returns: call it on expressions in a grouped ``select`` or
    ``aggregate``, or register it by name for SQL."""

    _kind = "aggregate"

    def __init__(
        self,
        func: Any,
        input_types: Optional[List[Union[DataType, str]]],
        result_type: Any,
        accumulator_type: Any,
        deterministic: Optional[bool] = None,
        name: Optional[str] = None,
        func_type: str = "general",
    ) -> None:
        if func_type not in ("general", "pandas"):
            raise ValueError(f"udaf() func_type must be 'general' or 'pandas', not {func_type!r}")
        if isinstance(func, type) and issubclass(func, UserDefinedFunction):
            func = func()
        if func_type == "general":
            if not isinstance(func, AggregateFunction):
                raise TypeError(
                    f"udaf() takes an AggregateFunction (create_accumulator, accumulate, get_value), "
                    f"not {type(func).__name__}; a function of pandas Series needs func_type='pandas'"
                )
            if result_type is None:
                result_type = func.get_result_type()
            if accumulator_type is None:
                accumulator_type = func.get_accumulator_type()
        else:
            _require("pandas")
            if not callable(func) and not isinstance(func, AggregateFunction):
                raise TypeError(
                    f"a pandas udaf takes a function of Series or an AggregateFunction whose accumulate "
                    f"gets the Series, not {type(func).__name__}"
                )
            if isinstance(func, AggregateFunction) and result_type is None:
                result_type = func.get_result_type()
            self._kind = "pandas_aggregate"
        if result_type is None:
            raise TypeError("udaf() needs result_type (or get_result_type() on the AggregateFunction)")
        self._func = func
        self._func_type = func_type
        self._input_types = input_types
        self._result_type = type_text(result_type)
        self._accumulator_type = type_text(accumulator_type) if accumulator_type is not None else None
        self._deterministic = deterministic if deterministic is not None else True
        self._name = _function_name(func, name, AggregateFunction)
        functools.update_wrapper(self, func if not isinstance(func, AggregateFunction) else type(func), updated=())

    def _payload(self) -> Any:
        return _AggregateFunc(self._kind, self._func)

    def __repr__(self) -> str:
        return f"<udaf {self._name} -> {self._result_type}>"


class UserDefinedTableAggregateFunctionWrapper(_Wrapper):
    """What ``udtaf(...)`` returns: for ``flat_aggregate`` (called on expressions, or given
    alone to receive each row as a ``Row``)."""

    _kind = "table_aggregate"
    _func_type = "general"

    def __init__(
        self,
        func: Any,
        input_types: Optional[List[Union[DataType, str]]],
        result_type: Any,
        accumulator_type: Any,
        deterministic: Optional[bool] = None,
        name: Optional[str] = None,
        func_type: str = "general",
    ) -> None:
        if func_type != "general":
            raise ValueError(f"udtaf() supports func_type='general' only (as PyFlink), not {func_type!r}")
        if isinstance(func, type) and issubclass(func, UserDefinedFunction):
            func = func()
        if not isinstance(func, TableAggregateFunction):
            raise TypeError(
                "udtaf() takes a TableAggregateFunction (create_accumulator, accumulate, emit_value), "
                f"not {type(func).__name__}"
            )
        if result_type is None:
            result_type = func.get_result_type()
        if accumulator_type is None:
            accumulator_type = func.get_accumulator_type()
        if result_type is None:
            raise TypeError("udtaf() needs result_type (or get_result_type() on the TableAggregateFunction)")
        self._names, self._types = _row_fields(result_type)
        self._func = func
        self._input_types = input_types
        self._accumulator_type = type_text(accumulator_type) if accumulator_type is not None else None
        self._deterministic = deterministic if deterministic is not None else True
        self._name = _function_name(func, name, TableAggregateFunction)
        functools.update_wrapper(self, type(func), updated=())

    @property
    def result_type(self) -> str:
        """As the engine declares it: the rows a group emits."""
        return _rows_type(self._names, self._types)

    def _payload(self) -> Any:
        return _AggregateFunc(self._kind, self._func, len(self._types))

    def __repr__(self) -> str:
        return f"<udtaf {self._name} -> ({', '.join(self._types)})>"


def udtaf(
    f: Any = None,
    input_types: Optional[List[Union[DataType, str]]] = None,
    result_type: Any = None,
    accumulator_type: Any = None,
    deterministic: Optional[bool] = None,
    name: Optional[str] = None,
    func_type: str = "general",
) -> Any:
    """Makes a table aggregate function for ``flat_aggregate``:
    ``udtaf(Top2(), result_type=DataTypes.ROW([...]))``."""

    def make(func: Any) -> UserDefinedTableAggregateFunctionWrapper:
        return UserDefinedTableAggregateFunctionWrapper(
            func, input_types, result_type, accumulator_type, deterministic, name, func_type
        )

    if f is None:
        return make
    return make(f)


def udtf(
    f: Any = None,
    input_types: Optional[List[Union[DataType, str]]] = None,
    result_types: Any = None,
    deterministic: Optional[bool] = None,
    name: Optional[str] = None,
) -> Any:
    """Makes a table function: ``@udtf(result_types=[DataTypes.STRING(), DataTypes.INT()])`` on
    a generator, or ``udtf(MyTableFunction(), result_types=...)``."""

    def make(func: Any) -> UserDefinedTableFunctionWrapper:
        return UserDefinedTableFunctionWrapper(func, input_types, result_types, deterministic, name)

    if f is None:
        return make
    return make(f)


def udaf(
    f: Any = None,
    input_types: Optional[List[Union[DataType, str]]] = None,
    result_type: Any = None,
    accumulator_type: Any = None,
    deterministic: Optional[bool] = None,
    name: Optional[str] = None,
    func_type: str = "general",
) -> Any:
    """Makes an aggregate function: ``udaf(MyAggregateFunction(), result_type=...)``, or
    ``@udaf(result_type=..., func_type="pandas")`` on a function of a group's Series."""

    def make(func: Any) -> UserDefinedAggregateFunctionWrapper:
        return UserDefinedAggregateFunctionWrapper(
            func, input_types, result_type, accumulator_type, deterministic, name, func_type
        )

    if f is None:
        return make
    return make(f)


def udf(
    f: Any = None,
    input_types: Optional[List[Union[DataType, str]]] = None,
    result_type: Optional[Union[DataType, str]] = None,
    deterministic: Optional[bool] = None,
    name: Optional[str] = None,
    func_type: str = "general",
) -> Any:
    """Makes a scalar UDF: ``@udf(result_type=DataTypes.BIGINT())`` on a function, or
    ``udf(MyScalarFunction(), result_type='STRING')``; ``func_type='pandas'`` or ``'arrow'``
    for a vectorized one (see the module's description)."""

    def make(func: Any) -> UserDefinedScalarFunctionWrapper:
        return UserDefinedScalarFunctionWrapper(func, input_types, result_type, deterministic, name, func_type)  # type: ignore[arg-type]

    if f is None:
        return make
    return make(f)


__all__ = [
    "udf",
    "udtf",
    "udaf",
    "udtaf",
    "ScalarFunction",
    "AsyncScalarFunction",
    "TableAggregateFunction",
    "UserDefinedTableAggregateFunctionWrapper",
    "TableFunction",
    "AggregateFunction",
    "ImperativeAggregateFunction",
    "UserDefinedTableFunctionWrapper",
    "UserDefinedAggregateFunctionWrapper",
    "UserDefinedFunction",
    "FunctionContext",
    "UserDefinedScalarFunctionWrapper",
]
