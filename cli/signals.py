"""SIGTERM handled like Ctrl-C: the running query is cancelled, recorded and closed.

``docker stop``, systemd and Kubernetes stop a process with SIGTERM (then
SIGKILL after a grace period, 10-30 s). Python's default for SIGTERM is to die
on the spot: no cancelled-call rows, the query left ``running``. Inside
``with Shutdown() as shutdown:`` the first signal instead cancels the task
``shutdown.guard(...)`` runs -- exactly what asyncio does for Ctrl-C -- so
the provider layer records every in-flight attempt as cancelled and closes
the query ``cancelled``, the ledger is flushed and closed, and the command
exits with :attr:`Shutdown.exit_code`.

Exit codes follow the shell's convention, 128 + the signal's number: 143
after SIGTERM, 130 after Ctrl-C (SIGINT). A second signal ends the process at
once, the default way (for when the cleanup itself hangs).

A prompt waits with :func:`wait_readable` before it reads: a plain blocking
read can sleep through the signal meant to end it (see there).
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

# How often wait_readable looks again without a wake-up (a backstop, see there).
_RECHECK_S = 1.0


def signal_exit_code(signum: int) -> int:
    """The exit status a shell reports for a process ended by ``signum`` (128 + its number)."""
    return 128 + signum


class Terminated(BaseException):  # a BaseException, like KeyboardInterrupt: not an error
    """A handled signal arrived where the command was waiting (chat's prompt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Shutdown:
    """Turns ``signals`` (default SIGTERM) into the cancellation of the guarded task.

    While :meth:`guard` runs a coroutine, the first signal cancels its task;
    inside :meth:`interruptible` (a blocking read) it raises
    :class:`Terminated`; anywhere else it is only noted (:attr:`signum`) for
    the command to act on when it can. Handlers are installed only in the main
    thread, and the previous ones are restored on exit.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)):
        self._signals = signals
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._interruptible = False
        self.signum: int | None = None

    @property
    def exit_code(self) -> int:
        """128 + the signal received (only meaningful once :attr:`signum` is set)."""
        return signal_exit_code(self.signum or 0)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` as the task a signal cancels (run it as the main task)."""
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            if self.signum is not None:  # arrived before this task existed
                raise asyncio.CancelledError
            return await awaitable
        finally:
            self._task = self._loop = None

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside this block (a blocking read, no loop running) a signal raises Terminated.

        Wait with :func:`wait_readable` before the read, or a signal can be missed.
        """
        try:
            self._interruptible = True
            if self.signum is not None:  # arrived before (or as) the block began: only noted
                raise Terminated(self.signum)
            yield
        finally:
            self._interruptible = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second one: stop now, the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        task, loop = self._task, self._loop
        if task is not None and loop is not None and not task.done():
            # As asyncio.Runner does for Ctrl-C: cancel, and wake the loop's select().
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)
        elif self._interruptible:
            raise Terminated(signum)


def wait_readable(fd: int) -> None:
    """Block until ``fd`` has input (or is at its end), letting signal handlers raise.

    Call it just before a blocking read (``input()``, ``readline()``), which then
    returns at once. The read alone can sleep through a signal:
    the C-level handler only flags the signal and the interpreter runs the Python
    handler (KeyboardInterrupt, :class:`Terminated`) at its next bytecode. A signal
    that lands in the microseconds between that check and the read's system call
    is flagged, the read blocks anyway and, with no second signal, never returns:
    Ctrl-C at chat's prompt then hung the process about once in 700 tries.

    Here every signal from the moment the wakeup fd is set writes a byte that
    wakes the ``select`` at once. One that landed before runs its handler right
    after ``set_wakeup_fd`` returns (the interpreter checks after each call),
    or at the latest on the loop's next turn, every ``_RECHECK_S``.
    """
    if threading.current_thread() is not threading.main_thread():
        select.select([fd], [], [])  # signal handlers run in the main thread only
        return
    wake_r, wake_w = _wakeup_pipe()
    previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    try:
        while True:
            readable, _, _ = select.select([fd, wake_r], [], [], _RECHECK_S)
            if fd in readable:
                return
            if wake_r in readable:  # a signal whose handler did not raise: wait on
                os.read(wake_r, 4096)
    finally:
        signal.set_wakeup_fd(previous)


_wakeup: tuple[int, int] | None = None


def _wakeup_pipe() -> tuple[int, int]:
    """wait_readable's wakeup pipe (read end, write end): opened once, never closed.

    A handler that raises just as ``set_wakeup_fd`` returns skips its restore
    (``previous`` is never assigned): the signals after it then write to this
    pipe, which is harmless, instead of to a closed, maybe reused, descriptor.
    """
    global _wakeup
    if _wakeup is None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        _wakeup = wake_r, wake_w
    return _wakeup
