"""What a monitor run finds: windows, what each scope of a window held, and a run's result.

Kept apart from the runner that computes them so the alert store and notifications, which the
runner calls, can speak of results without importing the runner back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelloop.clock import days, iso

DRIFT, PERFORMANCE = "drift", "performance"
WHOLE = 0  # model_version of the deployment as a whole


@dataclass(frozen=True, slots=True)
class Window:
    start: int  # ms since the epoch, inclusive
    end: int  # exclusive

    def __str__(self) -> str:
        return f"[{iso(self.start)}, {iso(self.end)})"


@dataclass(frozen=True, slots=True)
class Backlog:
    """Windows of one kind that became due longer ago than the monitor's ``catch_up`` and were
    never stored: left uncomputed (each can still be checked with ``window=...``)."""

    monitor: str
    kind: str
    count: int  # windows left uncomputed, in [start, end)
    start: int  # ms since the epoch: the first one's start
    end: int  # the last one's end
    catch_up: int  # ms

    def __str__(self) -> str:
        return (
            f"monitor {self.monitor}: {self.count} {self.kind} window(s) in "
            f"[{iso(self.start)}, {iso(self.end)}) became due more than {days(self.catch_up)} "
            "ago (its catch_up) and are not computed; check one with "
            f"'modelloop monitor run {self.monitor} --window {iso(self.start)[:10]}'"
        )


@dataclass(slots=True)
class ScopeResult:
    """One window checked for one scope: the deployment (version 0) or one model version."""

    model_version: int
    status: str  # ok | no_data | insufficient_data | insufficient_labels | no_reference
    n_predictions: int
    values: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What a run did with one window of one kind."""

    monitor: str
    kind: str
    window: Window
    stored: bool  # False: the window was already stored (nothing written)
    scopes: tuple[ScopeResult, ...] = ()
    alerts: tuple[dict[str, Any], ...] = ()  # alert transitions this window caused

    @property
    def whole(self) -> ScopeResult | None:
        return next((s for s in self.scopes if s.model_version == WHOLE), None)

    def to_dict(self) -> dict[str, Any]:
        """What the SDK and the REST API return for a run (windows as ms since the epoch)."""
        return {
            "kind": self.kind,
            "window_start": self.window.start,
            "window_end": self.window.end,
            "stored": self.stored,
            "scopes": [
                {
                    "model_version": s.model_version,
                    "status": s.status,
                    "n_predictions": s.n_predictions,
                    "values": s.values,
                    "notes": list(s.report.get("notes") or []),  # why a status is not ok
                }
                for s in self.scopes
            ],
            "alerts": list(self.alerts),
        }
