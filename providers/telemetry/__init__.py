"""OpenTelemetry GenAI spans and metrics of the provider layer (and the agents above it).

:mod:`.names` holds every span, metric and attribute name (the GenAI conventions
are still moving: one place to follow them), :mod:`.config` the ``[telemetry]``
table, :mod:`.recorder` the :class:`~.recorder.Telemetry` object a provider layer
records through, and :mod:`.setup` builds one from the config and the standard
``OTEL_*`` variables. Only :mod:`.setup` touches the SDK (the ``otel`` extra);
everything else needs ``opentelemetry-api`` alone. Nothing is imported here, so
the config model can import :mod:`.config` without pulling in the recorder.
"""
