"""Ranking metrics against a slow, obviously-correct pure-Python reference on random data, and
small cases worked out by hand."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelloop.errors import InvalidArgument
from modelloop.ranking import metrics

# -- the reference: one user at a time, straight from the definitions -------------------------


def _reference(
    recs: dict[Any, list[Any]],
    truth: dict[Any, dict[Any, float]],
    k: int,
    users: str = "both",
    gains: str = "binary",
) -> dict[str, float]:
    def gain(relevance: float) -> float:
        if gains == "binary":
            return 1.0
        return relevance if gains == "linear" else 2.0**relevance - 1

    counted = [u for u in truth if truth[u] and (users == "truth" or recs.get(u))]
    sums = dict.fromkeys(metrics.ACCURACY, 0.0)
    for user in counted:
        shown = recs.get(user, [])[:k]
        relevant = truth[user]
        hits = [i for i in shown if i in relevant]
        sums["precision"] += len(hits) / k
        sums["recall"] += len(hits) / len(relevant)
        sums["hit_rate"] += 1.0 if hits else 0.0
        dcg = sum(
            gain(relevant[item]) / math.log2(rank + 2)
            for rank, item in enumerate(shown)
            if item in relevant
        )
        best = sorted((gain(r) for r in relevant.values()), reverse=True)[:k]
        idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(best))
        sums["ndcg"] += dcg / idcg if idcg else 0.0
        found, precisions = 0, 0.0
        for rank, item in enumerate(shown, start=1):
            if item in relevant:
                found += 1
                precisions += found / rank
        sums["map"] += precisions / len(relevant)
        first = next((r for r, i in enumerate(shown, start=1) if i in relevant), None)
        sums["mrr"] += 1 / first if first else 0.0
    return {name: total / len(counted) if counted else 0.0 for name, total in sums.items()}


def _random_case(seed: int) -> tuple[dict[int, list[int]], dict[int, dict[int, float]], int]:
    rng = random.Random(seed)
    n_items = rng.choice([8, 30, 200])
    recs: dict[int, list[int]] = {}
    truth: dict[int, dict[int, float]] = {}
    for user in range(rng.randint(1, 60)):
        if rng.random() < 0.85:  # some users get no recommendations
            recs[user] = rng.sample(range(n_items), rng.randint(0, min(n_items, 15)))
        if rng.random() < 0.85:  # some have no relevant items (absent or an empty set)
            chosen = rng.sample(range(n_items), rng.randint(0, min(n_items, 12)))
            truth[user] = {i: float(rng.randint(1, 5)) for i in chosen}
    return recs, truth, rng.choice([1, 3, 5, 10])


def _frames(
    recs: dict[int, list[int]], truth: dict[int, dict[int, float]], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same case as DataFrames: scores instead of order, rows shuffled."""
    rows = [(u, i, 100.0 - r) for u, items in recs.items() for r, i in enumerate(items)]
    pred = pd.DataFrame(rows, columns=["user", "item", "score"]).sample(frac=1, random_state=seed)
    rel = [(u, i, r) for u, items in truth.items() for i, r in items.items()]
    true = pd.DataFrame(rel, columns=["user", "item", "relevance"]).sample(
        frac=1, random_state=seed
    )
    return pred, true


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("users", ["both", "truth"])
def test_accuracy_metrics_match_the_reference(seed: int, users: metrics.Users) -> None:
    recs, truth, k = _random_case(seed)
    gains: metrics.Gains = ("binary", "linear", "exponential")[seed % 3]
    expected = _reference(recs, truth, k, users, gains)
    inputs: list[tuple[metrics.Recommendations, metrics.Truth]] = [
        (recs, truth),
        _frames(recs, truth, seed),
    ]
    for recs_in, truth_in in inputs:
        got = metrics.ranking_metrics(recs_in, truth_in, k, users=users, gains=gains)
        assert got == {
            f"precision_at_{k}": pytest.approx(expected["precision"]),
            f"recall_at_{k}": pytest.approx(expected["recall"]),
            f"ndcg_at_{k}": pytest.approx(expected["ndcg"]),
            "map": pytest.approx(expected["map"]),
            "mrr": pytest.approx(expected["mrr"]),
            f"hit_rate_at_{k}": pytest.approx(expected["hit_rate"]),
        }
    assert metrics.precision_at_k(recs, truth, k, users=users) == pytest.approx(
        expected["precision"]
    )


@pytest.mark.parametrize("seed", range(8))
def test_beyond_accuracy_metrics_match_the_reference(seed: int) -> None:
    recs, _, k = _random_case(seed)
    rng = random.Random(seed)
    n_items = 1 + max((i for items in recs.values() for i in items), default=0)
    popularity = {i: rng.choice([0, 1, 1, 2, 5, 40]) for i in range(n_items) if rng.random() < 0.9}
    shown = [i for items in recs.values() for i in items[:k]]

    catalog = list(range(n_items + 3))
    assert metrics.catalog_coverage(recs, catalog, k) == pytest.approx(
        len(set(shown)) / len(catalog)
    )

    total = sum(popularity.values())
    known = [-math.log2(popularity[i] / total) for i in shown if popularity.get(i, 0) > 0]
    assert metrics.novelty(recs, popularity, k) == pytest.approx(
        sum(known) / len(known) if known else 0.0
    )

    ordered = sorted(popularity.values(), reverse=True)
    cut = ordered[math.ceil(0.1 * len(ordered)) - 1] if ordered else 0
    head = {i for i, c in popularity.items() if c >= cut}
    assert metrics.popularity_bias(recs, popularity, k) == pytest.approx(
        sum(i in head for i in shown) / len(shown) if shown and popularity else 0.0
    )

    features = pd.DataFrame(
        [[rng.choice([0, 0, 1]) for _ in range(5)] for _ in range(n_items)],
        index=range(n_items),
    )

    def cosine(x: int, y: int) -> float:
        u, v = features.loc[x].to_numpy(float), features.loc[y].to_numpy(float)
        norm = float(np.linalg.norm(u) * np.linalg.norm(v))
        return float(u @ v) / norm if norm else 0.0

    per_user = []
    for items in recs.values():
        top = items[:k]
        pairs = [(x, y) for n, x in enumerate(top) for y in top[n + 1 :]]
        if pairs:
            per_user.append(sum(1 - cosine(x, y) for x, y in pairs) / len(pairs))
    assert metrics.intra_list_diversity(recs, features, k) == pytest.approx(
        sum(per_user) / len(per_user) if per_user else 0.0
    )


def test_hand_computed_case() -> None:
    """u1 sees [a, b, c, d] and likes {b, d, x}; u2 sees [e, f] and likes {e}; u3 likes {a} but
    got no list; u4 got a list but likes nothing. k = 3."""
    recs = {"u1": ["a", "b", "c", "d"], "u2": ["e", "f"], "u4": ["a"]}
    truth = {"u1": {"b", "d", "x"}, "u2": {"e"}, "u3": {"a"}, "u4": set()}
    got = metrics.ranking_metrics(recs, truth, k=3)
    # Counted: u1 and u2. u1: hit at rank 2 only (d is 4th). u2: hit at rank 1.
    assert got["precision_at_3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert got["recall_at_3"] == pytest.approx((1 / 3 + 1 / 1) / 2)
    # u1: DCG 1/log2(3) = 0.6309, ideal 1 + 1/log2(3) + 1/log2(4) = 2.1309 -> 0.2961; u2: 1.
    assert got["ndcg_at_3"] == pytest.approx((0.63093 / 2.13093 + 1) / 2, abs=1e-5)
    # u1: precision at the hit (1/2) over 3 relevant items = 1/6; u2: 1/1.
    assert got["map"] == pytest.approx((1 / 6 + 1) / 2)
    assert got["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert got["hit_rate_at_3"] == 1.0
    # Counting every user with relevant items: u3 scores 0 everywhere.
    strict = metrics.ranking_metrics(recs, truth, k=3, users="truth")
    assert strict["map"] == pytest.approx((1 / 6 + 1 + 0) / 3)
    assert strict["hit_rate_at_3"] == pytest.approx(2 / 3)


def test_graded_ndcg_by_hand() -> None:
    """Relevances 3 and 1; the list puts the 1 first. Linear gains: DCG 1 + 3/log2(3),
    ideal 3 + 1/log2(3)."""
    got = metrics.ndcg_at_k({1: ["low", "high"]}, {1: {"high": 3.0, "low": 1.0}}, 2, gains="linear")
    assert got == pytest.approx((1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3)))


def test_beyond_accuracy_by_hand() -> None:
    recs = {1: ["p", "q"], 2: ["p", "r"]}
    popularity = {"p": 8, "q": 4, "r": 2, "s": 1, "t": 1}  # 16 interactions
    # slots p, q, p, r: -log2 of 1/2, 1/4, 1/2, 1/8 = 1, 2, 1, 3 -> 7/4
    assert metrics.novelty(recs, popularity) == pytest.approx(1.75)
    # head: ceil(0.1 * 5) = 1 item -> {p}; it fills 2 of the 4 slots
    assert metrics.popularity_bias(recs, popularity) == pytest.approx(0.5)
    # 3 of the 5 catalogue items were shown
    assert metrics.catalog_coverage(recs, popularity) == pytest.approx(0.6)
    # p = (1, 0), q = (1, 1), r = (0, 1): u1 distance 1 - 1/sqrt(2), u2 distance 1
    features = pd.DataFrame({"g1": [1, 1, 0], "g2": [0, 1, 1]}, index=["p", "q", "r"])
    expected = (1 - 1 / math.sqrt(2) + 1) / 2
    assert metrics.intra_list_diversity(recs, features) == pytest.approx(expected)
    got = metrics.ranking_metrics(recs, {1: ["q"]}, 2, popularity=popularity, features=features)
    assert got["novelty"] == pytest.approx(1.75)
    assert got["catalog_coverage"] == pytest.approx(0.6)
    assert got["diversity"] == pytest.approx(expected)


def test_rank_column_orders_and_k_truncates() -> None:
    pred = pd.DataFrame({"user": [1, 1, 1], "item": ["c", "a", "b"], "rank": [3, 1, 2]})
    assert metrics.top_k(pred, 2)["item"].tolist() == ["a", "b"]
    assert metrics.mrr(pred, {1: ["c"]}, k=2) == 0.0
    assert metrics.mrr(pred, {1: ["c"]}, k=3) == pytest.approx(1 / 3)


def test_ties_in_score_keep_the_input_order() -> None:
    pred = pd.DataFrame({"user": [1, 1, 1], "item": ["x", "y", "z"], "score": [0.5, 0.9, 0.5]})
    assert metrics.top_k(pred, 3)["item"].tolist() == ["y", "x", "z"]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="more than once"):
        metrics.precision_at_k({1: ["a", "a"]}, {1: ["a"]})
    with pytest.raises(InvalidArgument, match="k must be"):
        metrics.precision_at_k({1: ["a"]}, {1: ["a"]}, k=0)
    with pytest.raises(InvalidArgument, match="columns"):
        metrics.precision_at_k(pd.DataFrame({"u": [1], "item": [1]}), {1: [1]})
    with pytest.raises(InvalidArgument, match="no features"):
        metrics.intra_list_diversity({1: ["a", "b"]}, pd.DataFrame({"g": [1]}, index=["a"]))


def test_no_users_in_common_scores_zero() -> None:
    assert metrics.ranking_metrics({1: ["a"]}, {2: ["a"]}, 5)["ndcg_at_5"] == 0.0
    assert metrics.ranking_metrics({}, {}, 5)["map"] == 0.0


def test_per_user_table_is_what_the_means_average() -> None:
    recs, truth, k = _random_case(3)
    table = metrics.per_user(recs, truth, k)
    assert set(table.index) == {u for u in truth if truth[u] and recs.get(u)}
    assert table["recall"].mean() == pytest.approx(metrics.recall_at_k(recs, truth, k))
