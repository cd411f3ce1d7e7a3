"""Type information, as in ``pyflink.common.typeinfo``: the DataStream API's names for types.

weir has no DataStream API; these exist so that programs importing them run, and each converts
to the Table API type it stands for (``Types.INT().to_data_type()`` is ``DataTypes.INT()``)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence


class TypeInformation:
    def __init__(self, name: str, data_type: Any = None, args: Sequence["TypeInformation"] = ()) -> None:
        self._name = name
        self._data_type = data_type
        self._args = list(args)

    def to_data_type(self) -> Any:
        """The Table API type of this type information."""
        if self._data_type is None:
            raise TypeError(f"Types.{self._name}() has no Table API type in weir")
        return self._data_type() if callable(self._data_type) else self._data_type

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TypeInformation) and (self._name, self._args) == (other._name, other._args)

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self._args))
        return f"{self._name}({inner})" if self._args else self._name


def _dt(name: str) -> Any:
    def make() -> Any:
        from weir.table.types import DataTypes

        return getattr(DataTypes, name)()

    return make


class RowTypeInfo(TypeInformation):
    def __init__(self, types: Sequence[TypeInformation], names: Optional[Sequence[str]] = None) -> None:
        self._names = list(names) if names is not None else [f"f{i}" for i in range(len(types))]
        super().__init__("ROW", None, types)

    def get_field_names(self) -> List[str]:
        return list(self._names)

    def get_field_types(self) -> List[TypeInformation]:
        return list(self._args)

    def to_data_type(self) -> Any:
        from weir.table.types import DataTypes

        return DataTypes.ROW([DataTypes.FIELD(n, t.to_data_type()) for n, t in zip(self._names, self._args)])


class Types:
    """Constructors named as in PyFlink."""

    @staticmethod
    def STRING() -> TypeInformation:
        return TypeInformation("STRING", _dt("STRING"))

    @staticmethod
    def BYTE() -> TypeInformation:
        return TypeInformation("BYTE", _dt("TINYINT"))

    @staticmethod
    def BOOLEAN() -> TypeInformation:
        return TypeInformation("BOOLEAN", _dt("BOOLEAN"))

    @staticmethod
    def SHORT() -> TypeInformation:
        return TypeInformation("SHORT", _dt("SMALLINT"))

    @staticmethod
    def INT() -> TypeInformation:
        return TypeInformation("INT", _dt("INT"))

    @staticmethod
    def LONG() -> TypeInformation:
        return TypeInformation("LONG", _dt("BIGINT"))

    @staticmethod
    def FLOAT() -> TypeInformation:
        return TypeInformation("FLOAT", _dt("FLOAT"))

    @staticmethod
    def DOUBLE() -> TypeInformation:
        return TypeInformation("DOUBLE", _dt("DOUBLE"))

    @staticmethod
    def BIG_DEC() -> TypeInformation:
        return TypeInformation("BIG_DEC", lambda: __import__("weir.table.types", fromlist=["DataTypes"]).DataTypes.DECIMAL(38, 18))

    @staticmethod
    def SQL_DATE() -> TypeInformation:
        return TypeInformation("SQL_DATE", _dt("DATE"))

    @staticmethod
    def SQL_TIME() -> TypeInformation:
        return TypeInformation("SQL_TIME", _dt("TIME"))

    @staticmethod
    def SQL_TIMESTAMP() -> TypeInformation:
        return TypeInformation("SQL_TIMESTAMP", lambda: __import__("weir.table.types", fromlist=["DataTypes"]).DataTypes.TIMESTAMP(3))

    @staticmethod
    def INSTANT() -> TypeInformation:
        return TypeInformation("INSTANT", lambda: __import__("weir.table.types", fromlist=["DataTypes"]).DataTypes.TIMESTAMP_LTZ(3))

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        return TypeInformation("PICKLED_BYTE_ARRAY", _dt("BYTES"))

    @staticmethod
    def ROW(field_types: Sequence[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types)

    @staticmethod
    def ROW_NAMED(field_names: Sequence[str], field_types: Sequence[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types, field_names)

    @staticmethod
    def BASIC_ARRAY(element_type: TypeInformation) -> TypeInformation:
        return TypeInformation("BASIC_ARRAY", lambda: _array(element_type), [element_type])

    PRIMITIVE_ARRAY = BASIC_ARRAY
    OBJECT_ARRAY = BASIC_ARRAY

    @staticmethod
    def LIST(element_type: TypeInformation) -> TypeInformation:
        return TypeInformation("LIST", lambda: _array(element_type), [element_type])

    @staticmethod
    def MAP(key_type: TypeInformation, value_type: TypeInformation) -> TypeInformation:
        def make() -> Any:
            from weir.table.types import DataTypes

            return DataTypes.MAP(key_type.to_data_type(), value_type.to_data_type())

        return TypeInformation("MAP", make, [key_type, value_type])


def _array(element_type: TypeInformation) -> Any:
    from weir.table.types import DataTypes

    return DataTypes.ARRAY(element_type.to_data_type())


__all__ = ["Types", "TypeInformation", "RowTypeInfo"]
