"""Masking personal data before it reaches rejects, findings or logs.

A masked value keeps its first character and its shape (an e-mail stays recognisable as one), so a
steward can tell values apart while looking at the source system, without the value itself leaving
it. The SQL and Python forms produce the same text.
"""

from __future__ import annotations

MASK = "***"


def mask_value(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "":
        return ""
    if "@" in value:
        return f"{value[0]}{MASK}@{MASK}"
    return f"{value[0]}{MASK}"


def mask_sql(expr: str) -> str:
    """SQL expression masking the VARCHAR `expr` exactly like mask_value."""
    return (
        f"CASE WHEN ({expr}) IS NULL OR ({expr}) = '' THEN ({expr}) "
        f"WHEN contains(({expr}), '@') THEN left(({expr}), 1) || '{MASK}@{MASK}' "
        f"ELSE left(({expr}), 1) || '{MASK}' END"
    )


def mask_fields(fields: list[str]) -> str:
    """A whole record, every field masked: for lines whose fields cannot be told apart reliably."""
    return ",".join(mask_value(f) or "" for f in fields)
