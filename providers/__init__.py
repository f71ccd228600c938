"""The provider layer: endpoints, pricing, routing, the spend ledger and budgets."""
