"""The replay backtest as the pages show it: what traffic a challenger was judged on.

A gate decision taken by a policy carries its replay (``replay`` in the evidence of the
``policy.shadow`` or ``policy.rejected`` decision): a one-line description of the logged
requests replayed, and both models' metric day by day. The automation timeline shows it under
the gate's step; the model card under the version's gate decisions, matched by the audit
sequence number of the ``gate.decision`` event (``audit_seq`` in the same evidence). Read
through the policy store (its ``decisions``), never from SQL here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelloop.errors import ModelloopError

if TYPE_CHECKING:
    from modelloop.settings import Settings

_GATED = ("policy.shadow", "policy.rejected")
_PER_DAY = ("average_precision", "auc_roc")  # as ``automation.replay.Replay.per_day`` computes


@dataclass(frozen=True)
class ReplayDay:
    day: str
    rows: int
    positives: int
    champion: float | None
    challenger: float | None

    @property
    def difference(self) -> float | None:
        """Challenger minus champion (None where either is undefined, e.g. no positive)."""
        if self.champion is None or self.challenger is None:
            return None
        return self.challenger - self.champion


@dataclass(frozen=True)
class ReplayTable:
    """A gate's replay: the data line and the metric of both models per replayed day."""

    data: str
    metric: str
    days: list[ReplayDay] = field(default_factory=list)
    run_id: str | None = None  # the challenger's training run (``replay/per_day.csv`` there)


def replay_table(evidence: Mapping[str, Any]) -> ReplayTable | None:
    """The replay of a gate decision's evidence, or None when it holds none."""
    replay = evidence.get("replay")
    if not isinstance(replay, Mapping):
        return None
    days = [
        ReplayDay(
            str(d.get("day", "")),
            _count(d.get("rows")),
            _count(d.get("positives")),
            _number(d.get("champion")),
            _number(d.get("challenger")),
        )
        for d in replay.get("per_day") or []
        if isinstance(d, Mapping)
    ]
    run_id = replay.get("run_id")
    return ReplayTable(
        str(replay.get("data") or ""),
        per_day_metric(evidence),
        days,
        run_id if isinstance(run_id, str) else None,
    )


def per_day_metric(evidence: Mapping[str, Any]) -> str:
    """The metric of a replay's per-day table: the gate's, when it is defined on one day's rows
    alone; else average precision (the card metrics rank cards over the days together)."""
    replay = evidence.get("replay")
    if isinstance(replay, Mapping) and isinstance(replay.get("metric"), str):
        return str(replay["metric"])
    metric = evidence.get("metric")
    return metric if metric in _PER_DAY else "average_precision"


def version_replays(model: str, version: int, *, settings: Settings) -> dict[int, ReplayTable]:
    """The replays of a version's gate decisions, keyed by the audit sequence number of their
    ``gate.decision`` event: read from the decisions of every policy that trains ``model``
    (none when the store keeps no policies)."""
    from modelloop.automation.policy import policy_store

    found: dict[int, ReplayTable] = {}
    try:
        with policy_store(settings) as store:
            timelines = [store.decisions(p.name) for p in store.list() if p.model == model]
        for decisions in timelines:
            for decision in decisions:
                evidence = decision.evidence
                seq = evidence.get("audit_seq")
                if decision.action not in _GATED or evidence.get("version") != version:
                    continue
                table = replay_table(evidence)
                if table is not None and isinstance(seq, int):
                    found[seq] = table
    except ModelloopError:  # e.g. a store without local policies: the card shows the rest
        return {}
    return found


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    return float(value) if ok else None


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
