"""Industry segment and sub-segment per customer (DESIGN.md "Segments", 1).

Precedence: a steward override (seeds/segment_overrides.csv) > the new CRM picklist where it is
filled and consistent > the legacy labels through seeds/legacy_label_map.csv > inference from
what the customer buys (and what its names say) > Unassigned (a steward finding).

Every source adds evidence points (log-odds units, weights in config/segmentation.yml
`industry:`) to the sub-segments it names; a label that names only a segment adds points to
each sub-segment of that segment. The precedence then decides:
- a valid picklist (values of seeds/segment_taxonomy.csv, sub-segment under its segment) is
  "consistent" when no other sub-segment scores higher once all evidence is counted, i.e. the
  labels, purchases and names do not outweigh it; otherwise it is rejected (steward finding);
- legacy labels decide when they are present: among the sub-segments they support
  (`legacy_decides_among_its_candidates`), or, by default, unless inference clearly outweighs
  them (then inference decided and the reasons say the labels were outweighed); either way
  inference picks the sub-segment under a segment-only label;
- inference alone assigns only above a configured confidence.
Inference is learned per run from the customers the sources above decide clearly: their
product-line mix (Dirichlet-multinomial naive Bayes) and the words of their names (naive Bayes
over the words present, and their stems). Cross-fitted: a customer's own labels never train the
model that scores it. No product or word vocabulary lives here: it is all learned from the data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import gammaln, logsumexp

from dagster_project.segmentation.explain import (
    join_where,
    json_number,
    json_object_rows,
    json_text,
    stamp,
)
from dagster_project.segmentation.settings import IndustrySettings

OVERRIDE = "override"
CRM_PICKLIST = "crm_picklist"
LEGACY_MAPPING = "legacy_mapping"
PURCHASE_INFERENCE = "purchase_inference"
NAME_INFERENCE = "name_inference"
UNASSIGNED = "unassigned"
SOURCES = (OVERRIDE, CRM_PICKLIST, LEGACY_MAPPING, PURCHASE_INFERENCE, NAME_INFERENCE, UNASSIGNED)

TABLE_COLUMNS = [
    "customer_id",
    "segment",
    "sub_segment",
    "segment_source",
    "sub_segment_source",
    "segment_confidence",
    "sub_segment_confidence",
    "reason_codes",
    "inputs",
]


@dataclass(frozen=True)
class Taxonomy:
    """The segment taxonomy (seeds/segment_taxonomy.csv) as aligned arrays."""

    sub_segments: tuple[str, ...]
    segments: tuple[str, ...]  # the segment of each sub-segment
    added_in: tuple[str, ...]  # the taxonomy version that added each sub-segment

    @classmethod
    def from_seed(cls, frame: pd.DataFrame) -> Taxonomy:
        return cls(
            tuple(frame["sub_segment"]),
            tuple(frame["segment"]),
            tuple(str(v) for v in frame["added_in_scheme_version"]),
        )

    def added_after(
        self, sub_segment: str, when: pd.Timestamp, live_from: dict[str, dt.date]
    ) -> np.ndarray:
        """Sub-segments of the same segment that went live after `when`: a picklist set then
        could not name them, so its accounts of theirs were filed under an older sub-segment."""
        segment = self.segments[self.index(sub_segment)]
        if pd.isna(when):
            return np.zeros(len(self.sub_segments), dtype=bool)
        day = pd.Timestamp(when).date()
        return np.array(
            [
                seg == segment
                and sub != sub_segment
                and version in live_from
                and live_from[version] > day
                for sub, seg, version in zip(
                    self.sub_segments, self.segments, self.added_in, strict=True
                )
            ]
        )

    @property
    def unique_segments(self) -> list[str]:
        return list(dict.fromkeys(self.segments))

    def index(self, sub_segment: str) -> int:
        return self.sub_segments.index(sub_segment)

    def in_segment(self, segment: str) -> np.ndarray:
        return np.array([s == segment for s in self.segments])

    def check(self, segment: object, sub_segment: object) -> str:
        """valid | segment_only | empty | invalid_value | invalid_hierarchy."""
        seg = segment if isinstance(segment, str) else None
        sub = sub_segment if isinstance(sub_segment, str) else None
        if seg is None and sub is None:
            return "empty"
        if (seg is not None and seg not in self.segments) or (
            sub is not None and sub not in self.sub_segments
        ):
            return "invalid_value"
        if sub is None:
            return "segment_only"
        if seg is not None and self.segments[self.index(sub)] != seg:
            return "invalid_hierarchy"
        return "valid"


@dataclass(frozen=True)
class IndustryInputs:
    """What the assignment reads, one frame per source (assign.py reads them from the warehouse).

    customers: customer_id, order_count, revenue_eur and the dim_customer flags named in
        `inference.purchases.exclude_customers_flagged`.
    picklists: customer_id, account_id, segment, sub_segment, last_modified_at, is_deleted (CRM
        accounts with the new picklist fields).
    legacy_labels: int_customer_legacy_labels_mapped (customer_id, source_system, source_id,
        label_field, label, segment, sub_segment, mapping_status, is_deleted); only the rows
        with mapping_status "mapped" count (assign.py reads only those).
    purchases: customer_id, product_line, order_lines (non-credit order lines per product line).
    name_words: customer_id, word (name_words() of the customer's record names).
    overrides: seeds/segment_overrides.csv.
    """

    customers: pd.DataFrame
    picklists: pd.DataFrame
    legacy_labels: pd.DataFrame
    purchases: pd.DataFrame
    name_words: pd.DataFrame
    overrides: pd.DataFrame


@dataclass(frozen=True)
class IndustryAssignment:
    table: pd.DataFrame  # one row per customer (TABLE_COLUMNS + scheme_version, as_of)
    findings: pd.DataFrame  # steward findings (FINDING_COLUMNS of steward/queue.py)


def name_words(names: pd.DataFrame, min_length: int, stem_length: int) -> pd.DataFrame:
    """Distinct words per customer of its record names: upper case, accents dropped, split at
    anything but letters and digits; digits-only and short words left out. A longer word also
    counts by its first `stem_length` letters ("ENERG~"), so that spellings of one word across
    languages and systems (Energia, Energie, ENERGI) share evidence. Legal forms and places stay:
    they occur across sub-segments, so the learned model gives them no weight."""
    pairs = names[["customer_id", "record_name"]]
    pairs = pairs[
        pairs["customer_id"].notna() & pairs["record_name"].map(lambda v: isinstance(v, str))
    ]
    # each distinct name is split once, with pandas' string methods (100,000s of names)
    name_code, distinct = pd.factorize(pairs["record_name"])
    folded = pd.Series(distinct, dtype=object).str.upper()
    accented = ~folded.map(str.isascii).astype(bool)  # ASCII has no accents to drop
    folded[accented] = folded[accented].map(_drop_accents)
    found = folded.str.findall(f"[0-9A-Z]{{{max(min_length, 1)},}}").explode().dropna()
    found = found[~found.str.isdigit().astype(bool)]
    stems = found[found.str.len() > stem_length].str.slice(0, stem_length) + "~"
    words = pd.concat([found, stems] if stem_length else [found])
    words = pd.DataFrame({"name": words.index.to_numpy(), "word": words.to_numpy(dtype=object)})
    frame = pd.DataFrame(
        {"customer_id": pairs["customer_id"].to_numpy(dtype=object), "name": name_code}
    ).merge(words, on="name")
    # distinct (customer, word) pairs sorted as text, by their sorted integer codes
    customer_code, customer_ids = pd.factorize(frame["customer_id"], sort=True)
    word_code, vocabulary = pd.factorize(frame["word"], sort=True)
    pair = np.unique(customer_code.astype(np.int64) * max(len(vocabulary), 1) + word_code)
    return pd.DataFrame(
        {
            "customer_id": np.asarray(customer_ids, dtype=object)[pair // max(len(vocabulary), 1)],
            "word": np.asarray(vocabulary, dtype=object)[pair % max(len(vocabulary), 1)],
        }
    )


def _drop_accents(text: str) -> str:
    """NFKD, then every combining mark (the accents) deleted."""
    text = unicodedata.normalize("NFKD", text)
    return text.translate({ord(c): None for c in set(text) if unicodedata.combining(c)})


# --- evidence -------------------------------------------------------------------------------


def _row_index(frame: pd.DataFrame, customers: pd.Index) -> np.ndarray:
    return customers.get_indexer(frame["customer_id"])


def _record_factor(frame: pd.DataFrame, rules: IndustrySettings) -> np.ndarray:
    deleted = frame["is_deleted"].fillna(False).astype(bool).to_numpy()
    return np.where(deleted, rules.deleted_record_factor, 1.0)


def _add_in_row_order(points: np.ndarray, entries: list[tuple[np.ndarray, ...]]) -> None:
    """Add (record position, row, column, points) entries to `points` in record order, as a loop
    over the records would (the same additions per cell in the same order, so the same sums)."""
    position, rows, columns, values = (np.concatenate(part) for part in zip(*entries, strict=True))
    order = np.argsort(position, kind="stable")
    np.add.at(points, (rows[order], columns[order]), values[order])


def _segment_cells(segments: np.ndarray, tax: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """(record, column) of every sub-segment of each record's segment, record by record."""
    member = segments[:, None] == np.array(tax.segments, dtype=object)[None, :]
    return np.nonzero(member)


def _sub_segment_columns(values: pd.Series, tax: Taxonomy) -> np.ndarray:
    """The taxonomy column of each value; -1 where it is no sub-segment of the taxonomy."""
    column: dict[str, int] = {}
    for j, sub_segment in enumerate(tax.sub_segments):
        column.setdefault(sub_segment, j)
    return np.array(
        [column.get(v, -1) if isinstance(v, str) else -1 for v in values.tolist()], dtype=np.int64
    )


def _newer_sub_segments(
    sub_columns: np.ndarray, modified: pd.Series, tax: Taxonomy, live_from: dict[str, dt.date]
) -> np.ndarray:
    """(records, sub-segments): Taxonomy.added_after of each record's sub-segment and date."""
    segments = np.array(tax.segments, dtype=object)
    live = np.array(
        [
            np.datetime64(live_from[v]) if v in live_from else np.datetime64("NaT")
            for v in tax.added_in
        ],
        dtype="datetime64[D]",
    )
    day = np.array(
        [
            np.datetime64("NaT") if pd.isna(w) else np.datetime64(pd.Timestamp(w).date())
            for w in modified.tolist()
        ],
        dtype="datetime64[D]",
    )
    same_segment = segments[None, :] == segments[sub_columns][:, None]
    other = np.arange(len(segments))[None, :] != sub_columns[:, None]
    return same_segment & other & (live[None, :] > day[:, None])


def picklist_evidence(
    picklists: pd.DataFrame, customers: pd.Index, tax: Taxonomy, rules: IndustrySettings
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(points per customer x sub-segment from valid picklists, points of the picklists that name
    a sub-segment, each filled account's verdict)."""
    points = np.zeros((len(customers), len(tax.sub_segments)))
    sub_points = np.zeros_like(points)
    frame = picklists.copy()
    frame["row"] = _row_index(frame, customers)
    frame["verdict"] = [
        tax.check(a, b) for a, b in zip(frame["segment"], frame["sub_segment"], strict=True)
    ]
    frame = frame[(frame["row"] >= 0) & (frame["verdict"] != "empty")].reset_index(drop=True)
    factor = _record_factor(frame, rules)
    row = frame["row"].to_numpy(dtype=np.int64)
    # A valid picklist adds its points to its sub-segment and to the newer sub-segments of its
    # segment it could not name yet; a segment-only one to every sub-segment of its segment.
    valid = np.flatnonzero((frame["verdict"] == "valid").to_numpy())
    sub_column = _sub_segment_columns(frame["sub_segment"].iloc[valid], tax)
    added = rules.picklist.sub_segment_points * factor[valid]
    newer = np.zeros((len(frame), len(tax.sub_segments)), dtype=bool)
    newer[valid] = _newer_sub_segments(
        sub_column, frame["last_modified_at"].iloc[valid], tax, rules.taxonomy_versions_live_from
    )
    newer_record, newer_column = np.nonzero(newer)
    newer_added = np.zeros(len(frame))
    newer_added[valid] = added
    segment_only = np.flatnonzero((frame["verdict"] == "segment_only").to_numpy())
    member, member_column = _segment_cells(
        frame["segment"].to_numpy(dtype=object)[segment_only], tax
    )
    segment_record = segment_only[member]
    entries = [
        (valid, row[valid], sub_column, added),
        (newer_record, row[newer_record], newer_column, newer_added[newer_record]),
        (
            segment_record,
            row[segment_record],
            member_column,
            rules.picklist.segment_only_points * factor[segment_record],
        ),
    ]
    _add_in_row_order(points, entries)
    _add_in_row_order(sub_points, entries[:1])
    sub_names = np.array(tax.sub_segments, dtype=object)
    frame["predates"] = join_where(
        [(newer[:, j], sub_names[j]) for j in range(len(sub_names))], len(frame), "|"
    )
    return points, sub_points, frame


def legacy_evidence(
    labels: pd.DataFrame, customers: pd.Index, tax: Taxonomy, rules: IndustrySettings
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(all points, points of sub-segment-level labels only, the mapped labels used)."""
    points = np.zeros((len(customers), len(tax.sub_segments)))
    sub_points = np.zeros_like(points)
    frame = labels[labels["mapping_status"] == "mapped"].copy()
    frame["field"] = frame["source_system"] + "." + frame["label_field"]
    frame["row"] = _row_index(frame, customers)
    frame = frame[(frame["row"] >= 0) & frame["field"].isin(list(rules.legacy_labels))]
    frame = frame[frame["segment"].isin(tax.segments)].reset_index(drop=True)
    factor = _record_factor(frame, rules)
    row = frame["row"].to_numpy(dtype=np.int64)
    fields = frame["field"].tolist()
    # A label naming a sub-segment adds to it; a segment-level one to each of its segment's.
    sub_column = _sub_segment_columns(frame["sub_segment"], tax)
    named = np.flatnonzero(sub_column >= 0)
    named_points = (
        np.array([rules.legacy_labels[fields[i]].sub_segment for i in named], dtype=float)
        * factor[named]
    )
    segment_only = np.flatnonzero(sub_column < 0)
    member, member_column = _segment_cells(
        frame["segment"].to_numpy(dtype=object)[segment_only], tax
    )
    segment_record = segment_only[member]
    segment_points = (
        np.array([rules.legacy_labels[fields[i]].segment for i in segment_record], dtype=float)
        * factor[segment_record]
    )
    entries = [
        (named, row[named], sub_column[named], named_points),
        (segment_record, row[segment_record], member_column, segment_points),
    ]
    _add_in_row_order(points, entries)
    _add_in_row_order(sub_points, entries[:1])
    return points, sub_points, frame


def override_table(
    overrides: pd.DataFrame, customers: pd.Index, tax: Taxonomy
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid industry overrides per customer: the last row of a customer wins, rejected rows)."""
    frame = overrides.copy()
    if frame.empty:
        empty = pd.DataFrame(columns=[*overrides.columns, "verdict"])
        return empty, empty
    frame["verdict"] = [
        tax.check(a, b) for a, b in zip(frame["segment"], frame["sub_segment"], strict=True)
    ]
    frame.loc[~frame["customer_id"].isin(customers), "verdict"] = "unknown_customer"
    industry = frame[frame["verdict"] != "empty"]
    valid = industry[industry["verdict"].isin(["valid", "segment_only"])]
    valid = valid.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    rejected = industry[~industry["verdict"].isin(["valid", "segment_only"])]
    return valid, rejected


def _fold_of(customer_ids: Iterable[str], folds: int) -> np.ndarray:
    """A stable fold per customer (the same customer lands in the same fold on every run)."""
    return np.array(
        [int(hashlib.md5(str(c).encode()).hexdigest()[:8], 16) % folds for c in customer_ids]
    )


def _purchase_matrix(purchases: pd.DataFrame, customers: pd.Index) -> tuple[np.ndarray, list[str]]:
    lines = sorted(purchases["product_line"].dropna().unique())
    counts = np.zeros((len(customers), len(lines)))
    frame = purchases.dropna(subset=["product_line"])
    rows = _row_index(frame, customers)
    keep = rows >= 0
    np.add.at(
        counts,
        (rows[keep], frame["product_line"].map(lines.index).to_numpy()[keep]),
        frame["order_lines"].to_numpy(dtype=float)[keep],
    )
    return counts, lines


def _dirichlet_multinomial(
    counts: np.ndarray, means: np.ndarray, concentration: float
) -> np.ndarray:
    """log P(counts | sub-segment) up to a per-customer constant, customers x sub-segments."""
    alpha = means * concentration
    total = counts.sum(axis=1)
    return (
        gammaln(concentration)
        - gammaln(total[:, None] + concentration)
        + (gammaln(counts[:, None, :] + alpha[None]) - gammaln(alpha[None])).sum(axis=2)
    )


def _fit_mix(
    counts: np.ndarray, labels: np.ndarray, n_classes: int, grid: list[float]
) -> tuple[np.ndarray, float] | None:
    """Per-sub-segment mean product mix (smoothed) and the best concentration of the grid."""
    if len(labels) == 0:
        return None
    shares = counts / counts.sum(axis=1, keepdims=True)
    overall = shares.mean(axis=0)
    means = np.empty((n_classes, counts.shape[1]))
    for k in range(n_classes):
        mine = shares[labels == k]
        # a sub-segment with few training customers leans on the overall mix
        means[k] = (mine.sum(axis=0) + overall) / (len(mine) + 1)
    means = np.maximum(means, 1e-4)
    means /= means.sum(axis=1, keepdims=True)
    fit = [(_label_log_likelihood(counts, means, labels, c).sum(), c) for c in grid]
    return means, max(fit)[1]


def _label_log_likelihood(
    counts: np.ndarray, means: np.ndarray, labels: np.ndarray, concentration: float
) -> np.ndarray:
    """_dirichlet_multinomial's column of each customer's own label only (the fit needs no
    other): the same terms summed in the same order, so the same numbers."""
    alpha = (means * concentration)[labels]
    total = counts.sum(axis=1)
    return (
        gammaln(concentration)
        - gammaln(total + concentration)
        + (gammaln(counts + alpha) - gammaln(alpha)).sum(axis=1)
    )


def _centre_and_cap(log_lik: np.ndarray, cap: float) -> np.ndarray:
    """Evidence points relative to the best sub-segment, no sub-segment more than `cap` below."""
    return np.maximum(log_lik - log_lik.max(axis=1, keepdims=True), -cap)


def purchase_evidence(
    counts: np.ndarray,
    usable: np.ndarray,
    train_labels: np.ndarray,
    folds: np.ndarray,
    n_classes: int,
    rules: IndustrySettings,
) -> np.ndarray:
    """Cross-fitted purchase points (customers x sub-segments; 0 where not `usable`)."""
    cfg = rules.inference.purchases
    points = np.zeros((len(counts), n_classes))
    for fold in range(rules.inference.folds):
        train = usable & (train_labels >= 0) & (folds != fold)
        fitted = _fit_mix(counts[train], train_labels[train], n_classes, cfg.concentration_grid)
        score = usable & (folds == fold)
        if fitted is None or not score.any():
            continue
        means, concentration = fitted
        log_lik = _dirichlet_multinomial(counts[score], means, concentration)
        points[score] = _centre_and_cap(log_lik * cfg.points_per_nat, cfg.max_points)
    return points


def _word_matrix(words: pd.DataFrame, customers: pd.Index) -> tuple[sparse.csr_matrix, np.ndarray]:
    # sorted vocabulary (code point order, as np.unique sorts) without sorting every row
    codes, vocabulary = pd.factorize(words["word"].astype(str).to_numpy(dtype=object), sort=True)
    rows = _row_index(words, customers)
    keep = rows >= 0
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum())), (rows[keep], codes[keep])),
        shape=(len(customers), len(vocabulary)),
    )
    matrix.data[:] = 1.0  # presence, not counts
    return matrix, vocabulary


def name_evidence(
    words: sparse.csr_matrix,
    train_labels: np.ndarray,
    folds: np.ndarray,
    n_classes: int,
    rules: IndustrySettings,
) -> np.ndarray:
    """Cross-fitted name-word points (customers x sub-segments): for every word present, the log
    ratio of its frequency among a sub-segment's training customers to its overall frequency."""
    cfg = rules.inference.names
    points = np.zeros((words.shape[0], n_classes))
    for fold in range(rules.inference.folds):
        train = (train_labels >= 0) & (folds != fold)
        if not train.any():
            continue
        onehot = sparse.csr_matrix(
            (np.ones(int(train.sum())), (train_labels[train], np.arange(int(train.sum())))),
            shape=(n_classes, int(train.sum())),
        )
        per_class = np.asarray((onehot @ words[train]).todense())  # classes x words
        seen = per_class.sum(axis=0)
        class_sizes = np.bincount(train_labels[train], minlength=n_classes)[:, None]
        smoothing = cfg.smoothing
        log_ratio = (
            np.log((per_class + smoothing) / (class_sizes + 2 * smoothing))
            - np.log((seen + smoothing) / (train.sum() + 2 * smoothing))[None]
        )
        log_ratio[:, seen < cfg.min_customers_per_word] = 0.0
        score = folds == fold
        log_lik = np.asarray(words[score] @ log_ratio.T)
        points[score] = _centre_and_cap(log_lik * cfg.points_per_nat, cfg.max_points)
    return points


def _prior(
    train_labels: np.ndarray, n_classes: int, weight: float, pseudo_customers: float
) -> np.ndarray:
    """Log base rates of the sub-segments among the training customers, relative to the most
    common one; `pseudo_customers` per sub-segment keep a rare one from being ruled out."""
    counts = np.bincount(train_labels[train_labels >= 0], minlength=n_classes) + pseudo_customers
    log_prior = np.log(counts / counts.sum())
    return weight * (log_prior - log_prior.max())


def _softmax(points: np.ndarray) -> np.ndarray:
    return np.exp(points - logsumexp(points, axis=1, keepdims=True))


# --- decision -------------------------------------------------------------------------------


def _margin(points: np.ndarray) -> np.ndarray:
    top2 = -np.sort(-points, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def _best_among(points: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Argmax per row over the allowed columns (ties: the first in taxonomy order)."""
    return np.where(allowed, points, -np.inf).argmax(axis=1)


def assign_industry_segments(
    inputs: IndustryInputs,
    taxonomy: pd.DataFrame,
    rules: IndustrySettings,
    scheme_version: str,
    as_of: dt.date | None,
) -> IndustryAssignment:
    """One row per customer of `inputs.customers` with segment, sub-segment, source, confidence
    and reasons, plus the steward findings (Unassigned customers, rejected picklists, invalid
    overrides)."""
    tax = Taxonomy.from_seed(taxonomy)
    customers_frame = inputs.customers.sort_values("customer_id").reset_index(drop=True)
    customers = pd.Index(customers_frame["customer_id"])
    n, k = len(customers), len(tax.sub_segments)
    seg_names = np.array(tax.segments, dtype=object)
    sub_names = np.array(tax.sub_segments, dtype=object)

    overrides, rejected_overrides = override_table(inputs.overrides, customers, tax)
    pick_points, pick_sub_points, pick_accounts = picklist_evidence(
        inputs.picklists, customers, tax, rules
    )
    legacy_points, legacy_sub_points, labels_used = legacy_evidence(
        inputs.legacy_labels, customers, tax, rules
    )

    # Who trains the inference: customers the sources above decide clearly.
    sourced = pick_points + legacy_points
    train_labels = np.where(
        (_margin(sourced) >= rules.inference.training_min_margin) & (sourced.max(axis=1) > 0),
        sourced.argmax(axis=1),
        -1,
    )
    for customer_id, row in overrides.iterrows():
        if isinstance(row["sub_segment"], str):
            train_labels[customers.get_loc(customer_id)] = tax.index(row["sub_segment"])

    folds = _fold_of(customers, rules.inference.folds)
    counts, product_lines = _purchase_matrix(inputs.purchases, customers)
    cfg = rules.inference.purchases
    excluded = np.zeros(n, dtype=bool)
    for flag in cfg.exclude_customers_flagged:
        excluded |= customers_frame[flag].fillna(False).astype(bool).to_numpy()
    usable = (counts.sum(axis=1) >= cfg.min_order_lines) & ~excluded
    purchase_points = purchase_evidence(counts, usable, train_labels, folds, k, rules)
    words, vocabulary = _word_matrix(inputs.name_words, customers)
    name_points = name_evidence(words, train_labels, folds, k, rules)
    inferred = (
        purchase_points
        + name_points
        + _prior(
            train_labels, k, rules.inference.prior_weight, rules.inference.prior_pseudo_customers
        )
    )
    total = sourced + inferred
    probability = _softmax(total)

    has_picklist = pick_points.max(axis=1) > 0
    has_legacy = legacy_points.max(axis=1) > 0
    has_inference = usable | (np.asarray(words.sum(axis=1)).ravel() > 0)
    overall_best = total.argmax(axis=1)
    picklist_best = _best_among(total, pick_points >= pick_points.max(axis=1, keepdims=True))
    picklist_kept = has_picklist & (picklist_best == overall_best)
    legacy_best = _best_among(total, legacy_points > 0)
    segment_of = np.array([[seg == other for other in tax.segments] for seg in tax.segments])
    segment_probability = probability @ segment_of.T  # P(the segment of each sub-segment)
    inference_confident = (
        segment_probability[np.arange(n), overall_best] >= rules.min_inference_confidence
    )

    evidence = _Evidence(
        total=total,
        probability=probability,
        pick_points=pick_points,
        pick_sub_points=pick_sub_points,
        legacy_points=legacy_points,
        legacy_sub_points=legacy_sub_points,
        purchase_points=purchase_points,
        name_points=name_points,
        has_picklist=has_picklist,
        has_legacy=has_legacy,
        has_inference=has_inference,
        usable=usable,
    )
    best, source, sub_by_override = _precedence(
        evidence,
        picklist_kept,
        picklist_best,
        legacy_best,
        overall_best,
        inference_confident,
        overrides,
        customers,
        tax,
        rules,
    )
    assigned = best >= 0
    at_best = np.maximum(best, 0)  # a valid column for every row; unassigned rows are masked
    segment = np.where(assigned, seg_names[at_best], rules.unassigned).astype(object)
    sub_segment = np.where(assigned, sub_names[at_best], rules.unassigned).astype(object)
    sub_source = np.where(
        sub_by_override, OVERRIDE, _sub_segment_sources(evidence, source, at_best)
    ).astype(object)
    sub_source[~assigned] = UNASSIGNED
    segment_confidence, sub_confidence = _confidences(
        probability, best, source, sub_by_override, tax
    )
    table = pd.DataFrame(
        {
            "customer_id": customers.to_numpy(dtype=object),
            "segment": segment,
            "sub_segment": sub_segment,
            "segment_source": source,
            "sub_segment_source": sub_source,
            "segment_confidence": [round(c, 4) for c in segment_confidence.tolist()],
            "sub_segment_confidence": [round(c, 4) for c in sub_confidence.tolist()],
            "reason_codes": _reason_codes(evidence, best, source, picklist_best, pick_accounts),
            "inputs": json_object_rows(
                {
                    "override": _override_texts(overrides, customers),
                    "picklists": _per_customer(_picklist_texts(pick_accounts), customers),
                    "legacy_labels": _per_customer(_label_texts(labels_used), customers),
                    "order_lines_by_product_line": _order_line_texts(counts, product_lines),
                    "name_words": _word_texts(words, vocabulary),
                    "top_sub_segments": _top_texts(total, sub_names),
                }
            ),
        },
        columns=TABLE_COLUMNS,
    )
    table = stamp(table, scheme_version, as_of)
    findings = _findings(table, customers_frame, pick_accounts, rejected_overrides, rules)
    return IndustryAssignment(table=table, findings=findings)


# --- decision per customer (array by array: 100,000s of customers) ---------------------------


@dataclass(frozen=True)
class _Evidence:
    """Points per customer x sub-segment of every source, and which sources a customer has."""

    total: np.ndarray
    probability: np.ndarray
    pick_points: np.ndarray
    pick_sub_points: np.ndarray
    legacy_points: np.ndarray
    legacy_sub_points: np.ndarray
    purchase_points: np.ndarray
    name_points: np.ndarray
    has_picklist: np.ndarray
    has_legacy: np.ndarray
    has_inference: np.ndarray
    usable: np.ndarray


def _at(points: np.ndarray, column: np.ndarray) -> np.ndarray:
    """points[i, column[i]] per row."""
    return points[np.arange(len(points)), column]


def _precedence(
    evidence: _Evidence,
    picklist_kept: np.ndarray,
    picklist_best: np.ndarray,
    legacy_best: np.ndarray,
    overall_best: np.ndarray,
    inference_confident: np.ndarray,
    overrides: pd.DataFrame,
    customers: pd.Index,
    tax: Taxonomy,
    rules: IndustrySettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best sub-segment or -1, the source that decided, the override names the sub-segment).

    Precedence: override > consistent picklist > legacy labels (unless outweighed) > inference
    (confident enough, or outweighing the labels) > unassigned; written lowest first, so each
    higher source overwrites the rows it decides."""
    n = len(customers)
    has_legacy = evidence.has_legacy
    legacy_decides = has_legacy & (
        bool(rules.legacy_decides_among_its_candidates)
        | (_at(evidence.legacy_points, overall_best) > 0)
    )
    inferred = has_legacy | (evidence.has_inference & inference_confident)
    best = np.full(n, -1, dtype=np.int64)
    source = np.full(n, UNASSIGNED, dtype=object)
    best[inferred] = overall_best[inferred]
    source[inferred] = _inference_sources(evidence, overall_best)[inferred]
    best[legacy_decides] = legacy_best[legacy_decides]
    source[legacy_decides] = LEGACY_MAPPING
    best[picklist_kept] = picklist_best[picklist_kept]
    source[picklist_kept] = CRM_PICKLIST
    sub_by_override = np.zeros(n, dtype=bool)
    for customer_id, override in overrides.iterrows():  # a steward's few rows
        i = customers.get_loc(customer_id)
        if isinstance(override["sub_segment"], str):
            best[i] = tax.index(override["sub_segment"])
            sub_by_override[i] = True
        else:
            segment = override["segment"]
            best[i] = _best_among(evidence.total[i : i + 1], tax.in_segment(segment)[None])[0]
        source[i] = OVERRIDE
    return best, source, sub_by_override


def _inference_sources(evidence: _Evidence, best: np.ndarray) -> np.ndarray:
    """The inference evidence that favours `best` more (over its strongest rival), per row."""

    def lead(points: np.ndarray) -> np.ndarray:
        rivals = points.copy()
        rivals[np.arange(len(points)), best] = -np.inf
        return _at(points, best) - rivals.max(axis=1)

    purchase_leads = lead(evidence.purchase_points) >= lead(evidence.name_points)
    return np.where(purchase_leads, PURCHASE_INFERENCE, NAME_INFERENCE).astype(object)


def _sub_segment_sources(evidence: _Evidence, source: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Which source named the sub-segment itself (a segment-only value leaves it to the next)."""
    out = _inference_sources(evidence, best)
    labelled = (source == OVERRIDE) | (source == CRM_PICKLIST) | (source == LEGACY_MAPPING)
    out[labelled & (_at(evidence.legacy_sub_points, best) > 0)] = LEGACY_MAPPING
    out[(source == CRM_PICKLIST) & (_at(evidence.pick_sub_points, best) > 0)] = CRM_PICKLIST
    return out


def _confidences(
    probability: np.ndarray,
    best: np.ndarray,
    source: np.ndarray,
    sub_by_override: np.ndarray,
    tax: Taxonomy,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(segment), P(sub-segment)); an override is certain of what it names, and of a segment-
    only override's sub-segment as likely as it is within that segment; 0 when unassigned."""
    at_best = np.maximum(best, 0)
    segment_of_best = np.array(tax.segments, dtype=object)[at_best]
    in_segment = np.zeros(len(best))
    for segment in tax.unique_segments:
        mine = segment_of_best == segment
        # the same sum as the segment's columns of one row (same order, same rounding)
        in_segment[mine] = probability[np.ix_(mine, np.flatnonzero(tax.in_segment(segment)))].sum(
            axis=1
        )
    segment_confidence = in_segment
    sub_confidence = _at(probability, at_best)
    override = source == OVERRIDE
    segment_confidence = np.where(override, 1.0, segment_confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        within_segment = sub_confidence / in_segment
    sub_confidence = np.where(
        override, np.where(sub_by_override, 1.0, within_segment), sub_confidence
    )
    unassigned = best < 0
    return (
        np.where(unassigned, 0.0, segment_confidence),
        np.where(unassigned, 0.0, sub_confidence),
    )


def _reason_codes(
    evidence: _Evidence,
    best: np.ndarray,
    source: np.ndarray,
    picklist_best: np.ndarray,
    pick_accounts: pd.DataFrame,
) -> np.ndarray:
    """';'-joined reason codes per customer, in the order the rules list them."""
    n = len(best)
    assigned = best >= 0
    at_best = np.maximum(best, 0)
    override = source == OVERRIDE
    invalid = _any_per_row(
        pick_accounts["row"],
        pick_accounts["verdict"].isin(["invalid_value", "invalid_hierarchy"]),
        n,
    )
    predates = _any_per_row(pick_accounts["row"], pick_accounts["predates"].astype(bool), n)
    not_kept = evidence.has_picklist & (picklist_best != best)
    legacy = assigned & evidence.has_legacy
    legacy_subs = (evidence.legacy_sub_points > 0).sum(axis=1)
    mix = assigned & evidence.usable
    mix_agrees = evidence.purchase_points.argmax(axis=1) == best
    named = assigned & (evidence.name_points != 0).any(axis=1)
    names_agree = evidence.name_points.argmax(axis=1) == best
    return join_where(
        [
            (override, "IND.STEWARD_OVERRIDE"),
            (source == CRM_PICKLIST, "IND.PICKLIST_CONSISTENT"),
            (invalid, "IND.PICKLIST_INVALID"),
            (predates, "IND.PICKLIST_PREDATES_SUB_SEGMENT"),
            (not_kept & override, "IND.PICKLIST_DIFFERS_FROM_OVERRIDE"),
            (not_kept & ~override, "IND.PICKLIST_OUTWEIGHED"),
            (~assigned & ~evidence.has_inference, "IND.NO_EVIDENCE"),
            (~assigned & evidence.has_inference, "IND.INFERENCE_TOO_WEAK"),
            (legacy & (legacy_subs == 0), "IND.LEGACY_SEGMENT_ONLY"),
            (legacy & (legacy_subs == 1), "IND.LEGACY_LABELS_AGREE"),
            (legacy & (legacy_subs > 1), "IND.LEGACY_LABELS_DISAGREE"),
            (legacy & ~(_at(evidence.legacy_points, at_best) > 0), "IND.LEGACY_LABELS_OUTWEIGHED"),
            (mix & mix_agrees, "IND.PURCHASE_MIX_AGREES"),
            (mix & ~mix_agrees, "IND.PURCHASE_MIX_DIFFERS"),
            (named & names_agree, "IND.NAME_WORDS_AGREE"),
            (named & ~names_agree, "IND.NAME_WORDS_DIFFER"),
        ],
        n,
    )


def _any_per_row(rows: pd.Series, flags: pd.Series, n: int) -> np.ndarray:
    """True for each row index (0..n-1) with at least one flagged entry."""
    return np.bincount(rows.to_numpy()[flags.to_numpy(dtype=bool)], minlength=n) > 0


# --- inputs per customer (JSON texts as inputs_json writes them) ------------------------------


def _json_value(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _per_customer(texts: dict[str, str], customers: pd.Index) -> list[str]:
    return [texts.get(customer_id, "null") for customer_id in customers]


def _override_texts(overrides: pd.DataFrame, customers: pd.Index) -> list[str]:
    texts = {
        customer_id: _json_value(
            {
                key: (None if pd.isna(row.get(key)) else str(row.get(key)))
                for key in ("segment", "sub_segment", "reason", "steward", "decided_on")
            }
        )
        for customer_id, row in overrides.iterrows()
    }
    return _per_customer(texts, customers)


def _picklist_texts(accounts: pd.DataFrame) -> dict[str, str]:
    """Per customer: its filled picklists as the inputs show them (a JSON list of objects)."""
    lists: dict[str, list[str]] = {}
    ordered = accounts.sort_values(["customer_id", "account_id"])
    for a in ordered[
        ["customer_id", "account_id", "segment", "sub_segment", "verdict", "predates"]
    ].itertuples(index=False):
        lists.setdefault(a.customer_id, []).append(
            f'{{"account_id": {_json_scalar(a.account_id)}, '
            f'"segment": {_json_scalar(a.segment)}, '
            f'"set_before": {_json_scalar(a.predates or None)}, '
            f'"sub_segment": {_json_scalar(a.sub_segment)}, '
            f'"verdict": {_json_scalar(a.verdict)}}}'
        )
    return {customer_id: "[" + ", ".join(items) + "]" for customer_id, items in lists.items()}


def _json_scalar(value: object) -> str:
    """One value as json.dumps writes it."""
    if isinstance(value, str):
        return json_text(value)
    if value is None:
        return "null"
    if type(value) is float:
        return json_number(value)
    return _json_value(value)


def _text_order(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The row order of frame.sort_values(columns) (text order, missing last), sorted on integer
    codes: comparing text keys row by row is what makes a multi-column sort slow."""
    keys = []
    for column in reversed(columns):  # np.lexsort: the last key is the primary one
        code, distinct = pd.factorize(frame[column], sort=True)
        keys.append(np.where(code < 0, len(distinct), code))
    return np.lexsort(keys) if keys else np.arange(len(frame))


def _label_texts(labels: pd.DataFrame) -> dict[str, str]:
    """Per customer: its mapped legacy labels as 'system.field=label -> mapped to'."""
    ordered = labels.iloc[_text_order(labels, ["customer_id", "field", "source_id", "label"])]
    target = ordered["sub_segment"].where(
        ordered["sub_segment"].map(lambda v: isinstance(v, str)), ordered["segment"]
    )
    texts = (
        ordered["field"].astype(str)
        + "="
        + ordered["label"].astype(str)
        + " -> "
        + target.astype(str)
    )
    codes, distinct = pd.factorize(texts)  # few distinct labels: each encoded once
    texts = pd.Series(
        np.array([json_text(t) for t in distinct], dtype=object)[codes] if len(codes) else [],
        dtype=object,
    )
    lists: dict[str, list[str]] = {}
    for customer_id, text in zip(ordered["customer_id"].tolist(), texts.tolist(), strict=True):
        lists.setdefault(customer_id, []).append(text)
    return {customer_id: "[" + ", ".join(items) + "]" for customer_id, items in lists.items()}


def _order_line_texts(counts: np.ndarray, product_lines: list[str]) -> np.ndarray:
    """{product line: order lines} of the lines bought (sorted by name), null for none."""
    pieces = [
        (
            counts[:, j] != 0,
            json_text(line) + ": " + counts[:, j].astype(np.int64).astype(str).astype(object),
        )
        for j, line in sorted(enumerate(product_lines), key=lambda jl: jl[1])
    ]
    text = join_where(pieces, len(counts), ", ")
    return np.where(text == "", "null", "{" + text + "}").astype(object)


def _word_texts(words: sparse.csr_matrix, vocabulary: np.ndarray) -> list[str]:
    """The customer's name words, sorted, as a JSON list (null for none)."""
    encoded = np.array([json_text(str(word)) for word in vocabulary], dtype=object)
    texts = []
    for i in range(words.shape[0]):
        mine = words.indices[words.indptr[i] : words.indptr[i + 1]]
        texts.append("[" + ", ".join(sorted(encoded[mine].tolist())) + "]" if len(mine) else "null")
    return texts


def _top_texts(points: np.ndarray, names: np.ndarray, n: int = 3) -> np.ndarray:
    """The n sub-segments with the most points (ties: taxonomy order) as {name: points}, the
    keys sorted by name as json.dumps(sort_keys=True) writes them."""
    top = np.argsort(-points, axis=1, kind="stable")[:, :n]
    name_rank = np.argsort(
        np.argsort(np.array([str(v) for v in names], dtype=object), kind="stable"), kind="stable"
    )
    top = np.take_along_axis(top, np.argsort(name_rank[top], axis=1, kind="stable"), axis=1)
    values = np.take_along_axis(points, top, axis=1)
    encoded = np.array([json_text(str(v)) for v in names], dtype=object)
    # each distinct value (told apart by its bits) rounded and written once
    codes, distinct = pd.factorize(values.reshape(-1).view(np.int64))
    numbers = np.array(
        [json_number(round(v, 3)) for v in distinct.view(np.float64).tolist()], dtype=object
    )[codes].reshape(values.shape)
    text = np.full(len(points), "{", dtype=object)
    for j in range(top.shape[1]):
        text = text + ("" if j == 0 else ", ") + encoded[top[:, j]] + ": " + numbers[:, j]
    return text + "}"


# --- steward findings ----------------------------------------------------------------------


# The fields the industry findings are built with (customer_id is dropped once it has served
# to look up the revenue affected).
_FINDING_FIELDS = [
    "kind",
    "source_system",
    "entity",
    "record_key",
    "column_name",
    "rule",
    "observed_value",
    "customer_id",
    "message",
]


def _picklist_findings(pick_accounts: pd.DataFrame, assigned: pd.DataFrame) -> pd.DataFrame:
    """CRM picklists the assignment did not keep, in pick_accounts order (set-based: there are
    tens of thousands of filled picklists at 100,000 customers)."""
    checked = pick_accounts["verdict"].isin(
        ["valid", "segment_only", "invalid_value", "invalid_hierarchy"]
    )
    accounts = pick_accounts.loc[
        checked, ["customer_id", "account_id", "segment", "sub_segment", "verdict"]
    ].reset_index(drop=True)
    decided = assigned[["segment", "sub_segment", "segment_source"]].add_prefix("decided_")
    accounts = accounts.join(decided, on="customer_id")
    rule = accounts["verdict"].map(
        {"invalid_value": "segment_taxonomy", "invalid_hierarchy": "segment_hierarchy"}
    )
    agrees = (accounts["decided_segment"] == accounts["segment"]) & (
        (accounts["verdict"] == "segment_only")
        | (accounts["decided_sub_segment"] == accounts["sub_segment"])
    )
    not_kept = np.where(
        accounts["decided_segment_source"] == OVERRIDE,
        "differs_from_override",
        "outweighed_by_other_evidence",
    )
    rule = rule.fillna(pd.Series(np.where(agrees, None, not_kept), index=accounts.index))
    accounts = accounts.assign(rule=rule)[rule.notna()]
    picklist = accounts["segment"].astype(str) + " / " + accounts["sub_segment"].astype(str)
    return pd.DataFrame(
        {
            "kind": "inconsistent_picklist",
            "source_system": "crm",
            "entity": "accounts",
            "record_key": accounts["account_id"],
            "column_name": "sub_segment",
            "rule": accounts["rule"],
            "observed_value": picklist,
            "customer_id": accounts["customer_id"],
            "message": "CRM account "
            + accounts["account_id"].astype(str)
            + ": picklist "
            + picklist
            + " ("
            + accounts["rule"].str.replace("_", " ")
            + "); assigned "
            + accounts["decided_segment"].astype(str)
            + " / "
            + accounts["decided_sub_segment"].astype(str)
            + " from "
            + accounts["decided_segment_source"].astype(str),
        },
        columns=_FINDING_FIELDS,
    )


def _findings(
    table: pd.DataFrame,
    customers: pd.DataFrame,
    pick_accounts: pd.DataFrame,
    rejected_overrides: pd.DataFrame,
    rules: IndustrySettings,
) -> pd.DataFrame:
    """Unassigned customers, picklists the assignment did not keep, overrides it could not use
    (FINDING_COLUMNS of steward/queue.py; severity from config/pipeline.yml `severity:`)."""
    revenue = customers.set_index("customer_id")["revenue_eur"].astype(float)
    assigned = table.set_index("customer_id")
    rows = []
    for customer_id in assigned.index[assigned["segment_source"] == UNASSIGNED]:
        rows.append(
            {
                "kind": "unassigned_segment",
                "source_system": None,
                "entity": "customer_segments",
                "record_key": customer_id,
                "column_name": "segment",
                "rule": "industry_precedence",
                "observed_value": None,
                "customer_id": customer_id,
                "message": f"Customer {customer_id}: no override, picklist, mapped legacy label or "
                "strong enough purchase evidence: add a segment override or a label mapping",
            }
        )
    n_unassigned = len(rows)
    picklist_rows = _picklist_findings(pick_accounts, assigned)
    for row in rejected_overrides.itertuples():
        rows.append(
            {
                "kind": "invalid_override",
                "source_system": "seeds",
                "entity": "segment_overrides",
                "record_key": str(row.customer_id),
                "column_name": "sub_segment",
                "rule": row.verdict,
                "observed_value": f"{row.segment} / {row.sub_segment}",
                "customer_id": row.customer_id,
                "message": f"Override of {row.customer_id} not applied "
                f"({row.verdict.replace('_', ' ')})",
            }
        )
    columns = _FINDING_FIELDS
    unassigned, overrides = rows[:n_unassigned], rows[n_unassigned:]
    frame = pd.concat(
        [
            pd.DataFrame(unassigned, columns=columns),
            picklist_rows[columns],
            pd.DataFrame(overrides, columns=columns),
        ],
        ignore_index=True,
    )
    frame["customers_affected"] = 1
    frame["revenue_eur_affected"] = frame["customer_id"].map(revenue).fillna(0.0).round(2)
    frame["source_file"] = None
    frame["line"] = None
    return frame.drop(columns="customer_id")
