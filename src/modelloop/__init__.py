"""modelloop: the whole loop of a production model's life in one install.

import modelloop as ml

with ml.start_run(experiment="fraud", params={"lr": 0.05}) as run:
    run.log_metric("auc", 0.93, step=1)
    ml.register_model(run, "fraud-detector", booster, training_data=train)

ml.set_alias("fraud-detector", "challenger", 1, reason="beats the baseline")
model = ml.load_model("models:/fraud-detector@challenger")
"""

from modelloop._version import __version__
from modelloop.automation import GateOptions, apply_policy, evaluate_gate, step_policy
from modelloop.datasets import (
    Check,
    Contract,
    ContractViolation,
    DatasetVersion,
    Expect,
    compare_profiles,
    dataset_versions,
    get_dataset,
    list_datasets,
    load_dataset,
    log_dataset,
    skew,
)
from modelloop.errors import (
    AlreadyExists,
    Conflict,
    ConnectionLost,
    Forbidden,
    InvalidArgument,
    InvalidFilter,
    InvalidInput,
    ModelloopError,
    NotFound,
    PayloadTooLarge,
    ServerUnavailable,
    Unauthorized,
    UnsafeFormat,
    UnsafePath,
)
from modelloop.monitoring import (
    alerts,
    apply_monitor,
    get_monitor,
    list_monitors,
    monitor_results,
    run_monitor,
)
from modelloop.pipelines import (
    ModelOutput,
    Pipeline,
    PipelineRun,
    StepState,
    fan_out,
    lineage,
    reproduce,
    step,
)
from modelloop.registry.client import Registry
from modelloop.registry.entities import (
    Alias,
    AliasRequest,
    ModelLineage,
    ModelVersion,
    RegisteredModel,
    RequestStatus,
    VersionStatus,
)
from modelloop.registry.fluent import (
    approve_request,
    audit_log,
    delete_alias,
    download_model,
    get_model_version,
    get_registry,
    load_model,
    model_lineage,
    reference_profile,
    register_model,
    reject_request,
    request_alias,
    resolve_model_uri,
    set_alias,
    set_reference_profile,
    set_version_status,
    verify_audit,
)
from modelloop.serving.fluent import (
    apply_deployment,
    delete_deployment,
    get_deployment,
    list_deployments,
)
from modelloop.serving.predictions import predictions
from modelloop.settings import Settings, load_settings
from modelloop.store_clock import StoreClock, set_store_clock, store_clock, use_wall_clock
from modelloop.tracking.client import Client
from modelloop.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus
from modelloop.tracking.fluent import active_run, get_client, search_runs, start_run
from modelloop.tracking.run import ActiveRun

__all__ = [
    "ActiveRun",
    "Alias",
    "AliasRequest",
    "AlreadyExists",
    "ArtifactInfo",
    "Check",
    "Client",
    "Conflict",
    "ConnectionLost",
    "Contract",
    "ContractViolation",
    "DatasetVersion",
    "Expect",
    "Experiment",
    "Forbidden",
    "GateOptions",
    "InvalidArgument",
    "InvalidFilter",
    "InvalidInput",
    "Metric",
    "ModelLineage",
    "ModelOutput",
    "ModelVersion",
    "ModelloopError",
    "NotFound",
    "PayloadTooLarge",
    "Pipeline",
    "PipelineRun",
    "RegisteredModel",
    "Registry",
    "RequestStatus",
    "Run",
    "RunStatus",
    "ServerUnavailable",
    "Settings",
    "StepState",
    "StoreClock",
    "Unauthorized",
    "UnsafeFormat",
    "UnsafePath",
    "VersionStatus",
    "__version__",
    "active_run",
    "alerts",
    "apply_deployment",
    "apply_monitor",
    "apply_policy",
    "approve_request",
    "audit_log",
    "compare_profiles",
    "dataset_versions",
    "delete_alias",
    "delete_deployment",
    "download_model",
    "evaluate_gate",
    "fan_out",
    "get_client",
    "get_dataset",
    "get_deployment",
    "get_model_version",
    "get_monitor",
    "get_registry",
    "lineage",
    "list_datasets",
    "list_deployments",
    "list_monitors",
    "load_dataset",
    "load_model",
    "load_settings",
    "log_dataset",
    "model_lineage",
    "monitor_results",
    "predictions",
    "reference_profile",
    "register_model",
    "reject_request",
    "reproduce",
    "request_alias",
    "resolve_model_uri",
    "run_monitor",
    "search_runs",
    "set_alias",
    "set_reference_profile",
    "set_store_clock",
    "set_version_status",
    "skew",
    "start_run",
    "step",
    "step_policy",
    "store_clock",
    "use_wall_clock",
    "verify_audit",
]
