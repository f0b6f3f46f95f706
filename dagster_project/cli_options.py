"""Command-line options shared by every `segments` command (one definition of `--home`)."""

from __future__ import annotations

from pathlib import Path

import click


def home_option(help_text: str):
    """`--home DIR` (env SEGMENTS_HOME, default ./data): where a command reads and writes."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="SEGMENTS_HOME",
        default="./data",
        show_default=True,
        help=f"{help_text} (env SEGMENTS_HOME).",
    )
