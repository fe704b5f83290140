"""MLflow's artifact proxy on a real ``modelloop server``, through the real ``mlflow`` client's
artifact repository for ``mlflow-artifacts:`` URIs (what ``mlflow.log_artifact`` and
``MlflowClient.download_artifacts`` use): files land as modelloop artifacts of the run, bytes as
sent, and paths that could escape are refused with MLflow's error codes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
import requests
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

import modelloop as ml
from modelloop.tracking.entities import Run
from tests.live_server import live_server
from tests.mlflow_compat.conftest import MlflowServer


def _run(server: MlflowServer, experiment: str = "churn") -> Run:
    return ml.Client(settings=server.settings).create_run(experiment)


def _uri(run: Run) -> str:
    return f"mlflow-artifacts:/{run.experiment_id}/{run.run_id}/artifacts"


def _error_code(error: requests.HTTPError) -> str:
    """The artifact repository raises the HTTP error itself; MLflow's code is in its body."""
    assert error.response is not None
    return str(error.response.json()["error_code"])


def _raw(server: str, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str]]:
    """Send ``path`` byte for byte: httpx and requests remove '..' segments before sending,
    a hostile client does not."""
    url = httpx.URL(server)
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        "Connection: close",
        f"Content-Length: {len(body)}",
    ]
    with socket.create_connection((url.host, url.port or 80), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(payload) if payload.startswith(b"{") else {}


def test_log_list_and_download_files_and_folders(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    run = _run(mlflow_server)
    repo = get_artifact_repository(_uri(run))
    (tmp_path / "report.csv").write_text("tn,fp\n900,20\n")
    tree = tmp_path / "tree"
    (tree / "deep").mkdir(parents=True)
    (tree / "a.json").write_text('{"a": 1}')
    (tree / "deep" / "b.bin").write_bytes(bytes(range(256)))
    repo.log_artifact(str(tmp_path / "report.csv"))
    repo.log_artifacts(str(tree), "plots")

    # Stored as modelloop artifacts of the run, content as sent.
    client = ml.Client(settings=mlflow_server.settings)
    assert [a.path for a in client.list_artifacts(run.run_id)] == [
        "plots/a.json",
        "plots/deep/b.bin",
        "report.csv",
    ]
    assert client.read_artifact(run.run_id, "plots/deep/b.bin") == bytes(range(256))

    listed = repo.list_artifacts()
    assert [(f.path, f.is_dir, f.file_size) for f in listed] == [
        ("plots", True, None),
        ("report.csv", False, 13),
    ]
    assert [(f.path, f.is_dir) for f in repo.list_artifacts("plots")] == [
        ("plots/a.json", False),
        ("plots/deep", True),
    ]
    assert repo.list_artifacts("report.csv") == []  # a file lists nothing, as MLflow's stores
    assert repo.list_artifacts("nothing-here") == []

    out = tmp_path / "out"
    out.mkdir()
    local = Path(repo.download_artifacts("plots", str(out)))
    assert (local / "deep" / "b.bin").read_bytes() == bytes(range(256))
    assert (local / "a.json").read_text() == '{"a": 1}'
    whole = mlflow.artifacts.download_artifacts(artifact_uri=_uri(run), dst_path=str(out / "all"))
    assert Path(whole, "report.csv").read_text() == "tn,fp\n900,20\n"


def test_artifacts_are_immutable_per_path(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    run = _run(mlflow_server)
    repo = get_artifact_repository(_uri(run))
    f = tmp_path / "notes.txt"
    f.write_text("first")
    repo.log_artifact(str(f))
    repo.log_artifact(str(f))  # the same content again: fine
    f.write_text("second")
    with pytest.raises(requests.HTTPError, match="immutable") as caught:
        repo.log_artifact(str(f))
    assert _error_code(caught.value) == "INVALID_STATE"
    client = ml.Client(settings=mlflow_server.settings)
    assert client.read_artifact(run.run_id, "notes.txt") == b"first"


def _big_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = 4 * 1024 * 1024
    with path.open("wb") as f:
        written = 0
        while written < size:
            chunk = os.urandom(min(block, size - written))
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_100_mb_artifact_goes_up_and_down_unchanged(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    run = _run(mlflow_server)
    repo = get_artifact_repository(_uri(run))
    big = tmp_path / "weights.bin"
    expected = _big_file(big, 100 * 1024 * 1024)  # over the 32 MiB JSON body limit
    repo.log_artifact(str(big), "model")
    stored = ml.Client(settings=mlflow_server.settings).list_artifacts(run.run_id)
    assert [(a.path, a.size, a.digest) for a in stored] == [
        ("model/weights.bin", 100 * 1024 * 1024, expected)
    ]
    big.unlink()
    out = tmp_path / "out"
    out.mkdir()
    got = Path(repo.download_artifacts("model/weights.bin", str(out)))
    assert _sha256(got) == expected


@pytest.fixture
def small_limit_server(mlflow_server: MlflowServer) -> Iterator[str]:
    settings = dataclasses.replace(mlflow_server.settings, max_upload_bytes=64 * 1024)
    with live_server(settings) as url:
        yield url


def test_uploads_over_the_server_limit_are_refused(
    mlflow_server: MlflowServer, small_limit_server: str
) -> None:
    run = _run(mlflow_server)
    base = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.run_id}/artifacts"
    with httpx.Client(base_url=small_limit_server) as http:
        ok = http.put(f"{base}/small.bin", content=b"x" * 1000)
        assert ok.status_code == 200, ok.text
        refused = http.put(f"{base}/large.bin", content=b"x" * (65 * 1024))
    assert refused.status_code == 413
    assert "limit of 65536 bytes" in refused.json()["message"]
    paths = [a.path for a in ml.Client(settings=mlflow_server.settings).list_artifacts(run.run_id)]
    assert paths == ["small.bin"]


ESCAPES = [
    "{root}/../../../etc/passwd",
    "{root}/a/../../secret.txt",
    "{root}/%2e%2e/%2e%2e/x.txt",
    "{root}/..%2f..%2fx.txt",
    "/etc/passwd",
    "/{root}/x.txt",
    "{root}/C:/x.txt",
    "{root}/a\\..\\..\\x.txt",
    "{exp}/{run}/../{other}/artifacts/x.txt",
    "{exp}/../{other_exp}/{other}/artifacts/x.txt",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_paths_that_could_escape_are_refused(mlflow_server: MlflowServer, template: str) -> None:
    run = _run(mlflow_server)
    other = _run(mlflow_server, "other")
    root = f"{run.experiment_id}/{run.run_id}/artifacts"
    path = template.format(
        root=root,
        exp=run.experiment_id,
        run=run.run_id,
        other=other.run_id,
        other_exp=other.experiment_id,
    )
    url = f"/api/2.0/mlflow-artifacts/artifacts/{path}"
    status, body = _raw(mlflow_server.url, "PUT", url, b"payload")
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert _raw(mlflow_server.url, "GET", url)[0] == 400
    client = ml.Client(settings=mlflow_server.settings)
    assert client.list_artifacts(run.run_id) == []
    assert client.list_artifacts(other.run_id) == []


def test_a_run_is_reached_only_through_its_own_experiment(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    run = _run(mlflow_server)
    other = _run(mlflow_server, "other")
    f = tmp_path / "x.txt"
    f.write_text("x")
    wrong = f"mlflow-artifacts:/{other.experiment_id}/{run.run_id}/artifacts"
    with pytest.raises(requests.HTTPError) as caught:
        get_artifact_repository(wrong).log_artifact(str(f))
    assert _error_code(caught.value) == "RESOURCE_DOES_NOT_EXIST"
    missing = f"mlflow-artifacts:/{run.experiment_id}/{'0' * 32}/artifacts"
    with pytest.raises(requests.HTTPError) as caught:
        get_artifact_repository(missing).log_artifact(str(f))
    assert _error_code(caught.value) == "RESOURCE_DOES_NOT_EXIST"
    assert ml.Client(settings=mlflow_server.settings).list_artifacts(run.run_id) == []


def test_listing_refuses_escapes_and_paths_naming_no_run(mlflow_server: MlflowServer) -> None:
    run = _run(mlflow_server)
    root = f"{run.experiment_id}/{run.run_id}/artifacts"
    with httpx.Client(base_url=mlflow_server.url) as http:
        for path in (f"{root}/../..", "/etc", run.experiment_id, "", f"{root}/%2e%2e"):
            answer = http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": path})
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": root}).json() == {
            "files": []
        }


def test_multipart_presigned_and_delete_answer_501(mlflow_server: MlflowServer) -> None:
    run = _run(mlflow_server)
    root = f"{run.experiment_id}/{run.run_id}/artifacts"
    with httpx.Client(base_url=mlflow_server.url) as http:
        for action in ("create", "complete", "abort"):
            answer = http.post(
                f"/api/2.0/mlflow-artifacts/mpu/{action}/{root}",
                json={"path": "big.bin", "num_parts": 2},
            )
            assert answer.status_code == 501
            assert answer.json()["error_code"] == "NOT_IMPLEMENTED"
            assert "plain" in answer.json()["message"]
        presigned = http.get(f"/api/2.0/mlflow-artifacts/presigned/{root}/x.txt")
        assert presigned.status_code == 501
        deleted = http.delete(f"/api/2.0/mlflow-artifacts/artifacts/{root}/x.txt")
        assert deleted.status_code == 501
        assert "immutable" in deleted.json()["message"]


def test_the_fluent_api_and_mlflow_client(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    mlflow.set_experiment("fluent")
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "w.bin").write_bytes(b"\x00\x01\x02")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "report.csv"), "reports")
        mlflow.log_artifacts(str(tmp_path / "dir"), "tree")
        mlflow.log_text("some notes\n", "notes/readme.txt")
        mlflow.log_dict({"lr": 0.1, "layers": [3, 2]}, "config.json")
    run_id = run.info.run_id

    stored = ml.Client(settings=mlflow_server.settings)
    assert [a.path for a in stored.list_artifacts(run_id)] == [
        "config.json",
        "notes/readme.txt",
        "reports/report.csv",
        "tree/sub/w.bin",
    ]
    assert stored.read_artifact(run_id, "notes/readme.txt") == b"some notes\n"
    assert json.loads(stored.read_artifact(run_id, "config.json")) == {"lr": 0.1, "layers": [3, 2]}

    client = mlflow.MlflowClient()
    assert [(f.path, f.is_dir) for f in client.list_artifacts(run_id)] == [
        ("config.json", False),
        ("notes", True),
        ("reports", True),
        ("tree", True),
    ]
    assert [f.path for f in client.list_artifacts(run_id, "tree/sub")] == ["tree/sub/w.bin"]
    local = Path(client.download_artifacts(run_id, "tree", str(tmp_path)))
    assert (local / "sub" / "w.bin").read_bytes() == b"\x00\x01\x02"
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt")
    assert text == "some notes\n"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {
        "lr": 0.1,
        "layers": [3, 2],
    }
    got = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="reports/report.csv", dst_path=str(tmp_path / "dl")
    )
    assert Path(got).read_text() == "a,b\n1,2\n"


def test_the_ui_listing_of_a_run(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    run = _run(mlflow_server)
    client = ml.Client(settings=mlflow_server.settings)
    client.log_bytes(run.run_id, b"abc", "tree/sub/w.bin")
    client.log_bytes(run.run_id, b"12345", "tree/top.txt")
    with httpx.Client(base_url=mlflow_server.url) as http:
        for api in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
            answer = http.get(f"{api}/artifacts/list", params={"run_id": run.run_id})
            assert answer.json() == {
                "root_uri": _uri(run),
                "files": [{"path": "tree", "is_dir": True}],
            }
        inside = http.get(
            "/api/2.0/mlflow/artifacts/list", params={"run_id": run.run_id, "path": "tree"}
        ).json()["files"]
        assert inside == [
            {"path": "tree/sub", "is_dir": True},
            {"path": "tree/top.txt", "is_dir": False, "file_size": 5},
        ]
        escape = http.get(
            "/api/2.0/mlflow/artifacts/list", params={"run_id": run.run_id, "path": "../.."}
        )
        assert escape.status_code == 400
        assert escape.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_a_client_asking_for_multipart_falls_back_to_the_plain_proxy(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client told to use multipart uploads and presigned downloads hears 501 and uses the
    proxy: the file arrives and comes back whole."""
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", "1024")
    run = _run(mlflow_server)
    repo = get_artifact_repository(_uri(run))
    data = os.urandom(64 * 1024)
    (tmp_path / "blob.bin").write_bytes(data)
    repo.log_artifact(str(tmp_path / "blob.bin"))
    assert ml.Client(settings=mlflow_server.settings).read_artifact(run.run_id, "blob.bin") == data
    out = tmp_path / "out"
    out.mkdir()
    assert Path(repo.download_artifacts("blob.bin", str(out))).read_bytes() == data


def test_empty_files_and_names_with_spaces_and_accents(mlflow_server: MlflowServer) -> None:
    mlflow.set_experiment("names")
    with mlflow.start_run() as run:
        mlflow.log_text("", "empty.txt")
        mlflow.log_text("ünïcode ✓", "dir with space/naïve file.txt")
    run_id = run.info.run_id
    stored = ml.Client(settings=mlflow_server.settings)
    assert [(a.path, a.size) for a in stored.list_artifacts(run_id)] == [
        ("dir with space/naïve file.txt", len("ünïcode ✓".encode())),
        ("empty.txt", 0),
    ]
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/empty.txt") == ""
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/dir with space/naïve file.txt")
    assert text == "ünïcode ✓"
