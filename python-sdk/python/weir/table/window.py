"""Group windows for ``Table.window``, as in ``pyflink.table.window``:
``Tumble.over(lit(10).seconds).on(col('ts')).alias('w')``."""

from __future__ import annotations

from typing import Any, Optional

from weir.table.expression import Expression, RenderContext, _Interval, _to_expr


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

    def bind(self, ctx: RenderContext) -> "BoundWindow":
        self._check()
        return BoundWindow(self, ctx)


class BoundWindow:
    def __init__(self, w: GroupWindow, ctx: RenderContext) -> None:
        time = w._time._render(ctx)  # type: ignore[union-attr]
        size = w._size._render(ctx)  # type: ignore[union-attr]
        if w._kind == "HOP":
            slide = w._slide._render(ctx)  # type: ignore[union-attr]
            self.args = f"{time}, {slide}, {size}"
        else:
            self.args = f"{time}, {size}"
        self.kind = w._kind

    def group_key(self) -> str:
        return f"{self.kind}({self.args})"

    def property_sql(self, prop: str) -> str:
        return f"{self.kind}_{prop}({self.args})"


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
