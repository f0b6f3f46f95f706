"""The CRM side's master data: accounts (with duplicates and merged predecessors) and contacts.

Accounts are what sales typed: names with or without legal form, typos, exonyms, VAT ids in
every format, legacy labels of the era they were created or last re-labelled in, the new
picklists only where the account was edited after go-live, and an ERP link that is often
missing, sometimes stale or mistyped. Each extract carries the accounts created or changed
since the previous one, in their state at that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from dagster_project.generate.companies import Companies
from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.erp import KIND_RECREATED_OLD, CustomerRecords
from dagster_project.generate.ids import increasing_counters, salesforce_ids
from dagster_project.generate.labels import PicklistDraws, draw_legacy_labels, picklists, year_of
from dagster_project.generate.streams import Streams
from dagster_project.generate.text import (
    Transliterator,
    apply,
    fill_patterns,
    typo,
    vat_variant,
    website_variant,
)
from dagster_project.generate.timeline import DAY, Timeline, day_number
from dagster_project.generate.versions import NEVER, version_rows
from dagster_project.generate.world import World

KIND_PRIMARY, KIND_DUPLICATE, KIND_ABSORBED = "primary", "duplicate", "absorbed_predecessor"


@dataclass
class Batch:
    """Rows of one entity for one extract: contract columns plus each row's UTC offset."""

    extract: int
    data: dict[str, np.ndarray]
    tz: np.ndarray | str


@dataclass
class Accounts:
    frame: pd.DataFrame  # one row per CRM account: company, kind, account_id, created_sec, ...
    primary: np.ndarray  # company -> primary account index (-1 when not in CRM)


def office_seconds(days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A time during office hours on each day."""
    return np.asarray(days, dtype=np.int64) * DAY + rng.integers(7 * 3600, 18 * 3600, len(days))


def build_accounts(companies: Companies, world: World, diff: Difficulty, timeline: Timeline,
                   streams: Streams) -> Accounts:
    """Which CRM accounts exist, for which company, since when."""
    rng = streams.rng("crm.accounts")
    f = companies.frame
    n = len(f)
    last_second = int(timeline.extract_seconds[-1]) - 3600
    in_crm = np.flatnonzero(f["in_crm"].to_numpy())
    known = f["known_since_day"].to_numpy()
    created = np.minimum(office_seconds(known + rng.integers(0, 30, n), rng), last_second)

    company = [in_crm]
    kind = [np.full(len(in_crm), KIND_PRIMARY, dtype=object)]
    born = [created[in_crm]]
    deleted = [np.full(len(in_crm), NEVER)]

    # Re-created accounts: a second account for the same company, typed later by someone else.
    dup = in_crm[(rng.random(len(in_crm)) < diff.crm_duplicate_rate) & (
        created[in_crm] < last_second - 200 * DAY)]
    dup_born = created[dup] + 180 * DAY + (rng.random(len(dup)) * np.maximum(
        last_second - created[dup] - 180 * DAY, DAY)).astype(np.int64)
    company.append(dup)
    kind.append(np.full(len(dup), KIND_DUPLICATE, dtype=object))
    born.append(dup_born)
    # One of the pair is soft-deleted when someone notices (old or new one).
    cleanup = rng.random(len(dup)) < diff.crm_duplicate_deleted_rate
    cleanup_day = dup_born + (rng.random(len(dup)) * np.maximum(last_second - dup_born, 1)).astype(
        np.int64)
    deletes_new = rng.random(len(dup)) < 0.5
    deleted.append(np.where(cleanup & deletes_new, cleanup_day, NEVER))
    primary_deleted = np.full(n, NEVER)
    primary_deleted[dup[cleanup & ~deletes_new]] = cleanup_day[cleanup & ~deletes_new]
    deleted[0] = primary_deleted[in_crm]

    # Predecessors absorbed by a merger keep their old account.
    absorbed = companies.absorbed
    crm_since = day_number(date(world.vocab["history"]["crm_since_year"], 1, 1))
    if len(absorbed):
        a_company = absorbed["company"].to_numpy()
        a_born = office_seconds(np.maximum(known[a_company] - rng.integers(365, 6 * 365, len(
            absorbed)), crm_since), rng)
        a_deleted = np.where(rng.random(len(absorbed)) < 0.5, office_seconds(
            absorbed["merger_day"].to_numpy() + rng.integers(30, 300, len(absorbed)), rng), NEVER)
        company.append(a_company)
        kind.append(np.full(len(absorbed), KIND_ABSORBED, dtype=object))
        born.append(a_born)
        deleted.append(a_deleted)

    frame = pd.DataFrame({
        "company": np.concatenate(company), "kind": np.concatenate(kind),
        "created_sec": np.concatenate(born), "deleted_sec": np.concatenate(deleted),
    })
    frame["absorbed_row"] = -1
    if len(absorbed):
        frame.loc[frame["kind"] == KIND_ABSORBED, "absorbed_row"] = np.arange(len(absorbed))
    order = np.lexsort((np.arange(len(frame)), frame["created_sec"].to_numpy()))
    counters = np.empty(len(frame), dtype=np.int64)
    counters[order] = increasing_counters(rng, len(frame), 20_000_000, 40)
    frame["account_id"] = salesforce_ids("001", counters)
    primary = np.full(n, -1)
    is_primary = (frame["kind"] == KIND_PRIMARY).to_numpy()
    primary[frame["company"].to_numpy()[is_primary]] = np.flatnonzero(is_primary)
    return Accounts(frame=frame, primary=primary)


def _crm_names(companies: Companies, accounts: Accounts, world: World, diff: Difficulty,
               rng: np.random.Generator) -> np.ndarray:
    """Account names as typed by sales, one variant per account."""
    vocab = world.vocab
    translit = Transliterator(vocab["transliteration"])
    a = accounts.frame
    f = companies.frame
    m = len(a)
    company = a["company"].to_numpy()
    absorbed_row = a["absorbed_row"].to_numpy()
    base = f["name_base"].to_numpy()[company].copy()
    form = f["legal_form"].to_numpy()[company].copy()
    if len(companies.absorbed):
        is_abs = absorbed_row >= 0
        base[is_abs] = companies.absorbed["name_base"].to_numpy()[absorbed_row[is_abs]]
        form[is_abs] = companies.absorbed["legal_form"].to_numpy()[absorbed_row[is_abs]]
    u = rng.random((m, 7))
    names = np.empty(m, dtype=object)
    for i in range(m):
        if form[i] is None or u[i, 0] < diff.crm_drop_legal_form_rate:
            names[i] = base[i]
            continue
        spec = vocab["legal_forms"][form[i]]
        if u[i, 1] < diff.crm_full_legal_form_rate:
            names[i] = f"{base[i]} {spec['full']}"
        else:
            names[i] = f"{base[i]} {spec['crm'][int(u[i, 2] * len(spec['crm']))]}"
    names = apply(names, u[:, 3] < diff.crm_ascii_umlaut_rate, translit.mixed)
    names = apply(names, u[:, 4] < diff.crm_typo_rate, lambda s: typo(s, rng))
    names = apply(names, u[:, 5] < diff.crm_upper_case_rate, str.upper)
    names = apply(names, u[:, 6] < diff.crm_extra_space_rate,
                  lambda s: s.replace(" ", "  ", 1) if " " in s else s + " ")
    return names


def account_versions(companies: Companies, accounts: Accounts, erp: CustomerRecords,
                     world: World, diff: Difficulty, timeline: Timeline,
                     streams: Streams) -> list[Batch]:
    """The crm/accounts rows of each extract."""
    rng = streams.rng("crm.account_rows")
    vocab = world.vocab
    f = companies.frame
    a = accounts.frame
    m = len(a)
    company = a["company"].to_numpy()
    kind = a["kind"].to_numpy()
    c = f.iloc[company]
    is_dup = kind == KIND_DUPLICATE
    is_abs = kind == KIND_ABSORBED
    created = a["created_sec"].to_numpy()
    created_day = created // DAY

    names = _crm_names(companies, accounts, world, diff, rng)
    legal = np.where(is_abs, None, c["legal_name"].to_numpy())
    if is_abs.any():
        legal[is_abs] = companies.absorbed["legal_name"].to_numpy()[a["absorbed_row"].to_numpy()[
            is_abs]]

    web_u = rng.random(m)
    website = np.array([website_variant(d, int(k)) for d, k in zip(
        c["domain"], rng.integers(0, 4, m), strict=True)], dtype=object)
    website = np.where(web_u < np.where(is_dup, 0.5, diff.website_missing_rate), None, website)

    vat = c["vat"].to_numpy().copy()
    if is_abs.any():
        vat[is_abs] = companies.absorbed["vat"].to_numpy()[a["absorbed_row"].to_numpy()[is_abs]]
    vat_u = rng.random(m)
    cuts = np.cumsum([diff.crm_vat_missing_rate * 1.0, diff.crm_vat_spaced_rate,
                      diff.crm_vat_dashed_rate, diff.crm_vat_no_prefix_rate])
    vat_kind = np.searchsorted(cuts, vat_u, side="right")  # 0 missing, 1-3 variants, 4 as is
    vat_missing = (vat_kind == 0) | (is_dup & (rng.random(m) < 0.4))
    vat = np.array([None if miss else vat_variant(v, int(k) if k < 4 else 0)
                    for v, k, miss in zip(vat, vat_kind, vat_missing, strict=True)], dtype=object)

    street = np.where(rng.random(m) < diff.crm_street_missing_rate, None, c["street"].to_numpy())
    postal = np.where(rng.random(m) < diff.crm_postal_missing_rate, None,
                      c["postal_code"].to_numpy())
    exonym = c["city_exonym"].to_numpy()
    city = np.where((exonym != None) & (rng.random(m) < diff.city_exonym_rate), exonym,  # noqa: E711
                    c["city"].to_numpy())
    countries = vocab["countries"]
    iso = c["country"].to_numpy()
    legacy_country = (year_of(created_day) < diff.iso_country_since_year) & (
        rng.random(m) < diff.crm_country_name_rate)
    local_name = rng.random(m) < 0.5
    country = np.array([
        (countries[code]["local"] if loc else countries[code]["name"]) if leg else code
        for code, leg, loc in zip(iso, legacy_country, local_name, strict=True)], dtype=object)

    # Legacy labels of the era the account was created in, or last re-labelled in.
    relabel = rng.random(m) < diff.label_relabel_rate
    label_day = np.where(relabel, created_day + (rng.random(m) * np.maximum(
        timeline.extract_days[0] - created_day, 0)).astype(np.int64), created_day)
    label_kwargs = dict(sub_idx=c["sub_idx"].to_numpy(), size=c["size_tier"].to_numpy(),
                        role=c["role"].to_numpy(), year=year_of(label_day),
                        noise_rate=diff.legacy_label_noise_rate)
    industry = draw_legacy_labels(vocab["legacy_labels"]["crm_industry"], world, rng,
                                  missing_rate=diff.crm_industry_missing_rate, **label_kwargs)
    legacy_segment = draw_legacy_labels(vocab["legacy_labels"]["crm_legacy_segment"], world, rng,
                                        missing_rate=diff.crm_legacy_segment_missing_rate,
                                        **label_kwargs)

    role = c["role"].to_numpy()
    account_type = np.array([vocab["roles"][r]["account_type"] for r in role], dtype=object)
    account_type[(role == "prospect") & (rng.random(m) < 0.45)] = None
    account_type[(role == "distributor") & (rng.random(m) < 0.08)] = "Customer"
    flip = is_dup & np.isin(account_type, ["Customer", "End User"]) & (rng.random(m) < 0.3)
    account_type[flip] = np.where(account_type[flip] == "Customer", "End User", "Customer")
    account_type[is_abs] = "Customer"

    ids = a["account_id"].to_numpy()
    parent_company = c["parent"].to_numpy()
    served_by = c["served_by"].to_numpy()
    parent = np.full(m, None, dtype=object)
    has_parent = (parent_company >= 0) & (accounts.primary[np.maximum(parent_company, 0)] >= 0) & (
        rng.random(m) < 0.75)
    parent[has_parent] = ids[accounts.primary[parent_company[has_parent]]]
    via_channel = (parent_company < 0) & (served_by >= 0) & (accounts.primary[np.maximum(
        served_by, 0)] >= 0) & (rng.random(m) < 0.12)
    parent[via_channel] = ids[accounts.primary[served_by[via_channel]]]
    to_survivor = is_abs & (accounts.primary[company] >= 0) & (rng.random(m) < 0.4)
    parent[to_survivor] = ids[accounts.primary[company[to_survivor]]]

    ownership = np.where(rng.random(m) < 0.3, None, c["ownership"].to_numpy())
    employees = np.round(c["employees"].to_numpy() * rng.lognormal(0, 0.15, m),
                         -1).astype(float)
    employees[rng.random(m) < 0.2] = np.nan
    revenue = np.round(c["annual_revenue_eur"].to_numpy() * rng.lognormal(0, 0.2, m), -3)
    revenue[rng.random(m) < 0.35] = np.nan
    regions = np.array(vocab["regions"], dtype=object)
    region = np.where(rng.random(m) < 0.03, regions[rng.integers(0, len(regions), m)],
                      c["region"].to_numpy())

    link, link_fix = _erp_links(companies, accounts, erp, diff, rng)

    # Versions: a legacy edit before the full extract, updates in each incremental, deletions.
    secs = timeline.extract_seconds
    first = secs[0]
    edit = np.where(created <= first, created + (rng.beta(diff.last_modified_recency, 1, m) * (
        first - created)).astype(np.int64), NEVER)
    updates = [np.where(rng.random(m) < diff.incremental_update_rate,
                        rng.integers(secs[k - 1] + 1, secs[k] - 3600, m), NEVER)
               for k in range(1, len(secs))]
    deleted = a["deleted_sec"].to_numpy()
    rec, extract, last = version_rows(created, [edit, deleted, *updates], secs)
    bound = secs[extract]
    updated = np.zeros(len(rec), dtype=bool)
    for upd in updates:
        updated |= upd[rec] <= bound

    draws = PicklistDraws(streams.rng("crm.picklists"), m, world)
    cr = c.iloc[rec]
    migrated = cr["migrated_day"].to_numpy()
    before_move = (migrated >= 0) & (last // DAY < migrated)
    # Accounts last edited before a company's migration show its old business model.
    previous = cr["previous_profile_idx"].to_numpy()
    profile = np.where(before_move, previous, cr["profile_idx"].to_numpy())
    bm_of = np.array([world.business_models.index(b) for b in world.profile_business_model])
    env_of = np.array([world.environments.index(e) for e in world.profile_environment])
    picks = picklists(world, diff, timeline, draws, rec, edited_day=last // DAY,
                      sub_idx=cr["sub_idx"].to_numpy(), profile_idx=profile,
                      bm_idx=np.where(before_move, bm_of[previous], cr["business_model_idx"]),
                      env_idx=np.where(before_move, env_of[previous], cr["environment_idx"]),
                      usage=cr["product_usage"].to_numpy())

    fix_name = updated & (link_fix[rec, 0] < 0.2)
    row_name = np.where(fix_name, legal[rec], names[rec])
    add_link = updated & (link[rec] == None) & (link_fix[rec, 1] < 0.3)  # noqa: E711
    good_link = erp.numbers()[np.maximum(erp.primary[company[rec]], 0)]
    row_link = np.where(add_link & (erp.primary[company[rec]] >= 0), good_link, link[rec])

    tz = c["tz"].to_numpy()
    batches = []
    for k in range(len(secs)):
        sel = extract == k
        r = rec[sel]
        data = {
            "account_id": ids[r], "account_name": row_name[sel], "website": website[r],
            "vat_id": vat[r], "billing_street": street[r], "billing_postal_code": postal[r],
            "billing_city": city[r], "billing_country": country[r], "industry": industry[r],
            "legacy_segment": legacy_segment[r], "account_type": account_type[r],
            "parent_account_id": parent[r], "ownership": ownership[r],
            "employees": employees[r], "annual_revenue_eur": revenue[r],
            **{key: values[sel] for key, values in picks.items()},
            "erp_customer_number": row_link[sel], "owner_region": region[r],
            "created_at": created[r], "last_modified": last[sel],
            "is_deleted": deleted[r] <= bound[sel],
        }
        batches.append(Batch(k, data, tz[r]))
    return batches


def _erp_links(companies: Companies, accounts: Accounts, erp: CustomerRecords,
               diff: Difficulty, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The erp_customer_number each account carries: often empty, sometimes stale or mistyped."""
    a = accounts.frame
    m = len(a)
    company = a["company"].to_numpy()
    kind = a["kind"].to_numpy()
    numbers = erp.numbers()
    rec_kind = erp.frame["kind"].to_numpy()
    target = erp.primary[company].copy()
    # A predecessor's account points at the predecessor's ERP record.
    absorbed_rec = np.where((erp.alt[company] >= 0) & (kind == KIND_ABSORBED), erp.alt[company], -1)
    target = np.where(kind == KIND_ABSORBED, absorbed_rec, target)
    old = (erp.alt[company] >= 0) & (rec_kind[np.maximum(erp.alt[company], 0)] == KIND_RECREATED_OLD)
    u = rng.random((m, 5))
    target = np.where(old & (u[:, 0] < diff.erp_link_old_number_rate), erp.alt[company], target)
    fill = np.where(kind == KIND_DUPLICATE, 0.3, 1.0) * diff.erp_link_fill_rate
    filled = (target >= 0) & (u[:, 1] < fill)
    link = np.where(filled, numbers[np.maximum(target, 0)], None)
    wrong = filled & (u[:, 2] < diff.erp_link_stale_rate)
    link[wrong] = numbers[rng.integers(0, len(numbers), int(wrong.sum()))]
    mistyped = filled & ~wrong & (u[:, 3] < diff.erp_link_mistyped_rate)
    link = apply(link, mistyped & (u[:, 4] < 0.5), lambda s: s.lstrip("0"))
    link = apply(link, mistyped & (u[:, 4] >= 0.5), lambda s: s[:-3] + s[-2] + s[-3] + s[-1])
    return link, rng.random((m, 2))


def contact_versions(companies: Companies, accounts: Accounts, world: World, diff: Difficulty,
                     timeline: Timeline, streams: Streams) -> list[Batch]:
    """crm/contacts: people at each account (personal data)."""
    rng = streams.rng("crm.contacts")
    vocab = world.vocab
    translit = Transliterator(vocab["transliteration"])
    a = accounts.frame
    f = companies.frame
    company = a["company"].to_numpy()
    size_factor = np.array([vocab["size_factors"][s]["contacts"] for s in f["size_tier"]])[company]
    primary = (a["kind"] == KIND_PRIMARY).to_numpy()
    count = rng.poisson(np.where(primary, size_factor, 0.5)) + primary
    acc = np.repeat(np.arange(len(a)), count)
    n = len(acc)
    comp = company[acc]
    secs = timeline.extract_seconds
    acc_created = a["created_sec"].to_numpy()[acc]
    created = acc_created + (rng.random(n) * (secs[-1] - 3600 - acc_created) * rng.random(n)).astype(
        np.int64)
    order = np.lexsort((np.arange(n), created))
    counters = np.empty(n, dtype=np.int64)
    counters[order] = increasing_counters(rng, n, 90_000_000, 30)
    contact_id = salesforce_ids("003", counters)

    langs = f["lang"].to_numpy()[comp]
    first = np.empty(n, dtype=object)
    last = np.empty(n, dtype=object)
    u = rng.random((n, 2))
    for lang in sorted(set(langs.tolist())):
        sel = np.flatnonzero(langs == lang)
        spec = vocab["languages"][lang]
        first[sel] = np.array(spec["first_names"], dtype=object)[(u[sel, 0] * len(
            spec["first_names"])).astype(int)]
        last[sel] = np.array(spec["last_names"], dtype=object)[(u[sel, 1] * len(
            spec["last_names"])).astype(int)]
    domain = f["domain"].to_numpy()[comp]
    email = np.array([
        f"{_mailbox(fn, translit)}.{_mailbox(ln, translit)}@{d}"
        for fn, ln, d in zip(first, last, domain, strict=True)], dtype=object)
    email[rng.random(n) < 0.12] = None
    phone = fill_patterns(np.array([vocab["countries"][c]["phone"] for c in f["country"].to_numpy()[
        comp]], dtype=object), rng)
    phone[rng.random(n) < 0.3] = None
    titles = np.array(vocab["job_titles"], dtype=object)
    title = titles[rng.integers(0, len(titles), n)]
    title[rng.random(n) < 0.1] = None

    edit = np.where(created <= secs[0], created + (rng.beta(diff.last_modified_recency, 1, n) * (
        secs[0] - created)).astype(np.int64), NEVER)
    updates = [np.where(rng.random(n) < diff.incremental_update_rate,
                        rng.integers(secs[k - 1] + 1, secs[k] - 3600, n), NEVER)
               for k in range(1, len(secs))]
    rec, extract, modified = version_rows(created, [edit, *updates], secs)
    new_title = titles[rng.integers(0, len(titles), len(rec))]
    changed = np.zeros(len(rec), dtype=bool)
    for upd in updates:
        changed |= upd[rec] <= secs[extract]
    row_title = np.where(changed, new_title, title[rec])
    tz = f["tz"].to_numpy()[comp]
    account_id = a["account_id"].to_numpy()[acc]
    return [Batch(k, {
        "contact_id": contact_id[rec[extract == k]],
        "account_id": account_id[rec[extract == k]],
        "first_name": first[rec[extract == k]], "last_name": last[rec[extract == k]],
        "email": email[rec[extract == k]], "phone": phone[rec[extract == k]],
        "job_title": row_title[extract == k],
        "created_at": created[rec[extract == k]], "last_modified": modified[extract == k],
    }, tz[rec[extract == k]]) for k in range(len(secs))]


def _mailbox(name: str, translit: Transliterator) -> str:
    ascii_name = Transliterator.strip_accents(translit.mixed(name)).lower()
    return "".join(ch for ch in ascii_name if ch.isalnum())
