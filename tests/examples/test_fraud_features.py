"""Batch and online fraud features agree exactly, and match the handbook's pandas definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelloop.examples.fraud.features import (
    ENGINEERED,
    FEATURES,
    OnlineFeatures,
    add_features,
)
from modelloop.examples.fraud.simulator import SimulationConfig, simulate

STREAM = SimulationConfig(n_customers=150, n_terminals=400, n_days=90)


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    return simulate(STREAM)


@pytest.fixture(scope="module")
def batch(stream: pd.DataFrame) -> pd.DataFrame:
    return add_features(stream)


def test_feature_list_is_the_books() -> None:
    assert len(ENGINEERED) == 14
    assert FEATURES[:3] == ["TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT"]
    assert FEATURES[3:5] == ["CUSTOMER_ID_NB_TX_1DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"]
    assert FEATURES[-2:] == ["TERMINAL_ID_NB_TX_30DAY_WINDOW", "TERMINAL_ID_RISK_30DAY_WINDOW"]


def _book_customer(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.set_index("TX_DATETIME")
    out = {}
    for n in (1, 7, 30):
        total = rows["TX_AMOUNT"].rolling(f"{n}D").sum()
        count = rows["TX_AMOUNT"].rolling(f"{n}D").count()
        out[f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW"] = count.to_numpy()
        out[f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW"] = (total / count).to_numpy()
    return pd.DataFrame(out, index=rows["TRANSACTION_ID"])


def _book_terminal(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.set_index("TX_DATETIME")
    frauds_delay = rows["TX_FRAUD"].rolling("7D").sum()
    count_delay = rows["TX_FRAUD"].rolling("7D").count()
    out = {}
    for n in (1, 7, 30):
        count = rows["TX_FRAUD"].rolling(f"{7 + n}D").count() - count_delay
        frauds = rows["TX_FRAUD"].rolling(f"{7 + n}D").sum() - frauds_delay
        out[f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW"] = count.to_numpy()
        out[f"TERMINAL_ID_RISK_{n}DAY_WINDOW"] = (frauds / count).fillna(0).to_numpy()
    return pd.DataFrame(out, index=rows["TRANSACTION_ID"])


def test_batch_equals_the_books_rolling_windows(stream: pd.DataFrame, batch: pd.DataFrame) -> None:
    indexed = batch.set_index("TRANSACTION_ID")
    for _, rows in stream.groupby("CUSTOMER_ID"):
        book = _book_customer(rows)
        np.testing.assert_allclose(indexed.loc[book.index, book.columns], book, atol=1e-9)
    for _, rows in stream.groupby("TERMINAL_ID"):
        book = _book_terminal(rows)
        np.testing.assert_allclose(indexed.loc[book.index, book.columns], book, atol=1e-9)
    when = stream["TX_DATETIME"]
    assert (batch["TX_DURING_WEEKEND"] == (when.dt.day_of_week >= 5)).all()
    assert (batch["TX_DURING_NIGHT"] == (when.dt.hour <= 6)).all()


def test_online_equals_batch_with_labels_fed_as_they_arrive(
    stream: pd.DataFrame, batch: pd.DataFrame
) -> None:
    online = OnlineFeatures()
    times = stream["TX_DATETIME"].tolist()
    terminals = stream["TERMINAL_ID"].tolist()
    frauds = stream["TX_FRAUD"].tolist()
    delay = pd.Timedelta(days=7)
    labelled = 0
    rows = []
    peak = 0
    for when, card, terminal, amount in zip(
        times, stream["CUSTOMER_ID"].tolist(), terminals, stream["TX_AMOUNT"].tolist(), strict=True
    ):
        while labelled < len(times) and times[labelled] <= when - delay:  # arrived by now
            online.add_label(terminals[labelled], times[labelled], frauds[labelled])
            labelled += 1
        rows.append(online.features(card, terminal, amount, when))
        peak = max(peak, online.state_size())
    assert len(rows) > 5_000
    got = pd.DataFrame(rows)[FEATURES].to_numpy()
    # Bit for bit: a model's split can fall between two roundings of the same average.
    np.testing.assert_array_equal(got, batch[FEATURES].to_numpy(dtype=np.float64))
    assert batch["TERMINAL_ID_RISK_7DAY_WINDOW"].gt(0).sum() > 100  # the labels mattered
    # bounded: cards keep 30 days, terminals 37 (+ up to a day until the daily sweep)
    end = times[-1]
    recent = stream[stream["TX_DATETIME"] > end - pd.Timedelta(days=38)]
    bound = (stream["TX_DATETIME"] > end - pd.Timedelta(days=31)).sum() + 2 * len(recent)
    assert online.state_size() <= bound
    assert online.state_size() < len(stream)  # unbounded would be twice the stream
    busiest = stream.set_index("TX_DATETIME")["TX_FRAUD"].rolling("38D").count().max()
    assert peak <= 3 * busiest


def test_online_uses_only_labels_that_arrived() -> None:
    online = OnlineFeatures()
    start = pd.Timestamp("2018-04-01 12:00")
    online.features(1, 7, 10.0, start)  # will turn out to be fraud
    online.features(2, 7, 10.0, start + pd.Timedelta(days=1))
    online.add_label(7, start, fraud=True)  # known early, yet the windows end 7 days back
    early = online.features(3, 7, 10.0, start + pd.Timedelta(days=3))
    assert early["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 0
    assert early["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0

    unlabelled = OnlineFeatures()
    unlabelled.features(1, 7, 10.0, start)
    unlabelled.features(2, 7, 10.0, start + pd.Timedelta(days=1))
    week_later = start + pd.Timedelta(days=8, hours=1)
    before = unlabelled.features(4, 7, 10.0, week_later)
    assert before["TERMINAL_ID_NB_TX_7DAY_WINDOW"] == 2
    assert before["TERMINAL_ID_RISK_7DAY_WINDOW"] == 0  # no label has arrived yet
    unlabelled.add_label(7, start, fraud=True)
    after = unlabelled.features(5, 7, 10.0, week_later + pd.Timedelta(minutes=1))
    assert after["TERMINAL_ID_RISK_7DAY_WINDOW"] == pytest.approx(0.5)
    assert after["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1


def test_online_without_labels_sees_no_risk(stream: pd.DataFrame) -> None:
    online = OnlineFeatures()
    head = stream.head(3_000)
    risks = [
        online.features(c, t, a, w)["TERMINAL_ID_RISK_30DAY_WINDOW"]
        for c, t, a, w in zip(
            head["CUSTOMER_ID"],
            head["TERMINAL_ID"],
            head["TX_AMOUNT"],
            head["TX_DATETIME"],
            strict=True,
        )
    ]
    assert max(risks) == 0.0


def test_baseline_pipeline_runs_on_a_small_config(home: Path) -> None:
    from modelloop.examples.fraud.baseline import pipeline
    from modelloop.tracking.fluent import search_runs

    params = {
        "n_customers": 300,
        "n_terminals": 800,
        "n_days": 40,
        "cache_dir": str(home / "sim"),
        "train_start": "2018-04-10",
    }
    result = pipeline.run(params=params, experiment="fraud-baseline")
    assert result.status == "FINISHED", {s.name: s.error for s in result.steps.values()}
    scores = result.value("evaluate")
    assert {"Logistic regression", "XGBoost", "LightGBM"} <= set(scores)
    for metrics in scores.values():
        assert 0.0 <= metrics["card_precision_at_100"] <= 1.0
        assert 0.4 <= metrics["auc_roc"] <= 1.0
    runs = search_runs("fraud-baseline", filter="name = 'Random forest'")
    assert len(runs) == 1
    assert runs["metrics.auc_roc"].iloc[0] == scores["Random forest"]["auc_roc"]
