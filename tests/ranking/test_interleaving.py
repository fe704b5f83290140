"""Team-draft interleaving, click credit and the tests over impressions, on seeded simulations."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable

import numpy as np
import pytest

from modelloop.errors import InvalidArgument
from modelloop.ranking.interleaving import (
    Outcome,
    binomial_test,
    credit,
    sprt,
    team_draft,
)


def _lists(rng: random.Random) -> tuple[list[int], list[int]]:
    catalog = range(rng.choice([5, 12, 40]))
    a = rng.sample(catalog, rng.randint(0, len(catalog)))
    b = rng.sample(catalog, rng.randint(0, len(catalog)))
    return a, b


@pytest.mark.parametrize("seed", range(200))
def test_merged_list_is_a_fair_draft_of_both_prefixes(seed: int) -> None:
    rng = random.Random(seed)
    a, b = _lists(rng)
    k = rng.choice([None, 3, 10])
    merged = team_draft(a, b, seed=f"request-{seed}", k=k)
    items, teams = merged.items, merged.teams
    assert len(items) == len(teams) == len(set(items))
    assert len(items) <= (max(len(a), len(b)) if k is None else k)
    picks = Counter(teams)
    assert abs(picks["A"] - picks["B"]) <= 1
    # Each team took its best items not already shown: its list's prefix is all in the list.
    assert set(a[: picks["A"]]) <= set(items)
    assert set(b[: picks["B"]]) <= set(items)
    for team, ranked in (("A", a), ("B", b)):
        rank_of: dict[Hashable, int] = {item: n for n, item in enumerate(ranked)}
        own = [rank_of[i] for i, t in zip(items, teams, strict=True) if t == team]
        assert own == sorted(own)  # in its ranker's order
    # Every round both teams pick once, in some order.
    for start in range(0, len(teams) - 1, 2):
        assert {teams[start], teams[start + 1]} == {"A", "B"}
    # The draft only stops when a list has nothing new (or k is reached).
    if len(items) < (max(len(a), len(b)) if k is None else k):
        assert set(a) <= set(items) or set(b) <= set(items)


def test_the_same_seed_replays_the_same_list() -> None:
    a, b = list(range(10)), list(range(9, -1, -1))
    first = team_draft(a, b, seed="req-42")
    assert team_draft(a, b, seed="req-42") == first
    assert len({tuple(team_draft(a, b, seed=s).teams) for s in range(50)}) > 1


def test_each_team_leads_about_half_the_time() -> None:
    a, b = list("abcdefghij"), list("jihgfedcba")
    leads = Counter(team_draft(a, b, seed=s).teams[0] for s in range(4000))
    # Binomial(4000, 1/2) has sd ~32: 1,850..2,150 is beyond 4.7 sd from fair either way.
    assert 1850 <= leads["A"] <= 2150


def test_identical_lists_merge_to_that_list() -> None:
    ranked = ["x", "y", "z", "w"]
    merged = team_draft(ranked, ranked, seed=3, k=3)
    assert merged.items == ["x", "y", "z"]


def test_repeated_items_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="repeats"):
        team_draft(["a", "a"], ["b"], seed=1)


@pytest.mark.parametrize(
    ("clicks", "expected"),
    [
        ([], "tie"),
        ([0], "A"),
        ([1], "B"),
        ([0, 1], "tie"),
        ([0, 2, 1], "A"),
        ([1, 3, 3, 3], "B"),  # a position clicked twice counts once
        ([1, 3, 0, 2], "tie"),
    ],
)
def test_credit_of_click_patterns(clicks: list[int], expected: str) -> None:
    assert credit(["A", "B", "A", "B"], clicks) == expected


def test_credit_refuses_positions_outside_the_list() -> None:
    with pytest.raises(InvalidArgument, match="outside"):
        credit(["A", "B"], [2])


def test_binomial_test_by_hand() -> None:
    assert binomial_test(0, 0) == 1.0
    assert binomial_test(5, 5) == 1.0
    assert binomial_test(0, 10) == pytest.approx(2 / 1024)  # both tails of 1/2**10
    assert binomial_test(10, 0) == pytest.approx(2 / 1024)
    # 2 * P(X <= 2), X ~ Binomial(10, 1/2): (1 + 10 + 45) / 1024 each tail
    assert binomial_test(2, 8) == pytest.approx(2 * 56 / 1024)
    assert binomial_test(60, 40) == pytest.approx(0.056887933640979, rel=1e-9)


def _impressions(quality_a: float, quality_b: float, n: int, seed: int) -> list[Outcome]:
    """Users with 8 liked items out of 60. A ranker of quality q puts each liked item at the top
    of its list with probability q, the rest in random order; a user clicks a shown liked item
    with probability 0.6 / (1 + position / 3), as attention fades down the list."""
    rng = random.Random(seed)

    def ranker(liked: set[int], quality: float) -> list[int]:
        lead = [i for i in sorted(liked) if rng.random() < quality]
        rest = [i for i in range(60) if i not in lead]
        rng.shuffle(lead)
        rng.shuffle(rest)
        return (lead + rest)[:10]

    outcomes: list[Outcome] = []
    for request in range(n):
        liked = set(rng.sample(range(60), 8))
        a, b = ranker(liked, quality_a), ranker(liked, quality_b)
        merged = team_draft(a, b, seed=f"{seed}-{request}")
        clicks = [
            pos
            for pos, item in enumerate(merged.items)
            if item in liked and rng.random() < 0.6 / (1 + pos / 3)
        ]
        outcomes.append(credit(merged.teams, clicks))
    return outcomes


def test_sprt_picks_the_ranker_users_click_more() -> None:
    better_a = sprt(_impressions(0.5, 0.2, 1500, seed=1))
    assert better_a.decision == "A"
    assert better_a.wins_a > better_a.wins_b
    assert better_a.n < 1500  # stopped early
    better_b = sprt(_impressions(0.2, 0.5, 1500, seed=2))
    assert better_b.decision == "B"
    assert better_b.wins_b > better_b.wins_a


def test_sprt_on_equal_rankers_names_no_winner() -> None:
    assert sprt(_impressions(0.3, 0.3, 1500, seed=3)).decision in ("equal", "continue")


def test_sprt_error_rates_on_simulated_streams() -> None:
    """1,000 seeded streams of wins each. Equal rankers: a winner is declared in at most alpha
    (5%) of them, give or take the simulation's own noise (sd ~0.7%); an A-win share of 0.6 (the
    minimum detectable effect) is detected with power about 1 - beta (80%)."""
    rng = np.random.default_rng(11)

    def run(p_a: float) -> Counter[str]:
        decisions: Counter[str] = Counter()
        for _ in range(1000):
            draws = rng.random(2000)
            stream: list[Outcome] = ["tie" if d > 0.8 else "A" if d < 0.8 * p_a else "B"
                                     for d in draws]  # fmt: skip
            decisions[sprt(stream, alpha=0.05, beta=0.2, effect=0.1).decision] += 1
        return decisions

    equal = run(0.5)
    assert equal["A"] + equal["B"] <= 60
    assert equal["continue"] <= 10  # almost every stream ends within 1,600 non-tied impressions
    better = run(0.6)
    assert better["A"] >= 750
    assert better["B"] == 0


def test_sprt_without_evidence_continues() -> None:
    result = sprt(["tie", "tie", "A", "B"])
    assert (result.decision, result.n, result.wins_a, result.wins_b) == ("continue", 2, 1, 1)
    assert sprt([]).decision == "continue"
    with pytest.raises(InvalidArgument):
        sprt(["A"], effect=0.5)
