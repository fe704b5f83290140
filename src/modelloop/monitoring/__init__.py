"""Watching deployed models: drift of their inputs and outputs against a stored reference, and
their performance once the delayed labels have arrived, on a schedule, with alerts.

The SDK functions (``apply_monitor``, ``run_monitor``, ...) import nothing heavy; the statistics
(numpy, pandas, scipy) load on first use of a drift or performance name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelloop.monitoring.fluent import (
    apply_monitor,
    delete_monitor,
    get_monitor,
    list_alerts,
    list_monitors,
    monitor_results,
    run_monitor,
)

if TYPE_CHECKING:
    from modelloop.datasets.reference import ColumnReference, fit_reference, fit_references
    from modelloop.monitoring.drift import (
        PSI,
        ChiSquared,
        DriftReport,
        DriftResult,
        JensenShannon,
        KolmogorovSmirnov,
        Wasserstein,
        check_drift,
        check_drift_chunks,
        default_method,
    )
    from modelloop.monitoring.monitor import AlertRule, Monitor
    from modelloop.monitoring.performance import (
        PerformanceReport,
        card_precision_at_k,
        performance,
        precision_at_k,
        windows,
    )
    from modelloop.monitoring.store import Alert

_DRIFT = (
    "PSI ChiSquared DriftReport DriftResult JensenShannon KolmogorovSmirnov Wasserstein "
    "check_drift check_drift_chunks default_method"
)
_REFERENCE = "ColumnReference fit_reference fit_references"
_PERFORMANCE = "PerformanceReport card_precision_at_k performance precision_at_k windows"
_LAZY = {
    **dict.fromkeys(_DRIFT.split(), "monitoring.drift"),
    **dict.fromkeys(_REFERENCE.split(), "datasets.reference"),
    **dict.fromkeys(_PERFORMANCE.split(), "monitoring.performance"),
    "AlertRule": "monitoring.monitor",
    "Monitor": "monitoring.monitor",
    "Alert": "monitoring.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelloop.monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(f"modelloop.{module}"), name)


__all__ = [
    "PSI",
    "Alert",
    "AlertRule",
    "ChiSquared",
    "ColumnReference",
    "DriftReport",
    "DriftResult",
    "JensenShannon",
    "KolmogorovSmirnov",
    "Monitor",
    "PerformanceReport",
    "Wasserstein",
    "apply_monitor",
    "card_precision_at_k",
    "check_drift",
    "check_drift_chunks",
    "default_method",
    "delete_monitor",
    "fit_reference",
    "fit_references",
    "get_monitor",
    "list_alerts",
    "list_monitors",
    "monitor_results",
    "performance",
    "precision_at_k",
    "run_monitor",
    "windows",
]
