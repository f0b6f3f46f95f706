"""Value profile (DESIGN.md "Segments", 2) at project grain, rolled up to the customer.

A project's value-driver ratings (non-null ranks exactly 1..k; only the drivers seeds/
value_drivers.csv marks is_core count) are compared with each profile's driver priority
(seeds/value_profiles.csv) by a Plackett-Luce likelihood: profile utilities fall by one step per
priority position, `ranking_temperature` says how noisy rankings are. The account's business
model x operating environment cell, where both are filled, is a prior (`cell_trust`). The profile
with the highest posterior wins; its posterior is the confidence.
Customer roll-up: the most recent won project with a profile, else the most frequent profile of
its projects (ties: the most recent), else the account cell's profile.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from dagster_project.segmentation.explain import inputs_json, reason_text, stamp
from dagster_project.segmentation.settings import ValueProfileSettings


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


def ranking_log_likelihood(ranks: dict[str, float], utilities: pd.DataFrame,
                           temperature: float) -> np.ndarray:
    """log P(observed top-k order of the core drivers | profile) under Plackett-Luce."""
    ranked = sorted((float(r), d) for d, r in ranks.items() if not pd.isna(r))
    u = utilities.to_numpy() / temperature
    columns = list(utilities.columns)
    remaining = list(range(len(columns)))
    total = np.zeros(len(utilities))
    for _, driver in ranked:
        j = columns.index(driver)
        total += u[:, j] - np.log(np.exp(u[:, remaining]).sum(axis=1))
        remaining.remove(j)
    return total


def assign_project_profiles(ratings: pd.DataFrame, projects: pd.DataFrame,
                            profiles: pd.DataFrame, drivers: pd.DataFrame,
                            rules: ValueProfileSettings, scheme_version: str,
                            as_of: dt.date | None) -> pd.DataFrame:
    """One row per project with at least one rating or a filled account cell.

    ratings: opportunity_id + <driver>_rank columns; projects: opportunity_id, customer_id,
    stage, close_date, business_model, operating_environment (of the project's account).
    """
    core = core_drivers(drivers)
    utilities = profile_utilities(profiles, core).sort_index()
    names = utilities.index.to_numpy()
    cell_of = {(r.business_model, r.operating_environment): r.value_profile
               for r in profiles.itertuples()}
    by_project = {k: g for k, g in ratings.groupby("opportunity_id", sort=True)}
    rows = []
    for project in projects.sort_values("opportunity_id").itertuples():
        project_ratings = by_project.get(project.opportunity_id)
        cell = cell_of.get((project.business_model, project.operating_environment))
        if project_ratings is None and cell is None:
            continue
        log_post = np.zeros(len(names))
        codes: list[str] = []
        if cell is not None:
            prior = np.where(names == cell, rules.cell_trust,
                             (1 - rules.cell_trust) / max(len(names) - 1, 1))
            log_post += np.log(prior)
            codes.append("VP.ACCOUNT_CELL")
        ranks_used = []
        if project_ratings is not None:
            for rating in project_ratings.itertuples():
                ranks = {d: None if pd.isna(v := getattr(rating, f"{d}_rank")) else int(v)
                         for d in core}
                ranks_used.append(ranks)
                log_post += ranking_log_likelihood(ranks, utilities, rules.ranking_temperature)
            codes.append(f"VP.RATINGS_{len(project_ratings)}")
        posterior = np.exp(log_post - log_post.max())
        posterior /= posterior.sum()
        best = int(np.argmax(posterior))  # ties: the first profile by name (stable)
        profile = names[best]
        if cell is not None and project_ratings is not None:
            codes.append("VP.CELL_AGREES" if cell == profile else "VP.RATINGS_OVERRULE_CELL")
        rows.append({
            "opportunity_id": project.opportunity_id,
            "customer_id": project.customer_id,
            "stage": project.stage,
            "close_date": project.close_date,
            "value_profile": profile,
            "is_rated": project_ratings is not None,
            "confidence": round(float(posterior[best]), 4),
            "reason_codes": reason_text(codes),
            "inputs": inputs_json({"cell": " x ".join(filter(None, [
                project.business_model, project.operating_environment])) or None,
                "ratings": str(ranks_used)}),
        })
    columns = ["opportunity_id", "customer_id", "stage", "close_date", "value_profile",
               "is_rated", "confidence", "reason_codes", "inputs"]
    return stamp(pd.DataFrame(rows, columns=columns), scheme_version, as_of)


def roll_up_to_customers(project_profiles: pd.DataFrame, rules: ValueProfileSettings,
                         scheme_version: str, as_of: dt.date | None) -> pd.DataFrame:
    """One profile per customer: the most recent won project, else the majority of projects."""
    rows = []
    frame = project_profiles.dropna(subset=["customer_id"])
    for customer_id, group in frame.groupby("customer_id", sort=True):
        group = group.sort_values(["close_date", "opportunity_id"], ascending=False,
                                  na_position="last")
        won = group[group["stage"].isin(rules.won_stages)]
        if len(won):
            pick, code = won.iloc[0], "VP.MOST_RECENT_WON_PROJECT"
            profile = pick.value_profile
            confidence = pick.confidence
        else:
            counts = group["value_profile"].value_counts()
            top = counts[counts == counts.max()].index
            profile = group[group["value_profile"].isin(top)].iloc[0].value_profile
            code = "VP.MAJORITY_OF_PROJECTS"
            confidence = float(group.loc[group["value_profile"] == profile, "confidence"].mean()
                               * counts.max() / len(group))
        rows.append({
            "customer_id": customer_id,
            "value_profile": profile,
            "projects": len(group),
            "distinct_profiles": int(group["value_profile"].nunique()),
            "confidence": round(float(confidence), 4),
            "reason_codes": code,
            "inputs": inputs_json({"projects": group["opportunity_id"].tolist()[:20]}),
        })
    columns = ["customer_id", "value_profile", "projects", "distinct_profiles", "confidence",
               "reason_codes", "inputs"]
    return stamp(pd.DataFrame(rows, columns=columns), scheme_version, as_of)


def profile_coverage(project_profiles: pd.DataFrame, customer_regions: pd.DataFrame,
                     profiles: pd.DataFrame, rules: ValueProfileSettings,
                     scheme_version: str, as_of: dt.date | None) -> pd.DataFrame:
    """Per profile: rated projects behind it, small-sample flag, and the regions it covers."""
    regions = customer_regions[["customer_id", "region"]]
    rated = project_profiles[project_profiles["is_rated"]].merge(regions, on="customer_id",
                                                                 how="left")
    all_regions = sorted(regions["region"].dropna().unique())
    rows = []
    for profile in sorted(profiles["value_profile"]):
        mine = rated[rated["value_profile"] == profile]
        covered = sorted(mine["region"].dropna().unique())
        rows.append({
            "value_profile": profile,
            "rated_projects": len(mine),
            "is_small_sample": len(mine) < rules.min_rated_projects,
            "regions_covered": len(covered),
            "regions_total": len(all_regions),
            "regions": ", ".join(covered),
        })
    return stamp(pd.DataFrame(rows), scheme_version, as_of)
