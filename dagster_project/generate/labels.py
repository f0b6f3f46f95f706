"""Legacy labels and new picklist values as the systems hold them: drifting, noisy, partly empty.

Legacy labels (crm industry, crm legacy_segment, erp customer_group) are drawn from the
vocabulary's label lists: each label applies to some sub-segments, segments, sizes or roles
and was in use in some years, so the label a record carries depends on when it was created or
last re-labelled (drift), and a share of labels belongs to a wrong sub-segment (noise).
The new segmentation picklists are filled only on accounts edited after go-live, with errors.
"""

from __future__ import annotations

import numpy as np

from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.timeline import Timeline
from dagster_project.generate.world import World


def year_of(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[Y]").astype(
        np.int64) + 1970


def draw_legacy_labels(
    entries: list[dict], world: World, rng: np.random.Generator, *, sub_idx: np.ndarray,
    size: np.ndarray, role: np.ndarray, year: np.ndarray, noise_rate: float, missing_rate: float,
) -> np.ndarray:
    """One label per row (None when missing or when no label fits)."""
    n = len(sub_idx)
    n_subs = len(world.sub_segments)
    noisy = rng.random(n) < noise_rate
    shifted = (sub_idx + rng.integers(1, n_subs, n)) % n_subs
    seen_sub = np.where(noisy, shifted, sub_idx)
    subs = np.array(world.sub_segments, dtype=object)[seen_sub]
    segs = np.array(world.segments, dtype=object)[seen_sub]
    weights = np.zeros((n, len(entries)))
    for j, entry in enumerate(entries):
        ok = np.ones(n, dtype=bool)
        if "sub_segments" in entry:
            ok &= np.isin(subs, entry["sub_segments"])
        if "segments" in entry:
            ok &= np.isin(segs, entry["segments"])
        if "sizes" in entry:
            ok &= np.isin(size, entry["sizes"])
        if "roles" in entry:
            ok &= np.isin(role, entry["roles"])
        ok &= (year >= entry.get("from_year", 0)) & (year <= entry.get("to_year", 9999))
        weights[:, j] = ok * float(entry["weight"])
    total = weights.sum(axis=1)
    cum = np.cumsum(weights, axis=1)
    pick = (rng.random(n)[:, None] * total[:, None] >= cum).sum(axis=1)
    labels = np.array([e["label"] for e in entries], dtype=object)[np.minimum(pick, len(entries) - 1)]
    missing = (total == 0) | (rng.random(n) < missing_rate)
    return np.where(missing, None, labels)


class PicklistDraws:
    """Per-account random draws, fixed once so an account keeps its picklist choices across
    extracts (an account filled in November is still filled in December)."""

    def __init__(self, rng: np.random.Generator, n: int, world: World) -> None:
        self.fill = rng.random(n)
        self.bulk = rng.random(n)
        self.axes = rng.random(n)
        self.err = rng.random((n, 6))
        self.other_sub = rng.random(n)
        self.other_profile = rng.integers(1, len(world.value_profiles), n)
        self.other_axis = rng.integers(1, 64, (n, 3))


def picklists(
    world: World, diff: Difficulty, timeline: Timeline, draws: PicklistDraws, rows: np.ndarray,
    *, edited_day: np.ndarray, sub_idx: np.ndarray, profile_idx: np.ndarray, bm_idx: np.ndarray,
    env_idx: np.ndarray, usage: np.ndarray,
) -> dict[str, np.ndarray]:
    """The new picklist fields of account versions.

    `rows` indexes the per-account draws; the other arrays are per version row: the day the
    version was edited and the company's true state at that day.
    """
    filled = ((edited_day >= timeline.go_live_day) & (draws.fill[rows] < diff.picklist_fill_rate)) | (
        draws.bulk[rows] < diff.picklist_fill_rate_unedited)
    err = draws.err[rows]
    subs = np.array(world.sub_segments, dtype=object)
    segs = np.array(world.segments, dtype=object)
    versions = np.array(world.sub_segment_scheme_version)

    # Before a sub-segment existed in the scheme, its accounts were filed under its predecessor.
    chosen = sub_idx.copy()
    for i, name in enumerate(world.sub_segments):
        before = world.vocab["sub_segments"][name].get("before_scheme_version") or {}
        for version, predecessor in before.items():
            too_early = (chosen == i) & (edited_day < _scheme_day(timeline, int(version)))
            chosen[too_early] = world.sub_segments.index(predecessor)

    available = [np.flatnonzero(versions <= 1), np.arange(len(subs))]
    for row in np.flatnonzero(filled & ((err[:, 0] < diff.picklist_wrong_sub_segment_rate) | (
            err[:, 1] < diff.picklist_wrong_segment_rate))):
        pool = available[int(edited_day[row] >= timeline.scheme_v2_day)]
        same_segment = segs[pool] == segs[chosen[row]]
        if err[row, 1] < diff.picklist_wrong_segment_rate:
            pool = pool[~same_segment]
        else:
            pool = pool[same_segment & (pool != chosen[row])]
        if len(pool):
            chosen[row] = pool[int(draws.other_sub[rows[row]] * len(pool))]

    profile = profile_idx.copy()
    wrong_profile = err[:, 2] < diff.picklist_wrong_value_profile_rate
    profile[wrong_profile] = (profile[wrong_profile] + draws.other_profile[rows[wrong_profile]]) % len(
        world.value_profiles)

    axes = filled & (draws.axes[rows] < diff.picklist_axes_fill_rate)
    usages = np.array(sorted({u for s in world.vocab["sub_segments"].values()
                              for u in s["product_usage"]}), dtype=object)
    usage_idx = np.searchsorted(usages, usage)
    wrong = err[:, 3:6] < diff.picklist_wrong_axis_rate
    other = draws.other_axis[rows]
    bm = np.where(wrong[:, 0], (bm_idx + other[:, 0]) % len(world.business_models), bm_idx)
    env = np.where(wrong[:, 1], (env_idx + other[:, 1]) % len(world.environments), env_idx)
    usage_idx = np.where(wrong[:, 2], (usage_idx + other[:, 2]) % len(usages), usage_idx)

    def masked(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, values, None)

    return {
        "segment": masked(segs[chosen], filled),
        "sub_segment": masked(subs[chosen], filled),
        "value_profile": masked(np.array(world.value_profiles, dtype=object)[profile], filled),
        "business_model": masked(np.array(world.business_models, dtype=object)[bm], axes),
        "operating_environment": masked(np.array(world.environments, dtype=object)[env], axes),
        "product_usage": masked(usages[usage_idx], axes),
    }


def _scheme_day(timeline: Timeline, version: int) -> int:
    return timeline.go_live_day if version <= 1 else timeline.scheme_v2_day
