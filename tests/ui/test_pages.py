"""Each page over a real server: status, content, and user text rendered inert (XSS corpus)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from modelloop.auth import Role, Users
from modelloop.errors import InvalidArgument
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import Metric
from modelloop.ui.app import SECTIONS
from tests.live_server import live_server
from tests.ui.conftest import LONG_POINTS, PAGED_RUNS, XSS, Seeded

TOKEN = "ui-s3cret/token+=;"  # characters a cookie must carry encoded


@pytest.fixture(scope="module")
def http(ui_server: tuple[str, Seeded]) -> Iterator[httpx.Client]:
    url, _ = ui_server
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(ui_server: tuple[str, Seeded]) -> Seeded:
    return ui_server[1]


class _Markup(HTMLParser):
    """Collects what a browser would execute: inline scripts, event handlers, script URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.dangers: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script" and not dict(attrs).get("src"):
            self.dangers.append("inline <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.dangers.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action", "formaction") and (
                value or ""
            ).strip().lower().startswith("javascript:"):
                self.dangers.append(f"<{tag} {name}={value}>")


def assert_inert(html: str) -> None:
    """No payload of the corpus appears as markup: only escaped, as text."""
    for payload in XSS:
        if any(c in payload for c in "<>\"'"):
            assert payload not in html, payload
    markup = _Markup()
    markup.feed(html)
    assert markup.dangers == []
    assert not {"img", "svg", "iframe", "b"} & set(markup.tags)


def xss_pages(seeded: Seeded) -> list[str]:
    ids = seeded.xss_runs
    experiment = quote(seeded.xss_experiment, safe="")
    return [
        "/ui/",
        "/ui/runs",
        f"/ui/runs?experiment={experiment}",
        f"/ui/runs?experiment={experiment}&columns=params.payload,tags.note,metrics.acc",
        *(f"/ui/runs/{i}" for i in ids),
        f"/ui/compare?runs={','.join(ids)}",
        f"/ui/runs/{seeded.lineage_run}",
    ]


def test_every_page_answers_and_renders_the_xss_corpus_as_text(
    http: httpx.Client, seeded: Seeded
) -> None:
    for path in xss_pages(seeded):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp.split("style-src")[0]
        assert_inert(response.text)
    run_page = http.get(f"/ui/runs/{seeded.xss_runs[0]}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page  # shown, as text
    assert "{{7*7}} {% raw %}" in http.get(f"/ui/runs/{seeded.xss_runs[-1]}").text


def test_user_text_in_error_messages_is_escaped_too(http: httpx.Client) -> None:
    for query in (
        {"filter": XSS[0]},
        {"filter": f"params.x = '{XSS[1]}' and"},
        {"order_by": XSS[2]},
        {"experiment": XSS[3]},
        {"columns": XSS[4]},
        {"columns": f"params.{XSS[0]}"},
    ):
        response = http.get("/ui/runs", params=query)
        assert response.status_code in (200, 400, 404, 422), query
        assert_inert(response.text)
    assert_inert(http.get("/ui/login", params={"next": XSS[1]}).text)
    assert_inert(http.get("/ui/compare", params={"runs": XSS[0]}).text)


def test_keys_cannot_carry_markup(ui_settings: tuple[Settings, Seeded]) -> None:
    """Metric, param and tag keys are restricted to word characters and ``-./:`` by the store,
    so they never hold markup; values can, and are escaped (above)."""
    settings, seeded = ui_settings
    store = open_store(settings)
    with pytest.raises(InvalidArgument):
        store.log_batch(seeded.xss_runs[0], [Metric(XSS[0], 1.0, 0, 0)])
    with pytest.raises(InvalidArgument):
        store.log_batch(seeded.xss_runs[0], params={XSS[1]: "x"})


def test_root_redirects_to_the_ui(http: httpx.Client) -> None:
    for path in ("/", "/ui"):
        response = http.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"


def test_experiments_page_links_each_experiment(http: httpx.Client) -> None:
    html = http.get("/ui/").text
    assert 'href="/ui/runs?experiment=curves"' in html
    assert 'href="/ui/runs?experiment=paged"' in html
    for key, label in SECTIONS:  # a section with a module is a link, else a greyed place
        if importlib.util.find_spec(f"modelloop.ui.{key}") is not None:
            assert f'href="/ui/{key}"' in html
        else:
            assert f'title="In a later release">{label}<' in html


def row_names(html: str) -> list[str]:
    return re.findall(r'class="run-link">([^<]*)</a>', html)


def test_runs_are_filtered_with_the_sdk_syntax_sorted_and_paged(http: httpx.Client) -> None:
    first = http.get("/ui/runs", params={"experiment": "paged", "order_by": "metrics.score DESC"})
    assert row_names(first.text) == [
        f"p{i:03d}" for i in range(PAGED_RUNS - 1, PAGED_RUNS - 101, -1)
    ]
    assert "Runs 1&ndash;100" in first.text
    assert 'rel="next"' in first.text
    assert 'rel="prev"' not in first.text
    last = http.get(
        "/ui/runs", params={"experiment": "paged", "order_by": "metrics.score DESC", "page": "3"}
    )
    assert row_names(last.text) == [f"p{i:03d}" for i in range(4, -1, -1)]
    assert "Runs 201&ndash;205" in last.text
    assert 'rel="next"' not in last.text

    odd = http.get(
        "/ui/runs",
        params={
            "experiment": "paged",
            "filter": "params.parity = '1' and metrics.score < 10",
            "order_by": "metrics.score ASC",
        },
    )
    assert row_names(odd.text) == ["p001", "p003", "p005", "p007", "p009"]
    # The header of the sorted column flips the order; the others sort ascending first.
    assert "order_by=metrics.%60score%60+DESC" in odd.text
    assert "order_by=name+ASC" in odd.text


def test_a_bad_filter_is_an_inline_message_not_a_server_error(http: httpx.Client) -> None:
    response = http.get("/ui/runs", params={"filter": "metrics.auc >"})
    assert response.status_code == 400
    assert 'id="filter-error"' in response.text
    assert "expected a number after" in response.text
    assert 'value="metrics.auc &gt;"' in response.text  # kept in the box to correct it
    bad_order = http.get("/ui/runs", params={"order_by": "metrics.auc SIDEWAYS"})
    assert bad_order.status_code == 400
    assert "ASC, DESC" in bad_order.text


def test_run_page_shows_params_metrics_tags_artifacts_and_lineage(
    http: httpx.Client, seeded: Seeded
) -> None:
    html = http.get(f"/ui/runs/{seeded.lineage_run}").text
    assert "<td>lr</td><td>0.1</td>" in html
    assert 'class="chart-box"' in html
    assert '<option value="loss">loss</option>' in html
    assert 'src="/ui/static/plotly.min.js"' in html
    assert 'id="lineage"' in html
    assert f'href="/ui/runs/{seeded.plain_runs[1]}"' in html  # the producing run, linked
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@1" in html  # the dataset, as text
    xss_run = http.get(f"/ui/runs/{seeded.xss_runs[0]}").text
    match = re.search(r'href="(/api/v1/runs/[0-9a-f]{32}/artifact\?path=[^"]+)" download', xss_run)
    assert match is not None
    download = http.get(match.group(1).replace("&amp;", "&"))
    assert download.status_code == 200
    assert download.content == XSS[0].encode()


def test_missing_and_malformed_runs_are_error_pages(http: httpx.Client) -> None:
    missing = http.get(f"/ui/runs/{'0' * 32}")
    assert missing.status_code == 404
    assert "does not exist" in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    assert http.get("/ui/runs/not-a-run").status_code == 422


def test_compare_diffs_params_and_tabulates_metrics(http: httpx.Client, seeded: Seeded) -> None:
    a, b = seeded.plain_runs
    html = http.get("/ui/compare", params=[("run", a), ("run", b)]).text
    assert '<tr class="differs"><td>lr</td><td>0.1</td><td>0.3</td></tr>' in html
    assert '<tr class="same"><td>model</td><td>lgbm</td><td>lgbm</td></tr>' in html
    assert "<td>auc</td>" in html
    assert ">0.6<" in html
    assert ">0.8<" in html
    assert 'class="chart-box"' in html
    same = http.get("/ui/compare", params={"runs": f"{a},{b}"}).text
    assert same == html
    assert "Check two or more runs" in http.get("/ui/compare").text
    too_many = http.get("/ui/compare", params={"runs": ",".join([a] * 3 + ["f" * 32] * 20)})
    assert too_many.status_code in (404, 422)


def test_metric_json_is_downsampled_with_a_note(http: httpx.Client, seeded: Seeded) -> None:
    long = http.get("/ui/api/metric", params={"run": seeded.curve_run, "key": "loss"}).json()
    assert long["downsampled"] == {"original": LONG_POINTS, "shown": 2000}
    assert long["steps"][0] == 0
    assert long["steps"][-1] == LONG_POINTS - 1
    assert long["steps"] == sorted(long["steps"])
    assert 4321 in long["steps"]  # the spike is kept
    short = http.get(
        "/ui/api/metric", params={"run": seeded.plain_runs[1], "key": "loss", "max_points": 5000}
    ).json()
    assert short["downsampled"] == {"original": 500, "shown": 500}
    missing = http.get("/ui/api/metric", params={"run": seeded.curve_run, "key": "nope"}).json()
    assert missing["downsampled"]["original"] == 0
    assert http.get("/ui/api/metric", params={"run": "x", "key": "loss"}).status_code == 422
    too_many = http.get(
        "/ui/api/metric", params={"run": seeded.curve_run, "key": "loss", "max_points": 10**6}
    )
    assert too_many.status_code == 422
    assert too_many.json()["error_code"] == "INVALID_ARGUMENT"


def test_static_files_come_from_the_package_and_nothing_else(http: httpx.Client) -> None:
    plotly = http.get("/ui/static/plotly.min.js")
    assert plotly.status_code == 200
    assert len(plotly.content) > 1_000_000
    assert plotly.headers["content-type"].startswith("text/javascript")
    assert http.get("/ui/static/ui.css").status_code == 200
    assert http.get("/ui/static/ui.js").status_code == 200
    for name in ("../app.py", "..%2Fapp.py", "templates", "nope.js"):
        assert http.get(f"/ui/static/{name}").status_code == 404


# -- auth ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(ui_settings: tuple[Settings, Seeded]) -> Iterator[str]:
    settings, _ = ui_settings
    with live_server(settings, token=TOKEN) as url:
        yield url


def test_a_token_server_sends_browsers_to_the_login_form(secured: str) -> None:
    with httpx.Client(base_url=secured) as http:
        page = http.get("/ui/runs", params={"experiment": "curves"})
        assert page.status_code == 303
        assert page.headers["location"] == "/ui/login?next=%2Fui%2Fruns%3Fexperiment%3Dcurves"
        assert http.get("/ui/login").status_code == 200
        assert http.get("/ui/static/ui.css").status_code == 200  # the form's style is public
        api = http.get("/api/v1/experiments")
        assert api.status_code == 401
        assert api.json()["error_code"] == "UNAUTHORIZED"
        assert http.get("/ui/api/metric", params={"run": "0" * 32, "key": "x"}).status_code == 401


def test_logging_in_sets_a_strict_http_only_cookie_the_middleware_accepts(secured: str) -> None:
    with httpx.Client(base_url=secured, headers={"Origin": secured}) as http:
        login = http.post("/ui/login", data={"token": TOKEN, "next": "/ui/runs?experiment=curves"})
        assert login.status_code == 303
        assert login.headers["location"] == "/ui/runs?experiment=curves"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/" in cookie
        assert TOKEN not in cookie  # percent-encoded
        assert http.get("/ui/runs", params={"experiment": "curves"}).status_code == 200
        assert http.get("/api/v1/experiments").status_code == 200  # artifact downloads work
        logout = http.post("/ui/logout")
        assert logout.status_code == 303
        assert http.get("/ui/").status_code == 303


def test_a_wrong_cookie_is_rejected_and_says_so(secured: str) -> None:
    with httpx.Client(base_url=secured, cookies={"modelloop_token": "wrong"}) as http:
        page = http.get("/ui/")
        assert page.status_code == 303
        assert page.headers["location"].endswith("reason=rejected")
        assert "was not accepted" in http.get(page.headers["location"]).text
        assert http.get("/api/v1/experiments").status_code == 401


def test_login_refuses_other_origins_and_redirects_only_within_the_ui(secured: str) -> None:
    with httpx.Client(base_url=secured, headers={"Origin": secured}) as http:
        forged = http.post(
            "/ui/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 422
        assert "set-cookie" not in forged.headers
        for target in ("https://evil.example/", "//evil.example/ui", "/api/v1/experiments"):
            away = http.post("/ui/login", data={"token": TOKEN, "next": target})
            assert away.headers["location"] == "/ui/"


def test_bearer_tokens_and_users_still_work_for_the_pages(
    secured: str, ui_settings: tuple[Settings, Seeded]
) -> None:
    settings, _ = ui_settings
    _, viewer_token = Users(open_database(settings.database_url)).add(
        "ui-viewer", Role.viewer, actor="admin"
    )
    with httpx.Client(base_url=secured, headers={"Origin": secured}) as http:
        bearer = http.get("/ui/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        http.post("/ui/login", data={"token": viewer_token})
        assert http.get("/ui/runs").status_code == 200
        assert 'action="/ui/logout"' in http.get("/ui/").text


def test_modelloop_ui_serves_the_ui_and_prints_its_address(tmp_path: Path) -> None:
    import os
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELLOOP_")}
    env["MODELLOOP_HOME"] = str(tmp_path / "home")
    script = Path(sys.executable).parent / "modelloop"
    proc = subprocess.Popen(
        [str(script), "ui", "--port", str(port), "--monitor-interval", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"modelloop UI: http://127.0.0.1:{port}/ui/"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                assert proc.poll() is None
                time.sleep(0.1)
        assert response.status_code == 200
        assert "Experiments" in response.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize("payload", XSS[:8])
def test_the_inertness_check_catches_unescaped_markup(payload: str) -> None:
    with pytest.raises(AssertionError):
        assert_inert(f"<td>{payload}</td>")
