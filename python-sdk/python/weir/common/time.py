"""Durations and instants, as in ``pyflink.common.time`` (plain Python: no JVM objects)."""

from __future__ import annotations

from typing import Any


class Duration:
    """A length of time in nanoseconds (``Duration.of_seconds(5)``)."""

    def __init__(self, nanos: int) -> None:
        self._nanos = int(nanos)

    @staticmethod
    def of_days(days: int) -> "Duration":
        return Duration(int(days) * 86_400_000_000_000)

    @staticmethod
    def of_hours(hours: int) -> "Duration":
        return Duration(int(hours) * 3_600_000_000_000)

    @staticmethod
    def of_minutes(minutes: int) -> "Duration":
        return Duration(int(minutes) * 60_000_000_000)

    @staticmethod
    def of_seconds(seconds: int) -> "Duration":
        return Duration(int(seconds) * 1_000_000_000)

    @staticmethod
    def of_millis(millis: int) -> "Duration":
        return Duration(int(millis) * 1_000_000)

    @staticmethod
    def of_nanos(nanos: int) -> "Duration":
        return Duration(nanos)

    def to_millis(self) -> int:
        return self._nanos // 1_000_000

    def to_nanos(self) -> int:
        return self._nanos

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Duration) and self._nanos == other._nanos

    def __hash__(self) -> int:
        return hash(self._nanos)

    def __repr__(self) -> str:
        return f"Duration({self._nanos} ns)"


class Instant:
    """A point on the time line: seconds and nanoseconds since the epoch, UTC."""

    def __init__(self, seconds: int, nanos: int) -> None:
        self.seconds = int(seconds)
        self.nanos = int(nanos)

    def to_epoch_milli(self) -> int:
        return self.seconds * 1000 + self.nanos // 1_000_000

    @staticmethod
    def of_epoch_milli(epoch_milli: int) -> "Instant":
        s, ms = divmod(int(epoch_milli), 1000)
        return Instant(s, ms * 1_000_000)

    def to_datetime(self) -> Any:
        """The instant as a timezone-aware ``datetime`` in UTC (how weir reads it in a table)."""
        import datetime

        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return epoch + datetime.timedelta(seconds=self.seconds, microseconds=self.nanos // 1000)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Instant) and (self.seconds, self.nanos) == (other.seconds, other.nanos)

    def __hash__(self) -> int:
        return hash((self.seconds, self.nanos))

    def __repr__(self) -> str:
        return f"Instant<{self.seconds}, {self.nanos}>"


class Time:
    """A length of time in milliseconds (Flink's older ``Time``; ``Duration`` replaces it)."""

    def __init__(self, milliseconds: int) -> None:
        self._ms = int(milliseconds)

    def to_milliseconds(self) -> int:
        return self._ms

    @staticmethod
    def milliseconds(milliseconds: int) -> "Time":
        return Time(milliseconds)

    @staticmethod
    def seconds(seconds: int) -> "Time":
        return Time(int(seconds) * 1000)

    @staticmethod
    def minutes(minutes: int) -> "Time":
        return Time(int(minutes) * 60_000)

    @staticmethod
    def hours(hours: int) -> "Time":
        return Time(int(hours) * 3_600_000)

    @staticmethod
    def days(days: int) -> "Time":
        return Time(int(days) * 86_400_000)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Time) and self._ms == other._ms

    def __hash__(self) -> int:
        return hash(self._ms)

    def __str__(self) -> str:
        return f"{self._ms} ms"


__all__ = ["Duration", "Instant", "Time"]
