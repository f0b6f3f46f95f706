"""Probabilistic record linkage for what deterministic keys leave open: a Fellegi-Sunter model
(Splink on DuckDB) over normalised name, legal form, location (street, postal code, city),
country, VAT id and the CRM's ERP link.

Why a model and not string thresholds: m/u weights are learnt from the data by EM (u from
random pairs), so the same code holds on another company's CRM/ERP where names are noisier or
postal codes missing; term frequencies make a match on a rare name count more than on
"ENERGIA". The CRM's `erp_customer_number` is one comparison among the others, not a
deterministic key: some links are stale or mistyped, and the model overrules a link whose names
and addresses disagree.

Scale: candidate pairs come only from blocking rules (config), so cost grows with block sizes,
not with n x m. Splink runs in its own in-memory DuckDB, so the warehouse is never locked longer
than reading the records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from dagster_project.identity.records import EVIDENCE_COLUMNS
from dagster_project.identity.settings import ModelSettings

if TYPE_CHECKING:
    import pyarrow as pa

# Columns the model reads: the evidence records.py prepares, and the ids that name a pair (the
# ERP-link comparison also reads source_system and source_id).
MODEL_COLUMNS = ["uid", "source_system", "source_id", *EVIDENCE_COLUMNS]

# One name is the other followed by more words: a legal form normalisation did not know (typed
# "Limted", "Srrl") or an ERP name2 addition ("EXPORT", a department). Its own level, so EM learns
# how much it is worth; it also fits a parent brand and its subsidiary ("NORVIK" / "NORVIK
# ENERGY"), so it only decides a pair together with the address.
NAME_EXTENDS = (
    "starts_with(name_norm_l, name_norm_r || ' ') or starts_with(name_norm_r, name_norm_l || ' ')"
)
# Legal forms agree when the two spellings can mean one form (dbt gives every form a spelling
# can mean, '|'-separated: "Private Limited" is Pte Ltd or Pvt Ltd).
LEGAL_FORMS_OVERLAP = (
    "list_has_any(string_split(legal_form_l, '|'), string_split(legal_form_r, '|'))"
)

# The digits of the street (house numbers), computed once per record rather than per pair.
# Removing runs of non-digits rather than each one gives the same string at a quarter the cost.
STREET_NUMBERS = "regexp_replace(street_norm, '[^0-9]+', '', 'g')"
SAME_HOUSE_NUMBERS = "street_numbers_l = street_numbers_r"
ADDRESS_KNOWN_ON_BOTH_SIDES = (
    "street_norm_l is not null and street_norm_r is not null "
    "and postal_code_norm_l is not null and postal_code_norm_r is not null"
)


def _erp_link_agrees(column: Callable[[str, str], str]) -> str:
    """The CRM record names this ERP record in its erp_customer_number (either side of the
    pair). column(name, side) spells the column `name` of side "l" or "r"."""
    return (
        f"({column('erp_link', 'l')} = {column('source_id', 'r')} "
        f"and {column('source_system', 'r')} = 'erp') "
        f"or ({column('erp_link', 'r')} = {column('source_id', 'l')} "
        f"and {column('source_system', 'l')} = 'erp')"
    )


# As Splink spells the two sides of a pair (erp_link_l), and on a pair joined to its records.
ERP_LINK_AGREES = _erp_link_agrees(lambda name, side: f"{name}_{side}")
ERP_LINK_AGREES_ON_JOINED_PAIR = _erp_link_agrees(lambda name, side: f"{side}.{name}")
ERP_LINK_NOT_APPLICABLE = (
    "not ((erp_link_l is not null and source_system_r = 'erp') "
    "or (erp_link_r is not null and source_system_l = 'erp'))"
)


def _within_edit_distance(cll, d: int):
    """Damerau-Levenshtein distance of the names <= d. DuckDB's damerau_levenshtein costs about
    3 us a pair, six times levenshtein, and most candidate pairs are far apart; two exact bounds
    rule those out first: the distance is at least the difference in length, and at least half
    the Levenshtein distance (a transposition is two Levenshtein edits). DuckDB counts both
    distances in bytes, hence strlen. Same levels, same model; at 100,000 companies this alone
    took the model step from 15 s to 5 s."""
    return cll.CustomLevel(
        f"abs(strlen(name_norm_l) - strlen(name_norm_r)) <= {d} "
        f"and levenshtein(name_norm_l, name_norm_r) <= {2 * d} "
        f"and damerau_levenshtein(name_norm_l, name_norm_r) <= {d}",
        f"Damerau-Levenshtein distance of name_norm <= {d}",
    )


def _name_comparison(model: ModelSettings):
    """Company names: exact (weighted by how rare the name is), typo distance, near-identical,
    else. Edit distance rather than plain Jaro-Winkler: two companies of one brand ("WILLIAMS
    MIDSTREAM", "WILLIAMS DATA CENTERS") share a long prefix that Jaro-Winkler rewards."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    levels = [
        cll.NullLevel("name_norm"),
        cll.ExactMatchLevel("name_norm", term_frequency_adjustments=True),
    ]
    levels += [_within_edit_distance(cll, d) for d in model.name_max_edit_distances]
    levels += [cll.JaroWinklerLevel("name_norm", t) for t in model.name_similarity_thresholds]
    levels.append(cll.CustomLevel(NAME_EXTENDS, "one name is the other with words added"))
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(comparison_levels=levels, output_column_name="name")


def _location_comparison(model: ModelSettings):
    """Street, postal code and city as one comparison: they are strongly correlated (a postal
    code predicts the city), so scoring them separately would count one fact three times."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    def street():
        # Spelling may differ (JW), the house number may not: "KRAFTWERKSTR 100" and
        # "KRAFTWERKSTR 104" are two sites.
        return cll.And(
            cll.JaroWinklerLevel("street_norm", model.street_similarity_threshold),
            cll.CustomLevel(SAME_HOUSE_NUMBERS),
        )

    postal = cll.ExactMatchLevel("postal_code_norm")
    city = cll.Or(
        cll.ExactMatchLevel("city_norm"),
        cll.JaroWinklerLevel("city_norm", model.city_similarity_threshold),
    )
    unknown = cll.CustomLevel(
        "(postal_code_norm_l is null or postal_code_norm_r is null) "
        "and (street_norm_l is null or street_norm_r is null) "
        "and (city_norm_l is null or city_norm_r is null)",
        "too little address to compare",
    ).configure(is_null_level=True)
    return cl.CustomComparison(
        output_column_name="location",
        comparison_levels=[
            unknown,
            cll.And(street(), postal).configure(label_for_charts="same street and postal code"),
            cll.And(street(), city).configure(label_for_charts="same street and city"),
            # A city in another language (Munich / MUENCHEN) and a postal code missing on one side.
            street().configure(label_for_charts="same street"),
            postal.configure(label_for_charts="same postal code"),
            # Street and postal code both known and both different: another site in the same
            # city. Its own level so that EM can weigh it against the match (two companies of
            # one name in one city are common; one company at two known addresses is rarer).
            cll.And(
                cll.Or(
                    cll.ExactMatchLevel("city_norm"),
                    cll.JaroWinklerLevel("city_norm", model.city_similarity_threshold),
                ),
                cll.CustomLevel(ADDRESS_KNOWN_ON_BOTH_SIDES),
            ).configure(label_for_charts="same city, other street and postal code"),
            city.configure(label_for_charts="same city"),
            cll.ElseLevel(),
        ],
    )


def _settings(model: ModelSettings):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    erp_link = cl.CustomComparison(
        output_column_name="erp_link",
        comparison_levels=[
            cll.CustomLevel(ERP_LINK_NOT_APPLICABLE, "no link between the two").configure(
                is_null_level=True
            ),
            cll.CustomLevel(ERP_LINK_AGREES, "CRM links to this ERP customer"),
            cll.ElseLevel(),
        ],
    )
    comparisons = [
        _name_comparison(model),
        cl.CustomComparison(
            output_column_name="legal_form",
            comparison_levels=[
                cll.NullLevel("legal_form"),
                cll.CustomLevel(LEGAL_FORMS_OVERLAP, "legal forms can be the same"),
                cll.ElseLevel(),
            ],
        ),
        _location_comparison(model),
        cl.ExactMatch("country_code"),
        cl.ExactMatch("vat"),
        erp_link,
    ]
    blocking = [block_on(*cols) for cols in model.blocking_rules]
    # Every pair with direct evidence is scored too, so the model can confirm or refuse it.
    # The web domain is not a model feature (it is derived from the name, so it would count the
    # name twice); a shared domain links a pair only where the model does not contradict it.
    blocking += [
        "l.erp_link = r.source_id",
        "r.erp_link = l.source_id",
        block_on("vat"),
        block_on("domain"),
    ]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="uid",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def score_candidate_pairs(
    records: pd.DataFrame | pa.Table, model: ModelSettings, review_threshold: float
) -> tuple[pd.DataFrame, dict]:
    """Train the model on `records` (MODEL_COLUMNS; a frame or the Arrow table that
    records.load_source_records gives) and score every blocked candidate pair.

    Returns (pairs with uid_l, uid_r, match_probability, erp_link_agrees; only pairs at or above
    `review_threshold`), and a summary of the trained model (m/u per level, prior) for metadata.
    """
    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    con = duckdb.connect()
    try:
        con.execute("set threads = 2")
        # One copy in DuckDB (every Splink query would otherwise convert the input again), with
        # the street's house numbers that the location comparison needs.
        con.register("records_input", records)
        con.execute(
            f"create table match_records as select {', '.join(MODEL_COLUMNS)}, "
            f"{STREET_NUMBERS} as street_numbers from records_input"
        )
        con.unregister("records_input")
        db_api = DuckDBAPI(con)
        # Splink's training warnings (levels not observed in a small dataset) are expected.
        linker = Linker(db_api.register("match_records"), _settings(model), log_level=logging.ERROR)
        linker.training.estimate_probability_two_random_records_match(
            [block_on("vat"), block_on("name_norm", "postal_code_norm")],
            recall=model.prior_rules_recall,
        )
        linker.training.estimate_u_using_random_sampling(
            max_pairs=model.u_sampling_max_pairs, seed=model.seed
        )
        for cols in model.em_training_blocks:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*cols), estimate_without_term_frequencies=True
            )
        predictions = linker.inference.predict(threshold_match_probability=review_threshold)
        # Whether the CRM's ERP link names the pair: the model's own ERP_LINK_AGREES, on the
        # records of both sides.
        pairs = con.sql(
            f"select p.uid_l, p.uid_r, p.match_probability, "
            f"coalesce({ERP_LINK_AGREES_ON_JOINED_PAIR}, false) as erp_link_agrees "
            f"from {predictions.physical_name} p "
            "join match_records l on l.uid = p.uid_l join match_records r on r.uid = p.uid_r"
        ).df()
    finally:
        con.close()
    summary = {"candidate_pairs_scored_above_review": len(pairs)}
    return pairs, summary
