"""The chat's live region: parallel agents' streams apart, the partial answer kept."""

from __future__ import annotations

import io

from rich.console import Console

from spendgraph.cli.chat_view import LiveTurn
from spendgraph.cli.console import Output
from spendgraph.graph.events import AgentFinished, AgentStarted, TokenDelta


def _output() -> tuple[Output, io.StringIO]:
    screen = io.StringIO()
    console = Console(file=screen, width=80, no_color=True, force_terminal=False)
    return Output(console=console, errors=console), screen


def _rendered(out: Output, turn: LiveTurn) -> list[str]:
    with out.console.capture() as captured:
        out.console.print(turn.view())
    return [line.rstrip() for line in captured.get().splitlines()]


def test_parallel_streams_are_shown_one_line_each_never_interleaved():
    out, _ = _output()
    turn = LiveTurn(out)
    for path in ("supervisor/pricing", "supervisor/hardware"):
        turn.event(AgentStarted(path.split("/")[1], path, path))
    for word in ("one", "two", "three"):  # the tokens arrive interleaved
        turn.event(TokenDelta("pricing", "supervisor/pricing", f"price-{word} "))
        turn.event(TokenDelta("hardware", "supervisor/hardware", f"gpu-{word} "))
    lines = _rendered(out, turn)
    assert "2 agents" in lines[0]
    assert "supervisor/pricing: price-one price-two price-three" in lines
    assert "supervisor/hardware: gpu-one gpu-two gpu-three" in lines
    # One agent left streaming: its text is shown whole again, as a single answer.
    turn.event(AgentFinished("pricing", "supervisor/pricing", "", 1))
    turn.event(AgentFinished("hardware", "supervisor/hardware", "", 1))
    turn.event(AgentStarted("synthesizer", "supervisor/synthesizer", "synthesizer"))
    turn.event(TokenDelta("synthesizer", "supervisor/synthesizer", "The answer."))
    lines = _rendered(out, turn)
    assert "supervisor/synthesizer" in lines[0]
    assert "The answer." in lines and not any("price-" in line for line in lines)


def test_a_cut_turn_leaves_its_streamed_text_on_screen():
    out, screen = _output()
    try:
        with LiveTurn(out) as turn:
            turn.event(AgentStarted("assistant", "assistant", "assistant"))
            turn.event(TokenDelta("assistant", "assistant", "Half of an answer"))
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert "Half of an answer" in screen.getvalue()


def test_a_finished_turn_leaves_nothing_of_the_live_region():
    out, screen = _output()
    with LiveTurn(out) as turn:
        turn.event(AgentStarted("assistant", "assistant", "assistant"))
        turn.event(TokenDelta("assistant", "assistant", "streamed"))
    assert "streamed" not in screen.getvalue()  # the answer is printed once, by show_turn


def test_a_long_parallel_stream_shows_its_latest_words():
    out, _ = _output()
    turn = LiveTurn(out)
    for path in ("a", "b"):
        turn.event(AgentStarted(path, path, path))
    turn.event(TokenDelta("a", "a", "old " * 40 + "newest"))
    turn.event(TokenDelta("b", "b", "short"))
    (line,) = [line for line in _rendered(out, turn) if line.startswith("a: ")]
    assert line.endswith("newest") and line.startswith("a: …") and len(line) <= 80
