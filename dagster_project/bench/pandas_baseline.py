"""The pandas baseline: the floor's core work as a typical notebook does it in plain pandas
(read_csv, to_numeric/to_datetime, drop_duplicates, merge, merge_asof, groupby).

    python -m dagster_project.bench.pandas_baseline --landing L --as-of 2025-12-31 --out R.json

The bench runs it as its own process under RLIMIT_AS: running out of memory ends this
process (exit code 99, reported as "out of memory"), never the machine.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_project.bench.common import BaselineResult, kpi_vars, landing_entities

EXIT_OUT_OF_MEMORY = 99


def read_csv_text(path: Path) -> pd.DataFrame:
    """One extract as text. A stray quote (broken quoting) makes pandas swallow every line up to
    the next quote, silently, or fail with "EOF inside string"; so, as a notebook ends up doing,
    files with quotes are read line by line first and lines with an odd number of quotes dropped
    (no field of the contract spans lines)."""
    options = {"dtype": str, "keep_default_na": False, "na_values": [""], "on_bad_lines": "skip"}
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if '"' in text:
        text = "".join(line for line in text.splitlines(True) if line.count('"') % 2 == 0)
    return pd.read_csv(io.StringIO(text), **options)


def read_entity(files: dict[str, list[Path]]) -> pd.DataFrame:
    """All extracts of one entity as text, with the file they came from (newest extract wins)."""
    frames = [read_csv_text(path).assign(_source_file=path.name) for path in files["csv"]]
    frames += [pd.read_parquet(path).assign(_source_file=path.name) for path in files["parquet"]]
    return pd.concat(frames, ignore_index=True)


def _money(series: pd.Series) -> pd.Series:
    # Money has 4 decimals in the source contract (Parquet may carry longer doubles).
    return pd.to_numeric(series, errors="coerce").round(4)


def _erp_date(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series) or series.map(type).eq(str).sum() == 0:
        return pd.to_datetime(series, errors="coerce")
    text = series.where(series != "00000000")
    return pd.to_datetime(text, format="%Y%m%d", errors="coerce")


def _parses(raw: pd.Series, parsed: pd.Series) -> pd.Series:
    return raw.isna() | (raw == "00000000") | parsed.notna()


def _newest(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    # The extract timestamp is in the file name; names sort by it.
    return df.sort_values("_source_file").drop_duplicates(keys, keep="last")


def ingest(landing: Path) -> dict[str, pd.DataFrame]:
    tables = {name: read_entity(files) for name, files in landing_entities(landing).items()}

    lines = tables["erp/order_lines"]
    typed = {
        c: _money(lines[c]) for c in ("quantity", "unit_price", "discount_pct", "net_value", "cost")
    }
    line_no = pd.to_numeric(lines["line_no"], errors="coerce")
    ok = (
        lines[["order_id", "line_no", "material_number", "quantity", "unit_price", "net_value"]]
        .notna()
        .all(axis=1)
        & line_no.notna()
    )
    for c, parsed in typed.items():
        ok &= lines[c].isna() | parsed.notna()
    tables["erp/order_lines"] = pd.DataFrame(
        {
            "order_id": lines["order_id"].str.strip(),
            "line_no": line_no,
            "material_number": lines["material_number"].str.strip(),
            "quantity": typed["quantity"],
            "net_value": typed["net_value"],
            "line_cost_eur": typed["cost"],
            "_source_file": lines["_source_file"],
        }
    )[ok]

    orders = tables["erp/sales_orders"]
    order_date = _erp_date(orders["order_date"])
    ok = orders[["order_id", "customer_number", "order_type", "currency"]].notna().all(axis=1)
    ok &= order_date.notna() & _erp_date(orders["created_on"]).notna()
    ok &= _parses(orders["requested_delivery_date"], _erp_date(orders["requested_delivery_date"]))
    ok &= orders["change_count"].isna() | pd.to_numeric(orders["change_count"], "coerce").notna()
    tables["erp/sales_orders"] = pd.DataFrame(
        {
            "order_id": orders["order_id"].str.strip(),
            "customer_number": orders["customer_number"].str.strip(),
            "order_date": order_date,
            "currency": orders["currency"].str.strip().str.upper(),
            "_source_file": orders["_source_file"],
        }
    )[ok]

    customers = tables["erp/customers"]
    ok = customers[["customer_number", "name1", "country"]].notna().all(axis=1)
    ok &= _erp_date(customers["created_on"]).notna()
    ok &= customers["credit_limit"].isna() | _money(customers["credit_limit"]).notna()
    tables["erp/customers"] = pd.DataFrame(
        {
            "customer_number": customers["customer_number"].str.strip(),
            "_source_file": customers["_source_file"],
        }
    )[ok]

    materials = tables["erp/materials"]
    cost = _money(materials["standard_cost"])
    ok = materials[["material_number", "description", "product_line"]].notna().all(axis=1)
    ok &= materials["standard_cost"].isna() | cost.notna()
    tables["erp/materials"] = pd.DataFrame(
        {
            "material_number": materials["material_number"].str.strip(),
            "standard_cost_eur": cost,
            "_source_file": materials["_source_file"],
        }
    )[ok]

    fx = tables["erp/fx_rates"]
    tables["erp/fx_rates"] = pd.DataFrame(
        {
            "currency": fx["currency"].str.strip().str.upper(),
            "rate_date": _erp_date(fx["rate_date"]),
            "eur_per_unit": _money(fx["eur_per_unit"]),
            "_source_file": fx["_source_file"],
        }
    ).dropna(subset=["currency", "rate_date", "eur_per_unit"])
    return tables


def facts(tables: dict[str, pd.DataFrame], as_of: str, reporting_currency: str) -> pd.DataFrame:
    orders = _newest(tables["erp/sales_orders"], ["order_id"])
    lines = _newest(tables["erp/order_lines"], ["order_id", "line_no"])
    materials = _newest(tables["erp/materials"], ["material_number"])
    fx = _newest(tables["erp/fx_rates"], ["currency", "rate_date"])
    fx = fx[fx["currency"] != reporting_currency].assign(
        rate_month=lambda d: d["rate_date"].dt.to_period("M").dt.to_timestamp()
    )
    fx = fx.sort_values("rate_date").drop_duplicates(["currency", "rate_month"], keep="last")

    df = lines.drop(columns="_source_file").merge(
        orders.drop(columns="_source_file"), on="order_id", how="inner"
    )
    df = df[df["order_date"] <= pd.Timestamp(as_of)]
    df = df.merge(materials.drop(columns="_source_file"), on="material_number", how="left")
    df["order_month"] = df["order_date"].dt.to_period("M").dt.to_timestamp()
    df = pd.merge_asof(
        df.sort_values("order_month"),
        fx[["currency", "rate_month", "eur_per_unit"]].sort_values("rate_month"),
        left_on="order_month",
        right_on="rate_month",
        by="currency",
        direction="backward",
    )
    df["fx"] = np.where(df["currency"] == reporting_currency, 1.0, df["eur_per_unit"])
    credit = df["quantity"] < 0
    df["signed_net_value"] = np.where(credit, -df["net_value"].abs(), df["net_value"])
    line_cost = np.where(credit, -df["line_cost_eur"].abs(), df["line_cost_eur"])
    df["cost_eur"] = np.where(
        df["line_cost_eur"].notna(), line_cost, df["quantity"] * df["standard_cost_eur"]
    ).round(4)
    df["revenue_eur"] = (df["signed_net_value"] * df["fx"]).round(4)
    df["margin_eur"] = (df["revenue_eur"] - df["cost_eur"]).round(4)
    return df[
        [
            "order_id",
            "line_no",
            "customer_number",
            "order_date",
            "revenue_eur",
            "cost_eur",
            "margin_eur",
            "signed_net_value",
        ]
    ]


def features(fct: pd.DataFrame, as_of: str) -> pd.DataFrame:
    as_of_ts = pd.Timestamp(as_of)
    orders = fct.groupby(["customer_number", "order_id", "order_date"], as_index=False).agg(
        revenue_eur=("revenue_eur", "sum"), net_value=("signed_net_value", "sum")
    )
    totals = orders.groupby("customer_number").agg(
        orders=("order_id", "count"), revenue_eur=("revenue_eur", "sum")
    )
    days = (
        orders[orders["net_value"] > 0]
        .groupby(["customer_number", "order_date"], as_index=False)["revenue_eur"]
        .sum()
        .sort_values(["customer_number", "order_date"])
    )
    days["day_no"] = days.groupby("customer_number").cumcount() + 1
    btyd = days.groupby("customer_number").agg(
        frequency=("day_no", "max"), first=("order_date", "min"), last=("order_date", "max")
    )
    btyd["frequency"] -= 1
    btyd["monetary_eur"] = days[days["day_no"] > 1].groupby("customer_number")["revenue_eur"].mean()
    out = totals.join(btyd, how="left")
    out["frequency"] = out["frequency"].fillna(0).astype(int)
    out["days_since_last_purchase"] = (as_of_ts - out["last"]).dt.days
    out["customer_age_days"] = (as_of_ts - out["first"]).dt.days
    return out.reset_index()


def kpis(fct: pd.DataFrame, customers: pd.DataFrame, first_year: int) -> pd.DataFrame:
    known = set(customers["customer_number"])
    df = fct[fct["customer_number"].isin(known)].assign(year=fct["order_date"].dt.year)
    df = df[df["year"] >= first_year]
    return df.groupby(["customer_number", "year"], as_index=False).agg(
        orders=("order_id", "nunique"),
        order_lines=("order_id", "size"),
        revenue_eur=("revenue_eur", "sum"),
        cost_eur=("cost_eur", "sum"),
        margin_eur=("margin_eur", "sum"),
    )


def run_pandas(landing: Path, as_of: str) -> BaselineResult:
    settings = kpi_vars()
    result = BaselineResult(name="pandas")
    started = time.perf_counter()
    tables = ingest(landing)
    result.seconds["ingest"] = round(time.perf_counter() - started, 3)
    result.rows["ingest"] = sum(len(t) for t in tables.values())

    started = time.perf_counter()
    fct = facts(tables, as_of, str(settings["reporting_currency"]))
    result.seconds["facts"] = round(time.perf_counter() - started, 3)
    result.rows["facts"] = len(fct)

    started = time.perf_counter()
    feats = features(fct, as_of)
    result.seconds["features"] = round(time.perf_counter() - started, 3)
    result.rows["features"] = len(feats)

    started = time.perf_counter()
    customers = _newest(tables["erp/customers"], ["customer_number"])
    kpi = kpis(fct, customers, int(settings["kpi_first_year"]))
    result.seconds["kpis"] = round(time.perf_counter() - started, 3)
    result.rows["kpis"] = len(kpi)

    by_year = kpi.groupby("year")[
        ["orders", "order_lines", "revenue_eur", "cost_eur", "margin_eur"]
    ].sum()
    result.kpi_by_year = {
        str(year): {
            k: (int(v) if k in ("orders", "order_lines") else round(float(v), 4))
            for k, v in row.items()
        }
        for year, row in by_year.iterrows()
    }
    result.features_summary = {
        "customers": len(feats),
        "orders": int(feats["orders"].sum()),
        "revenue_eur": round(float(feats["revenue_eur"].sum()), 4),
        "frequency": int(feats["frequency"].sum()),
        "days_since_last_purchase": int(feats["days_since_last_purchase"].sum()),
    }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        run_pandas(args.landing, args.as_of).write(args.out)
    except MemoryError:
        print("pandas baseline: out of memory", file=sys.stderr)
        sys.exit(EXIT_OUT_OF_MEMORY)


if __name__ == "__main__":
    main()
