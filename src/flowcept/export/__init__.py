"""Standard provenance exports of a stored workflow: W3C PROV (JSON, PROV-N, PROV-O Turtle), a Provenance Run
RO-Crate, OpenLineage RunEvents.

::

    Store ──find_pages (keyset, one page in memory)──▶ RecordSource ─┬▶ prov.py         PROV-JSON / PROV-N / Turtle
                                                                      ├▶ ro_crate.py     folder or .zip
                                                                      └▶ openlineage.py  JSONL file or HTTP POST

Every exporter streams: tasks are read page by page and written as they come; what must outlive a page (ids
already written, which task generated which value) lives in a scratch SQLite file, so memory stays bounded for a
million tasks.
"""

from __future__ import annotations

from typing import Any

from flowcept.errors import ConfigError

__all__ = ["FORMATS", "export_workflow", "make_parent"]

#: Format name -> what it writes.
FORMATS = {
    "prov-json": "W3C PROV-JSON file",
    "prov-n": "W3C PROV-N file",
    "prov-o": "W3C PROV-O (RDF Turtle) file",
    "ro-crate": "Workflow Run RO-Crate folder (or .zip), Provenance Run Crate 0.5",
    "openlineage": "OpenLineage RunEvents, one JSON per line (and/or POSTed to url)",
}


def export_workflow(workflow_id: str, format: str, path: str | None, store: Any = None, url: str | None = None,
                    match_values: bool = False, license: str | None = None,
                    namespace: str = "flowcept") -> dict:
    """Export one stored workflow.

    Args:
        workflow_id: the workflow.
        format: one of :data:`FORMATS`.
        path: the output file (a folder or ``.zip`` for ``ro-crate``); its missing parent folders are created,
            whatever the format. For ``openlineage`` it may be None when ``url`` is given.
        store: the store to read; default: the one the settings enable.
        url: ``openlineage`` only: also POST every event to this Marquez-compatible endpoint.
        match_values: plain scalar values shared by two tasks also count as data flow (``wasInformedBy``);
            containers always do, trivial values (None, booleans, 0, +-1, one-character strings) never.
        license: ``ro-crate`` only: URL of the license of the crate's content.
        namespace: ``openlineage`` only: the job and dataset namespace.

    Returns:
        What was written: ``{"format", "output", ...}``.

    Raises:
        ConfigError: unknown format, no store enabled, or the workflow id is not in the store (names the id).
        BackendUnavailableError: the format's library is missing (``pip install 'flowcept[export]'``).
        TransportError: ``url`` refused an event.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; formats: {', '.join(FORMATS)}", key="format")
    if path is None and not (format == "openlineage" and url):
        raise ConfigError(f"the {format} export needs an output path", key="output")
    owns = store is None
    if owns:
        from flowcept.settings import get_settings
        from flowcept.store import make_store

        store = make_store(get_settings(), for_reading=True)
        if store is None:
            raise ConfigError("no database is enabled, so there is no workflow to export: enable "
                              "databases.sqlite or databases.postgres", key="databases")
    try:
        from flowcept._runtime import flush_pending
        from flowcept.export._source import StoreSource

        if owns:
            flush_pending()
        source = StoreSource(store, workflow_id=workflow_id)
        if path is not None:
            make_parent(path)
        return _write(format, source, path, url, match_values, license, namespace)
    finally:
        if owns:
            store.close()


def make_parent(path: Any) -> None:
    """Create the missing folders above the output ``path`` (exports and reports write into new folders alike).

    Raises:
        OSError: a folder cannot be created (a file is in the way: ``NotADirectoryError``...).
    """
    import os

    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.lexists(folder):
        os.makedirs(folder)


def _write(fmt: str, source, path, url, match_values, license, namespace) -> dict:
    try:
        if fmt.startswith("prov-"):
            from flowcept.export.prov import write_prov

            return write_prov(source, path, fmt, match_values)
        if fmt == "ro-crate":
            from flowcept.export.ro_crate import write_ro_crate

            return write_ro_crate(source, path, license=license, match_values=match_values)
        from flowcept.export.openlineage import write_openlineage

        return write_openlineage(source, path, url=url, namespace=namespace)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("prov", "rocrate", "openlineage", "rdflib", "attr"):
            from flowcept.errors import BackendUnavailableError

            raise BackendUnavailableError(f"the {fmt} export", "export") from exc
        raise
