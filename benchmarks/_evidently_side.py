"""Evidently side of ``drift.py``; runs inside ``.bench/evidently-venv``, prints one JSON object.

python _evidently_side.py --reference REF.parquet --current CUR.parquet --repeats 3
    [--infer-types] [--false-alarms PERMUTATIONS.npy]

Reads both Parquet files (not timed), then times ``Report([DataDriftPreset()]).run(current,
reference)`` (best of ``--repeats``; wrapping the frames in ``Dataset.from_pandas`` is timed
apart) and reports, per column, the column type, method and threshold Evidently chose, its value
and verdict. Column types are declared by name (``n*`` numerical, ``c*`` categorical) unless
``--infer-types``, where Evidently infers them as it does for a user who declares none.

``--false-alarms``: each row of the array is a permutation of the reference and current rows
pooled; its first half is taken as reference and the rest as current, a split with no drift by
construction, and each column goes through Evidently's default test as ``DataDriftPreset`` runs
it (``get_stattest`` on the inferred type, then the test). Reported: per column, how many splits
were flagged and by which tests.
"""

from __future__ import annotations

import argparse
import time

import evidently
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from _common import emit, log


def drifted(method: str, value: float, threshold: float) -> bool:
    """Evidently's verdict: p-value tests drift below the threshold, distances at or above it."""
    return bool(value < threshold if "p_value" in method else value >= threshold)


def false_alarms(reference: pd.DataFrame, current: pd.DataFrame, path: str) -> dict:
    """Evidently's default test of every column on random splits of the pooled rows."""
    from evidently.core.datasets import infer_column_type
    from evidently.legacy.calculations.stattests.registry import get_stattest

    pooled = pd.concat([reference, current], ignore_index=True)
    permutations = np.load(path)
    half = len(reference)
    out: dict = {}
    for column in pooled.columns:
        alarms, tests = 0, set()
        for order in permutations:
            values = pooled[column].iloc[order]
            ref, cur = values.iloc[:half].dropna(), values.iloc[half:].dropna()
            column_type = infer_column_type(values.iloc[half:])  # from the current, as a report
            test = get_stattest(ref, cur, column_type, None)
            alarms += bool(test(ref, cur, column_type, None).drifted)
            tests.add(test.display_name)
        out[column] = {"alarms": alarms, "splits": len(permutations), "tests": sorted(tests)}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reference", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--infer-types", action="store_true")
    p.add_argument("--false-alarms")
    a = p.parse_args()
    reference, current = pd.read_parquet(a.reference), pd.read_parquet(a.current)
    definition = None
    if not a.infer_types:
        definition = DataDefinition(
            numerical_columns=[c for c in reference.columns if c.startswith("n")],
            categorical_columns=[c for c in reference.columns if c.startswith("c")],
        )
    runs, wraps, snapshot, cur = [], [], None, None
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
    assert cur is not None
    columns, count = {}, None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            method, threshold = config["method"], float(config["threshold"])
            value = float(metric["value"])
            columns[config["column"]] = {
                "column_type": cur.data_definition.get_column_type(config["column"]).value,
                "method": method,
                "threshold": threshold,
                "value": value,
                "drifted": drifted(method, value, threshold),
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            count = metric["value"]["count"]
    result = {
        "evidently": evidently.__version__,
        "pandas": pd.__version__,
        "rows": len(current),
        "run_s": min(runs),
        "all_run_s": runs,
        "wrap_s": min(wraps),
        "columns": columns,
        "drifted_count": count,
    }
    if a.false_alarms:
        result["false_alarms"] = false_alarms(reference, current, a.false_alarms)
    emit(result)


if __name__ == "__main__":
    main()
