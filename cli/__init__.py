"""The ``rationalrewards`` command line: parse, critique, refine, score.

Each subcommand lives in its own module and registers itself through ``add_parser(subparsers)``;
this module only builds the parser and maps errors to exit codes: 0 done, 2 bad usage, bad input or
a file that cannot be written (one clear line on stderr), 1 anything unexpected, 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import parse_cmd

COMMANDS = [parse_cmd]


class UsageError(Exception):
    """Bad input from the command line (missing file, wrong folder, ...): exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    ap = argparse.ArgumentParser(
        prog="rationalrewards",
        description="RationalRewards critic tools: parse critiques, critique images, refine prompts, score folders.",
    )
    ap.add_argument("--version", action="version", version=f"rationalrewards {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _commands():
        mod.add_parser(sub)
    return ap


def _commands():
    mods = list(COMMANDS)
    for name in ("critique_cmd", "refine_cmd", "score_cmd"):
        try:
            mods.append(__import__(f"{__name__}.{name}", fromlist=[name]))
        except ImportError as e:
            if f"{__name__}.{name}" not in str(e):
                raise
    return mods


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rationalrewards`` console script."""
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"rationalrewards {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be written mid-run (disk full, folder removed): one line, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"rationalrewards {args.command}: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
