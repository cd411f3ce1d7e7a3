"""The exceptions weir raises, with the names PyFlink programs catch
(``pyflink.util.exceptions``).

Every class also derives from the Python built-in weir raised before these existed, so
``except ValueError`` and ``except RuntimeError`` keep working:

=============================  =====================  ==========================================
class                          also a                 raised for
=============================  =====================  ==========================================
``JavaException``              ``Exception``          base of all below (PyFlink's base name)
``ValidationException``        ``ValueError``         a plan that cannot be valid: unknown column,
                                                      table or function, type mismatch, bad option
``SqlParseException``          ``ValidationException``  SQL text that does not parse
``TableNotExistException``     ``ValidationException``  a table or view that is not registered
``TableAlreadyExistException`` ``ValidationException``  ``CREATE`` of a name that is taken
``TableException``             ``RuntimeError``       a job that failed while running, or an
                                                      error of the engine itself
=============================  =====================  ==========================================
"""

from __future__ import annotations


class JavaException(Exception):
    """Base of weir's table exceptions (PyFlink's name for the same role)."""


class ValidationException(JavaException, ValueError):
    """A query, expression or table definition that cannot be planned."""


class SqlParseException(ValidationException):
    """SQL text that does not parse."""


class TableNotExistException(ValidationException):
    """A table or view that is not registered."""


class TableAlreadyExistException(ValidationException):
    """A table or view created under a name that is already registered."""


class TableException(JavaException, RuntimeError):
    """A job that failed while running, or another error during table handling."""


__all__ = [
    "JavaException",
    "ValidationException",
    "SqlParseException",
    "TableNotExistException",
    "TableAlreadyExistException",
    "TableException",
]
