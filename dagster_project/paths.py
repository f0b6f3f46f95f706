"""Where everything lives under the home folder (DESIGN.md, "Agreements between the parts")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
SEEDS_DIR = PROJECT_ROOT / "seeds"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
CONTRACT_FILE = Path(__file__).resolve().parent / "ingest" / "contract.yml"


def default_home() -> Path:
    return Path(os.environ.get("SEGMENTS_HOME", "./data")).resolve()


@dataclass(frozen=True)
class HomePaths:
    """The agreed layout of `--home` (env SEGMENTS_HOME, default ./data)."""

    home: Path

    @classmethod
    def from_env(cls) -> HomePaths:
        return cls(default_home())

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def truth(self) -> Path:
        return self.home / "truth"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def published(self) -> Path:
        return self.home / "published"

    @property
    def published_db(self) -> Path:
        return self.published / "analytics.duckdb"

    @property
    def published_parquet(self) -> Path:
        return self.published / "parquet"

    @property
    def steward(self) -> Path:
        return self.home / "steward"

    @property
    def docs(self) -> Path:
        return self.home / "docs"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dbt_target(self) -> Path:
        """dbt's state for this home (partial parse, run artifacts): its own, because the
        warehouse path is part of dbt's partial-parse key."""
        return self.home / "dbt_target"

    @property
    def bench(self) -> Path:
        return self.home / "bench"

    def ensure(self) -> HomePaths:
        for folder in (
            self.home,
            self.published,
            self.steward,
            self.docs,
            self.reports,
            self.dagster_home,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        from dagster_project.dagster_instance import write_instance_config

        write_instance_config(self.dagster_home)
        return self
