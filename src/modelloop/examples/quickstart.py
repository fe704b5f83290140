"""The quickstart demo: a small LightGBM sweep, tracked end to end with the SDK.

    python -m modelloop.examples.quickstart [--rounds 150] [--seed 7]

It generates a seeded binary-classification data set with a nonlinear signal (numpy only, no
downloads), then trains one model per learning rate, each as a child run of a ``sweep`` run in
the experiment ``quickstart``. Every child run records its params, the train and validation
``binary_logloss`` / ``auc`` of every boosting round (``step`` = round), its feature importance
as a CSV artifact and the model in LightGBM's native text format. The training split is logged
as the versioned dataset ``quickstart-train`` with its profile. The parent run records the
best validation AUC and which child reached it. Everything lands where the settings say
(``$MODELLOOP_HOME``, default ``./.modelloop``; or a server at ``$MODELLOOP_TRACKING_URI``).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import modelloop as ml

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from rich.console import Console
    from rich.progress import Progress, TaskID

EXPERIMENT = "quickstart"
DATASET = "quickstart-train"
LEARNING_RATES = (0.03, 0.1, 0.3)
N_ROWS = 20_000
N_FEATURES = 10
FEATURES = [f"feature_{i}" for i in range(N_FEATURES)]


@dataclass(frozen=True)
class SplitData:
    x_train: NDArray[np.float64]
    y_train: NDArray[np.float64]
    x_valid: NDArray[np.float64]
    y_valid: NDArray[np.float64]

    @property
    def positive_rate(self) -> float:
        return float(self.y_train.mean())


@dataclass(frozen=True)
class TrainedRun:
    run_id: str
    learning_rate: float
    valid_auc: float  # after the last round
    best_valid_auc: float
    best_round: int


@dataclass(frozen=True)
class SweepSummary:
    sweep_run_id: str
    runs: list[TrainedRun]
    seconds: float

    @property
    def best(self) -> TrainedRun:
        return max(self.runs, key=lambda r: r.valid_auc)


def make_data(seed: int, rows: int = N_ROWS) -> SplitData:
    """Gaussian features; the label depends on interactions, a square and a threshold, so a
    linear model would miss most of it. Two features are pure noise. 80/20 train/valid split."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES))
    logit = (
        2.0 * np.sin(x[:, 0] * x[:, 1])
        + (x[:, 2] ** 2 - 1.0)
        + 1.5 * (x[:, 3] > 0.5) * x[:, 4]
        + 0.8 * x[:, 5]
        - 0.6 * x[:, 6] * x[:, 7]
        - 2.0
    )
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    cut = int(rows * 0.8)
    return SplitData(x[:cut], y[:cut], x[cut:], y[cut:])


def _metric_logger(
    run: ml.ActiveRun, on_round: Callable[[int, dict[str, float]], None]
) -> Callable[[Any], None]:
    """A LightGBM callback logging every evaluation result of a round as ``<set>_<metric>``."""

    def callback(env: Any) -> None:
        step = env.iteration + 1  # the number of trees so far: 1, 2, ..., rounds
        values = {
            f"{data}_{name}": float(value) for data, name, value, *_ in env.evaluation_result_list
        }
        run.log_metrics(values, step=step)
        on_round(step, values)

    callback.order = 20  # type: ignore[attr-defined]  # LightGBM runs callbacks by this order
    return callback


def train_one(
    data: SplitData,
    learning_rate: float,
    rounds: int,
    seed: int,
    progress: Progress,
    task: TaskID,
) -> TrainedRun:
    """Train one model inside a child run of the active run, logging everything about it."""
    import lightgbm as lgb

    params: dict[str, Any] = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "learning_rate": learning_rate,
        "num_leaves": 31,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    logged = {k: v for k, v in params.items() if k not in ("metric", "verbose")}
    with ml.start_run(
        name=f"lr={learning_rate}",
        params={**logged, "num_boost_round": rounds},
        tags={"model": "lightgbm", "task": "binary-classification"},
    ) as run:
        best = (float("-inf"), 0)
        last = float("nan")

        def on_round(step: int, values: dict[str, float]) -> None:
            nonlocal best, last
            auc = last = values["valid_auc"]
            if auc > best[0]:
                best = (auc, step)
            progress.update(task, advance=1, auc=f"valid auc {auc:.4f}")

        train = lgb.Dataset(data.x_train, label=data.y_train, feature_name=FEATURES)
        valid = lgb.Dataset(data.x_valid, label=data.y_valid, reference=train)
        booster = lgb.train(
            params,
            train,
            num_boost_round=rounds,
            valid_sets=[train, valid],
            valid_names=["train", "valid"],
            callbacks=[_metric_logger(run, on_round)],
        )
        run.log_metrics({"best_valid_auc": best[0], "best_round": best[1]})
        with tempfile.TemporaryDirectory(prefix="modelloop-quickstart-") as tmp:
            importance = Path(tmp) / "feature_importance.csv"
            _write_importance(booster, importance)
            run.log_artifact(importance)
            model = Path(tmp) / "model.txt"
            booster.save_model(str(model))
            run.log_artifact(model, artifact_path="model")
        run.set_tag("model.format", "lightgbm-text")
    return TrainedRun(run.run_id, learning_rate, last, best[0], best[1])


def _write_importance(booster: Any, path: Path) -> None:
    gain = booster.feature_importance(importance_type="gain")
    split = booster.feature_importance(importance_type="split")
    rows = sorted(zip(booster.feature_name(), gain, split, strict=True), key=lambda r: -r[1])
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["feature", "gain", "split"])
        writer.writerows((name, f"{g:.6g}", int(s)) for name, g, s in rows)


def log_training_data(data: SplitData) -> ml.DatasetVersion:
    """The training split as a versioned dataset of the active run (same seed, same version)."""
    import pandas as pd

    frame = pd.DataFrame(data.x_train, columns=FEATURES)
    frame["label"] = data.y_train.astype("int64")
    return ml.log_dataset(frame, DATASET, description="quickstart training split")


def run_sweep(rounds: int, seed: int, console: Console | None = None) -> SweepSummary:
    """Train one model per learning rate as child runs of a ``sweep`` run; return the results."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.perf_counter()
    data = make_data(seed)
    progress = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[auc]}"),
        TimeElapsedColumn(),
        console=console,
    )
    trained = []
    with (
        ml.start_run(
            experiment=EXPERIMENT,
            name="sweep",
            params={
                "learning_rates": ",".join(str(lr) for lr in LEARNING_RATES),
                "num_boost_round": rounds,
                "seed": seed,
                "rows": N_ROWS,
                "features": N_FEATURES,
                "positive_rate": round(data.positive_rate, 4),
            },
            tags={"kind": "sweep", "swept": "learning_rate"},
        ) as sweep,
        progress,
    ):
        log_training_data(data)
        tasks = [
            progress.add_task(f"lr={lr}", total=rounds, auc="", start=False)
            for lr in LEARNING_RATES
        ]
        for lr, task in zip(LEARNING_RATES, tasks, strict=True):
            progress.start_task(task)
            trained.append(train_one(data, lr, rounds, seed, progress, task))
        best = max(trained, key=lambda r: r.valid_auc)
        sweep.log_metrics({"best_valid_auc": best.valid_auc})
        sweep.set_tags({"best_run_id": best.run_id, "best_learning_rate": best.learning_rate})
    return SweepSummary(sweep.run_id, trained, time.perf_counter() - started)


def _cli() -> str:
    from modelloop.examples import cli_command

    return cli_command()


def print_summary(summary: SweepSummary, console: Console) -> None:
    from rich.table import Table

    settings = ml.get_client().settings
    table = Table(title="quickstart sweep", title_justify="left", header_style="bold")
    table.add_column("run id", no_wrap=True)
    table.add_column("learning rate", justify="right", no_wrap=True)
    table.add_column("valid auc", justify="right", no_wrap=True)
    table.add_column("peak (round)", justify="right", no_wrap=True)
    for run in summary.runs:
        table.add_row(
            run.run_id,
            f"{run.learning_rate:g}",
            f"{run.valid_auc:.4f}",
            f"{run.best_valid_auc:.4f} ({run.best_round})",
            style="bold green" if run is summary.best else None,
        )
    console.print(table)
    where = settings.tracking_uri or f"{settings.home} (SQLite + local files)"
    cli = _cli()
    console.print(
        f"Sweep run [bold]{summary.sweep_run_id}[/] with {len(summary.runs)} child runs, "
        f"tracked in {where}, in {summary.seconds:.1f} s.\n"
        f"Best validation AUC: [bold]{summary.best.valid_auc:.4f}[/] "
        f"(learning rate {summary.best.learning_rate:g}, run {summary.best.run_id}).\n\n"
        "Next:\n"
        f'  {cli} runs list --experiment {EXPERIMENT} --order-by "metrics.valid_auc DESC"\n'
        f"  {cli} runs show {summary.best.run_id}\n"
        f"  {cli} server    [dim]# then open http://127.0.0.1:8765/docs[/]",
        highlight=False,
        soft_wrap=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    from rich.console import Console

    parser = argparse.ArgumentParser(
        prog="python -m modelloop.examples.quickstart",
        description="Train a small LightGBM sweep on generated data, tracked with modelloop.",
    )
    parser.add_argument("--rounds", type=int, default=150, help="boosting rounds per model")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data and the models")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    console = Console()
    summary = run_sweep(args.rounds, args.seed, console)
    ml.get_client().flush()
    print_summary(summary, console)


if __name__ == "__main__":
    main()
