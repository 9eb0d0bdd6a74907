"""Pacing the Kore.ai calls: the rate schedule (pure) and the per-account budgets with their DynamoDB ledger."""
