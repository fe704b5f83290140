"""Time to adapt: how long a change in the data went unanswered by the models serving it.

For a change starting at ``start``, read off a policy's timeline:

(a) ``trained``: the first training whose data reaches past ``start`` (it saw the change's labels);
(b) ``partial``: the first moment a model trained so answered at least ``share`` of the traffic
    (a canary at that share, or a promotion);
(c) ``full``: the first moment such a model answered all of it (its promotion).

Each is counted in days since ``start`` (None while it has not happened). The changes a policy
knows of are the ones its triggers detected: the start of the run of drifted windows a trigger
cited (``change_start`` in its evidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelloop import clock
from modelloop.automation.decision import Decision


@dataclass(frozen=True)
class Adaptation:
    """Days from a change's start to (a) trained, (b) partial traffic, (c) all traffic."""

    start: int  # ms since the epoch
    trained: float | None
    partial: float | None
    full: float | None
    version: int | None  # the first adapted version to answer all traffic (else the first trained)
    share: float = 20.0  # the share of traffic (b) counts from, in percent

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_start": clock.iso(self.start),
            "days_to_trained": self.trained,
            "days_to_partial": self.partial,
            "days_to_full": self.full,
            "version": self.version,
        }

    def summary(self) -> str:
        def say(what: str, days: float | None) -> str:
            return f"{what} not yet" if days is None else f"{what} after {days:.1f} days"

        return (
            f"change from {clock.iso(self.start)[:16].replace('T', ' ')}: "
            f"{say('trained on it', self.trained)}, "
            f"{say(f'on >= {self.share:g}% of traffic', self.partial)}, "
            f"{say('on all traffic', self.full)}"
        )


def time_to_adapt(events: Sequence[Decision], start: int, *, share: float = 20.0) -> Adaptation:
    """(a), (b), (c) for the change starting at ``start`` (ms), from a policy's decisions
    (oldest first, as :func:`~modelloop.automation.loop.timeline` returns them)."""
    adapted: set[int] = set()  # versions trained on data reaching past the change's start
    trained = partial = full = None
    version = None
    for event in events:
        if event.time < start:
            continue
        evidence = event.evidence
        action = event.action.removeprefix("policy.")
        number = evidence.get("version")
        if number is None:
            continue
        if action == "trained" and _window_end(evidence) > start:
            adapted.add(int(number))
            if trained is None:
                trained, version = event.time, int(number)
        elif int(number) not in adapted:
            continue
        elif action == "canary" and float(evidence.get("canary_percent", 0)) >= share:
            partial = event.time if partial is None else partial
        elif action == "promoted":
            partial = event.time if partial is None else partial
            if full is None:
                full, version = event.time, int(number)
    return Adaptation(
        start, _days(trained, start), _days(partial, start), _days(full, start), version, share
    )


def detected_changes(events: Sequence[Decision]) -> list[int]:
    """The change starts (ms) the policy's triggers cited, oldest first, each once."""
    starts = {
        clock.to_ms(_parse(e.evidence["change_start"]))
        for e in events
        if e.evidence.get("change_start") is not None
    }
    return sorted(starts)


def _window_end(evidence: dict[str, Any]) -> int:
    window = evidence.get("window") or [None, None]
    return clock.to_ms(_parse(window[1])) if window[1] else 0


def _parse(value: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _days(moment: int | None, start: int) -> float | None:
    return None if moment is None else round((moment - start) / clock.DAY_MS, 2)
