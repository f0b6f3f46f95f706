"""What every assigned row carries (DESIGN.md "Segments"): reason codes, the inputs the rules
read, a confidence, the scheme version and the as-of date, in one shape for every assignment."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd


def _plain(value: object) -> object:
    """A value as inputs_json writes it: missing -> None, floats rounded, dates as ISO text."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float):
        return round(value, 6)
    if hasattr(value, "item"):  # numpy scalars
        item = value.item()
        return round(item, 6) if isinstance(item, float) else item
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def inputs_json(values: Mapping[str, object]) -> str:
    """The inputs a rule read, as canonical JSON (sorted keys, rounded floats): a rerun with the
    same inputs writes the same text, so diffs between runs show real changes only."""
    return json.dumps({key: _plain(values[key]) for key in sorted(values)}, sort_keys=True,
                      default=str)


def _json_float(value: float) -> str:
    return "null" if value != value else repr(value) if np.isfinite(value) else json.dumps(value)


def _json_values(column: Sequence | np.ndarray | pd.Series) -> np.ndarray:
    """Each value of a column as the JSON text inputs_json writes for it (object array)."""
    values = column if isinstance(column, pd.Series) else pd.Series(list(column), dtype=(
        column.dtype if isinstance(column, np.ndarray) else object))
    if pd.api.types.is_bool_dtype(values.dtype):
        texts = ["null" if pd.isna(v) else "true" if v else "false" for v in values.tolist()]
    elif pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(dtype=float, na_value=np.nan).round(6)
        texts = [_json_float(f) for f in floats.tolist()]
    elif pd.api.types.is_integer_dtype(values.dtype):
        texts = ["null" if pd.isna(v) else str(int(v)) for v in values.tolist()]
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        days = values.dt.strftime("%Y-%m-%d")
        texts = ["null" if pd.isna(d) else f'"{d}"' for d in days.tolist()]
    else:
        texts = [json_text(v) if isinstance(v, str) else
                 json.dumps(_plain(v), sort_keys=True, default=str) for v in values.tolist()]
    return np.array(texts, dtype=object)


def json_text(text: str) -> str:
    return json.encoder.encode_basestring_ascii(text)


def inputs_json_rows(columns: Mapping[str, Sequence | np.ndarray | pd.Series]) -> list[str]:
    """inputs_json of many rows at once, from equally long columns: the same text per row, built
    column by column (customer tables have 100,000s of rows; a dict per row is too slow)."""
    rows: np.ndarray | None = None
    for i, key in enumerate(sorted(columns)):
        prefix = ("{" if i == 0 else ", ") + json_text(key) + ": "
        part = prefix + _json_values(columns[key])
        rows = part if rows is None else rows + part
    return [] if rows is None else (rows + "}").tolist()


def reason_text(codes: Iterable[str]) -> str:
    """Reason codes as one ';'-separated string (stable order: as the rules list them)."""
    return ";".join(codes)


def stamp(frame: pd.DataFrame, scheme_version: str, as_of: dt.date | None) -> pd.DataFrame:
    """Add the scheme version and the as-of date every assignment row carries."""
    frame = frame.copy()
    frame["scheme_version"] = scheme_version
    frame["as_of"] = pd.Timestamp(as_of).date() if as_of is not None else None
    return frame
