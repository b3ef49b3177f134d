"""Compatibility path: the Dask worker plugin (see :mod:`flowcept.adapters.dask`)."""

from flowcept.adapters.dask import FlowceptDaskWorkerAdapter, get_flowcept_task

__all__ = ["FlowceptDaskWorkerAdapter", "get_flowcept_task"]
