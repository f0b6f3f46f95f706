"""The records identity resolution compares: every staged CRM account and ERP customer with its
matching attributes in one spelling. dbt normalises them (model int_customer_match_records,
macros/company_names.sql, driven by the identity_* seeds); this module only decides which
values count as evidence (config/identity.yml)."""

from __future__ import annotations

import duckdb
import pandas as pd

from dagster_project.identity.settings import IdentitySettings

MATCH_RECORDS_TABLE = "intermediate.int_customer_match_records"

SOURCE_RECORDS_SQL = f"""
select source_system, source_id, record_name as name, name_norm, legal_form, name_token,
       street_norm, postal_code_norm, city_norm, country_code, vat_id as vat,
       website_domain as domain, erp_customer_number as erp_link, parent_account_id, is_deleted
from {MATCH_RECORDS_TABLE}
order by source_system, source_id
"""

# The attributes two records are compared on (the probabilistic model's columns besides the ids).
EVIDENCE_COLUMNS = [
    "name_norm",
    "name_token",
    "legal_form",
    "street_norm",
    "postal_code_norm",
    "city_norm",
    "country_code",
    "vat",
    "domain",
    "erp_link",
]
# Text columns whose missing values become None: the evidence, plus the name as staged and the
# CRM parent, which are read (steward queue, predecessors) but never compared.
TEXT_COLUMNS = ["name", *EVIDENCE_COLUMNS, "parent_account_id"]


def evidence_records(raw: pd.DataFrame, settings: IdentitySettings) -> pd.DataFrame:
    """Normalised records (columns of SOURCE_RECORDS_SQL) with a uid, and without the values
    that say nothing: VAT ids too short to identify a company, free-mail and site-builder
    domains. Missing values are None (Splink and the clustering compare None as unknown)."""
    norm = settings.normalisation
    out = raw.reset_index(drop=True).copy()
    out["uid"] = out["source_system"] + ":" + out["source_id"]
    for col in TEXT_COLUMNS:
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    short_vat = out["vat"].map(lambda v: v is not None and len(v) < norm.min_vat_length)
    out.loc[short_vat, "vat"] = None
    ignored = set(norm.ignored_domains)
    out.loc[out["domain"].isin(ignored), "domain"] = None
    out["is_deleted"] = out["is_deleted"].fillna(False).astype(bool)
    return out


def load_source_records(con: duckdb.DuckDBPyConnection, settings: IdentitySettings) -> pd.DataFrame:
    """Every staged CRM account and ERP customer, normalised, ordered by system and id."""
    return evidence_records(con.execute(SOURCE_RECORDS_SQL).df(), settings)
