"""Signatures: inference from training data, and the validation of every request against them."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelloop.errors import InvalidArgument, InvalidInput
from modelloop.flavors import FeatureSpec, OutputSpec, Signature, infer_signature
from tests.flavors import MERCHANTS, transactions

GOOD = {"amount": 12.5, "hour": 3, "is_online": True, "merchant": "travel", "velocity": None}


@pytest.fixture(scope="module")
def signature() -> Signature:
    frame, _ = transactions()
    return infer_signature(frame, OutputSpec("probability", ("0", "1")))


def test_inference_records_dtypes_nulls_ranges_and_categories(signature: Signature) -> None:
    frame, _ = transactions()
    specs = {spec.name: spec for spec in signature.inputs}
    assert signature.names == ("amount", "hour", "is_online", "merchant", "velocity")
    assert [specs[n].dtype for n in signature.names] == [
        "float",
        "int",
        "bool",
        "category",
        "float",
    ]
    assert [n for n in signature.names if specs[n].nullable] == ["velocity"]
    assert specs["amount"].min == frame.amount.min()
    assert specs["amount"].max == frame.amount.max()
    assert (specs["hour"].min, specs["hour"].max) == (0.0, 23.0)
    assert specs["velocity"].max == frame.velocity.max()  # NaN ignored
    assert specs["merchant"].categories == MERCHANTS
    assert specs["is_online"].min is None
    assert signature.output == OutputSpec("probability", ("0", "1"))


def test_inference_of_strings_and_nullable_ints() -> None:
    frame = pd.DataFrame({"city": ["a", None, "b"], "n": pd.array([1, None, 3], dtype="Int64")})
    sig = infer_signature(frame)
    assert [(s.dtype, s.nullable) for s in sig.inputs] == [("string", True), ("int", True)]
    assert not sig.matrix_ready
    assert sig.output == OutputSpec("score")


def test_inference_refuses_what_requests_could_not_express() -> None:
    with pytest.raises(InvalidArgument, match="non-string levels"):
        infer_signature(pd.DataFrame({"c": pd.Categorical([1, 2, 1])}))
    with pytest.raises(InvalidArgument, match="unsupported dtype"):
        infer_signature(pd.DataFrame({"t": pd.to_datetime(["2024-01-01"])}))
    with pytest.raises(InvalidArgument, match="strings"):
        infer_signature(pd.DataFrame({0: [1.0]}))


def test_the_signature_survives_json(signature: Signature) -> None:
    again = Signature.from_dict(json.loads(json.dumps(signature.to_dict())))
    assert again == signature
    np.testing.assert_array_equal(again.to_matrix(GOOD), signature.to_matrix(GOOD))


@pytest.mark.parametrize(
    "bad",
    [
        {"inputs": "nope"},
        {"inputs": [{"name": "x"}]},
        {"inputs": [{"name": "x", "dtype": "complex"}]},
        {"inputs": [{"name": "x", "dtype": "category"}]},
        {"inputs": [{"name": "x", "dtype": "float", "colour": 1}]},
        {"inputs": []},
        {"inputs": [{"name": "x", "dtype": "float"}], "output": {"kind": "vibes"}},
    ],
)
def test_a_malformed_signature_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        Signature.from_dict(bad)


def test_the_three_request_shapes_give_the_same_matrix(signature: Signature) -> None:
    other = {**GOOD, "amount": 99, "merchant": "grocery", "velocity": -0.5}
    one = signature.to_matrix(GOOD)
    rows = signature.to_matrix([GOOD, other])
    columns = signature.to_matrix({k: [GOOD[k], other[k]] for k in GOOD})
    frame = signature.to_matrix(pd.DataFrame([GOOD, other]).astype({"velocity": float}))
    assert one.dtype == np.float64
    assert one.shape == (1, 5)
    np.testing.assert_array_equal(rows[:1], one)
    np.testing.assert_array_equal(columns, rows)
    np.testing.assert_array_equal(frame, rows)
    assert rows[0, :4].tolist() == [12.5, 3.0, 1.0, float(MERCHANTS.index("travel"))]
    assert math.isnan(rows[0, 4])
    assert rows[1].tolist() == [99.0, 3.0, 1.0, 0.0, -0.5]


def test_to_frame_restores_the_training_dtypes(signature: Signature) -> None:
    frame = signature.to_frame([GOOD, {**GOOD, "merchant": "fuel", "velocity": 1.0}])
    training, _ = transactions()
    assert list(frame.columns) == list(signature.names)
    assert frame.dtypes.to_dict() == training.dtypes.to_dict()
    assert frame.merchant.tolist() == ["travel", "fuel"]
    assert frame.hour.tolist() == [3, 3]


def test_string_features_go_through_to_frame_only() -> None:
    sig = infer_signature(pd.DataFrame({"city": ["a", "b"], "x": [1.0, 2.0]}))
    frame = sig.to_frame([{"city": "zurich", "x": 1}, {"city": "bern", "x": 2.5}])
    assert frame.city.tolist() == ["zurich", "bern"]
    assert frame.x.tolist() == [1.0, 2.5]
    with pytest.raises(InvalidArgument, match="to_frame"):
        sig.to_matrix({"city": "zurich", "x": 1.0})
    with pytest.raises(InvalidInput) as caught:
        sig.to_frame({"city": 3, "x": 1.0})
    assert caught.value.details == [
        {"row": 0, "field": "city", "message": "expected a string, got int"}
    ]


def test_ranges_are_recorded_but_not_enforced(signature: Signature) -> None:
    big = {**GOOD, "amount": 1e9, "hour": -5}
    assert signature.to_matrix(big)[0, :2].tolist() == [1e9, -5.0]


def test_integral_floats_and_numpy_scalars_are_numbers(signature: Signature) -> None:
    record = {**GOOD, "amount": np.float32(2.5), "hour": 4.0, "is_online": np.bool_(False)}
    assert signature.to_matrix(record)[0, :3].tolist() == [2.5, 4.0, 0.0]
    record = {**GOOD, "amount": np.int64(7), "hour": np.int32(5)}
    assert signature.to_matrix(record)[0, :2].tolist() == [7.0, 5.0]


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != name}


# (request, the field the problem is about, a fragment of the message)
BAD_INPUTS: list[tuple[Any, str | None, str]] = [
    (without("amount"), "amount", "missing field"),
    ({**GOOD, "colour": "red"}, "colour", "unexpected field"),
    ({**GOOD, "amount": "12.5"}, "amount", "got a string"),
    ({**GOOD, "amount": [12.5]}, "amount", "got a list"),
    ({**GOOD, "amount": {"value": 1}}, "amount", "got an object"),
    ({**GOOD, "amount": True}, "amount", "got a boolean"),
    ({**GOOD, "amount": None}, "amount", "missing value"),
    ({**GOOD, "amount": math.nan}, "amount", "missing value"),
    ({**GOOD, "amount": math.inf}, "amount", "infinite"),
    ({**GOOD, "velocity": -math.inf}, "velocity", "infinite"),
    ({**GOOD, "amount": 10**400}, "amount", "out of range"),
    ({**GOOD, "hour": 2.5}, "hour", "expected an integer"),
    ({**GOOD, "hour": "3"}, "hour", "got a string"),
    ({**GOOD, "hour": False}, "hour", "got a boolean"),
    ({**GOOD, "is_online": 1}, "is_online", "expected true or false"),
    ({**GOOD, "is_online": "yes"}, "is_online", "expected true or false"),
    ({**GOOD, "is_online": None}, "is_online", "missing value"),
    ({**GOOD, "merchant": "casino"}, "merchant", "'grocery', 'travel', 'online', 'fuel'"),
    ({**GOOD, "merchant": 2}, "merchant", "expected a string"),
    ({**GOOD, "merchant": None}, "merchant", "missing value"),
    ({**GOOD, "velocity": "fast"}, "velocity", "got a string"),
    ([GOOD, {**GOOD, "hour": None}], "hour", "missing value"),
    ([GOOD, "not a record"], None, "expected an object"),
    ({**{k: [v] for k, v in GOOD.items()}, "amount": [1.0, 2.0]}, "amount", "ragged"),
    ({k: [v] for k, v in without("hour").items()}, "hour", "missing field"),
    ({**{k: [v] for k, v in GOOD.items()}, "extra": [1]}, "extra", "unexpected field"),
    ([], None, "no rows"),
    ({}, None, "no rows"),
    ({k: [] for k in GOOD}, None, "no rows"),
    ("amount=3", None, "got a string"),
    (42, None, "got int"),
    ([GOOD] * 10_001, None, "10001 rows > 10000"),
]


@pytest.mark.parametrize(("request_", "field", "message"), BAD_INPUTS)
def test_a_bad_request_names_the_field(
    signature: Signature, request_: Any, field: str | None, message: str
) -> None:
    for convert in (signature.to_matrix, signature.to_frame):
        with pytest.raises(InvalidInput) as caught:
            convert(request_)
        details = caught.value.details or []
        assert any(d["field"] == field and message in d["message"] for d in details), details


def test_every_problem_is_reported_at_once(signature: Signature) -> None:
    bad = [GOOD, {**without("amount"), "hour": "x", "colour": 1}, {**GOOD, "merchant": "casino"}]
    with pytest.raises(InvalidInput) as caught:
        signature.to_matrix(bad)
    found = [(d["row"], d["field"]) for d in caught.value.details or []]
    assert found == [(1, "amount"), (1, "hour"), (1, "colour"), (2, "merchant")]
    assert "4 problem(s) in 2 row(s)" in caught.value.message


def test_details_are_capped_but_counted(signature: Signature) -> None:
    with pytest.raises(InvalidInput) as caught:
        signature.to_matrix([{**GOOD, "amount": "x", "hour": "y"}] * 300)
    assert len(caught.value.details or []) == 100
    assert "600 problem(s) in 300 row(s)" in caught.value.message


def test_the_row_limit_is_configurable(signature: Signature) -> None:
    assert signature.to_matrix([GOOD] * 20, max_rows=20).shape == (20, 5)
    with pytest.raises(InvalidInput, match="limit of 5"):
        signature.to_matrix([GOOD] * 6, max_rows=5)


def test_a_many_categories_message_is_truncated() -> None:
    levels = [f"m{i:03d}" for i in range(50)]
    sig = Signature((FeatureSpec("m", "category", categories=tuple(levels)),))
    with pytest.raises(InvalidInput) as caught:
        sig.to_matrix({"m": "zzz"})
    message = (caught.value.details or [])[0]["message"]
    assert "'m009'" in message
    assert "'m010'" not in message
    assert "+40 more" in message


def test_matrix_values_are_what_clients_send(signature: Signature) -> None:
    X = signature.to_matrix([GOOD, {**GOOD, "is_online": False, "velocity": 0.5}])
    values = signature.matrix_values(X)
    assert values.tolist() == [[12.5, 3, True, "travel", None], [12.5, 3, False, "travel", 0.5]]
    assert [type(v) for v in values[0][:3]] == [float, int, bool]


def test_matrix_and_frame_convert_both_ways(signature: Signature) -> None:
    frame, _ = transactions(50)
    X = signature.frame_to_matrix(frame)
    np.testing.assert_array_equal(signature.frame_to_matrix(signature.matrix_to_frame(X)), X)
    assert signature.matrix_to_frame(X).dtypes.to_dict() == frame.dtypes.to_dict()
    with pytest.raises(InvalidInput, match="missing column"):
        signature.frame_to_matrix(frame.drop(columns="hour"))
