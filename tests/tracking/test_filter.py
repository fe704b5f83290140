"""The run-search filter language: valid filters and their AST, errors and their messages."""

from __future__ import annotations

import dataclasses

import pytest

from modelloop.errors import InvalidArgument, InvalidFilter
from modelloop.tracking.filter import (
    ATTRIBUTES,
    And,
    Comparison,
    Expr,
    Or,
    OrderBy,
    parse_filter,
    parse_order_by,
)


def metric(key: str, op: str, value: float) -> Comparison:
    return Comparison("metric", key, op, value)


def param(key: str, op: str, value: str | tuple[str, ...]) -> Comparison:
    return Comparison("param", key, op, value)


def tag(key: str, op: str, value: str | tuple[str, ...]) -> Comparison:
    return Comparison("tag", key, op, value)


def attr(key: str, op: str, value: float | str | tuple[str, ...]) -> Comparison:
    return Comparison("attribute", key, op, value)


A, B, C = metric("a", ">", 1.0), metric("b", ">", 2.0), metric("c", ">", 3.0)

VALID: list[tuple[str, Expr]] = [
    # entities, prefixes and operators
    ("metrics.auc > 0.9", metric("auc", ">", 0.9)),
    ("metric.auc >= 0.9", metric("auc", ">=", 0.9)),
    ("metrics.loss < 1", metric("loss", "<", 1.0)),
    ("metrics.loss <= 1", metric("loss", "<=", 1.0)),
    ("metrics.epochs = 10", metric("epochs", "=", 10.0)),
    ("metrics.epochs == 10", metric("epochs", "=", 10.0)),
    ("metrics.epochs != 10", metric("epochs", "!=", 10.0)),
    ("params.model = 'lgbm'", param("model", "=", "lgbm")),
    ('param.model != "lgbm"', param("model", "!=", "lgbm")),
    ("tags.team LIKE 'ml-%'", tag("team", "LIKE", "ml-%")),
    ("tag.team ilike '%ML%'", tag("team", "ILIKE", "%ML%")),
    ("attributes.run_id = 'abc'", attr("run_id", "=", "abc")),
    ("attribute.user = 'ada'", attr("user", "=", "ada")),
    ("attr.experiment_id = '1'", attr("experiment_id", "=", "1")),
    ("parent_run_id != 'p'", attr("parent_run_id", "!=", "p")),
    ("run_name LIKE 'nightly%'", attr("name", "LIKE", "nightly%")),
    ("name = 'x'", attr("name", "=", "x")),
    ("start_time >= 1700000000000", attr("start_time", ">=", 1700000000000.0)),
    ("attributes.end_time < 5", attr("end_time", "<", 5.0)),
    # numbers: sign, decimals, exponents, no spaces
    ("metrics.x > -1.5e-3", metric("x", ">", -0.0015)),
    ("metrics.x>+2E3", metric("x", ">", 2000.0)),
    ("metrics.x<.5", metric("x", "<", 0.5)),
    ("metrics.x = 3.", metric("x", "=", 3.0)),
    # keys: special characters, quoted with spaces
    ("metrics.val/loss-2:x.y_z < 1", metric("val/loss-2:x.y_z", "<", 1.0)),
    ("metrics.`my key` > 1", metric("my key", ">", 1.0)),
    ('metrics."my key" > 1', metric("my key", ">", 1.0)),
    ("tags.`it\\`s` = 'v'", tag("it`s", "=", "v")),
    ("attributes.`start_time` > 0", attr("start_time", ">", 0.0)),
    # strings: escapes and the other quote inside
    ("params.x = 'it\\'s'", param("x", "=", "it's")),
    ('params.x = "say \\"hi\\""', param("x", "=", 'say "hi"')),
    ('params.x = "it\'s"', param("x", "=", "it's")),
    ("params.x = 'back\\\\slash'", param("x", "=", "back\\slash")),
    ("params.x LIKE '100\\%'", param("x", "LIKE", "100\\%")),
    ("params.x = ''", param("x", "=", "")),
    ("params.x = 'and or ('", param("x", "=", "and or (")),
    # IN lists
    ("params.model IN ('lgbm', 'xgb')", param("model", "IN", ("lgbm", "xgb"))),
    ("params.model in ('lgbm')", param("model", "IN", ("lgbm",))),
    ("tags.t NOT IN ('a','b' , \"c\")", tag("t", "NOT IN", ("a", "b", "c"))),
    ("tags.t not   in ('a')", tag("t", "NOT IN", ("a",))),
    # status values are checked and upper-cased
    ("status = 'FINISHED'", attr("status", "=", "FINISHED")),
    ("attributes.status != 'running'", attr("status", "!=", "RUNNING")),
    ("status IN ('failed', 'KILLED')", attr("status", "IN", ("FAILED", "KILLED"))),
    ("status LIKE 'RUN%'", attr("status", "LIKE", "RUN%")),
    # boolean structure: precedence, associativity, parentheses, case
    ("metrics.a > 1 and metrics.b > 2", And(A, B)),
    ("metrics.a > 1 AND metrics.b > 2 aNd metrics.c > 3", And(And(A, B), C)),
    ("metrics.a > 1 or metrics.b > 2 OR metrics.c > 3", Or(Or(A, B), C)),
    ("metrics.a > 1 or metrics.b > 2 and metrics.c > 3", Or(A, And(B, C))),
    ("metrics.a > 1 and metrics.b > 2 or metrics.c > 3", Or(And(A, B), C)),
    ("(metrics.a > 1 or metrics.b > 2) and metrics.c > 3", And(Or(A, B), C)),
    ("metrics.a > 1 and (metrics.b > 2 or metrics.c > 3)", And(A, Or(B, C))),
    ("((metrics.a > 1))", A),
    ("(metrics.a>1)and(metrics.b>2)", And(A, B)),
    ("  metrics.a > 1\n\tand metrics.b > 2  ", And(A, B)),
    (
        "metrics.auc > 0.9 and params.model = 'lgbm'",
        And(metric("auc", ">", 0.9), param("model", "=", "lgbm")),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[text for text, _ in VALID])
def test_valid_filters_parse_to_their_ast(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags.mlflow.runName = 'r1'", attr("name", "=", "r1")),
        ("tags.`mlflow.parentRunId` = 'abc'", attr("parent_run_id", "=", "abc")),
        ("attributes.user_id = 'ann'", attr("user", "=", "ann")),
        ("attribute.created > 5", attr("start_time", ">", 5.0)),
        ("tags.mlflow.user = 'ann'", tag("mlflow.user", "=", "ann")),
        ("datasets.context = 'training'", Comparison("dataset", "context", "=", "training")),
        ("dataset.name IN ('a', 'b')", Comparison("dataset", "name", "IN", ("a", "b"))),
    ],
)
def test_mlflow_spellings_mean_modelloop_attributes(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


def test_dataset_keys_are_checked_and_not_sortable() -> None:
    with pytest.raises(InvalidFilter, match="unknown dataset key 'size'"):
        parse_filter("datasets.size = '1'")
    with pytest.raises(InvalidFilter, match="does not apply to string"):
        parse_filter("datasets.name > 'a'")
    with pytest.raises(InvalidFilter, match="cannot be ordered by their datasets"):
        parse_order_by(["datasets.name"])


def test_experiment_filters_know_experiments_only() -> None:
    from modelloop.tracking.filter import parse_experiment_filter, parse_experiment_order_by

    assert parse_experiment_filter("creation_time > 5 and tags.team = 'x'") == And(
        attr("created_at", ">", 5.0), tag("team", "=", "x")
    )
    assert parse_experiment_order_by(["name DESC"]) == [OrderBy("attribute", "name", True)]
    with pytest.raises(InvalidFilter, match="expected one of tags, attributes"):
        parse_experiment_filter("metrics.auc > 1")
    with pytest.raises(InvalidFilter, match="unknown attribute 'status'"):
        parse_experiment_filter("status = 'RUNNING'")


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_blank_filter_means_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


INVALID: list[tuple[str, list[str]]] = [
    ("metrics.auc > foo", ["expected a number after '>'", "position 15", "found 'foo'"]),
    ("metrcs.auc > 1", ["unknown entity prefix 'metrcs'", "position 1", "metrics, params"]),
    ("metrics.auc 0.9", ["expected an operator after 'metrics.auc'", "position 13", "'0.9'"]),
    ("metrics.auc", ["expected an operator", "position 12", "end of filter"]),
    ("metrics.auc >", ["expected a number after '>'", "position 14", "end of filter"]),
    ("params.x =", ["expected a quoted string after '='", "position 11", "end of filter"]),
    ("params.x = 'abc", ['unterminated string "\'abc"', "position 12"]),
    ('params.x = "abc', ["unterminated string '\"abc'", "position 12"]),
    ("params.x = 'it\\'", ["unterminated string", "position 12"]),
    ("metrics.`my key > 1", ["unterminated quoted key", "position 9"]),
    ("metrics.a > 1 2", ["expected 'and', 'or' or end of filter", "position 15", "found '2'"]),
    ("metrics.a > 1 metrics.b > 2", ["position 15", "found 'metrics.b'"]),
    ("(metrics.a > 1", ["unbalanced '(' at position 1", "expected ')' at position 15"]),
    ("((metrics.a > 1)", ["unbalanced '(' at position 1", "end of filter"]),
    ("metrics.a > 1)", ["unbalanced ')' at position 14"]),
    ("()", ["expected metrics.<key>", "position 2", "found ')'"]),
    ("params.x IN ()", ["empty IN list at position 13"]),
    ("params.x NOT IN ()", ["empty NOT IN list at position 17"]),
    ("params.x IN 'a'", ["expected '(' after 'IN'", "position 13", "\"'a'\""]),
    ("params.x IN ('a',)", ["expected a quoted string after ','", "position 18", "')'"]),
    ("params.x IN ('a' 'b')", ["expected ',' or ')' in the IN list", "position 18"]),
    ("params.x IN ('a', 3)", ["expected a quoted string", "position 19", "'3'"]),
    ("params.x > 3", ["operator '>' at position 10", "string 'params.x'", "LIKE"]),
    ("params.x = 3", ["expected a quoted string after '='", "position 12", "found '3'"]),
    ("tags.t < 'a'", ["operator '<' at position 8", "string 'tags.t'"]),
    ("metrics.auc = 'a'", ["expected a number after '='", "position 15", "\"'a'\""]),
    ("metrics.auc LIKE 'a%'", ["operator 'LIKE' at position 13", "number 'metrics.auc'"]),
    ("metrics.auc IN ('a')", ["operator 'IN' at position 13", "number"]),
    ("start_time = 'yesterday'", ["expected a number after '='", "position 14"]),
    ("name > 'a'", ["operator '>' at position 6", "string 'name'"]),
    ("status = 'DONE'", ["unknown status 'DONE'", "position 10", "RUNNING, FINISHED"]),
    ("status IN ('RUNNING', 'done')", ["unknown status 'done'", "position 23"]),
    ("colour = 'red'", ["unknown attribute 'colour'", "position 1", "run_id, name, status"]),
    ("attributes.foo = 'x'", ["unknown attribute 'foo'", "start_time, end_time"]),
    ("metrics. > 1", ["missing key after 'metrics.'", "position 1"]),
    ("params.x NOT LIKE 'a'", ["expected 'IN' after 'NOT'", "position 14", "'LIKE'"]),
    ("metrics.a > 1 & metrics.b > 1", ["unexpected character '&'", "position 15"]),
    ("metrics.a ! 1", ["unexpected character '!'", "position 11"]),
    ("and metrics.a > 1", ["expected metrics.<key>", "position 1", "found 'and'"]),
    ("metrics.a > 1 and", ["expected metrics.<key>", "position 18", "end of filter"]),
    ("metrics.a > 1 or or metrics.b > 1", ["position 18", "found 'or'"]),
    ("'a' = params.x", ["expected metrics.<key>", "position 1", "\"'a'\""]),
    ("metrics.a > 1e999", ["number '1e999' at position 13 is out of range"]),
]


@pytest.mark.parametrize(("text", "fragments"), INVALID, ids=[text for text, _ in INVALID])
def test_invalid_filters_name_the_token_and_position(text: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidFilter) as raised:
        parse_filter(text)
    message = str(raised.value)
    assert message.startswith(f"Invalid filter {text!r}: ")
    for fragment in fragments:
        assert fragment in message


def test_error_message_matches_the_documented_example() -> None:
    with pytest.raises(InvalidFilter) as raised:
        parse_filter("metrics.auc > foo")
    assert raised.value.message == (
        "Invalid filter 'metrics.auc > foo': "
        "expected a number after '>' at position 15, found 'foo'"
    )
    assert isinstance(raised.value, InvalidArgument)
    assert raised.value.error_code == "INVALID_FILTER"


def test_over_long_filter_is_rejected_without_quoting_all_of_it() -> None:
    text = " and ".join(["metrics.a > 1"] * 300)
    assert len(text) > 4096
    with pytest.raises(InvalidFilter, match="expected at most 4096") as raised:
        parse_filter(text)
    assert len(raised.value.message) < 200


def test_filter_at_the_length_limit_parses() -> None:
    text = " or ".join(["metrics.a > 1"] * 240)
    assert len(text) <= 4096
    expr = parse_filter(text)
    depth = 0
    while isinstance(expr, Or):
        expr, depth = expr.left, depth + 1
    assert expr == A
    assert depth == 239


def test_deep_nesting_is_an_invalid_filter_not_a_recursion_error() -> None:
    assert parse_filter("(" * 50 + "metrics.a > 1" + ")" * 50) == A
    with pytest.raises(InvalidFilter, match="nested too deeply"):
        parse_filter("(" * 2000 + "metrics.a > 1" + ")" * 2000)


def test_ast_nodes_are_frozen() -> None:
    node = metric("a", ">", 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.key = "b"  # type: ignore[misc]
    assert {node, metric("a", ">", 1.0)} == {node}


def test_attribute_types() -> None:
    numbers = {name for name, kind in ATTRIBUTES.items() if kind == "number"}
    assert numbers == {"start_time", "end_time"}
    assert {"run_id", "name", "status", "user", "experiment_id", "parent_run_id"} <= set(ATTRIBUTES)


VALID_ORDER_BY: list[tuple[str, OrderBy]] = [
    ("metrics.auc DESC", OrderBy("metric", "auc", True)),
    ("metrics.auc desc", OrderBy("metric", "auc", True)),
    ("metrics.auc", OrderBy("metric", "auc", False)),
    ("params.model ASC", OrderBy("param", "model", False)),
    ("tags.team asc", OrderBy("tag", "team", False)),
    ("start_time", OrderBy("attribute", "start_time", False)),
    ("attributes.end_time DESC", OrderBy("attribute", "end_time", True)),
    ("run_name", OrderBy("attribute", "name", False)),
    ("metrics.`my key` desc", OrderBy("metric", "my key", True)),
    ('params."my key"', OrderBy("param", "my key", False)),
    ("  metrics.auc   DESC  ", OrderBy("metric", "auc", True)),
]


@pytest.mark.parametrize(("item", "expected"), VALID_ORDER_BY, ids=[i for i, _ in VALID_ORDER_BY])
def test_valid_order_by_items(item: str, expected: OrderBy) -> None:
    assert parse_order_by([item]) == [expected]


def test_order_by_keeps_item_order() -> None:
    assert parse_order_by(["metrics.auc DESC", "start_time"]) == [
        OrderBy("metric", "auc", True),
        OrderBy("attribute", "start_time", False),
    ]


@pytest.mark.parametrize("items", [None, [], ()])
def test_no_order_by(items: list[str] | None) -> None:
    assert parse_order_by(items) == []


def test_a_single_string_is_one_order_by_item() -> None:
    assert parse_order_by("metrics.auc DESC") == [OrderBy("metric", "auc", True)]


INVALID_ORDER_BY: list[tuple[str, list[str]]] = [
    ("metrics.auc DOWN", ["expected ASC, DESC", "position 13", "found 'DOWN'"]),
    ("metrics.auc DESC ASC", ["position 18", "found 'ASC'"]),
    ("", ["expected metrics.<key>", "position 1", "end of order_by item"]),
    ("DESC", ["unknown attribute 'DESC'"]),
    ("metrcs.auc", ["unknown entity prefix 'metrcs'"]),
    ("colour", ["unknown attribute 'colour'", "run_id"]),
    ("metrics.`auc", ["unterminated quoted key", "position 9"]),
    ("metrics.auc > 1", ["position 13", "found '>'"]),
]


@pytest.mark.parametrize(
    ("item", "fragments"), INVALID_ORDER_BY, ids=[i for i, _ in INVALID_ORDER_BY]
)
def test_invalid_order_by_items_are_named(item: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidFilter) as raised:
        parse_order_by(["metrics.auc", item])
    message = str(raised.value)
    assert message.startswith(f"Invalid order_by item {item!r}: ")
    for fragment in fragments:
        assert fragment in message
