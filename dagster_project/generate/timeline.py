"""The calendar of a generated dataset: history window, extract times, picklist go-live dates.

Days are int64 day numbers since 1970-01-01 and times are int64 seconds since 1970-01-01 in
the writer's local clock (the UTC offset is added when rendering), which keeps date arithmetic
vectorised. The landing folder holds a full first extract and two monthly incrementals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

DAY = 86_400
EXTRACT_HOUR = 23  # extracts run in the evening: everything dated that day is in them


def day_number(value: date) -> int:
    return int(np.datetime64(value, "D").astype(np.int64))


def _month_end_like(end: date, months_back: int) -> int:
    month = np.datetime64(end, "M") - months_back
    last_day = (month + 1).astype("datetime64[D]") - 1
    wanted = month.astype("datetime64[D]") + (end.day - 1)
    return int(min(wanted, last_day).astype(np.int64))


@dataclass(frozen=True)
class Timeline:
    start_day: int  # first day of the history
    end_day: int  # last day (data-through date)
    extract_days: tuple[int, ...]  # full, incremental 1, incremental 2 (ascending)
    go_live_day: int  # new segmentation picklists (scheme version 1)
    scheme_v2_day: int  # scheme version 2 (the added sub-segment)

    @classmethod
    def build(cls, end: date, years: int, go_live_years: float, v2_years: float) -> Timeline:
        end_day = day_number(end)
        if (end.month, end.day) == (12, 31):  # whole calendar years
            start_day = day_number(date(end.year - years + 1, 1, 1))
        else:
            start_day = end_day - int(round(365.25 * years)) + 1
        extracts = tuple(_month_end_like(end, k) for k in (2, 1, 0))
        return cls(
            start_day=start_day,
            end_day=end_day,
            extract_days=extracts,
            go_live_day=end_day - int(round(365.25 * go_live_years)),
            scheme_v2_day=end_day - int(round(365.25 * v2_years)),
        )

    @property
    def extract_seconds(self) -> np.ndarray:
        return np.array(self.extract_days, dtype=np.int64) * DAY + EXTRACT_HOUR * 3600

    @property
    def years(self) -> float:
        return (self.end_day - self.start_day + 1) / 365.25

    def stamp(self, k: int) -> str:
        """The extract's file-name timestamp, YYYYMMDDTHHMMSS."""
        day = np.datetime64(self.extract_days[k], "D").astype(str).replace("-", "")
        return f"{day}T{EXTRACT_HOUR:02d}0000"

    def extract_of_day(self, days: np.ndarray) -> np.ndarray:
        """Index of the first extract that contains an event on each day (len(extracts) = none)."""
        return np.searchsorted(np.array(self.extract_days), days, side="left")

    def extract_of_second(self, seconds: np.ndarray) -> np.ndarray:
        """Index of the first extract that contains an event at each time."""
        return np.searchsorted(self.extract_seconds, seconds, side="left")
