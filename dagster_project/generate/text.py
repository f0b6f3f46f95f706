"""How people and systems spell things: patterns, transliteration, typos, VAT and web formats.

These functions turn one true value (a legal name, a VAT number, a street) into the way a sales
rep types it in CRM or the way an old ERP stores it. They work on arrays of strings; the
per-string work runs only on the rows a mask selects.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
_LETTERS = np.frombuffer(b"ABCDEFGHJKLMNPRSTUVWXYZ", dtype=np.uint8)


def fill_patterns(patterns: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fill '#' with random digits and '@' with random letters, per row's own pattern."""
    patterns = np.asarray(patterns, dtype=object)
    out = np.empty(len(patterns), dtype=object)
    for pattern in sorted(set(patterns.tolist())):
        rows = np.flatnonzero(patterns == pattern)
        if not pattern:
            out[rows] = ""
            continue
        template = np.frombuffer(pattern.encode("ascii"), dtype=np.uint8)
        chars = np.tile(template, (len(rows), 1))
        digit_cols = np.flatnonzero(template == ord("#"))
        letter_cols = np.flatnonzero(template == ord("@"))
        chars[:, digit_cols] = _DIGITS[rng.integers(0, 10, (len(rows), len(digit_cols)))]
        chars[:, letter_cols] = _LETTERS[
            rng.integers(0, len(_LETTERS), (len(rows), len(letter_cols)))
        ]
        out[rows] = chars.view(f"S{len(template)}").ravel().astype(str).astype(object)
    return out


class Transliterator:
    """Spells non-ASCII letters out the way an old ERP or a hurried typist does (Ä -> AE/Ae)."""

    def __init__(self, upper_table: dict[str, str]) -> None:
        upper = dict(upper_table)
        lower = {k.lower(): v.lower() for k, v in upper.items()}
        lower["ß"] = "ss"
        title = {k: v.capitalize() for k, v in upper.items()}
        self._upper = str.maketrans({**upper, **lower})
        self._title = str.maketrans({**title, **lower})

    def upper(self, text: str) -> str:
        """For upper-case ERP names: every letter spelled in capitals (Ä -> AE)."""
        return text.translate(self._upper)

    def mixed(self, text: str) -> str:
        """For mixed-case names: Ä -> Ae, ä -> ae, ß -> ss."""
        return text.translate(self._title)

    @staticmethod
    def strip_accents(text: str) -> str:
        """Whatever the table does not know: drop the accent (ő -> o)."""
        decomposed = unicodedata.normalize("NFKD", text)
        return "".join(c for c in decomposed if not unicodedata.combining(c))


def apply(values: np.ndarray, mask: np.ndarray, func) -> np.ndarray:
    """Apply a string function to the masked rows only; returns a new object array."""
    out = np.asarray(values, dtype=object).copy()
    for i in np.flatnonzero(mask):
        if out[i] is not None:
            out[i] = func(out[i])
    return out


def typo(text: str, rng: np.random.Generator) -> str:
    """One keyboard slip in a name: swap two letters, drop one, or double one."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if len(letters) < 4:
        return text
    i = letters[int(rng.integers(1, len(letters) - 1))]
    kind = int(rng.integers(0, 3))
    if kind == 0 and i + 1 < len(text) and text[i + 1].isalpha():
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]


def vat_variant(vat: str, kind: int) -> str:
    """CRM spellings of a VAT id: 1 spaced, 2 dashed, 3 without country prefix."""
    prefix, number = vat[:2], vat[2:]
    if kind == 1:
        return prefix + " " + " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    if kind == 2:
        return f"{prefix}-{number}"
    if kind == 3:
        return number
    return vat


_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str, transliterator: Transliterator) -> str:
    """A web-domain-safe label: lower case ASCII, dashes between words."""
    ascii_text = Transliterator.strip_accents(transliterator.mixed(text)).lower()
    return _SLUG.sub("-", ascii_text).strip("-")


def website_variant(domain: str, kind: int) -> str:
    """How a website is typed in CRM: with or without scheme, www. and trailing slash."""
    return (f"https://www.{domain}", f"www.{domain}", domain, f"http://{domain}/")[kind % 4]


def split_name(name: str, width: int) -> tuple[str, str | None]:
    """Split a long ERP name at a word boundary into name1 (<= width) and name2."""
    if len(name) <= width:
        return name, None
    cut = name.rfind(" ", 0, width + 1)
    if cut <= 0:
        cut = width
    return name[:cut].rstrip(), name[cut:].strip() or None
