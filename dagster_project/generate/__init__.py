"""The demo data generator: a landing folder of messy CRM and ERP extracts plus its ground truth.

    from dagster_project.generate import generate
    summary = generate(Path("data/landing"), Path("data/truth"), customers=2000, years=5, seed=42)

The same seed writes byte-identical files. How messy the data is, is set in difficulty.py; the
business taxonomy comes from seeds/, the rest of the world's vocabulary from vocabulary.yml.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from dagster_project.generate.companies import build_companies
from dagster_project.generate.crm import account_versions, build_accounts, contact_versions
from dagster_project.generate.crm_activity import (
    agreement_batches,
    build_opportunities,
    case_batches,
    rating_batches,
    survey_batches,
)
from dagster_project.generate.difficulty import DEFAULT, Difficulty
from dagster_project.generate.erp import (
    build_customers,
    build_fx,
    build_materials,
    customer_versions,
    fx_versions,
    material_versions,
    payment_terms_days,
)
from dagster_project.generate.landing import Landing
from dagster_project.generate.streams import Streams
from dagster_project.generate.timeline import Timeline
from dagster_project.generate.transactions import TransactionWriter, build_orders
from dagster_project.generate.truth import write_truth
from dagster_project.generate.world import load_world

__all__ = ["GenerateSummary", "generate", "Difficulty", "DEFAULT"]

MATERIAL_EXTRACTS = (0, 2)  # the material master: a full load and one incremental
SURVEY_EXTRACTS = (0, 2)


@dataclass(frozen=True)
class GenerateSummary:
    """What one `generate` call wrote."""

    rows: dict[str, int] = field(default_factory=dict)  # landing file -> data rows
    companies: int = 0
    order_lines: int = 0
    planted_defects: int = 0
    bytes_written: int = 0  # landing and truth files
    seconds: float = 0.0

    @property
    def files(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        return (f"{self.companies:,} companies, {self.order_lines:,} order lines, {self.files} "
                f"files, {self.planted_defects} planted defects, "
                f"{self.bytes_written / 1e6:,.1f} MB")


_GENERATED = re.compile(r"^[a-z_]+_\d{8}T\d{6}\.(csv|parquet)(\.part)?$")


def _clear_previous(out_dir: Path, entities: list[str]) -> None:
    """Remove extracts an earlier run wrote, so two generations never mix in one folder."""
    for entity in entities:
        folder = out_dir / entity
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and _GENERATED.match(path.name):
                    path.unlink()


def generate(out_dir: Path, truth_dir: Path, customers: int = 2000, years: int = 5,
             seed: int = 42, end_date: date = date(2025, 12, 31),
             progress: Callable[[str], None] | None = None,
             difficulty: Difficulty = DEFAULT) -> GenerateSummary:
    """Write the landing folder `out_dir` (crm/..., erp/...) and the ground truth `truth_dir`."""
    if customers < 10:
        raise ValueError("customers must be at least 10")
    if years < 1:
        raise ValueError("years must be at least 1")
    started = time.monotonic()
    say = progress or (lambda _message: None)
    out_dir, truth_dir = Path(out_dir), Path(truth_dir)
    world = load_world()
    diff = difficulty
    timeline = Timeline.build(end_date, years, diff.picklist_go_live_years_before_end,
                              diff.scheme_v2_years_before_end)
    streams = Streams(seed)
    _clear_previous(out_dir, list(world.contract))

    companies = build_companies(customers, world, diff, timeline, streams)
    erp = build_customers(companies, world, diff, timeline, streams)
    accounts = build_accounts(companies, world, diff, timeline, streams)
    say(f"{customers:,} companies, {len(accounts.frame):,} CRM accounts, "
        f"{len(erp.frame):,} ERP customers")

    landing = Landing(out_dir, world, diff, timeline, streams)
    try:
        for batch in account_versions(companies, accounts, erp, world, diff, timeline, streams):
            landing.append("crm/accounts", batch.extract, batch.data, batch.tz)
        for batch in contact_versions(companies, accounts, world, diff, timeline, streams):
            landing.append("crm/contacts", batch.extract, batch.data, batch.tz)
        customer_rows = customer_versions(erp, companies, world, diff, timeline, streams)
        for k, data in enumerate(customer_rows):
            landing.append("erp/customers", k, data)
        materials = build_materials(world, timeline, streams)
        for k, data in material_versions(materials, timeline, MATERIAL_EXTRACTS):
            landing.parquet("erp/materials", k, data)
        fx = build_fx(world, diff, timeline, streams)
        for k, data in fx_versions(fx, timeline):
            landing.parquet("erp/fx_rates", k, data)

        orders = build_orders(companies, erp, fx, world, diff, timeline, streams)
        say(f"{len(orders):,} sales orders")
        terms = payment_terms_days(erp, customer_rows, world)
        counts = TransactionWriter(companies, erp, materials, fx, terms, world, diff, timeline,
                                   streams, landing).write(orders, say)

        opportunities = build_opportunities(companies, accounts, fx, world, diff, timeline,
                                            streams)
        crm_batches = {
            "crm/opportunities": opportunities.batches,
            "crm/value_driver_ratings": rating_batches(opportunities, world, diff, timeline,
                                                       streams),
            "crm/service_agreements": agreement_batches(companies, accounts, fx, world, diff,
                                                        timeline, streams),
            "crm/cases": case_batches(companies, accounts, orders, world, diff, timeline,
                                      streams),
            "crm/surveys": survey_batches(companies, accounts, world, diff, timeline, streams,
                                          SURVEY_EXTRACTS),
        }
        for entity, batches in crm_batches.items():
            for batch in batches:
                landing.append(entity, batch.extract, batch.data, batch.tz)
        written = landing.finish(say)
    except BaseException:
        landing.discard()
        raise
    truth_bytes = write_truth(truth_dir, world, companies, erp, accounts, opportunities,
                              written.defects)
    summary = GenerateSummary(
        rows=dict(sorted(written.rows.items())), companies=customers,
        order_lines=counts.order_lines, planted_defects=len(written.defects),
        bytes_written=written.bytes + truth_bytes, seconds=time.monotonic() - started)
    say(str(summary))
    return summary
