"""The README's graph code runs as written: so it cannot drift from the API.

The "A custom graph" block is executed as a module (its ``__main__`` part is
skipped) and its graph run on this suite's simulator, into the test ledger.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from spendgraph.providers.ledger.records import CallStatus, QueryStatus

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(heading: str) -> str:
    """The first ``python`` code block of the README section titled ``heading``."""
    text = README.read_text()
    _, found, rest = text.partition(f"\n## {heading}\n")
    assert found, f"README.md has no section {heading!r}"
    section = rest.split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"README.md section {heading!r} has no python block"
    return match.group(1)


BLOCK = readme_block("A custom graph")


def test_the_custom_graph_imports_two_spendgraph_modules():
    imported = set()
    for node in ast.walk(ast.parse(BLOCK)):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.split(".")[0] == "spendgraph"}
    assert ours == {"spendgraph.graph", "spendgraph.providers"}


async def test_the_custom_graph_answers_and_its_call_is_in_the_ledger(
    layer, ledger, ledger_rows, capsys
):
    module = {"__name__": "readme_custom_graph"}
    exec(compile(BLOCK, f"{README}:A custom graph", "exec"), module)
    result = await module["ask"](layer, "why does ttft matter for voice")
    assert result.status is QueryStatus.OK and result.stop_reason == "done"
    assert result.answer and result.answer == result.outputs[-1].content
    assert result.steps == 1
    assert result.state["messages"] == [
        {"role": "user", "content": "why does ttft matter for voice"},
        {"role": "assistant", "content": result.answer},
    ]
    rows = ledger_rows(result)
    assert [(row.agent_path, row.status) for row in rows] == [("explainer", CallStatus.OK)]
    assert ledger.query_summary(result.query_id).query.app == "explain"
    printed = capsys.readouterr().out
    assert result.answer in printed and result.spend.describe() in printed
