"""Development fixture: a tiny warehouse with the raw layer and the identity map, for dbt.

Creates, in the DuckDB file given as argument (default: $SEGMENTS_WAREHOUSE), every raw table of
the source contract with the RAW LAYER types and lineage columns (as ingest writes them), a
handful of hand-written rows that exercise the staging and mart rules (several extract versions,
legacy country names, VAT spellings, credit lines, a month without an fx rate, an orphan order
line), and identity.customer_source_map as the identity asset writes it.

Only for developing and checking the dbt project without ingest and the generator:

    SEGMENTS_WAREHOUSE=/tmp/dbt_dev.duckdb python dbt_project/dev/make_fixture_warehouse.py
    cd dbt_project && SEGMENTS_WAREHOUSE=/tmp/dbt_dev.duckdb dbt build --profiles-dir .
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

CONTRACT_FILE = Path(__file__).resolve().parents[2] / "dagster_project" / "ingest" / "contract.yml"
RAW_TYPES = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "dec": "DECIMAL(18,4)",
    "date": "DATE",
    "ts": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
}
LINEAGE_COLUMNS = {
    "_source_file": "VARCHAR",
    "_line": "BIGINT",
    "_extract_ts": "TIMESTAMP",
    "_loaded_at": "TIMESTAMPTZ",
    "_run_id": "VARCHAR",
}
FIRST_EXTRACT = "20240101T000000"
SECOND_EXTRACT = "20240701T000000"

# entity -> list of (extract timestamp, row). Columns left out are NULL.
FIXTURE_ROWS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "crm/accounts": [
        (
            FIRST_EXTRACT,
            {
                "account_id": "001A0000000000001A",
                "account_name": "Aanekosken Energia",
                "billing_country": "Finland",
                "vat_id": "1234-5678",
                "account_type": "Customer",
                "erp_customer_number": "104711",
                "owner_region": "Nordics",
                "created_at": "2020-01-01 08:00:00+00",
                "last_modified": "2024-01-01 08:00:00+00",
            },
        ),
        (
            SECOND_EXTRACT,
            {
                "account_id": "001A0000000000001A",
                "account_name": "Äänekosken Energia Oy",
                "website": "https://www.aanekoskenenergia.fi/en",
                "billing_country": "FI ",
                "vat_id": "fi 1234-5678",
                "account_type": "Customer",
                "erp_customer_number": "104711",
                "owner_region": "Nordics",
                "created_at": "2020-01-01 08:00:00+00",
                "last_modified": "2024-06-01 08:00:00+00",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "account_id": "001A0000000000002A",
                "account_name": "Müller GmbH & Co. KG",
                "billing_country": "Deutschland",
                "vat_id": "DE 123.456.789",
                "account_type": "Distributor",
                "erp_customer_number": "0000200001",
                "created_at": "2021-03-01 08:00:00+00",
                "last_modified": "2023-05-01 08:00:00+00",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "account_id": "001A0000000000003A",
                "account_name": "Prospect Ltd",
                "billing_country": "United Kingdom",
                "account_type": "Customer",
                "owner_region": "Europe other",
                "is_deleted": False,
                "created_at": "2024-02-01 08:00:00+00",
                "last_modified": "2024-02-01 08:00:00+00",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "account_id": "001A0000000000004A",
                "account_name": "Rival Turbines Inc",
                "billing_country": "U.S.A.",
                "account_type": "Competitor",
                "is_deleted": True,
                "created_at": "2019-02-01 08:00:00+00",
                "last_modified": "2022-02-01 08:00:00+00",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "account_id": "001A0000000000005A",
                "account_name": "Aanekoski Energy (old)",
                "billing_country": "Suomi",
                "vat_id": "FI12345678",
                "account_type": "End User",
                "parent_account_id": "001A0000000000001A",
                "created_at": "2018-01-01 08:00:00+00",
                "last_modified": "2019-01-01 08:00:00+00",
            },
        ),
    ],
    "crm/contacts": [
        (
            FIRST_EXTRACT,
            {
                "contact_id": "003A0000000000001A",
                "account_id": "001A0000000000001A",
                "first_name": "Aino",
                "last_name": "Virtanen",
                "email": "Aino.Virtanen@Energia.fi",
                "phone": "+358 40 1234567",
                "job_title": "Plant manager",
                "created_at": "2020-01-01 08:00:00+00",
                "last_modified": "2020-01-01 08:00:00+00",
            },
        ),
    ],
    "crm/opportunities": [
        (
            FIRST_EXTRACT,
            {
                "opportunity_id": "006A0000000000001A",
                "account_id": "001A0000000000001A",
                "name": "Engine retrofit",
                "stage": "Proposal",
                "amount": "250000",
                "currency": "EUR",
                "probability": 40,
                "close_date": "2024-09-30",
                "product_type": "Engines",
                "includes_service_agreement": True,
                "created_at": "2024-01-10 08:00:00+00",
                "last_modified": "2024-01-10 08:00:00+00",
            },
        ),
    ],
    "crm/value_driver_ratings": [
        (
            FIRST_EXTRACT,
            {
                "opportunity_id": "006A0000000000001A",
                "rated_by": "Matti Meikäläinen",
                "rated_at": "2024-02-01 08:00:00+00",
                "technical_excellence": 2,
                "price": 1,
            },
        ),
        (
            SECOND_EXTRACT,
            {
                "opportunity_id": "006A0000000000001A",
                "rated_by": "Matti Meikäläinen",
                "rated_at": "2024-03-01 08:00:00+00",
                "technical_excellence": 1,
                "price": 2,
                "sustainability": 3,
            },
        ),
    ],
    "crm/service_agreements": [
        (
            FIRST_EXTRACT,
            {
                "agreement_id": "a0A0000000000001",
                "account_id": "001A0000000000002A",
                "agreement_type": "Long-term Service Agreement",
                "start_date": "2023-01-01",
                "end_date": "2027-12-31",
                "annual_value": "120000",
                "currency": "EUR",
                "status": "Active",
                "last_modified": "2023-01-01 08:00:00+00",
            },
        ),
    ],
    "crm/cases": [
        (
            FIRST_EXTRACT,
            {
                "case_id": "500A0000000000001A",
                "account_id": "001A0000000000002A",
                "case_type": "Complaint",
                "severity": "High",
                "order_reference": "ORD-0002",
                "created_at": "2023-03-01 08:00:00+00",
                "closed_at": "2023-03-10 08:00:00+00",
                "status": "Closed",
                "last_modified": "2023-03-10 08:00:00+00",
            },
        ),
    ],
    "crm/surveys": [
        (
            FIRST_EXTRACT,
            {
                "survey_id": "SV-1",
                "account_id": "001A0000000000001A",
                "responded_at": "2023-06-01 08:00:00+00",
                "csat": 4,
                "nps": 9,
                "comment": "Great service by Aino",
            },
        ),
    ],
    "erp/customers": [
        (
            FIRST_EXTRACT,
            {
                "customer_number": "0000104711",
                "name1": "AAENEKOSKEN ENERGIA OY",
                "country": "FI",
                "vat_number": "12345678",
                "customer_group": "util",
                "payment_terms": "NT30",
                "created_on": "2015-01-01",
                "deletion_flag": False,
                "order_block": False,
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "customer_number": "0000200001",
                "name1": "MUELLER GMBH",
                "name2": "& CO KG",
                "country": "DE",
                "vat_number": "DE123456789",
                "customer_group": "DIST",
                "payment_terms": "NT60",
                "created_on": "2016-01-01",
                "deletion_flag": False,
                "order_block": False,
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "customer_number": "0000300001",
                "name1": "ACME PLANTA",
                "country": "ES",
                "vat_number": "B-1234567-8",
                "customer_group": "Z07",
                "created_on": "2017-01-01",
                "deletion_flag": False,
                "order_block": False,
            },
        ),
        (
            SECOND_EXTRACT,
            {
                "customer_number": "0000300001",
                "name1": "ACME PLANT SA",
                "country": "ES",
                "vat_number": "B-1234567-8",
                "customer_group": "Z07",
                "created_on": "2017-01-01",
                "deletion_flag": False,
                "order_block": True,
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "customer_number": "0000400001",
                "name1": "END USER AG",
                "country": "CH",
                "customer_group": "IND",
                "created_on": "2018-01-01",
                "deletion_flag": True,
                "order_block": False,
            },
        ),
    ],
    "erp/materials": [
        (
            FIRST_EXTRACT,
            {
                "material_number": "M-ENG-1",
                "description": "Engine 18V",
                "product_line": "Engines",
                "category": "Specialty",
                "unit": "PC",
                "standard_cost": "100",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "material_number": "M-SP-1",
                "description": "Filter kit",
                "product_line": "Spare Parts",
                "category": "Commodity",
                "unit": "PC",
                "standard_cost": "10",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "material_number": "M-SRV-1",
                "description": "Field service day",
                "product_line": "Services",
                "unit": "D",
            },
        ),
    ],
    "erp/sales_orders": [
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0001",
                "customer_number": "0000104711",
                "order_date": "2023-01-15",
                "order_type": "Standard",
                "currency": "EUR",
                "created_on": "2023-01-15",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0002",
                "customer_number": "0000200001",
                "order_date": "2023-02-10",
                "order_type": "Expedited",
                "currency": "USD",
                "end_user_customer_number": "0000400001",
                "change_count": 2,
                "requested_delivery_date": "2023-03-01",
                "created_on": "2023-02-10",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0003",
                "customer_number": "0000200001",
                "order_date": "2023-03-05",
                "order_type": "Rush",
                "currency": "usd",
                "created_on": "2023-03-05",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0004",
                "customer_number": "0000300001",
                "order_date": "2024-05-02",
                "order_type": "Standard",
                "currency": "SEK",
                "created_on": "2024-05-02",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0005",
                "customer_number": "0000104711",
                "order_date": "2019-12-01",
                "order_type": "Standard",
                "currency": "EUR",
                "created_on": "2019-12-01",
            },
        ),
    ],
    "erp/order_lines": [
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0001",
                "line_no": 10,
                "material_number": "M-ENG-1",
                "quantity": "2",
                "unit_price": "450",
                "net_value": "900",
                "cost": "250",
            },
        ),
        (
            SECOND_EXTRACT,
            {
                "order_id": "ORD-0001",
                "line_no": 10,
                "material_number": "M-ENG-1",
                "quantity": "2",
                "unit_price": "500",
                "net_value": "1000",
                "cost": "250",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0001",
                "line_no": 20,
                "material_number": "M-SP-1",
                "quantity": "-1",
                "unit_price": "50",
                "net_value": "50",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0002",
                "line_no": 10,
                "material_number": "M-ENG-1",
                "quantity": "1",
                "unit_price": "2000",
                "net_value": "2000",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0003",
                "line_no": 10,
                "material_number": "M-SP-1",
                "quantity": "5",
                "unit_price": "100",
                "net_value": "500",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0004",
                "line_no": 10,
                "material_number": "M-SRV-1",
                "quantity": "1",
                "unit_price": "10000",
                "net_value": "10000",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0005",
                "line_no": 10,
                "material_number": "M-ENG-1",
                "quantity": "1",
                "unit_price": "300",
                "net_value": "300",
            },
        ),
        (
            FIRST_EXTRACT,
            {
                "order_id": "ORD-0009",
                "line_no": 10,
                "material_number": "M-ENG-1",
                "quantity": "1",
                "unit_price": "100",
                "net_value": "100",
            },
        ),
    ],
    "erp/deliveries": [
        (
            FIRST_EXTRACT,
            {
                "delivery_id": "DLV-1",
                "order_id": "ORD-0002",
                "line_no": 10,
                "planned_ship_date": "2023-02-20",
                "actual_ship_date": "2023-02-22",
                "delivered_date": "2023-02-28",
                "delivered_quantity": "1",
            },
        ),
    ],
    "erp/invoices": [
        (
            FIRST_EXTRACT,
            {
                "invoice_id": "INV-1",
                "order_id": "ORD-0002",
                "customer_number": "0000200001",
                "invoice_date": "2023-03-01",
                "due_date": "2023-04-30",
                "amount": "2000",
                "currency": "USD",
                "cleared_on": "2023-05-05",
                "is_credit_note": False,
            },
        ),
    ],
    "erp/fx_rates": [
        (FIRST_EXTRACT, {"currency": "USD", "rate_date": "2023-01-01", "eur_per_unit": "0.92"}),
        (FIRST_EXTRACT, {"currency": "USD", "rate_date": "2023-02-01", "eur_per_unit": "0.95"}),
        (SECOND_EXTRACT, {"currency": "USD", "rate_date": "2023-02-01", "eur_per_unit": "0.90"}),
        (FIRST_EXTRACT, {"currency": "USD", "rate_date": "2023-04-01", "eur_per_unit": "0.91"}),
        (FIRST_EXTRACT, {"currency": "SEK", "rate_date": "2024-05-01", "eur_per_unit": "0.09"}),
    ],
}

# As the identity asset writes it: every CRM account and ERP customer exactly once.
IDENTITY_MAP = [
    ("crm", "001A0000000000001A", "CUS-0001", "erp_link", 1.0, True),
    ("crm", "001A0000000000005A", "CUS-0001", "vat", 0.97, False),
    ("erp", "0000104711", "CUS-0001", "erp_link", 1.0, False),
    ("crm", "001A0000000000002A", "CUS-0002", "erp_link", 1.0, True),
    ("erp", "0000200001", "CUS-0002", "erp_link", 1.0, False),
    ("crm", "001A0000000000003A", "CUS-0003", "singleton", 1.0, True),
    ("crm", "001A0000000000004A", "CUS-0004", "singleton", 1.0, True),
    ("erp", "0000300001", "CUS-0005", "singleton", 1.0, True),
    ("erp", "0000400001", "CUS-0006", "singleton", 1.0, True),
]


def create_raw_layer(con: duckdb.DuckDBPyConnection, contract: dict[str, Any]) -> None:
    con.execute("create schema if not exists raw")
    for entity, spec in contract["entities"].items():
        system, name = entity.split("/")
        columns = {col: RAW_TYPES[c["type"]] for col, c in spec["columns"].items()}
        columns.update(LINEAGE_COLUMNS)
        ddl = ", ".join(f'"{col}" {sql_type}' for col, sql_type in columns.items())
        con.execute(f"create or replace table raw.{system}__{name} ({ddl})")
        lines_per_file: dict[str, int] = {}
        for extract, row in FIXTURE_ROWS.get(entity, []):
            source_file = f"{entity}/{name}_{extract}.csv"
            lines_per_file[source_file] = lines_per_file.get(source_file, 1) + 1
            values = {col: row.get(col) for col in spec["columns"]}
            values.update(
                {
                    "_source_file": source_file,
                    "_line": lines_per_file[source_file],
                    "_extract_ts": datetime.strptime(extract, "%Y%m%dT%H%M%S"),
                    "_loaded_at": datetime.now().astimezone(),
                    "_run_id": "fixture",
                }
            )
            placeholders = ", ".join(f"cast(? as {columns[col]})" for col in values)
            con.execute(
                f"insert into raw.{system}__{name} values ({placeholders})", list(values.values())
            )


def create_identity_map(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists identity")
    con.execute(
        "create or replace table identity.customer_source_map (source_system varchar, "
        "source_id varchar, customer_id varchar, match_method varchar, "
        "match_probability double, is_anchor boolean, match_evidence varchar)"
    )
    con.executemany(
        "insert into identity.customer_source_map (source_system, source_id, customer_id, "
        "match_method, match_probability, is_anchor) values (?, ?, ?, ?, ?, ?)",
        IDENTITY_MAP,
    )


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else os.environ.get("SEGMENTS_WAREHOUSE")
    if not target:
        print("usage: make_fixture_warehouse.py WAREHOUSE.duckdb (or set SEGMENTS_WAREHOUSE)")
        return 2
    contract = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
    with duckdb.connect(target) as con:
        create_raw_layer(con, contract)
        create_identity_map(con)
    print(f"fixture warehouse written: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
