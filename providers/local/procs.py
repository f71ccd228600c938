"""Child-process helpers for local endpoints: ports, logs, lifetime, shutdown.

A local endpoint runs as a child process that

- gets its own session (``start_new_session``), so a Ctrl-C meant for the
  parent (cancel a chat turn) does not also kill the server;
- writes stdout and stderr to a log file, never to a pipe nobody drains (a
  full pipe would block the server mid-request);
- holds the read end of a pipe on its stdin whose write end only the parent
  has: when the parent exits -- even by SIGKILL -- the child reads EOF and
  exits too (:func:`exit_when_stdin_closes`), so no server outlives its owner;
- is stopped by :func:`stop_process`: terminate, wait, kill after a grace
  period, and always reaped, so no zombie is left behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago.

    Another process can take it before the child binds it; callers that chose
    the port this way retry with a new one when the child reports the address
    in use.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def spawn_child(argv: Sequence[str], *, log: IO[bytes], env: Mapping[str, str]) -> subprocess.Popen:
    """Start ``argv`` in its own session, output to ``log``, stdin tied to our lifetime."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,  # the lifetime pipe: see exit_when_stdin_closes
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
        close_fds=True,
    )


def stop_process(proc: subprocess.Popen, *, grace_s: float = 5.0) -> int:
    """Stop ``proc`` and reap it: close its stdin, terminate, wait ``grace_s``, then kill.

    Returns the exit code (negative for a signal). Safe to call on a process
    that has already exited.
    """
    if proc.stdin is not None and not proc.stdin.closed:
        # A child running exit_when_stdin_closes leaves at once on EOF.
        proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def tail_text(path: Path, *, max_lines: int = 25, max_bytes: int = 16_384) -> str:
    """The last ``max_lines`` lines of a log file (reading at most its last ``max_bytes``)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-max_lines:])


def exit_when_stdin_closes(exit_code: int = 0) -> threading.Thread:
    """In a child: exit the whole process as soon as stdin reaches EOF.

    The parent holds the only write end of our stdin, so EOF means the parent
    closed it (a deliberate stop) or died. ``os._exit`` rather than a signal:
    nobody is left to shut down gracefully for, and the server's own threads
    must not keep the process alive.
    """

    def watch() -> None:
        # os.read on the raw descriptor, not sys.stdin: a daemon thread blocked
        # inside a buffered reader holds its lock, and the interpreter aborts
        # ("could not acquire lock ... at interpreter shutdown") when the
        # server exits on its own.
        try:
            while os.read(fd, 4096):
                pass  # the parent never writes; ignore anything that arrives
        except OSError:
            pass  # stdin unusable: treat like EOF
        os._exit(exit_code)

    fd = sys.stdin.fileno()

    thread = threading.Thread(target=watch, name="exit-when-parent-exits", daemon=True)
    thread.start()
    return thread
