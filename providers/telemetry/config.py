"""The ``[telemetry]`` table of ``spendgraph.toml``.

Every key is optional: the standard ``OTEL_*`` environment variables configure
the same things (a key set here wins over its variable)::

    [telemetry]
    endpoint = "http://127.0.0.1:4318"   # OTLP/HTTP; else $OTEL_EXPORTER_OTLP_ENDPOINT
    service_name = "support-bot"         # else $OTEL_SERVICE_NAME, else "spendgraph"
    metric_export_interval_s = 60        # else $OTEL_METRIC_EXPORT_INTERVAL (ms)

With no endpoint anywhere, spendgraph exports nothing itself: spans and metrics
go to the process's global OpenTelemetry providers (a no-op unless the
application or ``opentelemetry-instrument`` set them). ``enabled = false`` (or
``OTEL_SDK_DISABLED=true``) emits nothing at all.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from spendgraph.providers.config.base import ConfigModel, NonEmptyStr


class TelemetryConfig(ConfigModel):
    """Where spans and metrics go (see the module docstring)."""

    enabled: bool = True
    endpoint: NonEmptyStr | None = None
    service_name: NonEmptyStr | None = None
    metric_export_interval_s: Annotated[float, Field(gt=0)] | None = None

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"expected an OTLP/HTTP base URL such as http://127.0.0.1:4318, got {value!r}"
            )
        return value.rstrip("/") if value is not None else None
