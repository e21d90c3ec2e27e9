"""Shared by the command line's tests: a command line run in-process."""

from __future__ import annotations

from collabfilter.cli import main


def run(capsys, argv):
    """(exit code, stdout, stderr) of a command line run in-process; never a traceback."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    return code, printed.out, printed.err
