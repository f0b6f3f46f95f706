"""Finding the extract files of one entity in a landing folder.

Layout (source_contract.md): `<landing>/<system>/<entity>/<entity>_<YYYYMMDDTHHMMSS>.csv|.parquet`.
The timestamp in the name is the extract time; files are ingested in that order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"^(?P<entity>.+)_(?P<stamp>\d{8}T\d{6})\.(?P<ext>csv|parquet)$", re.IGNORECASE)


@dataclass(frozen=True)
class ExtractFile:
    path: Path
    relative: str  # path relative to the landing folder, with forward slashes
    system: str
    entity: str
    extract_ts: datetime
    file_format: str  # 'csv' | 'parquet'


@dataclass(frozen=True)
class UnrecognisedFile:
    path: Path
    relative: str
    reason: str


def relative_name(landing: Path, path: Path) -> str:
    return path.relative_to(landing).as_posix()


def list_extract_files(
    landing: Path, system: str, entity: str
) -> tuple[list[ExtractFile], list[UnrecognisedFile]]:
    """The entity's extract files in extract-time order, and files that do not fit the layout.

    Hidden files (starting with '.') are ignored: file managers and editors leave them behind.
    """
    folder = landing / system / entity
    if not folder.is_dir():
        return [], []
    extracts: list[ExtractFile] = []
    unrecognised: list[UnrecognisedFile] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        rel = relative_name(landing, path)
        if not path.is_file():
            unrecognised.append(UnrecognisedFile(path, rel, "is a folder, not an extract file"))
            continue
        match = _STAMP.match(path.name)
        stamp = _parse_stamp(match["stamp"]) if match else None
        if not match or match["entity"] != entity or stamp is None:
            unrecognised.append(
                UnrecognisedFile(
                    path,
                    rel,
                    f"file name does not follow {entity}_<YYYYMMDDTHHMMSS>.csv or .parquet",
                )
            )
            continue
        extracts.append(ExtractFile(path, rel, system, entity, stamp, match["ext"].lower()))
    extracts.sort(key=lambda f: (f.extract_ts, f.path.name))
    return extracts, unrecognised


def _parse_stamp(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S")
    except ValueError:  # e.g. month 13: the name looks right but is no timestamp
        return None


def file_sha256(path: Path, chunk_size: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
