"""BlobObject (compatibility path)."""

from flowcept.records import BlobObject

__all__ = ["BlobObject"]
