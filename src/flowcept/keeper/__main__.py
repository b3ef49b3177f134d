"""``python -m flowcept.keeper``: run one keeper until SIGTERM/SIGINT, then exit 0."""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> int:
    import argparse

    from flowcept.errors import ConfigError, FlowceptError
    from flowcept.keeper.keeper import run_keeper

    parser = argparse.ArgumentParser(prog="python -m flowcept.keeper", description=__doc__)
    parser.add_argument("--consumer", help="this keeper's name in the consumer group (default host:pid:random)")
    parser.add_argument("--claim-idle-secs", type=float, default=30.0,
                        help="claim entries another keeper left unacknowledged this long (default 30)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        stats = run_keeper(consumer=args.consumer, claim_idle_secs=args.claim_idle_secs)
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
