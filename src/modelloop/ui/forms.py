"""Forms posted by the UI's own pages: where they may come from (``same_origin``), their fields
(``read_form``), and where they may send the browser next (``local_target``)."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request


def local_target(target: str) -> str:
    """Only a page of this UI: never an absolute or scheme-relative URL (open redirect)."""
    if target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def same_origin(request: Request) -> bool:
    """The form was posted by a page of this UI: its ``Origin`` is this very scheme, host and
    port, or (no ``Origin``) the browser says ``Sec-Fetch-Site: same-origin``. Every browser
    sends one of them on a POST; one that sends neither is refused, since on a token-less
    server (or with the login cookie) a page on any site could post the form. A program
    that presents its own ``Authorization`` header is no cross-site form: a browser never adds
    one to another site's request."""
    origin = request.headers.get("origin")
    if origin is None:
        fetch_site = request.headers.get("sec-fetch-site", "").lower()
        return fetch_site == "same-origin" or "authorization" in request.headers
    here = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.strip().lower() == here.lower()


def read_form(body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for pair in body.decode("utf-8", "replace").split("&"):
        name, _, value = pair.partition("=")
        fields[unquote(name.replace("+", " "))] = unquote(value.replace("+", " "))
    return fields
