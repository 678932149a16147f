"""What several commands share: click parameter types, option decorators, JSON output.

Each decorator adds one option (or a fixed set of options) the same way wherever
it appears, so that ``--models``, ``--no-fast-path``, ``--json FILE`` and the
load options of the perf suites are declared once. Ranges are click's own types
(:class:`click.IntRange`, :class:`click.FloatRange`), choices
:class:`click.Choice`. Nothing here imports scikit-learn: defaults that need it
(the k list of the built-in models) are computed when a command's help or
callback asks for them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from fishpredict.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

#: integers >= 1 (rows, workers, connections, ...)
POSITIVE_INT = click.IntRange(min=1)
#: integers >= 0 (seeds)
NON_NEGATIVE_INT = click.IntRange(min=0)
#: finite numbers >= 0 (timeouts)
SECONDS = click.FloatRange(min=0.0, max=float("inf"), max_open=True)
#: numbers > 0 (durations, rates)
POSITIVE_FLOAT = click.FloatRange(min=0.0, min_open=True)
LANGUAGES = click.Choice(["en", "ko"])


class IntList(click.ParamType[list[int]]):
    """``1,5,15`` -> ``[1, 5, 15]``: a comma-separated list of positive integers."""

    name = "K,K,..."

    def __init__(self, what: str = "k") -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> list[int]:
        if isinstance(value, (list, tuple)):
            return [int(v) for v in value]
        text = str(value)
        try:
            ks = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            self.fail(f"{self.what} must be a comma-separated list of integers, got {text!r}",
                      param, ctx)
        if not ks or any(k < 1 for k in ks):
            self.fail(f"{self.what} values must be positive integers, got {text!r}", param, ctx)
        return ks


class Header(click.ParamType[tuple[str, str]]):
    """``'Name: value'`` -> ``("Name", "value")``."""

    name = "'N: V'"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return cast(tuple[str, str], value)
        name, sep, rest = str(value).partition(":")
        if not sep or not name.strip():
            self.fail(f"expected 'Name: value', got {value!r}", param, ctx)
        return name.strip(), rest.strip()


class ModelPath(click.ParamType[tuple[str | None, str]]):
    """``[NAME=]PATH``: a model file or a directory, optionally served under NAME.

    ``NAME=`` is read off the front only when what precedes the ``=`` has no
    path separator and the whole text is not itself an existing path.
    """

    name = "[NAME=]PATH"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str | None, str]:
        if isinstance(value, tuple):
            return cast(tuple[str | None, str], value)
        text = str(value)
        name, sep, path = text.partition("=")
        if sep and name and os.sep not in name and not os.path.exists(text):
            if not path:
                self.fail(f"expected NAME=PATH, got {text!r}", param, ctx)
            return name, path
        return None, text


class LazyDefault(click.Option):
    """An option whose callable default is shown by its value in ``--help``
    (click shows ``(dynamic)`` otherwise); it is computed only then."""

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        return super().get_default(ctx, call=True)


def default_ks() -> str:
    """The built-in models' k list, ``artifacts.DEFAULT_KS`` (imports scikit-learn)."""
    from fishpredict.fish.training import DEFAULT_KS

    return ",".join(str(k) for k in DEFAULT_KS)


def k_option(default: str | Callable[[], str] = default_ks,
             help: str = "comma-separated neighbour counts") -> Callable[[F], F]:
    """``--k 1,5,15``; the default is the built-in models' k list unless given."""
    return click.option("--k", "ks", type=IntList(), default=default, show_default=True,
                        cls=LazyDefault if callable(default) else click.Option, help=help)


# ---- models ----------------------------------------------------------------------------

def models_option(help: str = "a model file or directory (with a manifest.json, or holding "
                  "model files), optionally served as NAME; repeatable (default: the "
                  "embedded fish models)") -> Callable[[F], F]:
    return click.option("--models", "models", type=ModelPath(), multiple=True, help=help)


def trust_option(help: str = "load joblib/pickle files no manifest sha256 vouches for "
                 "(unpickling runs code: only files you made)") -> Callable[[F], F]:
    return click.option("--trust", is_flag=True, help=help)


def fast_path_option(help: str = "always predict through scikit-learn (for comparison)"
                     ) -> Callable[[F], F]:
    return click.option("--no-fast-path", "fast_path", is_flag=True, flag_value=False,
                        default=True, help=help)


def labels_option(help: str = "class names in answers, for models that have them: "
                  "en (bream/smelt) or ko (도미/빙어)") -> Callable[[F], F]:
    return click.option("--labels", type=LANGUAGES, default="en", show_default=True, help=help)


def predictor_options(func: F) -> F:
    """``--models``, ``--trust``, ``--no-fast-path`` and ``--labels``."""
    for option in reversed((models_option(), trust_option(), fast_path_option(),
                            labels_option())):
        func = option(func)
    return func


def model_sources(specs: Sequence[tuple[str | None, str]]) -> Any:
    """``--models`` values as a Predictor's ``models``: None (the embedded models),
    or a list of :class:`fishpredict.models.store.Source`."""
    if not specs:
        return None
    from fishpredict.models.store import Source

    return [Source(Path(path), name) for name, path in specs]


def model_args(specs: Sequence[tuple[str | None, str]]) -> list[str]:
    """``--models`` values as ``serve`` arguments, paths made absolute (for replicas
    started elsewhere)."""
    out: list[str] = []
    for name, path in specs:
        full = str(Path(path).expanduser().resolve())
        out += ["--models", f"{name}={full}" if name else full]
    return out


# ---- outputs ---------------------------------------------------------------------------

def json_option(help: str = "write the result as JSON to FILE ('-' or no FILE: stdout)"
                ) -> Callable[[F], F]:
    """``--json FILE``: every command spells its JSON output this way."""
    return click.option("--json", "json_out", metavar="FILE", is_flag=False, flag_value="-",
                        default=None, help=help)


def chart_option(charted: str) -> Callable[[F], F]:
    return click.option("--chart", metavar="FILE.png", default=None,
                        help=f"also draw {charted} as a PNG")


def quick_option(help: str) -> Callable[[F], F]:
    return click.option("--quick", is_flag=True, help=help)


def write_json(path: str | None, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` (``-``: stdout; None: nothing)."""
    if path is None:
        return
    text = json.dumps(data, indent=2, default=str)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    write_text(path, text + "\n")


def write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def load_options(charted: str) -> Callable[[F], F]:
    """The load every perf suite that runs servers shares: duration, connections,
    settling, and the outputs (``charted``: what the chart has one bar per)."""
    options = (
        click.option("--duration", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
                     help="measured seconds per load (default 10; 3 with --quick)"),
        click.option("--connections", type=POSITIVE_INT, default=64, show_default=True,
                     help="keep-alive connections, one request in flight each"),
        quick_option("3 s per load, 0.5 s warm-up"),
        click.option("--settle", type=POSITIVE_FLOAT, default=None, metavar="SECONDS",
                     help="before each load or timing, wait up to SECONDS for an idle "
                     "machine (for a shared machine; the 'other CPU' column shows what "
                     "still interfered)"),
        json_option("also write the figures as JSON to FILE ('-': stdout)"),
        chart_option(f"requests/s per {charted}"),
    )

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
