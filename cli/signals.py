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
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


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
        """Inside this block (a blocking read, no loop running) a signal raises Terminated."""
        if self.signum is not None:
            raise Terminated(self.signum)
        self._interruptible = True
        try:
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
