"""``spendgraph serve local``: the embedded SmolLM2 model in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from spendgraph.cli.console import Output
from spendgraph.cli.signals import Shutdown, Terminated
from spendgraph.providers.errors import EmbeddedModelUnavailable, EmbeddedServerError
from spendgraph.providers.local.embedded import DEFAULT_PORT, EmbeddedServer


def register(app: typer.Typer) -> None:
    """Add the ``local`` command to the ``serve`` command group."""
    app.command("local")(local)


def local(
    port: Annotated[int, typer.Option(help="TCP port to listen on (0 picks a free one).")] = (
        DEFAULT_PORT
    ),
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the model.")
    ] = "127.0.0.1",
) -> None:
    """Run the embedded SmolLM2-135M model as an OpenAI-compatible endpoint until Ctrl-C.

    SIGTERM stops it like Ctrl-C (the server stopped, its temporary log removed),
    then exits 143.
    """
    out = Output()
    server = EmbeddedServer(host=host, port=port)
    with Shutdown() as shutdown:
        try:
            server.start()
            out.print(
                f"serving [bold]{escape(server.model)}[/] at [bold]{escape(server.base_url)}[/]"
                f" (pid {server.pid})"
            )
            out.print(f"server log: {escape(str(server.log_path))}  (Ctrl-C to stop)", style="dim")
            with shutdown.interruptible():
                code = server.wait()
            tail = server.log_tail()
        except (EmbeddedModelUnavailable, EmbeddedServerError) as exc:
            # Escaped: the install hint contains ".[local]", which rich reads as markup.
            out.error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            return  # start() or the finally below has stopped the server
        except Terminated:
            code, tail = 0, ""
        finally:
            server.stop()
    if shutdown.signum is not None:
        out.errors.print(f"stopped by {shutdown.signal_name}", style="yellow", highlight=False)
        raise typer.Exit(shutdown.exit_code)
    if code != 0:
        out.error(f"the embedded model server exited with code {code}\n{tail}")
        raise typer.Exit(1)
