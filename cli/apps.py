"""Finding the app to run: an example by name, a user's folder by path, or plain chat."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

from spendgraph import examples
from spendgraph.agents import Agent
from spendgraph.graph import pipeline
from spendgraph.graph.app import App
from spendgraph.providers.errors import ConfigError

CHAT = "chat"


def plain_chat() -> App:
    """The default app: one helpful assistant, keeping the conversation per thread."""
    assistant = Agent(
        "assistant",
        "You are a helpful, concise assistant. Answer in Markdown when it helps.",
        model="default",
        max_tokens=512,
    )
    return App(
        name=CHAT,
        description="A single assistant agent; each message is one query.",
        build=lambda: pipeline([assistant]),
        samples=("What does a prefix cache do?",),
    )


def example_names() -> list[str]:
    """The example apps shipped in ``spendgraph.examples``."""
    return sorted(m.name for m in pkgutil.iter_modules(examples.__path__) if m.ispkg)


def load_app(name_or_path: str | None) -> App:
    """``None``/"chat" → plain chat; a shipped example's name; or a folder or .py file
    defining ``APP = App(...)``. Anything else is a clear error listing the choices."""
    if name_or_path in (None, "", CHAT):
        return plain_chat()
    path = Path(name_or_path)
    if path.exists():
        return _app_of(_load_path(path), str(path))
    if name_or_path in example_names():
        module = importlib.import_module(f"spendgraph.examples.{name_or_path}")
        return _app_of(module, name_or_path)
    choices = ", ".join([CHAT, *example_names()])
    raise ConfigError(
        f"unknown app {name_or_path!r}: expected one of {choices}, "
        "or a path to a folder or .py file that defines APP"
    )


def _load_path(path: Path):
    target = path / "__init__.py" if path.is_dir() else path
    if not target.is_file():
        raise ConfigError(f"no {target.name} in {path}: an app folder needs one defining APP")
    name = f"spendgraph_user_app_{abs(hash(target.resolve()))}"
    spec = importlib.util.spec_from_file_location(
        name, target, submodule_search_locations=[str(target.parent)] if path.is_dir() else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # lets the app's own relative imports resolve
    spec.loader.exec_module(module)
    return module


def _app_of(module, where: str) -> App:
    app = getattr(module, "APP", None)
    if not isinstance(app, App):
        raise ConfigError(
            f"{where} defines no APP: expected a module-level `APP = App(...)` "
            "(from spendgraph.graph.app import App)"
        )
    return app
