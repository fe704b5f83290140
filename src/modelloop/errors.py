"""The errors modelloop raises, one hierarchy for the SDK, the server and the CLI.

    ModelloopError                    500  exit 1   something went wrong on our side
    ├── InvalidArgument               422  exit 2   the caller passed something malformed
    │   ├── InvalidFilter             422  exit 2   a search filter that does not parse
    │   ├── InvalidInput              422  exit 2   model input that breaks its signature
    │   ├── UnsafePath                422  exit 2   an artifact path escaping its root
    │   └── UnsafeFormat              422  exit 2   pickle-like content loaded without opt-in
    ├── NotFound                      404  exit 3   no such experiment, run, artifact
    ├── Conflict                      409  exit 4   the request contradicts stored state
    │   └── AlreadyExists             409  exit 4   a name that must be unique is taken
    ├── PayloadTooLarge               413  exit 2   a body over the server's limit
    ├── Unauthorized                  401  exit 5   missing or wrong bearer token
    ├── Forbidden                     403  exit 5   known caller, action not allowed (roles,
    │                                               self-approval)
    └── ServerUnavailable             503  exit 6   the server or database cannot be reached
        └── ConnectionLost            503  exit 6   ... mid-request: it may have been applied

Each class carries its HTTP status (one FastAPI handler on the base class renders them) and its
CLI exit code (the CLI prints the message and exits with it). ``error_code`` travels over the
wire, so the HTTP client raises the same class the local store would have raised. ``details``
(optional) carries field-level problems, e.g. ``[{"row": 0, "field": "amount", "message": ...}]``.
"""

from __future__ import annotations

from typing import Any


class ModelloopError(Exception):
    status_code = 500
    exit_code = 1
    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(ModelloopError):
    status_code = 422
    exit_code = 2
    error_code = "INVALID_ARGUMENT"


class InvalidFilter(InvalidArgument):
    error_code = "INVALID_FILTER"


class InvalidInput(InvalidArgument):
    error_code = "INVALID_INPUT"


class UnsafePath(InvalidArgument):
    error_code = "UNSAFE_PATH"


class UnsafeFormat(InvalidArgument):
    error_code = "UNSAFE_FORMAT"


class NotFound(ModelloopError):
    status_code = 404
    exit_code = 3
    error_code = "NOT_FOUND"


class Conflict(ModelloopError):
    status_code = 409
    exit_code = 4
    error_code = "CONFLICT"


class AlreadyExists(Conflict):
    error_code = "ALREADY_EXISTS"


class PayloadTooLarge(ModelloopError):
    status_code = 413
    exit_code = 2
    error_code = "PAYLOAD_TOO_LARGE"


class Unauthorized(ModelloopError):
    status_code = 401
    exit_code = 5
    error_code = "UNAUTHORIZED"


class Forbidden(ModelloopError):
    status_code = 403
    exit_code = 5
    error_code = "FORBIDDEN"


class ServerUnavailable(ModelloopError):
    status_code = 503
    exit_code = 6
    error_code = "SERVER_UNAVAILABLE"


def _subclasses(cls: type[ModelloopError]) -> list[type[ModelloopError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def error_from_code(
    error_code: str, message: str, details: list[dict[str, Any]] | None = None
) -> ModelloopError:
    """Rebuild the exception a server reported, so remote and local calls fail alike."""
    for cls in _subclasses(ModelloopError):
        if cls.error_code == error_code:
            return cls(message, details)
    return ModelloopError(message, details)


class ConnectionLost(ServerUnavailable):
    """The request was sent but no answer came back; retrying could apply it twice."""

    error_code = "CONNECTION_LOST"
