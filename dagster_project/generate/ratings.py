"""Value-driver ratings: someone who knew the project ranks what mattered most to the customer.

The ranking follows the project's true value profile (its driver priority from
seeds/value_profiles.csv) plus rater noise. Before the rating scheme was settled (the picklist
go-live) raters also ranked the candidate drivers; since then only the drivers the business
uses (is_core in seeds/value_drivers.csv). The non-null ranks of a row are exactly 1..k.
"""

from __future__ import annotations

import numpy as np

from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.timeline import DAY, Timeline
from dagster_project.generate.world import World

# How many drivers a rater ranks: before the scheme was settled, and after.
K_BEFORE = ((3, 0.15), (4, 0.35), (5, 0.2), (6, 0.1), (7, 0.2))
K_AFTER = ((2, 0.15), (3, 0.3), (4, 0.55))
RATERS_PER_REGION = 6


def rater_names(world: World, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A small pool of sales people per region, named in the region's languages."""
    vocab = world.vocab
    pools = {}
    for region in vocab["regions"]:
        langs = sorted({c["lang"] for c in vocab["countries"].values() if c["region"] == region})
        names = []
        while len(names) < RATERS_PER_REGION:
            lang = vocab["languages"][langs[int(rng.integers(0, len(langs)))]]
            name = (f"{lang['first_names'][int(rng.integers(0, len(lang['first_names'])))]} "
                    f"{lang['last_names'][int(rng.integers(0, len(lang['last_names'])))]}")
            if name not in names:
                names.append(name)
        pools[region] = np.array(names, dtype=object)
    return pools


def rank_drivers(world: World, diff: Difficulty, timeline: Timeline, rng: np.random.Generator,
                 profile: np.ndarray, rated_sec: np.ndarray) -> np.ndarray:
    """(ratings, drivers) float matrix of ranks 1..k, NaN for drivers not ranked."""
    n = len(profile)
    n_drivers = len(world.drivers)
    utility = (n_drivers - world.profile_driver_rank[profile]).astype(float)
    utility += rng.gumbel(0, diff.rating_noise, (n, n_drivers))
    core = np.array([d in world.core_drivers for d in world.drivers])
    settled = rated_sec // DAY >= timeline.go_live_day
    eligible = np.where(settled[:, None], core[None, :], True)
    utility = np.where(eligible, utility, -np.inf)
    order = np.argsort(-utility, axis=1, kind="stable")
    ranks = np.empty((n, n_drivers))
    np.put_along_axis(ranks, order, np.arange(1, n_drivers + 1, dtype=float)[None, :].repeat(
        n, axis=0), axis=1)
    k_before = _draw_k(rng, n, K_BEFORE)
    k_after = np.minimum(_draw_k(rng, n, K_AFTER), int(core.sum()))
    k = np.where(settled, k_after, k_before)
    return np.where((ranks <= k[:, None]) & eligible, ranks, np.nan)


def _draw_k(rng: np.random.Generator, n: int, table: tuple[tuple[int, float], ...]) -> np.ndarray:
    values = np.array([v for v, _ in table])
    weights = np.array([w for _, w in table])
    return values[rng.choice(len(values), size=n, p=weights / weights.sum())]
