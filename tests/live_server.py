"""A real modelloop server on 127.0.0.1 for tests: ``with live_server(settings) as url: ...``.

A real uvicorn, on a real socket, in a background thread: what the HTTP tests exercise is what a
user runs, including the server's own parsing of request lines, headers and chunked bodies.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from modelloop.server import create_app
from modelloop.settings import Settings

STARTUP_TIMEOUT = 30.0


@contextmanager
def live_server(settings: Settings, token: str | None = None) -> Iterator[str]:
    """Serve ``settings``' store (requiring ``token`` when given); yield the base URL."""
    if token is not None:
        settings = dataclasses.replace(settings, token=token)
    app = create_app(settings)
    # Binding the socket here, not in uvicorn, means the port is ours before the thread starts.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(server, thread, url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT)
        sock.close()
        if thread.is_alive():  # pragma: no cover - a hung shutdown is a bug worth seeing
            raise RuntimeError(f"the server on {url} did not stop")


def _wait_until_healthy(server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server on {url} failed to start (see the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server on {url} did not start in {STARTUP_TIMEOUT} s")
        time.sleep(0.01)
    with httpx.Client(base_url=url, timeout=STARTUP_TIMEOUT) as client:  # a loaded machine is slow
        response = client.get("/health")
        if response.json() != {"status": "ok"}:
            raise RuntimeError(f"{url}/health answered {response.status_code}: {response.text}")


def status_of_raw_get(server: str, path: str, headers: dict[str, str]) -> int:
    """The status of a GET sent as raw bytes: httpx refuses to send a header value that
    ends in whitespace, as a hostile client may."""
    address = httpx.URL(server)
    host, port = address.host, address.port or 80
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])
