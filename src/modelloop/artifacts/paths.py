"""Artifact paths: one canonical spelling, or ``UnsafePath``.

A logical artifact path (``model/model.txt``) crosses the wire, lands in the database and is
finally joined to a directory, so every spelling that some layer (URL parser, Windows, a
percent-decoding proxy, an NFKC-normalising filesystem) could read as a traversal is refused here,
once. MLflow's CVE-2023-1177, -2780, -6977, 2024-1483, -1560 and -1593 are each one such spelling.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from modelloop.errors import UnsafePath

MAX_PATH_CHARS = 1024
MAX_SEGMENT_BYTES = 255

_DIGEST = re.compile(r"[0-9a-f]{64}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_FORBIDDEN = {
    ";": "';' is a URL path parameter ('..;/' bypasses)",
    "#": "'#' starts a URL fragment",
    "?": "'?' starts a URL query",
}


def is_digest(s: str) -> bool:
    """True for a sha256 hex digest (64 lowercase hex characters), so it can never be a path."""
    return isinstance(s, str) and _DIGEST.fullmatch(s) is not None


def canonical_path(path: str) -> str:
    """Return ``path`` as a relative POSIX path (``./a//b/`` -> ``a/b``) or raise ``UnsafePath``.

    Names keep their exact characters (a local file must still be found under them), but the
    NFKC form is checked too, so look-alikes such as fullwidth dots (U+FF0E) cannot smuggle a
    traversal.
    """
    if not isinstance(path, str):
        raise UnsafePath(f"unsafe artifact path {_excerpt(path)}: not a string")
    canonical = _canonicalise(path, path)
    folded = unicodedata.normalize("NFKC", path)
    if folded != path:
        _canonicalise(folded, path, note=f" once unicode-normalised to {_excerpt(folded)}")
    return canonical


def contained_path(root: Path, logical: str) -> Path:
    """Join ``logical`` to ``root`` and resolve symlinks; raise ``UnsafePath`` if it leaves root.

    The check is done at call time: a symlink created afterwards is not seen.
    """
    base = Path(root).resolve()
    target = (base / canonical_path(logical)).resolve()
    if not target.is_relative_to(base):
        raise UnsafePath(
            f"unsafe artifact path {_excerpt(logical)}: resolves to {target}, outside {base}"
        )
    return target


def _canonicalise(path: str, shown: str, note: str = "") -> str:
    def unsafe(reason: str) -> UnsafePath:
        return UnsafePath(f"unsafe artifact path {_excerpt(shown)}: {reason}{note}")

    if not path:
        raise unsafe("empty path")
    if len(path) > MAX_PATH_CHARS:
        raise unsafe(f"longer than {MAX_PATH_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in path):
        raise unsafe("contains a control character (NUL, newline, ...)")
    if "%" in path:
        raise unsafe(_percent_reason(path))
    if ":" in path:
        scheme = _SCHEME.match(path)
        if scheme and len(scheme.group()) == 2:
            raise unsafe("starts with a Windows drive letter")
        if scheme:
            raise unsafe(f"is a URL ({scheme.group()}), not a relative path")
        raise unsafe("contains ':' (drive letter or NTFS alternate stream)")
    if path.startswith("\\\\"):
        raise unsafe("starts with '\\\\' (UNC path to another host)")
    if "\\" in path:
        raise unsafe("contains a backslash (a Windows separator)")
    for char, reason in _FORBIDDEN.items():
        if char in path:
            raise unsafe(reason)
    if path.startswith("//"):
        raise unsafe("starts with '//' (network path to another host)")
    if path.startswith("/"):
        raise unsafe("is absolute")
    if path.startswith("~"):
        raise unsafe("starts with '~' (home directory expansion)")
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if not segments:
        raise unsafe("names no file (only '.' and '/')")
    for segment in segments:
        if segment == "..":
            raise unsafe("contains a '..' segment (parent directory traversal)")
        if not segment.rstrip(". "):
            raise unsafe(
                f"segment {_excerpt(segment)} is only dots and spaces (Windows reads '..')"
            )
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise unsafe(f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return "/".join(segments)


def _percent_reason(path: str) -> str:
    """Decode until stable to say whether the encoding hid a traversal; both are refused."""
    decoded = path
    while (step := unquote(decoded)) != decoded:  # ends: each round shortens the string
        decoded = step
    if ".." in re.split(r"[/\\]", decoded):
        return f"percent-encoding hides a '..' traversal (decodes to {_excerpt(decoded)})"
    return f"percent-encoding is not allowed (decodes to {_excerpt(decoded)})"


def _excerpt(path: object) -> str:
    """The path as it appears in messages: quoted, and cut short so a huge path stays readable."""
    if isinstance(path, str) and len(path) > 200:
        return f"{path[:100]!r}... ({len(path)} characters)"
    return repr(path)
