"""Which version of a record each extract carries (full first load, then incrementals).

A record exists from its creation; events (an update, a status change, a payment) change it.
The full extract holds every record that exists at its time, in its state then; an
incremental extract holds the records created or changed since the previous extract, in
their newer state. Times are day numbers or second counts, consistently with the boundaries.
"""

from __future__ import annotations

import numpy as np

NEVER = np.iinfo(np.int64).max  # an event that does not happen


def version_rows(created: np.ndarray, events: list[np.ndarray],
                 boundaries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record index, extract position, time of the last change as of that extract) per row."""
    created = np.asarray(created, dtype=np.int64)
    stacked = np.stack([np.asarray(e, dtype=np.int64) for e in events], axis=1) if events else \
        np.full((len(created), 1), NEVER, dtype=np.int64)
    records, extracts, last = [], [], []
    previous = np.iinfo(np.int64).min
    for k, bound in enumerate(np.asarray(boundaries, dtype=np.int64)):
        exists = created <= bound
        if k == 0:
            emit = exists
        else:
            changed = ((stacked > previous) & (stacked <= bound)).any(axis=1)
            emit = exists & ((created > previous) | changed)
        rows = np.flatnonzero(emit)
        happened = np.where(stacked[rows] <= bound, stacked[rows], np.iinfo(np.int64).min)
        records.append(rows)
        extracts.append(np.full(len(rows), k))
        last.append(np.maximum(created[rows], happened.max(axis=1)))
        previous = bound
    return np.concatenate(records), np.concatenate(extracts), np.concatenate(last)


def at_extract(event: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Whether an event has happened by each row's extract time."""
    return np.asarray(event, dtype=np.int64) <= np.asarray(bound, dtype=np.int64)
