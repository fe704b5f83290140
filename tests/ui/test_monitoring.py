"""Deployments, monitoring and automation pages over a seeded store, over HTTP and in Chromium.

The store holds a fraud model trained on data with a column named like markup, a prediction
log written at chosen times (drift from day 4, labels for some days only, a shadow challenger
on day 6), a monitor run to a fixed ``now`` (drift and performance windows, firing alerts), a
stored deployment, and a policy whose timeline carries gate intervals and evidence with the
XSS corpus. Every page must render it as text, every chart must draw.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from modelloop.settings import Settings
from tests.ui.browser import Watched
from tests.ui.conftest import XSS
from tests.ui.test_pages import assert_inert

MODEL, DEPLOYMENT, MONITOR, POLICY = "fraud-detector", "fraud-online", "fraud-watch", "fraud-loop"
MARKUP_FEATURE = "<img src=x onerror=alert(1)>"  # a training column: names reach the page
FLAG = "online"  # a 0/1 number: tested as categorical (the z-test), drawn per value
FEATURES = ["amount", "velocity", MARKUP_FEATURE, "merchant", FLAG]
PER_DAY = 400
BLIND = "blind-watch"  # a monitor of a column no reference has: every window no_reference


def day(n: int, hours: float = 0) -> datetime:
    return datetime(2026, 1, n, tzinfo=UTC) + timedelta(hours=hours)


def transactions(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES[:3])
    frame["amount"] += shift
    frame[MARKUP_FEATURE] += shift
    frame["merchant"] = pd.Categorical(rng.choice(["grocery", "travel", "fuel"], n))
    frame[FLAG] = (rng.random(n) < (0.57 if shift == 0 else 0.8)).astype(np.int64)
    return frame


def labels_of(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return ((frame["amount"] + frame["velocity"]).to_numpy() > 1.0).astype(float)


class _Rows:
    """The log's decoder: inputs are row numbers into the frames logged so far."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.offset = 0

    def add(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        self.frames.append(frame.reset_index(drop=True))
        index = np.arange(self.offset, self.offset + len(frame), dtype=np.float64)
        self.offset += len(frame)
        return index.reshape(-1, 1)

    def input_columns(self, matrix: np.ndarray[Any, Any]) -> dict[str, Any]:
        rows = pd.concat(self.frames, ignore_index=True).iloc[matrix[:, 0].astype(int)]
        return {c: rows[c].astype(str if c == "merchant" else float).to_numpy() for c in rows}


@dataclass
class Seeded:
    run_id: str  # the challenger's training run


def _seed(settings: Settings) -> Seeded:
    import modelloop as ml
    from modelloop.automation.decision import Decision
    from modelloop.automation.loop import _Loop, start_rollout
    from modelloop.automation.policy import PolicyState, apply_policy, get_policy
    from modelloop.monitoring.fluent import apply_monitor
    from modelloop.monitoring.runner import check_windows
    from modelloop.serving.deployment import parse_deployment
    from modelloop.serving.feedback import Label, record_feedback
    from modelloop.serving.fluent import apply_deployment
    from modelloop.serving.prediction_log import PredictionBatch, PredictionLog, new_prediction_ids
    from modelloop.store import open_database

    versions, models = [], []
    for seed, shift in ((0, 0.0), (1, 0.5)):
        train = transactions(2000, seed, shift)
        with ml.start_run(experiment="fraud") as run:
            model = lgb.LGBMClassifier(n_estimators=15, verbose=-1).fit(train, labels_of(train))
            version = ml.register_model(run, MODEL, model, training_data=train,
                                        description=XSS[2])  # fmt: skip
        versions.append(version.version)
        models.append(model)
    ml.set_alias(MODEL, "champion", versions[0], reason="first model")
    apply_deployment(parse_deployment({"name": DEPLOYMENT, "model": f"{MODEL}@champion",
                                       "log_keys": ["card_id"]}), settings=settings)  # fmt: skip

    rows = _Rows()
    log = PredictionLog(settings.prediction_log_uri, flush_interval=0.05)
    db = open_database(settings.database_url)
    try:
        for d in range(1, 7):
            frame = transactions(PER_DAY, seed=10 + d, shift=1.5 if d >= 4 else 0.0)
            index = rows.add(frame)
            ids: list[str] = []
            for i, chunk in enumerate(np.array_split(np.arange(PER_DAY), PER_DAY // 20)):
                ms = int((day(d) + timedelta(minutes=i * 60 + 5 * d)).timestamp() * 1000)
                chunk_ids = new_prediction_ids(len(chunk), ms)
                ids += chunk_ids
                answers = [(versions[0], "champion", models[0])]
                if d == 6:
                    answers.append((versions[1], "shadow", models[1]))
                for version_number, role, model in answers:
                    log.append(
                        PredictionBatch(
                            prediction_ids=chunk_ids,
                            timestamp_ms=ms,
                            deployment=DEPLOYMENT,
                            model_name=MODEL,
                            model_version=version_number,
                            role=role,
                            latency_ms=1.0 + i % 7 + (3.0 if role == "shadow" else 0.0),
                            scores=model.predict_proba(frame.iloc[chunk])[:, 1],
                            inputs=index[chunk],
                            decoder=rows,
                        )
                    )
            assert log.flush()
            if d in (1, 2, 3, 5):  # day 4's labels never come: too few to judge
                labels = [Label(p, float(y), None)
                          for p, y in zip(ids, labels_of(frame), strict=True)]  # fmt: skip
                record_feedback(db, labels, log_uri=settings.prediction_log_uri,
                                received_by="labeller",
                                now_ms=lambda: int(day(6).timestamp() * 1000))  # fmt: skip
    finally:
        log.close()

    apply_monitor({
        "name": MONITOR, "deployment": DEPLOYMENT, "model": MODEL, "window": "1d",
        "since": "2026-01-01", "performance": {"label_delay": "1d", "min_labels": 20},
        "drift": {"methods": {"velocity": "psi"}},  # a distance beside the tests
        "alerts": [{"name": "feature-drift", "metric": "drift.share", "above": 0.3},
                   {"name": "ap-low", "metric": "performance.average_precision",
                    "below": 0.9999, "severity": "critical"}],
    }, settings=settings)  # fmt: skip
    check_windows(MONITOR, now=day(7, 1), settings=settings, notify=False)
    apply_monitor({
        "name": BLIND, "deployment": DEPLOYMENT, "model": MODEL, "window": "1d",
        "since": "2026-01-05", "drift": {"columns": ["card_age"]},
        "performance": {"enabled": False},
    }, settings=settings)  # fmt: skip
    check_windows(BLIND, now=day(7, 1), settings=settings, notify=False)

    apply_policy({
        "name": POLICY, "deployment": DEPLOYMENT, "model": MODEL, "monitor": MONITOR,
        "training": {"function": "tests.automation.test_loop:train"},
    }, settings=settings)  # fmt: skip
    run_id = ml.get_model_version(MODEL, versions[1]).run_id
    loop = _Loop(get_policy(POLICY, settings=settings), settings, 0)
    idle = PolicyState("idle", champion_version=versions[0])
    gate = {"metric": "average_precision", "confidence": 0.95, "margin": 0.0}
    decisions = [
        ("policy.trigger", {"reasons": [f"2 features drifted {XSS[0]}"]}),
        ("policy.trained", {"version": versions[1], "run_id": run_id, "rows": 1200,
                            "positives": 90, "holdout_rows": 400}),
        ("policy.rejected", {"version": versions[1], **gate, "decision": "reject",
                             "summary": f"reject: AP worse {XSS[3]}", "difference": -0.02,
                             "interval": [-0.05, 0.01], "reasons": [XSS[4]]}),
        ("policy.trigger", {"reasons": ["the score drifted"], "note": XSS[5]}),
        ("policy.trained", {"version": versions[1], "run_id": run_id, "rows": 1500}),
        ("policy.shadow", {"version": versions[1], **gate, "decision": "promote",
                           "summary": "promote: AP 0.71 vs 0.64", "difference": 0.07,
                           "interval": [0.03, 0.11]}),
        ("policy.canary", {"version": versions[1], "shadow_predictions": 400,
                           "canary_percent": 20}),
        ("policy.rolled_back", {"version": versions[1], "metric": "average_precision",
                                "challenger": 0.6, "champion": 0.65, "paired": True,
                                "interval": [-0.08, -0.02], "reason": XSS[6]}),
    ]  # fmt: skip
    for i, (action, evidence) in enumerate(decisions):
        loop.now = int(day(6, i).timestamp() * 1000)
        loop._record(idle, Decision(action, loop.now, evidence))
    start_rollout(POLICY, versions[1], stage="shadow", now=day(6, 12), settings=settings)
    return Seeded(run_id)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded]]:
    from modelloop.settings import load_settings
    from modelloop.store import close_database
    from modelloop.tracking import fluent
    from tests.live_server import live_server

    tmp: Path = tmp_path_factory.mktemp("uimon")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI"):
            patch.delenv(name, raising=False)
        patch.setenv("MODELLOOP_HOME", str(tmp / "home"))
        patch.setenv("MODELLOOP_PROTECTED_ALIASES", "")
        settings = load_settings()
        try:
            seeded = _seed(settings)
            with live_server(settings) as url:
                yield url, seeded
        finally:
            fluent.close_clients()
            close_database(settings.database_url)


@pytest.fixture(scope="module")
def http(served: tuple[str, Seeded]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], timeout=30) as client:
        yield client


PAGES = (
    "/ui/deployments",
    f"/ui/deployments/{DEPLOYMENT}",
    f"/ui/deployments/{DEPLOYMENT}?period=24h&end=2026-01-07T00:00:00Z",
    "/ui/monitoring",
    f"/ui/monitoring/{MONITOR}",
    f"/ui/monitoring/{BLIND}",
    "/ui/automation",
    f"/ui/automation/{POLICY}",
)


@pytest.mark.parametrize("path", PAGES)
def test_pages_answer_and_render_user_text_inert(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 200, response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # The only markup-made <svg> are the page's own interval charts: any other is injected.
    own = re.sub(r'<figure class="interval">.*?</figure>', "", response.text, flags=re.S)
    assert_inert(own)
    assert MARKUP_FEATURE not in response.text


def test_the_deployment_shows_its_config_and_traffic(http: httpx.Client) -> None:
    page = http.get(f"/ui/deployments/{DEPLOYMENT}").text
    assert "fraud-detector@champion" in page
    assert "fraud-detector@challenger" in page
    assert "v1" in page
    assert "v2" in page
    assert "card_id" in page
    assert "Requests answered by the serving processes" in page  # errors: serving_stats
    assert "No logged predictions in this period" in page  # the wall clock is years later
    assert "2026-01-06" in page  # ... so it points to the newest logged day
    assert "&lt;svg onload=alert(3)&gt;" in page  # the model description, as text

    data = http.get(f"/ui/api/deployments/{DEPLOYMENT}/traffic",
                    params={"period": "24h", "end": "2026-01-07T00:00:00Z"}).json()  # fmt: skip
    assert data["bucket_minutes"] == 10
    assert len(data["buckets"]) == 144
    parts = {(p["role"], p["version"]): p for p in data["parts"]}
    assert parts[("champion", 1)]["predictions"] == PER_DAY
    assert parts[("champion", 1)]["share"] == 1.0
    assert parts[("shadow", 2)]["share"] is None  # scored, answered nothing
    assert parts[("champion", 1)]["requests"] == PER_DAY // 20
    assert 1.0 <= parts[("champion", 1)]["p50"] <= parts[("champion", 1)]["p99"] <= 7.0
    assert sum(data["requests_per_minute"]) * 10 == pytest.approx(PER_DAY // 20)
    bad = http.get(f"/ui/api/deployments/{DEPLOYMENT}/traffic", params={"period": "2h"})
    assert bad.status_code == 422
    assert "period is one of 1h, 24h" in bad.text


def test_on_a_simulated_clock_traffic_ends_at_the_simulated_now(http: httpx.Client) -> None:
    import modelloop as ml
    from modelloop.settings import load_settings

    settings = load_settings()
    ml.set_store_clock(day(7), settings=settings)  # the store's data runs on January's clock
    try:
        page = http.get(f"/ui/deployments/{DEPLOYMENT}", params={"period": "24h"}).text
        assert "simulated clock: 2026-01-07 00:00:00 UTC" in page
        assert "Traffic, 2026-01-06 00:00 to 2026-01-07 00:00 UTC" in page
        assert "No logged predictions in this period" not in page
        traffic = f"/ui/api/deployments/{DEPLOYMENT}/traffic"
        data = http.get(traffic, params={"period": "24h"}).json()
        assert data["end"] == "2026-01-07T00:00:00+00:00"
        assert sum(p["predictions"] for p in data["parts"] if p["role"] == "champion") == PER_DAY
    finally:
        ml.use_wall_clock(settings=settings)
    assert "simulated clock" not in http.get(f"/ui/deployments/{DEPLOYMENT}").text


def test_monitoring_json_has_the_chart_shapes(http: httpx.Client) -> None:
    drift = http.get(f"/ui/api/monitoring/{MONITOR}/drift").json()
    assert len(drift["windows"]) == 6
    assert set(drift["features"]) == set(FEATURES)
    assert len(drift["values"]) == len(FEATURES)
    assert all(len(r) == 6 for r in drift["values"])
    amount = drift["features"].index("amount")
    assert drift["drifted"][amount] == [False] * 3 + [True] * 3
    assert drift["share"][0] < 0.3 < drift["share"][-1]

    perf = http.get(f"/ui/api/monitoring/{MONITOR}/performance").json()
    assert len(perf["windows"]) == 5
    assert perf["insufficient"] == [False, False, False, True, False]
    ap = perf["metrics"]["average_precision"]["values"]
    assert ap[3] is None
    assert all(v is not None for v in ap[:3])
    assert perf["label_coverage"][0] == 1.0

    window = drift["windows"][-1]
    numeric = http.get(f"/ui/api/monitoring/{MONITOR}/distribution",
                       params={"feature": "amount", "window": window}).json()  # fmt: skip
    assert numeric["kind"] == "numeric"
    assert numeric["drift"]["column_type"] == "numeric"  # the stored window says how it was tested
    assert len(numeric["centers"]) == 10
    assert sum(numeric["reference"]["counts"]) == 2000
    current = numeric["current"]
    assert sum(current["counts"]) + current["below_range"] + current["above_range"] == PER_DAY
    assert current["mean"] > numeric["reference"]["mean"] + 1  # shifted by 1.5
    fine = http.get(f"/ui/api/monitoring/{MONITOR}/distribution",
                    params={"feature": MARKUP_FEATURE, "window": window,
                            "bins": "percentiles"}).json()  # fmt: skip
    assert len(fine["centers"]) > 50
    category = http.get(f"/ui/api/monitoring/{MONITOR}/distribution",
                        params={"feature": "merchant", "window": window}).json()  # fmt: skip
    assert category["kind"] == "categorical"
    assert category["drift"]["column_type"] == "categorical"
    assert sorted(category["categories"]) == ["fuel", "grocery", "travel"]
    assert sum(category["current"]["share"]) == pytest.approx(1.0)
    missing = http.get(f"/ui/api/monitoring/{MONITOR}/distribution",
                       params={"feature": "amount", "window": "2020-01-01"})  # fmt: skip
    assert missing.status_code == 404


def test_each_heatmap_cell_carries_the_test_that_judged_it(http: httpx.Client) -> None:
    drift = http.get(f"/ui/api/monitoring/{MONITOR}/drift").json()
    flag, amount = drift["features"].index(FLAG), drift["features"].index("amount")
    assert drift["column_types"][flag] == ["categorical"] * 6
    assert drift["methods"][flag] == ["z"] * 6  # two values, 400 a window: the z-test
    assert drift["thresholds"][flag] == [0.05] * 6  # alpha, for its p-value
    assert drift["drifted"][flag] == [False] * 3 + [True] * 3
    assert all(p < 0.05 for p in drift["p_values"][flag][3:])
    assert drift["column_types"][amount] == ["numeric"] * 6
    assert drift["methods"][amount] == ["ks"] * 6
    velocity = drift["features"].index("velocity")
    assert drift["methods"][velocity] == ["psi"] * 6  # chosen in the monitor: a distance
    assert drift["thresholds"][velocity] == [0.2] * 6
    assert drift["p_values"][velocity] == [None] * 6
    assert drift["notes"] == [[]] * 6


def test_a_binary_number_is_compared_per_value(http: httpx.Client) -> None:
    window = http.get(f"/ui/api/monitoring/{MONITOR}/drift").json()["windows"][-1]
    data = http.get(f"/ui/api/monitoring/{MONITOR}/distribution",
                    params={"feature": FLAG, "window": window}).json()  # fmt: skip
    assert data["drift"]["column_type"] == "categorical"
    assert data["kind"] == "categorical"
    assert data["per_value"] is True
    assert data["categories"] == ["0", "1"]  # not one decile bin "0 to 1" holding every value
    assert sum(data["reference"]["counts"]) == 2000
    assert data["reference"]["share"][1] == pytest.approx(0.57, abs=0.03)
    assert data["current"]["share"][1] == pytest.approx(0.8, abs=0.06)
    assert data["current"]["count"] == PER_DAY
    assert data["new_categories"] == []


def test_a_window_without_a_reference_says_why(http: httpx.Client) -> None:
    why = f"version 1 of {MODEL} has no reference for the monitored columns"
    drift = http.get(f"/ui/api/monitoring/{BLIND}/drift").json()
    assert drift["status"] == ["no_reference"] * 2
    assert drift["notes"] == [[why]] * 2
    assert drift["features"] == []
    listed = http.get("/ui/monitoring").text
    blind = next(row for row in listed.split("<tr") if f">{BLIND}</a>" in row)
    assert "no_reference" in blind
    assert why in blind
    window = drift["windows"][-1]
    data = http.get(f"/ui/api/monitoring/{BLIND}/distribution",
                    params={"feature": "amount", "window": window}).json()  # fmt: skip
    assert data["status"] == "no_reference"
    assert data["notes"] == [why]


def test_the_list_pages_summarise(http: httpx.Client, served: tuple[str, Seeded]) -> None:
    monitors = http.get("/ui/monitoring").text
    assert "feature-drift" in monitors
    assert "ap-low" in monitors
    policy = http.get(f"/ui/automation/{POLICY}").text
    assert f"/ui/runs/{served[1].run_id}" in policy
    assert policy.count("<svg") == 3  # two gate intervals and the canary's paired one
    assert "Rolled back" in policy
    assert "Rollout started by hand" in policy
    assert "&lt;b onmouseover=alert(7)&gt;bold&lt;/b&gt;" in policy  # evidence, as text
    assert "/ui/models/fraud-detector" in policy
    assert "shadow" in http.get("/ui/automation").text


# -- in the browser ----------------------------------------------------------------------------


@pytest.fixture
def page(browser: Any, served: tuple[str, Seeded]) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page(), served[0])
        yield watched
        watched.assert_clean()
    finally:
        context.close()


def _ready(page: Watched, element: str) -> dict[str, Any]:
    page.page.wait_for_function(f"() => document.getElementById('{element}').dataset.ready")
    shape: dict[str, Any] = page.page.evaluate(
        f"() => {{ const c = document.getElementById('{element}');"
        " return {traces: (c.data || []).length, svg: c.querySelectorAll('.main-svg').length,"
        " dataset: Object.assign({}, c.dataset)}; }"
    )
    return shape


def test_view_a_drift_chart(page: Watched) -> None:
    page.goto("/ui/monitoring")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click(f"a.monitor-link:has-text('{MONITOR}')")
    heatmap = _ready(page, "drift-heatmap")
    assert heatmap["traces"] == 2
    assert heatmap["svg"] > 0
    assert heatmap["dataset"]["features"] == str(len(FEATURES))
    assert int(heatmap["dataset"]["drifted"]) >= 6  # amount and the markup column, days 4-6
    assert _ready(page, "drift-share")["traces"] == 3
    performance = _ready(page, "performance")
    assert performance["traces"] >= 3
    assert performance["svg"] > 0
    assert "too few labels" in page.page.locator("#performance-note").inner_text()
    # The markup-named feature is a tick label, as text.
    assert MARKUP_FEATURE in page.page.locator("#drift-heatmap").inner_text()

    page.page.select_option("#dist-feature", "amount")
    page.page.wait_for_function(
        "() => document.getElementById('distribution').dataset.feature === 'amount'"
    )
    assert _ready(page, "distribution")["dataset"]["kind"] == "numeric"
    page.page.select_option("#dist-feature", "merchant")
    page.page.wait_for_function(
        "() => document.getElementById('distribution').dataset.kind === 'categorical'"
    )
    assert "current values vs" in page.page.locator("#distribution-note").inner_text()
    page.page.select_option("#dist-feature", MARKUP_FEATURE)
    page.page.wait_for_function(
        "f => document.getElementById('distribution').dataset.feature === f", arg=MARKUP_FEATURE
    )
    assert page.page.locator("#alerts tr.alert-firing").count() == 2
    page.shot("monitor")


def test_the_heatmap_hover_judges_each_test_on_its_own_scale(page: Watched) -> None:
    page.goto(f"/ui/monitoring/{MONITOR}")
    _ready(page, "drift-heatmap")
    hover = page.page.evaluate(
        "f => { const c = document.getElementById('drift-heatmap');"
        " const row = c.data[0].y.indexOf(f); return c.data[0].text[row]; }",
        FLAG,
    )
    assert len(hover) == 6
    assert "z (categorical) statistic " in hover[-1]
    assert re.search(r"p-value [0-9.e+-]+ &lt; 0\.05: drifted", hover[-1]), hover[-1]
    assert re.search(r"p-value [0-9.e+-]+ ≥ 0\.05: no drift", hover[0]), hover[0]
    assert "threshold 0.05" not in hover[-1]  # a statistic is never held against alpha
    distance = page.page.evaluate(
        "() => { const c = document.getElementById('drift-heatmap');"
        " return c.data[0].text[c.data[0].y.indexOf('velocity')][0]; }"
    )
    assert re.search(r"psi \(numeric\) [0-9.e+-]+ &lt; threshold 0\.2: no drift", distance)
    assert "p-value" not in distance

    page.page.select_option("#dist-feature", FLAG)
    page.page.wait_for_function(
        "f => document.getElementById('distribution').dataset.feature === f", arg=FLAG
    )
    shape = _ready(page, "distribution")
    assert shape["dataset"]["kind"] == "categorical"
    assert shape["dataset"]["points"] == "4"  # reference and current, one bar per value
    note = page.page.locator("#distribution-note").inner_text()
    assert "one bar per value" in note
    assert "z (categorical) statistic" in note
    page.shot("monitor-per-value")


def test_a_monitor_without_a_reference_says_why_on_its_page(page: Watched) -> None:
    page.goto(f"/ui/monitoring/{BLIND}")
    page.page.wait_for_function(
        "() => document.getElementById('drift-heatmap').dataset.ready === '1'"
    )
    note = page.page.locator("#drift-note").inner_text()
    assert "no_reference" in note
    assert f"version 1 of {MODEL} has no reference for the monitored columns" in note


def test_deployments_and_automation_pages(page: Watched) -> None:
    page.goto("/ui/deployments")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click(f"a.deployment-link:has-text('{DEPLOYMENT}')")
    assert page.page.locator("#no-traffic").count() == 1
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("#no-traffic a")
    assert "end=" in page.page.url
    assert _ready(page, "rate-chart")["traces"] == 3  # champion, shadow, requests
    assert _ready(page, "latency-chart")["traces"] == 3
    page.shot("deployment")

    page.goto("/ui/automation")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click(f"a.policy-link:has-text('{POLICY}')")
    assert page.page.locator("section.cycle").count() == 3
    assert page.page.locator("figure.interval svg").count() == 3
    details = page.page.locator("li.step[data-action='policy.rolled_back'] details")
    details.locator("summary").click()
    assert XSS[6] in details.inner_text()
    page.shot("automation")
