"""Python user-defined functions, as in ``pyflink.table.udf``.

A scalar UDF is a function, lambda or callable decorated with ``@udf(result_type=...)``, or a
``ScalarFunction`` subclass with ``open(ctx)``, ``eval(*args)`` and ``close()``. It travels to
the worker processes with cloudpickle; ``open`` runs there, once per worker.
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


class UserDefinedScalarFunctionWrapper:
    """What ``udf(...)`` returns: call it on expressions, register it by name."""

    def __init__(
        self,
        func: Any,
        input_types: Optional[List[Union[DataType, str]]],
        result_type: Union[DataType, str],
        deterministic: Optional[bool] = None,
        name: Optional[str] = None,
    ) -> None:
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
    ``udf(MyScalarFunction(), result_type='STRING')``."""
    if func_type != "general":
        raise NotImplementedError("weir runs func_type='general' UDFs; 'pandas' is not supported yet")

    def make(func: Any) -> UserDefinedScalarFunctionWrapper:
        return UserDefinedScalarFunctionWrapper(func, input_types, result_type, deterministic, name)  # type: ignore[arg-type]

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
