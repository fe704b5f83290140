"""Watching deployed models: drift of their inputs and outputs against a stored reference, and
their performance once the delayed labels have arrived."""

from modelloop.monitoring.drift import (
    PSI,
    ChiSquared,
    ColumnReference,
    DriftReport,
    DriftResult,
    JensenShannon,
    KolmogorovSmirnov,
    Wasserstein,
    check_drift,
    default_method,
    fit_reference,
    fit_references,
)
from modelloop.monitoring.performance import (
    PerformanceReport,
    card_precision_at_k,
    performance,
    precision_at_k,
    windows,
)

__all__ = [
    "PSI",
    "ChiSquared",
    "ColumnReference",
    "DriftReport",
    "DriftResult",
    "JensenShannon",
    "KolmogorovSmirnov",
    "PerformanceReport",
    "Wasserstein",
    "card_precision_at_k",
    "check_drift",
    "default_method",
    "fit_reference",
    "fit_references",
    "performance",
    "precision_at_k",
    "windows",
]
