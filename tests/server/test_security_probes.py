"""Regression tests of the loopback security probe (issue 13): DNS rebinding through the ``Host``
header, and the web UI's origin checks, each reproduced with real requests on a real server.

A rebinding page's requests reach 127.0.0.1 naming its own domain in ``Host``; it is
same-origin with itself, so it also sends a matching ``Origin``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd
import pytest

from modelloop.registry.entities import RequestStatus
from modelloop.registry.sql import SqlRegistryStore
from modelloop.settings import Settings, load_settings
from modelloop.store import close_database, open_database
from modelloop.web.hosts import split_host
from tests.live_server import live_server

EVIL = "evil.example"
TOKEN = "probe-token-4242"


@dataclass
class Served:
    url: str
    port: int
    settings: Settings

    def pending(self) -> str:
        """A new pending request to move the protected ``champion`` alias."""
        store = _registry(self.settings)
        current = store.get_registered_model("fraud").aliases.get("champion")
        target = 1 if current == 2 else 2
        request = store.request_alias("fraud", "champion", target, actor="alice", reason="ready")
        return request.request_id

    def status(self, request_id: str) -> RequestStatus:
        return _registry(self.settings).get_request(request_id).status


def _registry(settings: Settings) -> SqlRegistryStore:
    db = open_database(settings.database_url)
    return SqlRegistryStore(db, protected_aliases=settings.protected_aliases)


def _seed(settings: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    from modelloop.registry.client import Registry
    from modelloop.tracking.client import Client, open_store
    from modelloop.tracking.entities import RunSpec

    tracking = open_store(settings)
    registry = Registry(Client(settings=settings, store=tracking), store=_registry(settings))
    experiment = tracking.create_experiment("probe")
    frame = pd.DataFrame({"x": np.arange(20.0)})
    label = (frame["x"] > 9).astype(int)
    for _ in range(2):
        run_id = tracking.create_run(RunSpec(experiment.experiment_id)).run_id
        registry.register_model(
            run_id, "fraud", LogisticRegression().fit(frame, label), training_data=frame
        )


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = load_settings({"MODELLOOP_HOME": str(tmp_path_factory.mktemp("probe"))})
    _seed(settings)
    yield settings
    close_database(settings.database_url)


@pytest.fixture(scope="module")
def served(base_settings: Settings) -> Iterator[Served]:
    """The default: no token, loopback, no allowed hosts configured."""
    with live_server(base_settings) as url:
        yield Served(url, int(url.rsplit(":", 1)[1]), base_settings)


def _client(served: Served, host: str | None = None, **headers: str) -> httpx.Client:
    if host is not None:
        headers["Host"] = host
    return httpx.Client(base_url=served.url, headers=headers, timeout=30)


# -- 1. DNS rebinding: the Host header ---------------------------------------------------------


def test_a_rebinding_host_can_neither_read_nor_approve(served: Served) -> None:
    rebound = f"{EVIL}:{served.port}"
    origin = f"http://{rebound}"
    request_id = served.pending()
    with _client(served, rebound, Origin=origin) as http:
        for path in ("/api/v1/experiments", "/api/v1/alias-requests", "/ui/", "/ui/approvals"):
            refused = http.get(path)
            assert refused.status_code == 400, path
            body = refused.json()
            assert body["error_code"] == "INVALID_ARGUMENT"
            assert f"Host '{rebound}' is not allowed" in body["message"]
            assert f"MODELLOOP_ALLOWED_HOSTS={EVIL}" in body["message"]
        api = http.post(f"/api/v1/alias-requests/{request_id}/approve", json={"reason": "x"})
        form = http.post(f"/ui/models/requests/{request_id}/approve", data={"reason": "x"})
    assert (api.status_code, form.status_code) == (400, 400)
    assert served.status(request_id) == RequestStatus.PENDING
    with _client(served) as http:  # the real host name still may
        approved = http.post(
            f"/api/v1/alias-requests/{request_id}/approve",
            json={"reason": "ok"},
            headers={"X-Modelloop-User": "bob"},
        )
    assert approved.status_code == 200, approved.text
    assert served.status(request_id) == RequestStatus.APPROVED


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}"]
)
def test_loopback_names_are_answered_with_or_without_the_port(served: Served, host: str) -> None:
    with _client(served, host.format(port=served.port)) as http:
        assert http.get("/api/v1/experiments").status_code == 200
        assert http.get("/ui/").status_code == 200


@pytest.mark.parametrize(
    "host",
    ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "0.0.0.0", "[::2]:80"],
)
def test_other_names_are_refused(served: Served, host: str) -> None:
    with _client(served, host) as http:
        assert http.get("/api/v1/experiments").status_code == 400


def test_allowed_hosts_add_names_and_a_star_allows_any(base_settings: Settings) -> None:
    names = dataclasses.replace(base_settings, allowed_hosts=("models.example", "ml.example:8443"))
    with live_server(names) as url, httpx.Client(base_url=url, timeout=30) as http:
        port = url.rsplit(":", 1)[1]
        for host, status in (
            (f"models.example:{port}", 200),
            ("MODELS.EXAMPLE", 200),
            ("ml.example:8443", 200),
            (f"ml.example:{port}", 400),
            (f"{EVIL}:{port}", 400),
            (f"localhost:{port}", 200),
        ):
            answer = http.get("/api/v1/experiments", headers={"Host": host})
            assert answer.status_code == status, host
        refused = http.get("/health", headers={"Host": EVIL}).json()["message"]
        assert "and models.example, ml.example:8443" in refused
    star = dataclasses.replace(base_settings, allowed_hosts=("*",))
    with live_server(star) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/api/v1/experiments", headers={"Host": EVIL}).status_code == 200


def test_a_server_requiring_a_token_answers_to_any_name_unless_names_are_set(
    base_settings: Settings,
) -> None:
    """Bound to 0.0.0.0 it cannot know the names users type; a rebinding page has no token."""
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with live_server(base_settings, token=TOKEN) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/v1/experiments", headers={**bearer, "Host": "10.1.2.3"}).is_success
        assert http.get("/api/v1/experiments", headers={"Host": EVIL}).status_code == 401
    named = dataclasses.replace(base_settings, allowed_hosts=("models.example",))
    with live_server(named, token=TOKEN) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/v1/experiments", headers={**bearer, "Host": EVIL}).status_code == 400
        ok = http.get("/api/v1/experiments", headers={**bearer, "Host": "models.example"})
        assert ok.is_success


def test_the_http_client_still_works(served: Served) -> None:
    from modelloop.tracking.client import Client

    client = Client(served.url, settings=served.settings)
    try:
        assert "probe" in [e.name for e in client.list_experiments()]
    finally:
        client.close()


def test_host_headers_are_split_into_name_and_port() -> None:
    assert split_host("Evil.Example.:8080") == ("evil.example", "8080")
    assert split_host("[::1]:8080") == ("::1", "8080")
    assert split_host("[::1]") == ("::1", "")
    assert split_host("::1") == ("::1", "")
    assert split_host("localhost") == ("localhost", "")


# -- 4. the web UI's origin checks -------------------------------------------------------------


def test_ui_forms_need_this_exact_origin_scheme_included(served: Served) -> None:
    request_id = served.pending()
    path = f"/ui/models/requests/{request_id}/approve"
    host = f"127.0.0.1:{served.port}"
    for headers in (
        {"Origin": f"https://{host}"},  # another scheme is another site
        {},  # a browser always names the page; a forged or stripped one is refused
        {"Origin": "null"},
        {"Origin": f"http://{host}.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        with _client(served, **headers) as http:
            refused = http.post(path, data={"reason": "x"})
        assert refused.status_code == 403, headers
        assert "another site" in refused.text
    assert served.status(request_id) == RequestStatus.PENDING
    with _client(served, **{"Sec-Fetch-Site": "same-origin", "X-Modelloop-User": "bob"}) as http:
        approved = http.post(path, data={"reason": "ok"})
    assert approved.status_code == 303
    assert served.status(request_id) == RequestStatus.APPROVED


def test_logout_is_refused_from_another_site(base_settings: Settings) -> None:
    with live_server(base_settings, token=TOKEN) as url:
        cookie = {"modelloop_token": TOKEN}
        for origin in ("https://evil.example", url.replace("http://", "https://"), None):
            headers = {} if origin is None else {"Origin": origin}
            with httpx.Client(base_url=url, cookies=cookie, headers=headers) as http:
                refused = http.post("/ui/logout")
            assert refused.status_code == 422, origin
            assert "posted from another site" in refused.text
            assert "set-cookie" not in refused.headers
        with httpx.Client(base_url=url, cookies=cookie, headers={"Origin": url}) as http:
            logout = http.post("/ui/logout")
        assert logout.status_code == 303
        assert 'modelloop_token=""' in logout.headers["set-cookie"]


def test_login_is_refused_with_another_scheme_or_no_origin(base_settings: Settings) -> None:
    with live_server(base_settings, token=TOKEN) as url:
        for origin in (url.replace("http://", "https://"), None):
            headers = {} if origin is None else {"Origin": origin}
            with httpx.Client(base_url=url, headers=headers) as http:
                refused = http.post("/ui/login", data={"token": TOKEN})
            assert refused.status_code == 422, origin
            assert "set-cookie" not in refused.headers
        with httpx.Client(base_url=url, headers={"Origin": url}) as http:
            assert http.post("/ui/login", data={"token": TOKEN}).status_code == 303
