"""What produced a publication: git revision of the code, hash of seeds and config."""

from __future__ import annotations

import hashlib
import subprocess

from dagster_project.paths import PROJECT_ROOT, SEEDS_DIR

CONFIG_DIRS = [
    SEEDS_DIR,
    PROJECT_ROOT / "dagster_project" / "config",
    PROJECT_ROOT / "dagster_project" / "ingest",
]


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash() -> str:
    """sha256 over every seed and config file (name and content), in a stable order."""
    digest = hashlib.sha256()
    for folder in CONFIG_DIRS:
        for path in sorted(p for p in folder.rglob("*") if p.suffix in {".csv", ".yml", ".yaml"}):
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
