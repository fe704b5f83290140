"""MLflow's registry search language over registry entities: filter, order, page.

MLflow's registry filters are conjunctions of comparisons (no ``OR``, no parentheses)::

    filter     := comparison ("AND" comparison)*
    comparison := field operator value
    field      := name | tags.<key> | tags.`<key>` | <attribute>
    operator   := = | == | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
    value      := 'string' | "string" | number | "(" string ("," string)* ")"

Which attributes there are, and which compare as numbers, is the caller's (a registered model
has ``name`` and timestamps, a version also ``version_number``, ``run_id``, ``source_path``...).
A registry is human-sized (models and versions, not metrics), so matching happens here, over
the entities the store lists; page tokens are offsets into the ordered result, bound to the
query that issued them (:mod:`.requests`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from modelloop.errors import InvalidArgument
from modelloop.server.mlflow.requests import page_offset
from modelloop.server.mlflow.requests import page_token as page_token_for

T = TypeVar("T")
Value = str | int
Getter = Callable[[T], Value]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<backticked>(?:tags?\.)?`[^`]*`)"
    r"|(?P<number>[+-]?\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|<=|>=|=|<|>)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*))"
)
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN")
MAX_FILTER_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Fields(Generic[T]):
    """What a search may name: attributes (numeric ones listed) and the entity's tags."""

    attributes: Mapping[str, Getter[T]]
    numeric: frozenset[str]
    tags: Callable[[T], Mapping[str, str]]
    default_order: tuple[str, ...]  # "field [ASC|DESC]" items, also the tie-breakers


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class _Comparison:
    field: str  # an attribute, or "tags.<key>"
    op: str
    value: Value | tuple[Value, ...]


def search(
    items: Sequence[T],
    fields: Fields[T],
    what: str,
    filter_string: str | None,
    order_by: Sequence[str],
    max_results: int,
    page_token: str | None,
) -> Page[T]:
    """The page of ``items`` matching the filter, in order, from the token's offset."""
    conditions = parse_filter(filter_string, fields, what)
    matching = [i for i in items if all(_matches(i, c, fields) for c in conditions)]
    for field, descending in reversed(_order(order_by, fields, what)):
        matching.sort(key=_sort_key(field, fields), reverse=descending)
    query = (what, filter_string, list(order_by))
    start = page_offset(page_token, query)
    end = start + max_results
    return Page(matching[start:end], page_token_for(end, query) if end < len(matching) else None)


def parse_filter(text: str | None, fields: Fields[T], what: str) -> list[_Comparison]:
    if text is None or not text.strip():
        return []
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgument(
            f"Invalid {what} filter: {len(text)} characters, at most {MAX_FILTER_LENGTH}"
        )
    tokens = _tokens(text, what)
    conditions = []
    position = 0

    def fail(message: str) -> InvalidArgument:
        return InvalidArgument(f"Invalid {what} filter {text!r}: {message}")

    def take() -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise fail("it ends too early")
        position += 1
        return tokens[position - 1]

    while True:
        kind, word = take()
        field = _field(kind, word, fields, fail)
        kind, op = take()
        op = op.upper()
        if kind == "word" and op == "NOT":
            if take()[1].upper() != "IN":
                raise fail("expected IN after NOT")
            op = "NOT IN"
        elif op == "==":
            op = "="
        numeric = field in fields.numeric
        allowed = _NUMBER_OPS if numeric else _STRING_OPS
        if op not in allowed:
            raise fail(f"{op!r} does not apply to {field!r}: use one of {', '.join(allowed)}")
        if op in ("IN", "NOT IN"):
            if take()[1] != "(":
                raise fail(f"expected '(' after {op}")
            values: list[Value] = []
            while True:
                values.append(_value(take(), numeric, field, fail))
                separator = take()[1]
                if separator == ")":
                    break
                if separator != ",":
                    raise fail(f"expected ',' or ')' in the {op} list")
            conditions.append(_Comparison(field, op, tuple(values)))
        else:
            conditions.append(_Comparison(field, op, _value(take(), numeric, field, fail)))
        if position == len(tokens):
            return conditions
        kind, word = take()
        if kind != "word" or word.upper() != "AND":
            raise fail(f"expected AND, found {word!r} (MLflow's registry search has no OR)")


def _tokens(text: str, what: str) -> list[tuple[str, str]]:
    found = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise InvalidArgument(
                f"Invalid {what} filter {text!r}: unexpected {text[at:].strip()[:20]!r}"
            )
        kind = match.lastgroup or ""
        found.append((kind, match[kind]))
        at = match.end()
    return found


def _field(kind: str, word: str, fields: Fields[T], fail: Callable[[str], InvalidArgument]) -> str:
    prefix, dot, key = word.partition(".")
    if dot and prefix.lower() in ("tag", "tags") and key.strip("`"):
        return "tags." + (key[1:-1] if kind == "backticked" else key)
    if kind == "backticked":
        word = word[1:-1]
    elif kind != "word":
        raise fail(f"expected a field, found {word!r}")
    name = word.lower().removeprefix("attributes.").removeprefix("attribute.")
    if name not in fields.attributes:
        names = ", ".join([*fields.attributes, "tags.<key>"])
        raise fail(f"unknown field {word!r}: expected one of {names}")
    return name


def _value(
    token: tuple[str, str], numeric: bool, field: str, fail: Callable[[str], InvalidArgument]
) -> Value:
    kind, text = token
    if numeric:
        if kind == "number" and re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if kind == "string" and re.fullmatch(r"[+-]?\d+", text[1:-1]):
            return int(text[1:-1])
        raise fail(f"{field!r} compares with an integer, not {text!r}")
    if kind != "string":
        raise fail(f"{field!r} compares with a quoted string, not {text!r}")
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _get(item: T, field: str, fields: Fields[T]) -> Value | None:
    if field.startswith("tags."):
        return fields.tags(item).get(field[5:])
    return fields.attributes[field](item)


def _matches(item: T, condition: _Comparison, fields: Fields[T]) -> bool:
    actual = _get(item, condition.field, fields)
    wanted = condition.value
    op = condition.op
    if actual is None:  # a missing tag differs from every value
        return op in ("!=", "NOT IN")
    if op == "IN":
        return isinstance(wanted, tuple) and actual in wanted
    if op == "NOT IN":
        return isinstance(wanted, tuple) and actual not in wanted
    if op in ("LIKE", "ILIKE"):
        flags = re.IGNORECASE if op == "ILIKE" else 0
        return re.fullmatch(_like(str(wanted)), str(actual), flags | re.DOTALL) is not None
    if op == "=":
        return actual == wanted
    if op == "!=":
        return actual != wanted
    if not isinstance(actual, int) or not isinstance(wanted, int):
        return False
    return {
        "<": actual < wanted,
        "<=": actual <= wanted,
        ">": actual > wanted,
        ">=": actual >= wanted,
    }[op]


def _like(pattern: str) -> str:
    return "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)


def _order(order_by: Sequence[str], fields: Fields[T], what: str) -> list[tuple[str, bool]]:
    result: list[tuple[str, bool]] = []
    for item in [*order_by, *fields.default_order]:
        words = item.split()
        if not 1 <= len(words) <= 2 or (
            len(words) == 2 and words[1].upper() not in ("ASC", "DESC")
        ):
            raise InvalidArgument(
                f"Invalid {what} order_by item {item!r}: expected 'FIELD [ASC|DESC]'"
            )
        field = words[0].lower()
        field = {"timestamp": "last_updated_timestamp"}.get(field, field)
        if field not in fields.attributes:
            names = ", ".join(fields.attributes)
            raise InvalidArgument(f"Invalid {what} order_by item {item!r}: order by one of {names}")
        if field not in (f for f, _ in result):
            result.append((field, len(words) == 2 and words[1].upper() == "DESC"))
    return result


def _sort_key(field: str, fields: Fields[T]) -> Callable[[T], Value]:
    getter = fields.attributes[field]
    return lambda item: getter(item)
