"""The fraud simulator reproduces the handbook's dataset; the drift scenarios do what they claim."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelloop.examples.fraud.scenarios import (
    FRAUD_RING_SCENARIO,
    BehaviourShift,
    Drift,
    FraudRing,
    VolumeSurge,
    apply_drift,
    ring_terminals,
    shifted_customers,
)
from modelloop.examples.fraud.simulator import (
    COLUMNS,
    SimulationConfig,
    generate_transactions,
    make_profiles,
    simulate,
)

SMALL = SimulationConfig(n_customers=500, n_terminals=1_000, n_days=60)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(SMALL)


def _book_transactions(config: SimulationConfig) -> pd.DataFrame:
    """The handbook's per-call generator, verbatim in spirit: the stream our replay must match."""
    np.random.seed(config.customer_seed)
    customers = []
    for cid in range(config.n_customers):
        x, y = np.random.uniform(0, 100), np.random.uniform(0, 100)
        customers.append((cid, x, y, np.random.uniform(5, 100), np.random.uniform(0, 4)))
    np.random.seed(config.terminal_seed)
    terminals = np.array(
        [[np.random.uniform(0, 100), np.random.uniform(0, 100)] for _ in range(config.n_terminals)]
    )
    rows = []
    for cid, x, y, mean, lam in customers:
        distance = np.sqrt(np.sum(np.square(np.array([x, y]) - terminals), axis=1))
        available = list(np.where(distance < config.radius)[0])
        random.seed(cid)
        np.random.seed(cid)
        for day in range(config.n_days):
            for _ in range(np.random.poisson(lam)):
                t = int(np.random.normal(86400 / 2, 20000))
                if 0 < t < 86400:
                    amount = np.random.normal(mean, mean / 2)
                    if amount < 0:
                        amount = np.random.uniform(0, mean * 2)
                    amount = np.round(amount, decimals=2)
                    if available:
                        rows.append((t + day * 86400, day, cid, random.choice(available), amount))
    frame = pd.DataFrame(
        rows, columns=["TX_TIME_SECONDS", "TX_TIME_DAYS", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]
    )
    return frame.sort_values("TX_TIME_SECONDS", kind="stable").reset_index(drop=True)


def test_replayed_streams_equal_the_books_per_call_draws() -> None:
    config = SimulationConfig(n_customers=60, n_terminals=400, n_days=30)
    ours = generate_transactions(config, make_profiles(config))
    book = _book_transactions(config)
    assert len(ours) == len(book) > 1_000
    for column in book.columns:
        np.testing.assert_array_equal(ours[column].to_numpy(), book[column].to_numpy())


def test_small_config_shape_and_ratios(small: pd.DataFrame) -> None:
    assert list(small.columns) == COLUMNS
    assert small["TRANSACTION_ID"].tolist() == list(range(len(small)))
    assert small["TX_DATETIME"].is_monotonic_increasing
    assert small["TX_TIME_DAYS"].between(0, 59).all()
    seconds = (small["TX_DATETIME"] - pd.Timestamp("2018-04-01")).dt.total_seconds()
    assert (seconds == small["TX_TIME_SECONDS"]).all()
    assert (small["TX_TIME_SECONDS"] // 86_400 == small["TX_TIME_DAYS"]).all()
    per_card_day = len(small) / (SMALL.n_customers * SMALL.n_days)
    assert 1.6 < per_card_day < 2.1  # mean of U(0, 4), minus times drawn outside the day
    assert (small["TX_AMOUNT"] >= 0).all()
    assert ((small["TX_FRAUD"] == 1) == (small["TX_FRAUD_SCENARIO"] > 0)).all()
    first = small[small["TX_FRAUD_SCENARIO"] == 1]
    assert (first["TX_AMOUNT"] > 220).all()
    assert set(small["TX_FRAUD_SCENARIO"].unique()) == {0, 1, 2, 3}


def test_deterministic_and_cached(tmp_path: Path, small: pd.DataFrame) -> None:
    again = simulate(SMALL, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(again, small)
    files = list(tmp_path.glob("*.parquet"))
    assert [f.name for f in files] == [f"fraud-transactions-{SMALL.digest()}.parquet"]
    pd.testing.assert_frame_equal(simulate(SMALL, cache_dir=tmp_path), small)
    other = SimulationConfig(n_customers=500, n_terminals=1_000, n_days=60, customer_seed=5)
    assert other.digest() != SMALL.digest()


@pytest.mark.slow
def test_reference_dataset_has_the_published_counts() -> None:
    frame = simulate()
    assert len(frame) == 1_754_155
    assert int(frame["TX_FRAUD"].sum()) == 14_681
    counts = frame["TX_FRAUD_SCENARIO"].value_counts()
    assert (counts[1], counts[2], counts[3]) == (973, 9_077, 4_631)


def test_fraud_ring_adds_small_night_frauds_at_its_terminals_from_its_day(
    small: pd.DataFrame,
) -> None:
    ring = FraudRing(start_day=40, n_terminals=8, tx_per_day=30)
    drifted = apply_drift(small, Drift(fraud_ring=ring, config=SMALL))
    new = drifted[drifted["TX_FRAUD_SCENARIO"] == FRAUD_RING_SCENARIO]
    assert 20 * 30 * 0.8 < len(new) < 20 * 30 * 1.2
    assert (new["TX_FRAUD"] == 1).all()
    assert (new["TX_TIME_DAYS"] >= 40).all()
    assert (new["TX_DATETIME"].dt.hour < 6).all()
    assert new["TX_AMOUNT"].between(1, 20).all()
    assert set(new["TERMINAL_ID"]) <= set(ring_terminals(ring, SMALL).tolist())
    # the rest is untouched, and ids still follow time
    kept = drifted[drifted["TX_FRAUD_SCENARIO"] != FRAUD_RING_SCENARIO]
    columns = [c for c in COLUMNS if c != "TRANSACTION_ID"]
    pd.testing.assert_frame_equal(
        kept[columns].reset_index(drop=True), small[columns].reset_index(drop=True)
    )
    assert drifted["TRANSACTION_ID"].tolist() == list(range(len(drifted)))
    assert drifted["TX_DATETIME"].is_monotonic_increasing
    before = small[(small["TX_AMOUNT"] <= 20) & (small["TX_DATETIME"].dt.hour < 6)]
    assert before["TX_FRAUD"].mean() < new["TX_FRAUD"].mean()


def test_behaviour_shift_raises_amounts_and_keeps_labels(small: pd.DataFrame) -> None:
    shift = BehaviourShift(start_day=30, share=0.3, factor=1.5)
    drifted = apply_drift(small, Drift(behaviour_shift=shift, config=SMALL))
    pd.testing.assert_series_equal(drifted["TX_FRAUD"], small["TX_FRAUD"])
    pd.testing.assert_series_equal(drifted["TX_FRAUD_SCENARIO"], small["TX_FRAUD_SCENARIO"])
    cards = shifted_customers(shift, SMALL)
    assert len(cards) == 150
    moved = small["CUSTOMER_ID"].isin(cards) & (small["TX_TIME_DAYS"] >= 30)
    moved &= small["TX_FRAUD"] == 0
    np.testing.assert_allclose(
        drifted.loc[moved, "TX_AMOUNT"], small.loc[moved, "TX_AMOUNT"] * 1.5, atol=0.006
    )
    pd.testing.assert_series_equal(drifted.loc[~moved, "TX_AMOUNT"], small.loc[~moved, "TX_AMOUNT"])
    assert drifted.loc[moved, "TX_AMOUNT"].mean() > 1.4 * small.loc[moved, "TX_AMOUNT"].mean()


def test_volume_surge_multiplies_daily_volume_over_its_period_only(small: pd.DataFrame) -> None:
    surge = VolumeSurge(start_day=20, end_day=40, factor=1.5)
    drifted = apply_drift(small, Drift(volume_surge=surge, config=SMALL))
    before, after = small.groupby("TX_TIME_DAYS").size(), drifted.groupby("TX_TIME_DAYS").size()
    assert 1.4 < after[20:40].sum() / before[20:40].sum() < 1.6
    assert (after[:20] == before[:20]).all()
    assert (after[40:] == before[40:]).all()
    rate_before = small.loc[small["TX_TIME_DAYS"].between(20, 39), "TX_FRAUD"].mean()
    rate_after = drifted.loc[drifted["TX_TIME_DAYS"].between(20, 39), "TX_FRAUD"].mean()
    assert abs(rate_after - rate_before) < 0.3 * rate_before  # the book's rules still label
    assert drifted["TRANSACTION_ID"].tolist() == list(range(len(drifted)))
    assert drifted["TX_DATETIME"].is_monotonic_increasing


def test_scenarios_are_seeded(small: pd.DataFrame) -> None:
    drift = Drift(
        volume_surge=VolumeSurge(10, 20),
        behaviour_shift=BehaviourShift(15),
        fraud_ring=FraudRing(25),
        config=SMALL,
    )
    pd.testing.assert_frame_equal(apply_drift(small, drift), apply_drift(small, drift))
    assert apply_drift(small, Drift(config=SMALL)).equals(small)
