"""`--help` of every command: flags show no type, arguments are upper-case placeholders."""

from __future__ import annotations

import re

import typer

from spendgraph.cli.main import app


def _command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*prefix, name))
    return paths


def test_every_help_shows_flags_without_a_type_and_upper_case_arguments(cli):
    paths = _command_paths(typer.main.get_command(app))
    assert ("audit", "show") in paths and ("endpoints", "calibrate") in paths
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        out = result.stdout
        assert "<bool>" not in out, path
        usage = next(line for line in out.splitlines() if "Usage:" in line)
        # Placeholders like {APP} [INPUT] {QUERY_ID}: never lower-case ones like {query_id}.
        assert not re.search(r"[{\[][a-z_]+[}\]]", usage), (path, usage)


def test_a_flag_still_reads_as_one_and_a_missing_argument_is_named(cli):
    out = cli("run", "--help").stdout
    assert re.search(r"--sim\s+Start the fleet simulator", out)
    result = cli("audit", "show")
    assert result.exit_code == 2
    assert "Missing argument 'QUERY_ID'" in result.output
