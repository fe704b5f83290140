"""Artifact routes: every hostile path refused on write, read and list; uploads bounded.

Hostile paths are sent three ways: through httpx's ``params=`` (the server decodes exactly the
hostile string), byte for byte in the request target with only what HTTP forbids escaped (no
client-side normalisation of '/', '\\', '?', ';' or '..'), and, for the percent-encoded entries,
with their escapes left for the server to decode once (``%2e%2e/x`` arrives as ``../x``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpcore
import httpx
import pytest

from modelloop.artifacts import BlobStore
from modelloop.errors import PayloadTooLarge, UnsafePath
from modelloop.settings import Settings, load_settings
from modelloop.tracking.entities import RunSpec, new_id
from modelloop.tracking.http import HttpTrackingStore
from tests.artifacts.hostile_paths import HOSTILE_PATHS
from tests.live_server import live_server

MAX_UPLOAD = 256 * 1024
HOSTILE_BODY = b"written through a hostile path " + os.urandom(16)
ROUTES = ("write", "read", "list")
# Escapes that the server decodes once into a harmless name: not an attack in that encoding.
HARMLESS_ONCE_DECODED = {"a%20b"}


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    settings: Settings
    root: Path  # everything the server may write is below this directory
    run_id: str  # receives the hostile requests: must end with no artifacts
    ok_run_id: str  # receives the legitimate ones


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("artifact-routes")
    home = root / "a" / "b" / "home"  # deep, so that climbing out still lands under root
    settings = dataclasses.replace(
        load_settings({"MODELLOOP_HOME": str(home)}), max_upload_bytes=MAX_UPLOAD
    )
    with live_server(settings) as url:
        store = HttpTrackingStore(url)
        try:
            experiment = store.create_experiment("artifacts")
            hostile = store.create_run(RunSpec(experiment.experiment_id, name="hostile"))
            ok = store.create_run(RunSpec(experiment.experiment_id, name="ok"))
        finally:
            store.close()
        yield Server(url, settings, root, hostile.run_id, ok.run_id)


def _query_escape(value: str, keep_percent: bool = False) -> str:
    """Escape only what cannot travel literally in a query value."""
    safe = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "#&+%")
    return quote(value, safe=safe + ("%" if keep_percent else ""))


def _request(server: Server, route: str, path: str, encoding: str) -> tuple[int, dict[str, Any]]:
    method = {"write": "PUT", "read": "GET", "list": "GET"}[route]
    endpoint = f"/api/v1/runs/{server.run_id}/" + ("artifacts" if route == "list" else "artifact")
    name = "prefix" if route == "list" else "path"
    body = HOSTILE_BODY if route == "write" else None
    if encoding == "params":
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.request(method, endpoint, params={name: path}, content=body)
        return response.status_code, _json(response.headers, response.content)
    url = httpx.URL(server.url)
    value = _query_escape(path, keep_percent=encoding == "decoded-once")
    target = f"{endpoint}?{name}={value}".encode("ascii")
    raw = httpcore.request(
        method,
        httpcore.URL(scheme=b"http", host=url.host.encode(), port=url.port, target=target),
        content=body,
    )
    headers = {k.decode().lower(): v.decode() for k, v in raw.headers}
    return raw.status, _json(headers, raw.content)


def _json(headers: Any, content: bytes) -> dict[str, Any]:
    assert headers["content-type"] == "application/json", content[:200]
    return dict(json.loads(content))


def _encodings(path: str) -> list[str]:
    if "%" not in path or path in HARMLESS_ONCE_DECODED:
        return ["params", "raw"]
    return ["params", "raw", "decoded-once"]


def _cases() -> Iterator[Any]:
    for index, (path, why) in enumerate(HOSTILE_PATHS):
        for route in ROUTES:
            if route == "list" and path == "":
                continue  # an empty prefix is no prefix: it lists everything, legitimately
            yield pytest.param(path, route, id=f"{route}-{index}-{why}")


@pytest.mark.parametrize(("path", "route"), list(_cases()))
def test_hostile_path_is_refused(server: Server, path: str, route: str) -> None:
    for encoding in _encodings(path):
        status, body = _request(server, route, path, encoding)
        assert (status, body["error_code"]) == (422, "UNSAFE_PATH"), (encoding, status, body)
        assert body["message"]


def test_hostile_paths_leave_no_trace(server: Server) -> None:
    before = _tree(server.root)
    for path, _ in HOSTILE_PATHS:
        for encoding in _encodings(path):
            _request(server, "write", path, encoding)
    after = _tree(server.root)
    assert after == before  # not a file created, anywhere under the test's directory
    assert not BlobStore(server.settings.artifact_uri).exists(_digest(HOSTILE_BODY))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        listed = client.get(f"/api/v1/runs/{server.run_id}/artifacts").json()
    assert listed == {"artifacts": []}


def test_hostile_paths_are_refused_by_the_http_store_too(server: Server) -> None:
    store = HttpTrackingStore(server.url)
    try:
        for path, _ in HOSTILE_PATHS:
            with pytest.raises(UnsafePath):
                store.put_artifact(server.run_id, path, HOSTILE_BODY)
            with pytest.raises(UnsafePath):
                store.open_artifact(server.run_id, path).read()
    finally:
        store.close()


# -- legitimate use --------------------------------------------------------------------------------


def test_upload_download_list_round_trip(server: Server) -> None:
    payload = os.urandom(100_000)
    endpoint = f"/api/v1/runs/{server.ok_run_id}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        put = client.put(
            f"{endpoint}/artifact", params={"path": "./model//weights.bin"}, content=payload
        )
        assert put.status_code == 201, put.text
        assert put.json() == {
            "path": "model/weights.bin",
            "digest": _digest(payload),
            "size": len(payload),
        }

        got = client.get(f"{endpoint}/artifact", params={"path": "model/weights.bin"})
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.content == payload

        chunked = client.put(
            f"{endpoint}/artifact",
            params={"path": "model/card.md"},
            content=iter([b"# card\n", b"streamed in chunks\n"]),
        )
        assert chunked.status_code == 201, chunked.text
        assert chunked.json()["size"] == len(b"# card\nstreamed in chunks\n")

        listed = client.get(f"{endpoint}/artifacts", params={"prefix": "model"}).json()
        assert [a["path"] for a in listed["artifacts"]] == ["model/card.md", "model/weights.bin"]
        assert client.get(f"{endpoint}/artifacts", params={"prefix": "other"}).json() == {
            "artifacts": []
        }

        again = client.put(
            f"{endpoint}/artifact", params={"path": "model/weights.bin"}, content=payload
        )
        assert again.status_code == 201  # same content, same path: idempotent
        changed = client.put(
            f"{endpoint}/artifact", params={"path": "model/weights.bin"}, content=b"x"
        )
        assert changed.status_code == 409
        assert changed.json()["error_code"] == "CONFLICT"

        missing = client.get(f"{endpoint}/artifact", params={"path": "model/missing.bin"})
        assert (missing.status_code, missing.json()["error_code"]) == (404, "NOT_FOUND")


def test_a_symlink_planted_in_the_blob_store_is_not_served(server: Server) -> None:
    secret = server.root / "secret.txt"
    secret.write_bytes(b"outside the store")
    payload = b"soon replaced by a link " + os.urandom(16)
    digest = _digest(payload)
    endpoint = f"/api/v1/runs/{server.ok_run_id}/artifact"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.put(endpoint, params={"path": "linked.bin"}, content=payload).is_success
        blob = Path(server.settings.artifact_uri) / "sha256" / digest[:2] / digest[2:4] / digest
        blob.unlink()
        blob.symlink_to(secret)
        got = client.get(endpoint, params={"path": "linked.bin"})
    assert got.status_code == 422, got.text
    assert got.json()["error_code"] == UnsafePath.error_code
    assert b"outside the store" not in got.content


def test_upload_to_unknown_run_is_404_and_stores_nothing(server: Server) -> None:
    payload = b"orphan " + os.urandom(16)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.put(
            f"/api/v1/runs/{new_id()}/artifact", params={"path": "x.bin"}, content=payload
        )
    assert (response.status_code, response.json()["error_code"]) == (404, "NOT_FOUND")
    assert not BlobStore(server.settings.artifact_uri).exists(_digest(payload))


def test_http_store_streams_files(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(bytes(range(256)) * 512)  # 128 KiB with newlines in it
    store = HttpTrackingStore(server.url)
    try:
        info = store.put_artifact(server.ok_run_id, "data/data.bin", source)
        assert (info.path, info.size, info.digest) == (
            "data/data.bin",
            source.stat().st_size,
            _digest(source.read_bytes()),
        )
        with store.open_artifact(server.ok_run_id, "data/data.bin") as stream:
            assert stream.read(10) == bytes(range(10))
            assert stream.read() == source.read_bytes()[10:]
    finally:
        store.close()


# -- size limit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_oversize_upload_is_413_and_stores_nothing(server: Server, declared: bool) -> None:
    payload = os.urandom(MAX_UPLOAD + 1)
    content: bytes | Iterator[bytes] = (
        payload if declared else (payload[i : i + 65536] for i in range(0, len(payload), 65536))
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.put(
            f"/api/v1/runs/{server.ok_run_id}/artifact",
            params={"path": "too/big.bin"},
            content=content,
        )
        assert response.status_code == 413, response.text
        assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"
        listed = client.get(
            f"/api/v1/runs/{server.ok_run_id}/artifacts", params={"prefix": "too"}
        ).json()
    assert listed == {"artifacts": []}
    assert not BlobStore(server.settings.artifact_uri).exists(_digest(payload))
    spool = Path(server.settings.artifact_uri) / "tmp"
    assert not spool.exists() or not any(spool.iterdir())  # no half-written upload left


def test_upload_at_the_limit_is_accepted(server: Server) -> None:
    payload = os.urandom(MAX_UPLOAD)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.put(
            f"/api/v1/runs/{server.ok_run_id}/artifact",
            params={"path": "exactly/at-limit.bin"},
            content=payload,
        )
        assert response.status_code == 201, response.text
        assert (response.json()["digest"], response.json()["size"]) == (
            _digest(payload),
            MAX_UPLOAD,
        )
        back = client.get(
            f"/api/v1/runs/{server.ok_run_id}/artifact", params={"path": "exactly/at-limit.bin"}
        )
    assert back.status_code == 200
    assert back.content == payload


def test_http_store_raises_payload_too_large(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(MAX_UPLOAD * 2))
    store = HttpTrackingStore(server.url)
    try:
        with pytest.raises(PayloadTooLarge):
            store.put_artifact(server.ok_run_id, "big.bin", source)
    finally:
        store.close()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(root: Path) -> set[str]:
    """Every file under ``root`` except the database's own (its WAL grows with any request)."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("modelloop.db")
    }
