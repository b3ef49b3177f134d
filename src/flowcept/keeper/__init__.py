"""The keeper: reads batches from the transport, merges them by id and upserts them into the store.

``keeper.py`` holds the persistence consumer (:class:`Keeper`, :func:`run_keeper`, :func:`ingest_file`); the
record merge rules every store applies live with the stores (:mod:`flowcept.store.merge`).
Run one as its own process with ``python -m flowcept.keeper`` (or ``flowcept keeper``).
"""

from flowcept.keeper.keeper import Keeper, KeeperStats, ingest_file, run_keeper

__all__ = ["Keeper", "KeeperStats", "ingest_file", "run_keeper"]
