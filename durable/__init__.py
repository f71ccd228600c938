"""Durable mode (``--engine temporal``): a query is a Temporal workflow, a model call an activity.

Optional: needs the ``spendgraph[temporal]`` extra. The in-process engine stays
the default; an app moves between the two without code changes. Kept free of
imports here: the workflow sandbox imports this package.
"""
