"""Why a model scored a row as it did: per-feature contributions and reason codes.

Reason codes are the ``k`` features that pushed the score *up* the most (largest positive
contribution first, ties in signature order). That is the question a fraud analyst or an
adverse-action notice asks of a high score; features that lowered it are not reasons for it,
so they never appear, and a row may get fewer than ``k`` codes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.flavors import Contributions, LoadedModel


@dataclass(frozen=True)
class ReasonCode:
    feature: str
    contribution: float
    value: Any = None
    """The row's value of the feature (JSON-ready: Python scalar, NaN as None), when known."""


def reason_codes(contributions: Contributions, k: int = 3) -> list[list[ReasonCode]]:
    """The top-``k`` positive contributions of each row, largest first."""
    if k < 0:
        raise InvalidArgument(f"k must be 0 or more, got {k}")
    values = contributions.values
    # Stable sort on the negated values: the largest first, ties keep the signature order.
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    codes = []
    for i, row in enumerate(order):
        codes.append(
            [
                ReasonCode(
                    contributions.feature_names[j],
                    float(values[i, j]),
                    None if contributions.data is None else _scalar(contributions.data[i, j]),
                )
                for j in row
                if values[i, j] > 0
            ]
        )
    return codes


def explain(model: LoadedModel, frame: pd.DataFrame, k: int = 3) -> list[dict[str, Any]]:
    """Per row: every feature's contribution, the base value and the reason codes."""
    contributions = model.contributions(frame)
    names = contributions.feature_names
    return [
        {
            "contributions": dict(zip(names, map(float, row), strict=True)),
            "base_value": float(base),
            "reason_codes": [asdict(code) for code in codes],
        }
        for row, base, codes in zip(
            contributions.values,
            contributions.base_values,
            reason_codes(contributions, k),
            strict=True,
        )
    ]


def feature_importance(model: LoadedModel, frame: pd.DataFrame) -> dict[str, float]:
    """Each feature's share of the model's attention on ``frame``'s rows: its mean absolute
    contribution over the rows, divided by the sum over features (shares add up to 1). Used to
    ask whether a drifted feature matters to the model before paying for a retraining."""
    contributions = model.contributions(frame)
    means = np.abs(contributions.values).mean(axis=0)
    total = float(means.sum())
    shares = means / total if total > 0 else np.full(len(means), 1.0 / max(len(means), 1))
    return dict(zip(contributions.feature_names, map(float, shares), strict=True))


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if (isinstance(value, float) and not math.isfinite(value)) or type(value).__name__ in (
        "NAType",
        "NaTType",
    ):
        return None
    return value
