"""LangGraph builders: supervisor, pipeline, fan-out, draft-and-verify; the budget guard."""
