"""Exact prompt counts per model family vs OpenAI's recipe, on the same conversations.

    python benchmarks/token_counting.py --conversations 200 --repeat 5

Counting runs on the hot path under a budget (before each call) and after a
call the server sent no usage for. Each family renders its chat template and
tokenizes the result; the baseline is ``count_chat`` with ``o200k_base``
(OpenAI's per-message recipe, no template). The conversations are those of
``tests/support/chat_conversations.py`` (tools, system prompts, several turns),
the ones the exactness tests use. The table shows the best time per conversation
counted afresh (no count cache) and its ratio to the baseline, and the time with
a warm count cache (the same conversations again, as a thread re-sends its
history: only texts of 256 characters or more are cached, so these short
messages gain little; benchmarks/long_prompts.py has long ones). Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from chat_conversations import conversation

from spendgraph.providers.count_cache import CountCache
from spendgraph.providers.tokens import FAMILIES, count_prompt, encoding

BASELINE = "o200k_base"


def _best_seconds(tokenizer: str, conversations, repeat: int, counts: CountCache) -> float:
    encoding(tokenizer)  # loading a vocabulary is a one-off, not counting
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for messages, tools in conversations:
            count_prompt(messages, tokenizer, tools=tools, counts=counts)
        best = min(best, time.perf_counter() - started)
    return best


def _row(tokenizer: str, conversations, repeat: int) -> tuple[float, float]:
    """Seconds for all conversations counted afresh, and again with a warm cache."""
    fresh = _best_seconds(tokenizer, conversations, repeat, CountCache(max_entries=0))
    warm = CountCache()
    _best_seconds(tokenizer, conversations, 1, warm)
    return fresh, _best_seconds(tokenizer, conversations, repeat, warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    conversations = [conversation(seed) for seed in range(args.conversations)]
    rows = {t: _row(t, conversations, args.repeat) for t in (BASELINE, *FAMILIES)}
    baseline = rows[BASELINE][0]
    table = Table(
        title=f"Prompt counting, {len(conversations)} conversations, best of {args.repeat}"
    )
    for column in ("tokenizer", "µs per conversation", "vs recipe", "µs, warm count cache"):
        table.add_column(column, justify="left" if column == "tokenizer" else "right")
    for tokenizer, (fresh, warm) in rows.items():
        name = f"{BASELINE} (recipe)" if tokenizer == BASELINE else tokenizer
        per = len(conversations) / 1e6
        table.add_row(name, f"{fresh / per:,.0f}", f"{fresh / baseline:.2f}x", f"{warm / per:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
