"""Drift scenarios for the closed loop: the handbook's frauds are stationary, real ones are not.

Each scenario is switched on by passing its dataclass to :class:`Drift`, draws from its own
seeded generator (so switching one on never changes another's rows), and is applied by
:func:`apply_drift` to a frame made by :func:`~modelloop.examples.fraud.simulator.simulate`
with the same config (spec ``../shared/specs/fraud-simulator.md``, section 5):

- :class:`VolumeSurge`: extra genuine transactions drawn from each card's own profile, so the
  daily volume is ``factor`` times the usual over a period. The book's fraud rules still hold
  for them (amount > 220, compromised terminal), so the fraud rate stays what it was.
- :class:`BehaviourShift`: from ``start_day`` a share of cards spend ``factor`` times more on
  genuine purchases (a seasonal change). Labels are untouched: the inputs drift, the concept
  does not, and a retraining gate must not promote a model just because the data moved.
- :class:`FraudRing`: from ``start_day`` a ring tests stolen cards with many small night-time
  amounts (1-20) at a cluster of neighbouring terminals, all fraud (``TX_FRAUD_SCENARIO`` 4).
  A model trained before has never seen small-amount fraud, so its recall drops.

They apply in that order (the shift also raises the surge's genuine amounts), then rows are
re-sorted by time (original rows first within a second) and TRANSACTION_ID renumbered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelloop.examples.fraud.simulator import (
    FRAUD_AMOUNT,
    SECONDS_PER_DAY,
    SimulationConfig,
    compromised_terminal_days,
    make_profiles,
)

#: TX_FRAUD_SCENARIO of the fraud ring's transactions (the book's scenarios are 1 to 3).
FRAUD_RING_SCENARIO = 4

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class VolumeSurge:
    """Transactions per day times ``factor`` on days ``[start_day, end_day)``."""

    start_day: int = 120
    end_day: int = 150
    factor: float = 1.5
    seed: int = 11


@dataclass(frozen=True)
class BehaviourShift:
    """From ``start_day``, a ``share`` of cards (drawn with ``seed``) spend ``factor`` x more."""

    start_day: int = 120
    share: float = 0.3
    factor: float = 1.5
    seed: int = 12


@dataclass(frozen=True)
class FraudRing:
    """From ``start_day`` (until ``end_day``, exclusive, or the end), ~``tx_per_day`` frauds a
    day on random cards at the ``n_terminals`` terminals nearest a random one, between midnight
    and ``night_end_hour``, for ``min_amount``..``max_amount``."""

    start_day: int = 120
    end_day: int | None = None
    n_terminals: int = 10
    tx_per_day: float = 60.0
    min_amount: float = 1.0
    max_amount: float = 20.0
    night_end_hour: int = 6
    seed: int = 13


@dataclass(frozen=True)
class Drift:
    """Which scenarios to apply; ``Drift()`` applies none."""

    volume_surge: VolumeSurge | None = None
    behaviour_shift: BehaviourShift | None = None
    fraud_ring: FraudRing | None = None
    config: SimulationConfig = field(default_factory=SimulationConfig)


def apply_drift(transactions: pd.DataFrame, drift: Drift) -> pd.DataFrame:
    """``transactions`` with the scenarios of ``drift`` applied (a new frame, sorted by time)."""
    frame = transactions.copy()
    added: list[pd.DataFrame] = []
    if drift.volume_surge is not None:
        added.append(_surge(drift.volume_surge, drift.config))
    if added:
        frame = _merge(frame, added)
    if drift.behaviour_shift is not None:
        shift = drift.behaviour_shift
        shifted = np.isin(frame["CUSTOMER_ID"].to_numpy(), shifted_customers(shift, drift.config))
        rows = shifted & (frame["TX_TIME_DAYS"].to_numpy() >= shift.start_day)
        rows &= frame["TX_FRAUD"].to_numpy() == 0
        amounts = frame["TX_AMOUNT"].to_numpy(dtype=np.float64, copy=True)
        amounts[rows] = np.round(amounts[rows] * shift.factor, 2)
        frame["TX_AMOUNT"] = amounts
    if drift.fraud_ring is not None:
        frame = _merge(frame, [_ring(drift.fraud_ring, drift.config)])
    return frame


def shifted_customers(shift: BehaviourShift, config: SimulationConfig) -> Array:
    """The ids of the cards whose spending rises (sorted)."""
    rng = np.random.default_rng(shift.seed)
    count = round(shift.share * config.n_customers)
    return np.sort(rng.choice(config.n_customers, size=count, replace=False))


def ring_terminals(ring: FraudRing, config: SimulationConfig) -> Array:
    """The ids of the ring's terminals: the ``n_terminals`` nearest a randomly drawn one."""
    terminals = make_profiles(config).terminals[["x", "y"]].to_numpy()
    rng = np.random.default_rng(ring.seed)
    centre = terminals[rng.integers(len(terminals))]
    distance = np.hypot(*(terminals - centre).T)
    return np.sort(np.argsort(distance, kind="stable")[: ring.n_terminals])


def with_label_arrival(transactions: pd.DataFrame, delay_days: float = 7.0) -> pd.DataFrame:
    """Add LABEL_AVAILABLE_AT: when the bank learns TX_FRAUD (a fixed delay, as in the book)."""
    frame = transactions.copy()
    frame["LABEL_AVAILABLE_AT"] = frame["TX_DATETIME"] + pd.Timedelta(days=delay_days)
    return frame


def _surge(surge: VolumeSurge, config: SimulationConfig) -> pd.DataFrame:
    """Extra genuine transactions from each card's profile, labelled by the book's rules 1-2."""
    profiles = make_profiles(config)
    rng = np.random.default_rng(surge.seed)
    days = np.arange(max(0, surge.start_day), min(surge.end_day, config.n_days))
    table = profiles.customers
    reach = np.array([len(a) for a in profiles.available])
    lam = table["mean_nb_tx_per_day"].to_numpy() * (surge.factor - 1.0)
    counts = rng.poisson(np.broadcast_to(lam, (len(days), len(lam))))
    counts[:, reach == 0] = 0  # a card that reaches no terminal cannot spend more either
    slot = np.repeat(np.arange(counts.size), counts.ravel())  # one per extra transaction
    day_of, card = days[slot // len(lam)], slot % len(lam)
    seconds = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(card)).astype(np.int64)
    keep = (seconds > 0) & (seconds < SECONDS_PER_DAY)
    day_of, card, seconds = day_of[keep], card[keep], seconds[keep]
    mean = table["mean_amount"].to_numpy()[card]
    amount = rng.normal(mean, mean / 2)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    pick = np.floor(rng.random(len(card)) * reach[card]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(reach)])
    reachable = np.concatenate([*profiles.available, np.zeros(0, dtype=np.int64)])
    terminal = reachable[offsets[card] + pick]
    amount = np.round(amount, 2)
    fraud = np.zeros(len(card), dtype=np.int64)
    scenario = np.zeros(len(card), dtype=np.int64)
    big = amount > FRAUD_AMOUNT
    fraud[big], scenario[big] = 1, 1
    covered = compromised_terminal_days(profiles, config, config.n_days - 1)
    hit = covered[terminal, day_of]
    fraud[hit], scenario[hit] = 1, 2
    return _rows(config, day_of, seconds, card, terminal, amount, fraud, scenario)


def _ring(ring: FraudRing, config: SimulationConfig) -> pd.DataFrame:
    """The ring's night-time card tests: small amounts, all fraud."""
    terminals = ring_terminals(ring, config)
    rng = np.random.default_rng(ring.seed + 1)  # independent of the terminals' draw
    end = config.n_days if ring.end_day is None else min(ring.end_day, config.n_days)
    days = np.arange(max(0, ring.start_day), end)
    day_of = np.repeat(days, rng.poisson(ring.tx_per_day, size=len(days)))
    n = len(day_of)
    seconds = rng.integers(0, ring.night_end_hour * 3600, size=n)
    card = rng.integers(config.n_customers, size=n)
    terminal = terminals[rng.integers(len(terminals), size=n)]
    amount = np.round(rng.uniform(ring.min_amount, ring.max_amount, size=n), 2)
    ones = np.ones(n, dtype=np.int64)
    return _rows(config, day_of, seconds, card, terminal, amount, ones, ones * FRAUD_RING_SCENARIO)


def _rows(
    config: SimulationConfig,
    day: Array,
    seconds: Array,
    card: Array,
    terminal: Array,
    amount: Array,
    fraud: Array,
    scenario: Array,
) -> pd.DataFrame:
    total = day.astype(np.int64) * SECONDS_PER_DAY + seconds.astype(np.int64)
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.zeros(len(total), dtype=np.int64),
            "TX_DATETIME": np.datetime64(config.start_date, "ns") + total.astype("timedelta64[s]"),
            "CUSTOMER_ID": card.astype(np.int64),
            "TERMINAL_ID": terminal.astype(np.int64),
            "TX_AMOUNT": amount.astype(np.float64),
            "TX_TIME_SECONDS": total,
            "TX_TIME_DAYS": day.astype(np.int64),
            "TX_FRAUD": fraud.astype(np.int64),
            "TX_FRAUD_SCENARIO": scenario.astype(np.int64),
        }
    )


def _merge(frame: pd.DataFrame, added: list[pd.DataFrame]) -> pd.DataFrame:
    """Append rows, sort by time (stably: existing rows first in a tie), renumber the ids."""
    merged = pd.concat([frame, *added], ignore_index=True)
    order = np.argsort(merged["TX_TIME_SECONDS"].to_numpy(), kind="stable")
    merged = merged.iloc[order].reset_index(drop=True)
    merged["TRANSACTION_ID"] = np.arange(len(merged), dtype=np.int64)
    return merged
