"""Company names, streets, postal codes and domains in one spelling, so that records of one
company compare equal however CRM users typed them or ERP abbreviated them.

Names: upper case; umlauts spelled out (Ä -> AE, ß -> SS, from config), other accents dropped;
punctuation to spaces with '&' kept as a word; runs of single letters joined (S.p.A. -> SPA,
A/S -> AS); then trailing legal forms removed (seeds/identity_legal_forms.csv, each spelling
normalised by these same rules, longest first, repeatedly: "GmbH & Co. KG" goes as a whole).
The legal form is kept apart: it is weak evidence, and a name that is only a legal form keeps it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

_NON_ALNUM = re.compile(r"[^A-Z0-9&]+")
_SINGLE_LETTER_RUN = re.compile(r"\b(?:[A-Z0-9] ){1,}[A-Z0-9]\b")


def fold_letters(text: str, transliteration: Mapping[str, str]) -> str:
    """Upper case, configured transliterations, remaining accents dropped."""
    upper = text.upper()
    for letter, spelled in transliteration.items():
        upper = upper.replace(letter.upper(), spelled)
    decomposed = unicodedata.normalize("NFKD", upper)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens_of(text: str | None, transliteration: Mapping[str, str]) -> list[str]:
    """Folded words: punctuation splits words, '&' is a word, single-letter runs are joined."""
    if text is None or text != text:  # None or NaN
        return []
    folded = fold_letters(str(text), transliteration).replace("&", " & ")
    spaced = _NON_ALNUM.sub(" ", folded).strip()
    joined = _SINGLE_LETTER_RUN.sub(lambda m: m.group(0).replace(" ", ""), spaced)
    return joined.split()


class NameNormaliser:
    """Normalises company names; built once from the legal-form seed and the transliterations."""

    def __init__(self, legal_forms: Iterable[tuple[str, str]], transliteration: Mapping[str, str]):
        self.transliteration = dict(transliteration)
        spellings: dict[tuple[str, ...], str] = {}
        for form, spelling in legal_forms:
            key = tuple(tokens_of(spelling, self.transliteration))
            if key:
                spellings.setdefault(key, form)
        # Longest spelling first, so "GMBH & CO KG" wins over "KG".
        self._spellings = sorted(spellings.items(), key=lambda kv: -len(kv[0]))
        self._cache: dict[str, tuple[str | None, str | None]] = {}

    def normalise(self, name: str | None) -> tuple[str | None, str | None]:
        """(name without legal form, legal form) for one raw name; (None, None) for no name."""
        if name is None or name != name:
            return None, None
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        words = tokens_of(name, self.transliteration)
        form = None
        stripped = True
        while stripped and words:
            stripped = False
            if words[-1] == "&":
                words = words[:-1]
                stripped = True
                continue
            for spelling, legal_form in self._spellings:
                n = len(spelling)
                if len(words) > n and tuple(words[-n:]) == spelling:
                    words = words[:-n]
                    form = form or legal_form
                    stripped = True
                    break
        result = (" ".join(words) or None, form)
        self._cache[name] = result
        return result


def normalise_street(
    street: str | None, transliteration: Mapping[str, str], abbreviations: Mapping[str, str]
) -> str | None:
    """Folded street with address words in their short form (HAUPTSTRASSE 5 -> HAUPTSTR 5)."""
    if street is None or street != street:
        return None
    folded = fold_letters(str(street), transliteration)
    for long, short in abbreviations.items():
        folded = folded.replace(long.upper(), short.upper())
    words = _NON_ALNUM.sub(" ", folded).split()
    return " ".join(words) or None


def normalise_postal_code(postal_code: str | None) -> str | None:
    """Postal code without spaces or dashes, upper case (1916 MK -> 1916MK)."""
    if postal_code is None or postal_code != postal_code:
        return None
    compact = re.sub(r"[^0-9A-Za-z]", "", str(postal_code)).upper()
    return compact or None


def normalise_domain(domain: str | None, ignored: Iterable[str]) -> str | None:
    """Lower-case domain without www.; None for domains that say nothing (free mail)."""
    if domain is None or domain != domain:
        return None
    d = str(domain).strip().lower().removeprefix("www.").rstrip("/")
    return None if not d or d in set(ignored) else d
