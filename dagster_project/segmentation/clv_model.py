"""Expected purchases and customer lifetime value from fitted BG/NBD + Gamma-Gamma models.

The only module that knows the modelling library (lifetimes 0.11.3: archived, but it works with
numpy 2 / pandas 2 and reproduces its published fits; STACK_NOTES.md). Swapping it for another
implementation (e.g. pymc-marketing) means rewriting this adapter, nothing else.
Time unit: days. Inputs are the buy-till-you-die features of customer_value.py.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ClvFit:
    """Whether the models could be fitted, and why not when they could not."""

    fitted: bool
    reason: str
    bgnbd_params: dict[str, float]
    gamma_gamma_params: dict[str, float]


def predict_clv(btyd: pd.DataFrame, horizon_days: int, annual_discount_rate: float,
                bgnbd_penalizer: float, gamma_gamma_penalizer: float,
                min_repeat_customers: int) -> tuple[pd.DataFrame, ClvFit]:
    """Fit on `btyd` (customer_id, frequency, recency_days, t_days, monetary_value; customers
    with at least one purchase day) and predict per customer over `horizon_days`.

    Returns (customer_id, expected_purchases, expected_purchase_value, clv_eur) and the fit.
    CLV = expected purchases over the horizon x expected value of a purchase day (Gamma-Gamma;
    for single-purchase customers the repeat customers' mean),
    discounted by half the horizon at `annual_discount_rate` (purchases spread over the horizon).
    """
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    data = btyd.sort_values("customer_id").reset_index(drop=True)
    empty = pd.DataFrame({"customer_id": data["customer_id"], "expected_purchases": np.nan,
                          "expected_purchase_value": np.nan, "clv_eur": np.nan})
    repeat = data[(data["frequency"] > 0) & (data["monetary_value"] > 0)]
    if len(repeat) < min_repeat_customers:
        return empty, ClvFit(False, f"only {len(repeat)} repeat customers "
                             f"(< {min_repeat_customers})", {}, {})
    frequency = data["frequency"].to_numpy(dtype=float)
    recency = data["recency_days"].to_numpy(dtype=float)
    age = data["t_days"].to_numpy(dtype=float)
    # lifetimes emits numpy/pandas deprecation warnings on every call: not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            bgf = BetaGeoFitter(penalizer_coef=bgnbd_penalizer)
            bgf.fit(frequency, recency, age)
            ggf = GammaGammaFitter(penalizer_coef=gamma_gamma_penalizer)
            ggf.fit(repeat["frequency"].to_numpy(dtype=float),
                    repeat["monetary_value"].to_numpy(dtype=float))
            expected = bgf.conditional_expected_number_of_purchases_up_to_time(
                horizon_days, frequency, recency, age)
            value = ggf.conditional_expected_average_profit(
                data["frequency"].astype(float),
                data["monetary_value"].fillna(0).astype(float).clip(lower=0))
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as error:
            return empty, ClvFit(False, f"fit failed: {error}", {}, {})
    expected = np.asarray(expected, dtype=float)
    value = np.asarray(value, dtype=float)
    # Without a repeat purchase Gamma-Gamma falls back to its population mean p*v/(q-1), which
    # is negative or infinite when the fit has q <= 1 (heavy-tailed spend, common in B2B):
    # those customers get the observed mean of the repeat customers' purchase-day values.
    value = np.where(frequency > 0, value, float(repeat["monetary_value"].mean()))
    discount = (1 + annual_discount_rate) ** (-(horizon_days / 365.0) / 2)
    out = pd.DataFrame({
        "customer_id": data["customer_id"],
        "expected_purchases": np.round(expected, 6),
        "expected_purchase_value": np.round(value, 2),
        "clv_eur": np.round(expected * value * discount, 2),
    })
    fit = ClvFit(True, "fitted",
                 {k: round(float(v), 6) for k, v in bgf.params_.items()},
                 {k: round(float(v), 6) for k, v in ggf.params_.items()})
    return out, fit
