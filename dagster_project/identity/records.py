"""The records identity resolution compares: every staged CRM account and ERP customer with its
matching attributes in one normalised shape (identity/normalise.py)."""

from __future__ import annotations

import duckdb
import pandas as pd

from dagster_project.identity.normalise import (
    NameNormaliser,
    normalise_domain,
    normalise_postal_code,
    normalise_street,
    tokens_of,
)
from dagster_project.identity.settings import IdentitySettings, load_legal_forms

SOURCE_RECORDS_SQL = """
select 'crm' as source_system, account_id as source_id, account_name as name,
       billing_street as street, billing_postal_code as postal_code, billing_city as city,
       country_code, vat_id as vat, website_domain as domain, erp_customer_number as erp_link,
       is_deleted
from staging.stg_crm__accounts
union all
select 'erp', customer_number, customer_name, street, postal_code, city, country_code, vat_id,
       null, null, is_deleted
from staging.stg_erp__customers
order by source_system, source_id
"""


def normalise_records(raw: pd.DataFrame, settings: IdentitySettings) -> pd.DataFrame:
    """Add the normalised matching columns to raw source records (columns of SOURCE_RECORDS_SQL)."""
    norm = settings.normalisation
    forms = load_legal_forms()
    names = NameNormaliser(
        zip(forms["legal_form"], forms["spelling"], strict=True), norm.transliteration
    )
    out = raw.reset_index(drop=True).copy()
    out["uid"] = out["source_system"] + ":" + out["source_id"]
    parsed = [names.normalise(n) for n in out["name"]]
    out["name_norm"] = [p[0] for p in parsed]
    out["legal_form"] = [p[1] for p in parsed]
    out["name_token"] = [n.split()[0] if n else None for n in out["name_norm"]]
    out["street_norm"] = [
        normalise_street(s, norm.transliteration, norm.street_abbreviations) for s in out["street"]
    ]
    out["postal_code_norm"] = [normalise_postal_code(p) for p in out["postal_code"]]
    out["city_norm"] = [" ".join(tokens_of(c, norm.transliteration)) or None for c in out["city"]]
    out["domain"] = [normalise_domain(d, norm.ignored_domains) for d in out["domain"]]
    vat = out["vat"].where(out["vat"].str.len() >= norm.min_vat_length)
    out["vat"] = vat.astype(object).where(vat.notna(), None)
    for col in ("country_code", "erp_link"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def load_source_records(con: duckdb.DuckDBPyConnection, settings: IdentitySettings) -> pd.DataFrame:
    """Every staged CRM account and ERP customer, normalised, ordered by system and id."""
    return normalise_records(con.execute(SOURCE_RECORDS_SQL).df(), settings)
