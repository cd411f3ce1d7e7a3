"""The Table API, named as in ``pyflink.table``."""

from weir.table.explain_detail import ExplainDetail
from weir.table.expression import (
    Expression,
    JsonExistsOnError,
    JsonOnNull,
    JsonQueryOnEmptyOrError,
    JsonQueryWrapper,
    JsonValueOnEmptyOrError,
)
from weir.table.table_descriptor import FormatDescriptor, Schema, TableDescriptor
from weir.table.table import GroupedTable, GroupWindowedTable, Table, TableSchema
from weir.table.table_environment import (
    EnvironmentSettings,
    StatementSet,
    StreamTableEnvironment,
    TableConfig,
    TableEnvironment,
)
from weir.table.table_result import ResultKind, TableResult
from weir.table.types import DataType, DataTypes
from weir.table.udf import (
    AggregateFunction,
    FunctionContext,
    ScalarFunction,
    TableAggregateFunction,
    TableFunction,
    udaf,
    udf,
    udtaf,
    udtf,
)
from weir.common import Row, RowKind

__all__ = [
    "ExplainDetail",
    "JsonExistsOnError",
    "JsonOnNull",
    "JsonQueryOnEmptyOrError",
    "JsonQueryWrapper",
    "JsonValueOnEmptyOrError",
    "Schema",
    "TableDescriptor",
    "FormatDescriptor",
    "EnvironmentSettings",
    "TableEnvironment",
    "StreamTableEnvironment",
    "TableConfig",
    "StatementSet",
    "Table",
    "GroupedTable",
    "GroupWindowedTable",
    "TableSchema",
    "TableResult",
    "ResultKind",
    "DataTypes",
    "DataType",
    "Expression",
    "ScalarFunction",
    "FunctionContext",
    "udf",
    "udtf",
    "udaf",
    "udtaf",
    "TableFunction",
    "AggregateFunction",
    "TableAggregateFunction",
    "Row",
    "RowKind",
]
