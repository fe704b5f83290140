"""``modelloop models|audit|users``: a promotion told through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

import modelloop as ml
from modelloop.settings import load_settings
from modelloop.store import open_database
from modelloop.tracking import fluent
from tests.cli_helpers import fails, invoke, ok


@pytest.fixture
def run_id(home: Path) -> str:
    with ml.start_run(experiment="fraud") as run:
        run.log_text("tree\n", "model/model.txt")
    fluent.close_clients()
    return run.run_id


def test_a_promotion_on_the_command_line(run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELLOOP_USER", "alice")
    assert "models:/fraud/1" in ok("models", "register", run_id, "fraud", "--description", "v1")
    assert "models:/fraud/2" in ok("models", "register", run_id, "fraud")
    listed = json.loads(ok("models", "list", "--output", "json"))
    assert [(m["name"], m["latest_version"]) for m in listed] == [("fraud", 2)]
    assert "fraud" in ok("models", "list")
    ok("models", "set-alias", "fraud", "challenger", "2", "--reason", "candidate")
    assert "challenger" in ok("models", "show", "fraud")
    versions = json.loads(ok("models", "versions", "fraud", "-o", "json"))
    assert [v["aliases"] for v in versions] == [[], ["challenger"]]
    assert "request-alias" in fails(5, "models", "set-alias", "fraud", "champion", "1", "-r", "x")
    fails(
        4, "models", "set-alias", "fraud", "challenger", "1", "-r", "x", "--expected-version", "1"
    )
    fails(2, "models", "set-alias", "fraud", "challenger", "1")  # --reason is required
    requested = ok("models", "request-alias", "fraud", "champion", "1", "--reason", "AUC +2%")
    request_id = requested.split("request ")[1].split()[0]
    pending = json.loads(ok("models", "requests", "--pending", "-o", "json"))
    assert [r["request_id"] for r in pending] == [request_id]
    assert "self-approval" in fails(5, "models", "approve", request_id)
    monkeypatch.setenv("MODELLOOP_USER", "bob")
    assert "requested by alice" in ok("models", "approve", request_id, "--reason", "looks good")
    assert "already APPROVED" in fails(4, "models", "reject", request_id, "--reason", "late")
    assert json.loads(ok("models", "requests", "--pending", "-o", "json")) == []
    assert "aliased as champion" in fails(4, "models", "archive", "fraud", "1", "--reason", "x")
    ok("models", "delete-alias", "fraud", "challenger", "--reason", "lost")
    ok("models", "archive", "fraud", "2", "--reason", "lost the A/B test")
    ok("models", "restore", "fraud", "2", "--reason", "needed after all")
    lineage = json.loads(ok("models", "lineage", "fraud", "1", "-o", "json"))
    assert lineage["run_id"] == run_id
    assert "git_commit" in lineage["code_version"]
    events = json.loads(ok("audit", "log", "--model", "fraud", "-o", "json"))
    champion = [e for e in events if e["object_id"] == "fraud@champion"]
    assert [(e["actor"], e["after"]["requested_by"], e["reason"]) for e in champion] == [
        ("bob", "alice", "AUC +2%")
    ]
    table = ok("audit", "log", "--model", "fraud")
    assert "approved by bob" in table
    assert "v- -> v1" not in table  # a first assignment reads as "- -> v1"
    verified = ok("audit", "verify")
    assert f"{len(events)} events verified" in verified
    assert "Head: " in verified
    fails(3, "models", "show", "nope")


def test_audit_verify_names_the_tampered_event(run_id: str) -> None:
    ok("models", "register", run_id, "fraud")
    ok("models", "set-alias", "fraud", "challenger", "1", "--reason", "r")
    head = ok("audit", "verify").split("Head: ")[1].strip()
    ok("audit", "verify", "--anchor", head)
    with open_database(load_settings().database_url).write() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    line = fails(1, "audit", "verify")
    assert line.startswith("Error: Audit trail broken at event 2")
    fails(2, "audit", "verify", "--anchor", "not-an-anchor")


def test_audit_checkpoints_and_reconciliation_on_the_command_line(
    run_id: str, tmp_path: Path
) -> None:
    ok("models", "register", run_id, "fraud")
    ok("models", "register", run_id, "fraud")
    ok("models", "set-alias", "fraud", "challenger", "1", "--reason", "candidate")
    verified = ok("audit", "verify")
    assert "Checked against 3 checkpoints (the newest at event 4)" in verified
    assert "Tables reconciled: 4 objects" in verified
    exported = tmp_path / "elsewhere.jsonl"
    assert "Checkpoint of event 4 appended to" in ok("audit", "checkpoint", "--to", str(exported))
    printed = json.loads(ok("audit", "checkpoint"))
    assert (printed["seq"], len(printed["mac"])) == (4, 64)
    with open_database(load_settings().database_url).write() as conn:
        conn.execute(text("UPDATE aliases SET version = 2"))
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert (
        "Changed without an audit event: alias fraud@challenger changed without an audit "
        "event: version is 2, the audit trail says 1 (event 4)" in result.stdout
    )
    assert result.stderr.strip() == "Error: Audit trail broken: 1 changes without an audit event"
    with open_database(load_settings().database_url).write() as conn:
        conn.execute(text("UPDATE aliases SET version = 1"))
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
        conn.execute(
            text(
                "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_events "
                "WHERE seq = 3)"
            )
        )
    line = fails(1, "audit", "verify", "--checkpoints", str(exported))
    assert "event 4 were deleted" in line or "events 4..4 were deleted" in line
    fails(2, "audit", "checkpoint", "--to", str(tmp_path / "missing" / "dir" / "\0bad"))


def test_users(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    added = ok("users", "add", "alice", "--role", "approver").splitlines()
    assert added[0] == "Added alice (approver). Their token, shown only now:"
    token = added[1]
    assert len(token) >= 40
    users = json.loads(ok("users", "list", "-o", "json"))
    assert users[0]["name"] == "alice"
    assert users[0]["role"] == "approver"
    assert users[0]["disabled"] is False
    assert token not in json.dumps(users)
    assert "alice" in ok("users", "list")
    assert "already exists" in fails(4, "users", "add", "alice")
    fails(2, "users", "add", "bob", "--role", "root")
    ok("users", "disable", "alice")
    assert json.loads(ok("users", "list", "-o", "json"))[0]["disabled"] is True
    fails(3, "users", "disable", "nobody")
    rotated = ok("users", "rotate-token", "alice", "--reason", "laptop lost").splitlines()
    assert rotated[0] == "New token of alice, shown only now (the old one no longer works):"
    assert len(rotated[1]) >= 40
    assert rotated[1] != token
    fails(3, "users", "rotate-token", "nobody")
    monkeypatch.setenv("MODELLOOP_TRACKING_URI", "http://127.0.0.1:1")
    assert "Cannot reach the modelloop server" in fails(6, "users", "list")


def test_users_are_managed_through_a_server_with_its_admin_token(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.live_server import live_server

    admin_token = "the-servers-admin-token"
    with live_server(load_settings(), token=admin_token) as url:
        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        assert "Missing bearer token" in fails(5, "users", "list")
        monkeypatch.setenv("MODELLOOP_TOKEN", admin_token)
        token = ok("users", "add", "bob", "--role", "editor").splitlines()[1]
        assert [u["name"] for u in json.loads(ok("users", "list", "-o", "json"))] == ["bob"]
        monkeypatch.setenv("MODELLOOP_TOKEN", token)
        assert "editor role; this needs admin" in fails(5, "users", "add", "eve", "--role", "admin")
    monkeypatch.delenv("MODELLOOP_TRACKING_URI")
    events = json.loads(ok("audit", "log", "-o", "json"))
    assert [(e["action"], e["actor"]) for e in events] == [("user.add", "admin")]


def test_empty_registry(home: Path) -> None:
    assert "No models yet" in ok("models", "list")
    assert "No requests" in ok("models", "requests")
    assert "No audit events" in ok("audit", "log")
    assert "empty" in ok("audit", "verify")
    assert "No users yet" in ok("users", "list")


def test_register_from_a_pipeline_step_names_where_its_model_package_is(home: Path) -> None:
    from modelloop.examples.training_pipeline import pipeline

    train = pipeline.run().steps["train"]
    assert train.run_id is not None
    fluent.close_clients()
    error = fails(3, "models", "register", train.run_id, "example")
    assert f"Run {train.run_id} has no artifacts under 'model'" in error
    assert "its model packages are under outputs/model" in error
    assert "--artifact-path outputs/model" in error
    registered = ok(
        "models", "register", train.run_id, "example", "--artifact-path", "outputs/model"
    )
    assert "Registered models:/example/1" in registered


def test_register_from_a_run_without_any_model_package(home: Path) -> None:
    with ml.start_run(experiment="fraud") as run:
        run.log_text("a,b\n", "reports/confusion.csv")
    fluent.close_clients()
    error = fails(3, "models", "register", run.run_id, "m")
    assert "no artifacts under 'model' and no model package elsewhere" in error


def test_models_lineage_names_the_datasets_its_lineage_reaches(home: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 2)), columns=["a", "b"])
    frame["label"] = (frame["a"] > 0).astype("int64")
    ml.log_dataset(frame, "phish")
    with ml.start_run(experiment="phish") as run:
        data = ml.load_dataset("phish@1")
        model = LogisticRegression().fit(data[["a", "b"]], data["label"])
        ml.register_model(run, "phish-model", model, training_data=data[["a", "b"]])
    fluent.close_clients()
    shown = ok("models", "lineage", "phish-model", "1")
    assert "datasets: phish@1" in shown
    assert json.loads(ok("models", "lineage", "phish-model", "1", "-o", "json"))["datasets"] == [
        "phish@1"
    ]
