"""The real companies behind the extracts: firmographics, roles, groups and the hidden truth.

Every company gets a true sub-segment, size tier, service tier, business model, operating
environment (hence value profile), role, country and address, and the behaviour knobs the
transactions depend on. CRM and ERP records are later rendered from these rows, each system in
its own way; `truth/companies.csv` is written from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.streams import Streams
from dagster_project.generate.text import Transliterator, fill_patterns, slug
from dagster_project.generate.timeline import Timeline, day_number
from dagster_project.generate.world import SERVICE_TIERS, World

BUYING_ROLES = ("customer", "distributor", "epc")


def categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows, categories) weight matrix."""
    cum = np.cumsum(probs, axis=1)
    cum = cum / cum[:, -1:]
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def weights_matrix(rows: list[dict[str, float]], columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """Weight dicts (one per row, e.g. per sub-segment) as a matrix over fixed columns."""
    return np.array([[float(r.get(c, 0.0)) for c in columns] for r in rows])


@dataclass
class Companies:
    """The generated companies (one row each) plus the predecessors absorbed by mergers."""

    frame: pd.DataFrame
    product_mix: np.ndarray  # (companies, product lines): share of order lines per product line
    product_lines: tuple[str, ...]
    absorbed: pd.DataFrame  # one row per absorbed predecessor: company (survivor), names, day

    def __len__(self) -> int:
        return len(self.frame)


class NameMaker:
    """Company names in the language of their country, with the legal form kept apart."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.vocab = world.vocab
        self.rng = rng
        self.translit = Transliterator(world.vocab["transliteration"])
        templates = world.vocab["name_templates"]
        self.templates = [t["template"] for t in templates]
        self.template_weights = np.array([t["weight"] for t in templates], dtype=float)

    def brand(self, size: int) -> np.ndarray:
        heads, tails = self.vocab["brand_heads"], self.vocab["brand_tails"]
        h = self.rng.integers(0, len(heads), size)
        t = self.rng.integers(0, len(tails), size)
        return np.array([heads[a] + tails[b] for a, b in zip(h, t, strict=True)], dtype=object)

    def names(
        self, country: np.ndarray, sub_segment: np.ndarray, city: np.ndarray,
        brand: np.ndarray, force_brand: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(base name without legal form, legal form key or None, legal name) per company."""
        rng, vocab = self.rng, self.vocab
        n = len(country)
        base = np.empty(n, dtype=object)
        legal = np.empty(n, dtype=object)
        template_pick = rng.choice(len(self.templates), size=n, p=self.template_weights /
                                   self.template_weights.sum())
        public_pick = rng.random(n) < 0.7
        u = rng.random((n, 4))
        for i in range(n):
            spec = vocab["countries"][country[i]]
            lang = vocab["languages"][spec["lang"]]
            words = lang["words"].get(sub_segment[i]) or vocab["languages"]["en"]["words"][
                sub_segment[i]]
            cities = spec["cities"]
            place = city[i] if u[i, 0] < 0.6 else cities[int(u[i, 1] * len(cities))][0]
            if sub_segment[i] == "Municipal & Public Sector" and public_pick[i] and not force_brand[i]:
                template = lang["public_templates"][int(u[i, 2] * len(lang["public_templates"]))]
            elif force_brand[i]:
                template = "{brand} {word} {legal}"
            else:
                template = self.templates[template_pick[i]]
            if lang["word_first"]:
                template = template.replace("{brand} {word}", "{word} {brand}").replace(
                    "{place} {word}", "{word} {place}").replace("{surname} {word}", "{word} {surname}")
            forms = list(spec["legal"])
            form_weights = np.array([spec["legal"][f] for f in forms])
            form = forms[int(np.searchsorted(np.cumsum(form_weights) / form_weights.sum(), u[i, 3]))]
            surnames = lang["last_names"]
            filled = template.format(
                brand=brand[i], word=words[int(u[i, 2] * len(words))], place=place,
                surname=surnames[int(u[i, 1] * len(surnames))], legal="{legal}",
            )
            if "{legal}" in filled:
                base[i] = filled.replace("{legal}", "").strip()
                legal[i] = form
            else:
                base[i] = filled.strip()
                legal[i] = None
        legal_name = np.array(
            [b if f is None else f"{b} {vocab['legal_forms'][f]['legal']}" for b, f in zip(
                base, legal, strict=True)], dtype=object)
        return base, legal, legal_name


def _addresses(world: World, rng: np.random.Generator, country: np.ndarray) -> dict[str, np.ndarray]:
    """City, exonym, street line, postal code, VAT number and phone pattern per company."""
    vocab = world.vocab
    n = len(country)
    city = np.empty(n, dtype=object)
    exonym = np.empty(n, dtype=object)
    street = np.empty(n, dtype=object)
    u = rng.random((n, 2))
    house = rng.integers(1, 250, n)
    for i in range(n):
        spec = vocab["countries"][country[i]]
        lang = vocab["languages"][spec["lang"]]
        name, other = spec["cities"][int(u[i, 0] * len(spec["cities"]))]
        city[i], exonym[i] = name, (other or None)
        road = lang["streets"][int(u[i, 1] * len(lang["streets"]))]
        street[i] = f"{house[i]} {road}" if lang["street_number_first"] else f"{road} {house[i]}"
    postal = fill_patterns(np.array([vocab["countries"][c]["postal"] for c in country], dtype=object),
                           rng)
    postal = np.where(postal == "", None, postal)
    vat = fill_patterns(np.array([vocab["countries"][c]["vat"] for c in country], dtype=object), rng)
    return {"city": city, "city_exonym": exonym, "street": street, "postal_code": postal,
            "vat": vat}


def build_companies(n: int, world: World, diff: Difficulty, timeline: Timeline,
                    streams: Streams) -> Companies:
    """Draw `n` companies and everything that is true about them."""
    rng = streams.rng("companies")
    vocab = world.vocab
    roles = list(vocab["roles"])
    role = np.array(roles, dtype=object)[categorical(
        rng, np.tile([vocab["roles"][r]["weight"] for r in roles], (n, 1)))]

    codes = list(vocab["countries"])
    country = np.array(codes, dtype=object)[categorical(
        rng, np.tile([vocab["countries"][c]["weight"] for c in codes], (n, 1)))]
    cspec = [vocab["countries"][c] for c in country]

    subs = world.sub_segments
    sub_idx = categorical(rng, np.tile([vocab["sub_segments"][s]["weight"] for s in subs], (n, 1)))
    sub_segment = np.array(subs, dtype=object)[sub_idx]
    segment = np.array(world.segments, dtype=object)[sub_idx]

    sizes = list(vocab["size_tiers"])
    size = np.array(sizes, dtype=object)[categorical(
        rng, np.tile([vocab["size_tiers"][s]["weight"] for s in sizes], (n, 1)))]
    tier_by_size = dict(diff.service_tier_by_size)
    tier_idx = categorical(rng, np.array([tier_by_size[s] for s in size]))
    service_tier = np.array(SERVICE_TIERS, dtype=object)[tier_idx]

    # Value-profile axes: distributors resell, EPCs develop; others follow their sub-segment.
    sub_rows = [vocab["sub_segments"][s] for s in subs]
    bm = categorical(rng, weights_matrix([r["business_model"] for r in sub_rows],
                                         world.business_models)[sub_idx])
    bm[role == "distributor"] = world.business_models.index("Reseller")
    bm[role == "epc"] = world.business_models.index("Developer / EPC")
    partner_resells = (role == "partner") & (rng.random(n) < 0.5)
    bm[partner_resells] = world.business_models.index("Reseller")
    env = categorical(rng, weights_matrix([r["operating_environment"] for r in sub_rows],
                                          world.environments)[sub_idx])
    usages = sorted({u for r in sub_rows for u in r["product_usage"]})
    usage = np.array(usages, dtype=object)[categorical(
        rng, weights_matrix([r["product_usage"] for r in sub_rows], usages)[sub_idx])]
    owners = sorted({o for r in sub_rows for o in r["ownership"]})
    ownership = np.array(owners, dtype=object)[categorical(
        rng, weights_matrix([r["ownership"] for r in sub_rows], owners)[sub_idx])]

    # Some companies change business model or environment during the window (migration).
    migrates = rng.random(n) < diff.profile_migration_rate
    prev_bm, prev_env = bm.copy(), env.copy()
    flip_env = rng.random(n) < 0.5
    env = np.where(migrates & flip_env, 1 - env, env)
    shift = rng.integers(1, len(world.business_models), n)
    bm = np.where(migrates & ~flip_env & ~np.isin(role, ["distributor", "epc"]),
                  (bm + shift) % len(world.business_models), bm)
    migrates &= (bm != prev_bm) | (env != prev_env)
    migrated_day = np.where(migrates, rng.integers(timeline.start_day + 60,
                                                   timeline.end_day - 30, n), -1)
    profile = world.profile_of(bm, env)
    prev_profile = world.profile_of(prev_bm, prev_env)

    # Firmographics.
    typical = np.array([vocab["size_tiers"][s]["employees"] for s in size], dtype=float)
    employees = np.maximum(3, np.round(typical * rng.lognormal(0, diff.employees_noise_sigma, n)))
    revenue = np.round(employees * 210_000 * rng.lognormal(0, 0.35, n), -3)

    # When the company became known, and whether (and when) it stopped buying.
    hist = vocab["history"]
    crm_since = day_number(date(hist["crm_since_year"], 1, 1))
    industry_since = day_number(date(hist["new_industry_since_year"], 1, 1))
    is_new_industry = np.array([world.sub_segment_scheme_version[i] > 1 for i in sub_idx])
    new = rng.random(n) < np.where(is_new_industry, 0.5, diff.new_company_share)
    legacy_from = np.where(is_new_industry, industry_since, crm_since)
    known_since = np.where(
        new, rng.integers(timeline.start_day, timeline.end_day - 20, n),
        legacy_from + (rng.random(n) * (timeline.start_day - legacy_from)).astype(np.int64))

    # Which system knows the company.
    u = rng.random(n)
    direct = np.isin(role, BUYING_ROLES)
    in_erp = direct.copy()
    in_crm = ~direct | (u >= diff.erp_only_share)
    end_user = role == "end_user"
    in_erp[end_user] = u[end_user] < diff.end_user_in_erp_share
    in_crm[end_user] = u[end_user] >= diff.end_user_erp_only_share
    in_erp[role == "partner"] = u[role == "partner"] < diff.partner_in_erp_share
    in_erp[role == "competitor"] = u[role == "competitor"] < diff.competitor_in_erp_share
    buys = in_erp & (direct | np.isin(role, ["partner", "competitor"]) | (
        end_user & (rng.random(n) < diff.end_user_direct_buyer_share)))
    volume = np.array([dict(diff.buyer_volume_by_role)[r] for r in role]) * np.array(
        [vocab["size_tiers"][s]["order_rate"] for s in size]) * buys

    active_from = np.maximum(known_since + 15, timeline.start_day)
    churns = buys & (rng.random(n) < diff.churn_share) & (active_from < timeline.end_day - 240)
    active_to = np.where(
        churns, active_from + 120 + (rng.random(n) * np.maximum(
            timeline.end_day - 240 - active_from, 1)).astype(np.int64), timeline.end_day)

    # Groups: members hang under a large customer of their segment.
    parent = np.full(n, -1)
    candidate = np.isin(size, ["strategic", "key", "large"]) & (role == "customer")
    member = ~candidate & (role != "competitor") & (rng.random(n) < diff.group_member_share)
    for seg in world.unique_segments:
        heads = np.flatnonzero(candidate & (segment == seg))
        if len(heads) == 0:
            heads = np.flatnonzero(candidate)
        kids = np.flatnonzero(member & (segment == seg))
        if len(heads) and len(kids):
            parent[kids] = heads[rng.integers(0, len(heads), len(kids))]

    # End users are served by a distributor or EPC contractor.
    served_by = np.full(n, -1)
    channel = np.flatnonzero(np.isin(role, ["distributor", "epc"]))
    if len(channel):
        served_by[end_user] = channel[rng.integers(0, len(channel), int(end_user.sum()))]

    # Behaviour knobs the transactions read.
    draining = rng.random(n) < np.array(diff.service_draining_share)[tier_idx]
    ignores_terms = rng.random(n) < diff.ignores_terms_rate

    lines = tuple(vocab["product_lines"])
    base_mix = weights_matrix([r["products"] for r in sub_rows], lines)
    base_mix = base_mix / base_mix.sum(axis=1, keepdims=True)
    alpha = base_mix[sub_idx] * diff.product_mix_concentration
    reseller = np.isin(role, ["distributor", "partner"])
    alpha[reseller] = base_mix.mean(axis=0) * diff.product_mix_concentration * 2
    mix = rng.gamma(np.maximum(alpha, 1e-3))
    mix /= mix.sum(axis=1, keepdims=True)

    # Names and addresses.
    names = NameMaker(world, streams.rng("companies.names"))
    address = _addresses(world, streams.rng("companies.addresses"), country)
    brand = names.brand(n)
    shares_brand = (parent >= 0) & (rng.random(n) < diff.subsidiary_shares_brand_rate)
    brand = np.where(shares_brand, brand[np.maximum(parent, 0)], brand)
    base, legal_form, legal_name = names.names(country, sub_segment, address["city"], brand,
                                                 shares_brand)
    # Two different companies with one legal name would make the truth ambiguous: rename.
    for _ in range(20):
        clash = pd.Series(legal_name).duplicated().to_numpy()
        if not clash.any():
            break
        brand[clash] = names.brand(int(clash.sum()))
        base[clash], legal_form[clash], legal_name[clash] = names.names(
            country[clash], sub_segment[clash], address["city"][clash], brand[clash],
            np.ones(int(clash.sum()), dtype=bool))
    # The web domain follows the first two words of the name (norvik-energy.fi).
    domain = np.array([f"{slug(' '.join(b.split()[:2]), names.translit)}.{spec['tld']}"
                       for b, spec in zip(base, cspec, strict=True)], dtype=object)

    frame = pd.DataFrame({
        "company_id": [f"C{i + 1:06d}" for i in range(n)],
        "legal_name": legal_name, "name_base": base, "legal_form": legal_form,
        "brand": brand, "domain": domain,
        "country": country, "lang": [c["lang"] for c in cspec],
        "region": [c["region"] for c in cspec], "currency": [c["currency"] for c in cspec],
        "tz": [c["tz"] for c in cspec], "sales_org": [c["sales_org"] for c in cspec],
        **address,
        "segment": segment, "sub_segment": sub_segment, "sub_idx": sub_idx,
        "size_tier": size, "service_tier": service_tier, "tier_idx": tier_idx,
        "role": role, "business_model_idx": bm, "environment_idx": env,
        "business_model": np.array(world.business_models, dtype=object)[bm],
        "operating_environment": np.array(world.environments, dtype=object)[env],
        "product_usage": usage, "ownership": ownership,
        "profile_idx": profile, "value_profile": np.array(world.value_profiles, dtype=object)[profile],
        "previous_profile_idx": prev_profile, "migrated_day": migrated_day,
        "employees": employees.astype(np.int64), "annual_revenue_eur": revenue,
        "known_since_day": known_since, "in_crm": in_crm, "in_erp": in_erp, "buys": buys,
        "volume": volume, "active_from_day": active_from, "active_to_day": active_to,
        "churned": churns, "parent": parent, "served_by": served_by,
        "service_draining": draining, "ignores_terms": ignores_terms,
    })
    absorbed = _absorbed_predecessors(frame, world, diff, timeline, streams, names)
    return Companies(frame=frame, product_mix=mix, product_lines=lines, absorbed=absorbed)


def _absorbed_predecessors(frame: pd.DataFrame, world: World, diff: Difficulty,
                           timeline: Timeline, streams: Streams, names: NameMaker) -> pd.DataFrame:
    """Companies swallowed by a merger: other name, same address, records still in both systems."""
    rng = streams.rng("companies.mergers")
    eligible = np.flatnonzero(frame["in_crm"] & frame["in_erp"] & frame["buys"] & (
        frame["active_from_day"] < timeline.end_day - 400))
    picked = eligible[rng.random(len(eligible)) < diff.merged_company_rate]
    if len(picked) == 0:
        return pd.DataFrame(columns=["company", "legal_name", "name_base", "legal_form", "brand",
                                     "vat", "merger_day"])
    sub = frame.iloc[picked]
    brand = names.brand(len(picked))
    base, legal_form, legal_name = names.names(
        sub["country"].to_numpy(), sub["sub_segment"].to_numpy(), sub["city"].to_numpy(), brand,
        np.ones(len(picked), dtype=bool))
    vat = fill_patterns(np.array([world.vocab["countries"][c]["vat"] for c in sub["country"]],
                                 dtype=object), rng)
    lo = np.maximum(sub["active_from_day"].to_numpy() + 200, timeline.start_day + 120)
    merger_day = lo + (rng.random(len(picked)) * (timeline.end_day - 150 - lo)).astype(np.int64)
    return pd.DataFrame({
        "company": picked, "legal_name": legal_name, "name_base": base, "legal_form": legal_form,
        "brand": brand, "vat": vat, "merger_day": merger_day,
    })
