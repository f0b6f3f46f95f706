"""The records identity resolution compares: every staged CRM account and ERP customer with its
matching attributes in one spelling. dbt normalises them (model int_customer_match_records,
macros/company_names.sql, driven by the identity_* seeds); this module only decides which
values count as evidence (config/identity.yml)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from dagster_project.identity.settings import IdentitySettings

MATCH_RECORDS_TABLE = "intermediate.int_customer_match_records"

# Without the values that say nothing: VAT ids too short to identify a company (DuckDB's length
# counts characters, as Python's len does), free-mail and site-builder domains.
SOURCE_RECORDS_SQL = f"""
select source_system, source_id, record_name as name, name_norm, legal_form, name_token,
       street_norm, postal_code_norm, city_norm, country_code,
       case when length(vat_id) >= $min_vat_length then vat_id end as vat,
       case when not list_contains($ignored_domains::varchar[], website_domain) then website_domain end
           as domain,
       erp_customer_number as erp_link, parent_account_id,
       coalesce(is_deleted, false) as is_deleted,
       source_system || ':' || source_id as uid
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


def load_source_records(con: duckdb.DuckDBPyConnection, settings: IdentitySettings) -> pa.Table:
    """Every staged CRM account and ERP customer, normalised, with a uid, ordered by system and
    id, as Arrow: the model's DuckDB reads it without Python (and without the GIL), and
    records_frame gives the frame the resolution works on."""
    norm = settings.normalisation
    return con.sql(
        SOURCE_RECORDS_SQL,
        params={
            "min_vat_length": norm.min_vat_length,
            "ignored_domains": list(norm.ignored_domains),
        },
    ).to_arrow_table()


def records_frame(records: pa.Table) -> pd.DataFrame:
    """The records as pandas; missing values are None (Splink and the clustering compare None
    as unknown)."""
    return records.to_pandas()
