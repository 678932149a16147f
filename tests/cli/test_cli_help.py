"""Every command's ``--help`` names the options it named under argparse, or README.md
says what changed (the renames below); every command of before is still there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fishpredict.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
#: options renamed in the click rewrite: old -> new (README's "What changed")
RENAMED = {"--out-json": "--json", "--out-csv": "--csv"}

#: the options each command's --help named under argparse (before the click rewrite)
ARGPARSE_HELP: dict[str, str] = {
    "backends": "--json",
    "bench": (
        "--allow-remote --batch-rows --body --chart --compare-wrk --connections --data "
        "--duration --endpoint --engine --header --k --late-ms --no-check --no-uvloop "
        "--out-csv --out-json --pool-size --processes --quiet --ramp-initial --ramp-step "
        "--ramp-up --rate --requests --rounds --seed --threads --timeout --users"
    ),
    "cluster": "",
    "cluster down": "--run-dir --timeout",
    "cluster status": "--json --run-dir",
    "cluster up": (
        "--backend --host --models --nginx --no-fast-path --port --replicas --run-dir "
        "--startup-timeout --workers --workers-per-replica"
    ),
    "data": "",
    "data generate": "--chunk-rows --out --rows --seed",
    "data sample": "--chunk-rows --data --n --out --rows --seed",
    "evaluate": "--chunk-rows --data --k --labels --models --no-fast-path --scale --trust --url",
    "experiment": "",
    "experiment seed": "--duration --out --quick --slice --users",
    "perf": "",
    "perf predictor": "--json --quick --rows",
    "perf scaling": (
        "--backends --batch-wait-us --bulk-rows --chart --connections --duration --flat-rows "
        "--json --memory-rows --memory-workers --parts --quick --settle --slice --url"
    ),
    "perf serving": "--backends --chart --connections --duration --json --quick --settle",
    "predict": "--chunk-rows --data --k --out --url",
    "serve": (
        "--admin-token-env --backend --batch-max --batch-wait-us --drain-timeout "
        "--header-timeout --host --keepalive-timeout --labels --log-level --max-batch-rows "
        "--max-body-bytes --max-connections --max-inflight --models --no-cache --no-fast-path "
        "--port --request-timeout --retry-after --shared-socket --trust --workers"
    ),
    "soak": (
        "--allow-remote --backend --connections --duration --max-batch-rows --max-body-bytes "
        "--max-rss-growth --out-json --pid --seed --workers"
    ),
    "train": "--k --out --scale",
}


def help_text(command: str) -> str:
    result = CliRunner().invoke(cli, [*command.split(), "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", sorted(ARGPARSE_HELP))
def test_help_names_every_option_of_before(command: str) -> None:
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text(command)))
    for option in ARGPARSE_HELP[command].split():
        assert RENAMED.get(option, option) in named, f"{command} --help lacks {option}"


def test_every_rename_is_in_the_readme() -> None:
    text = README.read_text("utf-8")
    changed = text[text.index("What changed when the CLI moved from argparse to click"):]
    for old, new in RENAMED.items():
        assert f"{old}`" in changed and f"`{new}`" in changed, old


def test_every_subcommand_of_before_is_listed() -> None:
    for group in {c.split()[0] for c in ARGPARSE_HELP if " " in c}:
        text = help_text(group)
        for command in (c for c in ARGPARSE_HELP if c.startswith(group + " ")):
            assert re.search(rf"^  {command.split()[1]}\s", text, re.M), command
