"""Expression constructors, as in ``pyflink.table.expressions``."""

from __future__ import annotations

from typing import Any, Optional, Union

from weir.table.expression import (
    Expression,
    _Case,
    _Column,
    _Func,
    _Literal,
    _Op,
    _Raw,
    _UdfCall,
    _wrap,
)
from weir.table.types import DataType
from weir.table.window import CURRENT_RANGE, CURRENT_ROW, UNBOUNDED_RANGE, UNBOUNDED_ROW, row_interval


def col(name: str) -> Expression:
    """The column ``name``."""
    return _Column(name)


def lit(value: Any, data_type: Optional[Union[DataType, str]] = None) -> Expression:
    """A literal; with ``data_type`` it is cast to that type."""
    return _Literal(value, data_type)


def call(f: Any, *args: Any) -> Expression:
    """Calls a function by name (registered or built in) or a UDF object."""
    if isinstance(f, str):
        return _Func(f, [_wrap(a) for a in args])
    return _UdfCall(f, [_wrap(a) for a in args])


def json_string(value: Any) -> Expression:
    """A number, string or boolean as JSON text (``'a'`` gives ``"a"``)."""
    return _Func("JSON_STRING", [_wrap(value)])


def json(value: Any) -> Expression:
    """Text that is JSON already: ``json_object``/``json_array`` nest it as JSON rather than
    as a string."""
    return _Func("JSON", [_wrap(value)])


def json_object(on_null: Any = None, *args: Any) -> Expression:
    """A JSON object text from keys and values (``json_object(JsonOnNull.NULL, 'k', col('v'))``)."""
    from weir.table.expression import JsonOnNull

    mode = (on_null or JsonOnNull.NULL).name
    return _Func("JSON_OBJECT", [_Literal(mode)] + [_wrap(a) for a in args])


def json_array(on_null: Any = None, *args: Any) -> Expression:
    """A JSON array text from values; NULLs are left out unless ``JsonOnNull.NULL``."""
    from weir.table.expression import JsonOnNull

    mode = (on_null or JsonOnNull.ABSENT).name
    return _Func("JSON_ARRAY", [_Literal(mode)] + [_wrap(a) for a in args])


def call_sql(sql_expression: str) -> Expression:
    """A SQL expression as text, planned over the columns of the table it is used on."""
    return _Raw(sql_expression)


def and_(first: Any, *rest: Any) -> Expression:
    e = _wrap(first)
    for r in rest:
        e = e & _wrap(r)
    return e


def or_(first: Any, *rest: Any) -> Expression:
    e = _wrap(first)
    for r in rest:
        e = e | _wrap(r)
    return e


def not_(expression: Any) -> Expression:
    return ~_wrap(expression)


def if_then_else(condition: Any, if_true: Any, if_false: Any) -> Expression:
    return _Case(_wrap(condition), _wrap(if_true), _wrap(if_false))


def coalesce(*args: Any) -> Expression:
    return _Func("COALESCE", [_wrap(a) for a in args])


def concat(first: Any, *others: Any) -> Expression:
    return _Func("CONCAT", [_wrap(first)] + [_wrap(o) for o in others])


def concat_ws(separator: Any, first: Any, *others: Any) -> Expression:
    return _Func("CONCAT_WS", [_wrap(separator), _wrap(first)] + [_wrap(o) for o in others])


def current_timestamp() -> Expression:
    return _Op(lambda ctx: ctx.env._native.parse_literal("CURRENT_TIMESTAMP"))


def to_timestamp(value: Any, format: Optional[str] = None) -> Expression:
    args = [_wrap(value)] + ([] if format is None else [_wrap(format)])
    return _Func("TO_TIMESTAMP", args)


def date_format(timestamp: Any, format: Any) -> Expression:
    return _Func("DATE_FORMAT", [_wrap(timestamp), _wrap(format)])


__all__ = [
    "col",
    "lit",
    "call",
    "call_sql",
    "and_",
    "or_",
    "not_",
    "if_then_else",
    "coalesce",
    "concat",
    "concat_ws",
    "current_timestamp",
    "to_timestamp",
    "date_format",
    "json",
    "json_string",
    "row_interval",
    "UNBOUNDED_ROW",
    "UNBOUNDED_RANGE",
    "CURRENT_ROW",
    "CURRENT_RANGE",
    "json_object",
    "json_array",
]
