from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelloop.artifacts import BlobStore
from modelloop.errors import InvalidArgument, NotFound, PayloadTooLarge, UnsafePath

MISSING = "0" * 64


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


def spooled_files(root: Path) -> list[Path]:
    return sorted((root / "tmp").iterdir()) if (root / "tmp").exists() else []


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "blobs"))


@pytest.fixture
def memory_store() -> Iterator[BlobStore]:
    import fsspec

    root = f"memory://modelloop-test-{uuid.uuid4().hex}"
    yield BlobStore(root)
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_put_bytes_round_trip(store: BlobStore) -> None:
    digest = store.put_bytes(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert store.read_bytes(digest) == b"hello"
    with store.open(digest) as blob:
        assert blob.read() == b"hello"
    assert store.exists(digest)
    assert store.size(digest) == 5


def test_layout_is_sha256_two_levels_of_fan_out(tmp_path: Path, store: BlobStore) -> None:
    digest = store.put_bytes(b"layout")
    expected = tmp_path / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest
    assert store.local_path(digest) == expected
    assert expected.read_bytes() == b"layout"


def test_same_content_twice_is_one_file(tmp_path: Path, store: BlobStore) -> None:
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    _, size = store.put_stream([b"sa", b"me"])
    assert first == second
    assert size == 4
    assert blob_files(tmp_path / "blobs") == [store.local_path(first)]
    assert spooled_files(tmp_path / "blobs") == []


def test_empty_blob(store: BlobStore) -> None:
    digest = store.put_bytes(b"")
    assert digest == hashlib.sha256(b"").hexdigest()
    assert store.read_bytes(digest) == b""
    assert store.size(digest) == 0


def test_put_file_streams_a_large_file(tmp_path: Path, store: BlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    digest, size = store.put_file(source)
    assert digest == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    assert store.read_bytes(digest) == data
    assert spooled_files(tmp_path / "blobs") == []


def test_stored_blob_is_read_only(store: BlobStore) -> None:
    path = store.local_path(store.put_bytes(b"immutable"))
    assert path is not None
    assert path.stat().st_mode & 0o222 == 0


def test_put_stream_over_the_limit_keeps_nothing(tmp_path: Path, store: BlobStore) -> None:
    chunks = [b"x" * 10] * 5
    with pytest.raises(PayloadTooLarge):
        store.put_stream(chunks, max_bytes=49)
    assert not (tmp_path / "blobs" / "sha256").exists()
    assert spooled_files(tmp_path / "blobs") == []
    assert not store.exists(hashlib.sha256(b"x" * 50).hexdigest())


def test_put_stream_at_the_limit_is_accepted(store: BlobStore) -> None:
    digest, size = store.put_stream([b"x" * 10] * 5, max_bytes=50)
    assert (digest, size) == (hashlib.sha256(b"x" * 50).hexdigest(), 50)


def test_failing_upload_keeps_nothing(tmp_path: Path, store: BlobStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(broken())
    assert spooled_files(tmp_path / "blobs") == []
    assert not (tmp_path / "blobs" / "sha256").exists()


def test_concurrent_writers_of_the_same_content_all_succeed(
    tmp_path: Path, store: BlobStore
) -> None:
    data = os.urandom(256 * 1024)
    digests: list[str] = []
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            digests.append(
                store.put_stream(data[i : i + 4096] for i in range(0, len(data), 4096))[0]
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(digests) == {hashlib.sha256(data).hexdigest()}
    assert len(blob_files(tmp_path / "blobs")) == 1
    assert spooled_files(tmp_path / "blobs") == []
    assert store.read_bytes(digests[0]) == data


@pytest.mark.parametrize(
    "digest",
    [
        "../x",
        "../../etc/passwd",
        "0" * 63,
        "A" * 64,
        hashlib.sha256(b"x").hexdigest().upper(),
        "0" * 62 + "/x",
        "",
    ],
)
def test_invalid_digest_is_rejected_by_every_method(store: BlobStore, digest: str) -> None:
    for method in (store.open, store.read_bytes, store.exists, store.size, store.local_path):
        with pytest.raises(InvalidArgument, match="not a sha256 digest"):
            method(digest)


def test_missing_blob_is_not_found(store: BlobStore) -> None:
    assert not store.exists(MISSING)
    for method in (store.open, store.read_bytes, store.size, store.local_path):
        with pytest.raises(NotFound):
            method(MISSING)


def test_file_url_root(tmp_path: Path) -> None:
    store = BlobStore((tmp_path / "viaurl").as_uri())
    digest = store.put_bytes(b"file url")
    assert store.local_path(digest) == (
        tmp_path / "viaurl" / "sha256" / digest[:2] / digest[2:4] / digest
    )


def test_file_url_with_a_remote_host_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        BlobStore("file://evil.host/share")


def test_memory_fsspec_root_round_trip(memory_store: BlobStore) -> None:
    digest = memory_store.put_bytes(b"in memory")
    assert digest == hashlib.sha256(b"in memory").hexdigest()
    assert memory_store.read_bytes(digest) == b"in memory"
    assert memory_store.exists(digest)
    assert memory_store.size(digest) == 9
    assert memory_store.local_path(digest) is None
    assert memory_store.put_stream([b"in ", b"memory"], max_bytes=9) == (digest, 9)
    with pytest.raises(PayloadTooLarge):
        memory_store.put_stream([b"in ", b"memory"], max_bytes=8)
    with pytest.raises(NotFound):
        memory_store.read_bytes(MISSING)
    with pytest.raises(NotFound):
        memory_store.size(MISSING)
    with pytest.raises(InvalidArgument):
        memory_store.read_bytes("../x")


def test_memory_fsspec_root_uses_the_same_layout(memory_store: BlobStore) -> None:
    import fsspec

    digest = memory_store.put_bytes(b"layout")
    key = f"{memory_store.root}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    assert fsspec.filesystem("memory").cat_file(key) == b"layout"


def test_local_store_does_not_import_fsspec(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from modelloop.artifacts import BlobStore\n"
        f"BlobStore({str(tmp_path)!r}).put_bytes(b'x')\n"
        "assert 'fsspec' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _plant_symlink(store: BlobStore, digest: str, target: Path) -> Path:
    """Replace the blob's file with a symlink to ``target``, as a hostile co-tenant could."""
    blob = Path(store.root) / "sha256" / digest[:2] / digest[2:4] / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.unlink(missing_ok=True)
    blob.symlink_to(target)
    return blob


def test_a_symlink_planted_in_the_store_is_not_followed_out(
    store: BlobStore, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside the store")
    digest = hashlib.sha256(b"innocent").hexdigest()
    _plant_symlink(store, digest, secret)
    for read in (store.read_bytes, store.local_path, store.size, store.exists, store.open):
        with pytest.raises(UnsafePath, match="outside"):
            read(digest)
    with pytest.raises(UnsafePath):
        store.put_bytes(b"innocent")
    assert secret.read_bytes() == b"outside the store"


def test_a_symlinked_folder_in_the_store_takes_no_writes(store: BlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    digest = hashlib.sha256(b"content").hexdigest()
    (Path(store.root) / "sha256").mkdir(parents=True)
    (Path(store.root) / "sha256" / digest[:2]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath):
        store.put_bytes(b"content")
    assert list(outside.rglob("*")) == []
    spool_link = tmp_path / "spool-outside"
    spool_link.mkdir()
    other = BlobStore(tmp_path / "other")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tmp").symlink_to(spool_link, target_is_directory=True)
    with pytest.raises(UnsafePath):
        other.put_bytes(b"spooled")
    assert list(spool_link.iterdir()) == []


def test_a_folder_swapped_for_a_link_after_the_check_is_not_followed(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a path resolved first and opened later loses: between the containment check and
    the open, a co-tenant replaces one of the store's folders with a link to a copy outside."""
    digest = store.put_bytes(b"inside")
    folder = Path(store.root) / "sha256" / digest[:2]
    outside = tmp_path / "outside"
    (outside / digest[2:4]).mkdir(parents=True)
    (outside / digest[2:4] / digest).write_bytes(b"attacker's content")
    checked = BlobStore._contained

    def check_then_swap(self: BlobStore, key: str) -> Path:
        path = checked(self, key)
        if folder.is_dir() and not folder.is_symlink():
            folder.rename(tmp_path / "moved-away")
            folder.symlink_to(outside, target_is_directory=True)
        return path

    monkeypatch.setattr(BlobStore, "_contained", check_then_swap)
    with pytest.raises(UnsafePath, match="refuses to follow"):
        store.read_bytes(digest)


def test_a_link_to_a_folder_inside_the_store_is_not_followed_either(store: BlobStore) -> None:
    digest = store.put_bytes(b"inside")
    folder = Path(store.root) / "sha256" / digest[:2]
    folder.rename(folder.with_name("real"))
    folder.symlink_to(folder.with_name("real"), target_is_directory=True)
    with pytest.raises(UnsafePath, match="refuses to follow"):
        store.read_bytes(digest)
