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
import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import gammaln, logsumexp

from dagster_project.segmentation.explain import inputs_json, reason_text, stamp
from dagster_project.segmentation.settings import IndustrySettings

OVERRIDE = "override"
CRM_PICKLIST = "crm_picklist"
LEGACY_MAPPING = "legacy_mapping"
PURCHASE_INFERENCE = "purchase_inference"
NAME_INFERENCE = "name_inference"
UNASSIGNED = "unassigned"
SOURCES = (OVERRIDE, CRM_PICKLIST, LEGACY_MAPPING, PURCHASE_INFERENCE, NAME_INFERENCE, UNASSIGNED)

_WORD_SPLIT = re.compile(r"[^0-9A-Z]+")


@functools.cache
def _without_combining_marks() -> dict[int, None]:
    """str.translate table deleting every combining mark (accents after NFKD)."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))}
TABLE_COLUMNS = [
    "customer_id", "segment", "sub_segment", "segment_source", "sub_segment_source",
    "segment_confidence", "sub_segment_confidence", "reason_codes", "inputs",
]


@dataclass(frozen=True)
class Taxonomy:
    """The segment taxonomy (seeds/segment_taxonomy.csv) as aligned arrays."""

    sub_segments: tuple[str, ...]
    segments: tuple[str, ...]  # the segment of each sub-segment
    added_in: tuple[str, ...]  # the taxonomy version that added each sub-segment

    @classmethod
    def from_seed(cls, frame: pd.DataFrame) -> Taxonomy:
        return cls(tuple(frame["sub_segment"]), tuple(frame["segment"]),
                   tuple(str(v) for v in frame["added_in_scheme_version"]))

    def added_after(self, sub_segment: str, when: pd.Timestamp,
                    live_from: dict[str, dt.date]) -> np.ndarray:
        """Sub-segments of the same segment that went live after `when`: a picklist set then
        could not name them, so its accounts of theirs were filed under an older sub-segment."""
        segment = self.segments[self.index(sub_segment)]
        if pd.isna(when):
            return np.zeros(len(self.sub_segments), dtype=bool)
        day = pd.Timestamp(when).date()
        return np.array([
            seg == segment and sub != sub_segment and version in live_from
            and live_from[version] > day
            for sub, seg, version in zip(self.sub_segments, self.segments, self.added_in,
                                         strict=True)])

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
                sub is not None and sub not in self.sub_segments):
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
        label_field, label, segment, sub_segment, mapping_status, is_deleted).
    purchases: customer_id, product_line, order_lines (non-credit order lines per product line).
    name_words: customer_id, word (distinct words of the customer's record names).
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
    rows = []
    drop_marks = _without_combining_marks()
    for customer_id, name in names[["customer_id", "record_name"]].itertuples(index=False):
        if customer_id is None or not isinstance(name, str):
            continue
        folded = unicodedata.normalize("NFKD", name.upper()).translate(drop_marks)
        for word in _WORD_SPLIT.split(folded):
            if len(word) >= min_length and not word.isdigit():
                rows.append((customer_id, word))
                if stem_length and len(word) > stem_length:
                    rows.append((customer_id, word[:stem_length] + "~"))
    return pd.DataFrame(rows, columns=["customer_id", "word"]).drop_duplicates().sort_values(
        ["customer_id", "word"]).reset_index(drop=True)


# --- evidence -------------------------------------------------------------------------------


def _row_index(frame: pd.DataFrame, customers: pd.Index) -> np.ndarray:
    return customers.get_indexer(frame["customer_id"])


def _record_factor(frame: pd.DataFrame, rules: IndustrySettings) -> np.ndarray:
    deleted = frame["is_deleted"].fillna(False).astype(bool).to_numpy()
    return np.where(deleted, rules.deleted_record_factor, 1.0)


def picklist_evidence(picklists: pd.DataFrame, customers: pd.Index, tax: Taxonomy,
                      rules: IndustrySettings) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(points per customer x sub-segment from valid picklists, points of the picklists that name
    a sub-segment, each filled account's verdict)."""
    points = np.zeros((len(customers), len(tax.sub_segments)))
    sub_points = np.zeros_like(points)
    frame = picklists.copy()
    frame["row"] = _row_index(frame, customers)
    frame["verdict"] = [tax.check(a, b) for a, b in zip(frame["segment"], frame["sub_segment"],
                                                         strict=True)]
    frame = frame[(frame["row"] >= 0) & (frame["verdict"] != "empty")].reset_index(drop=True)
    factor = _record_factor(frame, rules)
    predates = []
    for i, row in enumerate(frame.itertuples()):
        newer = np.zeros(len(tax.sub_segments), dtype=bool)
        if row.verdict == "valid":
            added = rules.picklist.sub_segment_points * factor[i]
            points[row.row, tax.index(row.sub_segment)] += added
            sub_points[row.row, tax.index(row.sub_segment)] += added
            newer = tax.added_after(row.sub_segment, row.last_modified_at,
                                    rules.taxonomy_versions_live_from)
            points[row.row, newer] += added
        elif row.verdict == "segment_only":
            points[row.row, tax.in_segment(row.segment)] += (
                rules.picklist.segment_only_points * factor[i])
        predates.append("|".join(np.array(tax.sub_segments)[newer]))
    frame["predates"] = predates
    return points, sub_points, frame


def legacy_evidence(labels: pd.DataFrame, customers: pd.Index, tax: Taxonomy,
                    rules: IndustrySettings) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(all points, points of sub-segment-level labels only, the mapped labels used)."""
    points = np.zeros((len(customers), len(tax.sub_segments)))
    sub_points = np.zeros_like(points)
    frame = labels[labels["mapping_status"] == "mapped"].copy()
    frame["field"] = frame["source_system"] + "." + frame["label_field"]
    frame["row"] = _row_index(frame, customers)
    frame = frame[(frame["row"] >= 0) & frame["field"].isin(list(rules.legacy_labels))]
    frame = frame[frame["segment"].isin(tax.segments)].reset_index(drop=True)
    factor = _record_factor(frame, rules)
    for i, row in enumerate(frame.itertuples()):
        weight = rules.legacy_labels[row.field]
        if isinstance(row.sub_segment, str) and row.sub_segment in tax.sub_segments:
            points[row.row, tax.index(row.sub_segment)] += weight.sub_segment * factor[i]
            sub_points[row.row, tax.index(row.sub_segment)] += weight.sub_segment * factor[i]
        else:
            points[row.row, tax.in_segment(row.segment)] += weight.segment * factor[i]
    return points, sub_points, frame


def override_table(overrides: pd.DataFrame, customers: pd.Index,
                   tax: Taxonomy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid industry overrides per customer: the last row of a customer wins, rejected rows)."""
    frame = overrides.copy()
    if frame.empty:
        empty = pd.DataFrame(columns=[*overrides.columns, "verdict"])
        return empty, empty
    frame["verdict"] = [tax.check(a, b) for a, b in zip(frame["segment"], frame["sub_segment"],
                                                         strict=True)]
    frame.loc[~frame["customer_id"].isin(customers), "verdict"] = "unknown_customer"
    industry = frame[frame["verdict"] != "empty"]
    valid = industry[industry["verdict"].isin(["valid", "segment_only"])]
    valid = valid.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    rejected = industry[~industry["verdict"].isin(["valid", "segment_only"])]
    return valid, rejected


def _fold_of(customer_ids: Iterable[str], folds: int) -> np.ndarray:
    """A stable fold per customer (the same customer lands in the same fold on every run)."""
    return np.array([int(hashlib.md5(str(c).encode()).hexdigest()[:8], 16) % folds
                     for c in customer_ids])


def _purchase_matrix(purchases: pd.DataFrame, customers: pd.Index) -> tuple[np.ndarray, list[str]]:
    lines = sorted(purchases["product_line"].dropna().unique())
    counts = np.zeros((len(customers), len(lines)))
    frame = purchases.dropna(subset=["product_line"])
    rows = _row_index(frame, customers)
    keep = rows >= 0
    np.add.at(counts, (rows[keep], frame["product_line"].map(lines.index).to_numpy()[keep]),
              frame["order_lines"].to_numpy(dtype=float)[keep])
    return counts, lines


def _dirichlet_multinomial(counts: np.ndarray, means: np.ndarray,
                           concentration: float) -> np.ndarray:
    """log P(counts | sub-segment) up to a per-customer constant, customers x sub-segments."""
    alpha = means * concentration
    total = counts.sum(axis=1)
    return (gammaln(concentration) - gammaln(total[:, None] + concentration)
            + (gammaln(counts[:, None, :] + alpha[None]) - gammaln(alpha[None])).sum(axis=2))


def _fit_mix(counts: np.ndarray, labels: np.ndarray, n_classes: int,
             grid: list[float]) -> tuple[np.ndarray, float] | None:
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
    fit = [(_dirichlet_multinomial(counts, means, c)[np.arange(len(labels)), labels].sum(), c)
           for c in grid]
    return means, max(fit)[1]


def _centre_and_cap(log_lik: np.ndarray, cap: float) -> np.ndarray:
    """Evidence points relative to the best sub-segment, no sub-segment more than `cap` below."""
    return np.maximum(log_lik - log_lik.max(axis=1, keepdims=True), -cap)


def purchase_evidence(counts: np.ndarray, usable: np.ndarray, train_labels: np.ndarray,
                      folds: np.ndarray, n_classes: int, rules: IndustrySettings
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
    vocabulary, codes = np.unique(words["word"].to_numpy(dtype=str), return_inverse=True)
    rows = _row_index(words, customers)
    keep = rows >= 0
    matrix = sparse.csr_matrix((np.ones(int(keep.sum())), (rows[keep], codes[keep])),
                               shape=(len(customers), len(vocabulary)))
    matrix.data[:] = 1.0  # presence, not counts
    return matrix, vocabulary


def name_evidence(words: sparse.csr_matrix, train_labels: np.ndarray, folds: np.ndarray,
                  n_classes: int, rules: IndustrySettings) -> np.ndarray:
    """Cross-fitted name-word points (customers x sub-segments): for every word present, the log
    ratio of its frequency among a sub-segment's training customers to its overall frequency."""
    cfg = rules.inference.names
    points = np.zeros((words.shape[0], n_classes))
    for fold in range(rules.inference.folds):
        train = (train_labels >= 0) & (folds != fold)
        if not train.any():
            continue
        onehot = sparse.csr_matrix((np.ones(int(train.sum())),
                                    (train_labels[train], np.arange(int(train.sum())))),
                                   shape=(n_classes, int(train.sum())))
        per_class = np.asarray((onehot @ words[train]).todense())  # classes x words
        seen = per_class.sum(axis=0)
        class_sizes = np.bincount(train_labels[train], minlength=n_classes)[:, None]
        smoothing = cfg.smoothing
        log_ratio = (np.log((per_class + smoothing) / (class_sizes + 2 * smoothing))
                     - np.log((seen + smoothing) / (train.sum() + 2 * smoothing))[None])
        log_ratio[:, seen < cfg.min_customers_per_word] = 0.0
        score = folds == fold
        log_lik = np.asarray(words[score] @ log_ratio.T)
        points[score] = _centre_and_cap(log_lik * cfg.points_per_nat, cfg.max_points)
    return points


def _prior(train_labels: np.ndarray, n_classes: int, weight: float,
           pseudo_customers: float) -> np.ndarray:
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


def assign_industry_segments(inputs: IndustryInputs, taxonomy: pd.DataFrame,
                             rules: IndustrySettings, scheme_version: str,
                             as_of: dt.date | None) -> IndustryAssignment:
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
        inputs.picklists, customers, tax, rules)
    legacy_points, legacy_sub_points, labels_used = legacy_evidence(
        inputs.legacy_labels, customers, tax, rules)

    # Who trains the inference: customers the sources above decide clearly.
    sourced = pick_points + legacy_points
    train_labels = np.where((_margin(sourced) >= rules.inference.training_min_margin)
                            & (sourced.max(axis=1) > 0), sourced.argmax(axis=1), -1)
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
    inferred = purchase_points + name_points + _prior(
        train_labels, k, rules.inference.prior_weight, rules.inference.prior_pseudo_customers)
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
    inference_confident = (segment_probability[np.arange(n), overall_best]
                           >= rules.min_inference_confidence)

    rows = []
    label_texts = _label_texts(labels_used)
    picklist_texts = _picklist_texts(pick_accounts)
    picklist_flags = _picklist_flags(pick_accounts)
    word_lists = _words_per_row(words, vocabulary)
    for i, customer_id in enumerate(customers):
        codes: list[str] = []
        sub_source = None
        if customer_id in overrides.index:
            override = overrides.loc[customer_id]
            segment = override["segment"] if isinstance(override["segment"], str) else (
                tax.segments[tax.index(override["sub_segment"])])
            if isinstance(override["sub_segment"], str):
                best = tax.index(override["sub_segment"])
                sub_source = OVERRIDE
            else:
                best = _best_among(total[i:i + 1], tax.in_segment(segment)[None])[0]
            source, codes = OVERRIDE, ["IND.STEWARD_OVERRIDE"]
        elif picklist_kept[i]:
            best, source = picklist_best[i], CRM_PICKLIST
            codes.append("IND.PICKLIST_CONSISTENT")
        elif has_legacy[i] and (rules.legacy_decides_among_its_candidates
                                or legacy_points[i, overall_best[i]] > 0):
            best, source = legacy_best[i], LEGACY_MAPPING
        elif has_legacy[i]:
            # the labels are outweighed by what the customer buys and is called
            best = overall_best[i]
            source = _inference_source(purchase_points[i], name_points[i], best)
        elif has_inference[i] and inference_confident[i]:
            best = overall_best[i]
            source = _inference_source(purchase_points[i], name_points[i], best)
        else:
            best, source = -1, UNASSIGNED
        codes.extend(_picklist_codes(picklist_flags.get(customer_id, ()), source,
                                     has_picklist[i] and picklist_best[i] != best))

        if best < 0:
            segment = sub_segment = rules.unassigned
            sub_source = UNASSIGNED
            segment_confidence = sub_confidence = 0.0
            codes.append("IND.NO_EVIDENCE" if not (has_inference[i]) else
                         "IND.INFERENCE_TOO_WEAK")
        else:
            segment, sub_segment = seg_names[best], sub_names[best]
            if sub_source is None:
                sub_source = _sub_segment_source(source, best, pick_sub_points[i],
                                                 legacy_sub_points[i], purchase_points[i],
                                                 name_points[i])
            if source == OVERRIDE:
                segment_confidence = 1.0
                sub_confidence = 1.0 if sub_source == OVERRIDE else float(
                    probability[i, best] / probability[i, tax.in_segment(segment)].sum())
            else:
                segment_confidence = float(probability[i, tax.in_segment(segment)].sum())
                sub_confidence = float(probability[i, best])
            codes.extend(_evidence_codes(i, best, source, has_legacy, legacy_points,
                                         legacy_sub_points, usable, purchase_points,
                                         name_points))
        rows.append({
            "customer_id": customer_id,
            "segment": segment,
            "sub_segment": sub_segment,
            "segment_source": source,
            "sub_segment_source": sub_source,
            "segment_confidence": round(segment_confidence, 4),
            "sub_segment_confidence": round(sub_confidence, 4),
            "reason_codes": reason_text(dict.fromkeys(codes)),
            "inputs": inputs_json({
                "override": _override_inputs(overrides, customer_id),
                "picklists": picklist_texts.get(customer_id),
                "legacy_labels": label_texts.get(customer_id),
                "order_lines_by_product_line": {
                    line: int(v) for line, v in zip(product_lines, counts[i], strict=True) if v
                } or None,
                "name_words": word_lists[i] or None,
                "top_sub_segments": _top(total[i], sub_names),
            }),
        })
    table = stamp(pd.DataFrame(rows, columns=TABLE_COLUMNS), scheme_version, as_of)
    findings = _findings(table, customers_frame, pick_accounts, rejected_overrides, rules)
    return IndustryAssignment(table=table, findings=findings)


def _picklist_flags(accounts: pd.DataFrame) -> dict[str, set[str]]:
    """Per customer: what its picklists show (invalid values, set before a sub-segment)."""
    flags: dict[str, set[str]] = {}
    columns = accounts[["customer_id", "verdict", "predates"]]
    for customer_id, verdict, predates in columns.itertuples(index=False):
        mine = flags.setdefault(customer_id, set())
        if verdict in ("invalid_value", "invalid_hierarchy"):
            mine.add("invalid")
        if predates:
            mine.add("predates")
    return flags


def _picklist_codes(flags: set[str] | tuple, source: str, not_kept: bool) -> list[str]:
    codes = []
    if "invalid" in flags:
        codes.append("IND.PICKLIST_INVALID")
    if "predates" in flags:
        codes.append("IND.PICKLIST_PREDATES_SUB_SEGMENT")
    if not_kept:
        codes.append("IND.PICKLIST_DIFFERS_FROM_OVERRIDE" if source == OVERRIDE
                     else "IND.PICKLIST_OUTWEIGHED")
    return codes


def _inference_source(purchase: np.ndarray, names: np.ndarray, best: int) -> str:
    """The inference evidence that favours the winner more (over its strongest rival)."""
    def lead(points: np.ndarray) -> float:
        return float(points[best] - np.delete(points, best).max())
    return PURCHASE_INFERENCE if lead(purchase) >= lead(names) else NAME_INFERENCE


def _sub_segment_source(source: str, best: int, pick_sub: np.ndarray, legacy_sub: np.ndarray,
                        purchase: np.ndarray, names: np.ndarray) -> str:
    """Which source named the sub-segment itself (a segment-only value leaves it to the next)."""
    if source == CRM_PICKLIST and pick_sub[best] > 0:
        return CRM_PICKLIST
    if source in (OVERRIDE, CRM_PICKLIST, LEGACY_MAPPING) and legacy_sub[best] > 0:
        return LEGACY_MAPPING
    return _inference_source(purchase, names, best)


def _evidence_codes(i: int, best: int, source: str, has_legacy: np.ndarray,
                    legacy: np.ndarray, legacy_sub: np.ndarray, usable: np.ndarray,
                    purchase: np.ndarray, names: np.ndarray) -> list[str]:
    codes = []
    if has_legacy[i]:
        supported = legacy[i] > 0
        if legacy_sub[i].max() <= 0:
            codes.append("IND.LEGACY_SEGMENT_ONLY")
        elif (legacy_sub[i] > 0).sum() == 1:
            codes.append("IND.LEGACY_LABELS_AGREE")
        else:
            codes.append("IND.LEGACY_LABELS_DISAGREE")
        if not supported[best]:
            codes.append("IND.LEGACY_LABELS_OUTWEIGHED")
    if usable[i]:
        codes.append("IND.PURCHASE_MIX_AGREES" if purchase[i].argmax() == best
                     else "IND.PURCHASE_MIX_DIFFERS")
    if names[i].any():
        codes.append("IND.NAME_WORDS_AGREE" if names[i].argmax() == best
                     else "IND.NAME_WORDS_DIFFER")
    return codes


def _words_per_row(words: sparse.csr_matrix, vocabulary: np.ndarray) -> list[list[str]]:
    return [sorted(vocabulary[words.indices[words.indptr[i]:words.indptr[i + 1]]].tolist())
            for i in range(words.shape[0])]


def _top(points: np.ndarray, names: np.ndarray, n: int = 3) -> dict[str, float]:
    order = np.argsort(-points, kind="stable")[:n]
    return {str(names[j]): round(float(points[j]), 3) for j in order}


def _override_inputs(overrides: pd.DataFrame, customer_id: str) -> dict | None:
    if customer_id not in overrides.index:
        return None
    row = overrides.loc[customer_id]
    return {key: (None if pd.isna(row.get(key)) else str(row.get(key)))
            for key in ("segment", "sub_segment", "reason", "steward", "decided_on")}


def _picklist_texts(accounts: pd.DataFrame) -> dict[str, list[dict]]:
    """Per customer: its filled picklists as the inputs show them."""
    texts: dict[str, list[dict]] = {}
    ordered = accounts.sort_values(["customer_id", "account_id"])
    for a in ordered[["customer_id", "account_id", "segment", "sub_segment", "verdict",
                      "predates"]].itertuples(index=False):
        texts.setdefault(a.customer_id, []).append({
            "account_id": a.account_id, "segment": a.segment, "sub_segment": a.sub_segment,
            "verdict": a.verdict, "set_before": a.predates or None})
    return texts


def _label_texts(labels: pd.DataFrame) -> dict[str, list[str]]:
    """Per customer: its mapped legacy labels as 'system.field=label -> mapped to'."""
    texts: dict[str, list[str]] = {}
    ordered = labels.sort_values(["customer_id", "field", "source_id", "label"])
    for r in ordered[["customer_id", "field", "label", "segment", "sub_segment"]].itertuples(
            index=False):
        target = r.sub_segment if isinstance(r.sub_segment, str) else r.segment
        texts.setdefault(r.customer_id, []).append(f"{r.field}={r.label} -> {target}")
    return texts


# --- steward findings ----------------------------------------------------------------------


def _picklist_findings(pick_accounts: pd.DataFrame, assigned: pd.DataFrame) -> pd.DataFrame:
    """CRM picklists the assignment did not keep, in pick_accounts order (set-based: there are
    tens of thousands of filled picklists at 100,000 customers)."""
    checked = pick_accounts["verdict"].isin(
        ["valid", "segment_only", "invalid_value", "invalid_hierarchy"])
    accounts = pick_accounts.loc[checked, ["customer_id", "account_id", "segment", "sub_segment",
                                           "verdict"]].reset_index(drop=True)
    decided = assigned[["segment", "sub_segment", "segment_source"]].add_prefix("decided_")
    accounts = accounts.join(decided, on="customer_id")
    rule = accounts["verdict"].map(
        {"invalid_value": "segment_taxonomy", "invalid_hierarchy": "segment_hierarchy"})
    agrees = (accounts["decided_segment"] == accounts["segment"]) & (
        (accounts["verdict"] == "segment_only")
        | (accounts["decided_sub_segment"] == accounts["sub_segment"]))
    not_kept = np.where(accounts["decided_segment_source"] == OVERRIDE, "differs_from_override",
                        "outweighed_by_other_evidence")
    rule = rule.fillna(pd.Series(np.where(agrees, None, not_kept), index=accounts.index))
    accounts = accounts.assign(rule=rule)[rule.notna()]
    picklist = accounts["segment"].astype(str) + " / " + accounts["sub_segment"].astype(str)
    return pd.DataFrame({
        "kind": "inconsistent_picklist", "source_system": "crm", "entity": "accounts",
        "record_key": accounts["account_id"], "column_name": "sub_segment",
        "rule": accounts["rule"], "observed_value": picklist,
        "customer_id": accounts["customer_id"],
        "message": "CRM account " + accounts["account_id"].astype(str) + ": picklist " + picklist
                   + " (" + accounts["rule"].str.replace("_", " ") + "); assigned "
                   + accounts["decided_segment"].astype(str) + " / "
                   + accounts["decided_sub_segment"].astype(str) + " from "
                   + accounts["decided_segment_source"].astype(str),
    }, columns=["kind", "source_system", "entity", "record_key", "column_name", "rule",
                "observed_value", "customer_id", "message"])


def _findings(table: pd.DataFrame, customers: pd.DataFrame, pick_accounts: pd.DataFrame,
              rejected_overrides: pd.DataFrame, rules: IndustrySettings) -> pd.DataFrame:
    """Unassigned customers, picklists the assignment did not keep, overrides it could not use
    (FINDING_COLUMNS of steward/queue.py; severity from config/pipeline.yml `severity:`)."""
    revenue = customers.set_index("customer_id")["revenue_eur"].astype(float)
    assigned = table.set_index("customer_id")
    rows = []
    for customer_id in assigned.index[assigned["segment_source"] == UNASSIGNED]:
        rows.append({
            "kind": "unassigned_segment", "source_system": None, "entity": "customer_segments",
            "record_key": customer_id, "column_name": "segment", "rule": "industry_precedence",
            "observed_value": None, "customer_id": customer_id,
            "message": f"Customer {customer_id}: no override, picklist, mapped legacy label or "
                       "strong enough purchase evidence: add a segment override or a label mapping",
        })
    n_unassigned = len(rows)
    picklist_rows = _picklist_findings(pick_accounts, assigned)
    for row in rejected_overrides.itertuples():
        rows.append({
            "kind": "invalid_override", "source_system": "seeds", "entity": "segment_overrides",
            "record_key": str(row.customer_id), "column_name": "sub_segment",
            "rule": row.verdict, "observed_value": f"{row.segment} / {row.sub_segment}",
            "customer_id": row.customer_id,
            "message": f"Override of {row.customer_id} not applied "
                       f"({row.verdict.replace('_', ' ')})",
        })
    columns = ["kind", "source_system", "entity", "record_key", "column_name", "rule",
               "observed_value", "customer_id", "message"]
    unassigned, overrides = rows[:n_unassigned], rows[n_unassigned:]
    frame = pd.concat([pd.DataFrame(unassigned, columns=columns), picklist_rows[columns],
                       pd.DataFrame(overrides, columns=columns)], ignore_index=True)
    frame["customers_affected"] = 1
    frame["revenue_eur_affected"] = frame["customer_id"].map(revenue).fillna(0.0).round(2)
    frame["source_file"] = None
    frame["line"] = None
    return frame.drop(columns="customer_id")

