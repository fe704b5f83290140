"""The Datasets pages over a real server and in a real browser: the list, a dataset's versions,
and a version's schema, profile, distribution chart, lineage, first rows and contract check.

The store is filled through the SDK, as a user would: a run logs two versions of
``transactions`` (column names, categories, text, the description and the user carry the XSS
corpus), another run reads the first version and registers a model from it, and a third model
version only declares the content among its ``dataset_digests``. A second, larger dataset has
more rows than the preview shows. The first version of ``transactions`` is logged with a contract
it keeps and then checked against one it breaks (as ``modelloop datasets validate`` does), the
second is never checked; the larger dataset is logged with a contract it keeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from modelloop.datasets import Check, Contract, DatasetVersion, Expect
from modelloop.datasets.fluent import dataset_store
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.pipelines import ModelOutput, Pipeline, step
from modelloop.settings import Settings, load_settings
from modelloop.store import close_database
from modelloop.tracking import fluent
from tests.conftest import STORE_VARIABLES
from tests.live_server import live_server
from tests.ui.browser import SCREENSHOTS, Watched
from tests.ui.conftest import XSS
from tests.ui.test_pages import assert_inert

NAME = "transactions"
BIG = "clicks"
BIG_ROWS = 1_000
USER = XSS[5]


@dataclass
class Store:
    url: str
    settings: Settings
    first: DatasetVersion
    second: DatasetVersion
    big: DatasetVersion
    producer: str  # the run that logged both versions
    reader: str  # the run that read v1 and registered fraud v1 from it
    declared: str  # the run of fraud v2, which only names v1's digest


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 50.0, rows)
    amount[:3] = [np.nan, np.inf, -1.0]
    merchants = ["grocery", "travel", XSS[0], XSS[1], "unused"]
    return pd.DataFrame(
        {
            "tx_id": np.arange(rows, dtype=np.int64),
            "amount": amount,
            "merchant": pd.Categorical(rng.choice(merchants[:4], rows), categories=merchants),
            XSS[6]: rng.choice([XSS[2], "plain"], rows).astype(object),
            "flag": rng.random(rows) < 0.3,
            "when": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
        }
    )


KEPT = Contract(
    columns={"tx_id": Expect(dtype="int", nullable=False), "flag": Expect(dtype="bool")},
    unique=["tx_id"],
    checks=[Check("some rows", lambda frame: len(frame) > 0)],
)


def _seed(settings: Settings) -> Store:
    import lightgbm as lgb

    import modelloop as ml

    with ml.start_run(experiment="datasets-ui", name=XSS[3]) as producer:
        first = ml.log_dataset(_frame(300, 0), NAME, description=XSS[4], contract=KEPT)
        datasets = dataset_store()
        broken = ml.Contract.from_dict(yaml.safe_load(CONTRACT))
        report = broken.validate(datasets.load(first))
        datasets.add_validation(first, broken, report, actor=USER)
        second_frame = _frame(320, 1).assign(extra=1.5).astype({"tx_id": "float64"})
        second = ml.log_dataset(
            second_frame.drop(columns=["flag"]), NAME, description="without the flag column"
        )
    with ml.start_run(experiment="datasets-ui", name="train") as reader:
        data = ml.load_dataset(f"{NAME}@1")
        features = data[["amount", "tx_id"]].replace([np.inf, -np.inf], np.nan)
        model = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1)
        ml.register_model(
            reader, "fraud", model.fit(features, data["flag"]), training_data=features
        )
    with ml.start_run(experiment="datasets-ui", name="declared") as declared:
        ml.register_model(
            declared,
            "fraud",
            model,
            training_data=features,
            dataset_digests={"train": first.digest, "valid": "ab" * 32},
        )
    # fraud v3: a pipeline step's model, whose step read nothing but the step upstream read v1.
    fit = Pipeline([load_features, fit_model], name="datasets-ui").run().steps["fit_model"]
    assert fit.state == "SUCCEEDED", fit.error
    ml.register_model(fit.run_id or "", "fraud", artifact_path="outputs/fit_model")
    # fraud v4: registered with v1 as its training data, from a run that read nothing.
    with ml.start_run(experiment="datasets-ui", name="referenced") as referenced:
        ml.register_model(referenced, "fraud", model, training_data=f"{NAME}@1")
    big = ml.log_dataset(_frame(BIG_ROWS, 2), BIG, contract=KEPT)
    return Store("", settings, first, second, big, producer.run_id, reader.run_id, declared.run_id)


@step
def load_features() -> pd.DataFrame:
    import modelloop as ml

    return ml.load_dataset(f"{NAME}@1")


@step
def fit_model(load_features: pd.DataFrame) -> ModelOutput:
    import lightgbm as lgb

    features = load_features[["amount", "tx_id"]].replace([np.inf, -np.inf], np.nan)
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1)
    return ModelOutput(model.fit(features, load_features["flag"]), training_data=features)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    home: Path = tmp_path_factory.mktemp("ui-datasets") / "home"
    with pytest.MonkeyPatch.context() as patch:
        for name in STORE_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("MODELLOOP_HOME", str(home))
        patch.setenv("MODELLOOP_USER", USER)
        settings = load_settings()
        try:
            seeded = _seed(settings)
        finally:
            fluent.close_clients()
        try:
            with live_server(settings) as url:
                seeded.url = url
                yield seeded
        finally:
            close_database(settings.database_url)


@pytest.fixture(scope="module")
def http(store: Store) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=store.url, headers={"Origin": store.url}, timeout=30) as client:
        yield client


def log_directly(store: Store, frame: pd.DataFrame, name: str) -> DatasetVersion:
    """A version logged straight into the store the server reads."""
    from modelloop.artifacts import BlobStore
    from modelloop.datasets.sql import SqlDatasetStore
    from modelloop.store import open_database

    db = open_database(store.settings.database_url)
    return SqlDatasetStore(db, BlobStore(store.settings.artifact_uri)).log_version(
        name, frame, actor="test"
    )


def datasets(store: Store) -> SqlDatasetStore:
    """The dataset store the server reads."""
    from modelloop.artifacts import BlobStore
    from modelloop.store import open_database

    db = open_database(store.settings.database_url)
    return SqlDatasetStore(db, BlobStore(store.settings.artifact_uri))


def version_path(name: str, version: int) -> str:
    return f"/ui/datasets/{name}/versions/{version}"


def pages(store: Store) -> list[str]:
    return [
        "/ui/datasets",
        f"/ui/datasets/{NAME}",
        f"/ui/datasets/{BIG}",
        version_path(NAME, 1),
        version_path(NAME, 2),
        version_path(BIG, 1),
    ]


def section(html: str, ident: str) -> str:
    """The element with ``id=ident`` up to its closing tag (tables and lists here)."""
    start = html.index(f'id="{ident}"')
    tag = html[html.rindex("<", 0, start) + 1 : start].split()[0]
    return html[start : html.index(f"</{tag}>", start)]


def rows(table: str) -> list[list[str]]:
    """The cells of each body row, as text."""
    body = table[table.index("<tbody>") :]
    return [
        [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
        for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_every_page_answers_and_renders_the_data_inert(http: httpx.Client, store: Store) -> None:
    for path in pages(store):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert '<a href="/ui/datasets" class="active" aria-current="page">Datasets</a>' in (
            response.text
        )
        assert_inert(response.text)
    assert '<a href="/ui/datasets">Datasets</a>' in http.get("/ui/").text  # in the nav bar


def test_the_list_shows_each_dataset_with_its_newest_version(http: httpx.Client) -> None:
    table = section(http.get("/ui/datasets").text, "datasets")
    assert f'href="/ui/datasets/{NAME}"' in table
    assert f'href="{version_path(NAME, 2)}"' in table
    by_name = {r[0]: r for r in rows(table)}
    assert sorted(by_name) == [BIG, NAME]
    # name, description, versions, newest, rows, columns, logged, by
    assert by_name[NAME][1:6] == [XSS[4], "2", "v2", "320", "6"]
    assert by_name[NAME][7] == USER
    assert by_name[BIG][2:6] == ["1", "v1", f"{BIG_ROWS:,}", "6"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", by_name[NAME][6])


def test_the_list_says_whether_each_newest_version_kept_its_contract(
    http: httpx.Client, store: Store
) -> None:
    def status() -> dict[str, list[str]]:
        return {r[0]: r[8:] for r in rows(section(http.get("/ui/datasets").text, "datasets"))}

    found = status()
    assert found[BIG] == ["passed"]  # logged with a contract it keeps
    assert found[NAME] == ["not checked"]  # v1 was checked; v2, the newest, never
    table = section(http.get("/ui/datasets").text, "datasets")
    assert f'href="{version_path(BIG, 1)}#stored-checks"' in table
    assert f"Contract satisfied ({BIG_ROWS} rows). · checked " in unescape(table)
    # A failed check of the newest version makes the dataset's status failed.
    rejected = log_directly(store, _frame(10, 4), "rejected")
    strict = Contract(columns={"amount": Expect(min=0, allow_inf=True)})
    stored = datasets(store)
    stored.add_validation(rejected, strict, strict.validate(stored.load(rejected)), actor="ci")
    assert status()["rejected"] == ["failed"]
    assert "Contract violated: 1 rule(s) on 10 rows · checked " in unescape(
        section(http.get("/ui/datasets").text, "datasets")
    )


def test_a_version_lists_its_stored_checks_newest_first(http: httpx.Client, store: Store) -> None:
    failed, passed = datasets(store).validations(store.first)
    assert (failed.ok, passed.ok) == (False, True)
    html = http.get(version_path(NAME, 1)).text
    listed = section(html, "stored-checks")
    assert listed.index(f'id="check-{failed.validation_id}"') < listed.index(
        f'id="check-{passed.validation_id}"'
    )
    assert html.index('id="stored-checks"') < html.index('<form class="contract"')
    newest = listed[listed.index(f'id="check-{failed.validation_id}"') :]
    assert "Contract violated: 6 rule(s) on 300 rows" in newest
    assert f'by <span class="check-actor">{USER}</span>' in unescape(newest)
    # The stored check lists each expectation as checking the same contract now does.
    stored_rows = rows(section(html, f"expectations-{failed.validation_id}"))
    pasted = http.post(version_path(NAME, 1) + "/validate", data={"contract": CONTRACT}).text
    assert stored_rows == rows(section(pasted, "expectations"))
    by_rule = {(r[1], r[2]): r for r in stored_rows}
    assert by_rule[("min", "amount")][0] == "failed"
    assert by_rule[("min", "amount")][3:5] == ["at least 0", "1 of 300"]
    assert "row 2: -1.0" in by_rule[("min", "amount")][6]
    assert by_rule[("unique", "tx_id")][0] == "passed"
    assert "allowed: [grocery, travel]" in unescape(newest[: newest.index("</pre>")])
    # The check kept when the version was logged: every rule passed, the Python check by name.
    kept = {(r[1], r[2]): r[0] for r in rows(section(html, f"expectations-{passed.validation_id}"))}
    assert kept == {
        ("missing_column", "tx_id"): "passed",
        ("dtype", "tx_id"): "passed",
        ("not_null", "tx_id"): "passed",
        ("finite", "tx_id"): "passed",
        ("missing_column", "flag"): "passed",
        ("dtype", "flag"): "passed",
        ("unique", "tx_id"): "passed",
        ("check", "some rows"): "passed",
    }
    assert_inert(html)
    # v2 was never checked: the page says how to keep a check.
    second = http.get(version_path(NAME, 2)).text
    assert 'id="stored-checks"' not in second
    hint = unescape(section(second, "no-stored-checks"))
    assert f"modelloop datasets validate {NAME}@2 --contract FILE" in hint


def test_a_dataset_lists_its_versions_newest_first_with_what_changed(
    http: httpx.Client, store: Store
) -> None:
    html = http.get(f"/ui/datasets/{NAME}").text
    table = section(html, "versions")
    found = rows(table)
    assert [r[0] for r in found] == ["v2", "v1"]
    newest, oldest = found
    assert newest[1:3] == ["320", "6"]
    assert "+20 rows" in newest[3]
    assert "+extra" in newest[3]
    assert "\N{MINUS SIGN}flag" in newest[3]
    assert "tx_id: int64 → float64" in newest[3]
    assert oldest[3] == ""  # nothing before it
    assert newest[4] == store.second.digest[:12]
    assert f'title="sha256:{store.first.digest}"' in table
    assert newest[5] == oldest[5] == XSS[3]  # the logging run's name, as text
    assert table.count(f'href="/ui/runs/{store.producer}"') == 2
    assert f'href="{version_path(NAME, 1)}"' in table
    assert newest[7] == USER


def test_a_version_shows_its_own_description(http: httpx.Client) -> None:
    def text(html: str, ident: str) -> str:
        return unescape(section(html, ident).split(">", 1)[1])

    first = http.get(version_path(NAME, 1)).text
    assert text(first, "version-description") == XSS[4]
    assert 'id="dataset-description"' not in first  # the dataset's is the first version's
    second = http.get(version_path(NAME, 2)).text
    assert text(second, "version-description") == "without the flag column"
    assert text(second, "dataset-description") == XSS[4]


def test_a_version_shows_schema_profile_and_quantiles(http: httpx.Client, store: Store) -> None:
    html = http.get(version_path(NAME, 1)).text
    facts = section(html, "version-facts")
    assert f"sha256:{store.first.digest}" in facts
    assert "300 rows \N{MULTIPLICATION SIGN} 6 columns" in facts
    assert f'href="/ui/runs/{store.producer}"' in facts
    schema = {r[0]: r for r in rows(section(html, "schema"))}
    assert list(schema) == list(store.first.schema.columns)
    profile = store.first.profile.columns
    for name, row in schema.items():
        assert row[1] == store.first.schema.columns[name]
        assert row[2] == profile[name].kind
    assert schema["amount"][3:5] == ["299", "1 (0.3%)"]  # NaN is a null
    assert "1 infinite" in schema["amount"][6]
    assert schema["when"][6].startswith("2024-01-01T00:00:00+00:00 to ")
    quantiles = {r[0]: r for r in rows(section(html, "quantiles"))}
    assert sorted(quantiles) == ["amount", "tx_id"]
    amount = profile["amount"]
    assert amount.quantiles is not None
    expected = [amount.min, *(amount.quantiles[q] for q in ("0.01", "0.05", "0.25", "0.5"))]
    assert [float(v) for v in quantiles["amount"][1:6]] == pytest.approx(expected, rel=1e-5)
    assert float(quantiles["tx_id"][5]) == 149.5  # the median of 0..299
    top = {r[0]: r for r in rows(section(html, "top-values"))}
    assert sorted(top) == sorted(["merchant", XSS[6], "flag"])
    assert top["merchant"][3].startswith("5: grocery, travel")  # the categories, unused too
    assert XSS[0] in top["merchant"][2]  # a category value, shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(html, "top-values")


def test_the_distribution_chart_gets_the_stored_histogram_and_shares(
    http: httpx.Client, store: Store
) -> None:
    html = http.get(version_path(NAME, 1)).text
    raw = re.search(r"data-columns='([^']*)'", html)
    assert raw is not None
    columns = json.loads(unescape(raw.group(1)))
    assert sorted(columns) == sorted(store.first.schema.columns)
    amount = columns["amount"]
    assert amount["kind"] == "numeric"
    histogram = store.first.profile.columns["amount"].histogram
    assert histogram is not None
    assert len(amount["centers"]) == len(histogram.counts)
    # A density: the bars' areas add up to one.
    area = sum(d * w for d, w in zip(amount["density"], amount["widths"], strict=True))
    assert area == pytest.approx(1.0)
    merchant = columns["merchant"]
    assert merchant["kind"] == "categorical"
    assert sorted(merchant["labels"]) == sorted(["grocery", "travel", XSS[0], XSS[1]])
    assert sum(merchant["share"]) == pytest.approx(1.0)
    assert columns["when"] == {"kind": "none"}


def test_a_version_shows_who_logged_and_read_it_and_the_models_from_it(
    http: httpx.Client, store: Store
) -> None:
    html = http.get(version_path(NAME, 1)).text
    logged = section(html, "logged-by")
    assert f'href="/ui/runs/{store.producer}"' in logged
    assert "&lt;/title&gt;&lt;script&gt;alert(4)&lt;/script&gt;" in logged  # the run's name
    read = section(html, "read-by")
    assert f'href="/ui/runs/{store.reader}">train</a>' in read
    assert store.producer not in read
    models = {r[0]: r for r in rows(section(html, "models"))}
    assert sorted(models) == [f"fraud v{v} · card" for v in (1, 2, 3, 4)]
    assert models["fraud v1 · card"][1] == "its lineage: registered from a run that read it"
    assert models["fraud v2 · card"][1] == "declares it as train data"
    assert models["fraud v3 · card"][1] == (
        "its lineage: registered from a run downstream of one that read it"
    )
    assert models["fraud v4 · card"][1] == "its drift reference was fitted on it"
    assert 'href="/ui/models/fraud?version=1"' in html
    assert 'href="/ui/models/fraud/versions/2/card"' in html
    # v2 was logged by the same run, read by none, and no model names it.
    second = http.get(version_path(NAME, 2)).text
    assert f'href="/ui/runs/{store.producer}"' in section(second, "logged-by")
    assert 'id="read-by"' not in second
    assert "No run has read this version" in second
    assert 'id="models"' not in second
    assert f'href="{version_path(NAME, 1)}" rel="prev"' in second
    assert 'rel="next"' not in second
    assert f'href="{version_path(NAME, 2)}" rel="next"' in html


def test_the_preview_shows_the_first_rows_only(http: httpx.Client, store: Store) -> None:
    html = http.get(version_path(BIG, 1)).text
    preview = section(html, "preview")
    header = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", preview)
    assert [unescape(h) for h in header] == ["#", *store.big.schema.columns]
    found = rows(preview)
    assert len(found) == 20
    frame = _frame(BIG_ROWS, 2)
    assert [r[1] for r in found] == [str(i) for i in range(20)]  # tx_id
    assert found[0][2] == "null"  # amount: NaN
    assert found[1][2] == "inf"
    assert found[5][2] == f"{frame['amount'][5]:.6g}"
    assert [r[3] for r in found] == [str(v) for v in frame["merchant"][:20]]
    assert found[0][6] == str(frame["when"][0])
    assert f"The first 20 of {BIG_ROWS:,} rows." in html
    assert_inert(html)


CONTRACT = """
columns:
  tx_id: {dtype: int, nullable: false}
  amount: {dtype: float, min: 0, max: 10000}
  merchant: {allowed: [grocery, travel]}
  missing: {dtype: int}
unique: [tx_id]
rows: [10, 200]
"""


def test_a_pasted_contract_is_checked_rule_by_rule(http: httpx.Client, store: Store) -> None:
    path = version_path(NAME, 1) + "/validate"
    response = http.post(path, data={"contract": CONTRACT}, headers={"Origin": store.url})
    assert response.status_code == 200
    html = response.text
    assert "Contract violated" in section(html, "contract-summary")
    result = {(r[1], r[2]): r for r in rows(section(html, "expectations"))}
    status = {key: r[0] for key, r in result.items()}
    assert status == {
        ("row_count", ""): "failed",
        ("missing_column", "tx_id"): "passed",
        ("dtype", "tx_id"): "passed",
        ("not_null", "tx_id"): "passed",
        ("finite", "tx_id"): "passed",
        ("missing_column", "amount"): "passed",
        ("dtype", "amount"): "passed",
        ("finite", "amount"): "failed",
        ("min", "amount"): "failed",
        ("max", "amount"): "failed",  # the infinity
        ("missing_column", "merchant"): "passed",
        ("allowed", "merchant"): "failed",
        ("missing_column", "missing"): "failed",
        ("dtype", "missing"): "not checked",
        ("unique", "tx_id"): "passed",
    }
    assert result[("row_count", "")][3:5] == ["10 to 200 rows", "100 of 300"]
    assert result[("min", "amount")][3:5] == ["at least 0", "1 of 300"]
    assert "row 2: -1.0" in result[("min", "amount")][6]
    assert "row 1: 'inf'" in result[("finite", "amount")][6]
    merchants = store.first.profile.columns["merchant"].top
    assert merchants is not None
    others = round(300 * (merchants[XSS[0]] + merchants[XSS[1]]))
    assert result[("allowed", "merchant")][4] == f"{others} of 300"
    assert_inert(html)
    # The text stays in the box to correct it.
    assert "merchant: {allowed: [grocery, travel]}</textarea>" not in html
    assert "merchant: {allowed: [grocery, travel]}" in unescape(html.split("<textarea")[1])


def test_a_satisfied_contract_passes_every_rule(http: httpx.Client, store: Store) -> None:
    contract = "columns:\n  tx_id: {dtype: int, nullable: false}\nunique: [tx_id]\n"
    html = http.post(
        version_path(NAME, 1) + "/validate", data={"contract": contract}, headers={}
    ).text
    assert "Contract satisfied (300 rows)." in html
    assert {r[0] for r in rows(section(html, "expectations"))} == {"passed"}


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        ("columns: [", "not valid YAML"),
        ("colums: {}", "colums: unknown setting (known: columns, unique, rows"),
        ("columns:\n  amount: {min: lots}", "columns.amount.min: Input should be a valid number"),
        ("columns:\n  amount: {maximum: 3}", "columns.amount.maximum: unknown setting"),
        ("columns:\n  amount: {dtype: flaot}", "unknown dtype 'flaot'"),
        (
            "columns:\n  merchant: {allowed: [[a, b]]}",
            "columns.merchant.allowed: allowed values must be single values",
        ),
        ("", "Paste a contract"),
        ("x" * 70_000, "longer than 64,000 characters"),
        (XSS[0], "expected a mapping"),
    ],
)
def test_a_contract_that_cannot_be_read_is_a_message_not_a_crash(
    http: httpx.Client, contract: str, message: str
) -> None:
    response = http.post(version_path(NAME, 1) + "/validate", data={"contract": contract})
    assert response.status_code == 400
    assert message in unescape(section(response.text, "contract-error"))
    assert 'id="schema"' in response.text  # the rest of the page is still there
    assert_inert(response.text)


def test_a_contract_posted_from_another_site_is_refused(http: httpx.Client) -> None:
    response = http.post(
        version_path(NAME, 1) + "/validate",
        data={"contract": CONTRACT},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "another site" in response.text


def test_unknown_datasets_and_versions_are_pages_with_their_status(http: httpx.Client) -> None:
    for path, status, message in (
        ("/ui/datasets/nope", 404, "No dataset 'nope'"),
        ("/ui/datasets/nope/versions/1", 404, "No dataset 'nope'"),
        (version_path(NAME, 3), 404, f"No version 3 of dataset '{NAME}'"),
        (version_path(NAME, 0), 422, "versions are integers from 1"),
        (f"/ui/datasets/{NAME}/versions/latest", 422, "versions are integers from 1"),
        (f"/ui/datasets/{NAME}/versions/{'9' * 12}", 422, "versions are integers from 1"),
        (f"/ui/datasets/{quote(XSS[1], safe='')}", 422, "Invalid dataset name"),
        (f"/ui/datasets/{quote(XSS[2], safe='')}/versions/1", 422, "Invalid dataset name"),
    ):
        response = http.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html")
        assert message in unescape(response.text), path
        assert "<h1>Error</h1>" in response.text
        assert_inert(response.text)
    missing = http.post("/ui/datasets/nope/versions/1/validate", data={"contract": CONTRACT})
    assert missing.status_code == 404


def test_a_version_whose_data_is_gone_still_shows_what_the_store_knows(
    http: httpx.Client, store: Store
) -> None:
    from modelloop.artifacts import BlobStore

    gone = log_directly(store, _frame(10, 3), "gone")
    path = BlobStore(store.settings.artifact_uri).local_path(gone.artifact_digest)
    assert path is not None
    path.unlink()
    response = http.get(version_path("gone", 1))
    assert response.status_code == 200
    assert "(missing from the artifact store)" in response.text
    assert "The data cannot be read: no blob" in response.text
    assert 'id="preview"' not in response.text
    assert 'id="schema"' in response.text  # the stored schema and profile do not need it
    checked = http.post(version_path("gone", 1) + "/validate", data={"contract": CONTRACT})
    assert checked.status_code == 400
    assert "The data cannot be read: no blob" in section(checked.text, "contract-error")


def test_run_and_model_pages_link_the_dataset_versions_they_used(
    http: httpx.Client, store: Store
) -> None:
    run = http.get(f"/ui/runs/{store.reader}").text
    assert f'<a href="{version_path(NAME, 1)}">dataset {NAME}@1</a>' in section(run, "lineage")
    model = http.get("/ui/models/fraud?version=2").text
    lineage = section(model, "version-lineage")
    assert f'href="{version_path(NAME, 1)}">{NAME}@1</a>' in lineage
    assert "sha256:" + "ab" * 8 in lineage  # a digest no dataset holds: shown, unlinked
    card = http.get("/ui/models/fraud/versions/2/card").text
    assert f'<a href="{version_path(NAME, 1)}">{NAME}@1</a>' in card
    export = http.get("/ui/models/fraud/versions/2/card.html").text
    assert f"{NAME}@1" in export
    assert 'href="/' not in export  # the exported card links nowhere
    # The cards of the versions that only lineage ties to v1 name it too, and how.
    for version, role in ((1, "read upstream"), (3, "drift reference"), (4, "drift reference")):
        card = http.get(f"/ui/models/fraud/versions/{version}/card").text
        assert f'data-role="{role}"' in card, version
        assert f'<a href="{version_path(NAME, 1)}">{NAME}@1</a>' in card, version
        assert "The version names no dataset digests" not in card


# -- in the browser ----------------------------------------------------------------------------


DISCRETE = "discrete"


def _discrete(seed: int) -> pd.DataFrame:
    """A 0/1 column (43% / 57%), a three-valued one (0, 0.5, 1 a third each) and amounts."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "online": rng.permutation(np.repeat(np.array([0, 1], dtype=np.int64), [129, 171])),
            "level": rng.permutation(np.repeat([0.0, 0.5, 1.0], 100)),
            "amount": rng.gamma(2.0, 50.0, 300),
        }
    )


@pytest.fixture(scope="module")
def discrete(store: Store) -> tuple[DatasetVersion, DatasetVersion]:
    """Two versions of ``discrete``; the second's profile as stored before value counts."""
    from sqlalchemy import select, update

    from modelloop.store import open_database
    from modelloop.store import tables as t

    first = log_directly(store, _discrete(0), DISCRETE)
    second = log_directly(store, _discrete(1), DISCRETE)
    v = t.dataset_versions
    where = (v.c.name == DISCRETE) & (v.c.version == second.version)
    with open_database(store.settings.database_url).write() as conn:
        profile = json.loads(conn.execute(select(v.c.profile).where(where)).scalar_one())
        for column in profile["columns"]:
            column.pop("value_counts", None)
        conn.execute(update(v).where(where).values(profile=json.dumps(profile)))
    return first, second


def test_numbers_with_few_values_are_drawn_per_value_as_drift_tests_them(
    http: httpx.Client, discrete: tuple[DatasetVersion, DatasetVersion]
) -> None:
    html = http.get(version_path(DISCRETE, 1)).text
    kinds = {r[0]: r[2] for r in rows(section(html, "schema"))}
    assert kinds == {
        "online": "numeric, tested as categorical (2 values)",
        "level": "numeric, tested as categorical (3 values)",
        "amount": "numeric",
    }
    raw = re.search(r"data-columns='([^']*)'", html)
    assert raw is not None
    chart = json.loads(unescape(raw.group(1)))
    # Not one decile bin "0 to 1" with every value, nor 0.5 merged into a neighbour's bin.
    assert chart["online"] == {"kind": "values", "labels": ["0", "1"], "share": [0.43, 0.57]}
    assert chart["level"]["labels"] == ["0", "0.5", "1"]
    assert chart["level"]["share"] == pytest.approx([1 / 3] * 3)
    assert chart["amount"]["kind"] == "numeric"
    assert chart["amount"]["note"] == ""

    older = http.get(version_path(DISCRETE, 2)).text  # profile stored before value counts
    kinds = {r[0]: r[2] for r in rows(section(older, "schema"))}
    assert kinds["online"] == "numeric, tested as categorical (2 values)"
    raw = re.search(r"data-columns='([^']*)'", older)
    assert raw is not None
    online = json.loads(unescape(raw.group(1)))["online"]
    assert online["kind"] == "numeric"  # bins, as before, saying why
    assert "stored before value counts were kept" in online["note"]


@pytest.fixture
def page(browser: Any, store: Store) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page(), store.url)
        yield watched
        watched.assert_clean()
    finally:
        context.close()


def drawn(page: Watched, column: str) -> int:
    """Bars drawn for ``column`` once the chart shows it."""
    page.page.wait_for_function(
        "name => { const c = document.getElementById('distribution');"
        " return c && c.dataset.ready === '1' && c.dataset.column === name; }",
        arg=column,
    )
    return int(page.page.locator("#distribution").get_attribute("data-points") or 0)


def test_every_dataset_page_loads_cleanly_in_a_browser(page: Watched, store: Store) -> None:
    for path in pages(store):
        response = page.goto(path)
        assert response.status == 200, path
        if "distribution-box" in page.page.content():
            drawn(page, next(iter(store.first.schema.columns)))
        page.shot("datasets" + path.removeprefix("/ui/datasets").replace("/", "-"))


def test_browse_from_the_list_to_a_version_chart_and_contract(page: Watched, store: Store) -> None:
    page.goto("/ui/datasets")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click(f"a.dataset-link:has-text('{NAME}')")
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("a.version-link:has-text('v1')")
    assert page.page.url.endswith(version_path(NAME, 1))
    stored = page.page.locator("#stored-checks")
    assert stored.locator("pre").first.is_hidden()  # the contract is folded away
    stored.locator("details.stored-contract summary").first.click()
    assert "allowed: [grocery, travel]" in stored.locator("pre").first.inner_text()
    assert stored.locator("tr.failed").count() == 6
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stored.screenshot(path=str(SCREENSHOTS / "datasets-stored-checks.png"))
    histogram = store.first.profile.columns["amount"].histogram
    assert histogram is not None
    page.page.select_option("#dist-column", "amount")
    assert drawn(page, "amount") == len(histogram.counts)
    assert page.page.locator("#distribution .main-svg").count() > 0
    page.page.select_option("#dist-column", XSS[6])
    assert drawn(page, XSS[6]) == 2
    assert "all others" not in page.page.locator("#distribution-note").inner_text()
    page.page.select_option("#dist-column", "when")
    assert drawn(page, "when") == 0
    page.shot("datasets-version-chart")
    page.page.fill("textarea[name=contract]", CONTRACT)
    with page.page.expect_navigation(wait_until="load"):
        page.page.click("button:has-text('Check')")
    assert page.page.locator("#expectations tr.failed").count() == 6
    assert page.page.locator("#expectations tr.not-checked").count() == 1
    page.shot("datasets-contract")


def test_a_binary_number_is_drawn_as_two_bars(
    page: Watched, discrete: tuple[DatasetVersion, DatasetVersion]
) -> None:
    page.goto(version_path(DISCRETE, 1))
    page.page.select_option("#dist-column", "online")
    assert drawn(page, "online") == 2
    note = page.page.locator("#distribution-note").inner_text()
    assert "drift tests this numeric column as categorical" in note
    page.shot("datasets-version-values")
    page.goto(version_path(DISCRETE, 2))
    page.page.select_option("#dist-column", "online")
    drawn(page, "online")
    assert "stored before value counts" in page.page.locator("#distribution-note").inner_text()
