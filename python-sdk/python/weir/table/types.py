"""``DataTypes``: column and result types, written as weir's (Flink's) type names."""

from __future__ import annotations

from typing import List, Optional, Sequence, Union


class DataType:
    """A type; ``str(t)`` is its SQL name, e.g. ``DECIMAL(10, 2)``."""

    def __init__(self, sql: str, nullable: bool = True) -> None:
        self._sql = sql
        self._nullable = nullable

    def not_null(self) -> "DataType":
        return DataType(self._sql, False)

    def nullable(self) -> "DataType":
        return DataType(self._sql, True)

    def __str__(self) -> str:
        return self._sql if self._nullable else f"{self._sql} NOT NULL"

    def __repr__(self) -> str:
        return f"DataTypes({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataType) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class DataField:
    def __init__(self, name: str, data_type: DataType, description: Optional[str] = None):
        self.name = name
        self.data_type = data_type
        self.description = description


class RowType(DataType):
    def __init__(self, fields: Sequence[DataField], nullable: bool = True) -> None:
        self.fields = list(fields)
        inner = ", ".join(f"{f.name} {f.data_type}" for f in self.fields)
        super().__init__(f"ROW<{inner}>", nullable)

    def field_names(self) -> List[str]:
        return [f.name for f in self.fields]

    def field_types(self) -> List[DataType]:
        return [f.data_type for f in self.fields]


class DataTypes:
    """Type constructors named as in PyFlink."""

    @staticmethod
    def BOOLEAN(nullable: bool = True) -> DataType:
        return DataType("BOOLEAN", nullable)

    @staticmethod
    def TINYINT(nullable: bool = True) -> DataType:
        return DataType("TINYINT", nullable)

    @staticmethod
    def SMALLINT(nullable: bool = True) -> DataType:
        return DataType("SMALLINT", nullable)

    @staticmethod
    def INT(nullable: bool = True) -> DataType:
        return DataType("INT", nullable)

    @staticmethod
    def BIGINT(nullable: bool = True) -> DataType:
        return DataType("BIGINT", nullable)

    @staticmethod
    def FLOAT(nullable: bool = True) -> DataType:
        return DataType("FLOAT", nullable)

    @staticmethod
    def DOUBLE(nullable: bool = True) -> DataType:
        return DataType("DOUBLE", nullable)

    @staticmethod
    def DECIMAL(precision: int = 10, scale: int = 0, nullable: bool = True) -> DataType:
        return DataType(f"DECIMAL({precision}, {scale})", nullable)

    @staticmethod
    def STRING(nullable: bool = True) -> DataType:
        return DataType("STRING", nullable)

    @staticmethod
    def VARCHAR(length: int = 2147483647, nullable: bool = True) -> DataType:
        return DataType("STRING", nullable)

    @staticmethod
    def CHAR(length: int = 1, nullable: bool = True) -> DataType:
        return DataType("STRING", nullable)

    @staticmethod
    def BYTES(nullable: bool = True) -> DataType:
        return DataType("BYTES", nullable)

    @staticmethod
    def DATE(nullable: bool = True) -> DataType:
        return DataType("DATE", nullable)

    @staticmethod
    def TIME(precision: int = 0, nullable: bool = True) -> DataType:
        return DataType(f"TIME({precision})", nullable)

    @staticmethod
    def TIMESTAMP(precision: int = 6, nullable: bool = True) -> DataType:
        return DataType(f"TIMESTAMP({precision})", nullable)

    @staticmethod
    def TIMESTAMP_LTZ(precision: int = 6, nullable: bool = True) -> DataType:
        return DataType(f"TIMESTAMP_LTZ({precision})", nullable)

    @staticmethod
    def ARRAY(element_type: DataType, nullable: bool = True) -> DataType:
        return DataType(f"ARRAY<{element_type}>", nullable)

    @staticmethod
    def MAP(key_type: DataType, value_type: DataType, nullable: bool = True) -> DataType:
        return DataType(f"MAP<{key_type}, {value_type}>", nullable)

    @staticmethod
    def FIELD(name: str, data_type: DataType, description: Optional[str] = None) -> DataField:
        return DataField(name, data_type, description)

    @staticmethod
    def ROW(row_fields: Sequence[DataField] = (), nullable: bool = True) -> RowType:
        return RowType(row_fields, nullable)


def type_text(t: Union[DataType, str]) -> str:
    """The type name weir parses, from a ``DataType`` or a type string."""
    if isinstance(t, DataType):
        return str(t)
    if isinstance(t, str):
        return t
    raise TypeError(f"a type must be a DataTypes value or a type string, not {type(t).__name__}")


__all__ = ["DataTypes", "DataType", "RowType", "DataField"]
