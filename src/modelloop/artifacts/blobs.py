"""A content-addressed blob store: every artifact is stored once, under its sha256.

Layout: ``<root>/sha256/<2 hex>/<2 hex>/<digest>``. The store computes the digest itself while
writing, so a caller can neither mislabel content nor pass a path where a digest belongs. Writes
go to a temporary file first and are renamed into place, so readers never see half a blob and
concurrent uploads of the same content both succeed.

A local store never follows a symlink out of its root: every read and write resolves the blob's
path and refuses (``UnsafePath``) one that lands outside, and reads open the blob component by
component with ``O_NOFOLLOW``, so a link planted in the store (or swapped in for one of its
folders after the check) cannot turn a digest into ``/etc/passwd``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, BinaryIO, cast
from urllib.parse import unquote, urlsplit

from modelloop.artifacts.paths import contained_path, is_digest
from modelloop.errors import InvalidArgument, NotFound, PayloadTooLarge, UnsafePath

CHUNK_SIZE = 1024 * 1024
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where the resolve check remains


class BlobStore:
    """Blobs under a local directory (or ``file://`` URL), or under any fsspec URL."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self._local: Path | None = None
        self._fs: Any = None
        self._base = ""
        if not _URL.match(self.root):
            self._local = Path(self.root).absolute()
        elif self.root.startswith("file://"):
            url = urlsplit(self.root)
            if url.netloc not in ("", "localhost"):
                raise InvalidArgument(f"file URL {self.root!r} names a remote host")
            self._local = Path(unquote(url.path))
        else:
            import fsspec  # only remote stores pay for the import

            self._fs, base = fsspec.core.url_to_fs(self.root)
            self._base = str(base).rstrip("/")

    def __repr__(self) -> str:
        return f"BlobStore({self.root!r})"

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its digest."""
        return self._write([data], None)[0]

    def put_file(self, path: str | Path) -> tuple[str, int]:
        """Store a file's content, streamed in 1 MiB chunks; return ``(digest, size)``."""
        with open(path, "rb") as source:
            return self._write(iter(lambda: source.read(CHUNK_SIZE), b""), None)

    def put_stream(self, chunks: Iterable[bytes], max_bytes: int | None = None) -> tuple[str, int]:
        """Store an upload; past ``max_bytes`` raise ``PayloadTooLarge`` and keep nothing."""
        return self._write(chunks, max_bytes)

    def open(self, digest: str) -> BinaryIO:
        key = _relpath(digest)
        try:
            if self._local is not None:
                return os.fdopen(self._open_local(key), "rb")
            return cast(BinaryIO, self._fs.open(self._url(key), "rb"))
        except FileNotFoundError:
            raise NotFound(f"no blob {digest}") from None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):  # a link swapped in after the check
                raise
            raise UnsafePath(
                f"blob {digest} is a symlink; the store refuses to follow it"
            ) from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as blob:
            return blob.read()

    def exists(self, digest: str) -> bool:
        key = _relpath(digest)
        if self._local is not None:
            return self._contained(key).is_file()
        return bool(self._fs.exists(self._url(key)))

    def size(self, digest: str) -> int:
        key = _relpath(digest)
        try:
            if self._local is not None:
                return self._contained(key).stat().st_size
            return int(self._fs.size(self._url(key)))
        except FileNotFoundError:
            raise NotFound(f"no blob {digest}") from None

    def local_path(self, digest: str) -> Path | None:
        """The blob's file, for zero-copy serving; ``None`` when the store is not local."""
        key = _relpath(digest)
        if self._local is None:
            return None
        path = self._contained(key)
        if not path.is_file():
            raise NotFound(f"no blob {digest}")
        return path

    def _open_local(self, key: str) -> int:
        """Open a blob one path component at a time, none of them a symlink (``openat`` with
        ``O_NOFOLLOW``): a folder of the store swapped for a link between a check and the open
        cannot redirect the read, as it could with a path resolved first and opened later."""
        self._contained(key)  # UnsafePath naming where a planted link leads
        if not _NOFOLLOW:  # pragma: no cover - Windows: the resolve check is what remains
            return os.open(self._contained(key), os.O_RDONLY)
        *folders, name = key.split("/")
        fd = os.open(self._local or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            for folder in folders:
                parent = fd
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=parent)
                os.close(parent)
            return os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)

    def _contained(self, key: str) -> Path:
        """The blob's file under a local root, symlinks resolved; ``UnsafePath`` if outside."""
        assert self._local is not None
        return contained_path(self._local, key)

    def _url(self, key: str) -> str:
        return f"{self._base}/{key}"

    def _write(self, chunks: Iterable[bytes], max_bytes: int | None) -> tuple[str, int]:
        # A local store spools next to its blobs so the final rename stays on one filesystem.
        spool_dir = None
        if self._local is not None:
            spool_dir = self._contained("tmp")
            spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=spool_dir, prefix="blob-", suffix=".part")
        spool = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest, size = _copy_hashing(chunks, out, max_bytes)
                if self._local is not None:
                    out.flush()
                    os.fsync(out.fileno())
            if not self.exists(digest):
                self._commit(spool, _relpath(digest))
        finally:
            spool.unlink(missing_ok=True)
        return digest, size

    def _commit(self, spool: Path, key: str) -> None:
        if self._local is None:
            target = self._url(key)
            self._fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self._fs.put_file(str(spool), target)
            return
        self._contained(key).parent.mkdir(parents=True, exist_ok=True)
        final = self._contained(key)  # again: mkdir may have met a directory planted meanwhile
        os.chmod(spool, 0o444)  # blobs are immutable; directory permissions decide who reads
        os.replace(spool, final)
        _fsync_dir(final.parent)


def _relpath(digest: str) -> str:
    if not is_digest(digest):
        raise InvalidArgument(f"not a sha256 digest (64 lowercase hex characters): {digest!r:.80}")
    return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


def _copy_hashing(
    chunks: Iterable[bytes], out: IO[bytes], max_bytes: int | None
) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise PayloadTooLarge(f"upload is larger than the limit of {max_bytes} bytes")
        hasher.update(chunk)
        out.write(chunk)
    return hasher.hexdigest(), size


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; only POSIX can open a directory for fsync."""
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
