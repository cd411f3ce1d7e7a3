"""``TableResult``: what ``execute()``/``execute_sql()`` return."""

from __future__ import annotations

import datetime
import decimal
import re
import unicodedata
from enum import Enum
from typing import Any, List, Optional, Sequence, Tuple

from weir.common import Row, RowKind


class ResultKind(Enum):
    SUCCESS = 0
    SUCCESS_WITH_CONTENT = 1


class JobClient:
    """The handle of a running job."""

    def __init__(self, job: Any) -> None:
        self._job = job

    def get_job_id(self) -> str:
        return self._job.job_name

    def cancel(self) -> None:
        self._job.cancel()

    def get_job_status(self) -> str:
        return "FINISHED" if self._job.is_done() else "RUNNING"

    def wait(self, timeout: Optional[float] = None) -> Optional[dict]:
        return self._job.wait(timeout)


class CloseableIterator:
    """Rows of a result as they arrive; ``close()`` (or leaving a ``with``) cancels the job."""

    def __init__(self, job: Any, names: Sequence[str]) -> None:
        self._job = job
        self._names = tuple(names)
        self._buffer: List[Tuple[int, tuple]] = []
        self._pos = 0
        self._ended = False

    def __iter__(self) -> "CloseableIterator":
        return self

    def __next__(self) -> Row:
        while self._pos >= len(self._buffer):
            if self._ended:
                raise StopIteration
            got = self._job.next_rows(200)
            if got is None:
                self._ended = True
                raise StopIteration
            self._buffer, self._pos = got, 0
        kind, values = self._buffer[self._pos]
        self._pos += 1
        return Row._make(self._names, values, kind)

    def close(self) -> None:
        if not self._ended:
            self._job.cancel()
            self._ended = True

    def __enter__(self) -> "CloseableIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TableResult:
    """The result of a statement: a message, text rows, or a running job."""

    def __init__(
        self,
        job: Any = None,
        names: Sequence[str] = ("result",),
        types: Sequence[str] = ("STRING",),
        rows: Optional[List[tuple]] = None,
        streaming: bool = True,
        collects: bool = False,
        kind: "ResultKind" = ResultKind.SUCCESS_WITH_CONTENT,
    ) -> None:
        self._job = job
        self._names = list(names)
        self._types = list(types)
        self._rows = rows
        self._streaming = streaming
        self._collects = collects
        self._consumed = False
        self._kind = kind

    def get_job_client(self) -> Optional[JobClient]:
        return JobClient(self._job) if self._job is not None else None

    def get_result_kind(self) -> ResultKind:
        return self._kind

    def get_table_schema(self) -> "Any":
        from weir.table.table import TableSchema

        return TableSchema(self._names, self._types)

    def wait(self, timeout_ms: Optional[int] = None) -> None:
        """Waits for the job to end; raises its error if it failed."""
        if self._job is None:
            return
        if self._collects:
            # Nobody reads the rows: let them go while waiting.
            for _ in self.collect():
                pass
            return
        self._job.wait(None if timeout_ms is None else timeout_ms / 1000)

    def collect(self) -> CloseableIterator:
        """The result rows (with their ``RowKind``) as they come."""
        if self._rows is not None:
            return _ListIterator([Row._make(self._names, r) for r in self._rows])  # type: ignore[return-value]
        if self._job is None or not self._collects:
            return _ListIterator([Row._make(self._names, ("OK",))])  # type: ignore[return-value]
        if self._consumed:
            raise RuntimeError("the rows of this result have been read already")
        self._consumed = True
        return CloseableIterator(self._job, self._names)

    def print(self) -> None:
        """Prints the rows as Flink does: a boxed table whose column widths come from the
        types (strings and other wide values cut at 30 characters with ``...``), with the change
        kind (``op``) in streaming mode; rows are printed as they come, so an unbounded query
        prints until it is cancelled."""
        show_op = self._streaming and self._collects
        header = (["op"] if show_op else []) + self._names
        widths = ([2] if show_op else []) + [
            max(len(n), _type_width(t), len(NULL_TEXT)) for n, t in zip(self._names, self._types)
        ]
        precisions = [_fraction_digits(t) for t in self._types]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

        def row_text(cells: List[str]) -> str:
            return "|" + "|".join(f" {_fit(c, w)} " for c, w in zip(cells, widths)) + "|"

        count = 0
        with self.collect() as rows:
            for r in rows:
                if count == 0:
                    print(line)
                    print(row_text(header))
                    print(line)
                cells = [_cell(v, p) for v, p in zip(r, precisions)]
                if show_op:
                    cells.insert(0, r.get_row_kind().short_string())
                print(row_text(cells), flush=True)
                count += 1
        if count == 0:
            print("Empty set")
            return
        print(line)
        print(f"{count} row{'s' if count != 1 else ''} in set")


NULL_TEXT = "<NULL>"
MAX_COLUMN_WIDTH = 30


def _type_width(t: str) -> int:
    """A column's width for its type, as Flink's tableau printing derives it."""
    u = t.upper().replace(" NOT NULL", "").strip()
    fixed = {"TINYINT": 4, "SMALLINT": 6, "INT": 11, "INTEGER": 11, "BIGINT": 20, "BOOLEAN": 5, "DATE": 10}
    if u in fixed:
        return fixed[u]
    m = re.match(r"^DECIMAL\((\d+)", u)
    if m:
        return int(m.group(1)) + 2
    m = re.match(r"^TIME(?:\((\d+)\))?$", u)
    if m:
        p = int(m.group(1) or 0)
        return 8 if p == 0 else p + 9
    m = re.match(r"^TIMESTAMP(?:_LTZ)?(?:\((\d+)\))?", u)
    if m:
        p = int(m.group(1) if m.group(1) is not None else 6)
        return 19 if p == 0 else 23 if p <= 3 else 26 if p <= 6 else 29
    return MAX_COLUMN_WIDTH


def _fraction_digits(t: str) -> Optional[int]:
    """For a TIMESTAMP or TIME column, the fractional digits Flink prints (its precision)."""
    m = re.match(r"^(TIMESTAMP(?:_LTZ)?|TIME)(?:\((\d+)\))?", t.upper())
    if not m:
        return None
    if m.group(2) is not None:
        return int(m.group(2))
    return 0 if m.group(1) == "TIME" else 6


def _fit(text: str, width: int) -> str:
    """Right-aligned in `width`, or cut with ``...`` (East Asian wide characters count 2)."""
    shown = _display_width(text)
    if shown <= width:
        return " " * (width - shown) + text
    target = width - 3
    out, used = [], 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if used + w > target:
            break
        out.append(ch)
        used += w
    return " " * (target - used) + "".join(out) + "..."


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _java_double(v: float) -> str:
    """A float as Java's Double.toString writes it (``1.0E7``, ``1.5``, ``NaN``)."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    a = abs(v)
    if a == 0 or 1e-3 <= a < 1e7:
        s = repr(v)
        if "e" in s:  # repr's exponent form for values Java writes plainly
            s = format(decimal.Decimal(s), "f")
        return s if "." in s else s + ".0"
    sign, digits, exp = decimal.Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    e = len(digits) - 1 + int(exp)
    return f"{'-' if sign else ''}{ds[0]}.{ds[1:] or '0'}E{e}"


def _cell(v: Any, fraction: Optional[int] = None, nested: bool = False) -> str:
    if v is None:
        return "null" if nested else NULL_TEXT
    if isinstance(v, bool):
        return ("true" if v else "false") if nested else ("TRUE" if v else "FALSE")
    if isinstance(v, float):
        return _java_double(v)
    if isinstance(v, datetime.datetime):
        text = v.strftime("%Y-%m-%d %H:%M:%S")
        digits = 6 if fraction is None else fraction
        if digits > 0:
            text += "." + f"{v.microsecond:06d}{'0' * 3}"[:digits]
        return text
    if isinstance(v, datetime.time):
        text = v.strftime("%H:%M:%S")
        if fraction:
            text += "." + f"{v.microsecond:06d}000"[:fraction]
        return text
    if isinstance(v, (decimal.Decimal, datetime.date)):
        return str(v)
    if isinstance(v, Row):
        return f"{v.get_row_kind().short_string()}[{', '.join(_cell(x, nested=True) for x in v)}]"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_cell(x, nested=True) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_cell(k, nested=True)}={_cell(x, nested=True)}" for k, x in v.items()) + "}"
    if isinstance(v, (bytes, bytearray)):
        return "x'" + bytes(v).hex() + "'"
    return str(v)


class _ListIterator:
    def __init__(self, rows: List[Row]) -> None:
        self._it = iter(rows)

    def __iter__(self) -> "_ListIterator":
        return self

    def __next__(self) -> Row:
        return next(self._it)

    def close(self) -> None:
        pass

    def __enter__(self) -> "_ListIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


__all__ = ["TableResult", "ResultKind", "JobClient", "CloseableIterator", "RowKind"]
