"""Names the workflow, its activities and its update are registered under."""

WORKFLOW = "spendgraph.query"
OPEN_QUERY = "spendgraph.open_query"
DRIVE_GRAPH = "spendgraph.drive_graph"
MODEL_CALL = "spendgraph.model_call"
CLOSE_QUERY = "spendgraph.close_query"
MODEL_CALL_UPDATE = "model_call"
CALL_ANSWERED = "call_answered"  # signal: a call's outcome, safe before its activity reports
CALL_ANSWER = "call_answer"  # query: that outcome, for a redelivered activity
DEFAULT_TASK_QUEUE = "spendgraph"
DEFAULT_ADDRESS = "127.0.0.1:7233"
