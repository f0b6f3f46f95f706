"""Records a merger left behind join the survivor only on an address plus pointing evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dagster_project.identity.clustering import guarded_clusters
from dagster_project.identity.predecessors import predecessor_links
from dagster_project.identity.settings import PredecessorSettings

COLUMNS = [
    "source_system",
    "source_id",
    "street_norm",
    "postal_code_norm",
    "city_norm",
    "country_code",
    "domain",
    "parent_account_id",
]


def _records(rows):
    frame = pd.DataFrame(rows, columns=COLUMNS).astype(object)
    frame = frame.where(frame.notna(), None)
    return frame.assign(pos=np.arange(len(frame)))


SURVIVOR = ("crm", "S", "40 INDUSTRIAL WAY", "008145", "BEIJING", "CN", "korion.cn", None)
# The absorbed company's old account: other name, the survivor's address and web domain.
ABSORBED = ("crm", "P", "40 INDUSTRIAL WAY", "008145", "BEIJING", "CN", "korion.cn", None)
# A tenant in the same building with its own web site, and a group member elsewhere.
TENANT = ("crm", "T", "40 INDUSTRIAL WAY", "008145", "BEIJING", "CN", "tenant.cn", None)
GROUP_MEMBER = ("crm", "G", "9 HARBOUR ROAD", "200001", "SHANGHAI", "CN", "korion.cn", "S")


def test_same_address_and_domain_links_the_predecessor_to_its_survivor():
    records = _records([SURVIVOR, ABSORBED, TENANT, GROUP_MEMBER])
    links = predecessor_links(records, np.array([0, 1, 2, 3]), PredecessorSettings(enabled=True))
    assert links[["a", "b"]].values.tolist() == [[0, 1]]
    assert links["method"].tolist() == ["predecessor"]
    assert links["evidence"].tolist() == ["same address, shared web domain"]


def test_a_parent_link_counts_as_pointing_evidence_and_config_chooses_the_evidence():
    absorbed_with_parent = ("crm", "P", "40 INDUSTRIAL WAY", None, "BEIJING", "CN", None, "S")
    records = _records([SURVIVOR, absorbed_with_parent])
    clusters = np.array([0, 1])
    links = predecessor_links(records, clusters, PredecessorSettings(enabled=True))
    assert links["evidence"].tolist() == ["same address, CRM parent link"]
    only_domain = PredecessorSettings(enabled=True, evidence=["web_domain"])
    assert predecessor_links(records, clusters, only_domain).empty
    assert predecessor_links(records, clusters, PredecessorSettings(enabled=False)).empty


def test_records_already_in_one_cluster_need_no_link():
    records = _records([SURVIVOR, ABSORBED])
    assert predecessor_links(records, np.array([0, 0]), PredecessorSettings(enabled=True)).empty


def test_predecessor_links_pass_the_vat_guard_only_when_vat_ids_change_on_mergers():
    vats = ["CN111", "CN222"]
    links = pd.DataFrame(
        [(0, 1, "predecessor", 1.0)], columns=["a", "b", "method", "match_probability"]
    )
    exempt = frozenset({"steward", "predecessor"})
    labels, _ = guarded_clusters(vats, links, [], 12, True, vat_exempt_methods=exempt)
    assert labels[0] == labels[1]
    labels, decided = guarded_clusters(vats, links, [], 12, True)
    assert labels[0] != labels[1]
    assert decided["refused_because"].tolist() == ["distinct_vat_ids"]
    # A steward's non-match still wins.
    labels, _ = guarded_clusters(vats, links, [(0, 1)], 12, True, vat_exempt_methods=exempt)
    assert labels[0] != labels[1]


def test_resolution_joins_the_absorbed_company_and_says_so(monkeypatch):
    """Survivor S (CRM + ERP, one VAT id) and absorbed P (CRM + ERP, its own VAT id) at one
    address, P's account carrying S's domain: one customer; P's records say `predecessor`."""
    from dagster_project.identity import resolve
    from dagster_project.identity.settings import identity_settings
    from dagster_project.identity.steward_decisions import DECISION_COLUMNS

    no_model_pairs = pd.DataFrame(
        columns=["uid_l", "uid_r", "match_probability", "erp_link_agrees"]
    )
    monkeypatch.setattr(resolve, "score_candidate_pairs", lambda *a, **k: (no_model_pairs, {}))
    address = ("40 INDUSTRIAL WAY", "008145", "BEIJING", "CN")
    rows = [
        ("crm", "S", "Korion Steel", "CN91884276ZDVEVTTU", "korion.cn", False),
        ("erp", "0000000002", "KORION STEEL", "CN91884276ZDVEVTTU", None, False),
        ("crm", "P", "Lumvra Minerals", "CN91119323YRPNVVPU", "korion.cn", True),
        ("erp", "0000000001", "LUMVRA MINERALS", "CN91119323YRPNVVPU", None, True),
    ]
    records = pd.DataFrame(
        [(s, i, n, *address, v, d, None, deleted) for s, i, n, v, d, deleted in rows],
        columns=[
            "source_system",
            "source_id",
            "name",
            "street_norm",
            "postal_code_norm",
            "city_norm",
            "country_code",
            "vat",
            "domain",
            "parent_account_id",
            "is_deleted",
        ],
    ).astype(object)
    records["uid"] = records["source_system"] + ":" + records["source_id"]
    records["is_deleted"] = records["is_deleted"].astype(bool)
    no_decisions = pd.DataFrame(columns=[*DECISION_COLUMNS, "uid_l", "uid_r"])

    result = resolve.resolve_identities(records, identity_settings(), no_decisions, no_decisions)
    out = result.source_map.set_index("uid")
    assert out["cluster"].nunique() == 1
    assert out.loc[["crm:S", "erp:0000000002"], "match_method"].tolist() == ["vat", "vat"]
    assert out.loc[["crm:P", "erp:0000000001"], "match_method"].tolist() == ["predecessor"] * 2
    assert out.loc["crm:P", "match_evidence"] == (
        "predecessor of crm:S: same address, shared web domain"
    )
