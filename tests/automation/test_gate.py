"""The champion/challenger gate with real LightGBM models in a real registry: it promotes a
clearly better challenger, rejects a worse one and one better only by noise, its paired
bootstrap equals a slow scikit-learn loop, budgets reject, decisions are audited, and the CLI
exits 0/1/2 for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import modelloop as ml
from modelloop.automation import (
    GateOptions,
    ModelCost,
    decide,
    evaluate_gate,
    paired_bootstrap,
    paired_bootstraps,
)
from modelloop.automation.holdout import holdout_days
from modelloop.errors import InvalidArgument, InvalidInput, NotFound
from modelloop.monitoring.performance import card_precision_at_k, precision_at_k
from modelloop.settings import load_settings
from modelloop.store import close_database
from modelloop.tracking import fluent
from tests.cli_helpers import invoke

FEATURES = [f"f{i}" for i in range(6)]


def _data(rows: int, seed: int) -> pd.DataFrame:
    """About 12% positives; f0..f3 carry the signal, f4 and f5 are noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    logit = 1.6 * frame.f0 - 1.2 * frame.f1 + np.sin(2 * frame.f2) + 0.8 * frame.f3 * frame.f0
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-(logit - 2.8)))).astype("int64")
    return frame


@dataclass
class Registered:
    home: Path
    holdout: pd.DataFrame
    full: int  # all features: the champion
    weak: int  # f0 only
    shuffled: int  # trained on shuffled labels: worse than anything
    twins: tuple[int, int]  # same algorithm and data as full, other bagging seeds


def _fit(train: pd.DataFrame, features: list[str], seed: int, label: Any = None) -> Any:
    import lightgbm as lgb

    model = lgb.LGBMClassifier(
        n_estimators=60,
        num_leaves=15,
        learning_rate=0.1,
        subsample=0.7,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    return model.fit(train[features], train["label"] if label is None else label)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    """One registry for the module (training is the slow part): five versions of
    fraud-detector, version 1 aliased champion."""
    home = tmp_path_factory.mktemp("gate") / "home"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI"):
            mp.delenv(name, raising=False)
        mp.setenv("MODELLOOP_HOME", str(home))
        mp.setenv("MODELLOOP_USER", "ci")
        mp.chdir(home.parent)
        train, holdout = _data(4000, seed=1), _data(4000, seed=2)
        shuffled = np.random.default_rng(3).permutation(train["label"].to_numpy())
        models = [
            _fit(train, FEATURES, seed=0),
            _fit(train, ["f0"], seed=0),
            _fit(train, FEATURES, seed=0, label=shuffled),
            _fit(train, FEATURES, seed=11),
            _fit(train, FEATURES, seed=12),
        ]
        versions = []
        with ml.start_run(experiment="fraud") as run:
            for i, model in enumerate(models):
                data = train[list(model.feature_name_)]
                versions.append(
                    ml.register_model(
                        run, "fraud-detector", model, artifact_path=f"model-{i}", training_data=data
                    )
                )
        ml.set_alias("fraud-detector", "staging", 1, reason="baseline")
        yield Registered(
            home,
            holdout,
            versions[0].version,
            versions[1].version,
            versions[2].version,
            (versions[3].version, versions[4].version),
        )
        fluent.close_clients()
        close_database(load_settings().database_url)


def _uri(version: int) -> str:
    return f"fraud-detector/{version}"


def _gate(
    challenger: int,
    champion: int,
    holdout: pd.DataFrame,
    options: GateOptions | None = None,
    **call: Any,
) -> Any:
    return evaluate_gate(
        _uri(challenger), _uri(champion), holdout, options or GateOptions(), **call
    )


# -- decisions -----------------------------------------------------------------------------------


def test_a_clearly_better_challenger_is_promoted(registered: Registered) -> None:
    holdout = registered.holdout
    result = _gate(registered.full, registered.weak, holdout, record=False)
    assert result.decision == "promote", result.summary()
    assert result.promoted
    assert result.reasons == []
    scores = ml.load_model(f"models:/{_uri(registered.full)}").predict(holdout)
    assert result.challenger.value == pytest.approx(
        average_precision_score(holdout["label"], scores), abs=1e-12
    )
    assert result.difference == pytest.approx(result.challenger.value - result.champion.value)
    assert 0 < result.ci_low < result.difference < result.ci_high
    assert (result.n_rows, result.n_positive) == (len(holdout), int(holdout["label"].sum()))
    assert result.n_bootstrap == 1000
    assert result.n_undefined == 0
    assert [c.name for c in result.checks] == ["metric"]
    assert "above the margin +0.0000" in result.checks[0].detail
    for side in (result.challenger, result.champion):
        assert side.latency_ms > 0
        assert side.batch_latency_ms > 0
        assert side.size_bytes > 1000
    assert result.audit_seq is None


def test_a_deliberately_worse_challenger_is_rejected_with_the_reason(
    registered: Registered,
) -> None:
    for worse in (registered.weak, registered.shuffled):
        result = _gate(worse, registered.full, registered.holdout, record=False)
        assert result.decision == "reject"
        assert result.ci_high < 0, result.summary()
        assert len(result.reasons) == 1
        reason = result.reasons[0]
        assert reason.startswith("lower bound of the 95% interval of the AP difference is -0.")
        assert reason.endswith("not above the margin +0.0000")


def test_a_challenger_better_only_by_noise_is_rejected(registered: Registered) -> None:
    """Same algorithm and data, another seed: whichever twin scores higher on the holdout is
    still rejected, because the paired interval of the difference contains 0."""
    a, b = registered.twins
    first = _gate(a, b, registered.holdout, record=False)
    challenger, champion = (a, b) if first.difference > 0 else (b, a)
    result = _gate(challenger, champion, registered.holdout, record=False)
    assert result.challenger.value > result.champion.value  # better, on this sample
    assert result.ci_low < 0 < result.ci_high
    assert result.decision == "reject"
    assert "not above the margin" in result.reasons[0]


def test_the_champion_itself_is_not_better_than_itself(registered: Registered) -> None:
    result = evaluate_gate(
        "fraud-detector@staging", _uri(registered.full), registered.holdout, record=False
    )
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.decision == "reject"
    assert result.challenger.requested == "models:/fraud-detector@staging"
    assert result.challenger.uri == f"models:/fraud-detector/{registered.full}"
    # A negative margin states how much worse is acceptable: identical models pass it.
    tolerant = _gate(
        registered.full,
        registered.full,
        registered.holdout,
        GateOptions(margin=-0.01),
        record=False,
    )
    assert tolerant.decision == "promote", tolerant.summary()
    assert tolerant.ci_low == 0.0 > -0.01


def test_a_margin_demands_more_than_being_better(registered: Registered) -> None:
    better = _gate(registered.full, registered.weak, registered.holdout, record=False)
    demanding = _gate(
        registered.full,
        registered.weak,
        registered.holdout,
        GateOptions(margin=better.ci_low + 0.001),
        record=False,
    )
    assert demanding.decision == "reject"
    assert (demanding.ci_low, demanding.ci_high) == (better.ci_low, better.ci_high)


@pytest.mark.parametrize("metric", ["auc", "p@k"])
def test_other_metrics(registered: Registered, metric: str) -> None:
    options = GateOptions(metric=metric, k=200)
    better = _gate(registered.full, registered.weak, registered.holdout, options, record=False)
    assert better.decision == "promote", better.summary()
    worse = _gate(registered.shuffled, registered.full, registered.holdout, options, record=False)
    assert worse.decision == "reject"
    label = {"auc": "AUC", "p@k": "precision@200"}[metric]
    assert f"interval of the {label} difference" in worse.reasons[0]


def test_decide_reaches_the_gates_decision_from_scores_already_computed(
    registered: Registered,
) -> None:
    """What a replay does: no model scored by the gate, the same scores, the same decision."""
    holdout, options = registered.holdout, GateOptions(max_latency_ratio=1000)
    gated = _gate(registered.full, registered.weak, holdout, options, record=False)
    scores = [
        ml.load_model(f"models:/{_uri(v)}").predict(holdout)
        for v in (registered.full, registered.weak)
    ]
    challenger, champion = (
        ModelCost(**{k: v for k, v in asdict(side).items() if k != "value"})
        for side in (gated.challenger, gated.champion)
    )
    decided = decide(
        holdout["label"],
        scores[1],
        scores[0],
        options,
        challenger=challenger,
        champion=champion,
        data_digest=gated.data_digest,
    )
    assert decided.decision == "promote"
    expected = {k: v for k, v in gated.to_dict().items() if k != "seconds"}
    assert {k: v for k, v in decided.to_dict().items() if k != "seconds"} == expected


# -- the bootstrap -------------------------------------------------------------------------------


def _reference(y: Any, a: Any, b: Any, metric: str, n_bootstrap: int, seed: int) -> Any:
    """The slow definition: resample the rows, score both models with scikit-learn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(y), size=len(y))
        yy = y[idx]
        if metric == "average_precision":
            out.append([average_precision_score(yy, s[idx]) for s in (a, b)])
        elif metric == "auc_roc":
            out.append([roc_auc_score(yy, s[idx]) for s in (a, b)])
        else:
            out.append([precision_at_k(yy, s[idx], k=50, keys=idx) for s in (a, b)])
    return np.array(out)


@pytest.mark.parametrize("metric", ["average_precision", "auc_roc", "precision_at_k"])
def test_the_paired_bootstrap_equals_a_slow_reference(registered: Registered, metric: str) -> None:
    holdout = registered.holdout.iloc[:1500]
    y = holdout["label"].to_numpy(dtype=float)
    champion = ml.load_model(f"models:/{_uri(registered.full)}").predict(holdout)
    weak = ml.load_model(f"models:/{_uri(registered.weak)}").predict(holdout)
    challenger = np.round(weak, 2)  # many ties
    boot = paired_bootstrap(y, champion, challenger, metric=metric, k=50, n_bootstrap=200, seed=5)
    expected = _reference(y, champion, challenger, metric, 200, seed=5)
    np.testing.assert_allclose(boot.champion, expected[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(boot.challenger, expected[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(boot.differences, expected[:, 1] - expected[:, 0], atol=1e-9)
    assert boot.n_undefined == 0

    result = evaluate_gate(
        _uri(registered.weak),
        _uri(registered.full),
        holdout,
        GateOptions(metric=metric, k=50, n_bootstrap=200, seed=5),
        record=False,
    )
    unrounded = _reference(
        y,
        champion,
        weak,
        metric,
        200,
        seed=5,
    )
    low, high = np.quantile(unrounded[:, 1] - unrounded[:, 0], [0.025, 0.975])
    assert result.ci_low == pytest.approx(low, abs=1e-9)
    assert result.ci_high == pytest.approx(high, abs=1e-9)


def test_resamples_without_a_positive_are_dropped_and_counted() -> None:
    y = np.zeros(40)
    y[0] = 1.0  # one positive: a resample misses it about a third of the time
    scores = np.linspace(0, 1, 40)
    boot = paired_bootstrap(y, scores, scores[::-1], n_bootstrap=300, seed=0)
    assert 50 < boot.n_undefined < 160
    assert len(boot.differences) == 300 - boot.n_undefined
    assert not np.isnan(boot.differences).any()
    assert (boot.champion_value, boot.challenger_value) == (0.025, 1.0)


def test_few_positives_fail_the_bootstrap_check(registered: Registered) -> None:
    holdout = registered.holdout
    tiny = pd.concat([holdout[holdout.label == 1].iloc[:1], holdout[holdout.label == 0].iloc[:30]])
    result = _gate(registered.full, registered.weak, tiny, GateOptions(margin=-1.0), record=False)
    assert result.decision == "reject"
    assert any("too few positives" in r for r in result.reasons)


def test_thirty_thousand_rows_two_thousand_cards_a_thousand_resamples() -> None:
    frame = _cards(30_000, 2000, 30, seed=2)
    boots = paired_bootstraps(
        frame["label"],
        frame["champion"],
        frame["challenger"],
        metrics=("cp@k", "amount@k"),
        groups=frame["card"],
        days=frame["day"],
        amounts=frame["amount"],
    )
    for boot in boots.values():
        assert boot.differences.size == 1000
        assert boot.n_undefined == 0
    cp = boots["card_precision_at_k"]
    assert (cp.differences > 0).mean() > 0.9  # the challenger is better


def test_fifty_thousand_rows_a_thousand_resamples() -> None:
    """At scale, the point values are the full sample's AP and the clearly better scorer wins on
    every resample."""
    rng = np.random.default_rng(0)
    y = (rng.random(50_000) < 0.05).astype(float)
    champion, challenger = 0.5 * y + rng.random(50_000), 0.8 * y + rng.random(50_000)
    boot = paired_bootstrap(y, champion, challenger)
    assert boot.differences.size == 1000
    assert boot.n_undefined == 0
    assert boot.champion_value == pytest.approx(average_precision_score(y, champion), abs=1e-12)
    assert boot.challenger_value == pytest.approx(average_precision_score(y, challenger), abs=1e-12)
    np.testing.assert_allclose(boot.differences, boot.challenger - boot.champion, atol=1e-12)
    assert boot.differences.min() > 0
    assert boot.differences.mean() == pytest.approx(
        boot.challenger_value - boot.champion_value, abs=0.01
    )


# -- card metrics: card precision@k and the fraud amount caught ------------------------------------


def _cards(rows: int, cards: int, days: int, seed: int, compromised: float = 0.1) -> pd.DataFrame:
    """Transactions of ``cards`` cards over ``days`` days (string dates, unsorted rows); a
    ``compromised`` share of the cards has half of its transactions fraudulent. Scores are
    rounded to one decimal: ties between cards everywhere."""
    rng = np.random.default_rng(seed)
    card = rng.integers(0, cards, size=rows) * 7 + 3  # ids sort differently from codes
    stolen = rng.random(cards * 7 + 3) < compromised
    label = ((rng.random(rows) < 0.5) & stolen[card]).astype(float)
    return pd.DataFrame(
        {
            "card": card,
            "day": [f"2024-03-{d:02d}" for d in rng.integers(1, days + 1, size=rows)],
            "amount": rng.gamma(2.0, 30.0, size=rows).round(2),
            "label": label,
            "champion": np.round(0.5 * label + rng.random(rows), 1),
            "challenger": np.round(0.8 * label + rng.random(rows), 1),
        }
    )


def _card_reference(frame: pd.DataFrame, k: int, n_bootstrap: int, seed: int) -> Any:
    """The slow definition: draw cards with replacement, materialise every copy with all its
    rows (a new id per copy, ranked after the original card id), then each day rank the copies
    by their max score, count the frauds and the fraud amount of the top k, and block the copies
    caught. Returns (n_bootstrap, 4): CP@k and the amount for the champion, then the challenger."""
    rng = np.random.default_rng(seed)
    ids = np.unique(frame["card"])
    rows_of = {card: rows.index.to_numpy() for card, rows in frame.groupby("card")}
    days = sorted(frame["day"].unique())
    out = []
    for _ in range(n_bootstrap):
        drawn = rng.integers(0, len(ids), size=len(ids))
        resampled = pd.concat(
            [
                frame.loc[rows_of[ids[position]]].assign(copy=position * len(ids) + copy)
                for position in np.unique(drawn)  # copies of a card rank together
                for copy in range(int((drawn == position).sum()))
            ],
            ignore_index=True,
        )
        resampled["fraud"] = resampled["amount"].where(resampled["label"] == 1, 0.0)
        values = []
        for side in ("champion", "challenger"):
            blocked: set[int] = set()
            daily, money = [], 0.0
            for day in days:
                today = resampled[resampled["day"] == day]
                per_copy = today.groupby("copy").agg(
                    score=(side, "max"), label=("label", "max"), fraud=("fraud", "sum")
                )
                per_copy = per_copy[~per_copy.index.isin(blocked)].reset_index()
                ranked = per_copy.sort_values(["score", "copy"], ascending=[False, True])
                top = ranked.head(k)
                daily.append(top["label"].sum() / k)
                money += float(top["fraud"].sum())
                blocked |= set(top.loc[top["label"] == 1, "copy"])
            values += [float(np.mean(daily)), money]
        out.append(values)
    return np.array(out)


def test_card_precision_equals_the_monitors_on_the_same_rows() -> None:
    """The gate's point value is the monitor's card_precision_at_k, ties and blocked cards
    included; shuffling the rows changes nothing."""
    frame = _cards(3000, 400, 7, seed=0)
    boot = paired_bootstrap(
        frame["label"],
        frame["champion"],
        frame["challenger"],
        metric="cp@k",
        k=25,
        n_bootstrap=100,
        groups=frame["card"],
        days=frame["day"],
    )
    for side, value in (("champion", boot.champion_value), ("challenger", boot.challenger_value)):
        monitor = frame.rename(columns={"card": "entity", side: "score"})
        expected, daily = card_precision_at_k(monitor, k=25)
        assert len(daily) == 7
        assert value == pytest.approx(expected, abs=1e-12)
    shuffled = frame.sample(frac=1.0, random_state=1)
    again = paired_bootstrap(
        shuffled["label"],
        shuffled["champion"],
        shuffled["challenger"],
        metric="cp@k",
        k=25,
        n_bootstrap=100,
        groups=shuffled["card"].to_numpy(),
        days=shuffled["day"].tolist(),
    )
    assert again.challenger_value == pytest.approx(boot.challenger_value, abs=1e-12)


def test_fraud_amount_worked_example() -> None:
    """k = 1 card a day. Day 1: card 10 (score 0.9, frauds of 5 + 7) beats card 20 (0.8):
    12 caught, card 10 blocked. Day 2: card 10 (0.95) is blocked, so card 20 (0.7, fraud 30)
    is the alert: 30 caught. Total 42; CP@1 = (1 + 1) / 2."""
    frame = pd.DataFrame(
        {
            "card": [10, 10, 10, 20, 10, 20, 20],
            "day": ["d1", "d1", "d1", "d1", "d2", "d2", "d2"],
            "amount": [5.0, 7.0, 100.0, 9.0, 50.0, 30.0, 1.0],
            "label": [1, 1, 0, 0, 1, 1, 0],
            "score": [0.9, 0.1, 0.2, 0.8, 0.95, 0.7, 0.1],
        }
    )
    boots = paired_bootstraps(
        frame["label"],
        frame["score"],
        frame["score"],
        metrics=("amount@k", "cp@k"),
        k=1,
        n_bootstrap=100,
        groups=frame["card"],
        days=frame["day"],
        amounts=frame["amount"],
    )
    assert boots["fraud_amount_at_k"].champion_value == pytest.approx(42.0)
    assert boots["card_precision_at_k"].champion_value == pytest.approx(1.0)


def test_the_card_bootstrap_equals_a_slow_reference() -> None:
    """Both card metrics on the same card resamples as the materialised reference: copies of a
    card counted with all their rows on every day, a day's top k split between copies (k = 3
    with ties), copies blocked one by one, days without any drawn card counted."""
    frame = _cards(500, 60, 5, seed=3)
    boots = paired_bootstraps(
        frame["label"],
        frame["champion"],
        frame["challenger"],
        metrics=("card_precision_at_k", "fraud_amount_at_k"),
        k=3,
        n_bootstrap=40,
        seed=7,
        groups=frame["card"],
        days=frame["day"],
        amounts=frame["amount"],
    )
    expected = _card_reference(frame, k=3, n_bootstrap=40, seed=7)
    cp, amount = boots["card_precision_at_k"], boots["fraud_amount_at_k"]
    np.testing.assert_allclose(cp.champion, expected[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(amount.champion, expected[:, 1], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(cp.challenger, expected[:, 2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(amount.challenger, expected[:, 3], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(cp.differences, expected[:, 2] - expected[:, 0], atol=1e-12)
    assert cp.n_undefined == amount.n_undefined == 0
    assert len(set(np.round(cp.champion, 9))) > 5  # the resamples differ
    # One metric alone draws the same cards as both together.
    alone = paired_bootstrap(
        frame["label"],
        frame["champion"],
        frame["challenger"],
        metric="amount@k",
        k=3,
        n_bootstrap=40,
        seed=7,
        groups=frame["card"],
        days=frame["day"],
        amounts=frame["amount"],
    )
    np.testing.assert_array_equal(alone.differences, amount.differences)


def test_the_card_bootstrap_equals_the_reference_on_a_larger_holdout() -> None:
    """Many more cards a day than k reaches, and, after a few days, the top of the challenger's
    ranking full of blocked cards: the pass that goes only as deep as k copies reach (deeper
    when needed) agrees with the reference too."""
    frame = _cards(3000, 150, 8, seed=4, compromised=0.6)
    boots = paired_bootstraps(
        frame["label"],
        frame["champion"],
        frame["challenger"],
        metrics=("cp@k", "amount@k"),
        k=10,
        n_bootstrap=6,
        seed=1,
        groups=frame["card"],
        days=frame["day"],
        amounts=frame["amount"],
    )
    expected = _card_reference(frame, k=10, n_bootstrap=6, seed=1)
    np.testing.assert_allclose(boots["card_precision_at_k"].challenger, expected[:, 2], atol=1e-12)
    np.testing.assert_allclose(
        boots["fraud_amount_at_k"].challenger, expected[:, 3], rtol=1e-12, atol=1e-9
    )


def _costs() -> dict[str, ModelCost]:
    return {
        side: ModelCost(
            requested=f"models:/fraud/{version}",
            uri=f"models:/fraud/{version}",
            name="fraud",
            version=version,
            package_digest="0" * 64,
            latency_ms=1.0,
            batch_latency_ms=0.01,
            size_bytes=1000,
        )
        for side, version in (("challenger", 2), ("champion", 1))
    }


def test_a_gate_of_several_metrics_passes_only_when_each_passes() -> None:
    frame = _cards(6000, 800, 7, seed=5)
    inputs = {"groups": frame["card"], "days": frame["day"], "amounts": frame["amount"]}
    scores = (frame["label"], frame["champion"], frame["challenger"])
    options = GateOptions(metrics=("cp@k", "ap", "amount@k"), k=30, n_bootstrap=300)
    result = decide(*scores, options, **_costs(), data_digest="d", **inputs)
    assert result.decision == "promote", result.summary()
    assert [m.metric for m in result.metrics] == [
        "card_precision_at_k",
        "average_precision",
        "fraud_amount_at_k",
    ]
    assert [m.label for m in result.metrics] == ["card precision@30", "AP", "fraud amount@30"]
    assert [m.k for m in result.metrics] == [30, None, 30]
    assert [m.resampled for m in result.metrics] == ["cards", "rows", "cards"]
    for m in result.metrics:
        assert m.passed
        assert m.margin < m.ci_low <= m.difference <= m.ci_high
        assert m.difference == pytest.approx(m.challenger - m.champion)
    primary = result.metrics[0]  # the top-level fields are the first metric's
    assert (result.metric, result.k) == ("card_precision_at_k", 30)
    assert (result.challenger.value, result.champion.value) == (
        primary.challenger,
        primary.champion,
    )
    assert (result.difference, result.ci_low, result.ci_high, result.margin) == (
        primary.difference,
        primary.ci_low,
        primary.ci_high,
        primary.margin,
    )
    assert [(c.name, c.metric) for c in result.checks] == [
        ("metric", "card_precision_at_k"),
        ("metric", "average_precision"),
        ("metric", "fraud_amount_at_k"),
    ]
    assert "fraud amount@30 " in result.summary()
    record = json.loads(json.dumps(result.to_dict()))
    assert [m["metric"] for m in record["metrics"]] == [m.metric for m in result.metrics]

    # A margin per metric: demanding more money than the interval allows rejects, for that
    # reason alone, with the other metrics' intervals unchanged.
    money = result.metrics[2]
    strict = GateOptions(
        metrics=("cp@k", "ap", "amount@k"), k=30, n_bootstrap=300, margin=(0, 0, money.ci_low + 1)
    )
    rejected = decide(*scores, strict, **_costs(), data_digest="d", **inputs)
    assert rejected.decision == "reject"
    assert [c.passed for c in rejected.checks] == [True, True, False]
    assert rejected.reasons == [
        f"lower bound of the 95% interval of the fraud amount@30 difference is "
        f"{money.ci_low:+.4f}, not above the margin {money.ci_low + 1:+.4f}"
    ]
    assert [(m.ci_low, m.ci_high) for m in rejected.metrics] == [
        (m.ci_low, m.ci_high) for m in result.metrics
    ]
    # The same models the other way round: every metric fails.
    backwards = (frame["label"], frame["challenger"], frame["champion"])
    swapped = decide(*backwards, options, **_costs(), data_digest="d", **inputs)
    assert swapped.decision == "reject"
    assert len(swapped.reasons) == 3


def test_card_metrics_name_what_they_are_missing(registered: Registered) -> None:
    frame = _cards(500, 60, 5, seed=3)
    scores = (frame["label"], frame["champion"], frame["challenger"])
    with pytest.raises(InvalidArgument, match=r"card precision@k needs groups .*missing: groups"):
        decide(*scores, GateOptions(metric="cp@k"), **_costs(), data_digest="d", days=frame.day)
    with pytest.raises(InvalidArgument, match=r"fraud amount@k needs .*missing: amounts$"):
        decide(
            *scores,
            GateOptions(metrics=("ap", "amount@k")),
            **_costs(),
            data_digest="d",
            groups=frame["card"],
            days=frame["day"],
        )
    with pytest.raises(InvalidArgument, match="1 of 500 rows have no value in days"):
        paired_bootstrap(
            *scores, metric="cp@k", groups=frame["card"], days=frame["day"].mask(frame.index == 3)
        )
    holdout = registered.holdout
    with pytest.raises(
        InvalidArgument,
        match=r"card precision@100 needs the holdout's card and day column: name it with "
        r"entity=, day= \(CLI --entity, --day\)",
    ):
        _gate(registered.full, registered.weak, holdout, GateOptions(metric="cp@k"), record=False)
    with pytest.raises(InvalidArgument, match=r"no entity column 'card' .*\(CLI --entity\)$"):
        _gate(
            registered.full,
            registered.weak,
            holdout,
            GateOptions(metric="cp@k"),
            entity="card",
            day="f0",
            record=False,
        )
    with pytest.raises(InvalidArgument, match="Give metric='ap' or metrics"):
        GateOptions(metric="ap", metrics=("cp@k",))
    with pytest.raises(InvalidArgument, match="one per metric"):
        GateOptions(metrics=("cp@k", "ap"), margin=(0.0, 0.0, 0.0))


def test_the_day_column_is_a_utc_date_or_a_number() -> None:
    frame = pd.DataFrame(
        {
            "stamp": pd.to_datetime(["2024-03-01 23:30", "2024-03-02 00:30"]).tz_localize(
                "Europe/Paris"
            ),  # 22:30 and 23:30 UTC on March 1st
            "text": ["2024-03-01", "2024-03-02T00:00:31"],
            "number": [17, 18],
            "word": ["monday", "tuesday"],
        }
    )
    assert holdout_days(frame, "stamp").tolist() == ["2024-03-01", "2024-03-01"]
    assert holdout_days(frame, "text").tolist() == ["2024-03-01", "2024-03-02"]
    assert holdout_days(frame, "number").tolist() == [17, 18]
    with pytest.raises(InvalidArgument, match="neither numbers nor dates"):
        holdout_days(frame, "word")


def _with_cards(holdout: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(9)
    start = pd.Timestamp("2024-03-01", tz="UTC")
    return holdout.assign(
        card=rng.integers(0, 600, size=len(holdout)),
        time=start + pd.to_timedelta(rng.integers(0, 5 * 86400, size=len(holdout)), unit="s"),
        spent=rng.gamma(2.0, 30.0, size=len(holdout)).round(2),
    )


def test_evaluate_gate_with_card_metrics(registered: Registered) -> None:
    holdout = _with_cards(registered.holdout)
    options = GateOptions(metrics=("cp@k", "amount@k"), k=20, n_bootstrap=300)
    columns = {"entity": "card", "day": "time", "amount": "spent"}
    better = _gate(registered.full, registered.weak, holdout, options, record=False, **columns)
    assert better.decision == "promote", better.summary()
    assert [m.metric for m in better.metrics] == ["card_precision_at_k", "fraud_amount_at_k"]
    scores = ml.load_model(f"models:/{_uri(registered.full)}").predict(holdout)
    monitor = pd.DataFrame(
        {
            "day": holdout["time"].dt.strftime("%Y-%m-%d"),
            "entity": holdout["card"],
            "score": scores,
            "label": holdout["label"],
        }
    )
    assert better.challenger.value == pytest.approx(card_precision_at_k(monitor, k=20)[0])
    worse = _gate(registered.shuffled, registered.full, holdout, options, record=False, **columns)
    assert worse.decision == "reject"
    assert "interval of the card precision@20 difference" in worse.reasons[0]
    assert "interval of the fraud amount@20 difference" in worse.reasons[1]
    # The columns the card metrics read are part of what the digest names.
    plain = _gate(registered.full, registered.weak, holdout, record=False)
    assert better.data_digest != plain.data_digest


# -- budgets -------------------------------------------------------------------------------------


def test_budgets_that_fail_reject_a_better_challenger(registered: Registered) -> None:
    holdout = registered.holdout
    result = _gate(
        registered.full,
        registered.weak,
        holdout,
        GateOptions(max_latency_ms=1e-6, max_size_bytes=100, max_latency_ratio=1e-3),
        record=False,
    )
    assert result.decision == "reject"
    failed = {c.name: c.detail for c in result.checks if not c.passed}
    assert set(failed) == {"latency", "latency_ratio", "size"}
    assert "over the budget 1e-06 ms" in failed["latency"]
    assert "over the budget 100 B" in failed["size"]
    assert result.checks[0].passed  # the metric itself was fine
    assert result.budgets == {
        "max_latency_ms": 1e-6,
        "max_latency_ratio": 1e-3,
        "max_size_bytes": 100.0,
    }
    generous = _gate(
        registered.full,
        registered.weak,
        holdout,
        GateOptions(max_latency_ms=1000, max_size_bytes=10**9, max_latency_ratio=1000),
        record=False,
    )
    assert generous.decision == "promote"
    assert [c.passed for c in generous.checks] == [True, True, True, True]


# -- audit ---------------------------------------------------------------------------------------


def test_each_decision_is_an_audit_event_with_its_evidence(registered: Registered) -> None:
    before = len(ml.audit_log())
    rejected = _gate(registered.weak, registered.full, registered.holdout)
    promoted = _gate(registered.full, registered.weak, registered.holdout, reason="CI build 1234")
    events = ml.audit_log("fraud-detector")[-2:]
    assert len(ml.audit_log()) == before + 2
    assert [e.seq for e in events] == [rejected.audit_seq, promoted.audit_seq]
    for event, result in zip(events, (rejected, promoted), strict=True):
        assert event.action == "gate.decision"
        assert event.object_type == "model_version"
        assert event.object_id == f"fraud-detector/{result.challenger.version}"
        assert event.actor == "ci"
        assert event.before is None
        assert event.after is not None
        stored = {k: v for k, v in event.after.items() if k != "audit_seq"}
        expected = json.loads(json.dumps(result.to_dict()))
        assert stored == {k: v for k, v in expected.items() if k != "audit_seq"}
    assert events[0].after["decision"] == "reject"  # type: ignore[index]
    assert events[0].reason == rejected.summary()
    assert events[0].after["reasons"] == rejected.reasons  # type: ignore[index]
    assert events[1].reason == "CI build 1234"
    assert ml.verify_audit().ok
    _gate(registered.full, registered.weak, registered.holdout, record=False)
    assert len(ml.audit_log()) == before + 2


def test_recording_through_a_server_is_refused_before_any_work(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(InvalidArgument, match="record=False"):
        _gate(registered.full, registered.weak, registered.holdout)


# -- inputs --------------------------------------------------------------------------------------


def test_bad_inputs_are_invalid_arguments(registered: Registered) -> None:
    holdout = registered.holdout
    full, weak = registered.full, registered.weak
    with pytest.raises(
        InvalidArgument,
        match=r"no label column 'is_fraud' .*pass the right one with label= \(CLI --label\)$",
    ):
        _gate(full, weak, holdout, label="is_fraud", record=False)
    with pytest.raises(InvalidInput):
        _gate(full, weak, holdout.drop(columns=["f3"]), record=False)
    unlabeled = holdout.astype({"label": "float64"})
    unlabeled.loc[:9, "label"] = np.nan
    with pytest.raises(InvalidArgument, match="10 of 4000 holdout rows have no label"):
        _gate(full, weak, unlabeled, record=False)
    with pytest.raises(InvalidArgument, match="needs more rows of both classes"):
        _gate(full, weak, holdout[holdout.label == 0], record=False)
    with pytest.raises(InvalidArgument, match="Unknown gate metric 'f1'"):
        _gate(full, weak, holdout, GateOptions(metric="f1"), record=False)
    with pytest.raises(InvalidArgument, match="confidence"):
        _gate(full, weak, holdout, GateOptions(confidence=1.5), record=False)
    with pytest.raises(InvalidArgument, match="Invalid model URI"):
        evaluate_gate("fraud detector", _uri(weak), holdout, record=False)
    with pytest.raises(NotFound):
        evaluate_gate("fraud-detector@prod", _uri(weak), holdout, record=False)


def test_importing_the_gate_stays_light() -> None:
    code = (
        "import sys, modelloop.automation.gate; "
        "print(','.join(m for m in ('numpy', 'pandas', 'sqlalchemy', 'lightgbm') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


# -- the command line ----------------------------------------------------------------------------


def _cli(*args: str) -> Any:
    return invoke("gate", *args)


def test_cli_exits_0_to_promote_and_1_to_reject(registered: Registered) -> None:
    path = registered.home.parent / "holdout.parquet"
    registered.holdout.to_parquet(path)
    promote = _cli(
        "--challenger",
        _uri(registered.full),
        "--champion",
        _uri(registered.weak),
        "--data",
        str(path),
        "--metric",
        "ap",
    )
    assert promote.exit_code == 0, promote.output
    assert "✓ lower bound of the 95% interval of the AP difference" in promote.stdout
    assert f"PROMOTE: models:/fraud-detector/{registered.full} may replace" in promote.stdout
    assert "recorded as audit event" in promote.stdout
    log = invoke("audit", "log", "--model", "fraud-detector")
    assert log.exit_code == 0, log.output
    assert "gate.decision" in log.stdout

    reject = _cli(
        "--challenger",
        _uri(registered.weak),
        "--champion",
        "fraud-detector@staging",
        "--data",
        str(path),
        "--max-size-mb",
        "0.0001",
        "--no-record",
    )
    assert reject.exit_code == 1, reject.output
    assert f"fraud-detector/{registered.full} (fraud-detector@staging)" in reject.stdout
    assert "✗ lower bound" in reject.stdout
    assert "not above the margin" in reject.stdout
    assert "✗ challenger package is" in reject.stdout
    assert "REJECT" in reject.stdout
    assert "recorded" not in reject.stdout
    assert reject.stderr == ""


def test_cli_json_reads_datasets_and_csv(registered: Registered) -> None:
    ml.log_dataset(registered.holdout, "fraud-holdout")
    fluent.close_clients()
    done = _cli(
        "--challenger",
        _uri(registered.full),
        "--champion",
        _uri(registered.weak),
        "--data",
        "fraud-holdout@1",
        "--metric",
        "auc",
        "--bootstrap",
        "200",
        "--output",
        "json",
        "--no-record",
    )
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert record["decision"] == "promote"
    assert record["metric"] == "auc_roc"
    assert record["n_bootstrap"] == 200
    assert record["data"] == "dataset fraud-holdout@1"

    csv = registered.home.parent / "holdout.csv"
    registered.holdout.to_csv(csv, index=False)
    again = _cli(
        "--challenger",
        _uri(registered.full),
        "--champion",
        _uri(registered.weak),
        "--data",
        str(csv),
        "--metric",
        "auc",
        "--bootstrap",
        "200",
        "-o",
        "json",
        "--no-record",
    )
    from_csv = json.loads(again.stdout)
    assert from_csv["data_digest"] == record["data_digest"]  # the same values, either way
    assert from_csv["ci_low"] == record["ci_low"]


def test_cli_user_mistakes_are_one_line_errors(registered: Registered) -> None:
    path = registered.home.parent / "nolabel.parquet"
    registered.holdout.drop(columns=["label"]).to_parquet(path)
    base = ["--challenger", _uri(registered.full), "--champion", _uri(registered.weak)]
    three_margins = ["--margin", "0", "--margin", "1", "--margin", "2"]
    for args, code, needle in (
        (["--data", str(path)], 2, "no label column 'label'"),
        (["--data", str(path), "--label", "f0", "--metric", "f1"], 2, "Unknown gate metric"),
        (["--data", "missing.parquet"], 2, "No such file: missing.parquet"),
        (["--data", "no-such-dataset"], 3, "no-such-dataset"),
        (["--data", str(path), "--bootstrap", "10"], 2, "--bootstrap"),
        (["--data", str(path), "--metric", "ap", "--metric", "cp@k"], 2, "(CLI --entity, --day)"),
        (
            ["--data", str(path), "--metric", "ap", "--metric", "auc", *three_margins],
            2,
            "one per metric (2), got 3",
        ),
    ):
        done = _cli(*base, *args)
        assert done.exit_code == code, (args, done.output)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("Error: "), done.stderr
        assert needle in lines[0], lines[0]


def test_cli_requires_every_metric_it_is_given(registered: Registered) -> None:
    path = registered.home.parent / "cards.parquet"
    _with_cards(registered.holdout).to_parquet(path)
    base = ["--challenger", _uri(registered.full), "--champion", _uri(registered.weak)]
    columns = ["--entity", "card", "--day", "time", "--amount", "spent"]
    metrics = ["--metric", "cp@k", "--metric", "amount@k", "--k", "20", "--bootstrap", "300"]
    done = _cli(*base, "--data", str(path), *metrics, *columns, "--no-record")
    assert done.exit_code == 0, done.output
    out = done.stdout
    assert "card precision@20 " in out
    assert "fraud amount@20 " in out
    assert "difference  card precision@20 +" in out
    assert out.count("300 paired resamples of the cards") == 2
    assert out.count("✓ lower bound") == 2

    # One margin per metric: more money than the challenger catches fails that check alone.
    strict = _cli(
        *base,
        "--data",
        str(path),
        *metrics,
        *columns,
        "--margin",
        "0",
        "--margin",
        "1000000",
        "--no-record",
        "-o",
        "json",
    )
    assert strict.exit_code == 1, strict.output
    record = json.loads(strict.stdout)
    assert record["metric"] == "card_precision_at_k"
    assert [(m["metric"], m["margin"], m["passed"]) for m in record["metrics"]] == [
        ("card_precision_at_k", 0.0, True),
        ("fraud_amount_at_k", 1000000.0, False),
    ]
    assert len(record["reasons"]) == 1
    assert "fraud amount@20 difference" in record["reasons"][0]
