"""Bearer-token auth, and the server's refusals to start in an unsafe configuration."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import modelloop as ml
from modelloop.errors import InvalidArgument, Unauthorized
from modelloop.server import create_app, run_server
from modelloop.server.app import is_loopback
from modelloop.settings import Settings, load_settings
from modelloop.tracking.http import HttpTrackingStore
from tests.live_server import live_server, status_of_raw_get

TOKEN = "s3cret-token-4242"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MODELLOOP_HOME": str(tmp_path)})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_settings({"MODELLOOP_HOME": str(tmp_path_factory.mktemp("auth"))})
    with live_server(settings, token=TOKEN) as url:
        yield url


def test_a_viewer_may_check_a_pasted_contract_but_not_change_anything(tmp_path: Path) -> None:
    """Checking a pasted contract on a dataset version's page is a POST that only reads, so a
    viewer may; only that exact route, and nothing is stored by it."""
    import pandas as pd

    from modelloop.artifacts import BlobStore
    from modelloop.auth import Role, Users
    from modelloop.datasets.sql import SqlDatasetStore
    from modelloop.store import close_database, open_database

    settings = load_settings({"MODELLOOP_HOME": str(tmp_path)})
    db = open_database(settings.database_url)
    _, viewer = Users(db).add("vera", Role.viewer, actor="admin")
    datasets = SqlDatasetStore(db, BlobStore(settings.artifact_uri))
    version = datasets.log_version("tx", pd.DataFrame({"x": [1, 2]}), actor="admin")
    contract = {"contract": "columns:\n  x: {dtype: int}\n"}
    headers = {"Authorization": f"Bearer {viewer}"}
    try:
        with live_server(settings) as url, httpx.Client(base_url=url, headers=headers) as http:
            checked = http.post("/ui/datasets/tx/versions/1/validate", data=contract)
            assert checked.status_code == 200, checked.text
            assert "Contract satisfied (2 rows)." in checked.text
            assert datasets.validations(version) == []  # a read: nothing was kept
            for path in (
                "/ui/datasets/tx/versions/1/validate/more",
                "/ui/datasets/tx/versions/1",
                "/ui/datasets/tx/versions/1/validate%0A",
                "/api/v1/experiments",
            ):
                refused = http.post(path, data=contract)
                assert refused.status_code == 403, path
                assert "has the viewer role" in refused.json()["message"]
    finally:
        close_database(settings.database_url)


# -- refusing to start ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.1.2.3", "example.com", ""])
def test_non_loopback_without_token_is_refused(settings: Settings, host: str) -> None:
    # Raised before uvicorn is started: nothing binds.
    with pytest.raises(InvalidArgument, match="--token") as refused:
        run_server(host, 8765, settings=settings)
    assert "MODELLOOP_TOKEN" in refused.value.message


def test_non_loopback_is_allowed_once_users_exist(settings: Settings) -> None:
    from modelloop.auth import Role, Users
    from modelloop.server.app import check_bind_address
    from modelloop.store import open_database

    with pytest.raises(InvalidArgument):
        check_bind_address("0.0.0.0", settings)
    Users(open_database(settings.database_url)).add("alice", Role.editor, actor="admin")
    check_bind_address("0.0.0.0", settings)  # requests will need a user's token


def test_a_token_decides_the_run_user_not_the_request_body(tmp_path: Path) -> None:
    from modelloop.auth import Role, Users
    from modelloop.store import close_database, open_database
    from modelloop.tracking.entities import RunSpec

    settings = load_settings({"MODELLOOP_HOME": str(tmp_path)})
    _, alice_token = Users(open_database(settings.database_url)).add(
        "alice", Role.editor, actor="admin"
    )
    try:
        with live_server(settings) as url:
            store = HttpTrackingStore(url, token=alice_token)
            try:
                exp = store.create_experiment("e")
                run = store.create_run(RunSpec(experiment_id=exp.experiment_id, user="mallory"))
            finally:
                store.close()
        assert run.user == "alice"
    finally:
        close_database(settings.database_url)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.0.2", False),
        ("128.0.0.1", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_server_does_not_proxy_to_another(settings: Settings) -> None:
    remote = dataclasses.replace(settings, tracking_uri="http://127.0.0.1:1")
    with pytest.raises(InvalidArgument, match="MODELLOOP_TRACKING_URI"):
        create_app(remote)
    with pytest.raises(InvalidArgument, match="MODELLOOP_TRACKING_URI"):
        run_server("127.0.0.1", 8765, token=TOKEN, settings=remote)


@pytest.mark.parametrize("token", [" ", "   ", "x", "fifteen-chars-x", f" {TOKEN}"])
def test_a_blank_or_short_token_is_refused(settings: Settings, token: str) -> None:
    """A blank token would pass for authentication; a short one is guessed."""
    # workers=0 is refused after the token: should the token pass, nothing starts either.
    with pytest.raises(InvalidArgument, match="users token --generate"):
        run_server("0.0.0.0", 8765, token=token, settings=settings, workers=0)
    with pytest.raises(InvalidArgument, match="users token --generate"):
        create_app(dataclasses.replace(settings, token=token))


@pytest.mark.parametrize("command", ["server", "ui"])
@pytest.mark.parametrize("token", [" ", "x"])
def test_the_cli_refuses_a_blank_or_short_token(
    settings: Settings, command: str, token: str
) -> None:
    from typer.testing import CliRunner

    from modelloop.cli import app

    env = {
        "MODELLOOP_HOME": str(settings.home),
        "MODELLOOP_TOKEN": token,
        # Refused after the token: should the token pass, no server starts either.
        "MODELLOOP_TRACKING_URI": "http://127.0.0.1:1",
    }
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, [command, "--host", "0.0.0.0"], env=env)
    assert result.exit_code == 2, result.output
    assert "MODELLOOP_TOKEN" in result.output
    assert "modelloop users token --generate" in result.output
    assert "Traceback" not in result.output


def test_a_generated_token_authenticates(settings: Settings) -> None:
    from typer.testing import CliRunner

    from modelloop.cli import app

    runner = CliRunner(env={"COLUMNS": "200"})
    printed = runner.invoke(app, ["users", "token", "--generate"])
    assert printed.exit_code == 0, printed.output
    token = printed.stdout.strip()
    assert len(token) >= 32
    assert token != runner.invoke(app, ["users", "token", "--generate"]).stdout.strip()
    assert runner.invoke(app, ["users", "token"]).exit_code == 2
    with live_server(settings, token=token) as url:
        authorized = httpx.get(
            url + "/api/v1/experiments", headers={"Authorization": f"Bearer {token}"}
        )
        assert authorized.status_code == 200, authorized.text


def test_invalid_worker_count_is_refused(settings: Settings) -> None:
    with pytest.raises(InvalidArgument, match="workers"):
        run_server("127.0.0.1", 8765, settings=settings, workers=0)


# -- the token -------------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/api/v1/experiments"),
    ("POST", "/api/v1/experiments"),
    ("GET", "/api/v1/runs/" + "0" * 32),
    ("POST", "/api/v1/runs/" + "0" * 32 + "/batch"),
    ("PUT", "/api/v1/runs/" + "0" * 32 + "/artifact?path=x"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/no/such/route"),
]
WRONG = [
    None,
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN.upper()}",
    f"Basic {TOKEN}",
    TOKEN,
    "Bearer",
    f"Bearer  {TOKEN} extra",
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("authorization", WRONG)
def test_missing_or_wrong_token_is_401(
    server: str, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.request(method, server + path, headers=headers, content=b"{}")
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["error_code"] == "UNAUTHORIZED"
    assert "token" in body["message"]
    assert TOKEN not in response.text


def test_right_token_is_accepted(server: str) -> None:
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {TOKEN}"}
        response = httpx.get(server + "/api/v1/experiments", headers=headers)
        assert response.status_code == 200, response.text
        assert "experiments" in response.json()
    spec = httpx.get(server + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert spec.json()["security"] == [{"bearerToken": []}]
    assert spec.json()["paths"]["/health"]["get"]["security"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Cookie": "modelloop_token=%20"},
        {"Cookie": "modelloop_token=%20%20%20"},
        {"Cookie": "modelloop_token=%09"},
        {"Authorization": "Bearer  "},
        {"Authorization": "Bearer   ", "Cookie": f"modelloop_token={TOKEN}"},
    ],
)
def test_blank_credentials_never_authenticate(server: str, headers: dict[str, str]) -> None:
    assert status_of_raw_get(server, "/api/v1/experiments", headers) == 401


def test_bearer_and_cookie_read_a_token_alike(server: str) -> None:
    """Both strip surrounding whitespace before the same constant-time comparison."""
    for headers in (
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"Bearer  {TOKEN} "},
        {"Cookie": f"modelloop_token={TOKEN}"},
        {"Cookie": f"modelloop_token=%20{TOKEN}%20"},
    ):
        assert status_of_raw_get(server, "/api/v1/experiments", headers) == 200, headers


def test_health_is_open(server: str) -> None:
    response = httpx.get(server + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_auth_comes_before_reading_the_body(server: str) -> None:
    too_big = b"x" * (33 * 1024 * 1024)
    response = httpx.post(server + "/api/v1/experiments", content=too_big)
    assert response.status_code == 401


def test_http_store_with_and_without_the_token(server: str) -> None:
    with_token = HttpTrackingStore(server, token=TOKEN)
    without = HttpTrackingStore(server)
    wrong = HttpTrackingStore(server, token="nope")
    try:
        created = with_token.create_experiment("authorised")
        assert with_token.get_experiment_by_name("authorised") == created
        with pytest.raises(Unauthorized, match="Missing bearer token"):
            without.list_experiments()
        with pytest.raises(Unauthorized, match="Wrong bearer token"):
            wrong.get_experiment_by_name("authorised")
    finally:
        for store in (with_token, without, wrong):
            store.close()


def test_sdk_reads_the_token_from_the_environment(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_TOKEN", TOKEN)
    client = ml.Client(tracking_uri=server)
    try:
        run = client.create_run("auth-sdk")
        client.log_metric(run.run_id, "m", 1.0)
        client.flush()
        assert client.get_run(run.run_id).metrics == {"m": 1.0}
    finally:
        client.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_run_server_serves_until_terminated(tmp_path: Path, workers: int) -> None:
    """The entry point the CLI calls, in its own process: listens, enforces the token, stops."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "import sys\n"
        "from modelloop.server import run_server\n"
        "run_server('127.0.0.1', int(sys.argv[1]), workers=int(sys.argv[2]), log_level='warning')"
    )
    env = {**os.environ, "MODELLOOP_HOME": str(tmp_path), "MODELLOOP_TOKEN": TOKEN}
    env.pop("MODELLOOP_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(port), str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert httpx.get(url + "/api/v1/experiments").status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(url + "/api/v1/experiments", json={"name": "cli"}, headers=headers)
        assert created.status_code == 201, created.text
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output
