import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from modelloop.errors import InvalidArgument
from modelloop.monitoring.performance import (
    PerformanceReport,
    card_precision_at_k,
    performance,
    precision_at_k,
    windows,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _frame(scores, labels, *, days=None, cards=None, labelled_at=None) -> pd.DataFrame:
    n = len(scores)
    days = [0] * n if days is None else days
    frame = pd.DataFrame(
        {
            "prediction_id": [f"p{i:05d}" for i in range(n)],
            "timestamp": [T0 + timedelta(days=int(d), minutes=i) for i, d in enumerate(days)],
            "score": np.asarray(scores, dtype=float),
            "label": np.asarray(labels, dtype=float),
        }
    )
    if cards is not None:
        frame["card_id"] = cards
    if labelled_at is not None:
        frame["labelled_at"] = labelled_at
    return frame


def _random(seed: int, n: int = 500):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    # Rounded scores create many ties, the case where AUC/AP definitions differ most.
    s = np.clip(np.round(rng.normal(0.4 + 0.3 * y, 0.2), 2), 0.0, 1.0)
    return s, y


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn_exactly(seed: int) -> None:
    s, y = _random(seed)
    report = performance(_frame(s, y), threshold=0.55)
    assert report.status == "ok"
    pred = (s >= 0.55).astype(int)
    assert report.auc_roc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert report.average_precision == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert report.precision == pytest.approx(precision_score(y, pred), abs=1e-12)
    assert report.recall == pytest.approx(recall_score(y, pred), abs=1e-12)


def test_metrics_match_sklearn_with_continuous_scores() -> None:
    rng = np.random.default_rng(42)
    y = (rng.random(1000) < 0.1).astype(float)
    s = rng.random(1000) * 0.5 + 0.4 * y
    report = performance(_frame(s, y))
    assert report.auc_roc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert report.average_precision == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_precision_at_k_by_hand_divides_by_k() -> None:
    s = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    assert precision_at_k(y, s, k=1) == 1.0
    assert precision_at_k(y, s, k=2) == 0.5
    assert precision_at_k(y, s, k=3) == pytest.approx(2 / 3)
    assert precision_at_k(y, s, k=10) == pytest.approx(3 / 10)


def test_precision_at_k_breaks_ties_by_key_not_row_order() -> None:
    s = np.array([0.5, 0.5, 0.5])
    y = np.array([0.0, 1.0, 0.0])
    assert precision_at_k(y, s, k=1, keys=np.array(["c", "a", "b"])) == 1.0
    assert precision_at_k(y, s, k=1, keys=np.array(["a", "b", "c"])) == 0.0


def _cards_example() -> pd.DataFrame:
    rows = [
        # day 1: A = (max 0.9, max label 1); B and C tie at 0.8, B wins by key -> top2 = A, B.
        (0, "A", 0.9, 0),
        (0, "A", 0.3, 1),
        (0, "B", 0.8, 0),
        (0, "C", 0.8, 1),
        # day 2: A was detected on day 1 and is removed -> top2 = B (fraud), D.
        (1, "A", 0.95, 1),
        (1, "B", 0.7, 1),
        (1, "C", 0.6, 1),
        (1, "D", 0.65, 0),
        # day 3: B detected on day 2 -> only E is left, 0 frauds / k (not / 1).
        (2, "B", 0.9, 1),
        (2, "E", 0.1, 0),
    ]
    days, cards, s, y = zip(*rows, strict=True)
    return _frame(s, y, days=list(days), cards=list(cards))


def test_card_precision_at_k_worked_example() -> None:
    report = performance(_cards_example(), k=2, entity="card_id", min_labels=1)
    assert report.card_precision_daily == {
        "2024-01-01": 0.5,
        "2024-01-02": 0.5,
        "2024-01-03": 0.0,
    }
    assert report.card_precision_at_k == pytest.approx(1 / 3)


def test_card_precision_at_k_function_without_removal_would_differ() -> None:
    # Day 2 alone (no earlier detection): A and B are the top 2, both frauds.
    frame = _cards_example()
    day2 = frame[frame["timestamp"].dt.day == 2]
    report = performance(day2, k=2, entity="card_id", min_labels=1)
    assert report.card_precision_at_k == 1.0


def test_card_precision_empty_frame() -> None:
    empty = pd.DataFrame({"day": [], "entity": [], "score": [], "label": []})
    assert card_precision_at_k(empty, k=5) == (None, {})


def test_card_precision_absent_without_entity() -> None:
    report = performance(_cards_example(), k=2, min_labels=1)
    assert report.card_precision_at_k is None
    assert report.card_precision_daily == {}


def test_expected_calibration_error_by_hand() -> None:
    s = [0.05, 0.15, 0.15, 0.95, 1.0]
    y = [0, 1, 0, 1, 1]
    # bins: [0,.1): |0-.05|*1; [.1,.2): |.5-.15|*2; [.9,1]: |1-.975|*2  -> / 5
    expected = (0.05 + 0.7 + 0.05) / 5
    report = performance(_frame(s, y), min_labels=1)
    assert report.expected_calibration_error == pytest.approx(expected, abs=1e-12)


def test_ece_undefined_for_scores_outside_unit_interval() -> None:
    report = performance(_frame([-1.0, 2.0, 0.5], [0, 1, 1]), min_labels=1)
    assert report.expected_calibration_error is None
    assert any("expected_calibration_error" in note for note in report.notes)
    assert report.auc_roc == 1.0


def test_late_out_of_order_labels_give_the_same_report() -> None:
    s, y = _random(7, n=300)
    rng = np.random.default_rng(7)
    arrival = [T0 + timedelta(days=int(d)) for d in rng.integers(1, 30, size=300)]
    cards = [f"c{i:02d}" for i in rng.integers(0, 40, size=300)]
    days = list(rng.integers(0, 5, size=300))
    frame = _frame(s, y, days=days, cards=cards, labelled_at=arrival)
    shuffled = frame.sample(frac=1.0, random_state=3)
    # Half the labels are still in flight on day 15: same answer whatever the arrival order.
    kwargs = {
        "k": 5,
        "entity": "card_id",
        "as_of": T0 + timedelta(days=15),
        "min_labels": 10,
        "min_coverage": 0.3,
    }
    a, b = performance(frame, **kwargs).to_dict(), performance(shuffled, **kwargs).to_dict()
    assert 0 < a["n_labelled"] < a["n_matured"]
    assert a["status"] == "ok"
    assert a.keys() == b.keys()
    for key, value in a.items():
        expected = pytest.approx(value, abs=1e-12) if isinstance(value, float) else value
        assert b[key] == expected, key


def test_labels_arriving_after_as_of_are_ignored() -> None:
    s, y = _random(3, n=200)
    arrival = [T0 + timedelta(days=1 if i < 100 else 10) for i in range(200)]
    frame = _frame(s, y, labelled_at=arrival)
    report = performance(frame, as_of=T0 + timedelta(days=5), min_labels=10)
    assert report.n_labelled == 100
    assert report.label_coverage == 0.5
    assert report.auc_roc == pytest.approx(roc_auc_score(y[:100], s[:100]), abs=1e-12)


def test_unmatured_rows_are_excluded_not_negatives() -> None:
    s, y = _random(5, n=400)
    days = [i % 10 for i in range(400)]
    labels = np.where(np.array(days) >= 7, np.nan, y)  # recent rows: labels not in yet
    frame = _frame(s, labels, days=days)
    as_of = datetime(2024, 1, 12)  # naive -> UTC; cutoff Jan 8 keeps days 0-6
    report = performance(frame, label_delay=timedelta(days=4), as_of=as_of)
    matured = np.array(days) < 7
    assert report.n_predictions == 400
    assert report.n_matured == int(matured.sum())
    assert report.n_unmatured == 400 - int(matured.sum())
    assert report.n_labelled == report.n_matured
    assert report.label_coverage == 1.0
    assert report.auc_roc == pytest.approx(roc_auc_score(y[matured], s[matured]), abs=1e-12)
    # Without the delay the unlabelled recent rows drag coverage down to 70 %.
    assert performance(frame, as_of=as_of).label_coverage == pytest.approx(0.7)


def test_empty_frame_is_no_data() -> None:
    report = performance(_frame([], []))
    assert report.status == "no_data"
    assert report.n_predictions == 0
    assert report.label_coverage is None
    assert report.auc_roc is None


def test_window_without_labels_is_insufficient_not_fake_score() -> None:
    report = performance(_frame([0.1, 0.7, 0.9], [np.nan] * 3), min_labels=1)
    assert report.status == "insufficient_labels"
    assert report.n_matured == 3
    assert report.n_labelled == 0
    assert report.label_coverage == 0.0
    metrics = [
        report.auc_roc,
        report.average_precision,
        report.precision,
        report.recall,
        report.precision_at_k,
        report.card_precision_at_k,
        report.expected_calibration_error,
    ]
    assert metrics == [None] * 7
    assert report.notes


def test_nothing_matured_yet_is_insufficient() -> None:
    report = performance(
        _frame([0.2, 0.8], [0, 1]), label_delay=timedelta(days=30), as_of=T0 + timedelta(days=1)
    )
    assert report.status == "insufficient_labels"
    assert (report.n_matured, report.n_unmatured, report.label_coverage) == (0, 2, None)


@pytest.mark.parametrize(
    ("n_labelled", "min_labels", "min_coverage", "status"),
    [
        (60, 50, 0.5, "ok"),
        (40, 50, 0.3, "insufficient_labels"),
        (60, 10, 0.7, "insufficient_labels"),
    ],
)
def test_coverage_thresholds(
    n_labelled: int, min_labels: int, min_coverage: float, status: str
) -> None:
    s, y = _random(11, n=100)
    labels = np.where(np.arange(100) < n_labelled, y, np.nan)
    report = performance(_frame(s, labels), min_labels=min_labels, min_coverage=min_coverage)
    assert report.status == status
    assert report.n_labelled == n_labelled
    assert report.label_coverage == n_labelled / 100


def test_one_class_only_auc_is_none_with_a_note() -> None:
    report = performance(_frame([0.1, 0.4, 0.8], [0, 0, 0]), min_labels=1)
    assert report.status == "ok"
    assert report.auc_roc is None
    assert report.average_precision is None
    assert report.recall is None
    assert report.precision == 0.0
    assert any("auc_roc" in note for note in report.notes)


def test_precision_none_when_nothing_alerts() -> None:
    report = performance(_frame([0.1, 0.2], [0, 1]), threshold=0.9, min_labels=1)
    assert report.precision is None
    assert report.recall == 0.0


def test_to_dict_is_json_friendly() -> None:
    report = performance(_cards_example(), k=2, entity="card_id", min_labels=1)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["status"] == "ok"
    assert data["card_precision_at_k"] == pytest.approx(1 / 3)
    assert isinstance(report, PerformanceReport)


def test_invalid_labels_and_arguments_raise() -> None:
    with pytest.raises(InvalidArgument, match="0 or 1"):
        performance(_frame([0.1, 0.2], [0, 2]), min_labels=1)
    with pytest.raises(InvalidArgument, match="k must"):
        performance(_frame([0.1], [0]), k=0)
    with pytest.raises(InvalidArgument, match="card_id"):
        performance(_frame([0.1], [0]), entity="card_id")


def test_windows_split_by_day_keeping_gaps() -> None:
    frame = _frame([0.1, 0.2, 0.3], [0, 1, 0], days=[0, 0, 2])
    parts = windows(frame)
    assert [len(part) for _, _, part in parts] == [2, 0, 1]
    assert parts[0][0] == pd.Timestamp(T0)
    assert parts[1][1] - parts[1][0] == pd.Timedelta("1D")
    assert performance(parts[1][2]).status == "no_data"
    assert windows(frame.iloc[:0]) == []
