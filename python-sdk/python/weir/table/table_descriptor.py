"""Tables described in Python rather than DDL, as in PyFlink: ``Schema``, ``TableDescriptor``
and ``FormatDescriptor``.

A descriptor is written out as the Flink DDL it stands for (``str(descriptor)`` shows it) and
the engine plans that statement, so a descriptor and the same ``CREATE TABLE`` text give the
same table and the same errors."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from weir.table.types import DataType, RowType, type_text


def _ident(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a column or table name must be a non-empty string, not {name!r}")
    return "`" + name.replace("`", "``") + "`"


def _string(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _expr_text(expr: Any, what: str) -> str:
    """SQL text of an expression given as text (as PyFlink users mostly do) or a literal."""
    if isinstance(expr, str):
        return expr
    from weir.table.expression import _Raw

    if isinstance(expr, _Raw):
        return expr.sql
    raise TypeError(
        f"{what}: give the expression as SQL text (e.g. \"ts - INTERVAL '5' SECOND\" or "
        f"call_sql('...')), not {type(expr).__name__}"
    )


class Schema:
    """The columns of a table: physical, computed and metadata columns, a watermark and a
    primary key (``Schema.new_builder().column('a', DataTypes.INT()).build()``)."""

    def __init__(
        self,
        columns: List[Tuple[str, str, str]],
        watermarks: List[Tuple[str, str]],
        primary_key: Optional[Tuple[Optional[str], List[str]]],
    ) -> None:
        # (name, kind, text): kind "physical" (text = type), "computed" (text = expression) or
        # "metadata" (text = the whole definition after the name).
        self._columns = columns
        self._watermarks = watermarks
        self._primary_key = primary_key

    @staticmethod
    def new_builder() -> "Schema.Builder":
        return Schema.Builder()

    def _ddl_items(self) -> List[str]:
        items = []
        for name, kind, text in self._columns:
            if kind == "computed":
                items.append(f"{_ident(name)} AS {text}")
            else:
                items.append(f"{_ident(name)} {text}")
        for column, expr in self._watermarks:
            items.append(f"WATERMARK FOR {_ident(column)} AS {expr}")
        if self._primary_key is not None:
            constraint, cols = self._primary_key
            named = f"CONSTRAINT {_ident(constraint)} " if constraint else ""
            items.append(f"{named}PRIMARY KEY ({', '.join(map(_ident, cols))}) NOT ENFORCED")
        return items

    def __str__(self) -> str:
        return "(\n  " + ",\n  ".join(self._ddl_items()) + "\n)"

    def __repr__(self) -> str:
        return str(self)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Schema) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    class Builder:
        def __init__(self) -> None:
            self._columns: List[Tuple[str, str, str]] = []
            self._watermarks: List[Tuple[str, str]] = []
            self._primary_key: Optional[Tuple[Optional[str], List[str]]] = None

        def _add(self, name: str, kind: str, text: str) -> "Schema.Builder":
            if any(n == name for n, _, _ in self._columns):
                raise ValueError(f"Schema: column `{name}` is defined twice")
            self._columns.append((name, kind, text))
            return self

        def from_schema(self, unresolved_schema: "Schema") -> "Schema.Builder":
            for c in unresolved_schema._columns:
                self._add(*c)
            self._watermarks.extend(unresolved_schema._watermarks)
            if unresolved_schema._primary_key is not None:
                self._primary_key = unresolved_schema._primary_key
            return self

        def from_row_data_type(self, data_type: RowType) -> "Schema.Builder":
            if not isinstance(data_type, RowType):
                raise TypeError(f"from_row_data_type takes a DataTypes.ROW(...), not {type(data_type).__name__}")
            return self.from_fields(data_type.field_names(), data_type.field_types())

        def from_fields(self, field_names: Sequence[str], field_data_types: Sequence[Union[DataType, str]]) -> "Schema.Builder":
            if len(field_names) != len(field_data_types):
                raise ValueError(f"from_fields: {len(field_names)} names for {len(field_data_types)} types")
            for n, t in zip(field_names, field_data_types):
                self.column(n, t)
            return self

        def column(self, column_name: str, data_type: Union[DataType, str]) -> "Schema.Builder":
            return self._add(column_name, "physical", type_text(data_type))

        def column_by_expression(self, column_name: str, expr: Any) -> "Schema.Builder":
            return self._add(column_name, "computed", _expr_text(expr, f"column_by_expression({column_name!r})"))

        def column_by_metadata(
            self,
            column_name: str,
            data_type: Union[DataType, str],
            metadata_key: Optional[str] = None,
            is_virtual: bool = False,
        ) -> "Schema.Builder":
            text = f"{type_text(data_type)} METADATA"
            if metadata_key is not None:
                text += f" FROM {_string(metadata_key)}"
            if is_virtual:
                text += " VIRTUAL"
            return self._add(column_name, "metadata", text)

        def watermark(self, column_name: str, watermark_expr: Any) -> "Schema.Builder":
            if self._watermarks:
                raise ValueError("Schema: a table has at most one watermark")
            self._watermarks.append((column_name, _expr_text(watermark_expr, f"watermark({column_name!r})")))
            return self

        def primary_key(self, *column_names: str) -> "Schema.Builder":
            return self.primary_key_named(None, *column_names)

        def primary_key_named(self, constraint_name: Optional[str], *column_names: str) -> "Schema.Builder":
            if self._primary_key is not None:
                raise ValueError("Schema: the primary key is defined twice")
            if not column_names:
                raise ValueError("Schema: a primary key needs at least one column")
            self._primary_key = (constraint_name, list(column_names))
            return self

        def build(self) -> "Schema":
            return Schema(list(self._columns), list(self._watermarks), self._primary_key)


class FormatDescriptor:
    """A format and its options (``FormatDescriptor.for_format('csv').option('field-delimiter',
    ';').build()``); its option keys are given without the format's prefix."""

    def __init__(self, format: str, options: Dict[str, str]) -> None:
        self._format = format
        self._options = options

    @staticmethod
    def for_format(format: str) -> "FormatDescriptor.Builder":
        if not isinstance(format, str) or not format:
            raise ValueError(f"for_format takes a format name, not {format!r}")
        return FormatDescriptor.Builder(format)

    def get_format(self) -> str:
        return self._format

    def get_options(self) -> Dict[str, str]:
        return dict(self._options)

    def __str__(self) -> str:
        opts = ", ".join(f"{_string(k)} = {_string(v)}" for k, v in self._options.items())
        return f"{self._format}[{opts}]"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, FormatDescriptor) and (self._format, self._options) == (other._format, other._options)

    def __hash__(self) -> int:
        return hash(self._format)

    class Builder:
        def __init__(self, format: str) -> None:
            self._format = format
            self._options: Dict[str, str] = {}

        def option(self, key: Any, value: Any) -> "FormatDescriptor.Builder":
            self._options[str(key)] = _option_value(value)
            return self

        def build(self) -> "FormatDescriptor":
            return FormatDescriptor(self._format, dict(self._options))


def _option_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class TableDescriptor:
    """A table: connector, schema, options, format, partition keys and comment
    (``TableDescriptor.for_connector('print').schema(schema).build()``)."""

    def __init__(
        self,
        connector: str,
        schema: Optional[Schema],
        options: Dict[str, str],
        partition_keys: List[str],
        comment: Optional[str],
    ) -> None:
        self._connector = connector
        self._schema = schema
        self._options = options
        self._partition_keys = partition_keys
        self._comment = comment

    @staticmethod
    def for_connector(connector: str) -> "TableDescriptor.Builder":
        if not isinstance(connector, str) or not connector:
            raise ValueError(f"for_connector takes a connector name, not {connector!r}")
        return TableDescriptor.Builder(connector)

    def get_schema(self) -> Optional[Schema]:
        return self._schema

    def get_options(self) -> Dict[str, str]:
        return {"connector": self._connector, **self._options}

    def get_partition_keys(self) -> List[str]:
        return list(self._partition_keys)

    def get_comment(self) -> Optional[str]:
        return self._comment

    def _ddl(self, path: str, temporary: bool, if_not_exists: bool = False) -> str:
        if self._schema is None:
            raise ValueError(
                f"table `{path}`: the descriptor has no schema; weir does not read schemas from "
                f"connectors, give one with .schema(Schema.new_builder()...build())"
            )
        head = f"CREATE {'TEMPORARY ' if temporary else ''}TABLE {'IF NOT EXISTS ' if if_not_exists else ''}{_ident(path)}"
        return head + " " + self._body()

    def _body(self) -> str:
        assert self._schema is not None
        text = str(self._schema)
        if self._comment is not None:
            text += f"\nCOMMENT {_string(self._comment)}"
        if self._partition_keys:
            text += f"\nPARTITIONED BY ({', '.join(map(_ident, self._partition_keys))})"
        opts = ",\n  ".join(f"{_string(k)} = {_string(v)}" for k, v in self.get_options().items())
        return text + f"\nWITH (\n  {opts}\n)"

    def __str__(self) -> str:
        if self._schema is None:
            return f"TableDescriptor({self.get_options()})"
        return self._body()

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TableDescriptor) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    class Builder:
        def __init__(self, connector: str) -> None:
            self._connector = connector
            self._schema: Optional[Schema] = None
            self._options: Dict[str, str] = {}
            self._partition_keys: List[str] = []
            self._comment: Optional[str] = None

        def schema(self, schema: Schema) -> "TableDescriptor.Builder":
            if not isinstance(schema, Schema):
                raise TypeError(f"schema() takes a Schema (Schema.new_builder()...build()), not {type(schema).__name__}")
            self._schema = schema
            return self

        def option(self, key: Any, value: Any) -> "TableDescriptor.Builder":
            key = str(key)
            if key == "connector":
                raise ValueError("the connector is given to for_connector(), not as an option")
            self._options[key] = _option_value(value)
            return self

        def format(self, format: Union[str, FormatDescriptor], format_option: Any = None) -> "TableDescriptor.Builder":
            """The format (a name or a ``FormatDescriptor``), under the option ``format`` or
            ``format_option`` (e.g. ``key.format``); a descriptor's options get the format's
            prefix (``csv.field-delimiter``, ``key.json.ignore-parse-errors``)."""
            key = "format" if format_option is None else str(format_option)
            descriptor = FormatDescriptor(format, {}) if isinstance(format, str) else format
            if not isinstance(descriptor, FormatDescriptor):
                raise TypeError(f"format() takes a format name or a FormatDescriptor, not {type(format).__name__}")
            self._options[key] = descriptor.get_format()
            prefix = key[: -len("format")] if key.endswith("format") else ""
            for k, v in descriptor.get_options().items():
                self._options[f"{prefix}{descriptor.get_format()}.{k}"] = v
            return self

        def partitioned_by(self, *partition_keys: str) -> "TableDescriptor.Builder":
            self._partition_keys = list(partition_keys)
            return self

        def comment(self, comment: str) -> "TableDescriptor.Builder":
            self._comment = comment
            return self

        def build(self) -> "TableDescriptor":
            return TableDescriptor(
                self._connector, self._schema, dict(self._options), list(self._partition_keys), self._comment
            )


__all__ = ["Schema", "TableDescriptor", "FormatDescriptor"]
