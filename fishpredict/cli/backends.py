"""``fishpredict backends``: the serving backends plugins provide."""

from __future__ import annotations

import click

from fishpredict.cli.options import json_option, write_json


@click.command(short_help="list the serving backends plugins provide")
@json_option("print JSON (to FILE if given)")
def backends(json_out: str | None) -> int:
    """List the serving backends plugins provide."""
    from fishpredict.plugins import list_backends

    infos = list_backends()
    if json_out is not None:
        write_json(json_out, [i.as_dict() for i in infos])
        return 0
    rows = [("NAME", "PLUGIN", "DISTRIBUTION", "VERSION", "AVAILABLE", "SUMMARY")]
    for i in infos:
        avail = "yes" if i.available else f"no (missing {', '.join(i.missing)})"
        rows.append((i.name, i.plugin, i.distribution, i.version, avail, i.summary))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True))
                   + "  " + r[-1])
    return 0
