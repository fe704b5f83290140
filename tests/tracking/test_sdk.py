"""The SDK as a user meets it: ``import modelloop as ml``."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelloop as ml
from modelloop.errors import InvalidArgument, NotFound, UnsafePath


def test_a_run_finishes_with_everything_logged(home: Path) -> None:
    with ml.start_run(experiment="fraud", name="lgbm", params={"lr": 0.05, "leaves": 31}) as run:
        for step in range(100):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"auc": 0.91, "ap": 0.5}, step=100)
        run.set_tag("stage", "dev")
        run.log_param("seed", 7)
    info = run.info
    assert info.status is ml.RunStatus.FINISHED
    assert info.end_time is not None
    assert info.params == {"lr": "0.05", "leaves": "31", "seed": "7"}
    assert info.tags == {"stage": "dev"}
    assert info.metrics == {"loss": 0.01, "auc": 0.91, "ap": 0.5}
    history = run.metric_history("loss")
    assert list(history.columns) == ["step", "value", "timestamp"]
    assert history["step"].tolist() == list(range(100))
    assert history["value"].tolist() == [1.0 / (s + 1) for s in range(100)]


def test_an_exception_marks_the_run_failed_with_the_error(home: Path) -> None:
    def train() -> ml.ActiveRun:
        with ml.start_run(experiment="fraud") as run:
            run.log_metric("before", 1.0)
            _ = 1 / 0
        return run

    with pytest.raises(ZeroDivisionError):
        train()
    (run,) = (ml.ActiveRun(ml.get_client(), r) for r in ml.get_client().find_runs("fraud"))
    info = run.info
    assert info.status is ml.RunStatus.FAILED
    assert info.error is not None
    assert "ZeroDivisionError: division by zero" in info.error
    assert info.metrics == {"before": 1.0}, "metrics logged before the failure are kept"


def test_ctrl_c_marks_the_run_killed(home: Path) -> None:
    with pytest.raises(KeyboardInterrupt), ml.start_run() as run:
        raise KeyboardInterrupt
    assert run.info.status is ml.RunStatus.KILLED


def test_runs_started_inside_a_run_are_its_children(home: Path) -> None:
    with ml.start_run(experiment="sweep") as parent:
        assert ml.active_run() is parent
        with ml.start_run(name="trial-1") as child:
            assert ml.active_run() is child
    assert ml.active_run() is None
    assert child.info.parent_run_id == parent.run_id
    assert child.experiment_id == parent.experiment_id


def test_bad_metric_values_fail_at_the_call(home: Path) -> None:
    with ml.start_run() as run:
        for value in ("high", None, True, [1.0]):
            with pytest.raises(InvalidArgument, match="value must be a number"):
                run.log_metric("m", value)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="step"):
            run.log_metric("m", 1.0, step=1.5)  # type: ignore[arg-type]
        run.log_metric("m", math.nan)
    assert math.isnan(run.info.metrics["m"])


def test_a_failed_background_write_is_raised_by_flush(home: Path) -> None:
    client = ml.get_client()
    client.log_metric("0" * 32, "loss", 1.0)
    with pytest.raises(NotFound, match="does not exist"):
        client.flush()
    client.flush()  # the error is reported once; the writer keeps working


def test_search_runs_returns_a_dataframe(home: Path) -> None:
    for model, auc in [("lgbm", 0.95), ("xgb", 0.92), ("lgbm", 0.85)]:
        with ml.start_run(experiment="fraud", params={"model": model}) as run:
            run.log_metric("auc", auc)
    frame = ml.search_runs(
        "fraud", filter="metrics.auc > 0.9 and params.model = 'lgbm'", order_by=["metrics.auc DESC"]
    )
    assert frame["metrics.auc"].tolist() == [0.95]
    everything = ml.search_runs("fraud", order_by=["metrics.auc"])
    assert everything["metrics.auc"].tolist() == [0.85, 0.92, 0.95]
    assert {"run_id", "status", "start_time", "params.model"} <= set(everything.columns)
    with pytest.raises(ml.InvalidFilter, match="'>'"):
        ml.search_runs("fraud", filter="metrics.auc >")
    with pytest.raises(NotFound):
        ml.search_runs("no-such-experiment")


def test_deleted_runs_and_experiments_are_hidden_until_restored(home: Path) -> None:
    with ml.start_run(experiment="fraud", name="kept") as kept:
        pass
    with ml.start_run(experiment="fraud", name="gone") as gone:
        pass
    client = ml.get_client()
    assert client.delete_run(gone.run_id).deleted_at is not None
    assert ml.search_runs("fraud")["name"].tolist() == ["kept"]
    assert client.get_run(gone.run_id).name == "gone"  # still there by id
    client.delete_experiment("fraud")
    assert ml.search_runs()["name"].tolist() == []
    with pytest.raises(ml.Conflict, match="deleted"), ml.start_run(experiment="fraud"):
        pass
    client.restore_experiment("fraud")
    assert ml.search_runs("fraud")["name"].tolist() == ["kept"]  # gone was deleted before
    client.restore_run(gone.run_id)
    assert ml.search_runs("fraud")["name"].tolist() == ["gone", "kept"]
    assert kept.run_id != gone.run_id


def test_artifacts_log_and_download(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "out"
    (src / "plots").mkdir(parents=True)
    (src / "plots" / "roc.svg").write_text("<svg/>")
    (src / "model.txt").write_text("tree")
    with ml.start_run() as run:
        run.log_artifacts(src, artifact_path="outputs")
        run.log_text("hello", "notes/readme.md")
    paths = [a.path for a in ml.get_client().list_artifacts(run.run_id)]
    assert paths == ["notes/readme.md", "outputs/model.txt", "outputs/plots/roc.svg"]
    written = ml.get_client().download_artifacts(run.run_id, tmp_path / "dl", prefix="outputs")
    assert sorted(p.relative_to(tmp_path / "dl").as_posix() for p in written) == [
        "outputs/model.txt",
        "outputs/plots/roc.svg",
    ]
    assert (tmp_path / "dl" / "outputs" / "plots" / "roc.svg").read_text() == "<svg/>"


def test_log_artifacts_refuses_symlinks_leaving_the_directory(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not upload")
    src = tmp_path / "out"
    src.mkdir()
    (src / "link.txt").symlink_to(secret)
    with ml.start_run() as run, pytest.raises(UnsafePath):
        run.log_artifacts(src)
    assert ml.get_client().list_artifacts(run.run_id) == []


SCRIPT = """
import json, modelloop as ml
with ml.start_run(experiment="src") as run:
    pass
print(json.dumps({"source": run.info.source, "environment": run.info.environment}))
"""


def test_runs_record_code_version_and_environment(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
            cwd=repo, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    git("init", "-q")
    (repo / "train.py").write_text(SCRIPT)
    git("add", "train.py")
    git("commit", "-qm", "init")
    (repo / "train.py").write_text(SCRIPT + "\n# tweak\n")
    env = {**os.environ, "MODELLOOP_HOME": str(tmp_path / "home")}
    env.pop("MODELLOOP_TRACKING_URI", None)
    env.pop("MODELLOOP_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    recorded = json.loads(done.stdout)
    source = recorded["source"]
    assert source["git_commit"] == git("rev-parse", "HEAD").strip()
    assert source["git_dirty"] is True
    diff = git("diff", "HEAD", "--no-ext-diff", "--binary")
    assert source["git_diff_sha256"] == hashlib.sha256(diff.encode()).hexdigest()
    assert source["entry_point"] == "train.py"
    environment = recorded["environment"]
    assert environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["packages"]["modelloop"] == ml.__version__
    assert "numpy" in environment["packages"]


def test_read_artifact_refuses_a_symlink_planted_in_the_blob_store(
    home: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the store")
    with ml.start_run() as run:
        run.log_text("innocent", "notes.txt")
    digest = hashlib.sha256(b"innocent").hexdigest()
    blob = home / "artifacts" / "sha256" / digest[:2] / digest[2:4] / digest
    blob.unlink()
    blob.symlink_to(secret)
    with pytest.raises(UnsafePath, match="outside"):
        ml.get_client().read_artifact(run.run_id, "notes.txt")
    with pytest.raises(UnsafePath):
        ml.get_client().download_artifacts(run.run_id, tmp_path / "dl")


def test_download_refuses_an_artifact_that_is_also_a_folder(home: Path, tmp_path: Path) -> None:
    with ml.start_run() as run:
        run.log_text("file", "a")
        run.log_text("nested", "a/b")
        run.log_text("fine", "c")
    with pytest.raises(ml.Conflict, match=r"'a' and 'a/b'.*read_artifact") as caught:
        ml.get_client().download_artifacts(run.run_id, tmp_path / "dl")
    assert caught.value.exit_code == 4
    assert not (tmp_path / "dl").exists()  # refused before writing anything
    assert ml.get_client().read_artifact(run.run_id, "a/b") == b"nested"
