"""Webhook delivery against real HTTP servers on loopback; nothing here may reach the internet.

Every local server is on a loopback address, which ``deliver`` refuses by default: tests reach them
with ``allow_private=True`` or an ``allowed_networks`` allowlist, and forbidden targets are shown
to be refused before any connection by the servers recording no request.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest

from modelloop._version import __version__
from modelloop.errors import InvalidArgument
from modelloop.monitoring.webhooks import _post, _resolve, check_webhook_url, deliver

LOCAL_ONLY = [ipaddress.ip_network("127.0.0.1/32")]


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A real HTTP server that records each POST and answers from a script (then 200)."""

    host: str
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(
        host: str = "127.0.0.1",
        *answers: tuple[int, dict[str, str]],
        tls: ssl.SSLContext | None = None,
    ) -> Server:
        server = Server(host, list(answers))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append(Recorded(self.path, dict(self.headers), body))
                status, headers = server.answers.pop(0) if server.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer((host, 0), Handler)
        if tls is not None:
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        server.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        started.append((httpd, thread))
        return server

    yield start
    for httpd, thread in started:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_delivers_the_json_payload_with_its_headers(serve) -> None:
    server = serve()
    payload = {"monitor": "churn-drift", "drifted": ["amount"], "psi": 0.31}
    delivery = deliver(f"{server.url}/hooks/alert?x=1", payload, allow_private=True)

    assert delivery.ok, delivery.error
    assert (delivery.status, delivery.attempts, delivery.error) == (200, 1, None)
    [request] = server.requests
    assert request.path == "/hooks/alert?x=1"
    assert orjson.loads(request.body) == payload
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"modelloop/{__version__}"
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"


def test_connects_to_the_checked_address_but_keeps_the_host_name(serve) -> None:
    server = serve()
    delivery = deliver(f"http://localhost:{server.port}/", {"a": 1}, allowed_networks=LOCAL_ONLY)
    assert delivery.ok, delivery.error
    assert server.requests[0].headers["Host"] == f"localhost:{server.port}"


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/",  # decimal 127.0.0.1, as getaddrinfo reads it
        "http://0x7f.1:{port}/",  # hex and short form
        "http://017700000001:{port}/",  # octal
        "http://127.1:{port}/",
        "http://224.0.0.1/",
    ],
)
def test_refuses_private_targets_without_connecting(serve, caplog, target: str) -> None:
    server = serve()
    url = target.format(port=server.port)
    with caplog.at_level(logging.WARNING, logger="modelloop.monitoring.webhooks"):
        delivery = deliver(url, {"a": 1})

    assert not delivery.ok
    assert (delivery.status, delivery.attempts) == (None, 1)  # refused: never retried
    assert "private" in delivery.error
    assert "MODELLOOP_WEBHOOK_ALLOWED_NETWORKS" in delivery.error
    assert server.requests == []
    assert url in caplog.text


def test_loopback_refusal_says_loopback(serve) -> None:
    server = serve()
    delivery = deliver(f"http://localhost:{server.port}/", {})
    assert "localhost resolves to 127.0.0.1, a loopback address" in delivery.error
    assert "169.254.169.254 is a link-local address" in deliver("http://169.254.169.254/", {}).error


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "scheme must be http or https"),
        ("ftp://hooks.example.com/x", "scheme must be http or https"),
        ("gopher://hooks.example.com:70/_x", "scheme must be http or https"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("hooks.example.com/x", "scheme must be http or https"),
        ("http:///x", "no host"),
        ("https://", "no host"),
        ("https://user:secret@hooks.example.com/x", "credentials"),
        ("https://token@hooks.example.com/x", "credentials"),
        ("http://169.254.169.254/", "link-local"),
        ("http://[::1]/", "loopback"),
    ],
)
def test_check_webhook_url_refuses(url: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        check_webhook_url(url)


def test_check_webhook_url_normalizes_without_resolving(monkeypatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> None:
        raise AssertionError("config-time validation must not resolve names")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert check_webhook_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    assert check_webhook_url("HTTPS://Hooks.Example.COM/x") == "https://hooks.example.com/x"
    assert (
        check_webhook_url("http://localhost:8080/x") == "http://localhost:8080/x"
    )  # resolved later
    assert check_webhook_url("http://10.1.2.3/x", allow_private=True) == "http://10.1.2.3/x"
    allowed = [ipaddress.ip_network("10.0.0.0/8")]
    assert check_webhook_url("http://10.1.2.3/x", allowed_networks=allowed) == "http://10.1.2.3/x"


def test_follows_307_and_308_when_the_next_target_is_allowed(serve) -> None:
    final = serve("127.0.0.2")
    middle = serve("127.0.0.1", (308, {"Location": f"{final.url}/final"}))
    first = serve("127.0.0.1", (307, {"Location": f"{middle.url}/middle"}))
    delivery = deliver(f"{first.url}/start", {"alert": 1}, allow_private=True)

    assert delivery.ok, delivery.error
    assert (delivery.status, delivery.attempts) == (200, 1)
    assert [r.path for r in first.requests + middle.requests + final.requests] == [
        "/start",
        "/middle",
        "/final",
    ]
    assert orjson.loads(final.requests[0].body) == {"alert": 1}  # re-POSTed with its body
    assert final.requests[0].headers["Host"] == f"127.0.0.2:{final.port}"


def test_a_relative_redirect_stays_on_the_same_host(serve) -> None:
    server = serve("127.0.0.1", (307, {"Location": "/moved"}))
    delivery = deliver(f"{server.url}/old", {}, allowed_networks=LOCAL_ONLY)
    assert delivery.ok, delivery.error
    assert [r.path for r in server.requests] == ["/old", "/moved"]


def test_a_redirect_to_a_forbidden_address_is_refused(serve) -> None:
    forbidden = serve("127.0.0.2")
    allowed = serve("127.0.0.1", (307, {"Location": f"{forbidden.url}/internal"}))
    delivery = deliver(allowed.url, {"a": 1}, allowed_networks=LOCAL_ONLY)

    assert not delivery.ok
    assert len(allowed.requests) == 1
    assert forbidden.requests == []
    assert "127.0.0.2 is a loopback address" in delivery.error
    assert delivery.attempts == 1


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x"])
def test_a_redirect_to_another_scheme_is_refused(serve, location: str) -> None:
    server = serve("127.0.0.1", (307, {"Location": location}))
    delivery = deliver(server.url, {}, allow_private=True)
    assert not delivery.ok
    assert "scheme must be http or https" in delivery.error
    assert len(server.requests) == 1


def test_a_redirect_loop_stops_after_max_redirects(serve) -> None:
    server = serve("127.0.0.1", *[(307, {"Location": "/again"})] * 10)
    delivery = deliver(server.url, {}, allow_private=True, max_redirects=3)
    assert not delivery.ok
    assert "redirected more than 3 times" in delivery.error
    assert (delivery.status, delivery.attempts, len(server.requests)) == (307, 1, 4)


def test_302_is_not_followed_and_303_counts_as_delivered(serve) -> None:
    elsewhere = serve("127.0.0.1")
    moved = serve("127.0.0.1", (302, {"Location": elsewhere.url}))
    delivery = deliver(moved.url, {}, allow_private=True)
    assert not delivery.ok
    assert delivery.status == 302
    assert "update the URL" in delivery.error
    assert elsewhere.requests == []

    handled = serve("127.0.0.1", (303, {"Location": f"{elsewhere.url}/result"}))
    delivery = deliver(handled.url, {}, allow_private=True)
    assert (delivery.ok, delivery.status, delivery.error) == (True, 303, None)
    assert elsewhere.requests == []


def test_retries_server_errors_until_delivered(serve) -> None:
    server = serve("127.0.0.1", (503, {}), (429, {}))
    delivery = deliver(server.url, {"a": 1}, allow_private=True, attempts=3)
    assert (delivery.ok, delivery.status, delivery.attempts) == (True, 200, 3)
    assert len(server.requests) == 3


def test_gives_up_after_the_last_attempt(serve, caplog) -> None:
    server = serve("127.0.0.1", *[(503, {})] * 5)
    with caplog.at_level(logging.WARNING, logger="modelloop.monitoring.webhooks"):
        delivery = deliver(server.url, {}, allow_private=True, attempts=2)
    assert (delivery.ok, delivery.status, delivery.attempts) == (False, 503, 2)
    assert "answered HTTP 503" in delivery.error
    assert "failed after 2 attempt(s)" in caplog.text


def test_client_errors_are_not_retried(serve) -> None:
    server = serve("127.0.0.1", (400, {}))
    delivery = deliver(server.url, {}, allow_private=True, attempts=3)
    assert (delivery.ok, delivery.status, delivery.attempts) == (False, 400, 1)
    assert len(server.requests) == 1


def test_a_closed_port_fails_after_every_attempt_without_raising() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    delivery = deliver(f"http://127.0.0.1:{port}/", {}, allow_private=True, attempts=3)
    assert (delivery.ok, delivery.status, delivery.attempts) == (False, None, 3)
    assert "cannot deliver" in delivery.error


def test_an_invalid_location_fails_without_raising(serve) -> None:
    server = serve("127.0.0.1", (307, {"Location": "http://[::1"}))
    delivery = deliver(server.url, {}, allow_private=True)
    assert (delivery.ok, delivery.status, delivery.attempts) == (False, 307, 1)
    assert "redirected to an invalid URL" in delivery.error


def test_https_is_pinned_to_the_checked_address_with_sni_and_certificate_on_the_name(
    serve, tmp_path: Path
) -> None:
    """deliver() trusts the system CAs only, so this drives its POST with a test CA."""
    if shutil.which("openssl") is None:  # in CI the test must run, not skip
        if os.environ.get("MODELLOOP_TEST_POSTGRES_URL") or os.environ.get("CI"):
            pytest.fail("the openssl command is missing")
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
    extension = "subjectAltName=DNS:localhost"
    subprocess.run(
        [*command.split(), "-addext", extension, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names: list[str | None] = []

    def record_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    tls.sni_callback = record_sni
    server = serve("127.0.0.1", tls=tls)

    target, addresses = _resolve(f"https://localhost:{server.port}/x", True, ())
    trusted = ssl.create_default_context(cafile=cert)
    with httpx.HTTPTransport(verify=trusted) as transport:
        assert _post(transport, 5.0, target, addresses, b"{}") == (200, None)
        wrong = target.copy_with(host="127.0.0.1")  # the certificate names localhost only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            _post(transport, 5.0, wrong, addresses, b"{}")
    assert names[0] == "localhost"
    assert server.requests[0].headers["Host"] == f"localhost:{server.port}"
