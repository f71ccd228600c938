"""The one object that owns terminal output for a CLI invocation."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape


@dataclass
class Output:
    """Owns the rich Consoles (stdout and stderr) and the ``--json`` switch."""

    json_mode: bool = False
    console: Console = field(default_factory=Console)
    errors: Console = field(default_factory=lambda: Console(stderr=True))

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.console.print(*objects, **kwargs)

    def emit_json(self, payload: Any) -> None:
        """Machine-readable output: plain JSON on stdout, no markup."""
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def error(self, message: str) -> None:
        self.errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
