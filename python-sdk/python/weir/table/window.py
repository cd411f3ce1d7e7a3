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


__all__ = ["Tumble", "Slide", "Session", "GroupWindow"]
