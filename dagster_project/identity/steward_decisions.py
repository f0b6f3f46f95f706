"""Steward decisions on identity, kept in seeds/ and keyed by source record ids so that they
survive re-runs: confirmed matches (merged whatever the model says) and confirmed non-matches
(never in one customer, however strong the evidence). Applied on the next run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dagster_project.paths import SEEDS_DIR

CONFIRMED_MATCHES_SEED = SEEDS_DIR / "identity_confirmed_matches.csv"
CONFIRMED_NON_MATCHES_SEED = SEEDS_DIR / "identity_confirmed_non_matches.csv"
DECISION_COLUMNS = [
    "source_system_l",
    "source_id_l",
    "source_system_r",
    "source_id_r",
    "decided_by",
    "decided_at",
    "note",
]


def read_decisions(path: Path) -> pd.DataFrame:
    """Decision rows with uid_l/uid_r ('crm:<id>'); ids stay text (ERP leading zeros)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(DECISION_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path.name}: missing columns {sorted(missing)}")
    frame = frame[
        (frame["source_id_l"].str.strip() != "") & (frame["source_id_r"].str.strip() != "")
    ]
    for side in ("l", "r"):
        system = frame[f"source_system_{side}"].str.strip().str.lower()
        bad = sorted(set(system) - {"crm", "erp"})
        if bad:
            raise ValueError(f"{path.name}: source_system must be crm or erp, got {bad}")
        frame[f"uid_{side}"] = system + ":" + frame[f"source_id_{side}"].str.strip()
    return frame.reset_index(drop=True)


def load_steward_decisions(
    matches: Path = CONFIRMED_MATCHES_SEED, non_matches: Path = CONFIRMED_NON_MATCHES_SEED
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_decisions(matches), read_decisions(non_matches)
