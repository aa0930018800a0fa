"""``rationalrewards parse FILE|- --kind KIND``: print the parsed critique as JSON (exit 0)."""
from __future__ import annotations

import json
import sys

from ..models.format import KINDS, parse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "parse",
        help="parse a RationalRewards answer into the critique JSON",
        description="Parse a RationalRewards answer text into the critique JSON schema. Problems found "
        "while parsing are listed in the JSON's 'problems'; the exit code is 0 whenever a result is printed.",
    )
    p.add_argument("file", help="answer text file, or - for standard input")
    p.add_argument("--kind", choices=list(KINDS), default="t2i", help="request kind of the answer (default t2i)")
    p.add_argument("--truncated", action="store_true", help="the answer was cut at the token limit")
    p.add_argument("--compact", action="store_true", help="one line of JSON instead of indented")
    p.set_defaults(func=run)


def run(args) -> int:
    from . import UsageError

    if args.file == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8", errors="replace", newline="") as f:
                text = f.read()
        except FileNotFoundError:
            raise UsageError(f"{args.file}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{args.file}: is a folder, not an answer text file") from None
        except OSError as e:
            raise UsageError(f"{args.file}: cannot read ({e.strerror})") from None
    result = parse(text, args.kind, truncated=args.truncated)
    out = json.dumps(result.to_dict(), ensure_ascii=False, indent=None if args.compact else 2)
    sys.stdout.write(out + "\n")
    return 0
