"""``python -m flowcept.keeper``: run one keeper until SIGTERM/SIGINT, then exit 0."""

from __future__ import annotations

import logging
import sys


def main() -> int:
    from flowcept.errors import ConfigError, FlowceptError
    from flowcept.keeper.keeper import run_keeper

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        stats = run_keeper()
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except FlowceptError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"keeper stopped: {stats.records} records in {stats.entries} entries stored", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
