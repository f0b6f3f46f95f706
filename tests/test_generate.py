"""The demo data generator: deterministic, contract-true landing files, planted defects that
really break the contract where the truth says, and a ground truth that matches the files."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from dagster_project.generate import GenerateSummary, generate
from dagster_project.paths import CONTRACT_FILE, SEEDS_DIR

CUSTOMERS, YEARS = 150, 2
CONTRACT = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
FILE_NAME = re.compile(r"^(?P<entity>[a-z_]+)_(?P<stamp>\d{8}T\d{6})\.(?P<ext>csv|parquet)$")
INT = re.compile(r"^-?\d+$")
DEC = re.compile(r"^-?\d+(\.\d+)?$")


def _generate(root: Path, seed: int) -> GenerateSummary:
    return generate(root / "landing", root / "truth", customers=CUSTOMERS, years=YEARS, seed=seed)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, GenerateSummary]:
    root = tmp_path_factory.mktemp("gen_a")
    return root, _generate(root, seed=7)


@pytest.fixture(scope="module")
def landing(run) -> Path:
    return run[0] / "landing"


@pytest.fixture(scope="module")
def truth(run) -> Path:
    return run[0] / "truth"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_truth(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _defects(truth: Path) -> dict[str, dict[int, dict[str, str]]]:
    by_file: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    for row in _read_truth(truth / "planted_defects.csv"):
        by_file[row["file"]][int(row["line"])] = row
    return by_file


def _entity(rel: str) -> str:
    system, entity, _ = rel.split("/")
    return f"{system}/{entity}"


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8").removeprefix("\ufeff")


def _good_rows(path: Path, landing: Path, defects) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV with the planted defect lines taken out."""
    lines = _text(path).splitlines(keepends=True)
    bad = defects.get(str(path.relative_to(landing)), {})
    kept = "".join(line for number, line in enumerate(lines, start=1) if number not in bad)
    rows = list(csv.reader(io.StringIO(kept, newline="")))
    return rows[0], rows[1:]


def _valid(value: str, kind: str, system: str) -> bool:
    """Whether a non-empty value parses as its contract type."""
    if kind == "str":
        return True
    if kind == "int":
        return bool(INT.match(value))
    if kind == "dec":
        return bool(DEC.match(value))
    if kind == "bool":
        return value in (("true", "false") if system == "crm" else ("X",))
    try:
        if kind == "date":
            if system == "erp" and value == "00000000":
                return True
            datetime.strptime(value, "%Y-%m-%d" if system == "crm" else "%Y%m%d")
            return True
        parsed = datetime.fromisoformat(value)
        return parsed.tzinfo is not None and "T" in value
    except ValueError:
        return False


# --- determinism -------------------------------------------------------------------------------

def test_same_seed_writes_byte_identical_files(run, tmp_path):
    root, _ = run
    _generate(tmp_path, seed=7)
    first, second = _files(root), _files(tmp_path)
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []


def test_another_seed_writes_other_data(run, tmp_path):
    root, _ = run
    _generate(tmp_path, seed=8)
    first, second = _files(root), _files(tmp_path)
    same = [n for n in first if n in second and first[n] == second[n]]
    assert not any(n.endswith("companies.csv") or "order_lines" in n for n in same)


# --- layout and contract ------------------------------------------------------------------------

def test_every_entity_has_a_full_load_and_incremental_extracts(landing, run):
    _, summary = run
    stamps = defaultdict(list)
    for path in landing.rglob("*.*"):
        match = FILE_NAME.match(path.name)
        assert match, path
        assert match["entity"] == path.parent.name
        expected_ext = "parquet" if _entity(str(path.relative_to(landing))) in (
            "erp/materials", "erp/fx_rates") else "csv"
        assert match["ext"] == expected_ext, path
        stamps[_entity(str(path.relative_to(landing)))].append(match["stamp"])
    assert set(stamps) == set(CONTRACT["entities"])
    for entity, found in stamps.items():
        assert 2 <= len(found) <= 3, entity
    assert summary.files == sum(len(v) for v in stamps.values())
    assert summary.companies == CUSTOMERS
    assert summary.order_lines > 0 and summary.bytes_written > 0


def test_csv_headers_are_the_contract_columns(landing):
    boms, reordered = 0, 0
    for path in landing.rglob("*.csv"):
        raw = path.read_bytes()
        boms += raw.startswith(b"\xef\xbb\xbf")
        header = next(csv.reader(io.StringIO(_text(path))))
        columns = list(CONTRACT["entities"][_entity(str(path.relative_to(landing)))]["columns"])
        assert set(header) == set(columns), path
        assert len(header) == len(columns), path
        reordered += header != columns and header != sorted(columns)
    assert boms >= 1
    assert reordered >= 1


def test_parquet_files_are_typed(landing):
    expected = {"str": "string", "date": "date32[day]", "dec": "double"}
    for path in landing.rglob("*.parquet"):
        schema = pq.read_schema(path)
        spec = CONTRACT["entities"][_entity(str(path.relative_to(landing)))]["columns"]
        assert set(schema.names) == set(spec)
        for name, column in spec.items():
            assert str(schema.field(name).type) == expected[column["type"]], (path, name)


def test_good_rows_parse_per_contract(landing, truth):
    defects = _defects(truth)
    checked = 0
    for path in sorted(landing.rglob("*.csv")):
        entity = _entity(str(path.relative_to(landing)))
        system = entity.split("/")[0]
        spec = CONTRACT["entities"][entity]["columns"]
        header, rows = _good_rows(path, landing, defects)
        for row in rows:
            assert len(row) == len(header), (path, row)
            for name, value in zip(header, row, strict=True):
                if system == "erp" and spec[name]["type"] == "bool":
                    assert value in ("", "X"), (path, name, value)
                    continue
                if value == "":
                    assert not (value == "" and spec[name].get("required", False)), (path, name, row)
                    continue
                assert _valid(value, spec[name]["type"], system), (path, name, value)
            checked += 1
    assert checked > 10_000


def test_erp_customer_numbers_keep_leading_zeros(landing, truth):
    defects = _defects(truth)
    for path in landing.glob("erp/customers/*.csv"):
        header, rows = _good_rows(path, landing, defects)
        numbers = [r[header.index("customer_number")] for r in rows]
        assert all(re.fullmatch(r"\d{10}", n) for n in numbers)
        assert all(n.startswith("0") for n in numbers)


# --- planted defects ---------------------------------------------------------------------------

def test_every_csv_of_size_has_a_planted_defect(landing, truth, run):
    _, summary = run
    defects = _defects(truth)
    for path in landing.rglob("*.csv"):
        rel = str(path.relative_to(landing))
        if summary.rows[rel] >= 40:
            assert rel in defects, rel
    kinds = {d["kind"] for rows in defects.values() for d in rows.values()}
    assert kinds == {"unparseable_date", "text_in_numeric", "missing_required", "broken_quoting",
                     "truncated_last_line"}
    truncated = [f for f, rows in defects.items()
                 if any(d["kind"] == "truncated_last_line" for d in rows.values())]
    assert 1 <= len(truncated) <= 2


def test_planted_defects_break_the_contract_as_recorded(landing, truth):
    for rel, rows in _defects(truth).items():
        path = landing / rel
        entity = _entity(rel)
        system = entity.split("/")[0]
        spec = CONTRACT["entities"][entity]["columns"]
        text = _text(path)
        lines = text.splitlines(keepends=True)
        header = next(csv.reader(io.StringIO(lines[0])))
        for number, defect in rows.items():
            line = lines[number - 1]
            column, kind = defect["column"], defect["kind"]
            assert column in header, defect
            if kind == "truncated_last_line":
                assert number == len(lines) and not text.endswith("\n"), defect
                fields = next(csv.reader(io.StringIO(line)))
                assert len(fields) < len(header)
                assert header[len(fields) - 1] == column != header[-1]
                continue
            if kind == "broken_quoting":
                assert line.count('"') % 2 == 1, defect
                assert spec[column]["type"] == "str"
                continue
            fields = next(csv.reader(io.StringIO(line)))
            assert len(fields) == len(header), defect
            value = fields[header.index(column)]
            if kind == "missing_required":
                assert value == "" and spec[column].get("required", False), defect
            elif kind == "unparseable_date":
                assert spec[column]["type"] in ("date", "ts")
                assert value and not _valid(value, spec[column]["type"], system), defect
            elif kind == "text_in_numeric":
                assert spec[column]["type"] in ("int", "dec")
                assert value and not _valid(value, spec[column]["type"], system), defect
            else:
                pytest.fail(f"unknown kind {kind}")


def test_some_good_rows_span_several_physical_lines(landing, truth):
    defects = _defects(truth)
    multiline = 0
    for path in landing.glob("crm/surveys/*.csv"):
        _, rows = _good_rows(path, landing, defects)
        multiline += sum(any("\n" in value for value in row) for row in rows)
    assert multiline >= 1


# --- ground truth ------------------------------------------------------------------------------

def _all_good_rows(landing: Path, truth: Path, entity: str) -> list[dict[str, str]]:
    defects = _defects(truth)
    out = []
    for path in sorted(landing.glob(f"{entity}/*.csv")):
        header, rows = _good_rows(path, landing, defects)
        out.extend(dict(zip(header, row, strict=True)) for row in rows)
    return out


def test_truth_source_records_cover_every_account_and_customer(landing, truth):
    records = _read_truth(truth / "source_records.csv")
    crm = {r["source_id"] for r in records if r["source_system"] == "crm"}
    erp = {r["source_id"] for r in records if r["source_system"] == "erp"}
    companies = {r["company_id"] for r in _read_truth(truth / "companies.csv")}
    assert {r["company_id"] for r in records} <= companies
    accounts = {r["account_id"] for r in _all_good_rows(landing, truth, "crm/accounts")}
    customers = {r["customer_number"] for r in _all_good_rows(landing, truth, "erp/customers")}
    assert accounts == crm
    assert customers == erp
    assert len(companies) == CUSTOMERS


def test_truth_uses_the_business_taxonomy(truth):
    taxonomy = {(r["segment"], r["sub_segment"]) for r in _read_truth(
        SEEDS_DIR / "segment_taxonomy.csv")}
    profiles = {r["value_profile"] for r in _read_truth(SEEDS_DIR / "value_profiles.csv")}
    companies = _read_truth(truth / "companies.csv")
    assert {(c["segment"], c["sub_segment"]) for c in companies} <= taxonomy
    assert {c["value_profile"] for c in companies} <= profiles
    assert {c["service_tier"] for c in companies} == {"High-touch", "Medium-touch", "Low-touch"}


def test_truth_opportunities_cover_every_opportunity(landing, truth):
    truth_opps = {r["opportunity_id"]: r for r in _read_truth(truth / "opportunities.csv")}
    landed = {r["opportunity_id"] for r in _all_good_rows(landing, truth, "crm/opportunities")}
    assert landed == set(truth_opps)
    profiles = {r["value_profile"] for r in _read_truth(SEEDS_DIR / "value_profiles.csv")}
    assert {r["value_profile"] for r in truth_opps.values()} <= profiles


def test_value_driver_ranks_are_one_to_k(landing, truth):
    drivers = [r["driver"] for r in _read_truth(SEEDS_DIR / "value_drivers.csv")]
    ratings = _all_good_rows(landing, truth, "crm/value_driver_ratings")
    assert ratings
    for row in ratings:
        ranks = sorted(int(row[d]) for d in drivers if row[d] != "")
        assert ranks == list(range(1, len(ranks) + 1)) and ranks, row


# --- the mess the pipeline must clean --------------------------------------------------------------

def test_extracts_carry_the_documented_mess(landing, truth):
    accounts = _all_good_rows(landing, truth, "crm/accounts")
    customers = _all_good_rows(landing, truth, "erp/customers")
    records = _read_truth(truth / "source_records.csv")
    erp_numbers = {r["customer_number"] for r in customers}
    links = [a["erp_customer_number"] for a in accounts]
    assert any(link == "" for link in links)
    assert any(link and link not in erp_numbers for link in links)  # stale or mistyped
    assert any(c["name1"].isupper() for c in customers)
    assert any(re.search(r"(AE|OE|UE|SS)", c["name1"]) for c in customers)
    assert any(re.search(r"[^\x00-\x7f]", a["account_name"]) for a in accounts)
    by_company = defaultdict(set)
    for r in records:
        by_company[(r["source_system"], r["company_id"])].add(r["source_id"])
    assert any(len(ids) > 1 for (system, _), ids in by_company.items() if system == "crm")
    assert any(len(ids) > 1 for (system, _), ids in by_company.items() if system == "erp")
    assert any(a["segment"] == "" for a in accounts) and any(a["segment"] for a in accounts)
    assert any(c["deletion_flag"] == "X" for c in customers)
    account_types = {a["account_type"] for a in accounts}
    assert {"Customer", "End User", "Distributor", "EPC Contractor"} <= account_types
    assert any(a["parent_account_id"] for a in accounts)
    # Incremental extracts re-deliver accounts with a newer last_modified.
    by_id = defaultdict(list)
    for a in accounts:
        by_id[a["account_id"]].append(a["last_modified"])
    assert any(len(v) > 1 and len(set(v)) > 1 for v in by_id.values())

    invoices = _all_good_rows(landing, truth, "erp/invoices")
    credit = [i for i in invoices if i["is_credit_note"] == "X"]
    assert credit and all(float(i["amount"]) < 0 for i in credit)
    lines = _all_good_rows(landing, truth, "erp/order_lines")
    assert any(float(line["quantity"]) < 0 for line in lines)
    orders = _all_good_rows(landing, truth, "erp/sales_orders")
    assert {o["currency"] for o in orders} > {"EUR"}
    assert any(o["end_user_customer_number"] for o in orders)
    deliveries = _all_good_rows(landing, truth, "erp/deliveries")
    assert any(d["actual_ship_date"] > d["planned_ship_date"] for d in deliveries)
    assert any(d["actual_ship_date"] == "00000000" for d in deliveries)


def test_one_fx_month_is_missing(landing):
    rows = []
    for path in landing.glob("erp/fx_rates/*.parquet"):
        rows.extend(pq.read_table(path).to_pylist())
    months = defaultdict(set)
    for row in rows:
        months[row["currency"]].add(row["rate_date"])
    counts = sorted(len(m) for m in months.values())
    assert counts[0] == counts[-1] - 1 and counts[1] == counts[-1]


# --- real signal -----------------------------------------------------------------------------------

def test_high_touch_customers_rush_and_change_more(landing, truth):
    tier = {c["company_id"]: c["service_tier"] for c in _read_truth(truth / "companies.csv")}
    company_of = {r["source_id"]: r["company_id"] for r in _read_truth(truth / "source_records.csv")
                  if r["source_system"] == "erp"}
    fast, changes, total = defaultdict(int), defaultdict(int), defaultdict(int)
    for order in _all_good_rows(landing, truth, "erp/sales_orders"):
        t = tier[company_of[order["customer_number"]]]
        total[t] += 1
        fast[t] += order["order_type"] in ("Rush", "Expedited")
        changes[t] += int(order["change_count"] or 0)
    share = {t: fast[t] / total[t] for t in total}
    assert share["High-touch"] > share["Medium-touch"] > share["Low-touch"]
    assert share["High-touch"] > 2 * share["Low-touch"]
    assert changes["High-touch"] / total["High-touch"] > 2 * changes["Low-touch"] / total["Low-touch"]
