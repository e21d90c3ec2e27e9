"""``python -m collabfilter`` runs the command-line interface."""

from collabfilter.cli import main

raise SystemExit(main())
