"""The OpenAPI document is the server's contract, checked by schemathesis on a real server.

Every operation is sent generated requests (its examples, the schema's boundaries, random valid
and invalid data, and stateful sequences following its links) and every check runs on every
answer: no 5xx; status codes, content types, headers and bodies as documented; schema-valid
requests accepted (2xx, or 404/409 for what does not exist or conflicts); schema-invalid ones
refused with a 4xx; 405 for undeclared methods, with an ``Allow`` header listing the declared ones.

What no JSON Schema can say is listed in ``EXPECTED_422`` below, operation by operation, with
the reason: those operations may also refuse schema-valid data with a 422, which then names the
field. Nothing else is exempt.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from modelloop.datasets.content import to_parquet
from modelloop.settings import Settings, load_settings
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import Metric, RunSpec
from tests.live_server import live_server

MAX_EXAMPLES = 5  # per operation and phase: bounded, so the run takes about a minute and a half
SEED = 20240607  # reproducible: a failure is the same failure on the next run

# Operations whose rules go beyond what JSON Schema expresses, so schema-valid data may be a 422.
EXPECTED_422 = {
    # The filter and order_by languages (modelloop.tracking.filter) have nesting parentheses.
    ("POST", "/api/v1/runs/search"): "filter and order_by are languages",
    # Cross-field rules: a window period that divides a day, one of above/below per alert
    # rule, unique rule names, 'every' only with 'last N' windows, webhook URLs.
    ("PUT", "/api/v1/monitors/{name}"): "a monitor's cross-field rules",
    # Cross-field rules of a policy (the gate's metrics and margins agree, ...).
    ("PUT", "/api/v1/policies/{name}"): "a policy's cross-field rules",
    # Cross-field rules of a deployment: a challenger exactly in modes shadow and canary,
    # canary_percent and sticky_key only in mode canary; the registry's own version bounds.
    ("PUT", "/api/v1/deployments/{name}"): "a deployment's cross-field rules",
    # end must not be before start: two parameters compared.
    ("GET", "/api/v1/predictions"): "end before start",
    # canonical_path also refuses segments over 255 UTF-8 bytes and look-alikes that NFKC
    # folds into '..': bytes and Unicode normalisation are beyond a pattern.
    ("PUT", "/api/v1/runs/{run_id}/artifact"): "artifact paths fold under NFKC",
    ("GET", "/api/v1/runs/{run_id}/artifact"): "artifact paths fold under NFKC",
    ("GET", "/api/v1/runs/{run_id}/artifacts"): "artifact paths fold under NFKC",
    ("POST", "/api/v1/models/{name}/versions"): "artifact paths fold under NFKC",
    # A dataset version's body is a Parquet file (application/vnd.apache.parquet), which only
    # Parquet reads; and a contract's dtype is a pandas dtype name, which only pandas parses.
    ("POST", "/api/v1/datasets/{name}/versions"): "the body must be a Parquet file",
    ("POST", "/api/v1/datasets/{name}/versions/{version}/validations"): "pandas dtype names",
}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """A server on a store with an experiment, a run with metrics and an artifact, a
    registered model with a version and a dataset with a version, so reads find real objects."""
    settings = load_settings({"MODELLOOP_HOME": str(tmp_path / "home")})
    tracking = open_store(settings)
    exp = tracking.create_experiment("fraud")
    run_id = tracking.create_run(RunSpec(experiment_id=exp.experiment_id, name="r1")).run_id
    points = [Metric("loss", 0.5 / (step + 1), step, 1_700_000_000_000 + step) for step in range(3)]
    tracking.log_batch(run_id, points, {"model": "lgbm"}, {"team": "risk"})
    tracking.put_artifact(run_id, "model/model.txt", b"tree\n")
    with live_server(settings) as url:
        with httpx.Client(base_url=url + "/api/v1") as client:
            assert client.post("/models", json={"name": "fraud-detector"}).status_code == 201
            created = client.post(
                "/models/fraud-detector/versions",
                json={"run_id": run_id, "artifact_path": "model"},
            )
            assert created.status_code == 201, created.text
            table = to_parquet(pd.DataFrame({"amount": [1.0, 2.5], "kind": ["a", "b"]}))
            logged = client.post(  # the dataset the name's example (fraud-train) finds
                "/datasets/fraud-train/versions",
                content=table,
                params={"run_id": run_id},
                headers={"Content-Type": "application/vnd.apache.parquet"},
            )
            assert logged.status_code == 201, logged.text
        yield url, settings


def _config(path: Path) -> Path:
    operations = "".join(
        textwrap.dedent(
            f"""
            [[operations]]
            include-method = "{method}"
            include-path = "{route}"
            checks.positive_data_acceptance.expected-statuses = [
                "2XX", "401", "403", "404", "409", "422",
            ]
            """
        )
        for method, route in EXPECTED_422
    )
    path.write_text(
        textwrap.dedent(
            f"""
            seed = {SEED}
            [generation]
            max-examples = {MAX_EXAMPLES}
            database = "none"
            """
        )
        + operations
    )
    return path


@pytest.mark.slow
def test_the_server_keeps_its_openapi_contract(
    seeded: tuple[str, Settings], tmp_path: Path
) -> None:
    url, _ = seeded
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(_config(tmp_path / "schemathesis.toml")),
        "--no-color",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--no-shrink",
        "--suppress-health-check",  # hypothesis' checks on its own generation speed, not ours
        "too_slow,filter_too_much,data_too_large",
        "--workers",
        "1",  # hypothesis' lambda descriptions are not thread-safe (schemathesis 4.x)
        "--request-timeout",
        "30",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    summary = done.stdout[done.stdout.find("===") :] if "===" in done.stdout else done.stdout
    assert done.returncode == 0, f"schemathesis found contract failures:\n{summary}\n{done.stderr}"
