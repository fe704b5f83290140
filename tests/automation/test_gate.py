"""The champion/challenger gate with real LightGBM models in a real registry: it promotes a
clearly better challenger, rejects a worse one and one better only by noise, its paired
bootstrap equals a slow scikit-learn loop, budgets reject, decisions are audited, and the CLI
exits 0/1/2 for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

import modelloop as ml
from modelloop.automation import GateOptions, ModelCost, decide, evaluate_gate, paired_bootstrap
from modelloop.cli import app
from modelloop.errors import InvalidArgument, InvalidInput, NotFound
from modelloop.monitoring.performance import precision_at_k
from modelloop.settings import load_settings
from modelloop.store import close_database
from modelloop.tracking import fluent

FEATURES = [f"f{i}" for i in range(6)]
runner = CliRunner(env={"COLUMNS": "200"})


def _data(rows: int, seed: int) -> pd.DataFrame:
    """About 12% positives; f0..f3 carry the signal, f4 and f5 are noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    logit = 1.6 * frame.f0 - 1.2 * frame.f1 + np.sin(2 * frame.f2) + 0.8 * frame.f3 * frame.f0
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-(logit - 2.8)))).astype("int64")
    return frame


@dataclass
class Registered:
    home: Path
    holdout: pd.DataFrame
    full: int  # all features: the champion
    weak: int  # f0 only
    shuffled: int  # trained on shuffled labels: worse than anything
    twins: tuple[int, int]  # same algorithm and data as full, other bagging seeds


def _fit(train: pd.DataFrame, features: list[str], seed: int, label: Any = None) -> Any:
    import lightgbm as lgb

    model = lgb.LGBMClassifier(
        n_estimators=60,
        num_leaves=15,
        learning_rate=0.1,
        subsample=0.7,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    return model.fit(train[features], train["label"] if label is None else label)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    """One registry for the module (training is the slow part): five versions of
    fraud-detector, version 1 aliased champion."""
    home = tmp_path_factory.mktemp("gate") / "home"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI"):
            mp.delenv(name, raising=False)
        mp.setenv("MODELLOOP_HOME", str(home))
        mp.setenv("MODELLOOP_USER", "ci")
        mp.chdir(home.parent)
        train, holdout = _data(4000, seed=1), _data(4000, seed=2)
        shuffled = np.random.default_rng(3).permutation(train["label"].to_numpy())
        models = [
            _fit(train, FEATURES, seed=0),
            _fit(train, ["f0"], seed=0),
            _fit(train, FEATURES, seed=0, label=shuffled),
            _fit(train, FEATURES, seed=11),
            _fit(train, FEATURES, seed=12),
        ]
        versions = []
        with ml.start_run(experiment="fraud") as run:
            for i, model in enumerate(models):
                data = train[list(model.feature_name_)]
                versions.append(
                    ml.register_model(
                        run, "fraud-detector", model, artifact_path=f"model-{i}", training_data=data
                    )
                )
        ml.set_alias("fraud-detector", "staging", 1, reason="baseline")
        yield Registered(
            home,
            holdout,
            versions[0].version,
            versions[1].version,
            versions[2].version,
            (versions[3].version, versions[4].version),
        )
        fluent.close_clients()
        close_database(load_settings().database_url)


def _uri(version: int) -> str:
    return f"fraud-detector/{version}"


def _gate(
    challenger: int,
    champion: int,
    holdout: pd.DataFrame,
    options: GateOptions | None = None,
    **call: Any,
) -> Any:
    return evaluate_gate(
        _uri(challenger), _uri(champion), holdout, options or GateOptions(), **call
    )


# -- decisions -----------------------------------------------------------------------------------


def test_a_clearly_better_challenger_is_promoted(registered: Registered) -> None:
    holdout = registered.holdout
    result = _gate(registered.full, registered.weak, holdout, record=False)
    assert result.decision == "promote", result.summary()
    assert result.promoted
    assert result.reasons == []
    scores = ml.load_model(f"models:/{_uri(registered.full)}").predict(holdout)
    assert result.challenger.value == pytest.approx(
        average_precision_score(holdout["label"], scores), abs=1e-12
    )
    assert result.difference == pytest.approx(result.challenger.value - result.champion.value)
    assert 0 < result.ci_low < result.difference < result.ci_high
    assert (result.n_rows, result.n_positive) == (len(holdout), int(holdout["label"].sum()))
    assert result.n_bootstrap == 1000
    assert result.n_undefined == 0
    assert [c.name for c in result.checks] == ["metric"]
    assert "above the margin +0.0000" in result.checks[0].detail
    for side in (result.challenger, result.champion):
        assert side.latency_ms > 0
        assert side.batch_latency_ms > 0
        assert side.size_bytes > 1000
    assert result.audit_seq is None


def test_a_deliberately_worse_challenger_is_rejected_with_the_reason(
    registered: Registered,
) -> None:
    for worse in (registered.weak, registered.shuffled):
        result = _gate(worse, registered.full, registered.holdout, record=False)
        assert result.decision == "reject"
        assert result.ci_high < 0, result.summary()
        assert len(result.reasons) == 1
        reason = result.reasons[0]
        assert reason.startswith("lower bound of the 95% interval of the AP difference is -0.")
        assert reason.endswith("not above the margin +0.0000")


def test_a_challenger_better_only_by_noise_is_rejected(registered: Registered) -> None:
    """Same algorithm and data, another seed: whichever twin scores higher on the holdout is
    still rejected, because the paired interval of the difference contains 0."""
    a, b = registered.twins
    first = _gate(a, b, registered.holdout, record=False)
    challenger, champion = (a, b) if first.difference > 0 else (b, a)
    result = _gate(challenger, champion, registered.holdout, record=False)
    assert result.challenger.value > result.champion.value  # better, on this sample
    assert result.ci_low < 0 < result.ci_high
    assert result.decision == "reject"
    assert "not above the margin" in result.reasons[0]


def test_the_champion_itself_is_not_better_than_itself(registered: Registered) -> None:
    result = evaluate_gate(
        "fraud-detector@staging", _uri(registered.full), registered.holdout, record=False
    )
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.decision == "reject"
    assert result.challenger.requested == "models:/fraud-detector@staging"
    assert result.challenger.uri == f"models:/fraud-detector/{registered.full}"
    # A negative margin states how much worse is acceptable: identical models pass it.
    assert _gate(
        registered.full,
        registered.full,
        registered.holdout,
        GateOptions(margin=-0.01),
        record=False,
    )


def test_a_margin_demands_more_than_being_better(registered: Registered) -> None:
    better = _gate(registered.full, registered.weak, registered.holdout, record=False)
    demanding = _gate(
        registered.full,
        registered.weak,
        registered.holdout,
        GateOptions(margin=better.ci_low + 0.001),
        record=False,
    )
    assert demanding.decision == "reject"
    assert (demanding.ci_low, demanding.ci_high) == (better.ci_low, better.ci_high)


@pytest.mark.parametrize("metric", ["auc", "p@k"])
def test_other_metrics(registered: Registered, metric: str) -> None:
    options = GateOptions(metric=metric, k=200)
    better = _gate(registered.full, registered.weak, registered.holdout, options, record=False)
    assert better.decision == "promote", better.summary()
    worse = _gate(registered.shuffled, registered.full, registered.holdout, options, record=False)
    assert worse.decision == "reject"
    label = {"auc": "AUC", "p@k": "precision@200"}[metric]
    assert f"interval of the {label} difference" in worse.reasons[0]


def test_decide_reaches_the_gates_decision_from_scores_already_computed(
    registered: Registered,
) -> None:
    """What a replay does: no model scored by the gate, the same scores, the same decision."""
    holdout, options = registered.holdout, GateOptions(max_latency_ratio=1000)
    gated = _gate(registered.full, registered.weak, holdout, options, record=False)
    scores = [
        ml.load_model(f"models:/{_uri(v)}").predict(holdout)
        for v in (registered.full, registered.weak)
    ]
    challenger, champion = (
        ModelCost(**{k: v for k, v in asdict(side).items() if k != "value"})
        for side in (gated.challenger, gated.champion)
    )
    decided = decide(
        holdout["label"],
        scores[1],
        scores[0],
        options,
        challenger=challenger,
        champion=champion,
        data_digest=gated.data_digest,
    )
    assert decided.decision == "promote"
    expected = {k: v for k, v in gated.to_dict().items() if k != "seconds"}
    assert {k: v for k, v in decided.to_dict().items() if k != "seconds"} == expected


# -- the bootstrap -------------------------------------------------------------------------------


def _reference(y: Any, a: Any, b: Any, metric: str, n_bootstrap: int, seed: int) -> Any:
    """The slow definition: resample the rows, score both models with scikit-learn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(y), size=len(y))
        yy = y[idx]
        if metric == "average_precision":
            out.append([average_precision_score(yy, s[idx]) for s in (a, b)])
        elif metric == "auc_roc":
            out.append([roc_auc_score(yy, s[idx]) for s in (a, b)])
        else:
            out.append([precision_at_k(yy, s[idx], k=50, keys=idx) for s in (a, b)])
    return np.array(out)


@pytest.mark.parametrize("metric", ["average_precision", "auc_roc", "precision_at_k"])
def test_the_paired_bootstrap_equals_a_slow_reference(registered: Registered, metric: str) -> None:
    holdout = registered.holdout.iloc[:1500]
    y = holdout["label"].to_numpy(dtype=float)
    champion = ml.load_model(f"models:/{_uri(registered.full)}").predict(holdout)
    weak = ml.load_model(f"models:/{_uri(registered.weak)}").predict(holdout)
    challenger = np.round(weak, 2)  # many ties
    boot = paired_bootstrap(y, champion, challenger, metric=metric, k=50, n_bootstrap=200, seed=5)
    expected = _reference(y, champion, challenger, metric, 200, seed=5)
    np.testing.assert_allclose(boot.champion, expected[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(boot.challenger, expected[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(boot.differences, expected[:, 1] - expected[:, 0], atol=1e-9)
    assert boot.n_undefined == 0

    result = evaluate_gate(
        _uri(registered.weak),
        _uri(registered.full),
        holdout,
        GateOptions(metric=metric, k=50, n_bootstrap=200, seed=5),
        record=False,
    )
    unrounded = _reference(
        y,
        champion,
        weak,
        metric,
        200,
        seed=5,
    )
    low, high = np.quantile(unrounded[:, 1] - unrounded[:, 0], [0.025, 0.975])
    assert result.ci_low == pytest.approx(low, abs=1e-9)
    assert result.ci_high == pytest.approx(high, abs=1e-9)


def test_resamples_without_a_positive_are_dropped_and_counted() -> None:
    y = np.zeros(40)
    y[0] = 1.0  # one positive: a resample misses it about a third of the time
    scores = np.linspace(0, 1, 40)
    boot = paired_bootstrap(y, scores, scores[::-1], n_bootstrap=300, seed=0)
    assert 50 < boot.n_undefined < 160
    assert len(boot.differences) == 300 - boot.n_undefined
    assert not np.isnan(boot.differences).any()
    assert (boot.champion_value, boot.challenger_value) == (0.025, 1.0)


def test_few_positives_fail_the_bootstrap_check(registered: Registered) -> None:
    holdout = registered.holdout
    tiny = pd.concat([holdout[holdout.label == 1].iloc[:1], holdout[holdout.label == 0].iloc[:30]])
    result = _gate(registered.full, registered.weak, tiny, GateOptions(margin=-1.0), record=False)
    assert result.decision == "reject"
    assert any("too few positives" in r for r in result.reasons)


def test_fifty_thousand_rows_a_thousand_resamples() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(50_000) < 0.05).astype(float)
    boot = paired_bootstrap(y, y + rng.random(50_000), y * 1.2 + rng.random(50_000))
    assert boot.differences.size == 1000
    assert boot.n_undefined == 0


# -- budgets -------------------------------------------------------------------------------------


def test_budgets_that_fail_reject_a_better_challenger(registered: Registered) -> None:
    holdout = registered.holdout
    result = _gate(
        registered.full,
        registered.weak,
        holdout,
        GateOptions(max_latency_ms=1e-6, max_size_bytes=100, max_latency_ratio=1e-3),
        record=False,
    )
    assert result.decision == "reject"
    failed = {c.name: c.detail for c in result.checks if not c.passed}
    assert set(failed) == {"latency", "latency_ratio", "size"}
    assert "over the budget 1e-06 ms" in failed["latency"]
    assert "over the budget 100 B" in failed["size"]
    assert result.checks[0].passed  # the metric itself was fine
    assert result.budgets == {
        "max_latency_ms": 1e-6,
        "max_latency_ratio": 1e-3,
        "max_size_bytes": 100.0,
    }
    generous = _gate(
        registered.full,
        registered.weak,
        holdout,
        GateOptions(max_latency_ms=1000, max_size_bytes=10**9, max_latency_ratio=1000),
        record=False,
    )
    assert generous.decision == "promote"
    assert [c.passed for c in generous.checks] == [True, True, True, True]


# -- audit ---------------------------------------------------------------------------------------


def test_each_decision_is_an_audit_event_with_its_evidence(registered: Registered) -> None:
    before = len(ml.audit_log())
    rejected = _gate(registered.weak, registered.full, registered.holdout)
    promoted = _gate(registered.full, registered.weak, registered.holdout, reason="CI build 1234")
    events = ml.audit_log("fraud-detector")[-2:]
    assert len(ml.audit_log()) == before + 2
    assert [e.seq for e in events] == [rejected.audit_seq, promoted.audit_seq]
    for event, result in zip(events, (rejected, promoted), strict=True):
        assert event.action == "gate.decision"
        assert event.object_type == "model_version"
        assert event.object_id == f"fraud-detector/{result.challenger.version}"
        assert event.actor == "ci"
        assert event.before is None
        assert event.after is not None
        stored = {k: v for k, v in event.after.items() if k != "audit_seq"}
        expected = json.loads(json.dumps(result.to_dict()))
        assert stored == {k: v for k, v in expected.items() if k != "audit_seq"}
    assert events[0].after["decision"] == "reject"  # type: ignore[index]
    assert events[0].reason == rejected.summary()
    assert events[0].after["reasons"] == rejected.reasons  # type: ignore[index]
    assert events[1].reason == "CI build 1234"
    assert ml.verify_audit().ok
    _gate(registered.full, registered.weak, registered.holdout, record=False)
    assert len(ml.audit_log()) == before + 2


def test_recording_through_a_server_is_refused_before_any_work(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(InvalidArgument, match="record=False"):
        _gate(registered.full, registered.weak, registered.holdout)


# -- inputs --------------------------------------------------------------------------------------


def test_bad_inputs_are_invalid_arguments(registered: Registered) -> None:
    holdout = registered.holdout
    full, weak = registered.full, registered.weak
    with pytest.raises(InvalidArgument, match="no label column 'is_fraud'"):
        _gate(full, weak, holdout, label="is_fraud", record=False)
    with pytest.raises(InvalidInput):
        _gate(full, weak, holdout.drop(columns=["f3"]), record=False)
    unlabeled = holdout.astype({"label": "float64"})
    unlabeled.loc[:9, "label"] = np.nan
    with pytest.raises(InvalidArgument, match="10 of 4000 holdout rows have no label"):
        _gate(full, weak, unlabeled, record=False)
    with pytest.raises(InvalidArgument, match="needs more rows of both classes"):
        _gate(full, weak, holdout[holdout.label == 0], record=False)
    with pytest.raises(InvalidArgument, match="Unknown gate metric 'f1'"):
        _gate(full, weak, holdout, GateOptions(metric="f1"), record=False)
    with pytest.raises(InvalidArgument, match="confidence"):
        _gate(full, weak, holdout, GateOptions(confidence=1.5), record=False)
    with pytest.raises(InvalidArgument, match="Invalid model URI"):
        evaluate_gate("fraud detector", _uri(weak), holdout, record=False)
    with pytest.raises(NotFound):
        evaluate_gate("fraud-detector@prod", _uri(weak), holdout, record=False)


def test_importing_the_gate_stays_light() -> None:
    code = (
        "import sys, modelloop.automation.gate; "
        "print(','.join(m for m in ('numpy', 'pandas', 'sqlalchemy', 'lightgbm') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


# -- the command line ----------------------------------------------------------------------------


def _cli(*args: str) -> Any:
    return runner.invoke(app, ["gate", *args], prog_name="modelloop")


def test_cli_exits_0_to_promote_and_1_to_reject(registered: Registered) -> None:
    path = registered.home.parent / "holdout.parquet"
    registered.holdout.to_parquet(path)
    promote = _cli(
        "--challenger",
        _uri(registered.full),
        "--champion",
        _uri(registered.weak),
        "--data",
        str(path),
        "--metric",
        "ap",
    )
    assert promote.exit_code == 0, promote.output
    assert "✓ lower bound of the 95% interval of the AP difference" in promote.stdout
    assert f"PROMOTE: models:/fraud-detector/{registered.full} may replace" in promote.stdout
    assert "recorded as audit event" in promote.stdout
    log = runner.invoke(app, ["audit", "log", "--model", "fraud-detector"], prog_name="modelloop")
    assert log.exit_code == 0, log.output
    assert "gate.decision" in log.stdout

    reject = _cli(
        "--challenger",
        _uri(registered.weak),
        "--champion",
        "fraud-detector@staging",
        "--data",
        str(path),
        "--max-size-mb",
        "0.0001",
        "--no-record",
    )
    assert reject.exit_code == 1, reject.output
    assert f"fraud-detector/{registered.full} (fraud-detector@staging)" in reject.stdout
    assert "✗ lower bound" in reject.stdout
    assert "not above the margin" in reject.stdout
    assert "✗ challenger package is" in reject.stdout
    assert "REJECT" in reject.stdout
    assert "recorded" not in reject.stdout
    assert reject.stderr == ""


def test_cli_json_reads_datasets_and_csv(registered: Registered) -> None:
    ml.log_dataset(registered.holdout, "fraud-holdout")
    fluent.close_clients()
    done = _cli(
        "--challenger",
        _uri(registered.full),
        "--champion",
        _uri(registered.weak),
        "--data",
        "fraud-holdout@1",
        "--metric",
        "auc",
        "--bootstrap",
        "200",
        "--output",
        "json",
        "--no-record",
    )
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert record["decision"] == "promote"
    assert record["metric"] == "auc_roc"
    assert record["n_bootstrap"] == 200
    assert record["data"] == "dataset fraud-holdout@1"

    csv = registered.home.parent / "holdout.csv"
    registered.holdout.to_csv(csv, index=False)
    again = _cli(
        "--challenger",
        _uri(registered.full),
        "--champion",
        _uri(registered.weak),
        "--data",
        str(csv),
        "--metric",
        "auc",
        "--bootstrap",
        "200",
        "-o",
        "json",
        "--no-record",
    )
    from_csv = json.loads(again.stdout)
    assert from_csv["data_digest"] == record["data_digest"]  # the same values, either way
    assert from_csv["ci_low"] == record["ci_low"]


def test_cli_user_mistakes_are_one_line_errors(registered: Registered) -> None:
    path = registered.home.parent / "nolabel.parquet"
    registered.holdout.drop(columns=["label"]).to_parquet(path)
    base = ["--challenger", _uri(registered.full), "--champion", _uri(registered.weak)]
    for args, code, needle in (
        (["--data", str(path)], 2, "no label column 'label'"),
        (["--data", str(path), "--label", "f0", "--metric", "f1"], 2, "Unknown gate metric"),
        (["--data", "missing.parquet"], 3, "No such file: missing.parquet"),
        (["--data", "no-such-dataset"], 3, "no-such-dataset"),
        (["--data", str(path), "--bootstrap", "10"], 2, "--bootstrap"),
    ):
        done = _cli(*base, *args)
        assert done.exit_code == code, (args, done.output)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("Error: "), done.stderr
        assert needle in lines[0], lines[0]
