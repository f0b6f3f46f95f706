"""Ingest: landing files (CRM and ERP extracts) -> the warehouse's `raw` schema.

Public API (Dagster assets call these; nothing here imports Dagster):

    contract = load_contract()
    result = ingest_entity(con, landing, "crm/accounts", run_id)   # -> IngestResult
    results = ingest_landing(con, landing, run_id)                   # -> {entity: IngestResult}
    load_log_discrepancies(con, run_id)                              # [] when reconciled

The DuckDB connection's own settings (threads, memory_limit) are used as they are.
"""

from dagster_project.ingest.contract import Contract, EntitySpec, load_contract
from dagster_project.ingest.loader import (
    FileOutcome,
    Finding,
    IngestResult,
    ingest_entity,
    ingest_landing,
)
from dagster_project.ingest.raw_tables import ensure_raw_layer
from dagster_project.ingest.reconcile import load_log_discrepancies

__all__ = [
    "Contract",
    "EntitySpec",
    "FileOutcome",
    "Finding",
    "IngestResult",
    "ensure_raw_layer",
    "ingest_entity",
    "ingest_landing",
    "load_contract",
    "load_log_discrepancies",
]
