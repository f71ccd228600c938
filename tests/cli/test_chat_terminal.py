"""`spendgraph chat` on a real terminal (a pseudo-terminal): what a person sees.

The chat runs as a subprocess whose stdin/stdout/stderr are a pty, so rich
draws its spinner and live region as on a desktop terminal; the tests read the
screen's bytes (escape codes stripped) and type as a person would.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from spendgraph.providers.ledger import Ledger, QueryStatus

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Terminal:
    """A ``spendgraph chat`` process on a pty: ``expect`` text, ``type`` keys."""

    def __init__(self, tmp_path, *args: str, command: list[str] | None = None):
        """``spendgraph chat *args``, or ``command`` instead."""
        self.master, slave = pty.openpty()
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120", "LINES": "40", "TERM": "xterm"}
        env.pop("SPENDGRAPH_CONFIG", None)
        env["SPENDGRAPH_LEDGER"] = str(tmp_path / "chat.db")
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "spendgraph.cli.main", "chat", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
        os.close(slave)
        self.screen = ""  # what was written, escape codes stripped
        self.raw = ""  # ... and as written

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the process ended and closed the pty
                return
            text = data.decode(errors="replace")
            self.raw += text
            self.screen += ANSI.sub("", text)

    def expect(self, text: str, timeout: float = 60) -> str:
        """Wait until ``text`` is on screen; return the screen so far."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            assert time.monotonic() < deadline, f"{text!r} never appeared in:\n{self.screen}"
            self._read(0.1)
        return self.screen

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        self._read(0.1)
        return self.process.wait(timeout=1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


CHROME = {"starting", "assistant", "finishing"}  # the spinner's labels


def _words(screen: str) -> list[str]:
    """The streamed answer's words on ``screen`` (not the spinner's labels)."""
    return [word for word in re.findall(r"[A-Za-z]{4,}", screen) if word not in CHROME]


@pytest.fixture
def terminal(tmp_path):
    opened: list[Terminal] = []

    def start(*args: str) -> Terminal:
        opened.append(Terminal(tmp_path, *args))
        return opened[-1]

    yield start
    for one in opened:
        one.close()


def test_startup_says_what_it_is_starting_and_ctrl_d_ends_the_line(terminal):
    chat = terminal("--sim", "--sim-time-scale", "0")
    screen = chat.expect("/help for commands")
    assert screen.index("starting the fleet simulator") < screen.index("/help for commands")
    chat.expect("you>")
    chat.type("/help\r")
    help_text = chat.expect("/quit")
    assert "every query of this chat session (all its threads" in help_text
    chat.expect("you>", timeout=5)
    mark = len(chat.screen)
    chat.type("\x04")  # Ctrl-D at the prompt leaves
    assert chat.finish() == 0
    assert chat.screen[mark:].endswith("\n")  # the shell's prompt starts on a line of its own


def test_a_too_small_budget_says_what_the_call_needed(terminal):
    chat = terminal("--sim", "--sim-time-scale", "0", "--budget-usd", "0.0000001")
    chat.expect("you>")
    chat.type("hello there\r")
    screen = " ".join(chat.expect("budget_exhausted").split())
    assert "(no answer: the budget refused the call: call needs up to $" in screen
    assert "of the $0.0000001 budget is left" in screen
    assert "raise it with /budget USD or --budget-usd" in screen
    chat.type("/quit\r")
    assert chat.finish() == 0


def test_ctrl_c_during_an_answer_keeps_what_was_streamed(terminal, tmp_path):
    # time scale 10: the simulated answer streams slowly enough to interrupt it midway.
    chat = terminal("--sim", "--sim-time-scale", "10", "--no-budget")
    chat.expect("you>")
    chat.type("tell me a long story about prefix caches\r")
    chat.expect("tell me a long story about prefix caches")
    mark = len(chat.screen)
    deadline = time.monotonic() + 60
    # Wait for streamed words (beyond the spinner's agent label) before pressing Ctrl-C.
    while len(set(_words(chat.screen[mark:]))) < 6:
        assert time.monotonic() < deadline, chat.screen
        chat._read(0.1)
    chat.process.send_signal(signal.SIGINT)  # what Ctrl-C sends (this pty is no controlling tty)
    chat.expect("turn cancelled")
    chat.type("/quit\r")
    assert chat.finish() == 0
    # The live region is erased when the turn ends (each of its lines cleared with
    # ESC[2K); what follows the last erase is what stays on screen: the partial answer.
    before = chat.raw[: chat.raw.index("turn cancelled")]
    kept = ANSI.sub("", before[before.rindex("\x1b[2K") :])
    assert len(_words(kept)) >= 3, kept
    with Ledger.open(str(tmp_path / "chat.db")) as ledger:
        (summary,) = ledger.list_queries()
    assert summary.query.status is QueryStatus.CANCELLED


def test_ctrl_c_at_the_prompt_leaves_on_a_line_of_its_own(terminal):
    chat = terminal("--sim", "--sim-time-scale", "0")
    chat.expect("you>")
    mark = len(chat.screen)
    chat.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert chat.finish() == 0
    assert chat.screen[mark:].endswith("\n") and "Traceback" not in chat.screen


# The chat's own prompt read, again and again: each signal must end one read.
PROMPTS = """
from spendgraph.cli.chat import ChatLoop
from spendgraph.cli.console import Output
from spendgraph.cli.signals import Shutdown

out = Output()
chat = ChatLoop(out, talk=None, interactive=True)  # _read needs no conversation
left = 0
while True:
    chat.shutdown = Shutdown()  # a fresh one each time: a second SIGTERM ends the process
    with chat.shutdown:
        chat._read()
    left += 1
    out.print(f"left {left}", highlight=False)
"""


def test_a_signal_just_after_the_prompt_shows_always_ends_the_read(tmp_path):
    """Ctrl-C (or SIGTERM) microseconds after ``you>`` is on screen: the read ends.

    A signal whose Python handler had not run yet when the read's system call
    began was slept through: about one in 700 of these tries hung the process
    (the test above then waited in vain for it to exit). 3,000 tries catch that
    almost every time; done right, each read ends within milliseconds.
    """
    chat = Terminal(tmp_path, command=[sys.executable, "-c", PROMPTS])
    try:
        chat.expect("you>")
        delays_us = (0, 2, 4, 6, 8, 10, 15, 20, 30)  # around when input() starts its read
        for tried in range(1, 3001):
            mark = len(chat.screen)
            end = time.perf_counter() + delays_us[tried % len(delays_us)] / 1e6
            while time.perf_counter() < end:
                pass
            signum = signal.SIGINT if tried % 2 else signal.SIGTERM
            chat.process.send_signal(signum)
            done, deadline = f"left {tried}\n", time.monotonic() + 10
            while done not in chat.screen[mark:] or "you>" not in chat.screen[mark:].split(done)[1]:
                assert chat.process.poll() is None, chat.screen[-2000:]
                assert time.monotonic() < deadline, (
                    f"{signum.name} #{tried} did not end the read: {chat.screen[-300:]!r}"
                )
                chat._read(0.1)
        assert "Traceback" not in chat.screen and "Exception ignored" not in chat.screen
    finally:
        chat.close()
