"""Ingesting a landing folder into the raw schema: per entity, per file, one transaction a file.

For each entity (contract.yml) its extract files are taken in extract-time order. A file already
loaded with the same content is skipped; a known name with different content is an error. Each
remaining file is staged (csv_stage / parquet_stage, temporary objects only), then, in one
transaction: drift columns added, valid rows appended to raw.<system>__<entity>, problems written
to raw.rejects, the file recorded in raw.load_log and its findings in raw.ingest_findings. A crash
midway rolls all of it back, so a file is either fully ingested and recorded or not at all.

Dagster stays out of this module: assets call ingest_entity / ingest_landing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from dagster_project.ingest.contract import Contract, EntitySpec, SystemFormats, load_contract
from dagster_project.ingest.csv_layout import CsvLayout
from dagster_project.ingest.csv_records import StructuralReject
from dagster_project.ingest.csv_stage import (
    ROWS_VIEW,
    STAGE_TABLE,
    CsvHeaderError,
    CsvSource,
    drop_stage,
    read_csv_header,
    stage_column,
    stage_csv,
)
from dagster_project.ingest.file_schema import SchemaMatch, match_columns
from dagster_project.ingest.landing import ExtractFile, list_extract_files
from dagster_project.ingest.parquet_stage import (
    ParquetReadError,
    read_parquet_schema,
    stage_parquet,
)
from dagster_project.ingest.raw_tables import (
    add_drift_columns,
    ensure_bookkeeping_tables,
    ensure_entity_table,
    ensure_raw_layer,
    qualified,
)
from dagster_project.ingest.scan_ahead import FileScan, ScanAhead, scan_ahead, scan_file
from dagster_project.ingest.validate import (
    ColumnInput,
    FileContext,
    problem_flag,
    validate_and_load,
)

log = logging.getLogger(__name__)

LOADED, SKIPPED, REJECTED_FILE = "loaded", "skipped_already_ingested", "rejected_file"


@dataclass(frozen=True)
class Finding:
    kind: str  # rejected_file | schema_drift | missing_entity | file_name_conflict
    severity: str  # error | warning
    source_system: str
    entity: str
    source_file: str | None
    column_name: str | None
    rule: str
    message: str


@dataclass(frozen=True)
class FileOutcome:
    source_file: str
    file_format: str | None
    extract_ts: datetime | None
    file_hash: str | None
    status: str  # loaded | skipped_already_ingested | rejected_file
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    parser: str | None = None  # duckdb | duckdb+copy | python | parquet
    seconds: float = 0.0
    message: str | None = None


@dataclass
class IngestResult:
    entity: str
    table: str  # qualified raw table, e.g. raw.crm__accounts
    files: list[FileOutcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    def files_with(self, status: str) -> list[FileOutcome]:
        return [f for f in self.files if f.status == status]

    def summary(self) -> dict[str, int | str | float]:
        """Plain values, e.g. for Dagster materialisation metadata."""
        return {
            "table": self.table,
            "files_loaded": len(self.files_with(LOADED)),
            "files_skipped": len(self.files_with(SKIPPED)),
            "files_rejected": len(self.files_with(REJECTED_FILE)),
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "findings": len(self.findings),
            "seconds": round(sum(f.seconds for f in self.files), 3),
        }


def ingest_landing(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    run_id: str,
    contract: Contract | None = None,
) -> dict[str, IngestResult]:
    """Ingest every contract entity of the landing folder (entities without files included)."""
    contract = contract or load_contract()
    ensure_raw_layer(con, contract)
    with scan_ahead(Path(landing), contract.entities, contract, con) as scans:
        results = {
            name: ingest_entity(con, landing, name, run_id, contract, scans=scans)
            for name in contract.entities
        }
    _report_unknown_folders(con, Path(landing), contract, run_id)
    return results


def ingest_entity(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    entity: str,
    run_id: str,
    contract: Contract | None = None,
    *,
    scans: ScanAhead | None = None,
) -> IngestResult:
    """Ingest the new extract files of one entity (e.g. 'crm/accounts') into its raw table.

    `scans` (scan_ahead.scan_ahead): the files' hashes and layouts, read ahead in a helper thread;
    without it each file is read when its turn comes.
    """
    contract = contract or load_contract()
    spec = contract.entity(entity)
    landing = Path(landing)
    ensure_bookkeeping_tables(con)
    ensure_entity_table(con, spec)
    result = IngestResult(entity=entity, table=qualified(spec.raw_table))
    files, unrecognised = list_extract_files(landing, spec.system, spec.entity)

    for odd in unrecognised:
        finding = Finding(
            "rejected_file",
            "warning",
            spec.system,
            spec.entity,
            odd.relative,
            None,
            "bad_file_name",
            f"{odd.relative}: {odd.reason}; not ingested.",
        )
        outcome = FileOutcome(odd.relative, None, None, None, REJECTED_FILE, message=odd.reason)
        _record(con, spec, run_id, outcome, [finding], result)

    if not files:
        folder = f"{spec.system}/{spec.entity}"
        why = "is missing" if not (landing / folder).is_dir() else "holds no extract files"
        finding = Finding(
            "missing_entity",
            "warning",
            spec.system,
            spec.entity,
            None,
            None,
            "no_extract_files",
            f"The landing folder {folder} {why}: {entity} has no rows this run.",
        )
        _record(con, spec, run_id, None, [finding], result)

    contract_formats = contract.formats(spec)
    for extract in files:
        started = time.perf_counter()
        outcome, findings = _ingest_file(
            con, spec, contract_formats, extract, run_id, started, scans
        )
        log.info(
            "%s: %s, read %d, loaded %d, rejected %d (%s, %.2fs)",
            extract.relative,
            outcome.status,
            outcome.rows_read,
            outcome.rows_loaded,
            outcome.rows_rejected,
            outcome.parser or "-",
            outcome.seconds,
        )
        result.files.append(outcome)
        result.findings.extend(findings)
    return result


# --- one file -----------------------------------------------------------------------------------


def _ingest_file(
    con: duckdb.DuckDBPyConnection,
    spec: EntitySpec,
    formats: SystemFormats,
    extract: ExtractFile,
    run_id: str,
    started: float,
    scans: ScanAhead | None = None,
) -> tuple[FileOutcome, list[Finding]]:
    # A CSV file is hashed during its layout scan (one read, side by side); the layout (and
    # what scan-ahead prepared for the bulk reader) is only used if the file turns out to be new.
    scan = scans.scan(extract) if scans is not None else scan_file(extract)
    try:
        return _check_and_load(con, spec, formats, extract, run_id, started, scan)
    finally:
        scan.release()


def _check_and_load(
    con: duckdb.DuckDBPyConnection,
    spec: EntitySpec,
    formats: SystemFormats,
    extract: ExtractFile,
    run_id: str,
    started: float,
    scan: FileScan,
) -> tuple[FileOutcome, list[Finding]]:
    layout, file_hash = scan.layout, scan.file_hash

    def finish(status: str, message: str | None, findings: list[Finding], **counts):
        outcome = FileOutcome(
            extract.relative,
            extract.file_format,
            extract.extract_ts,
            file_hash,
            status,
            seconds=round(time.perf_counter() - started, 3),
            message=message,
            **counts,
        )
        return outcome, findings

    known = con.execute(
        "SELECT DISTINCT file_hash FROM raw.load_log WHERE source_file = ? AND status = ?",
        [extract.relative, LOADED],
    ).fetchall()
    if (file_hash,) in known:
        outcome, findings = finish(SKIPPED, "already ingested with the same content", [])
        _record(con, spec, run_id, outcome, findings)
        return outcome, findings
    if known:
        message = (
            f"{extract.relative} was already ingested with different content; "
            "a file name must never be reused for other content. Nothing was loaded."
        )
        findings = [
            Finding(
                "file_name_conflict",
                "error",
                spec.system,
                spec.entity,
                extract.relative,
                None,
                "same_name_different_content",
                message,
            )
        ]
        outcome, findings = finish(REJECTED_FILE, message, findings)
        _record(con, spec, run_id, outcome, findings)
        return outcome, findings

    try:
        return _stage_validate_load(
            con, spec, formats, extract, layout, scan.source, run_id, file_hash, finish
        )
    finally:
        drop_stage(con)


def _stage_validate_load(
    con: duckdb.DuckDBPyConnection,
    spec: EntitySpec,
    formats: SystemFormats,
    extract: ExtractFile,
    layout: CsvLayout | None,
    source: CsvSource | None,
    run_id: str,
    file_hash: str,
    finish: Callable[..., tuple[FileOutcome, list[Finding]]],
) -> tuple[FileOutcome, list[Finding]]:
    def reject_file(rule: str, message: str, column: str | None = None):
        text = f"{extract.relative}: {message}. The file was not loaded."
        findings = [
            Finding(
                "rejected_file",
                "error",
                spec.system,
                spec.entity,
                extract.relative,
                column,
                rule,
                text,
            )
        ]
        outcome, findings = finish(REJECTED_FILE, text, findings)
        _record(con, spec, run_id, outcome, findings)
        return outcome, findings

    # Stage (temporary objects only, outside the transaction).
    structural: list[StructuralReject] = []
    if layout is not None:
        try:
            header = read_csv_header(extract.path, layout)
        except CsvHeaderError as exc:
            return reject_file("unreadable_header", str(exc))
        types = ["VARCHAR"] * len(header)
    else:
        try:
            schema = read_parquet_schema(con, extract.path)
        except ParquetReadError as exc:
            return reject_file("unreadable_file", str(exc))
        header, types = schema.names, schema.types

    match = match_columns(header, spec)
    if match.duplicates:
        return reject_file(
            "duplicate_column",
            f"column(s) {', '.join(match.duplicates)} appear more than once in the header",
            match.duplicates[0],
        )
    if match.missing_required:
        missing = ", ".join(repr(c) for c in match.missing_required)
        return reject_file(
            "missing_required_column",
            f"required column {missing} is missing",
            match.missing_required[0],
        )

    inputs = {
        name: ColumnInput(stage_column(pos), types[pos])
        for name, pos in match.contract_positions.items()
    }
    flag: str | None = None
    if layout is not None:
        staged = stage_csv(
            con,
            extract.path,
            layout,
            match.header_info(spec),
            row_check=problem_flag(spec, formats, inputs),
            source=source,
        )
        records, structural, parser = staged.records, staged.structural_rejects, staged.parser
        flag = staged.flag
        note = f"{parser} reader" + (
            f" (fast path refused: {staged.fallback_reason})" if staged.fallback_reason else ""
        )
    else:
        try:
            records = stage_parquet(con, extract.path, schema)
        except ParquetReadError as exc:
            return reject_file("unreadable_file", str(exc))
        parser, note = "parquet", "parquet reader"

    drift_positions = [i for i, n in enumerate(match.names) if n not in spec.columns]
    drift = {match.names[i]: _as_text(stage_column(i), types[i]) for i in drift_positions}
    findings = _drift_findings(spec, extract, match, types)
    context = FileContext(run_id, extract.relative, extract.extract_ts, datetime.now(UTC))

    # Write (one transaction: all of the file, or nothing).
    con.execute("BEGIN TRANSACTION")
    try:
        add_drift_columns(con, spec.raw_table, list(drift))
        checked = validate_and_load(
            con,
            ROWS_VIEW,
            spec,
            formats,
            inputs,
            drift,
            context,
            stage_table=STAGE_TABLE if layout is not None else None,
            flag=flag,
        )
        _insert_structural_rejects(con, spec, context, structural)
        rejected = checked.rows_rejected + len(structural)
        if records != checked.rows_loaded + rejected:  # a bug, never a data problem
            raise RuntimeError(
                f"{extract.relative}: {records} records read but {checked.rows_loaded} loaded "
                f"and {rejected} rejected; refusing to record an unreconciled load"
            )
        outcome, findings = finish(
            LOADED,
            note,
            findings,
            rows_read=records,
            rows_loaded=checked.rows_loaded,
            rows_rejected=rejected,
            parser=parser,
        )
        _write_load_log(con, spec, run_id, outcome, context.loaded_at)
        _write_findings(con, run_id, findings)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return outcome, findings


def _as_text(expr: str, duckdb_type: str) -> str:
    return expr if duckdb_type.upper() == "VARCHAR" else f"CAST({expr} AS VARCHAR)"


_PARQUET_TYPES_FOR = {
    "str": ("VARCHAR",),
    "int": (
        "BIGINT",
        "INTEGER",
        "SMALLINT",
        "TINYINT",
        "UBIGINT",
        "UINTEGER",
        "USMALLINT",
        "UTINYINT",
        "HUGEINT",
    ),
    "dec": ("DECIMAL", "DOUBLE", "FLOAT", "BIGINT", "INTEGER"),
    "date": ("DATE",),
    "ts": ("TIMESTAMP WITH TIME ZONE",),
    "bool": ("BOOLEAN",),
}


def _drift_findings(
    spec: EntitySpec, extract: ExtractFile, match: SchemaMatch, types: list[str]
) -> list[Finding]:
    def drift(column: str | None, rule: str, message: str) -> Finding:
        return Finding(
            "schema_drift",
            "warning",
            spec.system,
            spec.entity,
            extract.relative,
            column,
            rule,
            f"{extract.relative}: {message}",
        )

    findings = [
        drift(
            name,
            "unknown_column",
            f"column {name!r} is not in the source contract; kept in raw as text.",
        )
        for name in match.extra
    ]
    if match.missing_optional:  # one finding per file: a narrow extract is not many problems
        missing = ", ".join(match.missing_optional)
        findings.append(
            drift(
                None,
                "missing_optional_columns",
                f"optional columns missing, loaded as empty: {missing}.",
            )
        )
    if extract.file_format == "parquet":
        for name, pos in match.contract_positions.items():
            ctype, actual = spec.columns[name].type, types[pos].upper()
            expected = _PARQUET_TYPES_FOR[ctype]
            if actual != "VARCHAR" and not actual.startswith(expected):
                findings.append(
                    drift(
                        name,
                        "unexpected_type",
                        f"column {name!r} has Parquet type {types[pos]}, the contract says {ctype}; "
                        "values are converted where they convert cleanly.",
                    )
                )
    return findings


# --- bookkeeping writes -------------------------------------------------------------------------


def _insert_structural_rejects(
    con: duckdb.DuckDBPyConnection,
    spec: EntitySpec,
    context: FileContext,
    rejects: list[StructuralReject],
) -> None:
    if not rejects:
        return
    # Lists as parameters, unnested side by side in order (registering an Arrow table costs
    # ~0.3 s the first time in a process: DuckDB imports pyarrow's dataset module).
    con.execute(
        "INSERT INTO raw.rejects BY NAME SELECT ? AS run_id, ? AS source_system, ? AS entity, "
        "? AS source_file, unnest(CAST(? AS BIGINT[])) AS line, "
        "unnest(CAST(? AS VARCHAR[])) AS column_name, unnest(CAST(? AS VARCHAR[])) AS rule, "
        "unnest(CAST(? AS VARCHAR[])) AS reason, unnest(CAST(? AS VARCHAR[])) AS observed_value, "
        "unnest(CAST(? AS VARCHAR[])) AS record_key, CAST(? AS TIMESTAMPTZ) AS loaded_at",
        [
            context.run_id,
            spec.system,
            spec.entity,
            context.source_file,
            [r.line for r in rejects],
            [r.column_name for r in rejects],
            [r.rule for r in rejects],
            [r.reason for r in rejects],
            [r.observed_value for r in rejects],
            [r.record_key for r in rejects],
            context.loaded_at,
        ],
    )


def _write_load_log(
    con: duckdb.DuckDBPyConnection,
    spec: EntitySpec,
    run_id: str,
    outcome: FileOutcome,
    loaded_at: datetime,
) -> None:
    con.execute(
        "INSERT INTO raw.load_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            spec.system,
            spec.entity,
            outcome.source_file,
            outcome.file_hash,
            outcome.extract_ts,
            outcome.file_format,
            outcome.rows_read,
            outcome.rows_loaded,
            outcome.rows_rejected,
            outcome.status,
            outcome.message,
            loaded_at,
        ],
    )


def _write_findings(con: duckdb.DuckDBPyConnection, run_id: str, findings: list[Finding]) -> None:
    for f in findings:
        con.execute(
            "INSERT INTO raw.ingest_findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                f.kind,
                f.severity,
                f.source_system,
                f.entity,
                f.source_file,
                f.column_name,
                f.rule,
                f.message,
                run_id,
            ],
        )


def _record(
    con: duckdb.DuckDBPyConnection,
    spec: EntitySpec,
    run_id: str,
    outcome: FileOutcome | None,
    findings: list[Finding],
    result: IngestResult | None = None,
) -> None:
    """Record a file that was not loaded (and/or findings) in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        if outcome is not None:
            _write_load_log(con, spec, run_id, outcome, datetime.now(UTC))
        _write_findings(con, run_id, findings)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if result is not None:
        if outcome is not None:
            result.files.append(outcome)
        result.findings.extend(findings)


def _report_unknown_folders(
    con: duckdb.DuckDBPyConnection, landing: Path, contract: Contract, run_id: str
) -> None:
    """Folders the contract does not know are reported, never silently ignored."""
    if not landing.is_dir():
        return
    known = set(contract.entities)
    findings = []
    for system_dir in sorted(p for p in landing.iterdir() if p.is_dir()):
        if system_dir.name.startswith("."):
            continue
        for entity_dir in sorted(p for p in system_dir.iterdir() if p.is_dir()):
            name = f"{system_dir.name}/{entity_dir.name}"
            if name not in known and not entity_dir.name.startswith("."):
                findings.append(
                    Finding(
                        "schema_drift",
                        "warning",
                        system_dir.name,
                        entity_dir.name,
                        None,
                        None,
                        "unknown_entity",
                        f"The landing folder {name} is not an entity of the source contract; "
                        "its files were not ingested.",
                    )
                )
    if findings:
        for f in findings:
            log.warning(f.message)
        con.execute("BEGIN TRANSACTION")
        try:
            _write_findings(con, run_id, findings)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
