"""Offline metrics of ranked recommendations: accuracy against held-out interactions (precision,
recall, nDCG, MAP, MRR, hit rate, all at k) and the beyond-accuracy ones a catalogue owner
watches (coverage, novelty, intra-list diversity, popularity bias).

Inputs. Recommendations are, per user, an ordered list of item ids: a DataFrame with columns
``user``, ``item`` and optionally ``rank`` (1 = first) or ``score`` (higher first), or a dict
``{user: [item, ...]}``. Without ``rank``/``score`` the row order is the order. Ground truth is
the set of relevant items per user: a DataFrame with ``user``, ``item`` and optionally
``relevance`` (used only by nDCG's graded gains), or a dict ``{user: items}`` or
``{user: {item: relevance}}``. Only the first ``k`` recommendations of a user count; a user may
have fewer than ``k``, and precision still divides by ``k`` (a short list is not rewarded).

Which users count. Microsoft Recommenders' ``python_evaluation`` averages over the users present
in both inputs, and its published MovieLens table uses that; ``users="both"`` (the default) does
the same, so a user without relevant items (absent from the truth, or an empty set) and a user
without recommendations (absent, or an empty list) are left out. ``users="truth"`` averages over
every user with relevant items instead, scoring 0 for a user who got no recommendations: a gate
should use it, so a model cannot gain by recommending nothing to hard users. With no users left
every metric is 0.0.

MAP is Recommenders' ``map`` (not ``map_at_k``): per user the sum, over relevant items hit in the
top k, of the precision at the hit's rank, divided by the user's number of relevant items (all of
them, not ``min(k, n)``). nDCG uses a log discount (the base cancels in the ratio) and binary gains
by default, so it matches their default; the ideal list is the user's most relevant ``k`` items.

Everything is vectorized over users (numpy/pandas): per-user values come from one table of hits,
so 100,000 users cost a few hundred milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from modelloop.errors import InvalidArgument

Recommendations = pd.DataFrame | Mapping[Any, Sequence[Any]]
Truth = pd.DataFrame | Mapping[Any, Iterable[Any]]
Popularity = pd.Series | pd.DataFrame | Mapping[Any, float]
Users = Literal["both", "truth"]
Gains = Literal["binary", "linear", "exponential"]

USER, ITEM, RANK, SCORE, RELEVANCE = "user", "item", "rank", "score", "relevance"
ACCURACY = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")

FloatArray = npt.NDArray[np.float64]


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgument(f"k must be a positive integer, got {k!r}")


def _columns(frame: pd.DataFrame, what: str) -> None:
    missing = [c for c in (USER, ITEM) if c not in frame.columns]
    if missing:
        raise InvalidArgument(f"{what} needs columns {USER!r} and {ITEM!r}; missing {missing}")


def top_k(recommendations: Recommendations, k: int) -> pd.DataFrame:
    """The first ``k`` recommendations of each user as columns user, item, rank (1-based).

    Ties in ``score`` keep the input order, so the ranking is deterministic. A user listing the
    same item twice is an error: counting it twice would inflate every metric."""
    _check_k(k)
    if isinstance(recommendations, pd.DataFrame):
        _columns(recommendations, "recommendations")
        frame = recommendations
        if RANK in frame.columns:
            frame = frame.sort_values([USER, RANK], kind="stable")
        elif SCORE in frame.columns:
            frame = frame.sort_values([USER, SCORE], ascending=[True, False], kind="stable")
        else:
            frame = frame.sort_values(USER, kind="stable")
        frame = frame[[USER, ITEM]].reset_index(drop=True)
    else:
        rows = [(u, i) for u, items in recommendations.items() for i in items]
        frame = pd.DataFrame(rows, columns=[USER, ITEM]) if rows else _empty(USER, ITEM)
    if frame.duplicated([USER, ITEM]).any():
        first = frame[frame.duplicated([USER, ITEM])].iloc[0]
        raise InvalidArgument(
            f"user {first[USER]!r} is recommended item {first[ITEM]!r} more than once"
        )
    frame[RANK] = frame.groupby(USER, sort=False).cumcount() + 1
    return frame[frame[RANK] <= k].reset_index(drop=True)


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def _truth(truth: Truth) -> pd.DataFrame:
    """Columns user, item, relevance; one row per relevant item."""
    if isinstance(truth, pd.DataFrame):
        _columns(truth, "truth")
        frame = truth[[USER, ITEM]].copy()
        frame[RELEVANCE] = truth[RELEVANCE].astype(float) if RELEVANCE in truth else 1.0
    else:
        rows: list[tuple[Any, Any, float]] = []
        for user, items in truth.items():
            if isinstance(items, Mapping):
                rows.extend((user, i, float(r)) for i, r in items.items())
            else:
                rows.extend((user, i, 1.0) for i in items)
        frame = (
            pd.DataFrame(rows, columns=[USER, ITEM, RELEVANCE])
            if rows
            else _empty(USER, ITEM).assign(**{RELEVANCE: pd.Series([], dtype=float)})
        )
    if frame.duplicated([USER, ITEM]).any():
        first = frame[frame.duplicated([USER, ITEM])].iloc[0]
        raise InvalidArgument(f"user {first[USER]!r} has item {first[ITEM]!r} twice in the truth")
    return frame.reset_index(drop=True)


def _gain(relevance: pd.Series | FloatArray, gains: Gains) -> FloatArray:
    values = np.asarray(relevance, dtype=float)
    if gains == "binary":
        return np.ones_like(values)
    if gains == "linear":
        return values
    if gains == "exponential":
        return np.asarray(np.exp2(values) - 1.0, dtype=float)
    raise InvalidArgument(f"gains must be binary, linear or exponential, got {gains!r}")


def per_user(
    recommendations: Recommendations,
    truth: Truth,
    k: int = 10,
    *,
    users: Users = "both",
    gains: Gains = "binary",
) -> pd.DataFrame:
    """Accuracy metrics per user (index: user; columns precision, recall, ndcg, map, mrr,
    hit_rate): what a paired bootstrap over users resamples. The aggregate metrics are the
    column means of this table."""
    if users not in ("both", "truth"):
        raise InvalidArgument(f"users must be 'both' or 'truth', got {users!r}")
    recs = top_k(recommendations, k)
    rel = _truth(truth)
    truth_users = pd.unique(rel[USER])
    if users == "both":
        keep = pd.Index(truth_users).intersection(pd.Index(pd.unique(recs[USER])), sort=False)
    else:
        keep = pd.Index(truth_users)
    n = len(keep)
    rel = rel[rel[USER].isin(keep)]
    recs = recs[recs[USER].isin(keep)]
    rel_code = keep.get_indexer(pd.Index(rel[USER]))
    n_relevant = np.bincount(rel_code, minlength=n).astype(float)

    # Ideal DCG: the user's most relevant k items at ranks 1..k.
    ideal = rel.assign(_code=rel_code, _gain=_gain(rel[RELEVANCE], gains))
    ideal = ideal.sort_values(["_code", "_gain"], ascending=[True, False], kind="stable")
    ideal_rank = ideal.groupby("_code", sort=False).cumcount().to_numpy() + 1
    top = ideal_rank <= k
    idcg = np.bincount(
        ideal["_code"].to_numpy()[top],
        weights=ideal["_gain"].to_numpy()[top] / np.log2(ideal_rank[top] + 1.0),
        minlength=n,
    )

    hits = recs.merge(rel, on=[USER, ITEM], how="inner").sort_values([USER, RANK], kind="stable")
    code = keep.get_indexer(pd.Index(hits[USER]))
    rank = hits[RANK].to_numpy().astype(float)
    n_hits = np.bincount(code, minlength=n).astype(float)
    order = hits.groupby(USER, sort=False).cumcount().to_numpy() + 1.0  # i-th hit of its user
    dcg = np.bincount(
        code, weights=_gain(hits[RELEVANCE], gains) / np.log2(rank + 1.0), minlength=n
    )
    first = np.full(n, np.inf)
    np.minimum.at(first, code, rank)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "precision": n_hits / k,
                "recall": n_hits / n_relevant,
                "ndcg": np.where(idcg > 0, dcg / idcg, 0.0),
                "map": np.bincount(code, weights=order / rank, minlength=n) / n_relevant,
                "mrr": 1.0 / first,
                "hit_rate": (n_hits > 0).astype(float),
            },
            index=keep.rename(USER),
        )


def _mean(table: pd.DataFrame, column: str) -> float:
    return float(table[column].mean()) if len(table) else 0.0


def precision_at_k(
    recommendations: Recommendations, truth: Truth, k: int = 10, *, users: Users = "both"
) -> float:
    """Mean over users of hits in the top k divided by k."""
    return _mean(per_user(recommendations, truth, k, users=users), "precision")


def recall_at_k(
    recommendations: Recommendations, truth: Truth, k: int = 10, *, users: Users = "both"
) -> float:
    """Mean over users of hits in the top k divided by the user's number of relevant items."""
    return _mean(per_user(recommendations, truth, k, users=users), "recall")


def ndcg_at_k(
    recommendations: Recommendations,
    truth: Truth,
    k: int = 10,
    *,
    users: Users = "both",
    gains: Gains = "binary",
) -> float:
    """Mean over users of DCG@k over the ideal DCG@k. ``gains``: binary (every relevant item
    1), linear (its relevance) or exponential (2**relevance - 1)."""
    return _mean(per_user(recommendations, truth, k, users=users, gains=gains), "ndcg")


def map_score(
    recommendations: Recommendations, truth: Truth, k: int = 10, *, users: Users = "both"
) -> float:
    """Microsoft Recommenders' ``map``: mean over users of (sum of precision@rank at each hit in
    the top k) / (number of relevant items of the user)."""
    return _mean(per_user(recommendations, truth, k, users=users), "map")


def mrr(
    recommendations: Recommendations, truth: Truth, k: int = 10, *, users: Users = "both"
) -> float:
    """Mean reciprocal rank of the first relevant item in the top k (0 for a user without one)."""
    return _mean(per_user(recommendations, truth, k, users=users), "mrr")


def hit_rate(
    recommendations: Recommendations, truth: Truth, k: int = 10, *, users: Users = "both"
) -> float:
    """Share of users with at least one relevant item in their top k."""
    return _mean(per_user(recommendations, truth, k, users=users), "hit_rate")


def catalog_coverage(
    recommendations: Recommendations, catalog: Iterable[Any] | int, k: int = 10
) -> float:
    """Share of the catalogue that appears in somebody's top k. ``catalog`` is the item ids (only
    recommended items inside it count) or their number."""
    items = pd.unique(top_k(recommendations, k)[ITEM])
    if isinstance(catalog, int):
        size, shown = catalog, len(items)
    else:
        known = set(catalog)
        size, shown = len(known), len(known.intersection(items.tolist()))
    return shown / size if size else 0.0


def _counts(popularity: Popularity) -> pd.Series:
    """Interactions per item: a Series/dict item -> count, or an interactions DataFrame."""
    if isinstance(popularity, pd.DataFrame):
        if ITEM not in popularity.columns:
            raise InvalidArgument(f"popularity as a DataFrame needs an {ITEM!r} column")
        return popularity[ITEM].value_counts(sort=False).astype(float)
    series = popularity if isinstance(popularity, pd.Series) else pd.Series(dict(popularity))
    counts = series.astype(float)
    if (counts < 0).any():
        raise InvalidArgument("popularity counts must not be negative")
    return counts


def novelty(recommendations: Recommendations, popularity: Popularity, k: int = 10) -> float:
    """Mean self-information, -log2(count(i) / all interactions), over recommended slots
    (Castells et al.'s choice model, as Recommenders' ``novelty``): higher means the list leans
    to the long tail. Items with no interactions are left out, their information being infinite."""
    counts = _counts(popularity)
    total = float(counts.sum())
    shown = top_k(recommendations, k)[ITEM]
    seen = shown.map(counts).to_numpy(dtype=float, na_value=0.0)
    seen = seen[seen > 0]
    return float(np.mean(-np.log2(seen / total))) if len(seen) else 0.0


def popularity_bias(
    recommendations: Recommendations, popularity: Popularity, k: int = 10, head: float = 0.1
) -> float:
    """Share of recommended slots taken by the most popular ``head`` share of items. The head is
    every item at least as popular as the one at the cut (ceil(head * n_items)-th), so tied items
    are never split by an arbitrary order and the head may hold slightly more than ``head``."""
    if not 0 < head <= 1:
        raise InvalidArgument(f"head must be in (0, 1], got {head!r}")
    counts = _counts(popularity)
    shown = top_k(recommendations, k)[ITEM]
    if counts.empty or shown.empty:
        return 0.0
    cut = np.sort(counts.to_numpy())[::-1][math.ceil(head * len(counts)) - 1]
    heads = counts.index[counts.to_numpy() >= cut]
    return float(shown.isin(heads).mean())


def intra_list_diversity(
    recommendations: Recommendations, features: pd.DataFrame, k: int = 10
) -> float:
    """Mean over users (with at least two items) of the mean pairwise cosine distance between
    the item feature vectors of their top k (``features``: index item id, numeric columns, e.g.
    genre flags). An all-zero vector is at distance 1 from everything.

    The pairwise mean needs no pairs: with unit vectors v, sum over pairs of v_i.v_j is
    (|sum v|^2 - sum |v|^2) / 2, so the cost is linear in the list length."""
    recs = top_k(recommendations, k)
    rows = features.index.get_indexer(pd.Index(recs[ITEM]))
    if (rows < 0).any():
        missing = pd.unique(recs[ITEM][rows < 0])
        raise InvalidArgument(f"no features for items {list(missing[:5])}")
    matrix = features.to_numpy(dtype=float)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    vectors = unit[rows]
    codes, _ = pd.factorize(recs[USER])
    n_users = int(codes.max()) + 1 if len(codes) else 0
    sums = np.zeros((n_users, matrix.shape[1]))
    np.add.at(sums, codes, vectors)
    squares = np.bincount(codes, weights=(vectors**2).sum(axis=1), minlength=n_users)
    sizes = np.bincount(codes, minlength=n_users).astype(float)
    pairs = sizes * (sizes - 1) / 2
    ok = pairs > 0
    if not ok.any():
        return 0.0
    similarity = ((sums[ok] ** 2).sum(axis=1) - squares[ok]) / 2 / pairs[ok]
    return float(np.mean(1.0 - similarity))


def ranking_metrics(
    recommendations: Recommendations,
    truth: Truth,
    k: int = 10,
    *,
    users: Users = "both",
    gains: Gains = "binary",
    popularity: Popularity | None = None,
    catalog: Iterable[Any] | int | None = None,
    features: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Every metric the inputs allow, named so tracking accepts them (no ``@``):
    ``precision_at_10``, ``recall_at_10``, ``ndcg_at_10``, ``map``, ``mrr``, ``hit_rate_at_10``;
    with ``popularity`` (training interactions) also ``novelty``, ``popularity_bias`` and
    ``catalog_coverage`` (over the items seen in training unless ``catalog`` is given); with
    ``features`` also ``diversity``."""
    shown = top_k(recommendations, k)  # once: with its rank column it passes through as is
    table = per_user(shown, truth, k, users=users, gains=gains)
    out = {
        f"precision_at_{k}": _mean(table, "precision"),
        f"recall_at_{k}": _mean(table, "recall"),
        f"ndcg_at_{k}": _mean(table, "ndcg"),
        "map": _mean(table, "map"),
        "mrr": _mean(table, "mrr"),
        f"hit_rate_at_{k}": _mean(table, "hit_rate"),
    }
    if catalog is None and popularity is not None:
        catalog = list(_counts(popularity).index)
    if catalog is not None:
        out["catalog_coverage"] = catalog_coverage(shown, catalog, k)
    if popularity is not None:
        out["novelty"] = novelty(shown, popularity, k)
        out["popularity_bias"] = popularity_bias(shown, popularity, k)
    if features is not None:
        out["diversity"] = intra_list_diversity(shown, features, k)
    return out
