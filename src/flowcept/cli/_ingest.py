"""``flowcept ingest FILE``: load a JSONL buffer or spill file into the store; running it twice changes nothing."""

from __future__ import annotations

import os
import sys

import click

from flowcept.cli._common import open_store, settings_of


@click.command()
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--batch-size", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Records per store transaction.")
@click.pass_context
def ingest(ctx: click.Context, path: str, batch_size: int) -> None:
    """Load FILE (one JSON record per line: a buffer file or a spill file) into the configured store.

    Records merge by id, so a file loaded twice, or loaded after the keeper stored part of it, gives the same
    records. Malformed lines are skipped and counted, and so are lines nested too deeply to store (named on
    stderr).
    """
    from flowcept.keeper import ingest_file

    store = open_store(settings_of(ctx))
    total_lines = _count_lines(path)
    try:
        with click.progressbar(length=total_lines, label=f"ingesting {os.path.basename(path)}",
                               file=sys.stderr) as bar:
            done = [0]

            def progress(n: int) -> None:
                bar.update(n - done[0])
                done[0] = n

            def unstorable(number: int, reason: str) -> None:
                click.echo(f"skipped line {number} of {path}: nested too deeply to store ({reason})", err=True)

            loaded = ingest_file(path, store, batch_size=batch_size, progress=progress, unstorable=unstorable)
            bar.update(max(0, total_lines - done[0]))
    finally:
        store.close()
    skipped = total_lines - loaded
    click.echo(f"ingested {loaded} records from {path}" + (f" ({skipped} malformed lines skipped)" if skipped else ""))


def _count_lines(path: str) -> int:
    count = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                count += 1
    return count
