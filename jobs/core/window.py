"""The date window: a half-open interval of days, the unit of every idempotent write."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from jobs.core.errors import BadInputError


@dataclass(frozen=True)
class Window:
    """A half-open date interval ``[start, end)``, the unit of every idempotent write."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise BadInputError(f"the window's end {self.end} must be after its start {self.start}")

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        try:
            return cls(date.fromisoformat(start[:10]), date.fromisoformat(end[:10]))
        except ValueError as exc:
            raise BadInputError(f"bad date window [{start}, {end}): {exc}") from None

    def __iter__(self) -> Iterator[date]:
        day = self.start
        while day < self.end:
            yield day
            day += timedelta(days=1)

    def __len__(self) -> int:
        return (self.end - self.start).days

    def __str__(self) -> str:
        return f"[{self.start}, {self.end})"
