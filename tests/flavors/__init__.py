"""Tests of model flavors; ``transactions`` is the small card-fraud-like frame they share."""

from __future__ import annotations

import numpy as np
import pandas as pd

MERCHANTS = ("grocery", "travel", "online", "fuel")


def transactions(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Features of every dtype a signature knows (but string) and a fraud label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 1.0, n),
            "hour": rng.integers(0, 24, n),
            "is_online": rng.random(n) < 0.4,
            "merchant": pd.Categorical(rng.choice(MERCHANTS, n), categories=list(MERCHANTS)),
            "velocity": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1, n)),
        }
    )
    logit = (
        0.02 * frame.amount
        - 2.0
        + 1.5 * frame.is_online
        + 1.0 * (frame.merchant == "travel")
        + 0.5 * frame.velocity.fillna(0)
    )
    label = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), name="fraud")
    return frame, label


def numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every feature as float (for models without categorical/NaN support)."""
    out = frame.copy()
    out["merchant"] = out.merchant.cat.codes.astype(float)
    out["is_online"] = out.is_online.astype(float)
    out["hour"] = out.hour.astype(float)
    out["velocity"] = out.velocity.fillna(0.0)
    return out
