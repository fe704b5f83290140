from __future__ import annotations

from pathlib import Path

import pytest

from modelloop.artifacts import canonical_path, contained_path, is_digest
from modelloop.errors import InvalidArgument, UnsafePath
from tests.artifacts.hostile_paths import HOSTILE_PATHS

SAFE_PATHS = [
    ("model/model.txt", "model/model.txt"),
    ("./a//b/", "a/b"),
    ("a/./b", "a/b"),
    ("./model.txt", "model.txt"),
    ("a/b/c/d.json", "a/b/c/d.json"),
    ("my model v2.txt", "my model v2.txt"),
    ("a-b_c.d+e=f@g,h", "a-b_c.d+e=f@g,h"),
    (".hidden/file", ".hidden/file"),
    ("..a/b..", "..a/b.."),
    ("a/~b", "a/~b"),
    ("données/modèle.txt", "données/modèle.txt"),
    ("模型/权重.bin", "模型/权重.bin"),
    ("x\u00b2.png", "x\u00b2.png"),  # NFKC would change it: names keep their characters
    ("a" * 255 + "/b", "a" * 255 + "/b"),
    ("a/" * 511 + "b", "a/" * 511 + "b"),
]


@pytest.mark.parametrize(("path", "why"), HOSTILE_PATHS)
def test_hostile_path_is_rejected_with_a_message_naming_it(path: str, why: str) -> None:
    with pytest.raises(UnsafePath) as caught:
        canonical_path(path)
    assert repr(path[:100])[:-1] in str(caught.value), why
    assert isinstance(caught.value, InvalidArgument)


@pytest.mark.parametrize(("path", "expected"), SAFE_PATHS)
def test_safe_path_canonicalises(path: str, expected: str) -> None:
    assert canonical_path(path) == expected
    assert canonical_path(expected) == expected


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("%2e%2e/x", "hides a '..' traversal"),
        ("a%20b", "percent-encoding is not allowed"),
        ("C:/x", "drive letter"),
        ("s3://b/k", "URL"),
        ("\\\\evil\\share", "UNC"),
        ("\uff0e\uff0e/x", "unicode-normalised"),
    ],
)
def test_message_says_why(path: str, reason: str) -> None:
    with pytest.raises(UnsafePath, match=reason):
        canonical_path(path)


def test_message_of_a_huge_path_stays_short() -> None:
    with pytest.raises(UnsafePath, match="1000000 characters") as caught:
        canonical_path("a" * 1_000_000)
    assert len(str(caught.value)) < 300


def test_non_string_is_rejected() -> None:
    with pytest.raises(UnsafePath):
        canonical_path(b"a/b")  # type: ignore[arg-type]


def test_contained_path_joins_inside_the_root(tmp_path: Path) -> None:
    assert contained_path(tmp_path, "./a//b.txt") == tmp_path.resolve() / "a" / "b.txt"


@pytest.mark.parametrize(("path", "why"), HOSTILE_PATHS[:10])
def test_contained_path_rejects_hostile_paths(tmp_path: Path, path: str, why: str) -> None:
    with pytest.raises(UnsafePath):
        contained_path(tmp_path, path)


def test_symlink_leaving_the_root_is_rejected(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file_link").symlink_to(outside / "secret.txt")
    with pytest.raises(UnsafePath, match="outside"):
        contained_path(root, "link/secret.txt")
    with pytest.raises(UnsafePath, match="outside"):
        contained_path(root, "file_link")
    with pytest.raises(UnsafePath):
        contained_path(root, "link/not-yet-written.txt")


def test_symlink_staying_inside_the_root_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "model.txt").write_text("m")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    resolved = contained_path(tmp_path, "alias/model.txt")
    assert resolved == (tmp_path / "real" / "model.txt").resolve()
    assert resolved.read_text() == "m"


def test_root_given_through_a_symlink_still_contains(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real", target_is_directory=True)
    assert contained_path(tmp_path / "via", "x.txt") == (tmp_path / "real" / "x.txt").resolve()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0" * 64, True),
        ("0123456789abcdef" * 4, True),
        ("0123456789ABCDEF" * 4, False),
        ("0" * 63, False),
        ("0" * 65, False),
        ("0" * 63 + "g", False),
        ("../" + "0" * 61, False),
        ("0" * 64 + "\n", False),
        ("", False),
    ],
)
def test_is_digest(value: str, expected: bool) -> None:
    assert is_digest(value) is expected
