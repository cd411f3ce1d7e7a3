"""Table API expressions. An expression is a small tree that builds the engine's own expression
(a ``weir._native.Expr``) when a table operation uses it: names are resolved and types checked
by the engine's planner, the one SQL uses, and nothing is rendered as SQL text.

Operators and methods follow ``pyflink.table.expression.Expression``: ``col('a') + 1``,
``col('a').sum.alias('total')``, ``col('name').upper_case``, ``col('w').start`` for a
window's start, ``lit(10).seconds`` for an interval.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import sys
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Union

from weir import _native
from weir.table.types import DataType, type_text

if TYPE_CHECKING:  # pragma: no cover
    from weir.table.table_environment import TableEnvironment

class BuildContext:
    """What building needs: the environment (functions by name, inline UDFs), the native
    table the expression is used on (SQL text given as a string), and the group window's
    alias when there is one."""

    def __init__(self, env: "TableEnvironment", table: Any = None, window_alias: Optional[str] = None):
        self.env = env
        self.table = table
        self.window_alias = window_alias


class Expression:
    """A Table API expression."""

    def _build(self, ctx: BuildContext) -> Any:  # pragma: no cover - abstract
        """The native expression."""
        raise NotImplementedError

    def _output_name(self) -> Optional[str]:
        return None

    # -- operators --
    def _bin(self, op: str, other: Any, swap: bool = False) -> "Expression":
        a, b = self, _wrap(other)
        if swap:
            a, b = b, a
        return _Op(lambda c: a._build(c).binary(op, b._build(c)))

    def __add__(self, o: Any) -> "Expression":
        return self._bin("+", o)

    def __radd__(self, o: Any) -> "Expression":
        return self._bin("+", o, True)

    def __sub__(self, o: Any) -> "Expression":
        return self._bin("-", o)

    def __rsub__(self, o: Any) -> "Expression":
        return self._bin("-", o, True)

    def __mul__(self, o: Any) -> "Expression":
        return self._bin("*", o)

    def __rmul__(self, o: Any) -> "Expression":
        return self._bin("*", o, True)

    def __truediv__(self, o: Any) -> "Expression":
        return self._bin("/", o)

    def __rtruediv__(self, o: Any) -> "Expression":
        return self._bin("/", o, True)

    def __mod__(self, o: Any) -> "Expression":
        return self._bin("%", o)

    def __pow__(self, o: Any) -> "Expression":
        return _Func("POWER", [self, _wrap(o)])

    def __neg__(self) -> "Expression":
        return _Op(lambda c: self._build(c).negate())

    def __eq__(self, o: Any) -> "Expression":  # type: ignore[override]
        return self._bin("=", o)

    def __ne__(self, o: Any) -> "Expression":  # type: ignore[override]
        return self._bin("<>", o)

    def __lt__(self, o: Any) -> "Expression":
        return self._bin("<", o)

    def __le__(self, o: Any) -> "Expression":
        return self._bin("<=", o)

    def __gt__(self, o: Any) -> "Expression":
        return self._bin(">", o)

    def __ge__(self, o: Any) -> "Expression":
        return self._bin(">=", o)

    def __and__(self, o: Any) -> "Expression":
        return self._bin("AND", o)

    def __rand__(self, o: Any) -> "Expression":
        return self._bin("AND", o, True)

    def __or__(self, o: Any) -> "Expression":
        return self._bin("OR", o)

    def __ror__(self, o: Any) -> "Expression":
        return self._bin("OR", o, True)

    def __invert__(self) -> "Expression":
        return _Op(lambda c: self._build(c).not_())

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        raise TypeError(
            "an expression has no truth value: use & | ~ instead of and/or/not, "
            "and compare inside the expression"
        )

    # -- naming and types --
    def alias(self, name: str, *extra_names: str) -> "Expression":
        """Names the result; several names name the columns of a table function
        (``join_lateral``, ``flat_map``) or the fields of a ROW result (``map``,
        ``aggregate``)."""
        return _Alias(self, name, extra_names)

    def get(self, name_or_index: Union[str, int]) -> "Expression":
        """A field of a ROW value, by name or 0-based position."""
        return _Func("GET", [self, _wrap(name_or_index)])

    def cast(self, data_type: Union[DataType, str]) -> "Expression":
        t = type_text(data_type)
        return _Op(lambda c: self._build(c).cast(t))

    def over(self, alias: Any) -> "Expression":
        """An aggregate over the OVER window named ``alias`` (``col('v').sum.over(col('w'))``),
        in ``over_window(..).select(..)``: every aggregate there is over that one window."""
        return self

    # -- JSON (Flink's JSON functions; see docs/engine.md) --
    def json_value(
        self,
        path: str,
        returning_type: Union[DataType, str, None] = None,
        on_empty: "JsonValueOnEmptyOrError" = None,  # type: ignore[assignment]
        default_on_empty: Any = None,
        on_error: "JsonValueOnEmptyOrError" = None,  # type: ignore[assignment]
        default_on_error: Any = None,
    ) -> "Expression":
        """The scalar at ``path`` in this JSON string, as ``returning_type`` (STRING by
        default); NULL (or the default, or an error) when the path finds nothing or fails."""
        on_empty = on_empty or JsonValueOnEmptyOrError.NULL
        on_error = on_error or JsonValueOnEmptyOrError.NULL
        args: List[Expression] = [self, _wrap(path)]
        if (on_empty, on_error) != (JsonValueOnEmptyOrError.NULL, JsonValueOnEmptyOrError.NULL):
            args += [
                _Literal(on_empty.name),
                _wrap(default_on_empty).cast("STRING"),
                _Literal(on_error.name),
                _wrap(default_on_error).cast("STRING"),
            ]
        e: Expression = _Func("JSON_VALUE", args)
        t = type_text(returning_type) if returning_type is not None else "STRING"
        return e if t.upper() == "STRING" else e.try_cast(t)

    def json_query(
        self,
        path: str,
        wrapping_behavior: "JsonQueryWrapper" = None,  # type: ignore[assignment]
        on_empty: "JsonQueryOnEmptyOrError" = None,  # type: ignore[assignment]
        on_error: "JsonQueryOnEmptyOrError" = None,  # type: ignore[assignment]
    ) -> "Expression":
        """The object or array at ``path`` as JSON text (see ``JsonQueryWrapper``)."""
        wrap = (wrapping_behavior or JsonQueryWrapper.WITHOUT_ARRAY).name.replace("_ARRAY", "")
        on_empty = (on_empty or JsonQueryOnEmptyOrError.NULL).name.replace("_", " ")
        on_error = (on_error or JsonQueryOnEmptyOrError.NULL).name.replace("_", " ")
        return _Func("JSON_QUERY", [self, _wrap(path), _Literal(wrap), _Literal(on_empty), _Literal(on_error)])

    def json_exists(self, path: str, on_error: "JsonExistsOnError" = None) -> "Expression":  # type: ignore[assignment]
        """Whether ``path`` finds anything in this JSON string."""
        args: List[Expression] = [self, _wrap(path)]
        if on_error is not None:
            args.append(_Literal(on_error.name))
        return _Func("JSON_EXISTS", args)

    def try_cast(self, data_type: Union[DataType, str]) -> "Expression":
        """As ``cast``, but NULL where a value does not convert (``cast`` fails the job)."""
        t = type_text(data_type)
        return _Op(lambda c: self._build(c).try_cast(t))

    # -- predicates --
    @property
    def is_null(self) -> "Expression":
        return _Op(lambda c: self._build(c).is_null())

    @property
    def is_not_null(self) -> "Expression":
        return _Op(lambda c: self._build(c).is_not_null())

    @property
    def is_true(self) -> "Expression":
        return _Op(lambda c: self._build(c).is_bool(True))

    @property
    def is_false(self) -> "Expression":
        return _Op(lambda c: self._build(c).is_bool(False))

    def between(self, lower: Any, upper: Any) -> "Expression":
        lo, hi = _wrap(lower), _wrap(upper)
        return _Op(lambda c: self._build(c).between(lo._build(c), hi._build(c), False))

    def not_between(self, lower: Any, upper: Any) -> "Expression":
        lo, hi = _wrap(lower), _wrap(upper)
        return _Op(lambda c: self._build(c).between(lo._build(c), hi._build(c), True))

    def in_(self, *values: Any) -> "Expression":
        """In a list of values, or (one argument, a one-column ``Table``) among its rows: a
        semi join, given alone to ``where``/``filter``."""
        if len(values) == 1 and type(values[0]).__name__ == "Table" and hasattr(values[0], "_native"):
            return _InTable(self, values[0])
        vs = [_wrap(v) for v in values]
        return _Op(lambda c: self._build(c).in_list([v._build(c) for v in vs], False))

    def like(self, pattern: Any) -> "Expression":
        p = _wrap(pattern)
        return _Op(lambda c: self._build(c).like(p._build(c)))

    def if_null(self, null_replacement: Any) -> "Expression":
        return _Func("COALESCE", [self, _wrap(null_replacement)])

    # -- aggregates --
    @property
    def sum(self) -> "Expression":
        return _Agg("SUM", self)

    @property
    def count(self) -> "Expression":
        return _Agg("COUNT", self)

    @property
    def avg(self) -> "Expression":
        return _Agg("AVG", self)

    @property
    def min(self) -> "Expression":
        return _Agg("MIN", self)

    @property
    def max(self) -> "Expression":
        return _Agg("MAX", self)

    # -- strings and numbers --
    @property
    def upper_case(self) -> "Expression":
        return _Func("UPPER", [self])

    @property
    def lower_case(self) -> "Expression":
        return _Func("LOWER", [self])

    @property
    def char_length(self) -> "Expression":
        return _Func("CHAR_LENGTH", [self])

    def trim(self, character: Optional[str] = None) -> "Expression":
        return _Func("TRIM", [self])

    def substring(self, begin_index: Any, length: Any = None) -> "Expression":
        args = [self, _wrap(begin_index)] + ([] if length is None else [_wrap(length)])
        return _Func("SUBSTRING", args)

    def regexp_replace(self, regex: Any, replacement: Any) -> "Expression":
        return _Func("REGEXP_REPLACE", [self, _wrap(regex), _wrap(replacement)])

    def regexp_extract(self, regex: Any, extract_index: Any = None) -> "Expression":
        args = [self, _wrap(regex)] + ([] if extract_index is None else [_wrap(extract_index)])
        return _Func("REGEXP_EXTRACT", args)

    def replace(self, search: Any, replacement: Any) -> "Expression":
        return _Func("REPLACE", [self, _wrap(search), _wrap(replacement)])

    @property
    def abs(self) -> "Expression":
        return _Func("ABS", [self])

    @property
    def sqrt(self) -> "Expression":
        return _Func("SQRT", [self])

    @property
    def ln(self) -> "Expression":
        return _Func("LN", [self])

    @property
    def exp(self) -> "Expression":
        return _Func("EXP", [self])

    @property
    def floor(self) -> "Expression":
        return _Func("FLOOR", [self])

    @property
    def ceil(self) -> "Expression":
        return _Func("CEIL", [self])

    def round(self, places: Any = 0) -> "Expression":
        return _Func("ROUND", [self, _wrap(places)])

    def power(self, other: Any) -> "Expression":
        return _Func("POWER", [self, _wrap(other)])

    # -- ordering --
    @property
    def asc(self) -> "Expression":
        return _Op(lambda c: self._build(c).sort(False))

    @property
    def desc(self) -> "Expression":
        return _Op(lambda c: self._build(c).sort(True))

    # -- intervals --
    def _interval(self, unit: str) -> "Expression":
        return _Interval(self, unit)

    @property
    def seconds(self) -> "Expression":
        return self._interval("SECOND")

    second = seconds

    @property
    def minutes(self) -> "Expression":
        return self._interval("MINUTE")

    minute = minutes

    @property
    def hours(self) -> "Expression":
        return self._interval("HOUR")

    hour = hours

    @property
    def days(self) -> "Expression":
        return self._interval("DAY")

    day = days

    @property
    def millis(self) -> "Expression":
        return _Interval(self, "MILLISECOND")

    milli = millis

    # -- window properties (on the window alias) --
    @property
    def start(self) -> "Expression":
        return _WindowProp(self, "START")

    @property
    def end(self) -> "Expression":
        return _WindowProp(self, "END")

    @property
    def rowtime(self) -> "Expression":
        return _WindowProp(self, "ROWTIME")

    @property
    def proctime(self) -> "Expression":
        return _WindowProp(self, "PROCTIME")


class _InTable(Expression):
    """``key.in_(table)``: planned by ``Table.filter`` as a semi join."""

    def __init__(self, key: Expression, table: Any) -> None:
        self.key = key
        self.table = table

    def _build(self, ctx: BuildContext) -> Any:
        raise ValueError(
            "in_(table) is a whole where(...)/filter(...) condition; give other conditions to a "
            "where(...) of their own"
        )


class _Op(Expression):
    def __init__(self, build: Callable[[BuildContext], Any]) -> None:
        self._b = build

    def _build(self, ctx: BuildContext) -> Any:
        return self._b(ctx)


class _Column(Expression):
    def __init__(self, name: str) -> None:
        self.name = name

    def _build(self, ctx: BuildContext) -> Any:
        if self.name == "*":
            raise ValueError("`*` stands for all columns only as a whole argument: select(col('*'))")
        return _native.Expr.col(self.name)

    def _output_name(self) -> Optional[str]:
        return self.name


class _Literal(Expression):
    def __init__(self, value: Any, data_type: Optional[Union[DataType, str]] = None) -> None:
        self.value = value
        self.data_type = data_type

    def _sql_text(self) -> str:
        """Values the engine has no Python conversion for, written as SQL literals."""
        v = self.value
        if isinstance(v, decimal.Decimal):
            return str(v)
        if isinstance(v, datetime.datetime):
            return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
        if isinstance(v, datetime.date):
            return f"DATE '{v.isoformat()}'"
        if isinstance(v, datetime.time):
            return f"TIME '{v.isoformat()}'"
        raise TypeError(f"lit() cannot take a {type(v).__name__}")

    def _build(self, ctx: BuildContext) -> Any:
        v = self.value
        if v is None or isinstance(v, (bool, int, float, str)):
            e = _native.Expr.lit(v)
        else:
            e = ctx.env._native.parse_literal(self._sql_text())
        if self.data_type is not None:
            e = e.cast(type_text(self.data_type))
        return e


_MILLIS = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}


class _Interval(Expression):
    def __init__(self, amount: Expression, unit: str) -> None:
        self.amount = amount
        self.unit = unit

    def millis(self) -> int:
        if not isinstance(self.amount, _Literal) or not isinstance(self.amount.value, int):
            raise ValueError("an interval needs a whole number literal, e.g. lit(10).seconds")
        return self.amount.value * _MILLIS[self.unit]

    def _build(self, ctx: BuildContext) -> Any:
        return _native.Expr.interval(self.millis())


class _Alias(Expression):
    def __init__(self, inner: Expression, name: str, extra: Sequence[str] = ()) -> None:
        self.inner = inner
        self.name = name
        self.extra = list(extra)

    @property
    def names(self) -> List[str]:
        return [self.name, *self.extra]

    def _build(self, ctx: BuildContext) -> Any:
        if self.extra:
            raise ValueError(
                f"alias({', '.join(map(repr, self.names))}): several names only name the columns of a "
                f"table function (join_lateral, flat_map) or the fields of a ROW result (map, aggregate)"
            )
        return self.inner._build(ctx).alias(self.name)

    def _output_name(self) -> Optional[str]:
        return self.name


class _Func(Expression):
    """A function called by name: resolved as SQL resolves it (a registered function first,
    then the built-ins)."""

    def __init__(self, name: str, args: Sequence[Expression]) -> None:
        self.name = name
        self.args = list(args)

    def _build(self, ctx: BuildContext) -> Any:
        return _native.call(ctx.env._native, self.name, [a._build(ctx) for a in self.args])


class _Agg(Expression):
    def __init__(self, name: str, arg: Expression, distinct: bool = False) -> None:
        self.name = name
        self.arg = arg
        self._distinct = distinct

    @property
    def distinct(self) -> "Expression":
        return _Agg(self.name, self.arg, True)

    def _build(self, ctx: BuildContext) -> Any:
        if isinstance(self.arg, _Column) and self.arg.name == "*" and self.name == "COUNT":
            return _native.Expr.count_star()
        return self.arg._build(ctx).agg(self.name, self._distinct)


class _UdfCall(Expression):
    """A call of a UDF object: it refers to that function, whatever its name."""

    def __init__(self, udf: Any, args: Sequence[Expression]) -> None:
        self.udf = udf
        self.args = list(args)

    def _build(self, ctx: BuildContext) -> Any:
        key = ctx.env._register_inline_udf(self.udf)
        return _native.call(ctx.env._native, key, [a._build(ctx) for a in self.args])


class _Raw(Expression):
    """SQL text given as a string (``t.select("a, b + 1 AS c")``), planned over the columns
    of the table it is used on."""

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def _build_all(self, ctx: BuildContext) -> List[Any]:
        if ctx.table is None:
            raise ValueError(f"SQL text {self.sql!r} needs a table to be planned over")
        return ctx.table.parse(self.sql)

    def _build(self, ctx: BuildContext) -> Any:
        built = self._build_all(ctx)
        if len(built) != 1:
            raise ValueError(f"{self.sql!r} is {len(built)} expressions where one is expected")
        return built[0]


class _Case(Expression):
    def __init__(self, condition: Expression, if_true: Expression, if_false: Expression) -> None:
        self.parts = (condition, if_true, if_false)

    def _build(self, ctx: BuildContext) -> Any:
        c, a, b = (p._build(ctx) for p in self.parts)
        return _native.Expr.case(c, a, b)


class _WindowProp(Expression):
    def __init__(self, window: Expression, prop: str) -> None:
        self.window = window
        self.prop = prop

    def _build(self, ctx: BuildContext) -> Any:
        name = self.window._output_name()
        if name is None or name != ctx.window_alias:
            raise ValueError(
                f"`.{self.prop.lower()}` is a property of a group window alias; "
                f"no window named {name!r} here"
            )
        return self.window._build(ctx).window_property(self.prop)


def _wrap(v: Any) -> Expression:
    if isinstance(v, Expression):
        return v
    return _Literal(v)


def _to_expr(v: Any) -> Expression:
    """Arguments of table operations: expressions, or column names / SQL text as strings."""
    if isinstance(v, Expression):
        return v
    if isinstance(v, str):
        return _Raw(v)
    raise TypeError(f"expected an expression or a string, not {type(v).__name__}")


# Expression trees are built into native ones recursively, one Python call per level; a
# generated chain of thousands of operators (PyFlink builds those eagerly, one JVM call at a
# time) needs more than the default recursion limit. Python-to-Python calls do not use the C
# stack, so a higher limit is safe here; deeper than this is a RecursionError, not a crash.
_BUILD_RECURSION = 50_000


@contextlib.contextmanager
def _room_to_recurse() -> Iterator[None]:
    old = sys.getrecursionlimit()
    if old < _BUILD_RECURSION:
        sys.setrecursionlimit(_BUILD_RECURSION)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def build_one(item: Any, ctx: BuildContext) -> Any:
    """The native expression of one argument."""
    with _room_to_recurse():
        return _to_expr(item)._build(ctx)


def build_list(items: Sequence[Any], ctx: BuildContext) -> List[Any]:
    """Native expressions of a table operation's arguments; a string may hold several
    (``"a, b"``) and ``col('*')`` stands for every column."""
    with _room_to_recurse():
        return _build_list(items, ctx)


def _build_list(items: Sequence[Any], ctx: BuildContext) -> List[Any]:
    out: List[Any] = []
    for i in items:
        e = _to_expr(i)
        if isinstance(e, _Raw):
            out.extend(e._build_all(ctx))
        elif isinstance(e, _Column) and e.name == "*":
            out.extend(ctx.table.parse("*"))
        else:
            out.append(e._build(ctx))
    return out


__all__ = ["Expression"]


def split_alias(e: Any) -> "tuple[Any, Optional[List[str]]]":
    """An expression and the names its alias gives it (several for a table function's
    columns or a ROW's fields), or None."""
    if isinstance(e, _Alias):
        return e.inner, e.names
    return e, None


class JsonExistsOnError(Enum):
    """What ``json_exists`` gives when the document cannot be read."""

    TRUE = 0
    FALSE = 1
    UNKNOWN = 2
    ERROR = 3


class JsonValueOnEmptyOrError(Enum):
    """What ``json_value`` gives when the path finds nothing or fails."""

    NULL = 0
    ERROR = 1
    DEFAULT = 2


class JsonQueryWrapper(Enum):
    """Whether ``json_query`` wraps what it finds in an array."""

    WITHOUT_ARRAY = 0
    CONDITIONAL_ARRAY = 1
    UNCONDITIONAL_ARRAY = 2


class JsonQueryOnEmptyOrError(Enum):
    """What ``json_query`` gives when the path finds nothing or fails."""

    NULL = 0
    EMPTY_ARRAY = 1
    EMPTY_OBJECT = 2
    ERROR = 3


class JsonOnNull(Enum):
    """Whether ``json_object``/``json_array`` keep NULL values (as JSON null) or leave them out."""

    NULL = 0
    ABSENT = 1
