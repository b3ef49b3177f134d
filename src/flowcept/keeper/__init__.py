"""The keeper: reads batches from the transport, merges them by id and upserts them into the store.

``merge.py`` holds the record merge rules every store applies (:func:`flowcept.keeper.merge.merge_record`).
"""
