"""``Table``: a relational expression built with Table API calls and planned by the engine.

Each operation is turned into SQL over the previous table (registered as a hidden view), so
the Table API and SQL share one planner and behave the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from weir.table.expression import (
    Expression,
    RenderContext,
    _Column,
    _to_expr,
    quote_name,
    render_list,
)
from weir.table.table_result import ResultKind, TableResult
from weir.table.window import GroupWindow

if TYPE_CHECKING:  # pragma: no cover
    from weir.table.table_environment import TableEnvironment


class TableSchema:
    def __init__(self, names: Sequence[str], types: Sequence[str]) -> None:
        self._names = list(names)
        self._types = list(types)

    def get_field_names(self) -> List[str]:
        return list(self._names)

    def get_field_data_types(self) -> List[str]:
        return list(self._types)

    def get_field_count(self) -> int:
        return len(self._names)

    def __str__(self) -> str:
        return "root\n" + "".join(f" |-- {n}: {t}\n" for n, t in zip(self._names, self._types))


class Table:
    def __init__(self, native: Any, env: "TableEnvironment") -> None:
        self._native = native
        self._env = env
        self._view: Optional[str] = None

    # -- plumbing --
    def _name(self) -> str:
        if self._view is None:
            self._view = self._env._hidden_view(self)
        return self._view

    def _ctx(self, windows: Any = None) -> RenderContext:
        return RenderContext(self._env, windows)

    def _query(self, sql: str) -> "Table":
        return self._env.sql_query(sql)

    def _columns(self) -> List[str]:
        return [n for n, _ in self._native.schema()]

    # -- inspection --
    def get_schema(self) -> TableSchema:
        s = self._native.schema()
        return TableSchema([n for n, _ in s], [t for _, t in s])

    get_resolved_schema = get_schema

    def print_schema(self) -> None:
        print(self._native.schema_text())

    def explain(self, *extra_details: Any) -> str:
        return self._native.explain()

    def __str__(self) -> str:
        return f"Table({', '.join(self._columns())})"

    # -- relational operations --
    def select(self, *fields: Any) -> "Table":
        exprs = render_list(fields, self._ctx())
        return self._query(f"SELECT {', '.join(exprs)} FROM {self._name()}")

    def filter(self, predicate: Any) -> "Table":
        p = _to_expr(predicate)._render(self._ctx())
        return self._query(f"SELECT * FROM {self._name()} WHERE {p}")

    where = filter

    def add_columns(self, *fields: Any) -> "Table":
        exprs = render_list(fields, self._ctx())
        return self._query(f"SELECT *, {', '.join(exprs)} FROM {self._name()}")

    def add_or_replace_columns(self, *fields: Any) -> "Table":
        ctx = self._ctx()
        new = {}
        for f in fields:
            e = _to_expr(f)
            name = e._output_name()
            if name is None:
                raise ValueError("add_or_replace_columns needs named expressions: use .alias(name)")
            new[name] = e._render(ctx)
        out = []
        for c in self._columns():
            out.append(new.pop(c) if c in new else quote_name(c))
        out.extend(new.values())
        return self._query(f"SELECT {', '.join(out)} FROM {self._name()}")

    def drop_columns(self, *fields: Any) -> "Table":
        drop = set()
        for f in fields:
            e = _to_expr(f)
            name = e._output_name() if isinstance(e, _Column) else (f if isinstance(f, str) else None)
            if name is None:
                raise ValueError("drop_columns takes columns: col('a')")
            drop.add(name)
        unknown = drop - set(self._columns())
        if unknown:
            raise ValueError(f"no column {sorted(unknown)} to drop in {self}")
        keep = [quote_name(c) for c in self._columns() if c not in drop]
        return self._query(f"SELECT {', '.join(keep)} FROM {self._name()}")

    def rename_columns(self, *fields: Any) -> "Table":
        renames = {}
        for f in fields:
            e = _to_expr(f)
            inner = getattr(e, "inner", None)
            if not isinstance(inner, _Column):
                raise ValueError("rename_columns takes col('old').alias('new')")
            renames[inner.name] = e._output_name()
        cols = [
            f"{quote_name(c)} AS {quote_name(renames[c])}" if c in renames else quote_name(c)
            for c in self._columns()
        ]
        return self._query(f"SELECT {', '.join(cols)} FROM {self._name()}")

    def alias(self, field: str, *fields: str) -> "Table":
        names = [field, *fields]
        cols = self._columns()
        if len(names) != len(cols):
            raise ValueError(f"{len(names)} names for {len(cols)} columns")
        sel = [f"{quote_name(c)} AS {quote_name(n)}" for c, n in zip(cols, names)]
        return self._query(f"SELECT {', '.join(sel)} FROM {self._name()}")

    def group_by(self, *fields: Any) -> "GroupedTable":
        return GroupedTable(self, fields)

    def window(self, window: GroupWindow) -> "GroupWindowedTable":
        return GroupWindowedTable(self, window)

    def distinct(self) -> "Table":
        return self._query(f"SELECT DISTINCT * FROM {self._name()}")

    def join(self, right: "Table", join_predicate: Any = None) -> Any:
        """``join(right, cond)``, or ``join(right).where(cond)`` as in PyFlink."""
        if join_predicate is None:
            return PendingJoin(self, right)
        return self._join("JOIN", right, join_predicate)

    def left_outer_join(self, right: "Table", join_predicate: Any = None) -> "Table":
        if join_predicate is None:
            raise ValueError("left_outer_join needs a join predicate")
        return self._join("LEFT JOIN", right, join_predicate)

    def _join(self, how: str, right: "Table", predicate: Any) -> "Table":
        p = _to_expr(predicate)._render(self._ctx())
        return self._query(f"SELECT * FROM {self._name()} {how} {right._name()} ON {p}")

    def union_all(self, right: "Table") -> "Table":
        return self._query(f"SELECT * FROM {self._name()} UNION ALL SELECT * FROM {right._name()}")

    def union(self, right: "Table") -> "Table":
        return self._query(f"SELECT * FROM {self._name()} UNION SELECT * FROM {right._name()}")

    def order_by(self, *fields: Any) -> "Table":
        keys = render_list(fields, self._ctx())
        return self._query(f"SELECT * FROM {self._name()} ORDER BY {', '.join(keys)}")

    def limit(self, fetch: int, offset: int = 0) -> "Table":
        off = f" OFFSET {int(offset)}" if offset else ""
        return self._query(f"SELECT * FROM {self._name()} LIMIT {int(fetch)}{off}")

    def fetch(self, fetch: int) -> "Table":
        return self.limit(fetch)

    def offset(self, offset: int) -> "Table":
        return self._query(f"SELECT * FROM {self._name()} LIMIT {2**62} OFFSET {int(offset)}")

    # -- running --
    def execute(self) -> TableResult:
        """Runs the query; ``collect()`` on the result yields its rows as they come."""
        job = self._env._execute_collect(self)
        s = self._native.schema()
        return TableResult(
            job=job,
            names=[n for n, _ in s],
            types=[t for _, t in s],
            streaming=self._env._native.is_streaming(),
            collects=True,
        )

    def execute_insert(self, table_path: str, overwrite: bool = False) -> TableResult:
        """Runs ``INSERT INTO table_path`` with this table's rows."""
        return TableResult(job=self._env._execute_insert(self, table_path), kind=ResultKind.SUCCESS)

    def to_pandas(self) -> Any:
        """The final rows as a pandas DataFrame (updates applied: only inserted rows stay)."""
        import pandas as pd  # type: ignore[import-not-found]

        s = self._native.schema()
        names = [n for n, _ in s]
        rows: List[tuple] = []
        with self.execute().collect() as it:
            for r in it:
                k = r.get_row_kind().value
                if k in (0, 2):
                    rows.append(tuple(r))
                else:
                    rows.remove(tuple(r))
        return pd.DataFrame.from_records(rows, columns=names)


class PendingJoin:
    """``left.join(right)`` before its ``where(cond)``: weir runs joins with a condition, so
    anything else on it is an error rather than a silent cross product."""

    def __init__(self, left: Table, right: Table) -> None:
        self._left = left
        self._right = right

    def where(self, predicate: Any) -> Table:
        return self._left._join("JOIN", self._right, predicate)

    filter = where

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"a join needs its condition first: left.join(right).where(cond) or "
            f"left.join(right, cond), then .{name}(...)"
        )


class GroupedTable:
    def __init__(self, table: Table, keys: Sequence[Any], windows: Any = None) -> None:
        self._table = table
        self._keys = list(keys)
        self._windows = windows or {}

    def select(self, *fields: Any) -> Table:
        t = self._table
        ctx = t._ctx(self._windows)
        exprs = render_list(fields, ctx)
        keys = render_list(self._keys, ctx)
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        return t._query(f"SELECT {', '.join(exprs)} FROM {t._name()}{group}")

    def aggregate(self, *args: Any) -> Any:
        raise NotImplementedError("aggregate() with UDAFs is not supported yet; use select()")


class GroupWindowedTable:
    def __init__(self, table: Table, window: GroupWindow) -> None:
        self._table = table
        self._window = window

    def group_by(self, *fields: Any) -> GroupedTable:
        bound = self._window.bind(self._table._ctx())
        alias = self._window._alias
        keys = list(fields)
        names = [k._output_name() if isinstance(k, Expression) else k for k in keys]
        if alias not in names:
            raise ValueError(f"group_by of a window must include the window alias col('{alias}')")
        return GroupedTable(self._table, keys, {alias: bound})


__all__ = ["Table", "GroupedTable", "GroupWindowedTable", "TableSchema"]
