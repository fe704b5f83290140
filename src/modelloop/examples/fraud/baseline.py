"""The handbook's baseline fraud models, as a modelloop pipeline, next to its published table.

    python -m modelloop.examples.fraud.baseline          # regenerates docs/fraud-baseline.md

Steps: simulate the reference dataset (Parquet-cached) -> add the 14 features -> split with the
book's protocol (train 2018-07-25..31, 7 days of label delay, test 2018-08-08..14 without cards
already known compromised) -> fit the five baseline models and LightGBM on standardised inputs,
each a child run with its test AUC ROC, average precision and card precision@100. Matching the
published numbers is the check that our simulator, features, split and metrics are the book's:
anything we later claim about drift or retraining is then measured on a known workload.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelloop.examples.fraud.features import FEATURES, add_features
from modelloop.examples.fraud.simulator import SimulationConfig, simulate
from modelloop.pipelines import Pipeline, PipelineRun, step

EXPERIMENT = "fraud-baseline"
TOP_K = 100

#: Test AUC ROC, average precision and card precision@100 the handbook reports (chapter 3.4).
PUBLISHED: dict[str, tuple[float, float, float]] = {
    "Logistic regression": (0.871, 0.606, 0.291),
    "Decision tree, depth 2": (0.763, 0.496, 0.241),
    "Decision tree, unlimited": (0.788, 0.309, 0.243),
    "Random forest": (0.867, 0.658, 0.287),
    "XGBoost": (0.862, 0.639, 0.273),
    "random scores (0.5)": (0.5, 0.007, 0.017),
}
#: The split the protocol must produce on the reference dataset (spec section 3).
PUBLISHED_SPLIT = {"train_tx": 67_240, "train_frauds": 598, "test_tx": 58_264, "test_frauds": 385}
PUBLISHED_DATASET = {"transactions": 1_754_155, "frauds": 14_681}


@step
def transactions(
    n_customers: int = 5_000,
    n_terminals: int = 10_000,
    n_days: int = 183,
    start_date: str = "2018-04-01",
    cache_dir: str = "",
) -> pd.DataFrame:
    """The simulated transactions; ``cache_dir`` "" means ``$MODELLOOP_HOME/cache/fraud``."""
    config = SimulationConfig(n_customers, n_terminals, n_days, start_date)
    return simulate(config, cache_dir=Path(cache_dir) if cache_dir else _default_cache())


@step(outputs=("featured", "dataset_checks"))
def features(
    transactions: pd.DataFrame,
    train_start: str = "2018-07-25",
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Features over the whole history; only the protocol's days are kept (a small artifact)."""
    start = pd.Timestamp(train_start)
    end = start + pd.Timedelta(days=delta_train + delta_delay + delta_test)
    featured = add_features(transactions)
    when = featured["TX_DATETIME"]
    window = featured[(when >= start) & (when < end)].reset_index(drop=True)
    scenarios = transactions["TX_FRAUD_SCENARIO"].value_counts()
    checks = {
        "transactions": len(transactions),
        "frauds": int(transactions["TX_FRAUD"].sum()),
        **{f"scenario_{s}": int(scenarios.get(s, 0)) for s in (1, 2, 3)},
    }
    return window, checks


@step(outputs=("train", "test"))
def split(
    featured: pd.DataFrame,
    train_start: str = "2018-07-25",
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on a week, skip the label delay, test on a week without already-known frauds."""
    return train_test_split(featured, train_start, delta_train, delta_delay, delta_test)


def train_test_split(
    frame: pd.DataFrame,
    train_start: str = "2018-07-25",
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The handbook's split (spec section 3).

    Cards with a fraud in training are known compromised and blocked, so their test transactions
    would be free points; before test day D the investigators also know the frauds of day D - 8
    (the last day whose labels have arrived), which removes those cards from day D onwards.
    """
    start = pd.Timestamp(train_start)
    when = frame["TX_DATETIME"]
    train = frame[(when >= start) & (when < start + pd.Timedelta(days=delta_train))]
    known = set(train.loc[train["TX_FRAUD"] == 1, "CUSTOMER_ID"].tolist())
    first_day = int(train["TX_TIME_DAYS"].min())
    days = frame["TX_TIME_DAYS"]
    parts = []
    for day in range(delta_test):
        revealed = frame[(days == first_day + delta_train + day - 1) & (frame["TX_FRAUD"] == 1)]
        known |= set(revealed["CUSTOMER_ID"].tolist())
        test_day = frame[days == first_day + delta_train + delta_delay + day]
        parts.append(test_day[~test_day["CUSTOMER_ID"].isin(known)])
    test = pd.concat(parts) if parts else frame.iloc[:0]
    return (
        train.sort_values("TRANSACTION_ID").reset_index(drop=True),
        test.sort_values("TRANSACTION_ID").reset_index(drop=True),
    )


def baseline_models(n_jobs: int = 1) -> dict[str, Any]:
    """The book's five classifiers (``random_state=0``, library defaults) plus LightGBM.

    The book ran xgboost 1.x, whose defaults were the exact greedy tree method and a base score
    of 0.5; xgboost 2 switched to histograms and a base score estimated from the labels, which
    scores 0.839 / 0.564 / 0.247 here instead of the published 0.862 / 0.639 / 0.273. So the
    old defaults are spelled out, and the current ones are reported as a separate row.
    """
    import lightgbm
    import xgboost
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    return {
        "Logistic regression": LogisticRegression(random_state=0),
        "Decision tree, depth 2": DecisionTreeClassifier(max_depth=2, random_state=0),
        "Decision tree, unlimited": DecisionTreeClassifier(random_state=0),
        "Random forest": RandomForestClassifier(random_state=0, n_jobs=n_jobs),
        "XGBoost": xgboost.XGBClassifier(
            random_state=0, n_jobs=n_jobs, tree_method="exact", base_score=0.5
        ),
        "XGBoost, xgboost 2 defaults": xgboost.XGBClassifier(random_state=0, n_jobs=n_jobs),
        "LightGBM": lightgbm.LGBMClassifier(random_state=0, n_jobs=n_jobs, verbose=-1),
    }


@step(env=("scikit-learn", "xgboost", "lightgbm"))
def evaluate(
    train: pd.DataFrame, test: pd.DataFrame, n_jobs: int = 1
) -> dict[str, dict[str, float]]:
    """Fit each model on standardised train inputs; score the test week, one child run each."""
    from sklearn.preprocessing import StandardScaler

    from modelloop.tracking.fluent import start_run

    scaler = StandardScaler().fit(train[FEATURES])
    x_train = pd.DataFrame(scaler.transform(train[FEATURES]), columns=FEATURES)
    x_test = pd.DataFrame(scaler.transform(test[FEATURES]), columns=FEATURES)
    results: dict[str, dict[str, float]] = {}
    candidates: dict[str, Any] = {**baseline_models(n_jobs), "random scores (0.5)": None}
    for name, model in candidates.items():
        started = time.perf_counter()
        if model is None:
            scores = np.full(len(test), 0.5)
        else:
            model.fit(x_train, train["TX_FRAUD"])
            scores = np.asarray(model.predict_proba(x_test))[:, 1]
        seconds = time.perf_counter() - started
        metrics = {**score(test, scores), "fit_predict_seconds": round(seconds, 3)}
        params = {"model": name, "random_state": 0, "features": len(FEATURES)}
        with start_run(name=name, params=params) as run:
            run.log_metrics(metrics)
        results[name] = metrics
    return results


def score(test: pd.DataFrame, scores: np.ndarray[Any, Any]) -> dict[str, float]:
    """AUC ROC, average precision and card precision@100 (daily, detected cards removed)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from modelloop.monitoring.performance import card_precision_at_k

    labels = test["TX_FRAUD"].to_numpy()
    cards = pd.DataFrame(
        {
            "day": test["TX_TIME_DAYS"].to_numpy(),
            "entity": test["CUSTOMER_ID"].to_numpy(),
            "score": scores,
            "label": labels,
        }
    )
    card_precision, _ = card_precision_at_k(cards, k=TOP_K)
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        f"card_precision_at_{TOP_K}": float(card_precision or 0.0),
    }


pipeline = Pipeline([transactions, features, split, evaluate], name=EXPERIMENT)


def _default_cache() -> Path:
    from modelloop.settings import load_settings

    return load_settings().home / "cache" / "fraud"


def run(*, cache: bool = True, n_jobs: int = 1) -> tuple[PipelineRun, float]:
    """Run the pipeline (tracked in experiment ``fraud-baseline``); returns it and its seconds."""
    started = time.perf_counter()
    result = pipeline.run(params={"n_jobs": n_jobs}, cache=cache, experiment=EXPERIMENT)
    return result, time.perf_counter() - started


def render(result: PipelineRun, seconds: float, command: str) -> str:
    """The Markdown report: our table beside the published one, the data checks, provenance."""
    results: dict[str, dict[str, float]] = result.value("evaluate")
    checks: dict[str, int] = result.value("dataset_checks")
    train, test = result.value("train"), result.value("test")
    split_counts = {
        "train_tx": len(train),
        "train_frauds": int(train["TX_FRAUD"].sum()),
        "test_tx": len(test),
        "test_frauds": int(test["TX_FRAUD"].sum()),
    }
    lines = [
        "# Fraud baseline: the handbook's models on our simulator",
        "",
        "Generated by `" + command + "` (do not edit by hand). Spec:",
        "`../shared/specs/fraud-simulator.md`; source: `src/modelloop/examples/fraud/`.",
        "",
        "Test week 2018-08-08..14 (train 2018-07-25..31, 7 days of label delay, cards known",
        "compromised removed); inputs: TX_AMOUNT + the 14 features, standardised on train.",
        "Published = Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud",
        "Detection*, chapter 3.4. The last column is the largest gap of the three metrics.",
        "",
        "| model (random_state=0) | AUC ROC | AP | CP@100 | published AUC | AP | CP@100 "
        "| max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rank = {name: i for i, name in enumerate(dict.fromkeys([*baseline_models(), *PUBLISHED]))}
    for name, metrics in sorted(results.items(), key=lambda item: rank.get(item[0], len(rank))):
        ours = (
            metrics["auc_roc"],
            metrics["average_precision"],
            metrics[f"card_precision_at_{TOP_K}"],
        )
        published = PUBLISHED.get(name)
        cells = [f"{v:.3f}" for v in ours]
        if published is None:
            cells += ["-", "-", "-", "-"]
        else:
            gap = max(abs(a - b) for a, b in zip(ours, published, strict=True))
            cells += [f"{v:.3f}" for v in published] + [f"{gap:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Data checks",
        "",
        "| check | ours | published |",
        "|---|---|---|",
        f"| transactions | {checks['transactions']:,} | {PUBLISHED_DATASET['transactions']:,} |",
        f"| frauds | {checks['frauds']:,} | {PUBLISHED_DATASET['frauds']:,} |",
        "| frauds by scenario (1 / 2 / 3) | "
        f"{checks['scenario_1']:,} / {checks['scenario_2']:,} / {checks['scenario_3']:,} "
        "| 973 / 9,077 / 4,631 |",
    ]
    for key, label in [
        ("train_tx", "train transactions"),
        ("train_frauds", "train frauds"),
        ("test_tx", "test transactions"),
        ("test_frauds", "test frauds"),
    ]:
        lines.append(f"| {label} | {split_counts[key]:,} | {PUBLISHED_SPLIT[key]:,} |")
    lines += [
        "",
        "## Notes",
        "",
        "- The dataset is the book's row for row: same seeds, same draws, same fraud scenarios",
        "  (the simulator replays numpy's legacy algorithms; a test compares it with per-call",
        "  draws). Only the order of transactions in the same second may differ (we sort stably).",
        "- XGBoost uses the defaults of xgboost 1.x, which the book ran (`tree_method='exact'`,",
        "  `base_score=0.5`); xgboost 2 switched to histograms and a fitted base score, hence the",
        "  extra row. With identical data and split, the other gaps (<= 0.003) most likely come",
        "  from scikit-learn versions; CP@100 ties are broken by card id",
        "  (`modelloop.monitoring.performance`), the book's by its sort order.",
        "- Random forest and the boosters run with `n_jobs` threads (`--n-jobs`, default 1);",
        "  results do not depend on it. The `transactions` step reads the simulator's Parquet",
        "  cache when it is warm; generating the 1.75M transactions cold takes ~3-4 s here.",
    ]
    steps = ", ".join(f"{s.name} {s.duration_s:.1f} s ({s.state})" for s in result.steps.values())
    lines += [
        "",
        "## How it was made",
        "",
        f"- Command: `{command}` (pipeline run `{result.run_id}`, experiment `{EXPERIMENT}`)",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {_machine()}",
        f"- Libraries: {_versions()}",
        f"- Time taken: {seconds:.1f} s end to end; steps: {steps}",
        "",
    ]
    return "\n".join(lines)


def _machine() -> str:
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("\n", 1)[0].split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores{memory}, "
        f"Python {platform.python_version()}"
    )


def _versions() -> str:
    names = ["numpy", "pandas", "scikit-learn", "xgboost", "lightgbm"]
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--output", default="docs/fraud-baseline.md", help="Markdown to write")
    parser.add_argument("--no-cache", action="store_true", help="rerun every pipeline step")
    parser.add_argument("--n-jobs", type=int, default=1, help="threads for the forest/boosters")
    args = parser.parse_args(argv)
    result, seconds = run(cache=not args.no_cache, n_jobs=args.n_jobs)
    if result.status != "FINISHED":
        failed = {s.name: s.error for s in result.steps.values() if s.error}
        raise SystemExit(f"pipeline {result.run_id} failed: {failed}")
    command = "python -m modelloop.examples.fraud.baseline" + (
        " --no-cache" if args.no_cache else ""
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(result, seconds, command))
    print(output.read_text())


if __name__ == "__main__":
    main()
