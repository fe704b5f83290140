"""Versioned datasets: content-addressed Parquet versions with a schema and a statistical
profile, contracts that validate frames, and train/serve skew checks between profiles."""

from modelloop.datasets.contracts import (
    Check,
    Contract,
    ContractViolation,
    Expect,
    ValidationReport,
    Violation,
)
from modelloop.datasets.entities import Dataset, DatasetValidation, DatasetVersion, Schema
from modelloop.datasets.fluent import (
    check_skew,
    dataset_versions,
    get_dataset,
    list_datasets,
    load_dataset,
    log_dataset,
)
from modelloop.datasets.profile import ColumnProfile, DatasetProfile, Histogram, compute_profile
from modelloop.datasets.skew import ColumnSkew, SkewReport, Tolerances, compare_profiles

__all__ = [
    "Check",
    "ColumnProfile",
    "ColumnSkew",
    "Contract",
    "ContractViolation",
    "Dataset",
    "DatasetProfile",
    "DatasetValidation",
    "DatasetVersion",
    "Expect",
    "Histogram",
    "Schema",
    "SkewReport",
    "Tolerances",
    "ValidationReport",
    "Violation",
    "check_skew",
    "compare_profiles",
    "compute_profile",
    "dataset_versions",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "log_dataset",
]
