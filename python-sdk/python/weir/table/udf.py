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
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional, Union

from weir.table.expression import Expression, _UdfCall, _wrap
from weir.table.types import DataType, type_text


class FunctionContext:
    """What a UDF's ``open`` receives: the metric group, job parameters and where it runs."""

    def __init__(
        self,
        metric_group: Any,
        job_parameters: Dict[str, str],
        task_name: str = "",
        parallelism: int = 1,
        subtask: int = 0,
        attempt: int = 0,
    ) -> None:
        self._metric_group = metric_group
        self._job_parameters = dict(job_parameters)
        self._task_name = task_name
        self._parallelism = parallelism
        self._subtask = subtask
        self._attempt = attempt

    def get_metric_group(self) -> Any:
        """The UDF's metric group. With ``python.metric.enabled=false`` its metrics record
        nothing (PyFlink raises instead)."""
        return self._metric_group

    def get_job_parameter(self, key: str, default_value: Optional[str] = None) -> Optional[str]:
        """A value of ``pipeline.global-job-parameters``."""
        return self._job_parameters.get(key, default_value)

    def get_task_name(self) -> str:
        return self._task_name

    def get_number_of_parallel_subtasks(self) -> int:
        return self._parallelism

    def get_index_of_this_subtask(self) -> int:
        return self._subtask

    def get_attempt_number(self) -> int:
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


class UserDefinedScalarFunctionWrapper:
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
        if not callable(func) and not isinstance(func, ScalarFunction):
            raise TypeError(f"udf() takes a function or a ScalarFunction, not {type(func).__name__}")
        if result_type is None:
            raise TypeError("udf() needs result_type, e.g. DataTypes.BIGINT() or 'BIGINT'")
        self._func = func
        self._input_types = input_types
        self._result_type = type_text(result_type)
        self._deterministic = deterministic if deterministic is not None else True
        if name is None:
            if isinstance(func, ScalarFunction):
                name = type(func).__name__
            else:
                name = getattr(func, "__name__", None) or type(func).__name__
        if name == "<lambda>":
            name = "lambda"
        self._name = name
        functools.update_wrapper(self, func if not isinstance(func, ScalarFunction) else type(func), updated=())

    def __call__(self, *args: Any) -> Expression:
        return _UdfCall(self, [_wrap(a) for a in args])

    @property
    def name(self) -> str:
        return self._name

    @property
    def result_type(self) -> str:
        return self._result_type

    @property
    def func_type(self) -> str:
        return self._func_type

    def _payload(self) -> Any:
        """What the workers unpickle."""
        return self._func if self._func_type == "general" else _Vectorized(self._func_type, self._func)

    def __repr__(self) -> str:
        return f"<udf {self._name} -> {self._result_type}>"


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
    "ScalarFunction",
    "UserDefinedFunction",
    "FunctionContext",
    "UserDefinedScalarFunctionWrapper",
]
