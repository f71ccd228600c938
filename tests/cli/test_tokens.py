"""`spendgraph tokens count`: a messages file's prompt tokens per family; bad input refused."""

from __future__ import annotations

import json

import pytest

from spendgraph.providers.tokens import encoding

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
QWEN25 = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def _error(result) -> str:
    return result.stderr.replace("\n", "")  # rich wraps long lines


@pytest.fixture
def messages_file(tmp_path):
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(MESSAGES))
    return path


def test_prints_the_exact_count_of_the_rendered_template(cli, messages_file):
    result = cli("tokens", "count", "--model-family", "qwen2.5", str(messages_file), "--show")
    assert result.exit_code == 0, result.output
    expected = len(encoding("qwen2").encode(QWEN25, allowed_special="all"))
    assert result.stdout == QWEN25 + f"\n{expected} prompt tokens (qwen2.5, exact)\n"


def test_json_gives_the_count_and_the_rendered_prompt(cli, messages_file, tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {"name": "now"}}]))
    result = cli(
        "tokens", "count", "-m", "llama3.1", str(messages_file), "--tools", str(tools), "--json"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rendered = payload.pop("rendered")
    assert "Environment: ipython\n" in rendered and '"name": "now"' in rendered
    expected = len(encoding("llama3").encode(rendered, allowed_special="all"))
    assert payload == {
        "family": "llama3.1",
        "prompt_tokens": expected,
        "exact": True,
        "messages": 2,
    }


def test_an_openai_encoding_is_an_estimate_and_renders_nothing(cli, messages_file):
    result = cli("tokens", "count", "-m", "o200k_base", str(messages_file), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (
        payload["exact"] is False and payload["rendered"] is None and payload["prompt_tokens"] > 0
    )


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ('[{"role": "user", "content": "hi"}', "not JSON (line 1, column 35"),
        ('{"role": "user"}', "expected a JSON list of messages, got a dict"),
        ("[]", "the list of messages is empty"),
        ('["hi"]', "messages[0] is a str, not an object"),
        ('[{"content": "hi"}]', 'messages[0] has no "role" string'),
    ],
)
def test_a_bad_messages_file_is_named_with_what_is_wrong(cli, tmp_path, contents, message):
    path = tmp_path / "bad.json"
    path.write_text(contents)
    result = cli("tokens", "count", "-m", "qwen3", str(path))
    assert result.exit_code == 1
    error = _error(result)
    assert error.startswith(f"error: {path}: ") and message in error


def test_a_missing_file_and_an_unknown_family_are_refused(cli, messages_file, tmp_path):
    missing = cli("tokens", "count", "-m", "qwen3", str(tmp_path / "nope.json"))
    assert missing.exit_code == 1 and "cannot read the messages file" in _error(missing)
    unknown = cli("tokens", "count", "-m", "llama4", str(messages_file))
    assert unknown.exit_code == 1 and "--model-family 'llama4' is not one of" in _error(unknown)
    bad_tools = tmp_path / "tools.json"
    bad_tools.write_text('{"name": "now"}')
    tools = cli("tokens", "count", "-m", "qwen3", str(messages_file), "--tools", str(bad_tools))
    assert tools.exit_code == 1 and "expected a JSON list of tools, got a dict" in _error(tools)
