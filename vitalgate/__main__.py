"""``python -m vitalgate`` runs the command line."""

from vitalgate.cli import main

main()
