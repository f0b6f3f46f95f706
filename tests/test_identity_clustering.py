"""The chaining guard, the pairwise quality measure and the identity config validation."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from dagster_project.identity.clustering import GuardedClustering, guarded_clusters
from dagster_project.identity.evaluation import pairwise_scores
from dagster_project.identity.settings import IDENTITY_CONFIG_FILE, load_identity_settings


def _links(rows):
    return pd.DataFrame(rows, columns=["a", "b", "method", "match_probability"])


def test_one_bad_link_does_not_chain_two_companies_with_different_vat_ids():
    # 0-1 are company X (VAT X), 2-3 company Y (VAT Y); a model link 1-2 would chain them.
    vats = ["FI111111111", None, "SE222222222", None]
    links = _links(
        [
            (0, 1, "probabilistic", 0.99),
            (2, 3, "probabilistic", 0.99),
            (1, 2, "probabilistic", 0.97),
        ]
    )
    labels, decided = guarded_clusters(
        vats, links, [], max_cluster_size=12, refuse_distinct_vat_ids=True
    )
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[1] != labels[2]
    refused = decided[~decided["accepted"]]
    assert refused[["a", "b", "refused_because"]].values.tolist() == [[1, 2, "distinct_vat_ids"]]


def test_stronger_evidence_is_applied_first():
    # The weak model link 0-2 comes first in the table but the VAT link 1-2 wins the record 2.
    vats = ["DE111111111", "DE222222222", "DE222222222"]
    links = _links([(0, 2, "probabilistic", 0.999), (1, 2, "vat", 1.0)])
    labels, _ = guarded_clusters(vats, links, [], 12, True)
    assert labels[1] == labels[2] != labels[0]


def test_cluster_size_cap_and_steward_decisions():
    vats = [None] * 5
    chain = _links([(i, i + 1, "probabilistic", 0.99) for i in range(4)])
    labels, decided = guarded_clusters(
        vats, chain, [], max_cluster_size=3, refuse_distinct_vat_ids=True
    )
    assert max(pd.Series(labels).value_counts()) == 3
    assert "max_cluster_size" in set(decided["refused_because"].dropna())
    # A steward non-match holds even against transitive links; a confirmed match beats VAT ids.
    labels, _ = guarded_clusters(vats, chain, [(0, 4)], 12, True)
    assert labels[0] != labels[4]
    labels, _ = guarded_clusters(["FI1", "SE2"], _links([(0, 1, "steward", 1.0)]), [], 12, True)
    assert labels[0] == labels[1]


def test_links_that_rank_last_can_be_applied_to_the_clusters_already_made():
    # resolve.py decides the ordinary evidence, then the predecessor links (which rank last) on
    # the clusters it made: the same clusters and decisions as deciding all links at once.
    vats = ["FI111111111", None, "SE222222222", None, "SE222222222", None, None, None]
    ordinary = _links(
        [
            (0, 1, "probabilistic", 0.99),
            (2, 3, "vat", 1.0),
            (3, 4, "probabilistic", 0.995),
            (1, 2, "probabilistic", 0.97),
            (5, 6, "domain", 0.999),
        ]
    )
    later = _links(
        [(1, 3, "predecessor", 1.0), (5, 7, "predecessor", 1.0), (0, 6, "predecessor", 1.0)]
    )
    exempt = frozenset({"steward", "predecessor"})
    at_once_labels, at_once = guarded_clusters(
        vats, pd.concat([ordinary, later], ignore_index=True), [(6, 0)], 3, True, exempt
    )
    clustering = GuardedClustering(vats, [(6, 0)], 3, True, exempt)
    first = clustering.apply(ordinary)
    assert first["accepted"].tolist() == [True, True, True, False, True]
    stepwise = pd.concat([first, clustering.apply(later)], ignore_index=True)
    assert (clustering.labels() == at_once_labels).all()
    cols = ["a", "b", "method", "accepted", "refused_because"]
    pd.testing.assert_frame_equal(stepwise[cols], at_once[cols])
    assert at_once["refused_because"].tolist()[-3:] == [
        "max_cluster_size",
        None,
        "steward_non_match",
    ]


def test_pairwise_scores_count_pairs(tmp_path):
    pd.DataFrame(
        {
            "source_system": ["crm"] * 4,
            "source_id": ["1", "2", "3", "4"],
            "company_id": ["A", "A", "A", "B"],
        }
    ).to_csv(tmp_path / "source_records.csv", index=False)
    predicted = pd.DataFrame(
        {
            "source_system": ["crm"] * 4,
            "source_id": ["1", "2", "3", "4"],
            "customer_id": ["c1", "c1", "c2", "c2"],
        }
    )
    scores = pairwise_scores(predicted, tmp_path)
    # true pairs: 1-2, 1-3, 2-3; predicted: 1-2 (right), 3-4 (wrong)
    assert scores["true_pairs"] == 3 and scores["predicted_pairs"] == 2
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(1 / 3)


def test_identity_config_is_validated(tmp_path):
    assert load_identity_settings().decision.merge_threshold > 0
    config = yaml.safe_load(IDENTITY_CONFIG_FILE.read_text(encoding="utf-8"))
    config["decision"]["review_threshold"] = 0.99
    config["decision"]["merge_threshold"] = 0.9
    bad = tmp_path / "identity.yml"
    bad.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ValidationError, match="review_threshold"):
        load_identity_settings(bad)
