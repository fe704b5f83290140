"""Artifact paths that must never reach a filesystem: (path, why).

Shared by the artifact layer's tests and the server's tests (``from
tests.artifacts.hostile_paths import HOSTILE_PATHS``), so every entry point refuses the same list.
The CVE numbers are MLflow's, each a spelling that slipped past an earlier check.
"""

from __future__ import annotations

HOSTILE_PATHS: list[tuple[str, str]] = [
    # CVE-2023-1177: plain '..' traversal in artifact paths
    ("../x", "parent directory"),
    ("..", "parent directory alone"),
    ("a/../../x", "climbs out after a harmless segment"),
    ("a/./../../x", "'.' segments around the climb"),
    ("a/b/../../../x", "climbs one level more than it descends"),
    ("a/..", "ends in '..'"),
    ("/etc/passwd", "absolute POSIX path"),
    ("/", "the filesystem root"),
    # CVE-2023-2780: Windows separators and encodings of '..'
    ("..\\x", "backslash separator"),
    ("\\..\\x", "absolute with backslashes"),
    ("a\\..\\..\\x", "backslash traversal after a segment"),
    ("C:\\Windows", "Windows drive letter with backslash"),
    ("C:/Windows/win.ini", "Windows drive letter with slash"),
    ("c:x", "drive-relative Windows path"),
    ("%2e%2e/x", "percent-encoded '..'"),
    ("%2E%2E%2Fx", "upper-case percent-encoded '../'"),
    (".%2e/x", "half-encoded '..'"),
    ("%2e%2E/x", "mixed-case percent encoding"),
    # CVE-2023-6977: '//' and url-encoded separators
    ("..%2fx", "encoded slash after '..'"),
    ("..%5cx", "encoded backslash after '..'"),
    ("//evil.host/x", "network path to another host"),
    ("\\\\evil\\share", "UNC path"),
    ("\\\\?\\C:\\x", "Win32 device path"),
    # CVE-2024-1483: fragments and queries in an artifact URL
    ("x#/../../y", "fragment hiding a traversal"),
    ("x?/../../y", "query hiding a traversal"),
    ("http://evil/x", "http URL"),
    ("file:///etc/passwd", "file URL"),
    ("s3://bucket/key", "object store URL"),
    ("x#y", "plain fragment"),
    # CVE-2024-1560: double encoding
    ("%252e%252e/x", "double-encoded '..'"),
    ("..%252fx", "double-encoded slash"),
    ("a/%25252e%25252e/x", "triple-encoded '..' in a subdirectory"),
    ("a%20b", "any percent-encoding, even harmless"),
    # CVE-2024-1593: ';' path parameters
    ("a/..;/x", "'..;' path parameter"),
    ("..;/x", "leading '..;'"),
    ("x;jsessionid=1", "path parameter"),
    # control characters, home expansion, look-alikes, sizes
    ("x\x00y", "NUL truncates the path in C"),
    ("x\ny", "newline"),
    ("x\x7fy", "DEL"),
    ("x\x1by", "escape"),
    ("~/x", "home directory expansion"),
    ("~root/.ssh/id_rsa", "another user's home"),
    ("\uff0e\uff0e/x", "fullwidth dots normalise to '..' under NFKC"),
    ("a\uff0f\uff0e\uff0e\uff0fb", "fullwidth slashes and dots"),
    ("\uff05\uff12\uff45\uff05\uff12\uff45/x", "fullwidth percent-encoded '..'"),
    ("...", "Windows strips trailing dots, '...' can read as '..'"),
    (".. /x", "Windows strips trailing spaces, '.. ' reads as '..'"),
    ("", "empty"),
    (".", "names no file"),
    ("./", "names no file"),
    ("//", "names no file, network-path prefix"),
    ("a" * 1025, "longer than 1024 characters"),
    ("a/" + "b" * 256, "segment longer than 255 bytes"),
    ("a/" + "\u00e9" * 128, "segment longer than 255 bytes once UTF-8 encoded"),
]
