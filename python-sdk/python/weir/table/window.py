"""Group windows for ``Table.window``, as in ``pyflink.table.window``:
``Tumble.over(lit(10).seconds).on(col('ts')).alias('w')``."""

from __future__ import annotations

from typing import Any, Optional

from weir.table.expression import BuildContext, Expression, _Interval, _to_expr


class GroupWindow:
    def __init__(self, kind: str, size: Optional[Expression] = None) -> None:
        self._kind = kind
        self._size = size
        self._slide: Optional[Expression] = None
        self._time: Optional[Expression] = None
        self._alias: Optional[str] = None

    def _copy(self) -> "GroupWindow":
        w = GroupWindow(self._kind, self._size)
        w._slide, w._time, w._alias = self._slide, self._time, self._alias
        return w

    def every(self, slide: Any) -> "GroupWindow":
        w = self._copy()
        w._slide = _to_expr(slide)
        return w

    def on(self, time_field: Any) -> "GroupWindow":
        w = self._copy()
        w._time = _to_expr(time_field)
        return w

    def alias(self, alias: str) -> "GroupWindow":
        w = self._copy()
        w._alias = alias
        return w

    def _check(self) -> None:
        if self._time is None:
            raise ValueError(f"a {self._kind} window needs .on(time column)")
        if self._alias is None:
            raise ValueError(f"a {self._kind} window needs .alias(name) to be grouped by")
        if self._kind == "HOP" and self._slide is None:
            raise ValueError("a Slide window needs .every(slide)")
        for e in (self._size, self._slide):
            if e is not None and not isinstance(e, _Interval):
                raise ValueError("window sizes are intervals, e.g. lit(10).seconds")

    def _native_spec(self, ctx: BuildContext) -> tuple:
        """(kind, size ms, slide ms, time column, alias) for the engine."""
        self._check()
        time = self._time._build(ctx).column_name()  # type: ignore[union-attr]
        if time is None:
            raise ValueError(f"a {self._kind} window is .on() a time attribute column, not {self._time}")
        slide = self._slide.millis() if self._slide is not None else None  # type: ignore[attr-defined]
        return (self._kind, self._size.millis(), slide, time, self._alias)  # type: ignore[union-attr]


class Tumble:
    @staticmethod
    def over(size: Any) -> GroupWindow:
        return GroupWindow("TUMBLE", _to_expr(size))


class Slide:
    @staticmethod
    def over(size: Any) -> GroupWindow:
        return GroupWindow("HOP", _to_expr(size))


class Session:
    @staticmethod
    def with_gap(gap: Any) -> GroupWindow:
        return GroupWindow("SESSION", _to_expr(gap))


class _FrameBound(Expression):
    """``row_interval(n)``, ``UNBOUNDED_ROW``, ``UNBOUNDED_RANGE``, ``CURRENT_ROW``,
    ``CURRENT_RANGE``: bounds of an OVER window's frame."""

    def __init__(self, rows: bool, n: Optional[int]) -> None:
        self._rows = rows
        self._n = n

    def _build(self, ctx: BuildContext) -> Any:
        raise ValueError("a frame bound is given to Over...preceding(...) / following(...)")

    def __repr__(self) -> str:
        unit = "ROWS" if self._rows else "RANGE"
        return f"{unit} {'UNBOUNDED' if self._n is None else self._n} PRECEDING"


class OverWindow:
    """``Over.partition_by(..).order_by(..).preceding(..).following(..).alias(..)``."""

    def __init__(self, partition: tuple = ()) -> None:
        self._partition = list(partition)
        self._order: Optional[Expression] = None
        self._preceding: Optional[Any] = None
        self._following: Optional[Any] = None
        self._alias: Optional[str] = None

    def _copy(self) -> "OverWindow":
        w = OverWindow(tuple(self._partition))
        w._order, w._preceding, w._following, w._alias = self._order, self._preceding, self._following, self._alias
        return w

    def order_by(self, order_by: Any) -> "OverWindow":
        w = self._copy()
        w._order = _to_expr(order_by)
        return w

    def preceding(self, preceding: Any) -> "OverWindow":
        w = self._copy()
        w._preceding = preceding
        return w

    def following(self, following: Any) -> "OverWindow":
        w = self._copy()
        w._following = following
        return w

    def alias(self, alias: str) -> "OverWindow":
        w = self._copy()
        w._alias = alias
        return w

    def _frame(self) -> tuple:
        """(rows, preceding rows or ms or None) as the engine takes them."""
        p = self._preceding
        if p is None:
            p = UNBOUNDED_RANGE
        f = self._following
        if f is not None and not (isinstance(f, _FrameBound) and f._n == 0):
            raise ValueError("an OVER window ends at CURRENT_ROW / CURRENT_RANGE (following anything else is not supported, as in Flink)")
        if isinstance(p, _FrameBound):
            return (p._rows, p._n)
        p = _to_expr(p)
        if isinstance(p, _Interval):
            return (False, p.millis())
        raise ValueError(f"preceding takes row_interval(n), an interval (lit(2).seconds), UNBOUNDED_ROW or UNBOUNDED_RANGE, not {p!r}")

    def _native_spec(self, ctx: BuildContext) -> tuple:
        if self._order is None:
            raise ValueError("an OVER window needs .order_by(time column)")
        order = self._order._build(ctx).column_name()
        if order is None:
            raise ValueError(f"an OVER window is ordered by a column, not {self._order}")
        rows, preceding = self._frame()
        return [p._build(ctx) for p in self._partition], order, rows, preceding


class Over:
    """OVER windows for ``Table.over_window``, as in PyFlink."""

    @staticmethod
    def partition_by(*partition_by: Any) -> OverWindow:
        return OverWindow(tuple(_to_expr(p) for p in partition_by))

    @staticmethod
    def order_by(order_by: Any) -> OverWindow:
        return OverWindow().order_by(order_by)


def row_interval(rows: int) -> _FrameBound:
    """``preceding(row_interval(2))``: the row and the 2 rows before it."""
    if int(rows) < 0:
        raise ValueError("row_interval takes a number of rows of at least 0")
    return _FrameBound(True, int(rows))


UNBOUNDED_ROW = _FrameBound(True, None)
UNBOUNDED_RANGE = _FrameBound(False, None)
CURRENT_ROW = _FrameBound(True, 0)
CURRENT_RANGE = _FrameBound(False, 0)


__all__ = ["Tumble", "Slide", "Session", "GroupWindow", "Over", "OverWindow"]
