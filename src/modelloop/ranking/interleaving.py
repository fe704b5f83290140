"""Online comparison of two rankers by team-draft interleaving (Radlinski, Kurup and Joachims,
2008): each request shows one list merged from both rankers, the clicks are credited to the
ranker that contributed the clicked items, and a test over many impressions says which ranker
users prefer. It needs far fewer users than an A/B test because every user sees both rankers.

- ``team_draft`` merges two lists. Like picking sides for a game, the team with fewer picks
  (a coin, seeded per request, breaks ties) adds its highest-ranked item not yet shown. The seed
  makes an impression replayable from its log: same lists, same seed, same merged list.
- ``credit`` turns one impression's clicks into "A", "B" or "tie" (as many clicks each,
  including none).
- ``binomial_test`` is the fixed-horizon test: share of A wins among non-tied impressions against
  1/2, two-sided exact binomial p-value.
- ``sprt`` is Wald's sequential probability ratio test on the same wins, run as two one-sided
  tests so a canary can stop as soon as the evidence suffices. Parameters: ``alpha`` the chance of
  declaring a winner when the rankers are equal (split evenly between the two directions),
  ``beta`` the chance of missing a true effect of size ``effect``, ``effect`` the minimum
  detectable effect as the A-win share above (or below) 1/2 among non-tied impressions.
  Test A: H0 p = 1/2 against H1 p = 1/2 + effect; test B: H0 p = 1/2 against H1 p = 1/2 - effect;
  each with Wald's bounds log((1 - beta) / (alpha / 2)) and log(beta / (1 - alpha / 2)) on its
  log-likelihood ratio, each stopping at its first crossing. The decision: "A" when test A
  accepts its H1, "B" when test B does, "equal" when both accept H0 (no effect as large as
  ``effect``), otherwise "continue" (no difference yet).
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from modelloop.errors import InvalidArgument

Team = Literal["A", "B"]
Outcome = Literal["A", "B", "tie"]
Decision = Literal["A", "B", "equal", "continue"]


@dataclass(frozen=True)
class Interleaved:
    """The merged list and, position by position, the team that contributed each item."""

    items: list[Hashable]
    teams: list[Team]


def team_draft(
    a: Sequence[Hashable], b: Sequence[Hashable], seed: int | str, k: int | None = None
) -> Interleaved:
    """Merge rankers A's and B's lists into at most ``k`` items (default: the longer list).

    Stops when either list has nothing new left, as the original algorithm does: continuing with
    one team alone would credit it positions the other could not contest. ``seed`` (e.g. the
    request id) drives the coin; string seeds are hashed by ``random`` deterministically."""
    for name, ranked in (("A", a), ("B", b)):
        if len(set(ranked)) != len(ranked):
            raise InvalidArgument(f"ranker {name}'s list repeats an item")
    limit = max(len(a), len(b)) if k is None else k
    if limit < 0:
        raise InvalidArgument(f"k must not be negative, got {k!r}")
    coin = random.Random(seed)  # noqa: S311 - fairness, not secrecy
    items: list[Hashable] = []
    teams: list[Team] = []
    shown: set[Hashable] = set()
    cursor = {"A": 0, "B": 0}
    lists: dict[Team, Sequence[Hashable]] = {"A": a, "B": b}
    picks = {"A": 0, "B": 0}

    def fresh(team: Team) -> bool:
        ranked = lists[team]
        while cursor[team] < len(ranked) and ranked[cursor[team]] in shown:
            cursor[team] += 1
        return cursor[team] < len(ranked)

    while len(items) < limit and fresh("A") and fresh("B"):
        if picks["A"] != picks["B"]:
            team: Team = "A" if picks["A"] < picks["B"] else "B"
        else:
            team = "A" if coin.random() < 0.5 else "B"
        item = lists[team][cursor[team]]
        items.append(item)
        teams.append(team)
        shown.add(item)
        picks[team] += 1
    return Interleaved(items, teams)


def credit(teams: Sequence[Team], clicked: Iterable[int]) -> Outcome:
    """Which ranker won one impression: the team with more clicked positions (0-based indexes
    into the merged list); equal counts, no clicks included, are a tie."""
    counts = {"A": 0, "B": 0}
    for position in set(clicked):
        if not 0 <= position < len(teams):
            raise InvalidArgument(
                f"clicked position {position} is outside the list of {len(teams)}"
            )
        counts[teams[position]] += 1
    if counts["A"] == counts["B"]:
        return "tie"
    return "A" if counts["A"] > counts["B"] else "B"


def binomial_test(wins_a: int, wins_b: int) -> float:
    """Two-sided exact binomial p-value of ``wins_a`` among ``wins_a + wins_b`` non-tied
    impressions against a fair 1/2: twice the smaller tail, capped at 1."""
    if wins_a < 0 or wins_b < 0:
        raise InvalidArgument("win counts must not be negative")
    n = wins_a + wins_b
    if n == 0:
        return 1.0
    low = min(wins_a, wins_b)
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(low + 1)
    ]
    peak = max(log_terms)
    tail = math.exp(peak) * sum(math.exp(t - peak) for t in log_terms)
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class SprtResult:
    """The decision, the number of non-tied impressions it took (or seen so far when it is
    "continue"), the wins counted up to then, and both tests' log-likelihood ratios there."""

    decision: Decision
    n: int
    wins_a: int
    wins_b: int
    llr_a: float
    llr_b: float


def sprt(
    outcomes: Iterable[Outcome],
    *,
    alpha: float = 0.05,
    beta: float = 0.2,
    effect: float = 0.1,
) -> SprtResult:
    """Run the sequential test over impressions in the order they happened (ties are skipped:
    they carry no preference). See the module docstring for the hypotheses and bounds."""
    if not 0 < alpha < 1 or not 0 < beta < 1:
        raise InvalidArgument("alpha and beta must be in (0, 1)")
    if not 0 < effect < 0.5:
        raise InvalidArgument(f"effect must be in (0, 0.5), got {effect!r}")
    wins = np.array([o == "A" for o in outcomes if o != "tie"], dtype=bool)
    up = math.log(2 * effect + 1)  # log((1/2 + effect) / (1/2))
    down = math.log(1 - 2 * effect)
    upper = math.log((1 - beta) / (alpha / 2))
    lower = math.log(beta / (1 - alpha / 2))
    count_a = np.cumsum(wins)
    count_b = np.arange(1, len(wins) + 1) - count_a
    llr_a = count_a * up + count_b * down
    llr_b = count_b * up + count_a * down

    def stop(llr: np.ndarray) -> tuple[int, bool] | None:
        """First index where a test crosses a bound, and whether it accepted its H1."""
        crossed = np.flatnonzero((llr >= upper) | (llr <= lower))
        if not len(crossed):
            return None
        return int(crossed[0]), bool(llr[crossed[0]] >= upper)

    end_a, end_b = stop(llr_a), stop(llr_b)
    decision: Decision = "continue"
    at = len(wins) - 1
    if end_a is not None and end_a[1]:
        decision, at = "A", end_a[0]
    elif end_b is not None and end_b[1]:
        decision, at = "B", end_b[0]
    elif end_a is not None and end_b is not None:
        decision, at = "equal", max(end_a[0], end_b[0])
    if at < 0:
        return SprtResult(decision, 0, 0, 0, 0.0, 0.0)
    return SprtResult(
        decision,
        at + 1,
        int(count_a[at]),
        int(count_b[at]),
        float(llr_a[at]),
        float(llr_b[at]),
    )
