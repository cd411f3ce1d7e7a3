"""``TableResult``: what ``execute()``/``execute_sql()`` return."""

from __future__ import annotations

import datetime
import decimal
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
        """Prints the rows as a table, with the change kind (``op``) in streaming mode."""
        rows = list(self.collect())
        show_op = self._streaming and self._collects
        header = (["op"] if show_op else []) + self._names
        cells = [
            ([r.get_row_kind().short_string()] if show_op else []) + [_cell(v) for v in r]
            for r in rows
        ]
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        print(line)
        print("|" + "|".join(f" {h:>{w}} " for h, w in zip(header, widths)) + "|")
        print(line)
        for c in cells:
            print("|" + "|".join(f" {v:>{w}} " for v, w in zip(c, widths)) + "|")
        print(line)
        print(f"{len(rows)} row{'s' if len(rows) != 1 else ''} in set")


def _cell(v: Any) -> str:
    if v is None:
        return "<NULL>"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, datetime.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, (decimal.Decimal, datetime.date, datetime.time)):
        return str(v)
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
