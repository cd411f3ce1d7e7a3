"""Rows, row kinds and configuration, as in ``pyflink.common``."""

from __future__ import annotations

from enum import Enum
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple


class RowKind(Enum):
    """The change a row makes in a changelog (``+I``, ``-U``, ``+U``, ``-D``)."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    def short_string(self) -> str:
        return ("+I", "-U", "+U", "-D")[self.value]

    def __str__(self) -> str:
        return self.short_string()


class Row(list):
    """A row: positional (``Row(1, 'a')``) or named (``Row(id=1, name='a')``).

    Fields are read and written by index (``row[0]``), by name (``row['id']``, ``row.id``), as
    in PyFlink, where an aggregate function's accumulator is often a ``Row`` it updates in
    place (``acc[0] += v``). The row kind is ``row.get_row_kind()``. A row equals a row with
    the same values (and kind and names) and, for convenience, a tuple of the same values.
    """

    _fields: Optional[Tuple[str, ...]]
    _row_kind: RowKind

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise TypeError("Row takes positional or keyword values, not both")
        if kwargs:
            list.__init__(self, kwargs.values())
            self._fields = tuple(kwargs.keys())
        else:
            list.__init__(self, args)
            self._fields = None
        self._row_kind = RowKind.INSERT

    @classmethod
    def _make(cls, names: Optional[Sequence[str]], values: Iterable[Any], kind: int = 0) -> "Row":
        row = cls.__new__(cls)
        list.__init__(row, values)
        row._fields = tuple(names) if names is not None else None
        row._row_kind = RowKind(kind)
        return row

    def __call__(self, *args: Any) -> "Row":
        """``Row('id', 'name')(1, 'a')`` makes a named row, as in PyFlink."""
        return Row._make(tuple(self), args)

    def get_row_kind(self) -> RowKind:
        return self._row_kind

    def set_row_kind(self, kind: RowKind) -> None:
        self._row_kind = kind

    def get_fields_by_names(self, names: Iterable[str]) -> List[Any]:
        return [self[n] for n in names]

    def set_field_names(self, names: Sequence[str]) -> None:
        if len(names) != len(self):
            raise ValueError(f"{len(names)} names for {len(self)} fields")
        self._fields = tuple(names)

    def as_dict(self, recursive: bool = False) -> Dict[str, Any]:
        if self._fields is None:
            raise TypeError("this row has no field names")

        def conv(v: Any) -> Any:
            if recursive and isinstance(v, Row) and v._fields is not None:
                return v.as_dict(True)
            return v

        return {k: conv(v) for k, v in zip(self._fields, self)}

    def _index(self, name: str) -> int:
        if self._fields is not None and name in self._fields:
            return self._fields.index(name)
        raise KeyError(name)

    def __getitem__(self, item: Any) -> Any:  # type: ignore[override]
        if isinstance(item, str):
            return list.__getitem__(self, self._index(item))
        return list.__getitem__(self, item)

    def __setitem__(self, key: Any, value: Any) -> None:  # type: ignore[override]
        if isinstance(key, str):
            key = self._index(key)
        list.__setitem__(self, key, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        fields = self.__dict__.get("_fields")
        if fields is not None and name in fields:
            return list.__getitem__(self, fields.index(name))
        raise AttributeError(f"Row has no field {name!r}")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return (
                list.__eq__(self, other)
                and self._row_kind == other._row_kind
                and (self._fields is None or other._fields is None or self._fields == other._fields)
            )
        if isinstance(other, tuple):
            return tuple(self) == other
        return list.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __repr__(self) -> str:
        if self._fields is not None:
            inner = ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self))
        else:
            inner = ", ".join(repr(v) for v in self)
        return f"<Row({inner})>"

    def __reduce__(self) -> Any:
        return (Row._make, (self._fields, list(self), self._row_kind.value))


class Configuration:
    """String keys and values (``pyflink.common.Configuration``)."""

    def __init__(self, other: Optional["Configuration"] = None) -> None:
        self._data: Dict[str, str] = dict(other._data) if other is not None else {}

    def set_string(self, key: str, value: str) -> "Configuration":
        self._data[key] = str(value)
        return self

    def get_string(self, key: str, default_value: str) -> str:
        return self._data.get(key, default_value)

    def set_integer(self, key: str, value: int) -> "Configuration":
        return self.set_string(key, str(int(value)))

    def get_integer(self, key: str, default_value: int) -> int:
        v = self._data.get(key)
        return int(v) if v is not None else default_value

    def set_boolean(self, key: str, value: bool) -> "Configuration":
        return self.set_string(key, "true" if value else "false")

    def get_boolean(self, key: str, default_value: bool) -> bool:
        v = self._data.get(key)
        return v.lower() == "true" if v is not None else default_value

    def set_float(self, key: str, value: float) -> "Configuration":
        return self.set_string(key, repr(float(value)))

    def get_float(self, key: str, default_value: float) -> float:
        v = self.get_string(key, None)  # type: ignore[arg-type]
        return float(v) if v is not None else default_value

    def set(self, key: str, value: Any) -> "Configuration":
        """Any value, written as Flink writes it (``true``/``false`` for booleans)."""
        if isinstance(value, bool):
            return self.set_boolean(key, value)
        return self.set_string(key, str(value))

    def remove_config(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def add_all(self, other: "Configuration", prefix: str = "") -> "Configuration":
        for k, v in other:
            self.set_string(prefix + k, v)
        return self

    def contains_key(self, key: str) -> bool:
        return key in self._data

    def key_set(self) -> List[str]:
        return list(self._data)

    def to_dict(self) -> Dict[str, str]:
        return dict(self._data)

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._data.items())


from weir.common.time import Duration, Instant, Time  # noqa: E402
from weir.common.typeinfo import Types, TypeInformation  # noqa: E402

__all__ = ["Row", "RowKind", "Configuration", "Duration", "Instant", "Time", "Types", "TypeInformation"]
