"""``Table``: a relational expression built with Table API calls. Each operation is a call on
the engine's native plan (``weir._native.Table``), with expressions built as native engine
expressions: the Table API and SQL share one planner without any SQL text in between.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from weir.table.expression import (
    BuildContext,
    Expression,
    _Column,
    _Func,
    _Literal,
    build_list,
    build_one,
    split_alias,
)
from weir.table.table_result import ResultKind, TableResult
from weir.table.window import GroupWindow

if TYPE_CHECKING:  # pragma: no cover
    from weir.table.table_environment import TableEnvironment

_unnamed_ids = itertools.count()


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
        self._sql_name: Optional[str] = None

    # -- plumbing --
    def _ctx(self, window_alias: Optional[str] = None) -> BuildContext:
        return BuildContext(self._env, self._native, window_alias)

    def _with(self, native: Any) -> "Table":
        return Table(native, self._env)

    def _build(self, fields: Sequence[Any]) -> List[Any]:
        return build_list(fields, self._ctx())

    def _one(self, e: Any) -> Any:
        return build_one(e, self._ctx())

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
        from weir.table.explain_detail import explain_with

        return explain_with(self._native.explain(), extra_details)

    def __str__(self) -> str:
        """The table's name for SQL, as in PyFlink: ``f"SELECT * FROM {table}"`` works. The
        first call registers it as a temporary view ``UnnamedTable$N``."""
        if self._sql_name is None:
            self._sql_name = f"UnnamedTable${next(_unnamed_ids)}"
            self._env._native.create_temporary_view(self._sql_name, self._native)
        return self._sql_name

    def __repr__(self) -> str:
        return f"Table({', '.join(self._columns())})"

    def __getattr__(self, name: str) -> Expression:
        """``table.a`` is the column ``a``, as in PyFlink."""
        if name.startswith("_"):
            raise AttributeError(name)
        columns = self._columns()
        if name in columns:
            return _Column(name)
        raise AttributeError(f"Table has no column or attribute {name!r}; its columns are {', '.join(columns)}")

    # -- relational operations --
    def select(self, *fields: Any) -> "Table":
        return self._with(self._native.select(self._build(fields)))

    def filter(self, predicate: Any) -> "Table":
        from weir.table.expression import _InTable

        if isinstance(predicate, _InTable):
            return self._with(self._native.where_in(self._one(predicate.key), predicate.table._native))
        return self._with(self._native.filter(self._one(predicate)))

    where = filter

    def add_columns(self, *fields: Any) -> "Table":
        return self._with(self._native.add_columns(self._build(fields)))

    def add_or_replace_columns(self, *fields: Any) -> "Table":
        built = self._build(fields)
        for e in built:
            if e.output_name() is None:
                raise ValueError("add_or_replace_columns needs named expressions: use .alias(name)")
        return self._with(self._native.add_or_replace_columns(built))

    def drop_columns(self, *fields: Any) -> "Table":
        names = []
        for e in self._build(fields):
            name = e.column_name()
            if name is None:
                raise ValueError(f"drop_columns takes columns: col('a'), not {e}")
            names.append(name)
        return self._with(self._native.drop_columns(names))

    def rename_columns(self, *fields: Any) -> "Table":
        renames = []
        for e in self._build(fields):
            pair = e.renamed_column()
            if pair is None:
                raise ValueError(f"rename_columns takes col('old').alias('new'), not {e}")
            renames.append(pair)
        return self._with(self._native.rename_columns(renames))

    def alias(self, field: str, *fields: str) -> "Table":
        names = [field, *fields]
        cols = self._columns()
        if len(names) != len(cols):
            raise ValueError(f"{len(names)} names for {len(cols)} columns")
        return self.select(*[_Column(c).alias(n) for c, n in zip(cols, names)])

    def group_by(self, *fields: Any) -> "GroupedTable":
        return GroupedTable(self, fields)

    def over_window(self, *over_windows: Any) -> "OverWindowedTable":
        """OVER windows (``Over.partition_by(..).order_by(..).preceding(..).alias('w')``); one per
        select, as Flink allows."""
        if len(over_windows) != 1:
            raise ValueError("over_window takes one OVER window (weir and Flink compute one per select)")
        return OverWindowedTable(self, over_windows[0])

    def window(self, window: GroupWindow) -> "GroupWindowedTable":
        return GroupWindowedTable(self, window)

    def distinct(self) -> "Table":
        return self._with(self._native.distinct())

    def join(self, right: "Table", join_predicate: Any = None) -> Any:
        """``join(right, cond)``, or ``join(right).where(cond)`` as in PyFlink."""
        if join_predicate is None:
            return PendingJoin(self, right)
        return self._join(right, join_predicate, "inner")

    def left_outer_join(self, right: "Table", join_predicate: Any = None) -> "Table":
        """Every row of this table, with the matching rows of ``right`` or NULLs."""
        if join_predicate is None:
            raise ValueError("left_outer_join needs a join predicate")
        return self._join(right, join_predicate, "left")

    def right_outer_join(self, right: "Table", join_predicate: Any) -> "Table":
        """Every row of ``right``, with the matching rows of this table or NULLs."""
        return self._join(right, join_predicate, "right")

    def full_outer_join(self, right: "Table", join_predicate: Any) -> "Table":
        """Every row of both tables, joined where they match, with NULLs where not."""
        return self._join(right, join_predicate, "full")

    def _join(self, right: "Table", predicate: Any, kind: str) -> "Table":
        # The condition sees the columns of both sides.
        both = self._native.join_scope(right._native)
        cond = build_one(predicate, BuildContext(self._env, both))
        return self._with(self._native.join(right._native, cond, kind))

    # -- user-defined functions over whole rows --
    def _whole_row(self, f: Any) -> Any:
        """A UDF object given without arguments is called with the whole row (a ``Row``)."""
        from weir.table.udf import (
            UserDefinedAggregateFunctionWrapper,
            UserDefinedScalarFunctionWrapper,
            UserDefinedTableAggregateFunctionWrapper,
            UserDefinedTableFunctionWrapper,
        )

        e, names = split_alias(f)
        wrappers = (
            UserDefinedScalarFunctionWrapper,
            UserDefinedTableFunctionWrapper,
            UserDefinedAggregateFunctionWrapper,
            UserDefinedTableAggregateFunctionWrapper,
        )
        if isinstance(e, wrappers):
            e = e(_Func("ROW", [_Column(c) for c in self._columns()]))
        return e, names

    def join_lateral(self, table_function_call: Any, join_predicate: Any = None) -> "Table":
        """Each row joined with the rows the table function yields for it (rows it yields
        nothing for are dropped); ``f(x).alias('a', 'b')`` names its columns."""
        call, names = self._whole_row(table_function_call)
        t = self._with(self._native.join_lateral(self._one(call), names, False))
        return t if join_predicate is None else t.filter(join_predicate)

    def left_outer_join_lateral(self, table_function_call: Any, join_predicate: Any = None) -> "Table":
        """As ``join_lateral``, but a row the table function yields nothing for is kept, with
        NULLs in the function's columns."""
        if join_predicate is not None and not (isinstance(join_predicate, _Literal) and join_predicate.value is True):
            raise ValueError("left_outer_join_lateral takes no join predicate but lit(True); filter the result instead")
        call, names = self._whole_row(table_function_call)
        return self._with(self._native.join_lateral(self._one(call), names, True))

    def map(self, func: Any) -> "Table":
        """The scalar function's result per row; a ROW result becomes one column per field.
        A UDF given without arguments gets the whole row as a ``Row``."""
        call, names = self._whole_row(func)
        return self._with(self._native.map(self._one(call), names))

    def flat_map(self, func: Any) -> "Table":
        """The rows the table function yields per row (only its columns). A UDTF given
        without arguments gets the whole row as a ``Row``."""
        call, names = self._whole_row(func)
        return self._with(self._native.flat_map(self._one(call), names))

    def aggregate(self, func: Any) -> "AggregatedTable":
        """One aggregate function over the whole table; ``select`` its fields next."""
        return AggregatedTable(self, [], func)

    def flat_aggregate(self, func: Any) -> "FlatAggregateTable":
        """The rows one table aggregate function (``udtaf``) emits over the whole table;
        ``select`` from them next."""
        return FlatAggregateTable(self, [], func)

    def union_all(self, right: "Table") -> "Table":
        return self._with(self._native.union_all(right._native))

    def union(self, right: "Table") -> "Table":
        return self._with(self._native.union_all(right._native).distinct())

    def intersect(self, right: "Table") -> "Table":
        """The distinct rows that are in both tables."""
        return self._with(self._native.intersect(right._native))

    def minus(self, right: "Table") -> "Table":
        """The distinct rows of this table that are not in ``right``."""
        return self._with(self._native.minus(right._native))

    def intersect_all(self, right: "Table") -> "Table":
        """The rows in both tables, each as often as in the table that has it fewer times."""
        return self._with(self._native.intersect_all(right._native))

    def minus_all(self, right: "Table") -> "Table":
        """The rows of this table, each as many times more often as it is here than in
        ``right`` (a row twice here and once there is kept once)."""
        return self._with(self._native.minus_all(right._native))

    def order_by(self, *fields: Any) -> "Table":
        return self._with(self._native.order_by(self._build(fields)))

    def limit(self, fetch: int, offset: int = 0) -> "Table":
        if int(fetch) < 0 or int(offset) < 0:
            raise ValueError(f"limit({fetch}, {offset}): fetch and offset cannot be negative")
        return self._with(self._native.limit(int(fetch), int(offset)))

    def fetch(self, fetch: int) -> "Table":
        return self.limit(fetch)

    def offset(self, offset: int) -> "Table":
        if int(offset) < 0:
            raise ValueError(f"offset({offset}) cannot be negative")
        return self._with(self._native.limit(2**62, int(offset)))

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

    def execute_insert(self, table_path_or_descriptor: Any, overwrite: bool = False) -> TableResult:
        """Runs ``INSERT INTO`` the table at that path, or into the table a
        ``TableDescriptor`` describes, with this table's rows."""
        path = self._env._sink_path(table_path_or_descriptor)
        return TableResult(job=self._env._execute_insert(self, path), kind=ResultKind.SUCCESS)

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
        return self._left._join(self._right, predicate, "inner")

    filter = where

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"a join needs its condition first: left.join(right).where(cond) or "
            f"left.join(right, cond), then .{name}(...)"
        )


class GroupedTable:
    def __init__(self, table: Table, keys: Sequence[Any], window: Optional[GroupWindow] = None) -> None:
        self._table = table
        self._keys = list(keys)
        self._window = window

    def select(self, *fields: Any) -> Table:
        t = self._table
        alias = self._window._alias if self._window is not None else None
        ctx = t._ctx(alias)
        keys, exprs = build_list(self._keys, ctx), build_list(fields, ctx)
        spec = self._window._native_spec(ctx) if self._window is not None else None
        return t._with(t._native.group_by_select(keys, exprs, spec))

    def aggregate(self, func: Any) -> "AggregatedTable":
        """One aggregate function per group (``f(x).alias('a', 'b')`` names the fields of a
        ROW result); ``select`` from the keys and its fields next."""
        return AggregatedTable(self._table, self._keys, func, self._window)

    def flat_aggregate(self, func: Any) -> "FlatAggregateTable":
        """The keys and the rows the table aggregate function (``udtaf``) emits per group
        (``f(x).alias('a', 'b')`` names them); ``select`` from them next. In streaming mode a
        group's earlier rows are retracted when it emits again."""
        if self._window is not None:
            raise ValueError("flat_aggregate over a group window is not supported (as in PyFlink)")
        return FlatAggregateTable(self._table, self._keys, func)


class AggregatedTable:
    """The result of ``aggregate(f)``, waiting for ``select``: the grouping keys, then the
    aggregate's result (a ROW flattened into its fields)."""

    def __init__(self, table: Table, keys: Sequence[Any], func: Any, window: Optional[GroupWindow] = None) -> None:
        t = table
        alias = window._alias if window is not None else None
        ctx = t._ctx(alias)
        call, names = t._whole_row(func)
        keys_built = build_list(list(keys), ctx)
        spec = window._native_spec(ctx) if window is not None else None
        self._table = t._with(t._native.group_by_aggregate(keys_built, build_one(call, ctx), names, spec))

    def select(self, *fields: Any) -> Table:
        return self._table.select(*fields)


class FlatAggregateTable:
    """The result of ``flat_aggregate(f)``, waiting for ``select``: the grouping keys, then
    the columns of the rows the function emits."""

    def __init__(self, table: Table, keys: Sequence[Any], func: Any) -> None:
        t = table
        ctx = t._ctx(None)
        call, names = t._whole_row(func)
        keys_built = build_list(list(keys), ctx)
        self._table = t._with(t._native.group_by_flat_aggregate(keys_built, build_one(call, ctx), names))

    def select(self, *fields: Any) -> Table:
        return self._table.select(*fields)


class OverWindowedTable:
    """A table with an OVER window, waiting for ``select``."""

    def __init__(self, table: Table, window: Any) -> None:
        self._table = table
        self._window = window

    def select(self, *fields: Any) -> Table:
        t = self._table
        ctx = t._ctx(None)
        partition, order, rows, preceding = self._window._native_spec(ctx)
        exprs = build_list(fields, ctx)
        return t._with(t._native.over_select(partition, order, rows, preceding, exprs))


class GroupWindowedTable:
    def __init__(self, table: Table, window: GroupWindow) -> None:
        self._table = table
        self._window = window

    def group_by(self, *fields: Any) -> GroupedTable:
        self._window._check()
        return GroupedTable(self._table, fields, self._window)


__all__ = ["Table", "GroupedTable", "GroupWindowedTable", "OverWindowedTable", "AggregatedTable", "FlatAggregateTable", "TableSchema"]
