"""``python -m collabfilter.serve MODEL [options]``: the service without the CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence

from collabfilter.errors import CollabFilterError, ListenError
from collabfilter.serve.server import MIN_RELOAD_POLL, run


def parser() -> argparse.ArgumentParser:
    """The options of ``collabfilter serve``."""
    result = argparse.ArgumentParser(
        prog="collabfilter serve", description="Serve a model file over HTTP."
    )
    add_arguments(result)
    return result


def add_arguments(
    result: argparse.ArgumentParser, types: Mapping[str, Callable[[str], object]] | None = None
) -> None:
    """Add the options of ``collabfilter serve`` to a parser (here and in the CLI).

    Args:
        result: the parser.
        types: stricter ``type=`` checks by option name (the CLI's), in place of the
            plain conversions here; the server checks the values again when it starts.
    """
    checks = dict(types or {})
    result.add_argument("model", type=checks.get("model", str),
                        help="a model file (learner.save / collabfilter train)")  # fmt: skip
    result.add_argument("--host", default="127.0.0.1", help="address (default: loopback)")
    result.add_argument("--port", type=checks.get("port", int), default=8000)
    result.add_argument("--db", type=checks.get("db", str), default=None,
                        help="ratings database (default: beside MODEL)")  # fmt: skip
    result.add_argument("--token", default=None, help="bearer token for writes "
                        "(default: COLLABFILTER_TOKEN; required beyond loopback)")  # fmt: skip
    result.add_argument("--workers", type=checks.get("workers", int), default=1)
    result.add_argument("--reload-poll", type=checks.get("reload_poll", float), default=1.0,
                        help=f"seconds between checks of MODEL: 0 (never) or at least "
                        f"{MIN_RELOAD_POLL}")  # fmt: skip
    result.add_argument("--min-ratings", type=checks.get("min_ratings", int), default=None,
                        help="never recommend items with fewer training ratings")  # fmt: skip
    result.add_argument("--no-access-log", action="store_true")
    result.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer to this Host name (behind a proxy; repeatable); "
                        "the server always answers to the address it listens on")  # fmt: skip
    result.add_argument("--private", action="store_true",
                        help="reads need the token too (needs a token)")  # fmt: skip


def serve(args: argparse.Namespace) -> None:
    """Run the server the parsed options describe (errors propagate)."""
    run(
        args.model, args.host, args.port, args.db, args.token, args.workers,
        args.reload_poll, min_ratings=args.min_ratings, access_log=not args.no_access_log,
        allow_hosts=args.allow_host, private=args.private,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; errors become one line on stderr and exit code 1, or
    :attr:`ListenError.exit_code` when the address cannot be had."""
    args = parser().parse_args(argv)
    try:
        serve(args)
    except (CollabFilterError, OSError) as error:
        print(f"collabfilter serve: {error}", file=sys.stderr)
        return ListenError.exit_code if isinstance(error, ListenError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
