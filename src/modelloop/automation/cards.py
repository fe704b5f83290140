"""The gate's card-level metrics and their card (cluster) bootstrap: what investigators catch.

Investigators review *cards*, a fixed number a day, not transactions. Each day of the holdout,
a card's score and label are the max over its transactions that day; the ``k`` cards with the
highest scores are that day's alerts (ties by card id ascending, as the monitor ranks them);
cards caught (a fraud among the alerts) are blocked, so they are not alerts again on later
days. On that ranking:

- ``card_precision_at_k``: the frauds among the day's ``k`` alerts divided by ``k`` (always
  ``k``), the **mean over the days**: spec section 4, the same value as
  :func:`modelloop.monitoring.performance.card_precision_at_k` on the same rows.
- ``fraud_amount_at_k``: the amount of the fraudulent transactions of the day's ``k`` alerts,
  **summed over the days**: the money the alerts would have caught on the holdout.

The days are the holdout's days (sorted); a day counts even when a resample has none of its
cards (then it catches nothing).

Transactions of one card are not independent, so the bootstrap resamples *cards*: replicate
``b`` is the cards ``rng.integers(0, n_cards, size=n_cards)`` (the ``b``-th such draw of
``numpy.random.default_rng(seed)``, card ``i`` being the ``i``-th card id in sorted order). A
card drawn twice counts twice, with all its transactions on every day; its copies tie and rank
next to each other. Both models are judged on the same draws (paired).

Vectorised: a replicate is a vector of copies per card; each day is one pass over that day's
cards in the model's ranking, taking copies until ``k`` are taken and removing the caught
copies for later days; only the top of a day's ranking (as deep as ``k`` copies reach) is
visited.

Standard library only at import time; numpy and pandas load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

    FloatArray = np.ndarray[Any, np.dtype[np.float64]]
    IntArray = np.ndarray[Any, np.dtype[np.int64]]

CARD_METRICS = ("card_precision_at_k", "fraud_amount_at_k")


@dataclass(frozen=True)
class CardDays:
    """The holdout as (day, card) pairs, ordered by day then card: what both models share."""

    n_cards: int
    n_days: int
    day_starts: IntArray  # the first pair of each day, then the number of pairs
    card: IntArray  # the card of each pair (its position among the sorted card ids)
    label: FloatArray  # the card's max label that day
    fraud_amount: FloatArray  # the amount of its fraudulent transactions that day (0 if none)
    pair_of_row: IntArray  # the pair each row belongs to


def card_days(labels: FloatArray, groups: Any, days: Any, amounts: Any = None) -> CardDays:
    """Group rows (``labels``, the card ``groups``, the ``days``, optional ``amounts``) into
    (day, card) pairs. InvalidArgument for missing or unsortable ids, or bad amounts."""
    import numpy as np

    n = len(labels)
    day_code, n_days = _codes(days, n, "days")
    card_code, n_cards = _codes(groups, n, "groups")
    key = day_code * n_cards + card_code
    pairs, pair_of_row = np.unique(key, return_inverse=True)
    money = np.zeros(n) if amounts is None else np.asarray(amounts, dtype=np.float64)
    if money.shape != (n,):
        raise InvalidArgument(f"amounts need one value per row ({n}), got shape {money.shape}")
    if not np.isfinite(money).all():
        raise InvalidArgument(
            f"{int((~np.isfinite(money)).sum())} of {n} amounts are missing or not finite"
        )
    size = len(pairs)
    return CardDays(
        n_cards=n_cards,
        n_days=n_days,
        day_starts=np.searchsorted(pairs // n_cards, np.arange(n_days + 1)).astype(np.int64),
        card=(pairs % n_cards).astype(np.int64),
        label=(np.bincount(pair_of_row, weights=labels, minlength=size) > 0).astype(np.float64),
        fraud_amount=np.bincount(pair_of_row, weights=money * labels, minlength=size).astype(
            np.float64
        ),
        pair_of_row=pair_of_row.astype(np.int64),
    )


def ranking(cd: CardDays, scores: FloatArray) -> IntArray:
    """The pairs day by day, each day's cards by their max score descending, ties by card."""
    import numpy as np

    card_score = np.full(len(cd.card), -np.inf)
    np.maximum.at(card_score, cd.pair_of_row, scores)
    day = np.repeat(np.arange(cd.n_days), np.diff(cd.day_starts))
    order: IntArray = np.lexsort((cd.card, -card_score, day))
    return order


def draw_cards(rng: Any, n_cards: int, replicates: int) -> FloatArray:
    """The next ``replicates`` card resamples of ``rng`` as copies per card: (cards, replicates)."""
    import numpy as np

    copies = np.empty((replicates, n_cards))
    for row in range(replicates):
        copies[row] = np.bincount(rng.integers(0, n_cards, size=n_cards), minlength=n_cards)
    return np.ascontiguousarray(copies.T)


def caught(cd: CardDays, order: IntArray, copies: FloatArray, k: int) -> tuple[Any, Any]:
    """Card precision@k (mean over days) and fraud amount caught (sum over days) for each
    column of ``copies`` (copies of each card in one replicate), ranked as ``order`` says."""
    import numpy as np

    alive = copies.copy()  # copies not blocked yet
    frauds = np.zeros(copies.shape[1])
    amount = np.zeros(copies.shape[1])
    for day in range(cd.n_days):
        pairs = order[cd.day_starts[day] : cd.day_starts[day + 1]]
        depth = min(len(pairs), 2 * k + 16)  # as deep as k copies reach, usually
        while True:
            cards = cd.card[pairs[:depth]]
            w = alive[cards]
            reached = np.cumsum(w, axis=0)
            if depth == len(pairs) or (reached[-1] >= k).all():
                break
            depth = min(len(pairs), 2 * depth)
        taken = np.clip(np.minimum(w, k - (reached - w)), 0.0, None)
        y = cd.label[pairs[:depth]]
        frauds += y @ taken
        amount += cd.fraud_amount[pairs[:depth]] @ taken
        alive[cards] -= taken * y[:, None]
    return frauds / (k * max(cd.n_days, 1)), amount


def _codes(values: Any, n: int, name: str) -> tuple[IntArray, int]:
    """Each row's position among the sorted distinct ``values``, and how many there are."""
    import numpy as np
    import pandas as pd

    array = np.asarray(values, dtype=object) if not hasattr(values, "dtype") else values
    if len(array) != n:
        raise InvalidArgument(f"{name} needs one value per row ({n}), got {len(array)}")
    try:
        codes, uniques = pd.factorize(array, sort=True)
    except TypeError as exc:
        raise InvalidArgument(f"{name} must be comparable values to sort: {exc}") from None
    missing = int((codes < 0).sum())
    if missing:
        raise InvalidArgument(f"{missing} of {n} rows have no value in {name}")
    return codes.astype(np.int64), len(uniques)
