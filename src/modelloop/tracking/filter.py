"""The run-search filter language: ``metrics.auc > 0.9 and params.model = 'lgbm'``.

``parse_filter`` returns an AST (``Comparison`` leaves under ``And`` / ``Or``) that each store
compiles to its own query language. Mistakes raise ``InvalidFilter`` naming the offending token,
its 1-based position and what was expected there.

Grammar (keywords case-insensitive, ``and`` binds tighter than ``or``, both left-associative)::

    filter     := and_expr ("or" and_expr)*
    and_expr   := primary ("and" primary)*
    primary    := "(" filter ")" | identifier operator value
    identifier := (metrics|params|tags|attributes|datasets) "." key | attribute
    key        := [A-Za-z0-9_-./:]+ | `any text` | "any text"
    operator   := = | == | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
    value      := number | 'string' | "string" | "(" string ("," string)* ")"

MLflow's spellings are understood, so that its clients' filters mean the same here: the
attributes ``run_name``, ``user_id`` and ``created``, the tags ``mlflow.runName`` and
``mlflow.parentRunId`` (the run's name and parent), and ``datasets.name``, ``datasets.digest``
and ``datasets.context`` (a run that took such a dataset as input; strings only, not for
ordering). ``parse_experiment_filter`` reads the same language over experiments: ``name``,
``experiment_id``, ``created_at`` (``creation_time``), ``updated_at`` (``last_update_time``) and
``tags.<key>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from modelloop.errors import InvalidFilter

Entity = Literal["metric", "param", "tag", "attribute", "dataset"]
# What a dataset comparison names: a run's input dataset by name or digest, or its context
# (the ``mlflow.data.context`` tag of the input, e.g. "training").
DATASET_KEYS = ("name", "digest", "context")

ATTRIBUTES: dict[str, Literal["string", "number"]] = {
    **dict.fromkeys(
        ("run_id", "name", "status", "user", "experiment_id", "parent_run_id"), "string"
    ),
    **dict.fromkeys(("start_time", "end_time"), "number"),  # milliseconds since the epoch
}
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
MAX_FILTER_LENGTH = 4096

# metrics./metric., params./param., tags./tag., attributes./attribute./attr.
_PREFIXES: dict[str, Entity] = {f"{e}{s}": e for e in get_args(Entity) for s in ("", "s")}
_PREFIXES["attr"] = "attribute"
# MLflow's names for the same attributes: its clients write them.
_ATTRIBUTE_ALIASES = {"run_name": "name", "user_id": "user", "created": "start_time"}
_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_KEYWORDS = frozenset({"and", "or", "not", "in", "like", "ilike"})
_MAX_DEPTH = 100  # nested parentheses, far below Python's recursion limit
_TOKEN = re.compile(
    r"(?P<word>[A-Za-z_][A-Za-z0-9_\-./:]*)"
    r"|(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<op>==|!=|<=|>=|=|<|>)|(?P<punct>[(),])|(?P<string>['\"])"
)
_QUOTED = {q: re.compile(rf"{q}((?:\\.|[^\\{q}])*){q}", re.DOTALL) for q in "'\"`"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Comparison:
    """``<entity>.<key> <op> <value>``; ``op`` upper-case, ``==`` normalised to ``=``.

    ``value`` is a ``float`` for metrics and time attributes, a ``str`` for the rest (``status``
    upper-cased and checked against ``STATUSES``) and a tuple of ``str`` for ``IN`` / ``NOT IN``.
    """

    entity: Entity
    key: str
    op: str
    value: float | str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr


Expr = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderBy:
    entity: Entity
    key: str
    descending: bool


@dataclass(frozen=True, slots=True)
class _Grammar:
    """What a filter may name: entity prefixes and attributes (with their aliases)."""

    prefixes: dict[str, Entity]
    attributes: dict[str, Literal["string", "number"]]
    aliases: dict[str, str]
    tag_attributes: dict[str, str]  # tags that are attributes under another name


# MLflow keeps a run's name and parent in the tags mlflow.runName and mlflow.parentRunId;
# modelloop keeps them as attributes, so a filter naming those tags means the attributes.
_RUNS = _Grammar(
    _PREFIXES,
    ATTRIBUTES,
    _ATTRIBUTE_ALIASES,
    {"mlflow.runName": "name", "mlflow.parentRunId": "parent_run_id"},
)
# Experiments: their tags and attributes (MLflow calls created_at creation_time).
EXPERIMENT_ATTRIBUTES: dict[str, Literal["string", "number"]] = {
    "name": "string",
    "experiment_id": "string",
    "created_at": "number",
    "updated_at": "number",
}
_EXPERIMENTS = _Grammar(
    {p: e for p, e in _PREFIXES.items() if e in ("tag", "attribute")},
    EXPERIMENT_ATTRIBUTES,
    {"creation_time": "created_at", "last_update_time": "updated_at"},
    {},
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, number, op, string, "(", ")", "," or end
    text: str  # as written
    pos: int  # 1-based
    value: str  # unquoted and unescaped


class _Parser:
    """Recursive descent with one token of lookahead over a lazily tokenized text."""

    def __init__(self, text: str, what: str, grammar: _Grammar = _RUNS) -> None:
        self.text, self.what, self.depth, self.grammar = text, what, 0, grammar
        self._tokens = self._lex()
        self.tok = next(self._tokens)

    def error(self, message: str) -> InvalidFilter:
        return InvalidFilter(f"Invalid {self.what} {self.text!r}: {message}")

    def expected(self, what: str, why: str = "") -> InvalidFilter:
        found = f"end of {self.what}" if self.tok.kind == "end" else repr(self.tok.text)
        return self.error(f"{why}expected {what} at position {self.tok.pos}, found {found}")

    def unknown(self, what: str, tok: _Token, name: str, choices: Iterable[str]) -> InvalidFilter:
        expected = ", ".join(choices)
        return self.error(
            f"unknown {what} {name!r} at position {tok.pos}: expected one of {expected}"
        )

    def advance(self) -> _Token:
        tok, self.tok = self.tok, next(self._tokens)
        return tok

    def keyword(self, word: str) -> bool:
        if self.tok.kind == "word" and self.tok.value.lower() == word:
            self.advance()
            return True
        return False

    def _lex(self) -> Iterator[_Token]:
        text, i = self.text, 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i == len(text):
                break
            match = _TOKEN.match(text, i)
            if match is None:
                raise self.error(f"unexpected character {text[i]!r} at position {i + 1}")
            kind, value, end = match.lastgroup or "", match.group(), match.end()
            if kind == "string":
                value, end = self._quoted(i, "string")
            elif kind == "word" and value.endswith(".") and text[end : end + 1] in ("`", '"'):
                key, end = self._quoted(end, "quoted key")
                value += key
            elif kind == "punct":
                kind = value
            yield _Token(kind, text[i:end], i + 1, value)
            i = end
        while True:
            yield _Token("end", "", len(text) + 1, "")

    def _quoted(self, start: int, what: str) -> tuple[str, int]:
        """Read the quoted text at ``start``; a backslash escapes the quote or a backslash."""
        quote, match = self.text[start], _QUOTED[self.text[start]].match(self.text, start)
        if match is None:
            raise self.error(
                f"unterminated {what} {self.text[start:]!r} at position {start + 1}: "
                f"expected a closing {quote!r}"
            )
        body = _ESCAPE.sub(lambda m: m[1] if m[1] in (quote, "\\") else m[0], match[1])
        return body, match.end()

    def or_expr(self) -> Expr:
        left = self.and_expr()
        while self.keyword("or"):
            left = Or(left, self.and_expr())
        return left

    def and_expr(self) -> Expr:
        left = self.primary()
        while self.keyword("and"):
            left = And(left, self.primary())
        return left

    def primary(self) -> Expr:
        if self.tok.kind != "(":
            return self.comparison()
        opening = self.advance()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(f"parentheses nested too deeply at position {opening.pos}")
        expr = self.or_expr()
        if self.tok.kind != ")":
            raise self.expected("')'", f"unbalanced '(' at position {opening.pos}: ")
        self.advance()
        self.depth -= 1
        return expr

    def identifier(self) -> tuple[Entity, str]:
        tok = self.tok
        entities = [f"{e}s" for e in get_args(Entity) if e in self.grammar.prefixes.values()]
        if tok.kind != "word" or tok.value.lower() in _KEYWORDS:
            keyed = ", ".join(f"{e}.<key>" for e in entities if e != "attributes")
            raise self.expected(f"{keyed} or an attribute")
        self.advance()
        prefix, dot, key = tok.value.partition(".")
        if not dot:
            prefix, key = "attributes", prefix
        entity = self.grammar.prefixes.get(prefix.lower())
        if entity is None:
            raise self.unknown("entity prefix", tok, prefix, entities)
        if not key:
            raise self.error(f"missing key after {tok.text!r} at position {tok.pos}")
        if entity == "dataset" and key not in DATASET_KEYS:
            raise self.unknown("dataset key", tok, key, DATASET_KEYS)
        if entity == "tag" and key in self.grammar.tag_attributes:
            entity, key = "attribute", self.grammar.tag_attributes[key]
        if entity == "attribute":
            name, key = key, self.grammar.aliases.get(key.lower(), key.lower())
            if key not in self.grammar.attributes:
                raise self.unknown("attribute", tok, name, self.grammar.attributes)
        return entity, key

    def operator(self, after: _Token) -> str:
        word = self.tok.value.upper() if self.tok.kind in ("op", "word") else ""
        if word not in (*_NUMBER_OPS, "==", "LIKE", "ILIKE", "IN", "NOT"):
            raise self.expected(f"an operator after {after.text!r}")
        self.advance()
        if word == "NOT" and not self.keyword("in"):
            raise self.expected("'IN' after 'NOT'")
        return {"==": "=", "NOT": "NOT IN"}.get(word, word)

    def comparison(self) -> Comparison:
        ident = self.tok
        entity, key = self.identifier()
        numeric = entity == "metric" or (
            entity == "attribute" and self.grammar.attributes[key] == "number"
        )
        op_tok = self.tok
        op = self.operator(ident)
        allowed = _NUMBER_OPS if numeric else _STRING_OPS
        if op not in allowed:
            raise self.error(
                f"operator {op!r} at position {op_tok.pos} does not apply to "
                f"{'number' if numeric else 'string'} {ident.text!r}: "
                f"expected one of {', '.join(allowed)}"
            )
        status = entity == "attribute" and key == "status" and op not in ("LIKE", "ILIKE")
        if op in ("IN", "NOT IN"):
            return Comparison(entity, key, op, self.string_list(op, status))
        if numeric:
            return Comparison(entity, key, op, self.number(op_tok.text))
        return Comparison(entity, key, op, self.string(op_tok.text, status))

    def number(self, after: str) -> float:
        if self.tok.kind != "number":
            raise self.expected(f"a number after {after!r}")
        tok = self.advance()
        value = float(tok.text)
        if not math.isfinite(value):
            raise self.error(f"number {tok.text!r} at position {tok.pos} is out of range")
        return value

    def string(self, after: str, status: bool) -> str:
        if self.tok.kind != "string":
            raise self.expected(f"a quoted string after {after!r}")
        tok = self.advance()
        if status and tok.value.upper() not in STATUSES:
            raise self.unknown("status", tok, tok.value, STATUSES)
        return tok.value.upper() if status else tok.value

    def string_list(self, op: str, status: bool) -> tuple[str, ...]:
        if self.tok.kind != "(":
            raise self.expected(f"'(' after {op!r}")
        opening = self.advance()
        if self.tok.kind == ")":
            raise self.error(f"empty {op} list at position {opening.pos}: expected a string")
        values = [self.string("(", status)]
        while self.tok.kind == ",":
            values.append(self.string(self.advance().text, status))
        if self.tok.kind != ")":
            raise self.expected(f"',' or ')' in the {op} list")
        self.advance()
        return tuple(values)


def parse_filter(text: str | None) -> Expr | None:
    """Parse a run-search filter; ``None`` for ``None`` or a blank filter."""
    return _parse(text, _RUNS)


def parse_experiment_filter(text: str | None) -> Expr | None:
    """Parse an experiment-search filter (``name LIKE 'fraud%' and tags.team = 'risk'``)."""
    return _parse(text, _EXPERIMENTS)


def _parse(text: str | None, grammar: _Grammar) -> Expr | None:
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(
            f"Invalid filter {text[:40]!r}...: {len(text)} characters long, "
            f"expected at most {MAX_FILTER_LENGTH}"
        )
    parser = _Parser(text, "filter", grammar)
    expr = parser.or_expr()
    if parser.tok.kind == ")":
        raise parser.error(f"unbalanced ')' at position {parser.tok.pos}")
    if parser.tok.kind != "end":
        raise parser.expected("'and', 'or' or end of filter")
    return expr


def parse_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """Parse ``order_by`` items such as ``"metrics.auc DESC"``; ascending unless ``DESC``."""
    return _parse_order_by(items, _RUNS)


def parse_experiment_order_by(items: Sequence[str] | None) -> list[OrderBy]:
    """Parse experiment ``order_by`` items such as ``"name"`` or ``"creation_time DESC"``."""
    return _parse_order_by(items, _EXPERIMENTS)


def _parse_order_by(items: Sequence[str] | None, grammar: _Grammar) -> list[OrderBy]:
    if isinstance(items, str):  # one item, not a sequence of one-character items
        items = [items]
    result = []
    for item in items or ():
        parser = _Parser(item, "order_by item", grammar)
        entity, key = parser.identifier()
        if entity == "dataset":
            raise parser.error("runs cannot be ordered by their datasets")
        descending = False
        if parser.tok.kind == "word" and parser.tok.value.upper() in ("ASC", "DESC"):
            descending = parser.advance().value.upper() == "DESC"
        if parser.tok.kind != "end":
            raise parser.expected("ASC, DESC or end of order_by item")
        result.append(OrderBy(entity, key, descending))
    return result
