"""A policy's training: the deployment's own labelled prediction log trains a challenger.

The window ends at the newest matured label (``now`` minus the monitor's label delay) and spans
the policy's ``training.window``. The gate's replay is judged on the newest ``training.holdout``
of it, for a ``training.holdout_share`` of the keys (cards, by a stable hash of the key): those
rows are kept out of training, and every other row, the newest days included, is trained on.
So a model trained the day a change's first labels mature learns from them, and is judged on
the change's days all the same, on other cards. Shadow answers are not training data (nobody
acted on them). The training function
(``module:attribute``) gets the rows and a :class:`TrainingContext`; the model it returns is
registered, with its training data, from a tracked run.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelloop.automation.entities import Policy
from modelloop.automation.policy import logged
from modelloop.clock import duration_ms, from_ms, to_ms
from modelloop.errors import InvalidArgument
from modelloop.registry.fluent import register_model
from modelloop.settings import Settings
from modelloop.tracking.fluent import start_run

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.registry.client import Registry


@dataclass
class TrainingContext:
    """What a training function is told besides its data."""

    policy: Policy
    features: list[str]
    label: str
    start: datetime  # the labelled window used (the holdout's rows excluded)
    end: datetime  # the newest matured label
    now: datetime
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelledWindow:
    """The matured labelled predictions of a training window, split for the gate."""

    train: pd.DataFrame  # [start, end) but the holdout's rows
    holdout: pd.DataFrame  # [cut, end), the held-out keys' rows: what the replay is judged on
    start: int  # ms since the epoch
    cut: int
    end: int  # the newest matured label
    key: str | None  # the column whose values were held out (None: rows at random)


@dataclass(frozen=True)
class Trained:
    """A registered challenger and the evidence of its training."""

    version: int
    evidence: dict[str, Any]


def labelled_window(
    policy: Policy, *, now: int, label_delay_ms: int, settings: Settings
) -> LabelledWindow:
    """The policy's training window as of ``now`` (ms), answered (not shadow) and labelled.

    InvalidArgument when there are too few rows to train on or none to hold out.
    """
    training = policy.training
    end = now - label_delay_ms
    start = end - duration_ms(training.window)
    cut = end - duration_ms(training.holdout)
    frame = logged(policy, start, end, settings=settings)
    frame = frame[(frame["role"] != "shadow") & frame["label"].notna()].reset_index(drop=True)
    key = training.holdout_key or policy.rollout.sticky_key
    if key is not None and key not in frame.columns:
        key = None  # the log has no such column (yet): hold out rows at random
    times = frame["timestamp"].map(to_ms) if len(frame) else frame["timestamp"]
    recent = (times >= cut).to_numpy(dtype=bool)
    held = recent & held_out(frame[key] if key else frame["prediction_id"], training.holdout_share)
    train, holdout = frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)
    if len(train) < training.min_rows or holdout.empty:
        raise InvalidArgument(
            f"{len(train)} labelled predictions to train on (at least {training.min_rows}) "
            f"and {len(holdout)} to hold out in {from_ms(start):%Y-%m-%d}..{from_ms(end):%Y-%m-%d}"
        )
    return LabelledWindow(train, holdout, start, cut, end, key)


def held_out(values: pd.Series[Any], share: float) -> Any:
    """Which rows belong to the held-out ``share`` of the keys: a stable hash of each value, so
    a card is on the same side in every training and every process."""
    import numpy as np
    import pandas as pd

    if share >= 1.0:
        return np.ones(len(values), dtype=bool)
    hashed = pd.util.hash_pandas_object(values.astype(str), index=False).to_numpy()
    return (hashed % np.uint64(10_000)) < np.uint64(round(share * 10_000))


def train_challenger(
    policy: Policy, window: LabelledWindow, registry: Registry, *, now: int
) -> Trained:
    """Call the policy's training function on ``window.train`` (with the champion's features)
    in a tracked run and register the model it returns.

    InvalidArgument when the training function cannot be imported.
    """
    train, start, end = window.train, window.start, window.end
    champion = registry.store.get_version_by_alias(policy.model, "champion")
    features = [f["name"] for f in (champion.signature or {}).get("inputs", [])]
    context = TrainingContext(policy, features, "label", from_ms(start), from_ms(end), from_ms(now))
    function = _import(policy.training.function)
    started = time.perf_counter()
    with start_run(
        experiment=f"{policy.name}-training",
        params={
            "window_start": from_ms(start).isoformat(),
            "window_end": from_ms(end).isoformat(),
            "holdout_from": from_ms(window.cut).isoformat(),
            "rows": len(train),
            "function": policy.training.function,
        },
    ) as run:
        model = function(train, context)
        version = register_model(run, policy.model, model, training_data=train[features])
    evidence = {
        "version": version.version,
        "run_id": run.run_id,
        "window": [from_ms(start).isoformat(), from_ms(end).isoformat()],
        "holdout": {
            "from": from_ms(window.cut).isoformat(),
            "key": window.key,
            "share": policy.training.holdout_share,
        },
        "rows": len(train),
        "positives": int(train["label"].sum()),
        "holdout_rows": len(window.holdout),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Trained(version.version, evidence)


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"Cannot import the training function {path!r}: {exc}") from None
