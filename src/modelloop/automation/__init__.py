"""Decisions made by code instead of by hand, with their evidence: the champion/challenger gate
and the policies that retrain, gate, roll out and roll back a deployment's model.

Importing this package stays light (standard library only); numpy, pandas and the model
libraries load when a gate is evaluated.
"""

from modelloop.automation.gate import (
    METRICS,
    Bootstrap,
    GateCheck,
    GateResult,
    ModelEvidence,
    evaluate_gate,
    paired_bootstrap,
    read_holdout,
)
from modelloop.automation.loop import (
    Decision,
    TrainingContext,
    start_rollout,
    step_policy,
    timeline,
)
from modelloop.automation.policy import (
    Policy,
    PolicyState,
    apply_policy,
    get_policy,
    list_policies,
    policy_state,
)

__all__ = [
    "METRICS",
    "Bootstrap",
    "Decision",
    "GateCheck",
    "GateResult",
    "ModelEvidence",
    "Policy",
    "PolicyState",
    "TrainingContext",
    "apply_policy",
    "evaluate_gate",
    "get_policy",
    "list_policies",
    "paired_bootstrap",
    "policy_state",
    "read_holdout",
    "start_rollout",
    "step_policy",
    "timeline",
]
