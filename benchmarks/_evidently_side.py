"""Evidently side of ``drift.py``; runs inside ``.bench/evidently-venv``, prints one JSON object.

python _evidently_side.py --reference REF.parquet --current CUR.parquet --repeats 3

Reads both Parquet files (not timed), then times ``Report([DataDriftPreset()]).run(current,
reference)`` (best of ``--repeats``; wrapping the frames in ``Dataset.from_pandas`` is timed
apart) and reports, per column, the method and threshold Evidently chose, its value and verdict.
"""

from __future__ import annotations

import argparse
import time

import evidently
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from _common import emit, log


def drifted(method: str, value: float, threshold: float) -> bool:
    """Evidently's verdict: p-value tests drift below the threshold, distances at or above it."""
    return bool(value < threshold if "p_value" in method else value >= threshold)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reference", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    reference, current = pd.read_parquet(a.reference), pd.read_parquet(a.current)
    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c.startswith("n")],
        categorical_columns=[c for c in reference.columns if c.startswith("c")],
    )
    runs, wraps, snapshot = [], [], None
    for i in range(a.repeats):
        t = time.perf_counter()
        cur = Dataset.from_pandas(current, data_definition=definition)
        ref = Dataset.from_pandas(reference, data_definition=definition)
        wraps.append(time.perf_counter() - t)
        t = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(cur, ref)
        runs.append(time.perf_counter() - t)
        log(f"evidently {len(current):,} rows, run {i + 1}/{a.repeats}: {runs[-1]:.2f}s")
    assert snapshot is not None
    columns, count = {}, None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            method, threshold = config["method"], float(config["threshold"])
            value = float(metric["value"])
            columns[config["column"]] = {
                "method": method,
                "threshold": threshold,
                "value": value,
                "drifted": drifted(method, value, threshold),
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            count = metric["value"]["count"]
    emit(
        {
            "evidently": evidently.__version__,
            "pandas": pd.__version__,
            "rows": len(current),
            "run_s": min(runs),
            "all_run_s": runs,
            "wrap_s": min(wraps),
            "columns": columns,
            "drifted_count": count,
        }
    )


if __name__ == "__main__":
    main()
