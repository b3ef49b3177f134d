"""`Flowcept` controller (compatibility path)."""

from flowcept.controller import Flowcept

__all__ = ["Flowcept"]
