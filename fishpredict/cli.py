"""The ``fishpredict`` command line: argument parsing only.

Each command parses its options here and calls the library. Every error a user
can cause ends as one line on stderr and a non-zero exit, never a traceback.
Imports of heavy modules happen inside the command functions so that
``fishpredict --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

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


# ---- serve / backends ----------------------------------------------------------------

def _add_predictor_options(p: argparse.ArgumentParser) -> None:
    """Options every command that builds a Predictor shares."""
    p.add_argument("--models", default=None, metavar="DIR",
                   help="model directory with manifest.json (default: the embedded models)")
    p.add_argument("--trust", action="store_true",
                   help="unpickle model files no manifest vouches for (pickles run code)")
    p.add_argument("--no-fast-path", dest="fast_path", action="store_false",
                   help="always predict through scikit-learn (for comparison)")
    p.add_argument("--labels", choices=["en", "ko"], default="en",
                   help="species names in answers: en (bream/smelt) or ko (도미/빙어)")


def build_predictor(args: argparse.Namespace, *, cache: bool = True) -> Any:
    from .predictor import Predictor

    return Predictor(args.models, cache=cache, fast_path=args.fast_path, labels=args.labels,
                     trust=args.trust)


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the models over HTTP")
    p.add_argument("--backend", default="socket",
                   help="serving backend (see `fishpredict backends`; default: socket)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 = any free)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes sharing one socket (default: 1)")
    _add_predictor_options(p)
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="unpickle the model on every request (the seed's first design; "
                        "for benchmarks only)")
    p.add_argument("--batch-max", type=int, default=256,
                   help="micro-batching: most rows per predict call; 1 turns it off (default 256)")
    p.add_argument("--batch-wait-us", type=int, default=0,
                   help="micro-batching: most microseconds to wait for more rows (default 0)")
    p.add_argument("--max-body-bytes", type=positive_int, default=16 * 1024 * 1024)
    p.add_argument("--max-batch-rows", type=positive_int, default=1_000_000)
    p.add_argument("--max-connections", type=positive_int, default=2048)
    p.add_argument("--max-inflight", type=positive_int, default=1024)
    p.add_argument("--drain-timeout", type=float, default=10.0,
                   help="seconds to finish in-flight requests on SIGTERM (default 10)")
    p.add_argument("--admin-token-env", default=None, metavar="VAR",
                   help="enable POST /admin/reload, with the token read from this "
                        "environment variable")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import os

    from .config import ServeConfig
    from .serve import serve

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    token = None
    if args.admin_token_env:
        token = os.environ.get(args.admin_token_env)
        if not token:
            raise ConfigError(f"environment variable {args.admin_token_env} is empty or unset")
    config = ServeConfig(
        host=args.host, port=args.port, workers=args.workers, labels=args.labels,
        max_body_bytes=args.max_body_bytes, max_batch_rows=args.max_batch_rows,
        max_connections=args.max_connections, max_inflight=args.max_inflight,
        drain_timeout=args.drain_timeout, batch_max=args.batch_max,
        batch_wait_us=args.batch_wait_us, admin_token=token,
    )
    from .plugins import registry

    registry().get_available_backend(args.backend)  # fail fast, before loading models
    return serve(args.backend, config, build_predictor(args, cache=args.cache))


def _add_backends(sub: Any) -> None:
    p = sub.add_parser("backends", help="list the serving backends plugins provide")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_backends)


def _cmd_backends(args: argparse.Namespace) -> int:
    import json

    from .plugins import list_backends

    infos = list_backends()
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    rows = [("NAME", "PLUGIN", "DISTRIBUTION", "VERSION", "AVAILABLE", "SUMMARY")]
    for i in infos:
        avail = "yes" if i.available else f"no (missing {', '.join(i.missing)})"
        rows.append((i.name, i.plugin, i.distribution, i.version, avail, i.summary))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    return 0


# ---- the parser ----------------------------------------------------------------------

#: every command's parser builder, in the order ``--help`` lists them
COMMANDS: list[Callable[[Any], None]] = [_add_train, _add_serve, _add_backends]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fishpredict",
        description="Serve a scikit-learn model over HTTP and measure how fast it serves.",
    )
    parser.add_argument("--version", action="version", version=f"fishpredict {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    except Exception as exc:  # last resort: one line, never a traceback
        if os.environ.get("FISHPREDICT_DEBUG"):
            raise
        print(f"fishpredict {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(set FISHPREDICT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
