"""``spendgraph serve``: apps over HTTP (``serve app``), or a local endpoint in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spendgraph.cli import serve_app, serve_local

app = typer.Typer(
    help="Serve apps over HTTP (`serve app`), or run a local endpoint in the foreground.",
    no_args_is_help=True,
)


@app.command("sim")
def sim(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8900,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    fleet: Annotated[
        Path | None,
        typer.Option(help="Fleet file (TOML); the shipped default fleet if omitted."),
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(min=0.0, help="Multiplier on simulated durations: 1 real time, 0 no waiting."),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for generated text and fleet-file faults.")] = 0,
    dialect: Annotated[
        str | None,
        typer.Option(
            help="Answer like this engine on every replica: vllm, sglang, trtllm, dynamo, nim, "
            "llama-server, llama-cpp-python, ollama or openai (default: the fleet file's)."
        ),
    ] = None,
) -> None:
    """Serve the fleet simulator: simulated GPU replicas behind an OpenAI-compatible API.

    Base URLs: http://HOST:PORT/r/REPLICA/v1 for one replica, http://HOST:PORT/v1 for
    the whole fleet. Ctrl-C stops it.
    """
    # Imported here so other `spendgraph` commands do not pay for starting uvicorn.
    from spendgraph.providers.local.sim.dialects import DIALECTS
    from spendgraph.providers.local.sim.fleet import load_fleet
    from spendgraph.providers.local.sim.server import serve_forever

    loaded = load_fleet(fleet)  # a bad file raises ConfigError: one clear line, exit 1
    if dialect is not None:
        if dialect not in DIALECTS:
            allowed = ", ".join(DIALECTS)
            raise typer.BadParameter(f"{dialect!r} is not one of {allowed}", param_hint="--dialect")
        loaded = loaded.with_dialect(dialect)  # type: ignore[arg-type]
    typer.echo(
        f"fleet simulator: {len(loaded.replicas)} replicas from {loaded.source}, "
        f"time scale {time_scale:g}, seed {seed}" + (f", dialect {dialect}" if dialect else "")
    )
    typer.echo(f"fleet-wide:  http://{host}:{port}/v1")
    typer.echo(
        f"per replica: http://{host}:{port}/r/<replica>/v1  e.g. /r/{loaded.replicas[0].name}/v1"
    )
    serve_forever(loaded, host=host, port=port, time_scale=time_scale, seed=seed)


serve_local.register(app)
app.command("app")(serve_app.serve_app)
