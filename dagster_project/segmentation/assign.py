"""Run every assignment of this package against the warehouse for one as-of date and write the
`segments.*` tables: the only module that knows table names; the others take DataFrames."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import pandas as pd

from dagster_project.paths import SEEDS_DIR
from dagster_project.segmentation.clv_model import ClvFit
from dagster_project.segmentation.customer_segments import consolidate
from dagster_project.segmentation.customer_value import assign_customer_value, btyd_features
from dagster_project.segmentation.industry import (
    IndustryAssignment,
    IndustryInputs,
    assign_industry_segments,
    name_words,
)
from dagster_project.segmentation.service_tier import assign_service_tier
from dagster_project.segmentation.settings import NameInference, SegmentationSettings
from dagster_project.segmentation.value_profile import (
    ValueProfileInputs,
    ValueProfiles,
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
PICKLIST_COLUMNS = [
    "customer_id",
    "account_id",
    "segment",
    "sub_segment",
    "last_modified_at",
    "is_deleted",
]
VALUE_PROFILE_ACCOUNT_COLUMNS = [
    "customer_id",
    "account_id",
    "value_profile",
    "business_model",
    "operating_environment",
    "is_deleted",
]


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
        """,
        {"as_of": as_of},
    ).df()


def _non_ascii_record_names(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "select customer_id, record_name from intermediate.int_customer_source_records "
        "where customer_id is not null and strlen(record_name) <> length(record_name) "
        "order by source_system, source_id"
    ).df()


# industry.name_words of the ASCII names, in SQL (DuckDB's threads, no Python per name): for
# ASCII text upper() and the regex classes are the same as Python's, and no accents are to
# be dropped. Distinct (customer, word) pairs sorted as text, as name_words returns them.
NAME_WORDS_SQL = """
with ascii_names as (
    select customer_id, upper(record_name) as name
    from intermediate.int_customer_source_records
    where customer_id is not null and strlen(record_name) = length(record_name)
),
found as (
    select customer_id, unnest(regexp_extract_all(name, '[0-9A-Z]{{{min_length},}}')) as word
    from ascii_names
),
words as (
    select customer_id, word from found where not regexp_full_match(word, '[0-9]+')
),
pairs as (
    select customer_id, word from words
    union all
    select customer_id, left(word, {stem_length}) || '~' from words
    where {stem_length} > 0 and length(word) > {stem_length}
    union all
    select customer_id, word from other_name_words
)
select distinct customer_id, word from pairs order by customer_id, word
"""


def _name_words(con: duckdb.DuckDBPyConnection, min_length: int, stem_length: int) -> pd.DataFrame:
    """industry.name_words of every customer's record names: the ASCII names (nearly all) in
    SQL, the others (accents to drop) through name_words itself; the same pairs, same order."""
    others = name_words(_non_ascii_record_names(con), min_length, stem_length)
    con.register("other_name_words", others)
    try:
        sql = NAME_WORDS_SQL.format(
            min_length=max(int(min_length), 1), stem_length=int(stem_length)
        )
        return con.execute(sql).df()
    finally:
        con.unregister("other_name_words")


def _legacy_labels(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The mapped legacy labels (the others add no evidence: legacy_evidence), with the columns
    the industry assignment reads."""
    return con.execute(
        "select customer_id, source_system, source_id, label_field, label, is_deleted, segment, "
        "sub_segment, mapping_status from intermediate.int_customer_legacy_labels_mapped "
        "where customer_id is not null and mapping_status = 'mapped' "
        "order by source_system, source_id, label_field"
    ).df()


def _purchases(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    """Non-credit order lines per customer and product line up to the as-of."""
    return con.execute(
        "select customer_id, product_line, count(*) as order_lines from marts.fct_order_lines "
        "where customer_id is not null and not is_credit and order_date <= $as_of "
        "group by all order by all",
        {"as_of": as_of},
    ).df()


def _ratings(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    return con.execute(
        "select * from staging.stg_crm__value_driver_ratings "
        "where cast(rated_at as date) <= $as_of order by opportunity_id, rater_key",
        {"as_of": as_of},
    ).df()


def _projects(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    return con.execute(
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
        """,
        {"as_of": as_of},
    ).df()


@dataclass(frozen=True)
class _Reads:
    """The warehouse reads of one run, queued on a second cursor in the order the assignment
    needs them: DuckDB releases the GIL, so they run while pandas assigns (both cores busy).
    The buy-till-you-die features (every order line aggregated) come last: needed last."""

    crm_accounts: Future[pd.DataFrame]
    name_words: Future[pd.DataFrame]
    legacy_labels: Future[pd.DataFrame]
    purchases: Future[pd.DataFrame]
    ratings: Future[pd.DataFrame]
    projects: Future[pd.DataFrame]
    btyd: Future[pd.DataFrame]


def _start_reads(
    background: ThreadPoolExecutor,
    cursor: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    names: NameInference,
) -> _Reads:
    return _Reads(
        crm_accounts=background.submit(_linked_crm_accounts, cursor, as_of),
        name_words=background.submit(_name_words, cursor, names.min_word_length, names.stem_length),
        legacy_labels=background.submit(_legacy_labels, cursor),
        purchases=background.submit(_purchases, cursor, as_of),
        ratings=background.submit(_ratings, cursor, as_of),
        projects=background.submit(_projects, cursor, as_of),
        btyd=background.submit(btyd_features, cursor, ORDER_LINES_SQL, as_of),
    )


def _value_profile_inputs(reads: _Reads, peers: pd.DataFrame) -> ValueProfileInputs:
    crm_accounts = reads.crm_accounts.result()
    known_by_as_of = crm_accounts.loc[
        crm_accounts["created_by_as_of"], VALUE_PROFILE_ACCOUNT_COLUMNS
    ]
    return ValueProfileInputs(
        ratings=reads.ratings.result(),
        projects=reads.projects.result(),
        accounts=known_by_as_of.reset_index(drop=True),
        peer_groups=peers,
    )


def _industry_inputs(
    con: duckdb.DuckDBPyConnection,
    reads: _Reads,
    flags: list[str],
    overrides: pd.DataFrame,
) -> IndustryInputs:
    """`flags`: the dim_customer flags the assignments read (the other 30 columns of
    dim_customer, mostly text, cost a second to convert and are never used)."""
    flag_columns = "".join(f', dim."{flag}"' for flag in flags)
    customers = con.execute(
        f"""
        select features.customer_id, features.order_count, features.revenue_eur{flag_columns}
        from marts.customer_features as features
        left join marts.dim_customer as dim using (customer_id)
        order by features.customer_id
        """
    ).df()
    crm_accounts = reads.crm_accounts.result()
    filled = crm_accounts["segment"].notna() | crm_accounts["sub_segment"].notna()
    picklists = crm_accounts.loc[filled, PICKLIST_COLUMNS].reset_index(drop=True)
    return IndustryInputs(
        customers=customers,
        picklists=picklists,
        legacy_labels=reads.legacy_labels.result(),
        purchases=reads.purchases.result(),
        name_words=reads.name_words.result(),
        overrides=overrides,
    )


def _ignore(name: str, frame: pd.DataFrame) -> None:
    return None


def run_segmentation(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    settings: SegmentationSettings,
    seeds_dir=SEEDS_DIR,
    on_table: Callable[[str, pd.DataFrame], None] = _ignore,
) -> Segmentation:
    """Every table of TABLES and the findings; `on_table(name, frame)` is called as soon as a
    table is final (TableWriter.write stores it while the others are computed)."""
    version = settings.scheme_version
    features = con.execute("select * from marts.customer_features order by customer_id").df()
    cursor = con.cursor()
    try:
        with ThreadPoolExecutor(max_workers=1) as background:
            reads = _start_reads(background, cursor, as_of, settings.industry.inference.names)
            service_tier = assign_service_tier(features, settings.service_tier, version, as_of)
            on_table("customer_service_tier", service_tier)
            crm = _crm_dimensions(con, reads, as_of, settings, seeds_dir, on_table)
            btyd = reads.btyd.result()
    finally:
        cursor.close()  # after the executor has waited for its reads
    customer_value, fit = assign_customer_value(
        btyd,
        features,
        as_of,
        settings.customer_value,
        read_seed("rfm_groups", seeds_dir),
        read_seed("size_tiers", seeds_dir),
        version,
    )
    on_table("customer_value", customer_value)
    industry = crm.industry
    project_profiles, customer_profiles = crm.value_profiles.projects, crm.value_profiles.customers
    consolidated = consolidate(
        features,
        industry.table,
        customer_profiles,
        service_tier,
        customer_value,
        crm.overrides,
        crm.profile_seed,
        settings,
        as_of,
    )
    on_table("customer_segments", consolidated.table)
    policy = pipeline_settings()
    findings = pd.concat([industry.findings, consolidated.findings], ignore_index=True)
    findings["severity"] = findings["kind"].map(policy.severity_of)
    return Segmentation(
        tables={
            "customer_value": customer_value,
            "customer_service_tier": service_tier,
            "project_value_profiles": project_profiles,
            "customer_value_profiles": customer_profiles,
            "value_profile_coverage": crm.coverage,
            "customer_industry_segments": industry.table,
            "customer_segments": consolidated.table,
        },
        clv_fit=fit,
        findings=findings[list(FINDING_COLUMNS)],
    )


@dataclass(frozen=True)
class _CrmDimensions:
    """The dimensions that read the CRM and the legacy labels, and the seeds they used."""

    industry: IndustryAssignment
    value_profiles: ValueProfiles
    coverage: pd.DataFrame
    overrides: pd.DataFrame  # seeds/segment_overrides.csv
    profile_seed: pd.DataFrame  # seeds/value_profiles.csv


def _crm_dimensions(
    con: duckdb.DuckDBPyConnection,
    reads: _Reads,
    as_of: dt.date,
    settings: SegmentationSettings,
    seeds_dir,
    on_table: Callable[[str, pd.DataFrame], None],
) -> _CrmDimensions:
    version = settings.scheme_version

    taxonomy = read_seed("segment_taxonomy", seeds_dir)
    overrides = read_seed("segment_overrides", seeds_dir)
    flags = list(
        dict.fromkeys(
            [
                *settings.industry.inference.purchases.exclude_customers_flagged,
                *settings.value_profile.peer_prior.role_flags,
            ]
        )
    )
    industry_inputs = _industry_inputs(con, reads, flags, overrides)
    industry = assign_industry_segments(
        industry_inputs, taxonomy, settings.industry, version, as_of
    )
    on_table("customer_industry_segments", industry.table)

    # Value profiles: the customer's industry and role make its peer group (the prior).
    profiles = read_seed("value_profiles", seeds_dir)
    peers = peer_groups(industry_inputs.customers, industry.table, settings.value_profile)
    value_profiles = assign_value_profiles(
        _value_profile_inputs(reads, peers),
        profiles,
        read_seed("value_drivers", seeds_dir),
        settings.value_profile,
        version,
        as_of,
    )
    on_table("project_value_profiles", value_profiles.projects)
    on_table("customer_value_profiles", value_profiles.customers)
    regions = con.execute("select customer_id, region from marts.dim_customer").df()
    coverage = profile_coverage(
        value_profiles.projects, regions, profiles, settings.value_profile, version, as_of
    )
    on_table("value_profile_coverage", coverage)
    return _CrmDimensions(
        industry=industry,
        value_profiles=value_profiles,
        coverage=coverage,
        overrides=overrides,
        profile_seed=profiles,
    )


class TableWriter:
    """Creates segments.* tables from DataFrames on a second cursor in a background thread, one
    after the other: DuckDB compresses and stores a table (mostly without the GIL) while pandas
    computes the next one. Each goes to a pending table first; when the block ends without an
    error they replace the segments.* tables together (renames in one transaction), and a
    failed run leaves the previous tables as they were (as when they were written at the end).
    Not one long transaction instead: an open write transaction slows the reads meanwhile.

        with TableWriter(con) as writer:
            run_segmentation(con, as_of, settings, on_table=writer.write)
        writer.counts  # rows per table
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"create schema if not exists {SCHEMA}")
        self._cursor = con.cursor()
        self._background = ThreadPoolExecutor(max_workers=1)
        self._written: dict[str, Future[int]] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> TableWriter:
        return self

    @staticmethod
    def _pending(name: str) -> str:
        return f"{SCHEMA}.{name}__pending"

    def write(self, name: str, frame: pd.DataFrame) -> None:
        """Queue `frame` as segments.<name> (the frame must not change afterwards)."""
        self._written[name] = self._background.submit(self._create, name, frame)

    def _create(self, name: str, frame: pd.DataFrame) -> int:
        self._cursor.register("segmentation_frame", frame)
        try:
            self._cursor.execute(
                f"create or replace table {self._pending(name)} as select * from segmentation_frame"
            )
        finally:
            self._cursor.unregister("segmentation_frame")
        return len(frame)

    def __exit__(self, error_type, error, traceback) -> None:
        self._background.shutdown(wait=True)
        try:
            try:
                if error is None:
                    self.counts = {name: done.result() for name, done in self._written.items()}
            except BaseException:
                self._drop_pending()
                raise
            if error is not None:
                self._drop_pending()
                return
            self._cursor.execute("begin transaction")
            for name in self._written:
                self._cursor.execute(f"drop table if exists {SCHEMA}.{name}")
                self._cursor.execute(f"alter table {self._pending(name)} rename to {name}")
            self._cursor.execute("commit")
        finally:
            self._cursor.close()

    def _drop_pending(self) -> None:
        for name in self._written:
            self._cursor.execute(f"drop table if exists {self._pending(name)}")


def write_findings(con: duckdb.DuckDBPyConnection, findings: pd.DataFrame) -> None:
    con.register("segmentation_findings", findings)
    try:
        create_findings_table(con, FINDINGS_STAGE, "select * from segmentation_findings")
    finally:
        con.unregister("segmentation_findings")


def write_tables(con: duckdb.DuckDBPyConnection, segmentation: Segmentation) -> dict[str, int]:
    """All tables and the findings of a finished run_segmentation."""
    with TableWriter(con) as writer:
        for name, frame in segmentation.tables.items():
            writer.write(name, frame)
    write_findings(con, segmentation.findings)
    return writer.counts
