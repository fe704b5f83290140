"""A policy's decision: one transition of the loop, as its audit event records it.

The loop writes them, the triggers read the ones before (a scheduled retraining, the budget, a
change followed), and time to adapt is counted from them: one shape for all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Decision:
    """One transition of the loop, as recorded in the audit trail."""

    action: str  # policy.trigger | policy.trained | policy.shadow | policy.trigger_skipped ...
    time: int  # ms since the epoch (the step's ``now``)
    evidence: dict[str, Any]
