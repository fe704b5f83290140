"""Delivering monitoring alerts to webhooks without turning the server into an SSRF proxy.

A webhook URL comes from a user's monitor config, yet the server POSTs to it: unchecked, it would
reach what only the server can reach (loopback services, the private network, the cloud metadata
endpoint at 169.254.169.254), as in MLflow's CVE-2023-6974. So:

- ``check_webhook_url`` validates the URL at config time without resolving it (DNS answers change;
  the decisive check is at delivery): http(s), a host, no credentials, no forbidden IP literal.
- ``deliver`` resolves the host, refuses it if *any* address is loopback, link-local, private,
  unspecified, multicast, reserved or otherwise not global (IPv4-mapped IPv6 included), then
  connects to that checked address itself: a second resolution (DNS rebinding) never happens. The
  request keeps ``Host`` on the original name, and for https the TLS SNI *and* the certificate
  check use the original hostname (httpcore's ``sni_hostname`` extension), so pinning is exact
  for https too. Keep-alive is off (a pooled connection is keyed by IP and would keep the SNI of
  another name) and proxies are never used (a proxy would resolve the name again).
- Requests go through a bare ``httpx.HTTPTransport`` (no Client: no redirect logic, no proxy or
  ``.netrc`` from the environment), so redirects are ours. 307/308 keep the method and body: they
  are followed by hand, up to ``max_redirects``, each ``Location`` checked like the first URL. 303
  means the POST was handled and the answer is elsewhere: delivered. 301/302 would turn the POST
  into a body-less GET: not followed, reported as failed so the owner updates the URL.
- Connection errors, timeouts, 429 and 5xx are retried with a short backoff; 4xx and refused
  targets are not. Delivery is at least once: a retried timeout may deliver twice.
- Nothing raises for a failed delivery: the ``Delivery`` says what happened, so an alert is stored
  even when its webhook is down or forbidden. Failures are logged at warning.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from modelloop._version import __version__
from modelloop.errors import InvalidArgument

log = logging.getLogger("modelloop.monitoring.webhooks")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_BACKOFF = (0.2, 0.5)
_HOW_TO_ALLOW = (
    "the server's operator can allow a private network with MODELLOOP_WEBHOOK_ALLOWED_NETWORKS "
    "(e.g. 10.0.0.0/8)"
)


@dataclass(frozen=True)
class Delivery:
    """What became of one alert's webhook call; ``error`` is None when ``ok``."""

    url: str
    ok: bool
    status: int | None
    attempts: int
    error: str | None = None


class _Refused(Exception):
    """The target is forbidden: never connected to, never retried."""


def parse_networks(texts: Sequence[str]) -> list[Network]:
    """``MODELLOOP_WEBHOOK_ALLOWED_NETWORKS`` entries (CIDR) as networks, or InvalidArgument."""
    networks: list[Network] = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as exc:
            raise InvalidArgument(f"MODELLOOP_WEBHOOK_ALLOWED_NETWORKS: {exc}") from None
    return networks


def check_webhook_url(
    url: str, *, allow_private: bool = False, allowed_networks: Sequence[Network] = ()
) -> str:
    """The normalized ``url``, or ``InvalidArgument`` saying what is wrong; no DNS lookup."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidArgument(f"Invalid webhook URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidArgument(
            f"Invalid webhook URL {url!r}: the scheme must be http or https, "
            f"not {parsed.scheme or 'missing'!r}"
        )
    if not parsed.host:
        raise InvalidArgument(f"Invalid webhook URL {url!r}: no host, expected http(s)://host/path")
    if parsed.userinfo:
        raise InvalidArgument(
            f"Invalid webhook URL {url!r}: credentials (user:password@) are not allowed in it; "
            "put a secret token in the path or query instead"
        )
    literal = _literal(parsed.host)  # a name is checked once resolved, at delivery
    if literal is not None and not allow_private:
        reason = _forbidden(literal, allowed_networks)
        if reason:
            raise InvalidArgument(
                f"Refused webhook URL {url!r}: {literal} is a {reason} address, not reachable "
                f"from outside; {_HOW_TO_ALLOW}"
            )
    return str(parsed)


def deliver(
    url: str,
    payload: Mapping[str, Any],
    *,
    allow_private: bool = False,
    allowed_networks: Sequence[Network] = (),
    timeout: float = 5.0,
    max_redirects: int = 3,
    attempts: int = 3,
) -> Delivery:
    """POST ``payload`` as JSON to ``url``; the outcome, never an exception for a failed call.

    ``allowed_networks`` are permitted even if private (e.g. an internal relay's subnet), without
    opening every private address as ``allow_private`` does.
    """
    body = orjson.dumps(payload)
    policy = (allow_private, allowed_networks)
    tries = max(attempts, 1)
    made, status, error = 0, None, None
    with httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0)) as transport:
        for made in range(1, tries + 1):
            status, error, retry = _attempt(transport, timeout, url, body, policy, max_redirects)
            if not retry or made == tries:
                break
            time.sleep(_BACKOFF[min(made, len(_BACKOFF)) - 1])
    if error is not None:
        log.warning("Webhook delivery to %s failed after %d attempt(s): %s", url, made, error)
    return Delivery(url=url, ok=error is None, status=status, attempts=made, error=error)


def _attempt(
    transport: httpx.HTTPTransport,
    timeout: float,
    url: str,
    body: bytes,
    policy: tuple[bool, Sequence[Network]],
    max_redirects: int,
) -> tuple[int | None, str | None, bool]:
    """One attempt, following 307/308 by hand: (status, error or None, worth retrying)."""
    current, status = url, None
    for _ in range(max_redirects + 1):
        try:
            target, addresses = _resolve(current, *policy)
        except _Refused as exc:
            return None, str(exc), False
        except OSError as exc:
            return None, f"cannot resolve the host of {current}: {exc}", True
        try:
            status, location = _post(transport, timeout, target, addresses, body)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return None, f"cannot deliver to {current}: {str(exc) or type(exc).__name__}", True
        if status in (307, 308) and location:
            try:
                current = str(target.join(location))
            except httpx.InvalidURL:
                return status, f"{current} redirected to an invalid URL {location!r}", False
            continue
        if status < 300 or status == 303:
            return status, None, False
        if status < 400:
            moved = f"{current} answered {status} to {location or '(no Location)'}"
            return status, f"{moved}; a POST is re-sent on 307/308 only: update the URL", False
        return status, f"{current} answered HTTP {status}", status >= 500 or status == 429
    return status, f"{url} redirected more than {max_redirects} times", False


def _resolve(
    url: str, allow_private: bool, allowed: Sequence[Network]
) -> tuple[httpx.URL, list[str]]:
    """The checked URL and every address its host resolves to, all of them permitted."""
    try:
        target = httpx.URL(
            check_webhook_url(url, allow_private=allow_private, allowed_networks=allowed)
        )
    except InvalidArgument as exc:
        raise _Refused(exc.message) from None
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = None if allow_private else _forbidden(ipaddress.ip_address(address), allowed)
        if reason:
            raise _Refused(
                f"Refused webhook target {url}: {host} resolves to {address}, a {reason} address "
                f"(webhooks may only reach public addresses); {_HOW_TO_ALLOW}"
            )
    return target, addresses


def _post(
    transport: httpx.HTTPTransport,
    timeout: float,
    target: httpx.URL,
    addresses: list[str],
    body: bytes,
) -> tuple[int, str | None]:
    """POST to the first checked address that accepts a connection: (status, Location)."""
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}
    if target.scheme == "https" and _literal(target.host) is None:
        extensions["sni_hostname"] = target.host  # SNI and certificate check on the name
    headers = {
        "Host": target.netloc.decode("ascii"),
        "User-Agent": f"modelloop/{__version__}",
        "Content-Type": "application/json",
    }
    for i, address in enumerate(addresses):
        pinned = target.copy_with(host=address)
        request = httpx.Request(
            "POST", pinned, content=body, headers=headers, extensions=extensions
        )
        try:
            response = transport.handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if i == len(addresses) - 1:
                raise
            continue  # nothing was sent: the next address is safe to try
        response.close()  # the body is never read
        return response.status_code, response.headers.get("Location")
    raise httpx.ConnectError(f"{target.host} resolves to no address")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _forbidden(ip: IPAddress, allowed: Sequence[Network]) -> str | None:
    """Why ``ip`` is off limits ("loopback", "private", ...), or None if it may be reached."""
    if any(ip in network for network in allowed):
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        reason = _forbidden(ip.ipv4_mapped, allowed)
        return f"IPv4-mapped {reason}" if reason else None
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_private, "private"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-public"),
    )
    return next((name for flag, name in checks if flag), None)
