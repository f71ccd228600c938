"""The `spendgraph` command line: one module per command."""
