"""``python -m collabfilter`` runs the command-line interface."""

from collabfilter.cli import run

run()
