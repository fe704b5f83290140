"""Artifacts: content-addressed blobs and the safe logical paths that point at them."""

from modelloop.artifacts.blobs import BlobStore
from modelloop.artifacts.paths import canonical_path, contained_path, is_digest

__all__ = ["BlobStore", "canonical_path", "contained_path", "is_digest"]
