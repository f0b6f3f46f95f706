"""The ground truth kept apart from the landing folder (DESIGN.md, "Agreements between the parts").

companies.csv      one row per real company: its true segment, sub-segment, service tier, size
                   tier, role, value profile and the hidden behaviour flags
source_records.csv every CRM account and ERP customer number -> the company it belongs to
opportunities.csv  every opportunity -> its true value profile
planted_defects.csv every malformed line planted into the landing CSVs (file, line, column, kind)

The pipeline never reads these; tests and evaluations compare its output against them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_project.generate.companies import Companies
from dagster_project.generate.crm import Accounts
from dagster_project.generate.crm_activity import Opportunities
from dagster_project.generate.defects import PlantedDefect
from dagster_project.generate.erp import CustomerRecords
from dagster_project.generate.world import World


def _day_text(days: np.ndarray) -> list[str]:
    return ["" if d < 0 else str(np.datetime64(int(d), "D")) for d in days]


def _write(path: Path, frame: pd.DataFrame) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    return path.stat().st_size


def write_truth(truth_dir: Path, world: World, companies: Companies, erp: CustomerRecords,
                accounts: Accounts, opportunities: Opportunities,
                defects: list[PlantedDefect]) -> int:
    """Write the four truth files; returns the bytes written."""
    f = companies.frame
    ids = f["company_id"].to_numpy()
    parent = f["parent"].to_numpy()
    served = f["served_by"].to_numpy()
    migrated = f["migrated_day"].to_numpy()
    profiles = np.array(world.value_profiles, dtype=object)
    table = pd.DataFrame({
        "company_id": ids, "legal_name": f["legal_name"], "country": f["country"],
        "city": f["city"], "region": f["region"], "segment": f["segment"],
        "sub_segment": f["sub_segment"], "service_tier": f["service_tier"],
        "size_tier": f["size_tier"], "role": f["role"], "business_model": f["business_model"],
        "operating_environment": f["operating_environment"], "value_profile": f["value_profile"],
        "previous_value_profile": np.where(migrated >= 0, profiles[f["previous_profile_idx"]], ""),
        "profile_changed_on": _day_text(migrated),
        "product_usage": f["product_usage"],
        "parent_company_id": np.where(parent >= 0, ids[np.maximum(parent, 0)], ""),
        "served_by_company_id": np.where(served >= 0, ids[np.maximum(served, 0)], ""),
        "employees": f["employees"], "annual_revenue_eur": f["annual_revenue_eur"].astype(np.int64),
        "in_crm": f["in_crm"], "in_erp": f["in_erp"], "buys": f["buys"],
        "service_draining": f["service_draining"], "ignores_payment_terms": f["ignores_terms"],
        "churned": f["churned"],
    })
    size = _write(truth_dir / "companies.csv", table)

    a = accounts.frame
    r = erp.frame
    records = pd.concat([
        pd.DataFrame({"source_system": "crm", "entity": "accounts", "source_id": a["account_id"],
                      "company_id": ids[a["company"].to_numpy()], "record_kind": a["kind"]}),
        pd.DataFrame({"source_system": "erp", "entity": "customers",
                      "source_id": r["customer_number"], "company_id": ids[r["company"].to_numpy()],
                      "record_kind": r["kind"]}),
    ]).sort_values(["source_system", "source_id"], kind="stable")
    size += _write(truth_dir / "source_records.csv", records)

    o = opportunities.frame
    opps = pd.DataFrame({
        "opportunity_id": o["opportunity_id"], "company_id": ids[o["company"].to_numpy()],
        "account_id": a["account_id"].to_numpy()[o["account"].to_numpy()],
        "value_profile": profiles[o["value_profile_idx"].to_numpy()],
    }).sort_values("opportunity_id", kind="stable")
    size += _write(truth_dir / "opportunities.csv", opps)

    planted = pd.DataFrame(
        [(d.file, d.line, d.column, d.kind) for d in defects],
        columns=["file", "line", "column", "kind"]).sort_values(["file", "line"], kind="stable")
    size += _write(truth_dir / "planted_defects.csv", planted)
    return size
