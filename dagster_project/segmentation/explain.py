"""What every assigned row carries (DESIGN.md "Segments"): reason codes, the inputs the rules
read, a confidence, the scheme version and the as-of date, in one shape for every assignment."""

from __future__ import annotations

import datetime as dt
import itertools
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
    return json.dumps(
        {key: _plain(values[key]) for key in sorted(values)}, sort_keys=True, default=str
    )


def _json_values(column: Sequence | np.ndarray | pd.Series) -> np.ndarray:
    """Each value of a column as the JSON text inputs_json writes for it (object array)."""
    values = (
        column
        if isinstance(column, pd.Series)
        else pd.Series(
            list(column), dtype=(column.dtype if isinstance(column, np.ndarray) else object)
        )
    )
    # Whole columns at once where the type allows it (a Python call per value is the cost).
    if pd.api.types.is_bool_dtype(values.dtype):
        flags = values.to_numpy(dtype=bool, na_value=False)
        texts = np.where(flags, "true", "false").astype(object)
        texts[values.isna().to_numpy()] = "null"
        return texts
    elif pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(dtype=float, na_value=np.nan).round(6)
        # each distinct value written once; told apart by their bits, so -0.0 stays "-0.0"
        codes, distinct = pd.factorize(floats.view(np.int64))
        texts = np.array(list(map(repr, distinct.view(np.float64).tolist())), dtype=object)[codes]
        texts[np.isnan(floats)] = "null"
        texts[np.isposinf(floats)] = "Infinity"
        texts[np.isneginf(floats)] = "-Infinity"
        return texts
    elif pd.api.types.is_integer_dtype(values.dtype):
        texts = values.to_numpy(dtype="int64", na_value=0).astype(str).astype(object)
        texts[values.isna().to_numpy()] = "null"
        return texts
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        days = values.dt.strftime("%Y-%m-%d")
        texts = ["null" if pd.isna(d) else f'"{d}"' for d in days.tolist()]
    else:
        # each distinct text encoded once (labels and profiles repeat over 100,000s of rows)
        encoded: dict[str, str] = {}
        texts = [
            (encoded.get(v) or encoded.setdefault(v, json_text(v)))
            if isinstance(v, str)
            else _json_object(v)
            for v in values.tolist()
        ]
    return np.array(texts, dtype=object)


def _json_object(value: object) -> str:
    """json.dumps(_plain(value)), with the common shapes (missing, a list of texts, a date)
    written directly: json.dumps per value is the cost at 100,000s of rows."""
    if value is None:
        return "null"
    if type(value) is list and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(map(json_text, value)) + "]"
    if type(value) is dt.date:
        return '"' + value.isoformat() + '"'
    return json.dumps(_plain(value), sort_keys=True, default=str)


def json_text(text: str) -> str:
    return json.encoder.encode_basestring_ascii(text)


def json_number(value: float) -> str:
    """A float as json.dumps writes it (NaN and infinities included)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def inputs_json_rows(columns: Mapping[str, Sequence | np.ndarray | pd.Series]) -> list[str]:
    """inputs_json of many rows at once, from equally long columns: the same text per row, built
    column by column (customer tables have 100,000s of rows; a dict per row is too slow)."""
    return json_object_rows({key: _json_values(values) for key, values in columns.items()})


def json_object_rows(encoded: Mapping[str, Sequence[str] | np.ndarray]) -> list[str]:
    """Per row the JSON object of `encoded` (key -> each row's value, already JSON text), keys
    sorted and separated as json.dumps(sort_keys=True) writes them."""
    keys = sorted(encoded)
    if not keys:
        return []
    n = len(encoded[keys[0]])
    # one join per row of (key text, value, key text, value, ..., "}"): no format string to
    # parse per row, and each row's text is allocated once (rows run to kilobytes)
    pieces: list[Iterable[str]] = []
    for position, key in enumerate(keys):
        pieces.append(itertools.repeat(("{" if position == 0 else ", ") + json_text(key) + ": ", n))
        pieces.append(encoded[key])
    pieces.append(itertools.repeat("}", n))
    return list(map("".join, zip(*pieces, strict=True)))


def join_where(
    pieces: Iterable[tuple[np.ndarray, str | np.ndarray]], n: int, separator: str = ";"
) -> np.ndarray:
    """Per row the pieces whose mask is true, in the order given, joined by `separator` (an
    object array of n texts): reason codes and lists of many rows without a loop per row."""
    pieces = [(np.asarray(mask, dtype=bool), piece) for mask, piece in pieces]
    if all(isinstance(piece, str) for _, piece in pieces) and len(pieces) < 63:
        # fixed texts: rows that have the same pieces share one text, built once
        pattern = np.zeros(n, dtype=np.int64)
        for bit, (mask, _) in enumerate(pieces):
            pattern |= mask.astype(np.int64) << bit
        patterns, row_pattern = np.unique(pattern, return_inverse=True)
        texts = np.array(
            [
                separator.join(piece for bit, (_, piece) in enumerate(pieces) if int(p) >> bit & 1)
                for p in patterns.tolist()
            ]
            or [""],
            dtype=object,
        )
        return texts[row_pattern.reshape(-1)] if n else np.array([], dtype=object)
    columns = [
        np.where(mask, np.asarray(piece, dtype=object), None).tolist() for mask, piece in pieces
    ]
    return np.array(
        [separator.join([v for v in row if v is not None]) for row in zip(*columns, strict=True)]
        if columns
        else [""] * n,
        dtype=object,
    )


def stamp(frame: pd.DataFrame, scheme_version: str, as_of: dt.date | None) -> pd.DataFrame:
    """Add the scheme version and the as-of date every assignment row carries."""
    frame = frame.copy()
    frame["scheme_version"] = scheme_version
    frame["as_of"] = pd.Timestamp(as_of).date() if as_of is not None else None
    return frame
