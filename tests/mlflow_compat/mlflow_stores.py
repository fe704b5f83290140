"""Real MLflow stores to import from, written by the real mlflow client: a ``sqlite:///`` store
and a file store, each with experiments, nested runs with params, tags and metric histories of
hundreds of points, dataset inputs (``mlflow.log_input``), artifacts in folders, a deleted run,
an MLflow 3 logged model (``mlflow.sklearn.log_model``) that another run took as input, a
registered model with two versions (one from the logged model, in stage Production, one from a
run's folder) and an alias; and what an import leaves out: a deleted experiment, a trace, a
prompt. Built once per session: importing reads, never writes."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, LoggedModelInput, Metric, Param, RunTag

MODEL = "churn-model"
T0 = 1_700_000_000_000  # the runs' own times, far from now: an import must keep them


@dataclass(frozen=True)
class MlflowStore:
    uri: str
    child: str  # the run whose folder "plots" is version 2 and that logged the model
    parent: str
    deleted: str
    scored: tuple[tuple[float, float], ...]  # inputs of the logged sklearn model
    scores: tuple[float, ...]  # its probability of class 1 for them


def build_store(kind: str, root: Path, server: str | None = None) -> MlflowStore:
    """An MLflow store of ``kind`` ("sqlite" or "file") under ``root``, or ("server") the store
    of the MLflow server at ``server``, whose artifacts it serves (``mlflow-artifacts:/``)."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "server":
        assert server is not None
        uri = server
    else:
        uri = f"sqlite:///{root / 'mlflow.db'}" if kind == "sqlite" else (root / "mlruns").as_uri()
    previous = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        with warnings.catch_warnings():  # MLflow's, about itself and its dependencies
            warnings.simplefilter("ignore")
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            return _fill(client, uri, root, served=kind == "server")
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri("")
        mlflow.set_registry_uri("")
        if previous is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def _fill(client: MlflowClient, uri: str, root: Path, *, served: bool) -> MlflowStore:
    def location(name: str) -> str | None:  # a server chooses its own
        return None if served else (root / "artifacts" / name).as_uri()

    churn = client.create_experiment("churn", artifact_location=location("churn"))
    client.set_experiment_tag(churn, "mlflow.note.content", "Who leaves, and when")
    fraud = client.create_experiment("fraud", artifact_location=location("fraud"))

    parent = client.create_run(churn, run_name="sweep", start_time=T0, tags={"team": "risk"})
    pid = parent.info.run_id
    customers = mlflow.data.from_pandas(
        pd.DataFrame({"tenure": [1, 24], "churned": [1, 0]}),
        source="s3://lake/churn/customers.parquet",
        name="customers",
        targets="churned",
    )
    context = [InputTag("mlflow.data.context", "training")]
    client.log_inputs(pid, [DatasetInput(customers._to_mlflow_entity(), context)])
    client.log_batch(
        pid,
        metrics=[Metric("best_auc", 0.91, T0 + 5, 0)],
        params=[Param("model", "lgbm"), Param("folds", "5")],
    )

    child = client.create_run(
        churn,
        run_name="lr=0.1",
        start_time=T0 + 1000,
        tags={"mlflow.parentRunId": pid, "mlflow.user": "ana"},
    )
    cid = child.info.run_id
    loss = [Metric("loss", 1.0 / (s + 1), T0 + 2000 + 7 * s, s) for s in range(300)]
    auc = [Metric("auc", 0.5 + s / 1000, T0 + 2000 + 7 * s, s) for s in range(0, 600, 2)]
    for start in range(0, 300, 100):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(cid, metrics=loss[start : start + 100] + auc[start : start + 100])
    client.log_batch(
        cid,
        metrics=[Metric("loss", 0.25, T0 + 2003, 0)],  # a second point at step 0, as MLflow allows
        params=[Param("learning_rate", "0.1"), Param("model", "lgbm")],
        tags=[RunTag("stage", "trial")],
    )
    files = root / "files"
    (files / "plots" / "sub").mkdir(parents=True, exist_ok=True)
    (files / "plots" / "roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    (files / "plots" / "sub" / "weights.bin").write_bytes(os.urandom(3000))
    (files / "confusion.csv").write_text("tn,fp,fn,tp\n900,20,15,65\n")
    client.log_artifacts(cid, str(files / "plots"), "plots")
    client.log_artifact(cid, str(files / "confusion.csv"), "reports")
    with mlflow.start_run(run_id=cid):  # an MLflow 3 logged model: its files live beside the run
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression().fit(
            [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]], [0, 1, 0, 1]
        )
        logged = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        mlflow.log_input(customers, context="training")
        holdout = pd.DataFrame({"tenure": [3], "churned": [1]})
        mlflow.log_input(mlflow.data.from_pandas(holdout, name="holdout"), context="eval")
    client.set_terminated(cid, "FINISHED", end_time=T0 + 9000)
    client.set_terminated(pid, "FINISHED", end_time=T0 + 10_000)

    failed = client.create_run(
        churn, run_name="lr=0.3", start_time=T0 + 1500, tags={"mlflow.parentRunId": pid}
    )
    client.log_batch(
        failed.info.run_id,
        metrics=[Metric("loss", math.nan, T0 + 1600, 0), Metric("loss", 3.5, T0 + 1601, 1)],
        params=[Param("learning_rate", "0.3")],
    )
    client.log_inputs(failed.info.run_id, models=[LoggedModelInput(logged.model_id)])
    client.set_terminated(failed.info.run_id, "FAILED", end_time=T0 + 1700)

    running = client.create_run(fraud, run_name="still going", start_time=T0 + 50_000)
    client.log_batch(
        running.info.run_id,
        metrics=[Metric("rows", float(s), T0 + 50_001 + s, s) for s in range(40)],
    )
    deleted = client.create_run(fraud, run_name="mistake", start_time=T0 + 60_000)
    client.log_batch(deleted.info.run_id, params=[Param("oops", "1")])
    client.delete_run(deleted.info.run_id)

    client.create_registered_model(MODEL, tags={"domain": "churn"}, description="Churn scorer")
    client.create_model_version(
        MODEL,
        logged.model_uri,
        run_id=cid,
        description="the sklearn model",
        model_id=logged.model_id,
    )
    client.create_model_version(
        MODEL, f"runs:/{cid}/plots", run_id=cid, tags={"kind": "files"}, description="the plots"
    )
    client.set_registered_model_alias(MODEL, "challenger", 2)
    client.transition_model_version_stage(MODEL, "1", "Production")  # deprecated, still found

    abandoned = client.create_experiment("abandoned", artifact_location=location("abandoned"))
    client.create_run(abandoned, run_name="never mind")
    client.delete_experiment(abandoned)
    span = client.start_trace("predict", experiment_id=churn, inputs={"tenure": 3})
    client.end_trace(span.trace_id, outputs={"churn": 0.7})
    mlflow.flush_trace_async_logging()
    mlflow.genai.register_prompt("churn-explainer", "Why would {{customer}} leave?")
    scored = ((0.0, 1.0), (1.0, 0.0), (0.2, 0.9))
    scores = tuple(float(p) for p in model.predict_proba([list(x) for x in scored])[:, 1])
    return MlflowStore(uri, cid, pid, deleted.info.run_id, scored, scores)
