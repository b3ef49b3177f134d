"""``python -m flowcept ...`` runs the command line (same as the ``flowcept`` script)."""

from flowcept.cli import main

main()
