"""The model's comparison levels (identity/probabilistic.py) mean what Splink's own levels mean."""

from __future__ import annotations

import itertools

import duckdb
import splink.comparison_level_library as cll

from dagster_project.identity.probabilistic import STREET_NUMBERS, _within_edit_distance

NAMES = [
    "NORVIK",
    "NORVIK ENERGY",
    "NORVKI",
    "NORVK",
    "NRVIK",
    "ONRVIK",
    "NORVIKAS",
    "NORDVIK",
    "KIVRON",
    "WILLIAMS MIDSTREAM",
    "WILLIAMS DATA CENTERS",
    "WILLIAMS MIDSTRAEM",
    "ABC",
    "ACB",
    "BAC",
    "",
    "A",
    "ENERGIE",
    "ENERGIA",
    "ÉNERGIE",
]


def test_the_bounded_edit_distance_level_is_splinks_damerau_levenshtein_level():
    # The bounds (length difference, Levenshtein <= 2d) only skip pairs that cannot be within d.
    con = duckdb.connect()
    con.execute("create table p (name_norm_l varchar, name_norm_r varchar)")
    con.executemany("insert into p values (?, ?)", list(itertools.product(NAMES, NAMES)))
    for d in (1, 2, 3):
        ours = _within_edit_distance(cll, d).get_comparison_level("duckdb")
        splinks = cll.DamerauLevenshteinLevel("name_norm", d).get_comparison_level("duckdb")
        assert ours.label_for_charts == splinks.label_for_charts
        differ = con.execute(
            f"select count(*) from p where ({ours.sql_condition}) <> ({splinks.sql_condition})"
        ).fetchone()[0]
        assert differ == 0, d
        assert con.execute(f"select count(*) from p where {ours.sql_condition}").fetchone()[0] > 0


def test_house_numbers_are_the_digits_of_the_street():
    con = duckdb.connect()
    rows = con.execute(
        f"select {STREET_NUMBERS} from (values ('KRAFTWERKSTR 100'), ('RUE 12 B 3'), "
        "('MAIN ST'), (null)) t(street_norm)"
    ).fetchall()
    assert [r[0] for r in rows] == ["100", "123", "", None]
