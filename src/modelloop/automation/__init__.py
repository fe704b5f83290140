"""Decisions made by code instead of by hand, with their evidence: the champion/challenger gate
and the policies that retrain, gate, roll out and roll back a deployment's model.

Importing this package stays light (standard library only); numpy, pandas and the model
libraries load when a gate is evaluated.
"""

from modelloop.automation.bootstrap import METRICS, Bootstrap, paired_bootstrap, paired_bootstraps
from modelloop.automation.decision import Decision
from modelloop.automation.entities import Policy, PolicyState
from modelloop.automation.gate import (
    GateCheck,
    GateOptions,
    GateResult,
    MetricComparison,
    ModelEvidence,
    decide,
    evaluate_gate,
)
from modelloop.automation.holdout import read_holdout
from modelloop.automation.loop import start_rollout, step_policy, timeline
from modelloop.automation.policy import (
    apply_policy,
    delete_policy,
    get_policy,
    list_policies,
    policy_state,
)
from modelloop.automation.scoring import ModelCost
from modelloop.automation.store import PolicyStore, open_policy_store
from modelloop.automation.training import TrainingContext

__all__ = [
    "METRICS",
    "Bootstrap",
    "Decision",
    "GateCheck",
    "GateOptions",
    "GateResult",
    "MetricComparison",
    "ModelCost",
    "ModelEvidence",
    "Policy",
    "PolicyState",
    "PolicyStore",
    "TrainingContext",
    "apply_policy",
    "decide",
    "delete_policy",
    "evaluate_gate",
    "get_policy",
    "list_policies",
    "open_policy_store",
    "paired_bootstrap",
    "paired_bootstraps",
    "policy_state",
    "read_holdout",
    "start_rollout",
    "step_policy",
    "timeline",
]
