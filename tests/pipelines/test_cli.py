"""``modelloop pipelines run|list|show`` and ``modelloop lineage`` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from modelloop.cli.pipelines import lineage, pipelines_app
from modelloop.pipelines import Pipeline, step

TARGET = "modelloop.examples.training_pipeline:pipeline"
runner = CliRunner()


@step
def fit() -> object:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier().fit([[0.0], [1.0]], [0, 1])  # a raw model: no signature


RAW_MODEL = Pipeline([fit], name="raw-model")


def _lineage_app() -> typer.Typer:
    app = typer.Typer()
    app.command("lineage")(lineage)
    app.command("noop")(lambda: None)  # two commands keep "lineage" as a subcommand
    return app


def test_run_list_show(home: Path) -> None:
    done = runner.invoke(pipelines_app, ["run", TARGET, "--param", "n_rows=200", "-o", "json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["status"] == "FINISHED"
    assert result["params"] == {"n_rows": 200}
    run_id = result["run_id"]

    again = runner.invoke(pipelines_app, ["run", TARGET, "-p", "n_rows=200"])
    assert again.exit_code == 0, again.output
    assert again.stdout.count("CACHED") >= 4
    assert "train: CACHED" in again.stdout  # the progress line of each step

    fresh = runner.invoke(pipelines_app, ["run", TARGET, "-p", "n_rows=200", "--no-cache"])
    assert "CACHED" not in fresh.stdout.split("Pipeline example")[-1]

    listed = runner.invoke(pipelines_app, ["list", "-o", "json"])
    records = json.loads(listed.stdout)
    assert len(records) == 3
    assert records[-1]["run_id"] == run_id
    assert {r["pipeline"] for r in records} == {"example"}

    shown = runner.invoke(pipelines_app, ["show", run_id])
    assert shown.exit_code == 0
    for name in ("load", "split", "train", "evaluate"):
        assert name in shown.stdout
    assert "SUCCEEDED" in shown.stdout


def test_failed_run_exits_non_zero_and_bad_target_is_one_line(home: Path) -> None:
    bad = runner.invoke(pipelines_app, ["run", "modelloop.examples.training_pipeline:nothing"])
    assert bad.exit_code != 0
    assert isinstance(bad.exception, Exception)
    assert "cannot load" in str(bad.exception)
    failing = runner.invoke(pipelines_app, ["run", TARGET, "-p", "n_rows=0"])
    assert failing.exit_code == 1
    assert "FAILED" in failing.stdout


def test_failed_step_prints_its_reason_and_where_the_traceback_is(home: Path) -> None:
    target = f"{__name__}:RAW_MODEL"
    ran = runner.invoke(pipelines_app, ["run", target])
    assert ran.exit_code == 1
    reason = "InvalidArgument: a step returned a DummyClassifier model without a signature"
    assert f"fit failed: modelloop.errors.{reason}" in ran.stdout
    assert "ModelOutput(model, training_data=X)" in ran.stdout
    as_json = runner.invoke(pipelines_app, ["run", target, "-o", "json"])
    result = json.loads(as_json.stdout)
    fit_step = result["steps"][0]
    assert reason in fit_step["reason"]
    assert "  traceback: modelloop runs show " in ran.stdout
    shown = runner.invoke(pipelines_app, ["show", result["run_id"]])
    assert shown.exit_code == 0, shown.output
    assert f"fit failed: modelloop.errors.{reason}" in shown.stdout
    assert f"traceback: modelloop runs show {fit_step['run_id']}" in shown.stdout


def test_lineage_command(home: Path) -> None:
    done = runner.invoke(pipelines_app, ["run", TARGET, "-o", "json"])
    result = json.loads(done.stdout)
    train = next(s for s in result["steps"] if s["name"] == "train")
    digest = train["outputs"]["model"]["digest"]
    shown = runner.invoke(_lineage_app(), ["lineage", digest])
    assert shown.exit_code == 0, shown.output
    assert "(train," in shown.stdout
    assert "(load," in shown.stdout
    as_json = runner.invoke(_lineage_app(), ["lineage", train["run_id"], "-o", "json"])
    graph = json.loads(as_json.stdout)
    assert graph["root"] == ["run", train["run_id"]]
    assert any(e["relation"] == "input" for e in graph["edges"])
