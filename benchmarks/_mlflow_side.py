"""MLflow side of ``tracking.py``; runs inside ``.bench/mlflow-venv``, prints one JSON object.

python _mlflow_side.py ingest  --uri URI --n-sync 2000 --n-async 2000 --n-batch 20000
python _mlflow_side.py history --uri URI --points 100000
python _mlflow_side.py seed    --uri sqlite:///PATH --runs 10000   (not timed)
python _mlflow_side.py search  --uri URI
"""

from __future__ import annotations

import argparse
import time
import uuid

import mlflow
from mlflow.entities import Metric, Param

from _common import (
    SEARCH_EXPERIMENT,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    emit,
    log,
    search_dataset,
    timed_reads,
)

BATCH = 1000


def _new_run(client: mlflow.MlflowClient, prefix: str) -> str:
    exp = client.create_experiment(f"{prefix}-{uuid.uuid4().hex[:8]}")
    return client.create_run(exp).info.run_id


def _log_points(client: mlflow.MlflowClient, run_id: str, key: str, n: int) -> None:
    ts = int(time.time() * 1000)
    for k in range(0, n, BATCH):
        metrics = [Metric(key, 1.0 / (i + 1), ts, i) for i in range(k, min(k + BATCH, n))]
        client.log_batch(run_id, metrics=metrics)


def ingest(client: mlflow.MlflowClient, n_sync: int, n_async: int, n_batch: int) -> dict:
    """Per-call loop (synchronous), per-call loop (async + flush), log_batch of 1000."""
    run_id = _new_run(client, "ingest")
    t = time.perf_counter()
    for i in range(n_sync):
        client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
    sync_s = time.perf_counter() - t

    mlflow.set_experiment(f"async-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run():
        t = time.perf_counter()
        for i in range(n_async):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=False)
        enqueue_s = time.perf_counter() - t
        mlflow.flush_async_logging()
        async_s = time.perf_counter() - t

    t = time.perf_counter()
    _log_points(client, run_id, "acc", n_batch)
    batch_s = time.perf_counter() - t
    return {
        "per_call": {"n": n_sync, "rate": n_sync / sync_s},
        "async": {"n": n_async, "rate": n_async / async_s},
        "async_enqueue": {"n": n_async, "rate": n_async / enqueue_s},
        "batch": {"n": n_batch, "rate": n_batch / batch_s},
    }


def history(client: mlflow.MlflowClient, points: int) -> dict:
    """Read a ``points``-long metric history: cold, then 3 warm reads (logging not timed)."""
    run_id = _new_run(client, "history")
    _log_points(client, run_id, "loss", points)
    timing, hist = timed_reads(lambda: client.get_metric_history(run_id, "loss"))
    return {"history": {"n": len(hist), **timing}}


def seed(client: mlflow.MlflowClient, runs: int) -> dict:
    """Create the search experiment: one create_run + one log_batch per run."""
    exp = client.create_experiment(SEARCH_EXPERIMENT)
    ts = int(time.time() * 1000)
    t = time.perf_counter()
    for r, (metrics, params) in enumerate(search_dataset(runs)):
        run_id = client.create_run(exp).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
        if (r + 1) % 1000 == 0:
            log(f"mlflow seed: {r + 1}/{runs} runs, {time.perf_counter() - t:.0f}s")
    return {"seeded": runs, "seconds": time.perf_counter() - t}


def search(client: mlflow.MlflowClient) -> dict:
    """``search_runs`` over the seeded experiment: cold, then 3 warm calls."""
    exp_id = client.get_experiment_by_name(SEARCH_EXPERIMENT).experiment_id
    timing, runs = timed_reads(
        lambda: client.search_runs(
            [exp_id],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER_BY,
            max_results=SEARCH_MAX_RESULTS,
        )
    )
    top = runs[0].data.metrics["m1"] if runs else None
    return {"search": {"n": len(runs), **timing, "top_m1": top}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["ingest", "history", "seed", "search"])
    p.add_argument("--uri", required=True)
    p.add_argument("--n-sync", type=int, default=2000)
    p.add_argument("--n-async", type=int, default=2000)
    p.add_argument("--n-batch", type=int, default=20000)
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=10_000)
    a = p.parse_args()
    mlflow.set_tracking_uri(a.uri)
    client = mlflow.MlflowClient()
    if a.what == "ingest":
        result = ingest(client, a.n_sync, a.n_async, a.n_batch)
    elif a.what == "history":
        result = history(client, a.points)
    elif a.what == "seed":
        result = seed(client, a.runs)
    else:
        result = search(client)
    emit({"mlflow": mlflow.__version__, **result})


if __name__ == "__main__":
    main()
