"""The root ``fishpredict`` group: commands from this package and from plugins, and
how every error ends (one line on stderr, a non-zero exit, never a traceback).

The core commands are added in :mod:`fishpredict.cli`; every other command
group (the built-in bench, perf, experiment, cluster and soak, and third-party
ones) arrives through the ``register_commands(cli)`` hook, the first time the
group is asked for its commands (``--help``, or resolving a command name), not
when the module is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from fishpredict import __version__
from fishpredict.errors import ConfigError, FishpredictError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class FishpredictGroup(click.Group):
    """A group that lists commands in the order they were added, loads plugin
    commands lazily, and turns errors into one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins_loaded = False

    def load_plugin_commands(self) -> None:
        """Ask every plugin (built-in ones first) to add its commands (once)."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        # Imported when commands are listed or looked up, not for `fishpredict serve`:
        # the command groups that are not the core arrive as plugins, in this order.
        from fishpredict.cli import bench, cluster, experiment, perf, soak
        from fishpredict.plugins import registry

        builtin = (perf, cluster, bench, experiment, soak)
        for plugin, why in registry().register_commands(self, builtin).items():
            click.echo(f"fishpredict: plugin {plugin!r} added no commands: {why}", err=True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugin_commands()
        return list(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self.load_plugin_commands()
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except FishpredictError as exc:
            _fail(ctx, f"error: {exc}")
            return 2 if isinstance(exc, ConfigError) else 1
        except KeyboardInterrupt:
            _fail(ctx, "interrupted")
            return 130
        except BrokenPipeError:
            return 0
        except Exception as exc:  # last resort: one line, never a traceback
            if os.environ.get("FISHPREDICT_DEBUG"):
                raise
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc} "
                  "(set FISHPREDICT_DEBUG=1 for the traceback)")
            return 1


def _fail(ctx: click.Context, message: str) -> None:
    command = ctx.invoked_subcommand
    prefix = f"{ctx.command_path} {command}" if command else ctx.command_path
    click.echo(f"{prefix}: {_one_line(message)}", err=True)


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


@click.group(cls=FishpredictGroup, context_settings=CONTEXT,
             help="Serve a scikit-learn model over HTTP and measure how fast it serves.")
@click.version_option(__version__, "--version", prog_name="fishpredict",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """The root group (its help text is above)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    A usage error (an unknown option, a value out of range) prints one line and
    raises ``SystemExit(2)``, as argparse did; an error a command raises is one
    line and the returned code (2 for a bad option value, 1 otherwise).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = cli.main(args=args, prog_name="fishpredict", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        raise SystemExit(2) from None
    except click.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else "fishpredict"
        click.echo(f"{path}: error: {_one_line(exc.format_message())} "
                   f"(see {path} --help)", err=True)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        click.echo(f"fishpredict: error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except click.Abort:
        click.echo("fishpredict: interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0
