"""Run every assignment of this package against the warehouse for one as-of date and write the
`segments.*` tables: the only module that knows table names; the others take DataFrames."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd

from dagster_project.paths import SEEDS_DIR
from dagster_project.segmentation.clv_model import ClvFit
from dagster_project.segmentation.customer_segments import consolidate
from dagster_project.segmentation.customer_value import assign_customer_value
from dagster_project.segmentation.industry import (
    IndustryInputs,
    assign_industry_segments,
    name_words,
)
from dagster_project.segmentation.service_tier import assign_service_tier
from dagster_project.segmentation.settings import IndustrySettings, SegmentationSettings
from dagster_project.segmentation.value_profile import (
    ValueProfileInputs,
    assign_value_profiles,
    peer_groups,
    profile_coverage,
)
from dagster_project.settings import settings as pipeline_settings
from dagster_project.steward.queue import FINDING_COLUMNS, create_findings_table

SCHEMA = "segments"
# The tables this package writes (schema `segments`), with what each holds.
TABLES = {
    "customer_value": "Buy-till-you-die features, RFM scores and group, BG/NBD + Gamma-Gamma "
    "expected purchases and CLV over 365 days, size tier; one row per customer.",
    "customer_service_tier": "High/Medium/Low-touch tier from behaviour, service-draining and "
    "ignores-agreed-terms flags; one row per customer.",
    "project_value_profiles": "Value profile per project (opportunity) from its ranked "
    "value-driver ratings and everything known of its customer, with confidence and a "
    "provisional flag.",
    "customer_value_profiles": "Value profile per customer with a CRM account or project: the "
    "most probable given its accounts' picklists, its projects' ratings and its peer group.",
    "value_profile_coverage": "Per value profile: rated projects, small-sample flag, regions.",
    "customer_industry_segments": "Industry segment and sub-segment per customer with the source "
    "that decided (override, CRM picklist, legacy mapping, inference, unassigned), confidence, "
    "reason codes and inputs.",
    "customer_segments": "One row per customer: industry segment and sub-segment, value profile, "
    "service tier, size tier, RFM group and CLV, provisional flag, confidence per dimension and "
    "reasons (JSON).",
}
# Steward findings of this stage (unassigned customers, rejected picklists and overrides).
FINDINGS_STAGE = "segmentation"
ORDER_LINES_SQL = (
    "select customer_id, order_id, order_date, revenue_eur as net_value_eur "
    "from marts.fct_order_lines"
)


@dataclass(frozen=True)
class Segmentation:
    tables: dict[str, pd.DataFrame]
    clv_fit: ClvFit
    findings: pd.DataFrame  # FINDING_COLUMNS


def read_seed(name: str, seeds_dir=SEEDS_DIR) -> pd.DataFrame:
    """A decision file from seeds/ (the same CSV dbt loads into the seeds schema)."""
    return pd.read_csv(seeds_dir / f"{name}.csv", keep_default_na=False, na_values=[""])


# The CRM accounts linked to a customer, read once for both the industry picklists and the
# value-profile evidence (each takes its own columns and rows).
PICKLIST_COLUMNS = ["customer_id", "account_id", "segment", "sub_segment", "last_modified_at",
                    "is_deleted"]
VALUE_PROFILE_ACCOUNT_COLUMNS = ["customer_id", "account_id", "value_profile", "business_model",
                                 "operating_environment", "is_deleted"]


def _linked_crm_accounts(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    return con.execute(
        """
        select identity_map.customer_id, accounts.account_id, accounts.segment,
               accounts.sub_segment, accounts.last_modified_at, accounts.value_profile,
               accounts.business_model, accounts.operating_environment, accounts.is_deleted,
               coalesce(cast(accounts.created_at as date) <= $as_of, false) as created_by_as_of
        from staging.stg_crm__accounts as accounts
        inner join staging.stg_identity__customer_source_map as identity_map
            on identity_map.source_system = 'crm' and identity_map.source_id = accounts.account_id
        order by accounts.account_id
        """, {"as_of": as_of}).df()


def _value_profile_inputs(con: duckdb.DuckDBPyConnection, as_of: dt.date, peers: pd.DataFrame,
                          crm_accounts: pd.DataFrame) -> ValueProfileInputs:
    params = {"as_of": as_of}
    ratings = con.execute(
        "select * from staging.stg_crm__value_driver_ratings "
        "where cast(rated_at as date) <= $as_of order by opportunity_id, rater_key", params).df()
    projects = con.execute(
        """
        select
            opportunities.opportunity_id,
            identity_map.customer_id,
            opportunities.stage,
            opportunities.close_date
        from staging.stg_crm__opportunities as opportunities
        left join staging.stg_identity__customer_source_map as identity_map
            on identity_map.source_system = 'crm'
            and identity_map.source_id = opportunities.account_id
        where cast(opportunities.created_at as date) <= $as_of
        order by opportunities.opportunity_id
        """, params).df()
    known_by_as_of = crm_accounts.loc[crm_accounts["created_by_as_of"], VALUE_PROFILE_ACCOUNT_COLUMNS]
    return ValueProfileInputs(ratings=ratings, projects=projects,
                              accounts=known_by_as_of.reset_index(drop=True), peer_groups=peers)


def _industry_inputs(con: duckdb.DuckDBPyConnection, as_of: dt.date, rules: IndustrySettings,
                     overrides: pd.DataFrame, crm_accounts: pd.DataFrame) -> IndustryInputs:
    customers = con.execute(
        """
        select features.customer_id, features.order_count, features.revenue_eur,
               dim.* exclude (customer_id, order_count)
        from marts.customer_features as features
        left join marts.dim_customer as dim using (customer_id)
        order by features.customer_id
        """).df()
    filled = crm_accounts["segment"].notna() | crm_accounts["sub_segment"].notna()
    picklists = crm_accounts.loc[filled, PICKLIST_COLUMNS].reset_index(drop=True)
    labels = con.execute(
        "select * from intermediate.int_customer_legacy_labels_mapped "
        "where customer_id is not null order by source_system, source_id, label_field").df()
    purchases = con.execute(
        "select customer_id, product_line, count(*) as order_lines from marts.fct_order_lines "
        "where customer_id is not null and not is_credit and order_date <= $as_of "
        "group by all order by all", {"as_of": as_of}).df()
    names = con.execute(
        "select customer_id, record_name from intermediate.int_customer_source_records "
        "where customer_id is not null order by source_system, source_id").df()
    words = name_words(names, rules.inference.names.min_word_length,
                       rules.inference.names.stem_length)
    return IndustryInputs(customers=customers, picklists=picklists, legacy_labels=labels,
                          purchases=purchases, name_words=words,
                          overrides=overrides)


def run_segmentation(con: duckdb.DuckDBPyConnection, as_of: dt.date,
                     settings: SegmentationSettings, seeds_dir=SEEDS_DIR) -> Segmentation:
    version = settings.scheme_version
    features = con.execute("select * from marts.customer_features order by customer_id").df()
    customer_value, fit = assign_customer_value(
        con, features, ORDER_LINES_SQL, as_of, settings.customer_value,
        read_seed("rfm_groups", seeds_dir), read_seed("size_tiers", seeds_dir), version)
    service_tier = assign_service_tier(features, settings.service_tier, version, as_of)

    taxonomy = read_seed("segment_taxonomy", seeds_dir)
    overrides = read_seed("segment_overrides", seeds_dir)
    crm_accounts = _linked_crm_accounts(con, as_of)
    industry_inputs = _industry_inputs(con, as_of, settings.industry, overrides, crm_accounts)
    industry = assign_industry_segments(industry_inputs, taxonomy, settings.industry, version,
                                        as_of)

    # Value profiles: the customer's industry and role make its peer group (the prior).
    profiles = read_seed("value_profiles", seeds_dir)
    peers = peer_groups(industry_inputs.customers, industry.table, settings.value_profile)
    value_profiles = assign_value_profiles(
        _value_profile_inputs(con, as_of, peers, crm_accounts), profiles, read_seed("value_drivers", seeds_dir),
        settings.value_profile, version, as_of)
    project_profiles, customer_profiles = value_profiles.projects, value_profiles.customers
    regions = con.execute("select customer_id, region from marts.dim_customer").df()
    coverage = profile_coverage(project_profiles, regions, profiles, settings.value_profile,
                                version, as_of)
    consolidated = consolidate(
        features, industry.table, customer_profiles, service_tier, customer_value, overrides,
        profiles, settings, as_of)
    policy = pipeline_settings()
    findings = pd.concat([industry.findings, consolidated.findings], ignore_index=True)
    findings["severity"] = findings["kind"].map(policy.severity_of)
    return Segmentation(
        tables={
            "customer_value": customer_value,
            "customer_service_tier": service_tier,
            "project_value_profiles": project_profiles,
            "customer_value_profiles": customer_profiles,
            "value_profile_coverage": coverage,
            "customer_industry_segments": industry.table,
            "customer_segments": consolidated.table,
        },
        clv_fit=fit,
        findings=findings[list(FINDING_COLUMNS)],
    )


def write_tables(con: duckdb.DuckDBPyConnection, segmentation: Segmentation) -> dict[str, int]:
    con.execute(f"create schema if not exists {SCHEMA}")
    counts = {}
    for name, frame in segmentation.tables.items():
        con.register("segmentation_frame", frame)
        try:
            con.execute(f"create or replace table {SCHEMA}.{name} as "
                        "select * from segmentation_frame")
        finally:
            con.unregister("segmentation_frame")
        counts[name] = len(frame)
    con.register("segmentation_findings", segmentation.findings)
    try:
        create_findings_table(con, FINDINGS_STAGE, "select * from segmentation_findings")
    finally:
        con.unregister("segmentation_findings")
    return counts
