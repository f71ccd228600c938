"""``spendgraph tokens count``: a messages file's prompt tokens, as a model family counts them.

The file is a JSON list of OpenAI chat messages (what a request's ``messages``
holds); ``--tools`` a JSON list of OpenAI tools. The count is what the ledger
books for a call to an endpoint with that ``tokenizer``: exact for a model
family (its chat template and vocabulary), OpenAI's recipe for a tiktoken
encoding. ``--show`` prints the rendered prompt, so a template can be checked
against what the server logs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError, JsonOption, handled_errors
from spendgraph.providers.config import TOKENIZER_ENCODINGS
from spendgraph.providers.templates import render
from spendgraph.providers.tokens import FAMILIES, count_prompt

app = typer.Typer(
    help="Count a messages file's prompt tokens as a model family's template does.",
    no_args_is_help=True,
)

FamilyOption = Annotated[
    str,
    typer.Option(
        "--model-family",
        "-m",
        help=f"One of {', '.join(TOKENIZER_ENCODINGS)} (an endpoint's `tokenizer`).",
    ),
]


def _load_list(path: Path, what: str) -> list[dict[str, Any]]:
    """A JSON list of objects from ``path``; a clear error naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path}: the {what} file is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, list):
        raise CommandError(f"{path}: expected a JSON list of {what}, got a {type(data).__name__}")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise CommandError(f"{path}: {what}[{index}] is a {type(item).__name__}, not an object")
    return data


def _check_messages(path: Path, messages: list[dict[str, Any]]) -> None:
    if not messages:
        raise CommandError(f"{path}: the list of messages is empty")
    for index, message in enumerate(messages):
        if not isinstance(message.get("role"), str):
            raise CommandError(f'{path}: messages[{index}] has no "role" string')


@app.command("count")
def count(
    messages_file: Annotated[
        Path, typer.Argument(metavar="FILE.json", help="A JSON list of OpenAI chat messages.")
    ],
    family: FamilyOption,
    tools_file: Annotated[
        Path | None, typer.Option("--tools", help="A JSON list of OpenAI tools.")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the rendered prompt too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the prompt tokens of FILE.json's messages for a model of the given family."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        if family not in TOKENIZER_ENCODINGS:
            raise CommandError(
                f"--model-family {family!r} is not one of {', '.join(TOKENIZER_ENCODINGS)}"
            )
        messages = _load_list(messages_file, "messages")
        _check_messages(messages_file, messages)
        tools = _load_list(tools_file, "tools") if tools_file is not None else None
        counted = count_prompt(messages, family, tools=tools)
        shown = (show or as_json) and family in FAMILIES  # OpenAI's recipe renders nothing
        rendered = render(family, messages, tools) if shown else None
    how = "exact" if counted.exact else "estimated"
    if as_json:
        payload = {"family": family, "prompt_tokens": counted.tokens, "exact": counted.exact}
        out.emit_json({**payload, "messages": len(messages), "rendered": rendered})
        return
    if show and rendered is not None:
        out.print(rendered, markup=False, highlight=False)
    out.print(f"{counted.tokens} prompt tokens ({family}, {how})", highlight=False)
