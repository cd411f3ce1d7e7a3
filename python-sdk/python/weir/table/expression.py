"""Table API expressions. An expression renders to weir SQL; the table environment plans it.

Operators and methods follow ``pyflink.table.expression.Expression``: ``col('a') + 1``,
``col('a').sum.alias('total')``, ``col('name').upper_case``, ``col('w').start`` for a
window's start, ``lit(10).seconds`` for an interval.
"""

from __future__ import annotations

import datetime
import decimal
import re
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

from weir.table.types import DataType, type_text

if TYPE_CHECKING:  # pragma: no cover
    from weir.table.table_environment import TableEnvironment

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {
    "all", "and", "as", "asc", "between", "by", "case", "cast", "count", "date", "day",
    "desc", "distinct", "else", "end", "exists", "false", "from", "group", "having", "hour",
    "in", "interval", "is", "join", "key", "left", "like", "limit", "minute", "month", "not",
    "null", "on", "or", "order", "right", "second", "select", "table", "then", "time",
    "timestamp", "to", "true", "union", "user", "value", "values", "when", "where", "window",
    "year", "rank", "row", "rows", "start", "range", "first", "last",
}


def quote_name(name: str) -> str:
    """A column name as a SQL identifier (quoted when it is not a plain word)."""
    if _PLAIN.match(name) and name.lower() not in _RESERVED:
        return name
    return "`" + name.replace("`", "``") + "`"


class RenderContext:
    """What rendering needs: the environment (to register UDFs) and window aliases."""

    def __init__(self, env: "TableEnvironment", windows: Optional[Dict[str, Any]] = None):
        self.env = env
        self.windows = windows or {}


class Expression:
    """A Table API expression."""

    def _render(self, ctx: RenderContext) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _output_name(self) -> Optional[str]:
        return None

    # -- operators --
    def _bin(self, op: str, other: Any, swap: bool = False) -> "Expression":
        a, b = self, _wrap(other)
        if swap:
            a, b = b, a
        return _Op(lambda c: f"({a._render(c)} {op} {b._render(c)})")

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
        return _Func("MOD", [self, _wrap(o)])

    def __pow__(self, o: Any) -> "Expression":
        return _Func("POWER", [self, _wrap(o)])

    def __neg__(self) -> "Expression":
        return _Op(lambda c: f"(- {self._render(c)})")

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
        return _Op(lambda c: f"(NOT {self._render(c)})")

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self) -> bool:
        raise TypeError(
            "an expression has no truth value: use & | ~ instead of and/or/not, "
            "and compare inside the expression"
        )

    # -- naming and types --
    def alias(self, name: str, *extra_names: str) -> "Expression":
        if extra_names:
            raise ValueError("one name per expression")
        return _Alias(self, name)

    def cast(self, data_type: Union[DataType, str]) -> "Expression":
        t = type_text(data_type)
        return _Op(lambda c: f"CAST({self._render(c)} AS {t})")

    def try_cast(self, data_type: Union[DataType, str]) -> "Expression":
        return self.cast(data_type)

    # -- predicates --
    @property
    def is_null(self) -> "Expression":
        return _Op(lambda c: f"({self._render(c)} IS NULL)")

    @property
    def is_not_null(self) -> "Expression":
        return _Op(lambda c: f"({self._render(c)} IS NOT NULL)")

    @property
    def is_true(self) -> "Expression":
        return _Op(lambda c: f"({self._render(c)} IS TRUE)")

    @property
    def is_false(self) -> "Expression":
        return _Op(lambda c: f"({self._render(c)} IS FALSE)")

    def between(self, lower: Any, upper: Any) -> "Expression":
        lo, hi = _wrap(lower), _wrap(upper)
        return _Op(lambda c: f"({self._render(c)} BETWEEN {lo._render(c)} AND {hi._render(c)})")

    def not_between(self, lower: Any, upper: Any) -> "Expression":
        lo, hi = _wrap(lower), _wrap(upper)
        return _Op(
            lambda c: f"({self._render(c)} NOT BETWEEN {lo._render(c)} AND {hi._render(c)})"
        )

    def in_(self, *values: Any) -> "Expression":
        vs = [_wrap(v) for v in values]
        return _Op(lambda c: f"({self._render(c)} IN ({', '.join(v._render(c) for v in vs)}))")

    def like(self, pattern: Any) -> "Expression":
        p = _wrap(pattern)
        return _Op(lambda c: f"({self._render(c)} LIKE {p._render(c)})")

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
        return _Op(lambda c: f"{self._render(c)} ASC")

    @property
    def desc(self) -> "Expression":
        return _Op(lambda c: f"{self._render(c)} DESC")

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


class _Op(Expression):
    def __init__(self, render: Callable[[RenderContext], str]) -> None:
        self._r = render

    def _render(self, ctx: RenderContext) -> str:
        return self._r(ctx)


class _Column(Expression):
    def __init__(self, name: str) -> None:
        self.name = name

    def _render(self, ctx: RenderContext) -> str:
        if self.name in ctx.windows:
            return ctx.windows[self.name].group_key()
        if self.name == "*":
            return "*"
        return quote_name(self.name)

    def _output_name(self) -> Optional[str]:
        return self.name


class _Literal(Expression):
    def __init__(self, value: Any, data_type: Optional[Union[DataType, str]] = None) -> None:
        self.value = value
        self.data_type = data_type

    def _text(self) -> str:
        v = self.value
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return f"CAST({v!r} AS DOUBLE)"
        if isinstance(v, decimal.Decimal):
            return str(v)
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        if isinstance(v, datetime.datetime):
            return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
        if isinstance(v, datetime.date):
            return f"DATE '{v.isoformat()}'"
        if isinstance(v, datetime.time):
            return f"TIME '{v.isoformat()}'"
        raise TypeError(f"lit() cannot take a {type(v).__name__}")

    def _render(self, ctx: RenderContext) -> str:
        t = self._text()
        if self.data_type is not None:
            return f"CAST({t} AS {type_text(self.data_type)})"
        return t


class _Interval(Expression):
    def __init__(self, amount: Expression, unit: str) -> None:
        self.amount = amount
        self.unit = unit

    def millis(self) -> int:
        if not isinstance(self.amount, _Literal) or not isinstance(self.amount.value, int):
            raise ValueError("an interval needs a whole number literal, e.g. lit(10).seconds")
        per = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
        return self.amount.value * per[self.unit]

    def _render(self, ctx: RenderContext) -> str:
        ms = self.millis()
        if self.unit == "MILLISECOND":
            if ms % 1000 == 0:
                return f"INTERVAL '{ms // 1000}' SECOND"
            return f"INTERVAL '{ms / 1000:.3f}' SECOND"
        return f"INTERVAL '{self.amount.value}' {self.unit}"  # type: ignore[attr-defined]


class _Alias(Expression):
    def __init__(self, inner: Expression, name: str) -> None:
        self.inner = inner
        self.name = name

    def _render(self, ctx: RenderContext) -> str:
        return f"{self.inner._render(ctx)} AS {quote_name(self.name)}"

    def _output_name(self) -> Optional[str]:
        return self.name


class _Func(Expression):
    def __init__(self, name: str, args: Sequence[Expression]) -> None:
        self.name = name
        self.args = list(args)

    def _render(self, ctx: RenderContext) -> str:
        return f"{self.name}({', '.join(a._render(ctx) for a in self.args)})"


class _Agg(Expression):
    def __init__(self, name: str, arg: Expression, distinct: bool = False) -> None:
        self.name = name
        self.arg = arg
        self._distinct = distinct

    @property
    def distinct(self) -> "Expression":
        return _Agg(self.name, self.arg, True)

    def _render(self, ctx: RenderContext) -> str:
        d = "DISTINCT " if self._distinct else ""
        return f"{self.name}({d}{self.arg._render(ctx)})"


class _UdfCall(Expression):
    def __init__(self, udf: Any, args: Sequence[Expression]) -> None:
        self.udf = udf
        self.args = list(args)

    def _render(self, ctx: RenderContext) -> str:
        name = ctx.env._register_inline_udf(self.udf)
        return f"{name}({', '.join(a._render(ctx) for a in self.args)})"


class _Raw(Expression):
    """SQL text given as a string (``t.select("a, b + 1 AS c")``)."""

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def _render(self, ctx: RenderContext) -> str:
        return self.sql


class _WindowProp(Expression):
    def __init__(self, window: Expression, prop: str) -> None:
        self.window = window
        self.prop = prop

    def _render(self, ctx: RenderContext) -> str:
        name = self.window._output_name()
        if name is None or name not in ctx.windows:
            raise ValueError(
                f"`.{self.prop.lower()}` is a property of a group window alias; "
                f"no window named {name!r} here"
            )
        return ctx.windows[name].property_sql(self.prop)


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


def render_list(items: Sequence[Any], ctx: RenderContext) -> List[str]:
    return [_to_expr(i)._render(ctx) for i in items]


__all__ = ["Expression"]
