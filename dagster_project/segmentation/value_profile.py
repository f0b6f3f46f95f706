"""Value profile (DESIGN.md "Segments", 2) at project grain, pooled with the customer's profile.

One Bayesian model over a customer and its projects, every weight in config/segmentation.yml
`value_profile:` and every vocabulary in seeds/:
- a project's value-driver ratings (non-null ranks exactly 1..k; only the drivers seeds/
  value_drivers.csv marks is_core count) are scored against each profile's driver priority
  (seeds/value_profiles.csv) by a Plackett-Luce likelihood: profile utilities fall by one step
  per priority position, `ranking_temperature` says how noisy rankings are;
- a project's profile is its customer's with probability `project_follows_customer`, else any
  other (so one project's ratings inform its siblings, and a clear rating can still deviate);
- the customer's CRM accounts say what sales recorded: the value-profile picklist (right with
  `picklist_trust`) and the business model / operating environment axes (each right with
  `axis_trust`); a soft-deleted account counts `deleted_account_factor` as much;
- peers: the profile mix of the customer's peer group (a role flag such as distributor, else its
  industry sub-segment), learned from the other evidence of the group's customers (empirical
  Bayes), is the customer's prior.
The customer's profile is the most probable one given all of that (the explicit roll-up rule);
a project's is the most probable given its own ratings and everything known of its customer.
Confidence is that posterior probability; below `provisional_below_confidence` the assignment
is provisional.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dagster_project.segmentation.explain import inputs_json_rows, join_where, stamp
from dagster_project.segmentation.settings import ValueProfileSettings

PROJECT_COLUMNS = [
    "opportunity_id",
    "customer_id",
    "stage",
    "close_date",
    "value_profile",
    "customer_value_profile",
    "is_rated",
    "confidence",
    "is_provisional",
    "reason_codes",
    "inputs",
]
CUSTOMER_COLUMNS = [
    "customer_id",
    "value_profile",
    "projects",
    "rated_projects",
    "distinct_profiles",
    "peer_group",
    "confidence",
    "is_provisional",
    "reason_codes",
    "inputs",
]
NO_PEER_GROUP = "(none)"


@dataclass(frozen=True)
class ValueProfileInputs:
    """What the model reads (assign.py queries it; all frames may be empty).

    ratings: opportunity_id + one <driver>_rank column per driver of seeds/value_drivers.csv.
    projects: opportunity_id, customer_id, stage, close_date.
    accounts: customer_id, account_id, value_profile, business_model, operating_environment,
        is_deleted (the CRM accounts of each customer).
    peer_groups: customer_id, peer_group (peer_groups() builds it).
    """

    ratings: pd.DataFrame
    projects: pd.DataFrame
    accounts: pd.DataFrame
    peer_groups: pd.DataFrame


@dataclass(frozen=True)
class ValueProfiles:
    projects: pd.DataFrame  # PROJECT_COLUMNS + scheme_version, as_of
    customers: pd.DataFrame  # CUSTOMER_COLUMNS + scheme_version, as_of


def core_drivers(drivers: pd.DataFrame) -> list[str]:
    core = drivers["is_core"].astype(str).str.lower().eq("true")
    return drivers.loc[core, "driver"].tolist()


def profile_utilities(profiles: pd.DataFrame, drivers: list[str]) -> pd.DataFrame:
    """profile x driver utility: minus the driver's position among `drivers` in the priority."""
    rows = {}
    for row in profiles.itertuples():
        order = [d for d in row.driver_priority.split("|") if d in drivers]
        rows[row.value_profile] = {d: -float(order.index(d)) for d in drivers}
    return pd.DataFrame.from_dict(rows, orient="index")[drivers]


def ranking_log_likelihoods(
    ranks: np.ndarray, utilities: np.ndarray, temperature: float
) -> np.ndarray:
    """(ratings, profiles) log P(observed top-k order of the drivers | profile), Plackett-Luce.

    ranks: (ratings, drivers), NaN where a driver was not ranked; utilities: (profiles, drivers).
    Only the order of the ranked drivers matters, so ranks left with gaps (drivers that do not
    count dropped) read the same as 1..k. The unranked drivers stay in every choice set.
    """
    n, d = ranks.shape
    u = utilities / temperature
    total = np.zeros((n, len(u)))
    if n == 0 or d == 0:
        return total
    # utilities are priority steps (0, -1, -2, ...) / temperature: exp() cannot overflow
    weights = np.exp(u - u.max())
    ranked = ~np.isnan(ranks)
    order = np.argsort(np.where(ranked, ranks, np.inf), axis=1, kind="stable")
    k = ranked.sum(axis=1)
    remaining = np.ones((n, d))
    rows = np.arange(n)
    for position in range(d):
        chosen = order[:, position]
        active = position < k
        if not active.any():
            break
        # the chosen driver's utility against all drivers still unchosen, per profile
        log_share = np.log(weights[:, chosen].T) - np.log(remaining @ weights.T)
        total += np.where(active[:, None], log_share, 0.0)
        remaining[rows[active], chosen[active]] = 0.0
    return total


def peer_groups(
    customers: pd.DataFrame, industry: pd.DataFrame, rules: ValueProfileSettings
) -> pd.DataFrame:
    """customer_id -> peer group: the first of `rules.peer_prior.role_flags` the customer carries
    (a column of `customers`, e.g. dim_customer.is_distributor), else its industry sub-segment
    (`industry`: customer_id, sub_segment)."""
    frame = customers[["customer_id", *rules.peer_prior.role_flags]].merge(
        industry[["customer_id", "sub_segment"]], on="customer_id", how="left"
    )
    group = frame["sub_segment"].astype(object).where(frame["sub_segment"].notna(), NO_PEER_GROUP)
    for flag in reversed(rules.peer_prior.role_flags):
        group = group.where(~frame[flag].fillna(False).astype(bool), flag)
    return pd.DataFrame({"customer_id": frame["customer_id"], "peer_group": group})


def _axis_log_likelihood(
    values: pd.Series, axis_of_profile: np.ndarray, trust: float
) -> np.ndarray:
    """(rows, profiles): log P(recorded axis value | profile) where the value is one the seed
    knows; 0 (no evidence) elsewhere."""
    known = np.unique(axis_of_profile)
    value = values.to_numpy(dtype=object)
    usable = pd.Series(value).isin(known).to_numpy()
    match = value[:, None] == axis_of_profile[None, :]
    wrong = (1 - trust) / max(len(known) - 1, 1)
    return np.where(usable[:, None], np.where(match, np.log(trust), np.log(wrong)), 0.0)


def _account_evidence(
    accounts: pd.DataFrame, profiles: pd.DataFrame, names: np.ndarray, rules: ValueProfileSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per account row: log-likelihood over profiles (picklist + axes), and which rows carry a
    usable picklist / a usable pair of axes."""
    seed = profiles.set_index("value_profile").loc[names]
    k = len(names)
    picklist = accounts["value_profile"].to_numpy(dtype=object)
    has_picklist = pd.Series(picklist).isin(names).to_numpy()
    wrong = np.log((1 - rules.picklist_trust) / max(k - 1, 1))
    log_lik = np.where(
        has_picklist[:, None],
        np.where(picklist[:, None] == names[None, :], np.log(rules.picklist_trust), wrong),
        0.0,
    )
    log_lik = log_lik + _axis_log_likelihood(
        accounts["business_model"], seed["business_model"].to_numpy(dtype=object), rules.axis_trust
    )
    log_lik = log_lik + _axis_log_likelihood(
        accounts["operating_environment"],
        seed["operating_environment"].to_numpy(dtype=object),
        rules.axis_trust,
    )
    has_cell = (
        accounts["business_model"].isin(seed["business_model"])
        & accounts["operating_environment"].isin(seed["operating_environment"])
    ).to_numpy()
    deleted = accounts["is_deleted"].fillna(False).astype(bool).to_numpy()
    log_lik *= np.where(deleted, rules.deleted_account_factor, 1.0)[:, None]
    return log_lik, has_picklist, has_cell


def _normalise(log_p: np.ndarray) -> np.ndarray:
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _peer_log_prior(
    evidence: np.ndarray, group: np.ndarray, rules: ValueProfileSettings
) -> np.ndarray:
    """(customers, profiles) log prior: the profile mix of each peer group, estimated by EM from
    the members' evidence and shrunk towards the uniform mix by `pseudo_customers`."""
    groups, index = np.unique(group, return_inverse=True)
    k = evidence.shape[1]
    log_mix = np.full((len(groups), k), -np.log(k))
    members = np.bincount(index, minlength=len(groups))[:, None]
    pseudo = rules.peer_prior.pseudo_customers
    for _ in range(rules.peer_prior.iterations):
        posterior = _normalise(evidence + log_mix[index])
        sums = np.zeros((len(groups), k))
        np.add.at(sums, index, posterior)
        log_mix = np.log((sums + pseudo / k) / (members + pseudo))
    return log_mix[index]


def _ranking_texts(
    opportunity_ids: np.ndarray, ranks: np.ndarray, core: list[str]
) -> dict[str, str]:
    """Per project: its ratings as 'driver>driver>...' texts joined by ' | ' (the inputs)."""
    ranked = ~np.isnan(ranks)
    order = np.argsort(np.where(ranked, ranks, np.inf), axis=1, kind="stable")
    names = np.array(core, dtype=object)
    texts: dict[str, str] = {}
    for opportunity_id, row, k in zip(opportunity_ids, order, ranked.sum(axis=1), strict=True):
        text = ">".join(names[row[:k]])
        texts[opportunity_id] = (
            f"{texts[opportunity_id]} | {text}" if opportunity_id in texts else text
        )
    return texts


def assign_value_profiles(
    inputs: ValueProfileInputs,
    profiles: pd.DataFrame,
    drivers: pd.DataFrame,
    rules: ValueProfileSettings,
    scheme_version: str,
    as_of: dt.date | None,
) -> ValueProfiles:
    """Profiles of every project and of every customer with a project or a CRM account."""
    core = core_drivers(drivers)
    utilities = profile_utilities(profiles, core).sort_index()
    names = utilities.index.to_numpy(dtype=object)
    k = len(names)

    projects = inputs.projects.sort_values("opportunity_id").reset_index(drop=True)
    # A project whose account maps to no customer stands for itself.
    project_key = (
        projects["customer_id"]
        .astype(object)
        .where(projects["customer_id"].notna(), "project " + projects["opportunity_id"].astype(str))
    )
    accounts = inputs.accounts[inputs.accounts["customer_id"].notna()]
    keys = np.array(sorted(set(project_key) | set(accounts["customer_id"])), dtype=object)
    key_index = pd.Index(keys)
    of_project = key_index.get_indexer(project_key)
    of_account = key_index.get_indexer(accounts["customer_id"])

    # Ratings -> per project log-likelihood (projects without a rating: 0 = no evidence).
    ratings = inputs.ratings[inputs.ratings["opportunity_id"].isin(projects["opportunity_id"])]
    # a stable order of the ratings of one project, whatever order they came in
    order_by = [
        "opportunity_id",
        *[c for c in ("rater_key", "rated_at") if c in ratings],
        *[f"{d}_rank" for d in core],
    ]
    ratings = ratings.sort_values(order_by, kind="stable").reset_index(drop=True)
    ranks = ratings[[f"{d}_rank" for d in core]].to_numpy(dtype=float)
    rating_ll = ranking_log_likelihoods(ranks, utilities.to_numpy(), rules.ranking_temperature)
    rating_project = pd.Index(projects["opportunity_id"]).get_indexer(ratings["opportunity_id"])
    project_ll = np.zeros((len(projects), k))
    np.add.at(project_ll, rating_project, rating_ll)
    rating_count = np.bincount(rating_project, minlength=len(projects))
    rated = rating_count > 0

    # What each project says about its customer: its profile is the customer's with
    # probability f, else one of the others.
    follow = rules.project_follows_customer
    other = (1 - follow) / max(k - 1, 1)
    transition = np.where(np.eye(k, dtype=bool), follow, other)  # customer -> project
    top = project_ll.max(axis=1, keepdims=True)
    message = np.log(np.exp(project_ll - top) @ transition.T) + top

    account_ll, has_picklist, has_cell = _account_evidence(accounts, profiles, names, rules)
    evidence = np.zeros((len(keys), k))
    np.add.at(evidence, of_account, account_ll)
    np.add.at(evidence, of_project, message)

    groups = pd.Series(keys).map(inputs.peer_groups.set_index("customer_id")["peer_group"])
    groups = groups.fillna(NO_PEER_GROUP).to_numpy(dtype=object)
    customer_log = evidence + _peer_log_prior(evidence, groups, rules)
    customer_post = _normalise(customer_log)

    # A project: its ratings x its customer's posterior without the project's own message.
    others = _normalise(customer_log[of_project] - message)
    project_post = _normalise(np.log(others @ transition + 1e-300) + project_ll)

    customer_best = customer_post.argmax(axis=1)
    customer_profile = names[customer_best]
    customer_conf = customer_post[np.arange(len(keys)), customer_best]
    project_best = project_post.argmax(axis=1)
    project_profile = names[project_best]
    project_conf = project_post[np.arange(len(projects)), project_best]
    threshold = rules.provisional_below_confidence

    project_table = _project_table(
        projects,
        project_profile,
        customer_profile[of_project],
        project_conf,
        rated,
        rating_count,
        _ranking_texts(ratings["opportunity_id"].to_numpy(), ranks, core),
        threshold,
    )
    customer_table = _customer_table(
        keys,
        projects,
        of_project,
        project_profile,
        rated,
        accounts,
        of_account,
        has_picklist,
        has_cell,
        profiles,
        customer_profile,
        customer_conf,
        groups,
        threshold,
    )
    return ValueProfiles(
        projects=stamp(project_table, scheme_version, as_of),
        customers=stamp(customer_table, scheme_version, as_of),
    )


def _project_table(
    projects: pd.DataFrame,
    profile: np.ndarray,
    customer_profile: np.ndarray,
    confidence: np.ndarray,
    rated: np.ndarray,
    rating_count: np.ndarray,
    ranking_texts: dict[str, str],
    threshold: float,
) -> pd.DataFrame:
    provisional = confidence < threshold
    deviates = profile != customer_profile
    basis = np.where(
        rated, "VP.RATINGS_" + rating_count.astype(str).astype(object), "VP.CUSTOMER_PROFILE"
    ).astype(object)
    reasons = join_where(
        [
            (np.ones(len(basis), dtype=bool), basis),
            (deviates, "VP.RATINGS_DEVIATE_FROM_CUSTOMER"),
            (provisional, "VP.LOW_CONFIDENCE"),
        ],
        len(basis),
    )
    inputs = inputs_json_rows(
        {
            "customer_profile": customer_profile,
            "ratings": [ranking_texts.get(o) for o in projects["opportunity_id"]],
        }
    )
    return pd.DataFrame(
        {
            "opportunity_id": projects["opportunity_id"],
            "customer_id": projects["customer_id"],
            "stage": projects["stage"],
            "close_date": projects["close_date"],
            "value_profile": profile,
            "customer_value_profile": customer_profile,
            "is_rated": rated,
            "confidence": np.round(confidence, 4),
            "is_provisional": provisional,
            "reason_codes": reasons,
            "inputs": inputs,
        },
        columns=PROJECT_COLUMNS,
    )


def _agreement(
    rows_of: np.ndarray, flags: np.ndarray, agrees: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer: has at least one flagged row, and at least one flagged row that agrees."""
    present = np.bincount(rows_of[flags], minlength=n) > 0
    agreeing = np.bincount(rows_of[flags & agrees], minlength=n) > 0
    return present, agreeing


def _customer_table(
    keys: np.ndarray,
    projects: pd.DataFrame,
    of_project: np.ndarray,
    project_profile: np.ndarray,
    rated: np.ndarray,
    accounts: pd.DataFrame,
    of_account: np.ndarray,
    has_picklist: np.ndarray,
    has_cell: np.ndarray,
    profiles: pd.DataFrame,
    profile: np.ndarray,
    confidence: np.ndarray,
    groups: np.ndarray,
    threshold: float,
) -> pd.DataFrame:
    n = len(keys)
    project_count = np.bincount(of_project, minlength=n)
    rated_count = np.bincount(of_project[rated], minlength=n)
    distinct = pd.Series(project_profile).groupby(of_project).nunique()
    distinct_count = distinct.reindex(range(n), fill_value=0).to_numpy()

    assigned = profile[of_account]
    picklist = accounts["value_profile"].to_numpy(dtype=object)
    cell_of = profiles.set_index(["business_model", "operating_environment"])["value_profile"]
    cell = pd.MultiIndex.from_frame(accounts[["business_model", "operating_environment"]])
    cell_profile = cell_of.reindex(cell).to_numpy(dtype=object)
    has_pick, pick_agrees = _agreement(of_account, has_picklist, picklist == assigned, n)
    has_cells, cell_agrees = _agreement(of_account, has_cell, cell_profile == assigned, n)
    direct = has_pick | has_cells | (rated_count > 0)
    provisional = (confidence < threshold) | ~direct

    reasons = join_where(
        [
            (has_pick & pick_agrees, "VP.ACCOUNT_PICKLIST"),
            (has_pick & ~pick_agrees, "VP.ACCOUNT_PICKLIST_OVERRULED"),
            (has_cells & cell_agrees, "VP.ACCOUNT_CELL"),
            (has_cells & ~cell_agrees, "VP.ACCOUNT_CELL_OVERRULED"),
            (rated_count != 0, "VP.RATED_PROJECTS_" + rated_count.astype(str).astype(object)),
            (direct, "VP.PEER_GROUP"),
            (~direct, "VP.PEER_GROUP_ONLY"),
            (provisional, "VP.LOW_CONFIDENCE"),
        ],
        n,
    )

    account_texts: list[list[str]] = [[] for _ in range(n)]
    texts = (
        accounts["account_id"].astype(str)
        + ": "
        + accounts["value_profile"].fillna("-").astype(str)
        + " / "
        + accounts["business_model"].fillna("-").astype(str)
        + " x "
        + accounts["operating_environment"].fillna("-").astype(str)
    )
    for row, text in zip(of_account, texts, strict=True):
        account_texts[row].append(text)
    inputs = inputs_json_rows(
        {
            "accounts": [sorted(t) or None for t in account_texts],
            "peer_group": groups,
            "projects": project_count,
            "rated_projects": rated_count,
        }
    )
    table = pd.DataFrame(
        {
            "customer_id": keys,
            "value_profile": profile,
            "projects": project_count,
            "rated_projects": rated_count,
            "distinct_profiles": distinct_count,
            "peer_group": groups,
            "confidence": np.round(confidence, 4),
            "is_provisional": provisional,
            "reason_codes": reasons,
            "inputs": inputs,
        },
        columns=CUSTOMER_COLUMNS,
    )
    # Projects whose account maps to no customer have no customer row.
    customers = set(projects["customer_id"].dropna()) | set(accounts["customer_id"])
    return table[table["customer_id"].isin(customers)].reset_index(drop=True)


def profile_coverage(
    project_profiles: pd.DataFrame,
    customer_regions: pd.DataFrame,
    profiles: pd.DataFrame,
    rules: ValueProfileSettings,
    scheme_version: str,
    as_of: dt.date | None,
) -> pd.DataFrame:
    """Per profile: rated projects behind it, small-sample flag, and the regions it covers."""
    regions = customer_regions[["customer_id", "region"]]
    rated = project_profiles[project_profiles["is_rated"]].merge(
        regions, on="customer_id", how="left"
    )
    all_regions = sorted(regions["region"].dropna().unique())
    counts = rated.groupby("value_profile").size()
    covered = (
        rated.dropna(subset=["region"])
        .groupby("value_profile")["region"]
        .agg(lambda r: sorted(r.unique()))
    )
    names = sorted(profiles["value_profile"])
    rated_projects = counts.reindex(names, fill_value=0).to_numpy()
    region_lists = [covered.get(name, []) for name in names]
    out = pd.DataFrame(
        {
            "value_profile": names,
            "rated_projects": rated_projects,
            "is_small_sample": rated_projects < rules.min_rated_projects,
            "regions_covered": [len(r) for r in region_lists],
            "regions_total": len(all_regions),
            "regions": [", ".join(r) for r in region_lists],
        }
    )
    return stamp(out, scheme_version, as_of)
