"""Which ``Host`` names the REST server, the web UI and serving answer to (DNS rebinding).

A page on a rebinding domain (``evil.example`` resolving first to the attacker, then to
127.0.0.1) is same-origin with itself, so without this check it could read and change
everything on a token-less loopback server. The browser still sends ``Host: evil.example``,
so a server that answers only to the names it is known by defeats it.

The rule (:class:`AllowedHosts`):

- loopback names are always allowed, with any port: ``localhost``, ``127.0.0.1`` (any
  127.0.0.0/8 address, so whatever loopback address the server binds) and ``::1``;
- ``MODELLOOP_ALLOWED_HOSTS`` adds names (``host`` for any port, ``host:port`` for one), or
  ``*`` for any;
- a server that requires a token (``MODELLOOP_TOKEN`` or users) and has no such list answers
  to any name: that is the only way a server bound to ``0.0.0.0`` can accept the addresses
  users type (the machine's own are unknowable), and a rebinding page has no token to send
  (the login cookie is bound to the real host name). A server beyond loopback always requires
  a token, so a token-less one only answers to loopback names and the list.

A request naming another host is refused with 400 before auth or body parsing. A request with
no ``Host`` at all (HTTP/1.0 probes) passes: every browser sends one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from modelloop.errors import InvalidArgument
from modelloop.web.responses import error_response

ALLOWED_HOSTS_ENV = "MODELLOOP_ALLOWED_HOSTS"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def split_host(value: str) -> tuple[str, str]:
    """``(name, port)`` of a ``Host`` header, the name lower-case without brackets or a
    trailing dot; ``port`` is ``""`` when absent."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8080
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else ""
    name, colon, port = value.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name.rstrip("."), port
    return value.rstrip("."), ""


class AllowedHosts:
    """The names a server answers to: loopback, ``extra`` (``host`` or ``host:port``, ``*``
    for any), and any at all when ``token_required`` and ``extra`` is empty."""

    def __init__(self, extra: Iterable[str], *, token_required: bool) -> None:
        self.extra = tuple(h.strip() for h in extra if h.strip())
        self.any = "*" in self.extra or (token_required and not self.extra)
        self._names = {split_host(h) for h in self.extra if h != "*"}

    def allows(self, host: str) -> bool:
        if self.any:
            return True
        name, port = split_host(host)
        return is_loopback(name) or (name, "") in self._names or (name, port) in self._names


class HostCheck:
    """Refuses a request whose ``Host`` the :class:`AllowedHosts` do not allow (400)."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allowed.any:
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == b"host"), None)
        host = None if raw is None else raw.decode("latin-1")
        if host is None or self.allowed.allows(host):
            await self.app(scope, receive, send)
            return
        name, _ = split_host(host)
        message = (
            f"Host {host!r} is not allowed: this server answers to localhost, 127.0.0.1 and ::1"
            + (f" and {', '.join(self.allowed.extra)}" if self.allowed.extra else "")
            + f". To reach it by another name, set {ALLOWED_HOSTS_ENV}={name} "
            "(comma-separated names, host:port for one port, or * for any) and restart it"
        )
        close = {"Connection": "close"}
        response = error_response(
            400, InvalidArgument.error_code, message, close, path=scope["path"]
        )
        await response(scope, receive, send)
