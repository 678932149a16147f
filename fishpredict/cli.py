"""The ``fishpredict`` command line: argument parsing only.

Each command parses its options here and calls the library. Every error a user
can cause ends as one line on stderr and a non-zero exit, never a traceback.
Imports of heavy modules happen inside the command functions so that
``fishpredict --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .errors import ConfigError, FishpredictError

Handler = Callable[[argparse.Namespace], int]


def parse_ks(text: str) -> list[int]:
    """``"1,5,15"`` -> ``[1, 5, 15]``, with a clear error for anything else."""
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"k must be a comma-separated list of integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"k values must be positive integers, got {text!r}")
    return ks


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# ---- train ---------------------------------------------------------------------------

def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train one KNN model per k and write a model directory")
    p.add_argument("--k", type=parse_ks, default=[1, 5, 15, 25, 49],
                   help="comma-separated neighbour counts (default: 1,5,15,25,49)")
    p.add_argument("--out", default="models", help="output directory (default: models/)")
    p.add_argument("--scale", choices=["standard"], default=None,
                   help="put a StandardScaler in front of the classifier")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from . import artifacts

    try:
        entries = artifacts.save_models(args.out, args.k, scale=args.scale)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot write to {args.out}: {exc.strerror}") from None
    for e in entries:
        print(f"{e.name}\tk={e.k}\t{args.out}/{e.file}\tsha256={e.sha256[:16]}")
    print(f"manifest: {args.out}/{artifacts.MANIFEST_NAME}")
    return 0


# ---- the parser ----------------------------------------------------------------------

#: every command's parser builder, in the order ``--help`` lists them
COMMANDS: list[Callable[[Any], None]] = [_add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fishpredict",
        description="Serve a scikit-learn model over HTTP and measure how fast it serves.",
    )
    parser.add_argument("--version", action="version", version=f"fishpredict {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except FishpredictError as exc:
        print(f"fishpredict {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        print(f"fishpredict {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
