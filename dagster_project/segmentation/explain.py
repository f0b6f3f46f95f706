"""What every assigned row carries (DESIGN.md "Segments"): reason codes, the inputs the rules
read, a confidence, the scheme version and the as-of date, in one shape for every assignment."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping

import pandas as pd


def inputs_json(values: Mapping[str, object]) -> str:
    """The inputs a rule read, as canonical JSON (sorted keys, rounded floats): a rerun with the
    same inputs writes the same text, so diffs between runs show real changes only."""
    clean: dict[str, object] = {}
    for key in sorted(values):
        value = values[key]
        if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
            clean[key] = None
        elif isinstance(value, pd.Timestamp):
            clean[key] = value.date().isoformat()
        elif isinstance(value, float):
            clean[key] = round(value, 6)
        elif hasattr(value, "item"):  # numpy scalars
            item = value.item()
            clean[key] = round(item, 6) if isinstance(item, float) else item
        elif isinstance(value, dt.date):
            clean[key] = value.isoformat()
        else:
            clean[key] = value
    return json.dumps(clean, sort_keys=True, default=str)


def reason_text(codes: Iterable[str]) -> str:
    """Reason codes as one ';'-separated string (stable order: as the rules list them)."""
    return ";".join(codes)


def stamp(frame: pd.DataFrame, scheme_version: str, as_of: dt.date | None) -> pd.DataFrame:
    """Add the scheme version and the as-of date every assignment row carries."""
    frame = frame.copy()
    frame["scheme_version"] = scheme_version
    frame["as_of"] = pd.Timestamp(as_of).date() if as_of is not None else None
    return frame
