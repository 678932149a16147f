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

#: every command's parser builder, in the order ``--help`` lists them
COMMANDS: list[Callable[[Any], None]] = []


def command(add: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register a ``_add_<name>(subparsers)`` parser builder (decorator)."""
    COMMANDS.append(add)
    return add


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

@command
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


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


#: every ServeConfig knob ``serve`` exposes: (field, parser, help); defaults come
#: from ServeConfig itself, so the CLI and the library cannot disagree
_SERVE_LIMITS: list[tuple[str, Callable[[str], Any], str]] = [
    ("batch_max", positive_int, "micro-batching: most rows per predict call; 1 turns it off"),
    ("batch_wait_us", int, "micro-batching: most microseconds to wait for more rows"),
    ("max_body_bytes", positive_int, "largest request body in bytes; more -> 413"),
    ("max_batch_rows", positive_int, "most rows in one batch request; more -> 413"),
    ("max_connections", positive_int, "most open connections per worker; more -> 503"),
    ("max_inflight", positive_int, "most requests handled at once per worker; more -> 503"),
    ("header_timeout", _non_negative_float, "seconds to receive a request head; then closed"),
    ("keepalive_timeout", _non_negative_float, "seconds an idle keep-alive connection is kept"),
    ("request_timeout", _non_negative_float, "seconds for a request body to arrive; then 408"),
    ("drain_timeout", _non_negative_float, "seconds to finish in-flight requests on SIGTERM"),
    ("retry_after", int, "the Retry-After seconds sent with a 503"),
]


@command
def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the models over HTTP")
    p.add_argument("--backend", default="socket",
                   help="serving backend (see `fishpredict backends`; default: socket)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 = any free)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes, forked after the models load (default: 1)")
    p.add_argument("--shared-socket", dest="reuse_port", action="store_false",
                   help="with --workers N: every worker accepts on one shared socket, instead "
                        "of one accept queue per worker on the port (SO_REUSEPORT, the default "
                        "on Linux), which spreads connections evenly")
    _add_predictor_options(p)
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="unpickle the model on every request (the seed's first design; "
                        "for benchmarks only)")
    from .config import ServeConfig

    defaults = ServeConfig()
    limits = p.add_argument_group("limits (docs/reliability.md: what a client sees past each)")
    for field, kind, text in _SERVE_LIMITS:
        default = getattr(defaults, field)
        shown = f"{default:,}" if isinstance(default, int) else f"{default:g}"
        limits.add_argument(f"--{field.replace('_', '-')}", dest=field, type=kind, default=default,
                            metavar="N", help=f"{text} (default {shown})")
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
        host=args.host, port=args.port, workers=args.workers, reuse_port=args.reuse_port,
        labels=args.labels, admin_token=token,
        **{field: getattr(args, field) for field, _, _ in _SERVE_LIMITS},
    )
    from .plugins import registry

    registry().get_available_backend(args.backend)  # fail fast, before loading models
    return serve(args.backend, config, build_predictor(args, cache=args.cache))


@command
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


# ---- data generate / data sample -----------------------------------------------------

def _seed(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


@command
def _add_data(sub: Any) -> None:
    p = sub.add_parser("data", help="make synthetic labelled fish, or sample a data file",
                       description="Synthetic labelled fish (see docs/data.md) and sampling. "
                       "File formats by suffix: .csv, .npy, .npz.")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    g = actions.add_parser("generate", help="write N synthetic labelled fish to a file")
    g.add_argument("--rows", type=positive_int, default=10_000_000,
                   help="how many fish (default: 10,000,000, as in the seed)")
    g.add_argument("--seed", type=_seed, default=42, help="random seed (default: 42)")
    g.add_argument("--out", required=True,
                   help="output file; its suffix picks the format: .csv, .npy or .npz")
    g.add_argument("--chunk-rows", type=positive_int, default=None,
                   help="rows generated and written at a time (memory only; the rows "
                   "do not depend on it)")
    g.set_defaults(func=_cmd_data_generate)
    s = actions.add_parser("sample", help="draw N rows at random, without replacement")
    s.add_argument("--data", default=None,
                   help="file to sample (.csv, .npy or .npz), read once in chunks; if omitted, "
                   "the N rows are drawn from the generator directly (the same rows as "
                   "'data generate --rows N --seed SEED')")
    s.add_argument("--n", type=positive_int, default=100_000,
                   help="rows to draw (default: 100,000, as in the seed)")
    s.add_argument("--seed", type=_seed, default=1, help="random seed (default: 1)")
    s.add_argument("--out", required=True,
                   help="output file; its suffix picks the format: .csv, .npy or .npz")
    s.add_argument("--chunk-rows", type=positive_int, default=None,
                   help="rows read at a time (memory only; the sample does not depend on it)")
    s.set_defaults(func=_cmd_data_sample)


def _describe_written(written: Any, seconds: float) -> str:
    share = "" if written.bream_share is None else f", {written.bream_share:.2%} bream"
    rate = written.rows / seconds if seconds > 0 else float("inf")
    return (f"wrote {written.rows:,} rows{share} to {written.path} ({written.format}, "
            f"{written.size / 1e6:,.1f} MB) in {seconds:.2f} s ({rate:,.0f} rows/s)")


def _cmd_data_generate(args: argparse.Namespace) -> int:
    import time

    from . import synth

    start = time.perf_counter()
    written = synth.write(args.out, args.rows, args.seed,
                          chunk_rows=args.chunk_rows or synth.CHUNK_ROWS,
                          progress=not os.environ.get("CI"))
    print(_describe_written(written, time.perf_counter() - start))
    return 0


def _cmd_data_sample(args: argparse.Namespace) -> int:
    import time

    from . import datafiles, synth

    start = time.perf_counter()
    if args.data is None:
        print(f"no --data: drawing {args.n:,} fish from the generator (seed {args.seed})")
        written = synth.write(args.out, args.n, args.seed,
                              chunk_rows=args.chunk_rows or synth.CHUNK_ROWS,
                              progress=not os.environ.get("CI"))
    else:
        chunks = datafiles.iter_chunks(args.data, args.chunk_rows or datafiles.CHUNK_ROWS)
        drawn = datafiles.sample_chunks(chunks, args.n, args.seed, source=args.data)
        print(f"sampled {len(drawn.X):,} of {drawn.population:,} rows of {args.data} "
              f"(seed {args.seed})")
        written = datafiles.write(args.out, drawn.X, drawn.y)
    print(_describe_written(written, time.perf_counter() - start))
    return 0


# ---- evaluate ------------------------------------------------------------------------

@command
def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="accuracy and speed of each k on labelled fish",
                       description="The seed's k sweep: predict every row of a labelled data "
                       "file with each k and print accuracy and rows/s. Local: the models "
                       "run in this process.")
    p.add_argument("--data", required=True,
                   help="labelled data file (.csv, .npy or .npz), e.g. from 'data sample'")
    p.add_argument("--k", type=parse_ks, default=[1, 5, 15, 25, 49],
                   help="comma-separated neighbour counts (default: 1,5,15,25,49)")
    p.add_argument("--models", default=None,
                   help="model directory with a manifest (default: models trained in memory "
                   "on the 49 built-in fish)")
    p.add_argument("--trust", action="store_true",
                   help="load a model file that no manifest vouches for")
    p.add_argument("--no-fast-path", action="store_true",
                   help="predict through scikit-learn only, not the exact numpy fast path")
    p.add_argument("--scale", choices=["standard"], default=None,
                   help="built-in models only: put a StandardScaler in front of the classifier")
    p.add_argument("--labels", choices=["en", "ko"], default="en",
                   help="species names in the table (default: en)")
    p.add_argument("--chunk-rows", type=positive_int, default=None,
                   help="rows read and predicted at a time")
    p.add_argument("--url", default=None,
                   help="evaluate through a running server (its .npy batch endpoint) instead "
                   "of in this process, e.g. http://127.0.0.1:8000")
    p.set_defaults(func=_cmd_evaluate)


def _evaluate_predictor(args: argparse.Namespace) -> Any:
    from .predictor import Predictor

    fast_path = not args.no_fast_path
    if args.models is None:
        try:
            return Predictor(ks=args.k, scale=args.scale, fast_path=fast_path,
                             labels=args.labels)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if args.scale is not None:
        raise ConfigError("--scale applies to the built-in models only; "
                          "a model directory brings its own")
    return Predictor(args.models, trust=args.trust, fast_path=fast_path, labels=args.labels)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from . import datafiles
    from .evaluate import evaluate_chunks, format_table

    chunks = datafiles.iter_chunks(args.data, args.chunk_rows or datafiles.CHUNK_ROWS)
    if args.url is not None:
        from .remote import evaluate_remote

        if args.models or args.scale or args.no_fast_path or args.trust:
            raise ConfigError("--models/--scale/--no-fast-path/--trust apply to local "
                              "evaluation; with --url the server's models answer")
        print(f"through {args.url} (POST /predict, .npy batches; rows/s = request time)")
        rows = evaluate_remote(args.url, chunks, args.k)
    else:
        rows = evaluate_chunks(_evaluate_predictor(args), chunks, args.k)
    print(format_table(rows, args.labels))
    return 0


# ---- predict (bulk, through a server) ------------------------------------------------

@command
def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict a data file through a running server")
    p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--data", required=True, help="CSV/.npy/.npz file of Length,Weight rows")
    p.add_argument("--k", type=parse_ks, default=[5], help="comma-separated k (default: 5)")
    p.add_argument("--out", default="predictions.csv",
                   help="output CSV: the input columns plus one column per k")
    p.add_argument("--chunk-rows", type=positive_int, default=200_000,
                   help="rows per request (memory stays flat; default 200,000)")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import datafiles, remote

    total = datafiles.count_rows(args.data)
    first = next(iter(datafiles.iter_chunks(args.data, 1)), None)
    has_labels = first is not None and first[1] is not None
    with tqdm(total=total, unit="rows", unit_scale=True, disable=None, leave=False) as bar:
        summary = remote.predict_to_csv(args.url, datafiles.iter_chunks(args.data, args.chunk_rows),
                                        args.k, args.out, has_labels, progress=bar)
    print(f"wrote {summary.rows:,} rows x {len(args.k)} k to {summary.out} in "
          f"{summary.seconds:.2f} s ({summary.rows * len(args.k) / summary.seconds:,.0f} "
          "predictions/s)")
    return 0


# ---- perf ----------------------------------------------------------------------------

@command
def _add_perf(sub: Any) -> None:
    p = sub.add_parser("perf", help="benchmark suites: figures and ratios side by side")
    which = p.add_subparsers(dest="suite", metavar="SUITE", parser_class=_Parser)
    which.required = True
    pred = which.add_parser("predictor", help="fast path vs scikit-learn, memory, generation")
    pred.add_argument("--rows", type=positive_int, default=10_000_000,
                      help="rows for the chunked-prediction and generation parts")
    pred.add_argument("--quick", action="store_true", help="shorter timings, at most 1M rows")
    pred.add_argument("--json", dest="json_out", default=None, metavar="FILE",
                      help="also write the figures as JSON")
    pred.set_defaults(func=_cmd_perf_predictor)
    _add_perf_serving(which)
    _add_perf_scaling(which)


def _write_json(path: str | None, data: Any) -> None:
    if path:
        import json

        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)


def _cmd_perf_predictor(args: argparse.Namespace) -> int:
    from .perf import predictor

    _write_json(args.json_out, predictor.run(big_rows=args.rows, quick=args.quick))
    return 0


def _add_load_options(p: argparse.ArgumentParser, charted: str) -> None:
    """The options ``perf serving`` and ``perf scaling`` share: the load, settling,
    and the outputs (``charted``: what the chart has one bar per)."""
    p.add_argument("--duration", type=_positive_float, default=None, metavar="SECONDS",
                   help="measured seconds per load (default 10; 3 with --quick)")
    p.add_argument("--connections", type=positive_int, default=64,
                   help="keep-alive connections, one request in flight each (default 64)")
    p.add_argument("--quick", action="store_true", help="3 s per load, 0.5 s warm-up")
    p.add_argument("--settle", type=_positive_float, default=None, metavar="SECONDS",
                   help="before each load or timing, wait up to SECONDS for an idle machine "
                   "(for a shared machine; the 'other CPU' column shows what still "
                   "interfered)")
    p.add_argument("--json", dest="json_out", default=None, metavar="FILE",
                   help="also write the figures as JSON")
    p.add_argument("--chart", default=None, metavar="FILE.png",
                   help=f"also draw requests/s per {charted} as a PNG")


def _load_from(args: argparse.Namespace) -> Any:
    from .perf.loads import Load

    duration = args.duration or (3.0 if args.quick else 10.0)
    return Load(duration_s=duration, connections=args.connections,
                warmup_s=min(0.5 if args.quick else 1.0, duration), settle_s=args.settle or 0.0)


def _add_perf_serving(which: Any) -> None:
    p = which.add_parser(
        "serving", help="every backend vs the seed's server: req/s, p50, p99, errors, ratios",
        description="Start the seed's FastAPI server (the baseline), then each backend (1 and "
                    "2 workers), one at a time, and load each with the same closed-model load "
                    "from fishpredict's bench engine. See docs/performance.md.")
    _add_load_options(p, "server")
    p.add_argument("--backends", default="starlette,aiohttp,socket",
                   help="comma-separated backends to compare (default: starlette,aiohttp,socket)")
    p.set_defaults(func=_cmd_perf_serving)


def _cmd_perf_serving(args: argparse.Namespace) -> int:
    from .perf import serving
    backends = _perf_backends(args.backends)
    load = _load_from(args)
    figures = _perf_run(lambda: serving.run(load, backends))
    _write_perf_outputs(args, figures, "serving")
    return 0


def _add_perf_scaling(which: Any) -> None:
    p = which.add_parser(
        "scaling", help="micro-batching, workers, bulk .npy vs one request per row, vs nginx",
        description="In one run: micro-batching on vs off and 2 workers vs 1 on the "
                    "scikit-learn path; 100,000 rows x 5 k through the .npy endpoint vs one "
                    "GET /fish per row the seed's way; the socket backend vs nginx answering "
                    "a fixed response; the memory of N workers vs 1. See docs/performance.md.")
    _add_load_options(p, "configuration")
    p.add_argument("--backends", default="socket",
                   help="backends for the batching and workers parts (default: socket)")
    p.add_argument("--bulk-rows", type=positive_int, default=100_000,
                   help="generated rows of the bulk part (default 100,000)")
    p.add_argument("--slice", dest="slice_requests", type=positive_int, default=None,
                   metavar="N", help="sequential GET /fish requests measured and extrapolated "
                   "(default 2,000; 500 with --quick)")
    p.add_argument("--batch-wait-us", type=_non_negative_int, default=0, metavar="US",
                   help="part a also runs batching on with this --batch-wait-us, to compare "
                   "with serve's default (default 0: no wait)")
    p.add_argument("--flat-rows", type=positive_int, default=None, metavar="N",
                   help="part c2 runs `fishpredict predict --url` on N and 10 x N rows "
                   "(default 1,000,000; 200,000, one chunk, with --quick)")
    p.add_argument("--memory-rows", type=positive_int, default=None, metavar="N",
                   help="training rows of the model part e serves (default 2,000,000; "
                   "500,000 with --quick)")
    p.add_argument("--memory-workers", type=positive_int, default=4, metavar="N",
                   help="workers part e compares with 1 (default 4)")
    p.add_argument("--parts", default="abcde",
                   help="which parts to run: any of a, b, c, d, e (a and b run together; "
                   "default: abcde)")
    p.set_defaults(func=_cmd_perf_scaling)


def _cmd_perf_scaling(args: argparse.Namespace) -> int:
    from .perf import scaling
    backends = _perf_backends(args.backends)
    load = _load_from(args)
    slice_requests = args.slice_requests or (500 if args.quick else 2000)
    figures = _perf_run(lambda: scaling.run(
        load, backends, bulk_rows=args.bulk_rows, slice_requests=slice_requests,
        parts=args.parts, wait_us=args.batch_wait_us,
        flat_rows=args.flat_rows or (200_000 if args.quick else 1_000_000),
        memory_rows=args.memory_rows or (500_000 if args.quick else 2_000_000),
        memory_workers=args.memory_workers))
    _write_perf_outputs(args, figures, "scaling")
    return 0


def _non_negative_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _perf_run(run: Callable[[], Any]) -> Any:
    """Run a suite; a server that fails to start becomes one clear error line."""
    from .testing.server import ServerError

    try:
        return run()
    except ServerError as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[-1].strip() if len(lines) > 1 else ""
        raise FishpredictError(f"{lines[0]}" + (f" ({detail})" if detail else "")) from None


def _perf_backends(text: str) -> tuple[str, ...]:
    """``--backends a,b``: each one installed and usable, checked before any server starts."""
    from .plugins import registry

    backends = tuple(b.strip() for b in text.split(",") if b.strip())
    if not backends:
        raise ConfigError("--backends needs at least one backend")
    for name in backends:
        registry().get_available_backend(name)
    return backends


def _write_perf_outputs(args: argparse.Namespace, figures: Any, suite: str) -> None:
    try:
        _write_json(args.json_out, figures)
        if args.chart:
            from .perf.chart import write_chart

            write_chart(figures, suite, args.chart)
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None


# ---- cluster up / status / down ------------------------------------------------------

@command
def _add_cluster(sub: Any) -> None:
    p = sub.add_parser("cluster", help="run N replicas behind a real nginx on loopback",
                       description="Start, inspect or stop a local cluster: N `fishpredict "
                       "serve` replicas behind nginx, configured from the same template as "
                       "docker/nginx/default.conf (see docs/cluster.md).")
    actions = p.add_subparsers(dest="cluster_command", metavar="ACTION")
    actions.required = True
    run_dir_help = "where the state, logs and nginx config live (default: ./.fishpredict-cluster)"
    up = actions.add_parser("up", help="start the replicas and nginx, wait until ready, return")
    up.add_argument("--backend", default="socket",
                    help="serving backend of every replica (default: socket)")
    up.add_argument("--replicas", type=positive_int, default=2, help="replicas (default: 2)")
    up.add_argument("--port", type=positive_int, default=8070,
                    help="nginx's port (default: 8070)")
    up.add_argument("--host", default="127.0.0.1",
                    help="nginx's address (default: 127.0.0.1; replicas are always loopback)")
    up.add_argument("--workers-per-replica", type=positive_int, default=1,
                    help="`serve --workers` of each replica (default: 1)")
    up.add_argument("--models", default=None, metavar="DIR",
                    help="model directory with manifest.json (default: the embedded models)")
    up.add_argument("--no-fast-path", dest="fast_path", action="store_false",
                    help="replicas always predict through scikit-learn")
    up.add_argument("--run-dir", default=None, help=run_dir_help)
    up.add_argument("--nginx", default=None, metavar="PATH",
                    help="nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
    up.add_argument("--startup-timeout", type=float, default=60.0,
                    help="seconds to wait for every process to be ready (default: 60)")
    up.set_defaults(func=_cmd_cluster_up)
    st = actions.add_parser("status", help="each process alive or dead, each /readyz")
    st.add_argument("--run-dir", default=None, help=run_dir_help)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_cmd_cluster_status)
    down = actions.add_parser("down", help="stop everything `up` started, remove the state")
    down.add_argument("--run-dir", default=None, help=run_dir_help)
    down.add_argument("--timeout", type=float, default=15.0,
                      help="seconds each process gets after SIGTERM before SIGKILL (default: 15)")
    down.set_defaults(func=_cmd_cluster_down)


def _cluster(args: argparse.Namespace, **options: Any) -> Any:
    from pathlib import Path

    try:
        from .cluster import DEFAULT_RUN_DIR, Cluster, ClusterConfig
    except ImportError as exc:
        raise ConfigError(f"fishpredict cluster needs {exc.name}: "
                          "pip install 'fishpredict[serve,bench]'") from None
    run_dir = Path(args.run_dir or DEFAULT_RUN_DIR)
    return Cluster(ClusterConfig(run_dir=run_dir, **options))


def _cmd_cluster_up(args: argparse.Namespace) -> int:
    cluster = _cluster(
        args, backend=args.backend, replicas=args.replicas, port=args.port, host=args.host,
        workers_per_replica=args.workers_per_replica, models=args.models,
        fast_path=args.fast_path, nginx=args.nginx, startup_timeout=args.startup_timeout)
    url = cluster.up()
    print(f"fishpredict: cluster of {args.replicas} {args.backend} replica"
          f"{'s' if args.replicas > 1 else ''} behind nginx on {url} "
          f"(run dir {cluster.run_dir})", flush=True)
    return 0


def _cmd_cluster_status(args: argparse.Namespace) -> int:
    import json

    status = _cluster(args).status()
    if args.json:
        print(json.dumps({"url": status.url, "run_dir": str(status.run_dir),
                          "healthy": status.healthy,
                          "processes": [vars(p) for p in status.processes]}, indent=2))
    else:
        print(f"cluster {status.url} (run dir {status.run_dir}): "
              f"{'healthy' if status.healthy else 'NOT healthy'}")
        for p in status.processes:
            print(f"  {p.role:<11} pid {p.pid:<8} port {p.port:<6} "
                  f"{'alive' if p.alive else 'dead':<6} {p.health}")
    return 0 if status.healthy else 1


def _cmd_cluster_down(args: argparse.Namespace) -> int:
    cluster = _cluster(args, stop_timeout=args.timeout)
    if not cluster.state_path.exists():
        print(f"fishpredict: no cluster in {cluster.run_dir}; nothing to stop")
        return 0
    killed = cluster.down()
    note = f" (killed after {args.timeout:g}s: {', '.join(killed)})" if killed else ""
    print(f"fishpredict: cluster in {cluster.run_dir} stopped{note}")
    return 0


# ---- bench ---------------------------------------------------------------------------

def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


@command
def _add_bench(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="load-test a server (closed or open model); `bench selfcheck`: engine vs wrk",
        description="Load-test a fishpredict server. Closed model (nGrinder style): PROCESSES x "
                    "THREADS virtual users, each one keep-alive connection with one request in "
                    "flight. Open model (--rate): requests at fixed intended times, latency from "
                    "the intended time. `fishpredict bench selfcheck` starts its own nginx and "
                    "compares this engine with wrk. See docs/bench.md.")
    p.add_argument("url", metavar="URL",
                   help="target, e.g. http://127.0.0.1:8000 (loopback only unless "
                        "--allow-remote); or `selfcheck`")
    g = p.add_argument_group("load shape")
    g.add_argument("--processes", type=positive_int, default=1,
                   help="worker processes, each with its own event loop (default 1)")
    g.add_argument("--threads", type=positive_int, default=16,
                   help="virtual users per process (closed model; default 16)")
    g.add_argument("--duration", type=_positive_float, default=None, metavar="SECONDS",
                   help="run time (default 10 s, or until --requests; at most 3600 s)")
    g.add_argument("--requests", type=positive_int, default=None, metavar="N",
                   help="stop after N requests in total")
    g.add_argument("--ramp-up", type=_positive_float, default=None, metavar="SECONDS",
                   help="add users stepwise: a step every SECONDS (closed model)")
    g.add_argument("--ramp-step", type=positive_int, default=None, metavar="USERS",
                   help="users added per ramp-up step (default: a tenth of all users)")
    g.add_argument("--ramp-initial", type=int, default=None, metavar="USERS",
                   help="users running from the start (default: one step)")
    g.add_argument("--rate", type=_positive_float, default=None, metavar="R",
                   help="open model: R requests/s in total at fixed intended send times")
    g.add_argument("--connections", type=positive_int, default=None,
                   help="open model: connections in total (default: rate/1000, 16..256)")
    g.add_argument("--late-ms", type=_positive_float, default=2.0,
                   help="open model: a send later than this counts as late (default 2 ms)")
    g.add_argument("--timeout", type=_positive_float, default=5.0, metavar="SECONDS",
                   help="per-request timeout (default 5 s)")
    r = p.add_argument_group("requests")
    r.add_argument("--endpoint", choices=["fish", "batch", "get"], default="fish",
                   help="fish: GET /fish; batch: POST /predict; get: GET the URL as given")
    r.add_argument("--batch-rows", type=positive_int, default=16,
                   help="rows per POST /predict request (default 16)")
    r.add_argument("--body", choices=["json", "npy"], default="json",
                   help="batch body format (default json)")
    r.add_argument("--k", type=parse_ks, default=[5], help="k, or a list cycled: 1,5,15")
    r.add_argument("--data", default=None, metavar="FILE",
                   help="rows from a CSV/.npy/.npz file (Length,Weight[,Species]); "
                        "default: generated fish")
    r.add_argument("--pool-size", type=positive_int, default=1024,
                   help="distinct pre-built requests (default 1024)")
    r.add_argument("--seed", type=int, default=0, help="seed for generated or sampled rows")
    r.add_argument("--no-check", dest="check", action="store_false",
                   help="do not check answers against the labels")
    r.add_argument("--header", type=_header, action="append", default=[], metavar="'N: V'",
                   help="extra request header (repeatable)")
    o = p.add_argument_group("engine and output")
    o.add_argument("--engine", choices=["native", "wrk"], default="native",
                   help="native (default) or wrk, for comparison")
    o.add_argument("--compare-wrk", action="store_true",
                   help="run the native engine, then wrk, same settings; print both")
    o.add_argument("--no-uvloop", dest="uvloop", action="store_false",
                   help="use asyncio's own event loop")
    o.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback target (only a host you own)")
    o.add_argument("--out-json", default=None, metavar="FILE", help="write the result as JSON")
    o.add_argument("--out-csv", default=None, metavar="FILE",
                   help="write the per-second timeline as CSV")
    o.add_argument("--chart", default=None, metavar="FILE.png",
                   help="draw TPS, latency and users over time")
    o.add_argument("--quiet", action="store_true", help="no live progress")
    s = p.add_argument_group("selfcheck (URL = selfcheck)")
    s.add_argument("--rounds", type=positive_int, default=3,
                   help="wrk/native pairs to run (default 3)")
    s.add_argument("--users", type=int, default=1000,
                   help="virtual users of the final many-users phase (0 skips it)")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.url == "selfcheck":
        from .bench.selfcheck import selfcheck

        report = selfcheck(seconds=args.duration or 5.0, connections=args.connections or 64,
                           rounds=args.rounds, users=args.users, processes=args.processes)
        return 0 if report.speed_ok and report.users_ok else 1

    from .bench import BenchConfig, run_bench
    from .bench.report import format_text, write_csv, write_json

    config = BenchConfig(
        url=args.url, processes=args.processes, threads=args.threads, duration_s=args.duration,
        requests=args.requests, ramp_up_s=args.ramp_up, ramp_step=args.ramp_step,
        ramp_initial=args.ramp_initial, rate=args.rate, connections=args.connections,
        endpoint=args.endpoint, batch_rows=args.batch_rows, body=args.body, ks=tuple(args.k),
        data=args.data, pool_size=args.pool_size, seed=args.seed, check_answers=args.check,
        timeout_s=args.timeout, late_ms=args.late_ms, engine=args.engine,
        allow_remote=args.allow_remote, use_uvloop=args.uvloop,
        progress=not args.quiet, extra_headers=tuple(args.header),
    ).validated()
    result = run_bench(config)
    print(format_text(result))
    if args.compare_wrk and config.engine == "native":
        other = run_bench(config.with_(engine="wrk", progress=False))
        print()
        print(format_text(other))
        ratio = result.rps / other.rps if other.rps else float("nan")
        print(f"\nnative {result.rps:,.0f} req/s   wrk {other.rps:,.0f} req/s   "
              f"native/wrk {ratio:.3f}")
    try:
        if args.out_json:
            write_json(result, args.out_json)
        if args.out_csv:
            write_csv(result, args.out_csv)
        if args.chart:
            from .bench.chart import write_chart

            write_chart(result, args.chart)
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None
    return 0 if result.successes else 1


# ---- experiment ----------------------------------------------------------------------

@command
def _add_experiment(sub: Any) -> None:
    p = sub.add_parser("experiment", help="reproduce the seed's experiments, write a report",
                       description="Experiments from the seed's write-up, run on this machine "
                       "in one run, reported side by side (Markdown + PNG charts).")
    which = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    which.required = True
    s = which.add_parser(
        "seed", help="the seed's four experiments: unpickle per request, backends, "
        "nginx + replicas, 100,000 rows per row vs batch",
        description="Runs on loopback: (1) the seed's FastAPI server unpickling per request "
        "vs loading once, (2) each fishpredict backend under the same load, (3) one vs two "
        "replicas behind nginx, (4) 100,000 rows x 5 k per row (extrapolated from a slice) vs "
        "the batch endpoint. Writes OUT and OUT-without-.md/*.png. Progress on stderr.")
    s.add_argument("--quick", action="store_true",
                   help="short loads and slices (about 2 minutes in all; what CI runs)")
    s.add_argument("--out", default="docs/seed-report.md", metavar="FILE.md",
                   help="the report (default docs/seed-report.md; charts in docs/seed-report/)")
    s.add_argument("--duration", type=_positive_float, default=None, metavar="SECONDS",
                   help="seconds per load (default 30, --quick 5)")
    s.add_argument("--users", type=positive_int, default=1000,
                   help="virtual users at the end of the ramp-up (default 1000, as the seed)")
    s.add_argument("--slice", type=positive_int, default=None, metavar="N",
                   help="sequential per-row requests timed per k and server "
                        "(default 2000, --quick 300)")
    s.set_defaults(func=_cmd_experiment_seed)


def _cmd_experiment_seed(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from .experiment import SeedOptions, run_seed

    argv = ["fishpredict", "experiment", "seed"] + (["--quick"] if args.quick else [])
    argv += ["--out", args.out]
    if args.duration is not None:
        argv += ["--duration", f"{args.duration:g}"]
    if args.users != 1000:
        argv += ["--users", str(args.users)]
    if args.slice is not None:
        argv += ["--slice", str(args.slice)]
    options = SeedOptions(out=Path(args.out), quick=args.quick, duration_s=args.duration,
                          users=args.users, slice_requests=args.slice, command=shlex.join(argv))
    paths = run_seed(options)
    for path in paths:
        print(path)
    return 0


# ---- soak ----------------------------------------------------------------------------

@command
def _add_soak(sub: Any) -> None:
    p = sub.add_parser(
        "soak", help="a bounded high-load run of good and bad requests: nothing lost, memory flat",
        description="Load a server for --duration seconds with a fixed mix of good requests "
                    "(every answer checked) and bad ones (each must get its 4xx). Prints "
                    "requests served, answers by status, unexpected errors and the server's "
                    "memory; exits 1 on any unexpected error or RSS growth over the limit. "
                    "See docs/reliability.md.")
    p.add_argument("url", metavar="URL", nargs="?", default=None,
                   help="a running server (loopback unless --allow-remote); default: start "
                        "one with --backend")
    p.add_argument("--backend", default=None,
                   help="start a server of this backend for the run (default: socket)")
    p.add_argument("--duration", type=_positive_float, default=60.0, metavar="SECONDS",
                   help="how long to load (default 60; at most 3600)")
    p.add_argument("--connections", type=positive_int, default=32,
                   help="keep-alive connections kept busy (default 32)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="workers of the server the soak starts (default 1)")
    p.add_argument("--max-body-bytes", type=positive_int, default=64 * 1024,
                   help="the server's body limit; a started server gets it (default 65536)")
    p.add_argument("--max-batch-rows", type=positive_int, default=1000,
                   help="the server's batch limit; a started server gets it (default 1000)")
    p.add_argument("--pid", type=positive_int, default=None,
                   help="pid of the server at URL, to read its memory")
    p.add_argument("--max-rss-growth", type=float, default=10.0, metavar="PERCENT",
                   help="fail if the server's RSS grows more than this after warm-up "
                        "(default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback URL (only a host you own)")
    p.add_argument("--out-json", default=None, metavar="FILE", help="write the figures as JSON")
    p.set_defaults(func=_cmd_soak)


def _cmd_soak(args: argparse.Namespace) -> int:
    from .soak import SoakConfig, format_text, run_soak, to_json

    if args.url is not None and args.backend is not None:
        raise ConfigError("give either a URL or --backend, not both")
    config = SoakConfig(
        url=args.url, backend=args.backend or "socket", duration_s=args.duration,
        connections=args.connections, workers=args.workers, max_body_bytes=args.max_body_bytes,
        max_batch_rows=args.max_batch_rows, pid=args.pid, max_rss_growth_pct=args.max_rss_growth,
        seed=args.seed, allow_remote=args.allow_remote,
    )
    result = run_soak(config)
    print(format_text(result))
    if args.out_json:
        try:
            with open(args.out_json, "w", encoding="utf-8") as f:
                f.write(to_json(result))
        except OSError as exc:
            raise ConfigError(f"cannot write {args.out_json}: {exc.strerror}") from None
    return 0 if result.passed else 1


# ---- the parser ----------------------------------------------------------------------



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
