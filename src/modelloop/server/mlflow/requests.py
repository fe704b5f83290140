"""Reading MLflow's requests: the fields of a JSON body or a query string with MLflow's rules
(proto3 JSON may send an int64 as a string, a GET sends everything as strings), and opaque page
tokens (an offset bound to the query that issued it, refused for any other query)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelloop.errors import InvalidArgument
from modelloop.store import Database, WouldWait, first_write_without_waiting
from modelloop.web.responses import OrjsonResponse

Handler = Callable[["Params", Request], Any]


def endpoint(
    method: str, handler: Handler, *, quick_write: Database | None = None
) -> Callable[[Request], Any]:
    """An async route that reads the request, then runs ``handler`` in the thread pool (stores
    block) and answers its result as JSON. Added as a plain Starlette route: FastAPI's
    per-request dependency solving cost more than a ``log-metric`` handler's own work.

    With ``quick_write`` (a SQLite database: local, no network round trips), a handler whose
    work is one short write runs on the event loop when no other writer holds the lock, and in
    the thread pool only when its write would wait: handing a sub-millisecond write to a thread
    and back costs more than the write."""

    async def route(request: Request) -> Response:
        if method == "GET":
            params = Params({k: _one_or_all(request, k) for k in request.query_params}, True)
        else:
            params = Params(await _json_body(request), False)
        if quick_write is not None:
            try:
                with first_write_without_waiting():
                    return OrjsonResponse(handler(params, request))
            except WouldWait:
                pass  # nothing was written: do it where waiting is fine
        return OrjsonResponse(await run_in_threadpool(handler, params, request))

    return route


def _one_or_all(request: Request, key: str) -> object:
    values = request.query_params.getlist(key)
    return values[0] if len(values) == 1 else values


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"The request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("The request body must be a JSON object")
    return body


class Params:
    """One request's fields, read with MLflow's rules: proto3 JSON may send an int64 as a
    string, and a GET sends everything as strings."""

    def __init__(self, values: Mapping[str, Any], from_query: bool) -> None:
        self.values = values
        self.from_query = from_query

    def missing(self, name: str) -> InvalidArgument:
        return InvalidArgument(f"Missing value for required parameter '{name}'")

    def wrong(self, name: str, expected: str) -> InvalidArgument:
        value = self.values.get(name)
        return InvalidArgument(
            f"Invalid value {value!r} for parameter '{name}' supplied: expected {expected}"
        )

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None or (value == "" and required):
            if required:
                raise self.missing(name)
            return default
        if not isinstance(value, str):
            raise self.wrong(name, "a string")
        return value

    def required(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str, *, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(name, "an integer")
        return value

    def strings(self, name: str) -> list[str]:
        value = self.values.get(name, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.wrong(name, "a list of strings")
        return value

    def objects(self, name: str) -> list[dict[str, Any]]:
        value = self.values.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.wrong(name, "a list of objects")
        return value

    def run_id(self) -> str:
        run_id = self.values.get("run_id") or self.values.get("run_uuid")
        if run_id is None:
            raise self.missing("run_id")
        if not isinstance(run_id, str):
            raise self.wrong("run_id", "a string")
        return run_id


def _fingerprint(query: object) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def page_token(offset: int, query: object) -> str:
    """Opaque to the caller: the next offset, bound to the query that issued it."""
    raw = json.dumps({"offset": offset, "query": _fingerprint(query)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def page_offset(token: str | None, query: object) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        data = None
    if (
        not isinstance(data, dict)
        or isinstance(data.get("offset"), bool)
        or not isinstance(data.get("offset"), int)
        or data["offset"] < 0
    ):
        raise InvalidArgument(f"Invalid page_token {token[:64]!r}: not one this server issued")
    if data.get("query") != _fingerprint(query):
        raise InvalidArgument(
            "Invalid page_token: it was issued for another query (filter, order, view or "
            "experiments differ); ask for the first page again"
        )
    return int(data["offset"])
